"""The controls page's rules: which runs it asks for, the frame shuffle and the verdicts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mealrec.reproduce import controls as C
from mealrec.reproduce import get_profile
from mealrec.reproduce.artefacts import notebook_requests
from mealrec.reproduce.execution import default_datasets


def test_the_controls_page_runs_on_the_controls_only_and_they_on_nothing_else():
    assert C.is_control("control-temporal") and not C.is_control("synthetic-small")
    assert C.control_kind("control-selection") == "selection"
    prof = get_profile("full")  # unthinned: the page is designed for three seeds
    reqs = notebook_requests("controls", "control-content", prof)
    assert len(reqs) == len(C.BACKBONES) * len(C.ROWS) * len(prof.control_seeds) == 30
    assert {r.epochs for r in reqs} == {prof.control_epochs} and {r.seed for r in reqs} == {2020, 2021, 2022}
    assert {r.model for r in reqs} == {"sasrec", "tedrec", "mealrec-sasrec", "mealrec-tedrec"}
    assert set(prof.control_datasets) <= set(default_datasets("full", None))
    assert not notebook_requests("controls", "synthetic-small", prof)
    assert not notebook_requests("ablation", "control-content", prof)


def test_shuffling_permutes_each_items_frames_and_nothing_else():
    frames = torch.arange(4 * 5 * 3, dtype=torch.float32).view(4, 5, 3)
    out = C.shuffle_frames(frames)
    assert torch.equal(C.shuffle_frames(frames), out)  # seeded
    assert not torch.equal(out, frames)
    for i in range(4):  # the same frames, each kept whole, in another order
        assert sorted(map(tuple, out[i].tolist())) == sorted(map(tuple, frames[i].tolist()))


def _rows(ndcg: dict, shuffled: dict | None = None, p_npd: float = 0.5) -> pd.DataFrame:
    t = pd.DataFrame({"N@10": ndcg, "N@10 shuffled": shuffled or {k: np.nan for k in ndcg}})
    t["p vs full"] = np.nan
    t.loc["-NPD", "p vs full"] = p_npd
    return t


def test_verdict_rules_turn_on_the_stated_margins():
    rows = {"backbone": 0.05, "full": 0.40, "-TCD": 0.36, "-NPD": 0.50, "-TCD-NPD": 0.55}
    assert C.verdict("content", _rows(rows), "sasrec").startswith("uses the planted signal")
    assert C.verdict("content", _rows({**rows, "-TCD": 0.30}), "sasrec").startswith("does not")
    shuffled = {"backbone": np.nan, "full": 0.10, "-TCD": 0.3, "-NPD": 0.4, "-TCD-NPD": 0.5}
    assert C.verdict("temporal", _rows(rows, shuffled), "tedrec").startswith("uses")
    assert C.verdict("temporal", _rows(rows, {**shuffled, "full": 0.30}), "tedrec").startswith("does not")
    assert C.verdict("selection", _rows({**rows, "full": 0.6}, p_npd=0.001), "sasrec").startswith("uses")
    assert C.verdict("selection", _rows({**rows, "full": 0.6}, p_npd=0.2), "sasrec").startswith("does not")
    assert C.verdict("selection", _rows(rows, p_npd=0.001), "sasrec").startswith("does not")  # -NPD is above


def test_an_unknown_dataset_is_refused_by_name():
    with pytest.raises(Exception, match="nope"):
        C.is_control("nope")


def test_the_summary_shows_each_controls_verdict_and_marks_runs_made_by_older_code(tmp_path):
    import json

    from mealrec.reproduce import summary as S

    gen = tmp_path / "gen"
    (gen / "controls").mkdir(parents=True)
    table = [{"backbone": b, "row": r, "N@10": n} for b in ("sasrec", "tedrec")
             for r, n in (("backbone", 0.03), ("full", 0.57), ("-TCD", 0.58), ("-NPD", 0.5), ("-TCD-NPD", 0.55))]
    side = {"kind": "content", "table": table,
            "verdicts": {"sasrec": "uses the planted signal (MealRec-sasrec): ...", "tedrec": "does not use ..."}}
    (gen / "controls" / "controls-control-content.json").write_text(json.dumps({"provenance": {}, "results": side}))
    rows = S.controls_rows(gen)
    weakest = "N@10 weakest variant -NPD 0.500 vs"
    assert rows == [("control-content", {"sasrec": f"**uses the planted signal**: {weakest} sasrec 0.030",
                                         "tedrec": f"**does not use it**: {weakest} tedrec 0.030"})]
    md = S.controls_markdown(rows, "book/controls.md")
    assert md.splitlines()[0] == "| [Positive controls](book/controls.md) | MealRec-sasrec | MealRec-tedrec |"
    (gen / "overall").mkdir()
    (gen / "overall" / "synthetic-small.runs.json").write_text(json.dumps({"older": ["mealrec-tedrec default"]}))
    assert S.older_code(gen, "overall", "synthetic-small") and not S.older_code(gen, "overall", "microlens-big")
