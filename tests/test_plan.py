"""The plan: the runs behind each page, what they cost, shards and claims between processes."""
from __future__ import annotations

from pathlib import Path

import pytest

from mealrec.reproduce import RunStore, get_profile
from mealrec.reproduce import plan as P
from mealrec.reproduce.artefacts import notebook_requests
from mealrec.reproduce.requests import request
from mealrec.utils import MealRecError

from .helpers import fake_timing


def test_plan_counts_shards_and_costs(store, tmp_path):
    """Requests dedupe across notebooks; missing runs get a cost from stored runs of their model;
    shards split the missing runs without overlap; a bad shard names the expected form."""
    prof = get_profile("smoke")
    reqs = notebook_requests("sensitivity", "synthetic-tiny", prof)
    assert len(reqs) == 2 * len(prof.lambdas) * len(prof.steps) + 1  # the grids, then the backbone
    assert reqs[-1].model == "tedrec" and not reqs[-1].overrides
    fresh = RunStore(tmp_path / "runs", progress=False, threads=1)
    rows = P.plan(fresh, "smoke", ["synthetic-tiny"], ["ablation", "seedrec"])
    shared = [r for r in rows if set(r["notebooks"]) == {"ablation", "seedrec"}]
    assert {r["model"] for r in shared} == {"sasrec", "cl4srec", "mealrec-sasrec", "mealrec-cl4srec"}
    assert not any(r["stored"] for r in rows) and all(r["est_minutes"] is None for r in rows)
    assert all(r["setting"] != "variant=full" for r in rows)  # the store drops default overrides from names
    request("sasrec", "synthetic-tiny", prof).run(fresh)
    rows = P.plan(fresh, "smoke", ["synthetic-tiny"], ["ablation", "seedrec"])
    assert sum(r["stored"] for r in rows) == 1
    assert all((r["minutes_spent"] or 0) > 0 if r["stored"] else r["minutes_spent"] is None for r in rows)
    assert ("core-hours of training and evaluation as each recorded it"
            in P.coverage_markdown(rows, "smoke", ["ablation"], ["synthetic-tiny"]))
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
        notebook_requests("tables", "synthetic-tiny", prof)


def test_plan_estimates_a_plug_in_from_its_backbone_there(tmp_path):
    """MealRec on a dataset where only its backbone ran: the backbone's cost there times the
    plug-in's time ratio where both ran (not a size scaling from another dataset)."""
    root = tmp_path / "runs"

    fake_timing(root, "synthetic-tiny", "sasrec", 1.0, 30)
    fake_timing(root, "synthetic-tiny", "mealrec-sasrec", 3.0, 30)
    fake_timing(root, "synthetic-small", "sasrec", 10.0, 60)
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

    fake_timing(root, "synthetic-tiny", "sasrec", 1.0, 30)
    fake_timing(root, "synthetic-tiny", "mealrec-sasrec", 3.0, 30)
    fake_timing(root, "synthetic-small", "sasrec", 10.0, 60)
    sizes = {"synthetic-tiny": 1.0, "synthetic-small": 100.0, "synthetic-medium": 200.0}
    monkeypatch.setattr(P, "_size", lambda store, d: sizes[d])
    monkeypatch.setattr(P, "notebook_requests", lambda nb, d, prof: [request("mealrec-sasrec", d, prof)])
    store = RunStore(root, progress=False, threads=1)
    row = P.plan(store, "smoke", ["synthetic-medium"], ["ablation"])[0]
    assert row["cost_basis"] == "sasrec scaled from synthetic-small x its time ratio on synthetic-tiny"
    assert row["est_minutes"] == pytest.approx(min(60, get_profile("smoke").epochs) * 10.0 * 2 * 3.0 / 60)


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
        "print('held', flush=True); time.sleep(60)"), str(target.with_suffix(".claim"))],
        stdout=subprocess.PIPE, text=True)
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
        "print('held', flush=True); time.sleep(3)"), str(target.with_suffix(".claim"))],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.time()
    res = request(rows[0]["model"], "synthetic-tiny", prof, visual_noise=rows[0]["request"].visual_noise).run(store)
    holder.wait()
    assert time.time() - t0 >= 2.0 and target.exists() and res["test"] and not list(target.parent.glob("*.claim"))
