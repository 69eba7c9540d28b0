"""Executing the notebooks (papermill) and building the book from them (smoke profile)."""
from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from mealrec.reproduce import RunStore
from mealrec.reproduce import plan as P
from mealrec.reproduce.artefacts import NOTEBOOKS
from mealrec.reproduce.book import build_book
from mealrec.reproduce.browser import browser_check
from mealrec.reproduce.execution import run_notebooks
from mealrec.utils import MealRecError

from .helpers import leaves, mini_tree


def test_runner_skips_unchanged_pairs_and_leaves_nothing_on_failure(tmp_path):
    root = mini_tree(tmp_path)
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
        "from pathlib import Path; Path(FIGURES_DIR).mkdir(parents=True, exist_ok=True); "
        "(Path(FIGURES_DIR) / 'stray.png').write_bytes(b'x')\n"
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


def test_smoke_book_builds_offline(tmp_path):
    """Every notebook on synthetic-tiny (smoke profile), then jupyter-book with -W -n; no CDN in the HTML."""
    root = mini_tree(tmp_path)
    run_notebooks(["synthetic-tiny", "control-content"], profile="smoke", root=root, progress=False, threads=1,
                  train=True)
    assert len(list((root / "figures/smoke").glob("*.png"))) == len(list((root / "figures/smoke").glob("*.pdf"))) >= 6
    metrics = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")
    checked = 0
    for side in (root / "book/generated/smoke").rglob("*.json"):
        for key, value in leaves(json.loads(side.read_text())["results"]):
            if key.split("|")[0] in metrics and key.endswith("sd"):  # an sd over seeds: none with one seed
                assert isinstance(value, float) and (value != value or value >= 0.0), (side.name, key, value)
            elif key.split("|")[0] in metrics and not key.endswith(("paper", "Δ")):
                assert isinstance(value, float) and 0.0 <= value <= 1.0, (side.name, key, value)
                checked += 1
    assert checked >= 40  # Tables 2 and 3, ablations, noise, SeeDRec: metrics in [0, 1] and finite
    sidecars = {side.parent.name: json.loads(side.read_text())["results"]
                for side in (root / "book/generated/smoke").rglob("*.json")}
    assert set(sidecars) == set(NOTEBOOKS)  # every notebook wrote its sidecar
    for grid in ("lambda_t", "lambda_n"):  # Figure 4's grids: test N@10 per lambda x T
        values = [v for _, v in leaves(sidecars["sensitivity"][grid])]
        assert values and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values), (grid, values)
    for k, v in leaves(sidecars["sensitivity"]["tuned_on_validation"]):
        assert k not in ("test", "default_test", "backbone_test") or 0.0 <= v <= 1.0, (k, v)
    # every page's verdict carries its label (the rule it follows is stated beside it)
    verdicts = [v for _, results in sidecars.items() for k, v in leaves(results) if k == "verdict"]
    assert len(verdicts) >= 6 and all(v.startswith(("reproduces", "partly reproduces", "does not reproduce",
                                                     "not tested here")) for v in verdicts), verdicts
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
