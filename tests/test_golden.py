"""The golden ledger backs the declared versions that key stored runs (see mealrec/golden.py)."""
from __future__ import annotations

import copy
import json

import pytest

from mealrec import golden as G
from mealrec.utils import MealRecError

ENTRIES = G.read_ledger()


@pytest.mark.parametrize("case", sorted(G._cases()))
def test_trajectory_matches_the_ledger_entry_of_the_current_versions(case):
    diffs = G.check(ENTRIES, case, G.trajectory(case))
    assert not diffs, (f"{case} no longer computes what its versions recorded: bump the version of the class whose "
                       "math changed and record the new entry (mealrec/versions.py).\n" + "\n".join(diffs[:10]))


def test_compare_is_exact_on_the_recording_machine_and_tolerant_elsewhere():
    entry = G.find(ENTRIES, "sasrec")[-1]
    assert G.compare(entry, copy.deepcopy(entry)) == []
    moved = copy.deepcopy(entry)
    moved["train"][0]["train_loss"] *= 1 + G.RTOL / 10  # reordering-sized
    assert G.compare(entry, moved)  # on the same machine, any bit counts
    moved["recorded_on"] = {**moved["recorded_on"], "threads": moved["recorded_on"]["threads"] + 1}
    assert G.compare(entry, moved) == []  # elsewhere it is within the tolerance
    moved["train"][0]["train_loss"] *= 1 + G.RTOL * 10  # a change of the math
    assert any("train_loss" in d for d in G.compare(entry, moved))


def test_record_adds_missing_entries_and_never_edits_one(tmp_path):
    ledger = tmp_path / "ledger.json"
    added = G.record(["sasrec"], path=ledger, log=lambda s: None)
    assert len(added) == 1 and added[0]["versions"] == G.model_versions("sasrec")
    before = ledger.read_text()
    assert G.record(["sasrec"], path=ledger, log=lambda s: None) == [] and ledger.read_text() == before
    assert json.loads(before)["entries"][0]["case"] == "sasrec"
    # a reordering adds an entry only when the trajectory moved, and only within the tolerance
    assert G.record(["sasrec"], path=ledger, reordered=True, log=lambda s: None) == []
    entries = G.read_ledger(ledger)
    entries[0]["train"][0]["train_loss"] *= 1 + G.RTOL * 10
    ledger.write_text(json.dumps({"entries": entries}))
    with pytest.raises(MealRecError, match="bump a version"):
        G.record(["sasrec"], path=ledger, reordered=True, log=lambda s: None)
