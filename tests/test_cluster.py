"""The Ray executor against a real local cluster: a head node and a second worker node on 127.0.0.1
with its own temporary folder and feature cache. A smoke grid on synthetic-tiny goes through it and
every result is compared with the local executor's; one worker is killed while it trains a run."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mealrec.reproduce import plan as P
from mealrec.reproduce.cluster import ATTEMPT_LOG, run_id, train_on_ray
from mealrec.reproduce.store import RunStore
from mealrec.utils import MealRecError

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

#: A smoke grid small enough for 2 cores: two plain runs, and SeeDRec's default and -IPE runs, whose
#: shared S2IDM fit and sememes are one-off inputs that the prepare tasks build once and ship.
GRID = {("sasrec", ""), ("iisan", ""), ("seedrec-sasrec", ""), ("seedrec-sasrec", "variant=-IPE")}


def _rows(store: RunStore) -> list[dict]:
    rows = P.plan(store, "smoke", ["synthetic-tiny"], ["overall", "seedrec"])
    picked = [r for r in rows if (r["model"], r["setting"]) in GRID]
    assert len(picked) == len(GRID)
    return picked


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Head (1 CPU) + worker node (1 CPU, its own TMPDIR and MEALREC_CACHE), shut down whatever happens."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # every node on 127.0.0.1: Ray otherwise advertises the machine's outward address, which a
    # sandboxed CI machine may not route to itself
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    node2 = {"TMPDIR": str(tmp_path / "node2-tmp"), "MEALREC_CACHE": str(tmp_path / "node2-cache")}
    for d in node2.values():
        Path(d).mkdir()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                       "include_dashboard": False})
    try:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1", env_vars=node2)
        c.wait_for_nodes()
        ray.init(address=c.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield c, node2
    finally:
        ray.shutdown()
        c.shutdown()


def _numbers(history: list[dict]) -> list[dict]:
    """The history without wall times and memory peaks (which no two runs share)."""
    return [{k: v for k, v in e.items() if "time" not in k and "memory" not in k} for e in history]


def _kill_first_attempt(killed: dict, stop: threading.Event) -> None:
    """SIGKILL the worker process of the first run attempt that starts (the run is then mid-way)."""
    while not stop.is_set():
        try:
            log = ray.get_actor(ATTEMPT_LOG)
            events = ray.get(log.all.remote())
        except ValueError:  # the actor is not created yet
            events = []
        if events:
            first = events[0]
            os.kill(first["pid"], signal.SIGKILL)
            killed.update(first, killed_at=time.time())
            return
        time.sleep(0.05)


def test_ray_grid_matches_local_and_survives_a_killed_worker(tmp_path, cluster):
    _, node2 = cluster
    local = RunStore(tmp_path / "local", threads=1, progress=False, profile="smoke")
    rows = _rows(local)
    P.train_missing(local, rows, progress=False)

    remote = RunStore(tmp_path / "ray", threads=1, progress=False, profile="smoke")
    rows = _rows(remote)
    killed, stop, events = {}, threading.Event(), []
    killer = threading.Thread(target=_kill_first_attempt, args=(killed, stop), daemon=True)
    killer.start()
    try:
        t0 = time.time()
        report = train_on_ray(remote, rows, "smoke", cpus_per_run=1, retries=2, progress=False, attempts_out=events)
        print(f"ray smoke grid: {len(rows)} runs in {time.time() - t0:.1f} s")
    finally:
        stop.set()
        killer.join()
    assert report["failed"] == {} and len(report["done"]) == len(GRID)
    assert report["cache_built"] == {}, "a worker rebuilt a one-off input that the prepare tasks had shipped"

    # the killed run: attempted at least twice, finished once, stored once
    assert killed, "no attempt was seen starting"
    mine = [e for e in events if e["run"] == killed["run"]]
    assert sum(e["event"] == "started" for e in mine) >= 2
    assert sum(e["event"] == "finished" for e in mine) == 1
    assert not any(e["event"] == "finished" and e["t"] < killed["killed_at"] for e in mine)
    assert [run_id(r) for r in report["done"]].count(killed["run"]) == 1

    # every result as the local executor's: same key, same metrics bit for bit
    nodes = {e.get("node") for e in events if e["event"] == "started"}
    assert len(nodes) == 2, "both nodes should have trained runs"
    for r in rows:
        a = local.read_stored(local.root / Path(r["path"]).relative_to(remote.root))
        b = remote.read_stored(r["path"])
        assert a["store_key"] == b["store_key"]
        for k in ("test", "valid", "best_epoch", "n_parameters"):
            assert a[k] == b[k], (r["model"], k)
        assert _numbers(a["history"]) == _numbers(b["history"]), r["model"]  # losses and metrics per epoch
        for m in a["per_user_test"]:
            np.testing.assert_array_equal(a["per_user_test"][m], b["per_user_test"][m])
        assert Path(r["path"]).with_suffix(".pt").is_file()  # the checkpoint came back too
    # the worker node received the one-off inputs instead of building them, and kept no scratch folder
    assert any(Path(node2["MEALREC_CACHE"]).rglob("*.npy"))
    assert not list(Path(node2["TMPDIR"]).glob("mealrec-task-*"))
    assert not list(remote.root.rglob("*.tmp"))


def test_a_worker_never_writes_the_store(tmp_path, cluster):
    """Inside a task (scratch folder set), a store outside the scratch folder refuses to train."""

    @ray.remote(num_cpus=1)
    def attempt(root):
        from mealrec.reproduce.store import WORKER_SCRATCH_ENV, RunStore

        os.environ[WORKER_SCRATCH_ENV] = str(Path(root).parent / "scratch")
        RunStore(root, threads=1, progress=False).run("sasrec", "synthetic-tiny", seed=1, epochs=1)

    with pytest.raises(ray.exceptions.RayTaskError, match="never writes the run store"):
        ray.get(attempt.remote(str(tmp_path / "store")))
    assert not list(tmp_path.rglob("*.json"))


def test_longest_first_and_wall_time():
    from mealrec.reproduce.cluster import longest_first

    rows = [{"est_minutes": m} for m in (5.0, None, 60.0, 30.0, 30.0)]
    assert [r["est_minutes"] for r in longest_first(rows)] == [None, 60.0, 30.0, 30.0, 5.0]
    hours, unknown = P.wall_hours(rows, 2)
    assert (hours, unknown) == (65.0 / 60, 1)  # 60 | 30+30 -> 60 ; 5 -> slot at 60 -> 65
    with pytest.raises(MealRecError, match="--workers 0"):
        P.wall_hours(rows, 0)
