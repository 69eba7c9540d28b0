"""``mealrec reproduce --executor ray``: train the missing runs as Ray tasks, on one machine or a cluster.

The driver (the process running ``mealrec reproduce``) plans the runs as the local executor does
(:func:`.plan.plan`) and submits each missing one as a task asking for ``--cpus-per-run`` CPUs and
``--gpus-per-run`` GPUs, the longest first by the ``--plan`` cost model (runs of unknown cost before
them). Workers need not share the driver's disk:

- **No worker writes the run store.** A task trains into a scratch folder of its own (a store
  elsewhere refuses to train there: ``WORKER_SCRATCH_ENV``) and returns the run's files (JSON,
  per-user ``.npz``, checkpoint, the controls' frame-shuffle diagnostic) as bytes; the driver writes
  them into the store atomically, the JSON last, so a run is stored whole or not at all. The task is
  given the run's request, the profile's name and device settings, never the store's path.
- **Data**: a worker reads the MicroLens files from its own ``$MEALREC_DATA`` (or ``../shared/data``
  beside its checkout), else from the driver's ``--data-dir`` when that path exists there. The
  synthetic datasets and the controls are generated from their seeds. A worker whose data differs
  from the driver's stores the run under another key, which the driver refuses.
- **One-off inputs** (MiniLM title encodings and placeholder frames, IISAN's frozen layer outputs,
  SeeDRec's sememes and fitted S2IDM) live in the feature cache (``mealrec.utils.cache_file``). Before
  any training task, one *prepare* task per dataset builds its features, then one chain of prepare
  tasks per dataset and seed builds the models that declare ``one_off_inputs`` (chained, so the S2IDM
  fit that SeeDRec's variants share is fitted once). Each returns the cache files it used, put once in
  Ray's object store; a training task writes them into its own machine's cache before it trains, so
  no worker builds them again (it reports any cache file it had to build: ``cache_built``).
- **Retries**: a task whose worker dies, or that raises, is retried up to ``retries`` times; a run
  that still fails is reported with its error, the other runs go on, and the command exits non-zero
  naming the failed runs. A retried run restarts from its first epoch (runs do not resume yet).
- **Ctrl-C** cancels the outstanding tasks; every run stored before it stays, nothing is half-written.
- **Same numbers**: a task trains exactly as :meth:`.requests.RunRequest.run` does locally, so a run
  is bit-identical to the local executor's on the same device and thread count (``tests/test_cluster.py``).

Ray is imported only here, and only when ``--executor ray`` is chosen.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..utils import MealRecError, atomic_path
from .store import WORKER_SCRATCH_ENV, RunStore


# --------------------------------------------------------------------------- worker side
def _materialise(*file_sets: dict[str, bytes]) -> None:
    """Write shipped cache files into this machine's feature cache (those already there are kept:
    their names are derived from their inputs)."""
    from ..utils import cache_dir

    for files in file_sets:
        for rel, data in files.items():
            dest = cache_dir() / rel
            if not dest.exists():
                with atomic_path(dest) as tmp:
                    tmp.write_bytes(data)


def _worker_data_dir(driver_data_dir: str | None) -> str | None:
    from .paths import find_data_dir

    found = find_data_dir(None)
    if found is None and driver_data_dir and Path(driver_data_dir).is_dir():
        found = driver_data_dir
    return found


def _used_files(uses: list[tuple[str, bool]]) -> dict[str, bytes]:
    from ..utils import cache_dir

    return {rel: (cache_dir() / rel).read_bytes() for rel, _ in uses if (cache_dir() / rel).is_file()}


def prepare_task(what: tuple, profile: str, data_dir: str | None, *shipped: dict[str, bytes]) -> dict[str, bytes]:
    """Build one dataset's features (``what = ("dataset", name, noise)``) or one run's one-off model
    inputs (``("model", request)``) and return the cache files that used, beyond ``shipped``."""
    from ..utils import tracking_cache

    _materialise(*shipped)
    store = RunStore(Path(tempfile.gettempdir()) / "mealrec-prepare", data_dir=_worker_data_dir(data_dir),
                     progress=False, profile=profile, train=False)
    with tracking_cache() as uses:
        if what[0] == "dataset":
            store.dataset_identity(what[1], what[2])  # builds the text and visual features (lazy otherwise)
        else:
            kw = what[1].kwargs()
            kw.pop("isolate")
            store.prepare(what[1].model, what[1].dataset, **kw)
    known = set().union(*shipped) if shipped else set()
    return {rel: data for rel, data in _used_files(uses).items() if rel not in known}


def train_task(request, profile: str, data_dir: str | None, device: str, threads: int, run_id: str, log,
               *shipped: dict[str, bytes]) -> dict[str, Any]:
    """Train one run into a scratch store and return its files (paths relative to the store root)."""
    import ray

    from ..utils import tracking_cache
    from .controls import is_control, shuffled_test

    node = ray.get_runtime_context().get_node_id()
    ray.get(log.started.remote(run_id, os.getpid(), node))
    t0 = time.time()
    _materialise(*shipped)
    scratch = Path(tempfile.mkdtemp(prefix="mealrec-task-"))
    old = os.environ.get(WORKER_SCRATCH_ENV)
    os.environ[WORKER_SCRATCH_ENV] = str(scratch)
    try:
        store = RunStore(scratch / "runs", data_dir=_worker_data_dir(data_dir), device=device, threads=threads,
                         progress=False, profile=profile, train=True)
        with tracking_cache() as uses:
            res = request.run(store, claimed=True)
            if is_control(request.dataset):
                shuffled_test(store, res)  # the frame-shuffle diagnostic needs the checkpoint, which is here
        files = {p.relative_to(store.root).as_posix(): p.read_bytes()
                 for p in sorted(store.root.rglob("*")) if p.is_file() and p.suffix != ".claim"}
        out = {"files": files, "ndcg@10": res["test"]["ndcg@10"], "node": node, "pid": os.getpid(),
               "seconds": time.time() - t0, "cache_built": sorted(rel for rel, existed in uses if not existed)}
    finally:
        if old is None:
            os.environ.pop(WORKER_SCRATCH_ENV, None)
        else:
            os.environ[WORKER_SCRATCH_ENV] = old
        shutil.rmtree(scratch, ignore_errors=True)
    ray.get(log.finished.remote(run_id))
    return out


#: The attempt log's actor name, for a driver-side observer (``ray.get_actor(ATTEMPT_LOG)``).
ATTEMPT_LOG = "mealrec-attempts"


class AttemptLog:
    """A Ray actor recording when each run's attempts start and finish (what the cluster test reads)."""

    def __init__(self):
        self.events: list[dict] = []

    def started(self, run_id: str, pid: int, node: str) -> None:
        self.events.append({"run": run_id, "event": "started", "pid": pid, "node": node, "t": time.time()})

    def finished(self, run_id: str) -> None:
        self.events.append({"run": run_id, "event": "finished", "t": time.time()})

    def all(self) -> list[dict]:
        return list(self.events)


# --------------------------------------------------------------------------- driver side
def run_id(row: dict) -> str:
    return f"{row['model']} {row['setting'] or 'default'} seed {row['seed']} on {row['dataset']}"


def write_run_files(root: Path, files: dict[str, bytes]) -> None:
    """Store a task's files under ``root``, each atomically and the JSON last: a run is stored once
    its JSON (with its key) is, so an interruption leaves at most companions that are written again."""
    root = root.resolve()
    for rel in sorted(files, key=lambda r: (r.endswith(".json"), r)):
        dest = (root / rel).resolve()
        if not dest.is_relative_to(root):
            raise MealRecError(f"a task returned a file outside the run store: {rel!r}")
        with atomic_path(dest) as tmp:
            tmp.write_bytes(files[rel])


def longest_first(rows: list[dict]) -> list[dict]:
    """Runs of unknown cost first (they may be long), then by the cost model's minutes, longest first."""
    return sorted(rows, key=lambda r: (r["est_minutes"] is not None, -(r["est_minutes"] or 0.0)))


def train_on_ray(store: RunStore, rows: list[dict], profile: str, *, address: str | None = None,
                 cpus_per_run: int = 1, gpus_per_run: float = 0, device: str = "cpu", retries: int = 2,
                 data_dir: str | None = None, progress: bool = True, attempts_out: list | None = None) -> dict:
    """Train ``rows``' missing runs on Ray and store them. ``address``: None starts a local Ray
    instance (stopped at the end); ``"auto"`` or ``"ray://host:port"`` joins a running cluster.
    Returns ``{"done": [...], "failed": {run: error}, "cache_built": {run: [...]}}``; ``attempts_out``
    receives the attempt log's events."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is pinned in requirements.txt
        raise MealRecError("--executor ray needs Ray: pip install -r requirements.txt (ray is pinned there)") from e

    todo = longest_first([r for r in rows if not r["stored"]])
    started_here = not ray.is_initialized()
    if started_here:
        kw = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=os.cpu_count(), **kw)
    report: dict[str, Any] = {"done": [], "failed": {}, "cache_built": {}}
    pending: dict = {}
    try:
        report = _drive(ray, store, todo, profile, cpus_per_run, gpus_per_run, device, retries, data_dir, progress,
                        pending, attempts_out)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        print(f"interrupted: {len(pending)} outstanding run(s) cancelled; the runs finished before are stored",
              file=sys.stderr)
        raise
    finally:
        if started_here:
            ray.shutdown()
    return report


def _drive(ray, store, todo, profile, cpus, gpus, device, retries, data_dir, progress, pending, attempts_out):
    from tqdm.auto import tqdm

    from ..models import get_model_class

    log = ray.remote(num_cpus=0)(AttemptLog).options(name=ATTEMPT_LOG, get_if_exists=True).remote()
    prep = ray.remote(prepare_task).options(num_cpus=cpus, max_retries=retries, retry_exceptions=True)
    task = ray.remote(train_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=True)
    threads = cpus if cpus >= 1 else 1
    ds_refs, chains, chain_refs = {}, {}, {}
    for r in todo:  # one prepare per dataset, then one chain per dataset and seed for models with one-off inputs
        req = r["request"]
        dkey = (req.dataset, req.visual_noise)
        if dkey not in ds_refs:
            ds_refs[dkey] = prep.remote(("dataset", req.dataset, req.visual_noise), profile, data_dir)
        if get_model_class(req.model).one_off_inputs:
            ckey = dkey + (req.seed,)
            chains.setdefault(ckey, [ds_refs[dkey]])
            chains[ckey].append(prep.remote(("model", req), profile, data_dir, *chains[ckey]))
            chain_refs[run_id(r)] = list(chains[ckey])
    for r in todo:
        req = r["request"]
        shipped = chain_refs.get(run_id(r), [ds_refs[(req.dataset, req.visual_noise)]])
        pending[task.remote(req, profile, data_dir, device, threads, run_id(r), log, *shipped)] = r
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus, 1e-9)))
    done, failed, built = [], {}, {}
    bar = tqdm(total=len(todo), desc="training runs (ray)", unit="run", disable=not progress)
    first = True
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
        for ref in ready:
            r = pending.pop(ref)
            try:
                out = ray.get(ref)
                expected = Path(r["path"]).relative_to(store.root).as_posix()
                if expected not in out["files"]:
                    raise MealRecError(f"the worker stored the run under another key than the driver's {expected} "
                                       "(its data or library version differs from the driver's)")
                write_run_files(store.root, out["files"])
                done.append({**r, "stored": True, "minutes": out["seconds"] / 60, "ndcg@10": out["ndcg@10"]})
                if out["cache_built"]:
                    built[run_id(r)] = out["cache_built"]
            except (ray.exceptions.RayError, MealRecError) as e:
                failed[run_id(r)] = str(e).strip().splitlines()[-1][:500]
            bar.update(1)
        if ready or first:
            first = False
            left = sum(r["est_minutes"] or 0.0 for r in pending.values())
            unknown = sum(r["est_minutes"] is None for r in pending.values())
            bar.set_postfix_str(f"{len(done)} done, {min(len(pending), slots)} running, {len(failed)} failed; "
                                f"~{left / slots / 60:.1f} h left by the cost model"
                                + (f" (+{unknown} of unknown cost)" if unknown else ""))
    bar.close()
    if attempts_out is not None:
        attempts_out.extend(ray.get(log.all.remote()))
    return {"done": done, "failed": failed, "cache_built": built}


__all__ = ["ATTEMPT_LOG", "AttemptLog", "longest_first", "prepare_task", "run_id", "train_on_ray", "train_task",
           "write_run_files"]
