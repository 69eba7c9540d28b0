"""The reproduction machinery: run store, notebooks, runner, book build (smoke profile)."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from mealrec.reproduce import RunStore, get_profile
from mealrec.reproduce import plan as P
from mealrec.reproduce.plan import VARIANTS as VARIANTS_
from mealrec.reproduce import report as R
from mealrec.reproduce.runner import NOTEBOOKS, browser_check, build_book, run_notebooks
from mealrec.reproduce.store import _normalised_source_hash, model_source_files
from mealrec.utils import MealRecError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"), progress=False, threads=1)


def test_store_trains_once_and_keys_on_what_changes_metrics(store, monkeypatch):
    a = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    assert Path(a["result_path"]).exists() and a["per_user_test"]["ndcg@10"].shape == (200,)
    import mealrec.reproduce.store as S

    def no_training(*args, **kwargs):
        raise AssertionError("a stored run was trained again")

    monkeypatch.setattr(S, "train", no_training)
    b = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    assert b["test"] == a["test"] and b["store_key"] == a["store_key"]
    # an override equal to the default is the same run; another seed, epochs or setting is not
    assert store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, overrides={"n_layers": 2}) == Path(a["result_path"])
    others = {store.path("sasrec", "synthetic-tiny", seed=2, epochs=1),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=2),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, overrides={"n_layers": 1}),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, visual_noise=0.1),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, patience=30)}
    assert len(others) == 5 and Path(a["result_path"]) not in others
    # threads and the progress bar do not change metrics, so they do not change the key
    assert RunStore(store.root, progress=True, threads=4).path("sasrec", "synthetic-tiny", seed=1, epochs=1) == Path(a["result_path"])
    # a file at the run's path whose recorded key differs is not trusted: the run is trained again
    path = Path(a["result_path"])
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "store_key": "something else"}))
    with pytest.raises(AssertionError, match="trained again"):
        store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    path.write_text(json.dumps(stored))
    # the model's code does: another code hash is another run
    monkeypatch.setattr(S, "code_hash", lambda model: "changed")
    assert store.path("sasrec", "synthetic-tiny", seed=1, epochs=1) != Path(a["result_path"])


def test_code_hash_ignores_comments_and_docstrings(tmp_path):
    f1, f2, f3 = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    f1.write_text('"""doc"""\ndef f(x):\n    """inner doc"""\n    return x + 1  # comment\n')
    f2.write_text('def f(x):\n    return x + 1\n')
    f3.write_text('def f(x):\n    return x + 2\n')
    assert _normalised_source_hash(f1) == _normalised_source_hash(f2) != _normalised_source_hash(f3)
    files = {p.name for p in model_source_files("mealrec-tedrec")}
    assert {"mealrec.py", "tedrec.py", "sasrec.py", "trainer.py", "diffusion.py"} <= files


def test_overall_reads_the_registry_and_gives_a_rule_based_verdict(store):
    res = R.overall(store, "synthetic-tiny", get_profile("smoke"), seeds=[1])
    from mealrec.models import MODELS

    rows = set(res["table"].index)
    assert rows == {m for m, cls in MODELS.items() if cls.table2}  # every registered Table 2 row ...
    assert {"sasrec", "cl4srec", "tedrec", "mealrec-tedrec", "mmgcn", "iisan-versa"} <= rows
    assert not rows & {"mealrec-sasrec", "mealrec-cl4srec"}  # ... and only those
    assert list(res["table"].index)[-1] == "mealrec-tedrec"  # MealRec last, as the paper's table
    assert set(res["improvement"]) == {"hr@10", "ndcg@10", "hr@20", "ndcg@20"}
    assert res["verdict"].split(":")[0] in ("reproduces", "partly reproduces", "does not reproduce")
    assert res["left_out"] == [] and "provisional" not in res["verdict"]
    sub = R.overall(store, "synthetic-tiny", get_profile("smoke"), seeds=[1], models=["sasrec", "mealrec-tedrec"])
    assert "tedrec" in sub["left_out"] and "provisional" in sub["verdict"]  # a subset says which rows it lacks


def _mini_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_build", "generated"))
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    for nb in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{nb}.ipynb", root / "notebooks")
    return root


def test_notebooks_are_stored_clean_with_a_parameters_cell():
    for nb in NOTEBOOKS:
        book = nbformat.read(ROOT / "notebooks" / f"{nb}.ipynb", as_version=4)
        params = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, nb
        for name in ("DATASET", "PROFILE", "SEEDS", "MODELS", "OUTPUT_DIR"):
            assert f"{name} = " in params[0].source, (nb, name)
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in book.cells if c.cell_type == "code"), nb


def test_bad_parameters_fail_in_the_first_cell_listing_the_valid_values(tmp_path):
    """An unknown dataset, a misspelled profile, an unknown model or malformed seeds stop the
    notebook in its first cell after the parameters, with the valid values in the message."""
    import papermill as pm

    cases = [({"DATASET": "synthetic-tinyy"}, "unknown dataset 'synthetic-tinyy'; valid names: .*synthetic-tiny"),
             ({"PROFILE": "smokey"}, "unknown profile 'smokey'; valid: smoke, quick, full"),
             ({"MODELS": "sasrec,tedrek"}, "unknown model 'tedrek'; valid names: .*tedrec"),
             ({"SEEDS": "2020;2021"}, "SEEDS must be None or a list of integers")]
    for params, message in cases:
        with pytest.raises(pm.PapermillExecutionError) as err:
            pm.execute_notebook(str(ROOT / "notebooks/overall.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                parameters={"DATASET": "synthetic-tiny", "PROFILE": "smoke", "RUNS_DIR": str(tmp_path / "runs"),
                                            "OUTPUT_DIR": str(tmp_path / "out"), "FIGURES_DIR": str(tmp_path / "fig"), **params},
                                cwd=str(ROOT), progress_bar=False)
        assert err.value.exec_count == 3, (params, err.value.exec_count)  # parameters, injected parameters, then this
        assert re.search(message, err.value.evalue), (params, err.value.evalue)


def test_models_is_refused_where_a_notebook_does_not_read_it():
    from mealrec.reproduce.profiles import MODELS_NOTEBOOKS, parse_models

    assert parse_models("sasrec,tedrec", notebook="overall") == ["sasrec", "tedrec"]
    assert parse_models(None, notebook="ablation") is None
    for nb in set(NOTEBOOKS) - set(MODELS_NOTEBOOKS):
        with pytest.raises(MealRecError, match=f"MODELS is not read by the {nb} notebook.*overall, noise, visualisation"):
            parse_models(["sasrec"], notebook=nb)


def test_runner_skips_unchanged_pairs_and_leaves_nothing_on_failure(tmp_path):
    root = _mini_tree(tmp_path)
    done = run_notebooks(["synthetic-tiny"], profile="smoke", notebooks=["datasets"], root=root, progress=False)
    assert done == [("datasets", "synthetic-tiny", "executed")]
    out = root / "book/generated/smoke/datasets/synthetic-tiny.ipynb"
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[0].source.startswith("# Table 1: dataset statistics (synthetic-tiny)")
    side = json.loads((out.parent / "datasets-synthetic-tiny.json").read_text())
    assert side["provenance"]["data_hash"]["synthetic-tiny"] and side["results"]["table"][0]["users (ours)"] == 200
    assert side["results"]["sememes"][0]["source"] == "topic" and side["results"]["sememes"][0]["sememes"] > 0
    again = run_notebooks(["synthetic-tiny"], profile="smoke", notebooks=["datasets"], root=root, progress=False)
    assert again == [("datasets", "synthetic-tiny", "unchanged")]
    # a failing cell: clear error naming the cell, the old output untouched, no temp file left
    # (the sidecar and figures the notebook wrote before its failing cell are undone too)
    bad = nbformat.read(root / "notebooks/datasets.ipynb", as_version=4)
    bad.cells.append(nbformat.v4.new_code_cell(
        "Path(FIGURES_DIR).mkdir(parents=True, exist_ok=True); (Path(FIGURES_DIR) / 'stray.png').write_bytes(b'x')\n"
        "raise ValueError('boom in a cell')"))
    nbformat.write(bad, root / "notebooks/datasets.ipynb")
    before = out.read_bytes()
    sidecar = out.parent / "datasets-synthetic-tiny.json"
    side_before = sidecar.read_bytes()
    with pytest.raises(MealRecError, match=r"(?s)datasets.ipynb on synthetic-tiny.*boom in a cell"):
        run_notebooks(["synthetic-tiny"], profile="smoke", notebooks=["datasets"], root=root, progress=False)
    assert out.read_bytes() == before
    assert sidecar.read_bytes() == side_before  # rewritten by the run (new timestamp), then put back
    assert not (root / "figures/smoke/stray.png").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def _leaves(obj, key=""):
    """(key, value) for every scalar in a nested sidecar."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v, key)
    else:
        yield key, obj


def test_smoke_book_builds_offline(tmp_path):
    """Every notebook on synthetic-tiny (smoke profile), then jupyter-book with -W -n; no CDN in the HTML."""
    root = _mini_tree(tmp_path)
    run_notebooks(["synthetic-tiny", "control-content"], profile="smoke", root=root, progress=False, threads=1, train=True)
    assert len(list((root / "figures/smoke").glob("*.png"))) == len(list((root / "figures/smoke").glob("*.pdf"))) >= 6
    metrics = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")
    checked = 0
    for side in (root / "book/generated/smoke").rglob("*.json"):
        for key, value in _leaves(json.loads(side.read_text())["results"]):
            if key.split("|")[0] in metrics and not key.endswith(("paper", "Δ")):
                assert isinstance(value, float) and 0.0 <= value <= 1.0, (side.name, key, value)
                checked += 1
    assert checked >= 40  # Tables 2 and 3, ablations, noise, SeeDRec: metrics in [0, 1] and finite
    sidecars = {side.parent.name: json.loads(side.read_text())["results"] for side in (root / "book/generated/smoke").rglob("*.json")}
    assert set(sidecars) == set(NOTEBOOKS)  # every notebook wrote its sidecar
    for grid in ("lambda_t", "lambda_n"):  # Figure 4's grids: test N@10 per lambda x T
        values = [v for _, v in _leaves(sidecars["sensitivity"][grid])]
        assert values and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values), (grid, values)
    for k, v in _leaves(sidecars["sensitivity"]["tuned_on_validation"]):
        assert k not in ("test", "default_test", "backbone_test") or 0.0 <= v <= 1.0, (k, v)
    # every page's verdict carries its label (the rule it follows is stated beside it)
    verdicts = [v for _, results in sidecars.items() for k, v in _leaves(results) if k == "verdict"]
    assert len(verdicts) >= 6 and all(v.startswith(("reproduces", "partly reproduces", "does not reproduce", "not tested here")) for v in verdicts), verdicts
    # The plan lists exactly the runs the notebooks made: none missing, none unaccounted for.
    store = RunStore(root / "runs/smoke", progress=False)
    rows = P.plan(store, "smoke", ["synthetic-tiny", "control-content"], NOTEBOOKS)
    assert rows and all(r["stored"] for r in rows)
    assert {r["path"] for r in rows} == {str(p) for p in (root / "runs/smoke").rglob("*.json")}
    assert {nb for r in rows if r["dataset"] == "control-content" for nb in r["notebooks"]} == {"controls"}
    assert len(list((root / "runs/smoke/control-content").rglob("*.shuffled.npz"))) == 8  # every MealRec run
    assert set(sidecars["controls"]["verdicts"]) == {"sasrec", "tedrec"}
    P.write_coverage(rows, "smoke", NOTEBOOKS, ["synthetic-tiny", "control-content"], root)
    html = build_book("smoke", root=root)
    assert "stored / runs needed" in (html / "generated/smoke/coverage.html").read_text()
    page = (html / "generated/smoke/table2.html").read_text()
    assert "Verdict" in page and "mealrec-tedrec" in page
    for f in html.rglob("*.html"):
        text = f.read_text()
        assert "cdn.jsdelivr" not in text and "cdnjs" not in text and "mathjax@" not in text, f
    assert (html / "_static/mathjax/tex-chtml.js").exists()
    if not shutil.which("chromium"):
        pytest.skip("the browser part needs chromium (apt-get install chromium); everything above passed")
    report = browser_check(html)  # the real browser: every page loads, images resolve, no raw TeX
    assert not {p: v for p, v in report.items() if v}, report
    assert len(report) >= 10 and (html.parent / "table2.png").is_file()


def test_browser_check_flags_a_broken_page(tmp_path):
    from mealrec.reproduce.browser import browser_check

    if not shutil.which("chromium"):
        pytest.skip("chromium not installed (apt-get install chromium)")
    (tmp_path / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "good.html").write_text('<html><body><p>fine</p><img src="fig.png"></body></html>')
    (tmp_path / "bad.html").write_text("<html><body><p>&lt;IPython.core.display.Markdown object&gt;</p></body></html>")
    (tmp_path / "noimg.html").write_text('<html><body><img src="missing/fig.png"></body></html>')
    (tmp_path / "tex.html").write_text("<html><body><p>raw $$x_t = \\frac{a}{b}$$ here</p></body></html>")
    (tmp_path / "table2.html").write_text("<html><body><p>no table here</p></body></html>")
    report = browser_check(tmp_path, screenshot_path=tmp_path / "shot.png")
    assert report["good.html"] == [] and report["bad.html"]
    assert any("image does not resolve" in p for p in report["noimg.html"])
    assert any("raw TeX" in p for p in report["tex.html"])
    assert any("without a table" in p for p in report["table2.html"])
    assert (tmp_path / "shot.png").stat().st_size > 1000  # a real PNG of the Table 2 page


def test_profiles_load_from_yaml_and_refuse_unknown_fields(tmp_path):
    import mealrec.reproduce.profiles as PR

    assert list(PR.PROFILES) == ["smoke", "quick", "full"]
    assert {f.stem for f in PR.PROFILE_DIR.glob("*.yaml")} == set(PR.PROFILES)
    full = get_profile("full")
    assert (full.epochs, full.patience, full.plateau_patience, full.seeds) == (200, 10, 30, (2020,))
    assert full.lambdas == (0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9) and isinstance(full.noise, tuple)
    assert get_profile("full", "microlens-big").seedrec_backbone_seeds == {"cl4srec": (2020,)}
    (tmp_path / "mine.yaml").write_text("epochs: 2\npatience: 1\nseeds: [1]\nlambdas: [0.1]\nsteps: [5]\nnoise: [0.0]\n"
                                        "timing_epochs: 1\ntsne_users: 10\nsynthetic_datasets: [synthetic-tiny]\n"
                                        "real_datasets: []\n")
    mine = PR.load_profile(tmp_path / "mine.yaml")
    assert mine.name == "mine" and mine.seeds == (1,) and mine.thinned == {}
    (tmp_path / "bad.yaml").write_text((tmp_path / "mine.yaml").read_text() + "epoch: 3\n")
    with pytest.raises(MealRecError, match="unknown profile field 'epoch'"):
        PR.load_profile(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text((tmp_path / "mine.yaml").read_text() + "thinned: {synthetic-tiny: {lambda: [1]}}\n")
    with pytest.raises(MealRecError, match="thinned: synthetic-tiny: unknown profile field 'lambda'"):
        PR.load_profile(tmp_path / "bad.yaml")


def test_profile_thinning_applies_per_dataset_and_is_stated_on_the_page():
    from mealrec.reproduce.book import PAGES, _page_markdown

    full = get_profile("full")
    big = get_profile("full", "microlens-big")
    assert big.epochs < full.epochs and len(big.lambdas) < len(full.lambdas)
    assert get_profile("full", "synthetic-small").epochs == full.epochs  # only what is named is thinned
    assert get_profile("full", "synthetic-small").lambdas == (0.01, 0.1, 0.9)
    assert get_profile("full", "synthetic-tiny").lambdas == full.lambdas and full.thinning_note("synthetic-tiny") == ""
    assert "lambdas {0.01, 0.1, 0.9} instead of" in full.thinning_note("synthetic-small")
    # a page names only the thinning its notebook is affected by
    assert "lambdas" in full.thinning_note("synthetic-small", "sensitivity")
    assert "lambdas" not in full.thinning_note("synthetic-small", "overall")
    assert full.thinning_note("microlens-small", "overall") == ""
    assert "epochs 10" in full.thinning_note("microlens-big", "overall") and "lambdas" not in full.thinning_note("microlens-big", "overall")
    assert "epochs" not in full.thinning_note("microlens-big", "complexity")
    from mealrec.reproduce.profiles import NOTEBOOK_FIELDS
    from mealrec.reproduce.runner import NOTEBOOKS as ALL_NOTEBOOKS
    assert set(NOTEBOOK_FIELDS) == set(ALL_NOTEBOOKS)
    note = full.thinning_note("microlens-big")
    assert f"epochs {big.epochs} instead of {full.epochs}" in note
    overall = next(p for p in PAGES if p.notebook == "overall")
    page = _page_markdown(overall, "full", ["microlens-big", "synthetic-tiny"])
    assert page.count("is thinned") == 1 and full.thinning_note("microlens-big", "overall") in page
    with pytest.raises(MealRecError, match="valid: smoke, quick, full"):
        get_profile("ful", "microlens-big")
    # SEEDS as the notebooks receive it: None, a list, one int, or text (papermill -p passes lists as text)
    from mealrec.reproduce import parse_seeds
    assert parse_seeds(None, (2020,)) == [2020] and parse_seeds([], (2020,)) == [2020]
    assert parse_seeds([2021, 2022], (2020,)) == [2021, 2022] and parse_seeds(7, (2020,)) == [7]
    assert parse_seeds("[2020, 2021, 2022]", (1,)) == [2020, 2021, 2022]
    for bad in ("2020,2021", ["2020"], [True], 1.5):
        with pytest.raises(MealRecError, match=r"SEEDS.*-y \"SEEDS: \[2020"):
            parse_seeds(bad, (2020,))
    from mealrec.reproduce import parse_models
    assert parse_models(None) is None and parse_models("") is None and parse_models([]) is None
    assert parse_models('["sasrec", "tedrec"]') == parse_models("sasrec, tedrec") == parse_models(["sasrec", "tedrec"]) == ["sasrec", "tedrec"]
    with pytest.raises(MealRecError, match="unknown model 'sasrek'; valid names: .*sasrec"):
        parse_models("sasrek")
    with pytest.raises(MealRecError, match="MODELS"):
        parse_models('["sasrec"')
    # synthetic-medium is out of the full profile's defaults but keeps its thinning when named
    from mealrec.reproduce.runner import default_datasets
    assert default_datasets("full", "some/data") == ["synthetic-small", "control-content", "control-temporal",
                                                     "control-selection", "microlens-small", "microlens-big"]
    assert get_profile("full", "synthetic-medium").lambdas == (0.01, 0.1, 0.9)
    # Figure 6's backbones are thinned away on microlens-big only: its runs and its page follow
    from mealrec.reproduce.plan import notebook_requests
    assert {r.model for r in notebook_requests("ablation", "microlens-big", "full")} == {"tedrec", "mealrec-tedrec"}
    assert len(notebook_requests("ablation", "synthetic-small", "full")) == 15
    ablation_page = next(p for p in PAGES if p.notebook == "ablation")
    page = _page_markdown(ablation_page, "full", ["microlens-big", "synthetic-small"])
    big_part, small_part = page.split("## synthetic-small")
    assert "table-tedrec" in big_part and "table-sasrec" not in big_part and "ablation_backbones {tedrec}" in big_part
    assert "table-sasrec" in small_part and "table-cl4srec" in small_part


def test_plan_counts_shards_and_costs(store, tmp_path):
    """Requests dedupe across notebooks; missing runs get a cost from stored runs of their model;
    shards split the missing runs without overlap; a bad shard names the expected form."""
    prof = get_profile("smoke")
    reqs = P.notebook_requests("sensitivity", "synthetic-tiny", prof)
    assert len(reqs) == 2 * len(prof.lambdas) * len(prof.steps) + 1  # the grids, then the backbone
    assert reqs[-1].model == "tedrec" and not reqs[-1].overrides
    fresh = RunStore(tmp_path / "runs", progress=False, threads=1)
    rows = P.plan(fresh, "smoke", ["synthetic-tiny"], ["ablation", "seedrec"])
    shared = [r for r in rows if set(r["notebooks"]) == {"ablation", "seedrec"}]
    assert {r["model"] for r in shared} == {"sasrec", "cl4srec", "mealrec-sasrec", "mealrec-cl4srec"}
    assert not any(r["stored"] for r in rows) and all(r["est_minutes"] is None for r in rows)
    assert all(r["setting"] != "variant=full" for r in rows)  # the store drops default overrides from names
    P.request("sasrec", "synthetic-tiny", prof).run(fresh)
    rows = P.plan(fresh, "smoke", ["synthetic-tiny"], ["ablation", "seedrec"])
    assert sum(r["stored"] for r in rows) == 1
    assert all((r["minutes_spent"] or 0) > 0 if r["stored"] else r["minutes_spent"] is None for r in rows)
    assert "core-hours of training and evaluation as each recorded it" in P.coverage_markdown(rows, "smoke", ["ablation"], ["synthetic-tiny"])
    assert all(r["est_minutes"] is not None for r in rows if r["model"] == "sasrec" and not r["stored"])
    noise = P.plan(fresh, "smoke", ["synthetic-tiny"], ["noise"])  # two runs (sigma 0 and 0.5)
    second = P.train_missing(fresh, noise, shard=(2, 2), progress=False)
    assert [r["path"] for r in second] == [noise[1]["path"]] and Path(noise[1]["path"]).exists()
    assert not Path(noise[0]["path"]).exists()
    first = P.train_missing(fresh, P.plan(fresh, "smoke", ["synthetic-tiny"], ["noise"]), shard=(1, 2), progress=False)
    assert [r["path"] for r in first] == [noise[0]["path"]]
    assert all(r["stored"] for r in P.plan(fresh, "smoke", ["synthetic-tiny"], ["noise"]))
    assert P.parse_shard("2/3") == (2, 3) and P.parse_shard(None) == (1, 1)
    for bad in ("3/2", "0/2", "half"):
        with pytest.raises(MealRecError, match="--shard"):
            P.parse_shard(bad)
    with pytest.raises(MealRecError, match="unknown notebook"):
        P.notebook_requests("tables", "synthetic-tiny", prof)


def test_training_record_names_plateaus_and_the_cap():
    def run(best, ran, cap=200):
        return {"best_epoch": best, "timing": {"epochs_run": ran}, "config": {"train": {"epochs": cap}}}

    assert R.training_record([run(2, 12)], 10)[0] == "plateau"
    assert R.training_record([run(197, 200)], 10)[0] == "cap"
    assert R.training_record([run(40, 50)], 10)[0] == "converged"
    assert R.schedule_caveat({"a": [run(40, 50)]}, 10) == ""
    text = R.schedule_caveat({"cl4srec": [run(2, 12)], "full": [run(40, 50)]}, 10)
    assert "cl4srec stopped on an early plateau (best epoch 2, stopped after 12)" in text and "full" not in text


def test_ranking_diagnostics_flag_only_ranks_outside_statistical_ties():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    base = rng.random(400)
    per_user = {"tedrec": base, "sasrec": base + rng.normal(0, 0.05, 400), "ssdrec": base + rng.normal(0, 0.05, 400),
                "mealrec-tedrec": base - 0.002 + rng.normal(0, 0.05, 400), "mmgcn": base + 0.5 + rng.normal(0, 0.01, 400)}
    runs = {m: [{"per_user_test": {"ndcg@10": a}, "best_epoch": 40, "timing": {"epochs_run": 50},
                 "config": {"train": {"epochs": 200}}}] for m, a in per_user.items()}
    table = pd.DataFrame({("ndcg@10", "ours"): {m: float(a.mean()) for m, a in per_user.items()}})
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    diag = R.ranking_diagnostics(table, runs, get_profile("full"))
    # MMGCN (the paper's last row) lands first, clear of every other row: flagged
    assert diag.loc["mmgcn", "rank here"] == 1 and diag.loc["mmgcn", "tied ranks"] == "1"
    assert diag.loc["mmgcn", "far from expected"]
    # MealRec (the paper's first) ranks below rows it is statistically tied with: its span
    # reaches its expected rank's neighbourhood, so it is not flagged on the rank alone
    assert diag.loc["mealrec-tedrec", "tied ranks"].startswith("2-")
    assert not diag.loc["mealrec-tedrec", "far from expected"]


def test_quick_profile_samples_microlens_users_and_the_store_follows(tmp_path, monkeypatch):
    from dataclasses import replace

    import mealrec.reproduce.profiles as PR

    quick = get_profile("quick")
    assert get_profile("quick", "microlens-small").max_users == PR.QUICK_USERS == get_profile("quick", "microlens-big").max_users
    assert get_profile("quick", "synthetic-small").max_users is None and get_profile("full", "microlens-big").max_users is None
    assert f"a sample of {PR.QUICK_USERS} users instead of all of them" in quick.thinning_note("microlens-small")
    # a store opened with a profile cuts the datasets that profile samples, in process and in a subprocess
    monkeypatch.setitem(PR.PROFILES, "smoke", replace(PR.PROFILES["smoke"], thinned={"synthetic-tiny": {"max_users": 60}}))
    cut = RunStore(tmp_path, progress=False, threads=1, profile="smoke")
    assert cut.dataset("synthetic-tiny").stats()["users"] == 60
    assert RunStore(tmp_path, progress=False, profile=None).dataset("synthetic-tiny").stats()["users"] == 200
    r = cut.run("sasrec", "synthetic-tiny", seed=1, epochs=1, isolate=True)
    assert r["dataset"]["stats"]["users"] == 60 and r["per_user_test"]["ndcg@10"].shape == (60,)
    table = R.dataset_table(cut, ["synthetic-tiny"])
    assert table.loc["synthetic-tiny", "users are"].startswith("a sample: 60 of 200 users")


def test_pages_name_the_datasets_they_do_not_show_yet(tmp_path):
    """A page lists, from the coverage file, the datasets whose runs are not all stored, with the counts."""
    from mealrec.reproduce.runner import write_book_pages

    gen = tmp_path / "book/generated/smoke"
    (gen / "overall").mkdir(parents=True)
    (gen / "overall/synthetic-tiny.ipynb").write_text("{}")
    rows = [{"notebooks": ["overall"], "dataset": d, "stored": s, "est_minutes": m}
            for d, s, m in [("synthetic-tiny", True, None), ("synthetic-small", True, None),
                            ("synthetic-small", False, 90.0), ("synthetic-small", False, None)]]
    P.write_coverage(rows, "smoke", ["overall"], ["synthetic-tiny", "synthetic-small"], tmp_path)
    write_book_pages("smoke", root=tmp_path)
    page = (gen / "table2.md").read_text()
    assert "**Not shown yet:** synthetic-small (1 of 3 runs stored, ~1.5 h of training missing)" in page
    assert "## synthetic-tiny" in page and "## synthetic-small" not in page and "{doc}`coverage`" in page
    (gen / "overall/synthetic-small.ipynb").write_text("{}")  # rendered: no longer pending
    write_book_pages("smoke", root=tmp_path)
    assert "Not shown yet" not in (gen / "table2.md").read_text()
    (gen / "coverage.json").write_text("[1, 2]")
    with pytest.raises(MealRecError, match="coverage.json is not a coverage file"):
        write_book_pages("smoke", root=tmp_path)


def test_a_run_that_stops_on_an_early_plateau_is_retried_with_the_longer_patience(tmp_path, monkeypatch):
    """The full profile retrains a plateau-stopped run with patience 30; the plan counts the retry,
    the request returns it, and the pages say which rows got it."""
    from mealrec.reproduce.profiles import stopped_on_plateau

    def result(best, ran, patience=10, cap=200):
        return {"best_epoch": best, "timing": {"epochs_run": ran}, "config": {"train": {"epochs": cap, "patience": patience}}}

    assert stopped_on_plateau(result(2, 12)) and not stopped_on_plateau(result(40, 50))
    assert not stopped_on_plateau(result(3, 3, cap=3))  # a 3-epoch timing run did not stop early
    full = get_profile("full")
    req = P.request("cl4srec", "synthetic-tiny", full)
    assert req.plateau_patience == 30 and req.retry(result(40, 50)) is None
    retry = req.retry(result(2, 12))
    assert retry.patience == 30 and retry.plateau_patience is None and retry.retry(result(2, 32, 30)) is None
    assert P.request("cl4srec", "synthetic-tiny", get_profile("smoke")).retry(result(1, 2, 1)) is None  # smoke: never
    # RunRequest.run hands back the retry when the first run stalled
    asked = []

    class FakeStore:
        def path(self, *a, **kw):
            return Path(__file__)  # "stored": nothing to claim

        def run(self, model, dataset, **kw):
            asked.append(kw["patience"])
            return result(2, 12) if kw["patience"] == 10 else result(90, 120, 30)

    assert req.run(FakeStore())["best_epoch"] == 90 and asked == [10, 30]
    # The plan lists the retry once the stalled run is stored, named by its patience
    store = RunStore(tmp_path / "runs", progress=False, threads=1)
    tiny = full.for_dataset("synthetic-tiny")
    monkeypatch.setattr(P, "notebook_requests", lambda nb, d, prof: [P.request("sasrec", d, tiny)])
    first = P.request("sasrec", "synthetic-tiny", tiny).path(store)
    first.parent.mkdir(parents=True)
    first.write_text(json.dumps(result(2, 12)))
    rows = P.plan(store, "full", ["synthetic-tiny"], ["overall"])
    assert [r["stored"] for r in rows] == [True, False] and rows[1]["setting"] == "patience=30"
    # Pages: the protocol line states the rule; the verdict names the retried row
    from mealrec.reproduce.book import _profile_line
    assert "30 for a run that stopped on an early plateau at patience 10" in _profile_line("full", "overall")
    # each page's line states the settings its own runs follow
    assert _profile_line("full", "overall").endswith("seed 2020")
    assert _profile_line("full", "complexity") == "timing runs of 3 epochs per model, seed 2020"
    assert _profile_line("full", "seedrec").endswith("seeds 2020, 2021, 2022")
    assert "nothing is trained" in _profile_line("full", "datasets")
    text = R.schedule_caveat({"cl4srec": [result(104, 134, 30)], "full": [result(40, 50)]}, 10)
    assert "cl4srec was trained with patience 30 instead of 10" in text and "Caveat" not in text
    assert "patience 30 after an early plateau at 10" in R.training_record([result(104, 134, 30)], 10)[1]


def test_a_backbone_patience_applies_to_the_whole_family_and_is_stated(monkeypatch):
    """synthetic-small gives every CL4SRec-backbone run patience 30 (the backbone, both plug-ins
    and their ablations), no other run; pages say so, apart from a plateau retry."""
    from mealrec.reproduce.profiles import backbone_of

    assert [backbone_of(m) for m in ("cl4srec", "mealrec-cl4srec", "seedrec-sasrec", "tedrec", "mmgcn")] == [
        "cl4srec", "cl4srec", "sasrec", "tedrec", "mmgcn"]
    small = get_profile("full", "synthetic-small")
    assert [small.patience_for(m) for m in ("cl4srec", "mealrec-cl4srec", "seedrec-cl4srec", "sasrec", "mealrec-tedrec")] == [
        30, 30, 30, 10, 10]
    assert get_profile("full", "microlens-small").patience_for("mealrec-cl4srec") == 10
    reqs = P.ablation_requests("synthetic-small", small, backbone="cl4srec")
    assert {r.patience for r in reqs.values()} == {30}
    assert {r.patience for r in P.ablation_requests("synthetic-small", small, backbone="sasrec").values()} == {10}
    note = get_profile("full").thinning_note("synthetic-small", "ablation")
    assert "every run on the cl4srec backbone" in note and "patience 30 instead of 10" in note and "thinned" not in note

    def result(model, best, ran, patience):
        return {"best_epoch": best, "timing": {"epochs_run": ran},
                "config": {"model": model, "train": {"epochs": 200, "patience": patience}}}

    text = R.schedule_caveat({"cl4srec": [result("cl4srec", 104, 134, 30)], "full": [result("mealrec-cl4srec", 61, 91, 30)],
                              "sasrec": [result("sasrec", 40, 50, 10)]}, small)
    assert "cl4srec, full were trained with patience 30 instead of 10" in text and "the other rows had patience 10" in text
    assert "early plateau" not in text  # requested, not retried
    # Table 2's diagnostics name the row's patience where it differs from the profile's
    import numpy as np
    import pandas as pd
    runs = {m: [dict(result(m, 40, 50, p), per_user={"ndcg@10": np.full(4, v)})]
            for m, p, v in (("cl4srec", 30, .2), ("sasrec", 10, .1))}
    table = pd.DataFrame({("ndcg@10", "ours"): [.2, .1]}, index=["cl4srec", "sasrec"])
    monkeypatch.setattr(R, "_seed_mean", lambda rs, metric: rs[0]["per_user"][metric])
    diag = R.ranking_diagnostics(table, runs, small)
    assert diag.loc["cl4srec", "training record"].endswith("patience 30 for its backbone here (other rows: 10)")
    assert "patience" not in diag.loc["sasrec", "training record"]
    # a family row retried beyond its requested patience is still named as a retry
    text = R.schedule_caveat({"cl4srec": [result("cl4srec", 104, 134, 60)]}, small)
    assert "trained with patience 60 instead of 30" in text and "early plateau" in text


def test_improvement_frame_prints_small_p_values_and_the_verdict_counts_significant_losses(store):
    frame = R.improvement_frame({"ndcg@10": {"best_baseline": "sasrec", "rel_imp_pct": -4.2, "p": 4.9e-7,
                                             "significant": False, "significantly worse": True,
                                             "paper_rel_imp_pct": 6.9}})
    assert frame.loc["ndcg@10", "p"] == "4.9e-07" and frame.loc["ndcg@10", "rel_imp_pct"] == "-4.20"
    res = R.overall(store, "synthetic-tiny", get_profile("smoke"), models=["sasrec", "mealrec-sasrec"], ours="mealrec-sasrec")
    worse = sum(v["significantly worse"] for v in res["improvement"].values())
    assert (f"significantly worse on {worse}" in res["verdict"]) == (worse > 0)
    assert not any(v["significant"] and v["significantly worse"] for v in res["improvement"].values())


def _fake_timing(root, dataset, model, sec, epochs):
    """A stored result holding only what the cost model reads: seconds per epoch and epochs run."""
    f = root / dataset / model / "seed1-0.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"timing": {"train_time_per_epoch_s": sec, "eval_time_per_epoch_s": 0.0,
                                        "epochs_run": epochs}, "config": {"train": {"epochs": 200}}}))


def test_plan_estimates_a_plug_in_from_its_backbone_there(tmp_path):
    """MealRec on a dataset where only its backbone ran: the backbone's cost there times the
    plug-in's time ratio where both ran (not a size scaling from another dataset)."""
    root = tmp_path / "runs"

    _fake_timing(root, "synthetic-tiny", "sasrec", 1.0, 30)
    _fake_timing(root, "synthetic-tiny", "mealrec-sasrec", 3.0, 30)
    _fake_timing(root, "synthetic-small", "sasrec", 10.0, 60)
    store = RunStore(root, progress=False, threads=1)
    rows = P.plan(store, "smoke", ["synthetic-small"], ["ablation"])
    row = next(r for r in rows if r["model"] == "mealrec-sasrec" and not r["setting"])
    assert row["cost_basis"] == "sasrec there x its time ratio on synthetic-tiny"
    assert row["est_minutes"] == pytest.approx(min(60, get_profile("smoke").epochs) * 30.0 / 60)


def test_plan_estimates_a_plug_in_from_its_backbones_estimate_where_neither_ran(tmp_path, monkeypatch):
    """Neither MealRec nor its backbone ran on the dataset: the backbone's scaled estimate
    there times the plug-in's time ratio, rather than the plug-in's own scaling from a far
    smaller dataset."""
    root = tmp_path / "runs"

    _fake_timing(root, "synthetic-tiny", "sasrec", 1.0, 30)
    _fake_timing(root, "synthetic-tiny", "mealrec-sasrec", 3.0, 30)
    _fake_timing(root, "synthetic-small", "sasrec", 10.0, 60)
    sizes = {"synthetic-tiny": 1.0, "synthetic-small": 100.0, "synthetic-medium": 200.0}
    monkeypatch.setattr(P, "_size", lambda store, d: sizes[d])
    monkeypatch.setattr(P, "notebook_requests", lambda nb, d, prof: [P.request("mealrec-sasrec", d, prof)])
    store = RunStore(root, progress=False, threads=1)
    row = P.plan(store, "smoke", ["synthetic-medium"], ["ablation"])[0]
    assert row["cost_basis"] == "sasrec scaled from synthetic-small x its time ratio on synthetic-tiny"
    assert row["est_minutes"] == pytest.approx(min(60, get_profile("smoke").epochs) * 10.0 * 2 * 3.0 / 60)


class _ScriptedStore:
    """A run store that hands back fixed results: (model, variant) -> (test N@10, train s/epoch)."""

    def __init__(self, script):
        self.script = script

    def path(self, *a, **kw):
        return Path(__file__)  # "stored": nothing to claim

    def run(self, model, dataset, **kw):
        import numpy as np

        n10, sec = self.script[(model, kw["overrides"].get("variant", "full"))]
        per_user = n10 + np.random.default_rng(len(model) + int(1000 * n10)).normal(0, 0.01, 200)
        return {"test": {k: n10 for k in ("hr@10", "ndcg@10", "hr@20", "ndcg@20")}, "per_user_test": {"ndcg@10": per_user},
                "best_epoch": 40, "timing": {"epochs_run": 50, "train_time_per_epoch_s": sec, "eval_time_per_epoch_s": sec / 2,
                                             "peak_memory_mb": 1000.0 * sec},
                "config": {"train": {"epochs": 200, "patience": 10}}, "n_parameters": 1,
                "environment": {"device": "cpu", "threads": 1}}


def test_ablation_and_complexity_verdicts_follow_their_stated_rules():
    prof = get_profile("full", "synthetic-small")
    order = {"tedrec": 0.20, "full": 0.25, "-TCD": 0.23, "-NPD": 0.24, "-TCD-NPD": 0.21}
    script = {("tedrec", "full"): (order["tedrec"], 1.0), **{("mealrec-tedrec", v): (order[v], 1.0) for v in VARIANTS_}}
    text = R.ablation(_ScriptedStore(script), "synthetic-small", prof)["verdict"]
    assert text.startswith("reproduces:") and "(1) Full model at or above every ablated variant: yes" in text
    assert "(3) -TCD-NPD the lowest variant: yes" in text and "one seed" in text
    script[("mealrec-tedrec", "full")] = (0.22, 1.0)  # below -TCD and -NPD, above the backbone
    text = R.ablation(_ScriptedStore(script), "synthetic-small", prof)["verdict"]
    assert text.startswith("partly reproduces:") and "(1) Full model at or above every ablated variant: no" in text
    script[("mealrec-tedrec", "full")] = (0.19, 1.0)  # below everything
    assert R.ablation(_ScriptedStore(script), "synthetic-small", prof)["verdict"].startswith("does not reproduce:")
    # Table 3: MealRec within 1.5x / 1.6x / 1.25x of its backbone reproduces; IISAN-Versa's claim is flagged untested
    timing = {("tedrec", "full"): (0.0, 10.0), ("mealrec-tedrec", "full"): (0.0, 12.0), ("iisan-versa", "full"): (0.0, 11.0)}
    res = R.complexity(_ScriptedStore(timing), "microlens-small", prof)
    assert res["targets_met"] == {"train s/epoch": True, "eval s/epoch": True, "peak memory MB": True}
    assert res["verdict"].startswith("reproduces:") and "is not tested here" in res["verdict"]
    assert "0.92x, 0.92x, 0.92x of mealrec-tedrec's" in res["verdict"] and "(the paper: 96.5x" in res["verdict"]
    timing[("mealrec-tedrec", "full")] = (0.0, 20.0)  # 2x on every measure
    assert R.complexity(_ScriptedStore(timing), "microlens-small", prof)["verdict"].startswith("does not reproduce:")


class _FixedRun:
    """A run request whose result is fixed: test metrics and validation N@10."""

    def __init__(self, test, valid=0.0):
        self.result = {"test": {"hr@10": test, "ndcg@10": test}, "valid": {"ndcg@10": valid}}

    def run(self, store):
        return self.result


class _PlaceholderStore:
    def dataset(self, name):
        return type("D", (), {"metadata": {"visual_features": "placeholder (seeded Gaussian)"}})()


def test_noise_and_sensitivity_verdicts_follow_their_stated_rules(monkeypatch):
    prof = get_profile("full", "synthetic-small")
    levels = {0.0: .20, 0.1: .199, 0.3: .195, 0.5: .21}  # falls of at most 2.5%: slight
    monkeypatch.setattr(R, "noise_requests", lambda d, p, s, m: {("mealrec-tedrec", k): _FixedRun(v) for k, v in levels.items()})
    text = R.noise_robustness(_PlaceholderStore(), "microlens-small", prof)["verdict"]
    assert text.startswith("not tested here:") and "largest fall below sigma=0 is 2.5% on H@10" in text
    assert "only test that nothing breaks" in text and "(Rule: 'reproduces' = no noisy level lowers" in text
    real = _PlaceholderStore()
    real.dataset = lambda name: type("D", (), {"metadata": {"visual_features": "extracted (VideoMAE)"}})()
    assert R.noise_robustness(real, "microlens-small", prof)["verdict"].startswith("reproduces:")
    levels[0.3] = .18  # a 10% fall
    assert R.noise_robustness(real, "microlens-small", prof)["verdict"].startswith("does not reproduce:")
    # Figure 4: a spread under 10% on both grids reproduces, on one of them partly
    grid = {("lambda_t", 0.1, 5): .20, ("lambda_t", 0.9, 5): .21, ("lambda_n", 0.1, 5): .20, ("lambda_n", 0.9, 5): .25}
    monkeypatch.setattr(R, "sensitivity_requests", lambda d, p, s, m: {k: _FixedRun(v) for k, v in grid.items()})
    monkeypatch.setattr(R, "_tuned_on_validation", lambda *a, **k: {"text": "tuned."})
    small = replace(prof, lambdas=(0.1, 0.9), steps=(5,))
    res = R.sensitivity(None, "synthetic-small", small)
    assert res["verdict"].startswith("partly reproduces: relative spread") and "NPD (lambda_N) 20.0%" in res["verdict"]
    grid[("lambda_n", 0.9, 5)] = .205
    assert R.sensitivity(None, "synthetic-small", small)["verdict"].startswith("reproduces:")


def test_alignment_verdict_labels_the_two_readings():
    import numpy as np

    rng = np.random.default_rng(0)
    target = rng.normal(size=(300, 8))
    far, near = rng.normal(size=(300, 8)), target + 0.3 * rng.normal(size=(300, 8))
    frames = rng.normal(size=(300, 5, 8))
    mealrec = {"user": near, "target_item": target, "frames_before": frames,
               "frames_after": 0.5 * frames + near[:, None, :]}  # TCD pulls frames towards the user
    text = R.alignment_verdict({"tedrec": {"user": far, "target_item": target}, "mealrec-tedrec": mealrec})
    assert text.startswith("reproduces: User-target cosine") and "TCD moves frames towards" in text
    mealrec["frames_after"] = frames  # no pull: only the first reading holds
    text = R.alignment_verdict({"tedrec": {"user": far, "target_item": target}, "mealrec-tedrec": mealrec})
    assert text.startswith("partly reproduces:")
    text = R.alignment_verdict({"tedrec": {"user": near, "target_item": target}, "mealrec-tedrec": {**mealrec, "user": far}})
    assert text.startswith("does not reproduce:")


def test_processes_share_missing_runs_through_claims(tmp_path):
    """A run claimed by another live process is left to it by --runs-only; a request that needs
    it waits for it; a claim dies with its holder, so nothing stale blocks the next process."""
    import subprocess
    import sys
    import time

    store = RunStore(tmp_path / "runs", progress=False, threads=1)
    prof = get_profile("smoke")
    rows = P.plan(store, "smoke", ["synthetic-tiny"], ["noise"])  # two missing runs
    target = Path(rows[0]["path"])
    target.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(60)"), str(target.with_suffix(".claim"))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = P.train_missing(store, rows, progress=False)
        assert done[0].get("claimed_elsewhere") and not target.exists()  # left to its holder
        assert Path(rows[1]["path"]).exists()  # the other run was trained here
    finally:
        holder.kill()
        holder.wait()
    # a request that needs a claimed run waits for the holder; the holder dies without storing
    # it, so its claim frees up (nothing stale), the run is trained, and no claim file stays
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(3)"), str(target.with_suffix(".claim"))], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.time()
    res = P.request(rows[0]["model"], "synthetic-tiny", prof, visual_noise=rows[0]["request"].visual_noise).run(store)
    holder.wait()
    assert time.time() - t0 >= 2.0 and target.exists() and res["test"] and not list(target.parent.glob("*.claim"))


def test_the_seedrec_page_has_its_own_seeds_and_states_their_thinning():
    """The page is designed for 3 seeds: the full profile says so, and each dataset that cuts
    them, or gives a backbone fewer, or leaves one off, says so; the runs follow."""
    full = get_profile("full")
    assert full.seeds_for("seedrec") == (2020, 2021, 2022) and full.seeds_for("overall") == (2020,)
    assert full.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022), "cl4srec": (2020, 2021, 2022)}
    big = get_profile("full", "microlens-big")
    assert big.seeds_for("seedrec") == (2020, 2021, 2022)
    assert big.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022), "cl4srec": (2020,)}
    assert "seeds {2020} on the SeeDRec page's cl4srec rows" in full.thinning_note("microlens-big", "seedrec")
    assert "SeeDRec" not in full.thinning_note("microlens-big", "overall")
    med = get_profile("full", "synthetic-medium")
    assert med.seeds_for("seedrec") == (2020,)
    assert "seedrec_seeds {2020} instead of {2020, 2021, 2022}" in full.thinning_note("synthetic-medium", "seedrec")
    small = get_profile("full", "microlens-small")
    assert small.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022)}
    assert "the SeeDRec page leaves the cl4srec backbone off" in full.thinning_note("microlens-small", "seedrec")
    syn = get_profile("full", "synthetic-small")
    assert syn.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022), "cl4srec": (2020,)}
    assert "seeds {2020} on the SeeDRec page's cl4srec rows" in full.thinning_note("synthetic-small", "seedrec")
    assert syn.seedrec_seeds_by_backbone([7]) == {"sasrec": (7,), "cl4srec": (7,)}  # a notebook's SEEDS
    reqs = P.notebook_requests("seedrec", "synthetic-small", "full")
    assert {(r.model, r.seed) for r in reqs if r.model.endswith("cl4srec")} == {(m, 2020) for m in ("cl4srec", "mealrec-cl4srec", "seedrec-cl4srec")}
    assert {r.seed for r in reqs if r.model.endswith("sasrec")} == {2020, 2021, 2022}
    assert not [r for r in P.notebook_requests("seedrec", "microlens-small", "full") if "cl4srec" in r.model]
    assert {r.seed for r in P.notebook_requests("seedrec", "synthetic-tiny", "full")} == {2020, 2021, 2022}
    assert get_profile("quick").seeds_for("seedrec") == (2020,)
    with pytest.raises(MealRecError, match="valid backbones: sasrec, cl4srec"):
        replace(full, seedrec_backbone_seeds={"tedrec": (1,)}).seedrec_seeds_by_backbone()


def test_figure4_picks_the_setting_by_validation_and_compares_it_with_the_backbone(monkeypatch):
    """The tuned setting is the best on validation, not on test; the default's rank counts
    distinct settings once; the backbone comparison is a paired t-test over users."""
    import numpy as np

    def res(key, valid, test, per_user):
        return {"store_key": key, "valid": {"ndcg@10": valid}, "test": {"ndcg@10": test},
                "per_user_test": {"ndcg@10": np.asarray(per_user, dtype=float)}}

    default = res("d", .30, .20, [.2, .2, .2, .2])
    runs = {("lambda_t", 0.1, 10): default, ("lambda_n", 0.1, 10): default,
            ("lambda_t", 0.9, 5): res("a", .35, .25, [.3, .2, .3, .2]),  # best on validation
            ("lambda_n", 0.9, 5): res("b", .20, .40, [.4, .4, .4, .4])}  # best on test only
    backbone = res("bb", .3, .22, [.2, .25, .2, .25])

    class Req:
        def __init__(self, model):
            self.model = model

        def run(self, store):
            return backbone if self.model == "tedrec" else default

    monkeypatch.setattr(R, "request", lambda model, *a, **k: Req(model))
    tuned = R._tuned_on_validation(None, "synthetic-tiny", get_profile("full"), 2020, "mealrec-tedrec", runs, "ndcg@10")
    assert (tuned["which"], tuned["lambda"], tuned["steps"], tuned["test"]) == ("lambda_t", 0.9, 5, .25)
    assert tuned["backbone"] == "tedrec" and tuned["backbone_test"] == .22
    assert "(3rd of the 3 distinct settings)" in tuned["text"] and "lambda_T 0.9, T 5" in tuned["text"]
    assert f"{100 * (.25 / .22 - 1):+.1f}% against tedrec" in tuned["text"]
    assert P.notebook_requests("sensitivity", "synthetic-tiny", "full")[-1].model == "tedrec"


class _SeededStore(_ScriptedStore):
    """As _ScriptedStore, with SeeDRec's test N@10 moved by seed: +0%, +10%, +20% for seeds 1, 2, 3."""

    def run(self, model, dataset, **kw):
        res = super().run(model, dataset, **kw)
        if model.startswith("seedrec-"):
            f = 1 + 0.1 * (kw["seed"] - 1)
            res["test"] = {k: v * f for k, v in res["test"].items()}
        return res


def test_the_seedrec_page_shows_the_spread_over_seeds():
    prof = get_profile("full", "synthetic-small")
    script = {("sasrec", "full"): (0.20, 1.0), ("mealrec-sasrec", "full"): (0.22, 1.0),
              **{("seedrec-sasrec", v): (0.20, 1.0) for v in ("full", "-S2IDM", "-IPE")}}
    res = R.seedrec_vs_mealrec(_SeededStore(script), "synthetic-small", prof, backbones=["sasrec"], seeds=[1, 2, 3])
    assert "(3 seeds)" in res["verdict"] and "per seed +0.0%, +10.0%, +20.0%" in res["verdict"]
    assert res["verdict"].startswith("does not reproduce (the SeeDRec paper's claim")  # per user, .20 against .20
    assert "HR@10 (means over seeds): SeeDRec +10.0% and MealRec +10.0% against sasrec" in res["verdict"]
    assert res["table"].loc[("sasrec", "seedrec-sasrec"), "ndcg@10 sd over seeds"] == pytest.approx(0.02)
    assert res["table"].loc[("sasrec", "sasrec"), "ndcg@10 sd over seeds"] == pytest.approx(0.0, abs=1e-12)
    one = R.seedrec_vs_mealrec(_SeededStore(script), "synthetic-small", prof, backbones=["sasrec"], seeds=[1])
    assert "per seed" not in one["verdict"] and "ndcg@10 sd over seeds" not in one["table"]


def test_the_seedrec_page_takes_seeds_per_backbone():
    """A mapping backbone -> seeds: each backbone's rows average over its own seeds, and the
    verdict says how many each had; a backbone outside the page's list is refused."""
    prof = get_profile("full", "synthetic-small")
    script = {(f"{p}{b}", v): (0.20, 1.0) for b in ("sasrec", "cl4srec") for p in ("", "mealrec-")
              for v in ("full",)}
    script.update({(f"seedrec-{b}", v): (0.20, 1.0) for b in ("sasrec", "cl4srec") for v in ("full", "-S2IDM", "-IPE")})
    res = R.seedrec_vs_mealrec(_SeededStore(script), "synthetic-small", prof, seeds={"sasrec": [1, 2, 3], "cl4srec": [3]})
    t = res["table"]
    assert t.loc[("sasrec", "seedrec-sasrec"), "seeds"] == 3 and t.loc[("cl4srec", "seedrec-cl4srec"), "seeds"] == 1
    assert t.loc[("sasrec", "seedrec-sasrec"), "ndcg@10"] == pytest.approx(0.22)  # mean of .20, .22, .24
    assert t.loc[("cl4srec", "seedrec-cl4srec"), "ndcg@10"] == pytest.approx(0.24)  # seed 3 only
    assert "on sasrec (3 seeds)" in res["verdict"] and "on cl4srec (1 seed)" in res["verdict"]
    script[("seedrec-sasrec", "full")] = (0.30, 1.0)  # far above SASRec per user; CL4SRec's rows unchanged
    res = R.seedrec_vs_mealrec(_SeededStore(script), "synthetic-small", prof, seeds={"sasrec": [1, 2, 3], "cl4srec": [3]})
    assert res["verdict"].startswith("partly reproduces (the SeeDRec paper's claim")
    with pytest.raises(MealRecError, match="backbones must be among sasrec, cl4srec"):
        R.seedrec_vs_mealrec(_SeededStore(script), "synthetic-small", prof, seeds={"tedrec": [1]})


def test_sememe_diffusion_cost_times_both_shapes_and_names_the_load(tmp_path, monkeypatch):
    """S2IDM against an item-level diffusion: one row each, with the dimension each diffuses
    over, the parameter count of the very model timed, a positive time, and the load the
    timing ran under."""
    from mealrec.data.sememes import sememes_for
    from mealrec.models.seedrec import S2IDM, SeeDRecConfig

    monkeypatch.setenv("MEALREC_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs", progress=False, threads=1)
    cost = R.sememe_diffusion_cost(store, "synthetic-tiny", repeats=1)
    ds = store.dataset("synthetic-tiny")
    q = sememes_for(ds).n_sememes
    assert list(cost["dimension"]) == [q, ds.n_items - 1]
    assert list(cost["parameters"]) == [sum(p.numel() for p in S2IDM(d, SeeDRecConfig()).parameters()) for d in (q, ds.n_items - 1)]
    assert (cost["train s/epoch"] > 0).all() and cost["machine load"].str.contains("cores|unknown").all()
    with pytest.raises(MealRecError, match="repeats must be >= 1"):
        R.sememe_diffusion_cost(store, "synthetic-tiny", repeats=0)
