"""What every verdict shares: a row's training record and the caveat it puts on a comparison."""
from __future__ import annotations

from mealrec.reproduce import verdicts as V


def test_training_record_names_plateaus_and_the_cap():
    def run(best, ran, cap=200):
        return {"best_epoch": best, "timing": {"epochs_run": ran}, "config": {"train": {"epochs": cap}}}

    assert V.training_record([run(2, 12)], 10)[0] == "plateau"
    assert V.training_record([run(197, 200)], 10)[0] == "cap"
    assert V.training_record([run(40, 50)], 10)[0] == "converged"
    assert V.schedule_caveat({"a": [run(40, 50)]}, 10) == ""
    text = V.schedule_caveat({"cl4srec": [run(2, 12)], "full": [run(40, 50)]}, 10)
    assert "cl4srec stopped on an early plateau (best epoch 2, stopped after 12)" in text and "full" not in text
