"""Figures 3 and 6: the verdict follows its stated rule."""
from __future__ import annotations

from mealrec.reproduce import ablation as A
from mealrec.reproduce import get_profile

from .helpers import ScriptedStore


def test_ablation_verdict_follows_its_stated_rule():
    prof = get_profile("full", "synthetic-small")
    order = {"tedrec": 0.20, "full": 0.25, "-TCD": 0.23, "-NPD": 0.24, "-TCD-NPD": 0.21}
    script = {("tedrec", "full"): (order["tedrec"], 1.0),
              **{("mealrec-tedrec", v): (order[v], 1.0) for v in A.VARIANTS}}
    text = A.ablation(ScriptedStore(script), "synthetic-small", prof).verdict
    assert text.startswith("reproduces:") and "(1) Full model at or above every ablated variant: yes" in text
    assert "(3) -TCD-NPD the lowest variant: yes" in text and "one seed" in text
    script[("mealrec-tedrec", "full")] = (0.22, 1.0)  # below -TCD and -NPD, above the backbone
    text = A.ablation(ScriptedStore(script), "synthetic-small", prof).verdict
    assert text.startswith("partly reproduces:") and "(1) Full model at or above every ablated variant: no" in text
    script[("mealrec-tedrec", "full")] = (0.19, 1.0)  # below everything
    assert A.ablation(ScriptedStore(script), "synthetic-small", prof).verdict.startswith("does not reproduce:")
