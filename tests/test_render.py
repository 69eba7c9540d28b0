"""Rendering the book: it never trains, names what it lacks, and the committed book and README are current."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mealrec.reproduce import RunStore
from mealrec.reproduce import execution as runner
from mealrec.reproduce import summary as S
from mealrec.reproduce.artefacts import NOTEBOOKS, runs_on
from mealrec.reproduce.book import write_book_pages
from mealrec.reproduce.execution import run_notebooks
from mealrec.utils import MealRecError

from .helpers import mini_tree

ROOT = Path(__file__).resolve().parents[1]


def test_readme_and_intro_show_the_matrix_the_sidecars_give():
    """`mealrec reproduce --summary` writes these blocks; a stale README or intro fails here."""
    for path, block in S.expected_blocks(ROOT, "full").items():
        assert S.block_of(path.read_text(encoding="utf-8")) == block.strip(), (
            f"{path.name}'s results matrix differs from the sidecars: run `mealrec reproduce --summary`")
    assert (ROOT / "figures/full/summary.png").is_file()


def test_the_matrix_reads_each_claims_verdict_and_number(tmp_path):
    gen = tmp_path / "full"
    (gen / "overall").mkdir(parents=True)
    side = {"results": {"verdict": "partly reproduces: ...", "improvement": {"ndcg@10": {
        "best_baseline": "sasrec", "rel_imp_pct": 3.25, "p": 0.0042}}}}
    (gen / "overall" / "overall-synthetic-small.json").write_text(json.dumps(side))
    rows = dict(S.matrix(gen, ["synthetic-small", "microlens-small"]))
    cell = rows["Table 2: MealRec-TedRec beats every baseline"]["synthetic-small"]
    assert cell.label == "partly reproduces" and cell.number == "N@10 +3.2% vs sasrec (p = 0.0042)"
    assert rows["Table 2: MealRec-TedRec beats every baseline"]["microlens-small"] is None
    md = S.markdown(list(rows.items()), ["synthetic-small", "microlens-small"])
    assert "**partly reproduces**: N@10 +3.2% vs sasrec" in md and "not run here" in md
    side["results"]["verdict"] = "looks fine"  # a verdict without its label is refused, naming it
    (gen / "overall" / "overall-synthetic-small.json").write_text(json.dumps(side))
    with pytest.raises(MealRecError, match="verdict without a label"):
        S.matrix(gen, ["synthetic-small"])
    with pytest.raises(MealRecError, match="no '<!-- summary:start -->'"):
        S.replace_block("no markers here", "x")


def test_rendering_never_trains_and_names_the_missing_runs(tmp_path, monkeypatch):
    root = mini_tree(tmp_path)
    monkeypatch.setattr("mealrec.reproduce.store.train", lambda *a, **k: pytest.fail("rendering trained a run"))
    done = run_notebooks(["synthetic-tiny"], profile="smoke", notebooks=["datasets", "overall"], root=root,
                         progress=False)
    status = {nb: s for nb, _, s in done}
    assert status["datasets"] == "executed" and status["overall"].startswith("missing ")
    state = json.loads((root / "book/generated/smoke/overall/synthetic-tiny.runs.json").read_text())
    assert any(line.startswith("mealrec-tedrec default seed") for line in state["missing"])
    write_book_pages("smoke", root=root)
    page = (root / "book/generated/smoke/table2.md").read_text()
    assert "**Runs missing.**" in page and "--train-missing" in page and "mealrec-tedrec default seed" in page
    assert "glue" not in page.split("## synthetic-tiny", 1)[1]  # no numbers for a section without its runs
    toc = (root / "book/generated/smoke/_toc.yml").read_text()
    assert "overall/synthetic-tiny" not in toc


def test_a_run_made_by_older_code_is_read_and_labelled(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs", progress=False, threads=1)
    res = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    path = Path(res["result_path"])
    older = path.with_name(path.name.replace(res["store_key"], "0123456789abcdef"))  # as if the code had changed
    data = json.loads(path.read_text())
    data["store_key"] = "0123456789abcdef"
    older.write_text(json.dumps(data))
    path.with_suffix(".npz").rename(older.with_suffix(".npz"))
    path.unlink()
    reader = RunStore(tmp_path / "runs", progress=False, train=False)
    assert reader.locate("sasrec", "synthetic-tiny", seed=1, epochs=1) == (older, "older")
    back = reader.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    assert back["test"] == res["test"] and back["older_code"]["store_key"] == "0123456789abcdef"
    with pytest.raises(MealRecError, match=r"sasrec .*seed 2 .*not stored.*--train-missing"):
        reader.run("sasrec", "synthetic-tiny", seed=2, epochs=1)
    # another setting is another run, never an older version of this one
    assert reader.locate("sasrec", "synthetic-tiny", seed=1, epochs=2)[1] == "missing"
    # a run made when the model's defaults were others (same stem: no explicit override) is read as older,
    # but one with the same configuration is preferred
    other = older.with_name(older.name.replace("0123456789abcdef", "fedcba9876543210"))
    data["store_key"], data["model_config"] = "fedcba9876543210", {**data["config"]["model_config"], "n_layers": 9}
    data["config"]["model_config"] = data.pop("model_config")
    data["environment"]["created"] = "9999"  # newer, yet not preferred
    other.write_text(json.dumps(data))
    shutil.copy(older.with_suffix(".npz"), other.with_suffix(".npz"))
    assert reader.locate("sasrec", "synthetic-tiny", seed=1, epochs=1) == (older, "older")
    older.unlink()
    assert reader.locate("sasrec", "synthetic-tiny", seed=1, epochs=1) == (other, "older")


def test_the_page_key_ignores_where_the_data_sits_and_the_threads(tmp_path):
    """What a page's key names: the notebook, the profile, the data, the library and the runs' bytes."""
    nb = ROOT / "notebooks/overall.ipynb"
    run = tmp_path / "d" / "m" / "seed1-aaaa.json"
    run.parent.mkdir(parents=True)
    run.write_text("{}")
    key = runner.page_key(nb, "smoke", "synthetic-tiny", "h", "lib", [run], tmp_path)
    assert key == runner.page_key(nb, "smoke", "synthetic-tiny", "h", "lib", [run], tmp_path)
    run.write_text('{"changed": 1}')
    assert key != runner.page_key(nb, "smoke", "synthetic-tiny", "h", "lib", [run], tmp_path)
    assert "DATA_DIR" not in runner.page_key.__code__.co_varnames


def test_a_fresh_clone_renders_the_full_book_without_training_or_executing(tmp_path, monkeypatch, data_dir):
    """On a clone at another path, with the data elsewhere, `mealrec reproduce` (full) finds every
    committed page current: no notebook executes and no run trains. A failure here means a change
    of the library, the notebooks or the run store was committed without re-rendering the pages."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "elsewhere" / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    moved = tmp_path / "data-elsewhere"
    moved.mkdir()
    (moved / "microlens-50k").symlink_to((data_dir / "microlens-50k").resolve())
    monkeypatch.setattr("mealrec.reproduce.store.train", lambda *a, **k: pytest.fail("rendering trained a run"))
    monkeypatch.setattr("mealrec.reproduce.store.run_in_subprocess", lambda *a, **k: pytest.fail("trained a run"))
    executed = []
    monkeypatch.setattr(runner, "execute", lambda nb, d, *a, **k: executed.append((nb, d)))
    datasets = runner.default_datasets("full", str(moved))
    done = run_notebooks(datasets, profile="full", data_dir=str(moved), root=clone, progress=False)
    stale = [(nb, d, s) for nb, d, s in done if s != "unchanged"]
    assert not executed and not stale, f"pages whose committed key is stale (re-render them): {stale}"
    assert len(done) == sum(runs_on(nb, d) for nb in NOTEBOOKS for d in datasets)


def test_verify_retrains_a_stored_run_and_finds_it_bit_identical(tmp_path):
    """Same machine, same thread count: the retrained run's metrics equal the stored ones exactly."""
    from mealrec.reproduce import get_profile
    from mealrec.reproduce import plan as P
    from mealrec.reproduce import verify as V
    from mealrec.reproduce.requests import request

    store = RunStore(tmp_path / "runs", progress=False, threads=1, profile="smoke")
    prof = get_profile("smoke", "synthetic-tiny")
    for model in ("sasrec", "tedrec"):
        request(model, "synthetic-tiny", prof).run(store)
    rows = [r for r in P.plan(store, "smoke", ["synthetic-tiny"], ["overall"]) if r["model"] in ("sasrec", "tedrec")]
    assert V.choose(rows, 2, seed=7) == V.choose(rows, 2, seed=7)  # the printed seed repeats the draw
    found = V.verify(store, rows, 1, seed=7, progress=False)
    assert len(found) == 1 and found[0]["bit-identical"] and found[0]["threads"] == 1
    assert found[0]["same hardware"] == "yes"  # stamped with this machine's CPU when it was stored
    out = V.write(found, 7, 1, tmp_path / "verify.md")
    assert "1 of 1 runs bit-identical" in out.read_text() and out.with_suffix(".json").is_file()


def test_a_damaged_stored_run_is_moved_aside_and_counts_as_missing_when_rendering(tmp_path, capsys):
    store = RunStore(tmp_path / "runs", progress=False, threads=1)
    path = Path(store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)["result_path"])
    path.write_text(path.read_text()[:100])  # a half-copied file
    reader = RunStore(tmp_path / "runs", progress=False, train=False)
    assert reader.locate("sasrec", "synthetic-tiny", seed=1, epochs=1) == (None, "missing")
    assert path.with_name(path.name + ".corrupt").exists() and not path.exists()
    assert f"{path}" in capsys.readouterr().err
    with pytest.raises(MealRecError, match="not stored"):
        reader.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
