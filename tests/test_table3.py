"""Table 3: the verdict follows its stated rule."""
from __future__ import annotations

from mealrec.reproduce import get_profile
from mealrec.reproduce import table3 as T3

from .helpers import ScriptedStore


def test_complexity_verdict_follows_its_stated_rule():
    prof = get_profile("full", "synthetic-small")
    # Table 3: MealRec within 1.5x / 1.6x / 1.25x of its backbone reproduces; IISAN-Versa's claim is flagged untested
    timing = {("tedrec", "full"): (0.0, 10.0), ("mealrec-tedrec", "full"): (0.0, 12.0),
              ("iisan-versa", "full"): (0.0, 11.0)}
    res = T3.complexity(ScriptedStore(timing), "microlens-small", prof)
    assert res.targets_met == {"train s/epoch": True, "eval s/epoch": True, "peak memory MB": True}
    assert res.verdict.startswith("reproduces:") and "is not tested here" in res.verdict
    assert "0.92x, 0.92x, 0.92x of mealrec-tedrec's" in res.verdict and "(the paper: 96.5x" in res.verdict
    timing[("mealrec-tedrec", "full")] = (0.0, 20.0)  # 2x on every measure
    assert T3.complexity(ScriptedStore(timing), "microlens-small", prof).verdict.startswith("does not reproduce:")
