"""Golden trajectories: what each model computes on tiny data at each declared version of its math.

The run store keys runs by declared versions (:mod:`mealrec.versions`), not by source code. The
ledger (``tests/golden/ledger.json``) backs those versions: for each case (a model and settings) and
each version vector it holds the trajectory of a short training run on ``synthetic-tiny`` — the
training losses and validation metrics of every epoch, the test metrics, and a checksum of the final
parameters. ``tests/test_golden.py`` retrains every case and compares it with the ledger's entry for
the current versions:

* recorded on the same CPU model, thread count and torch version: every number bit for bit;
* elsewhere: within :data:`RTOL` (float reordering stays inside it, a change of the math does not:
  ``benchmarks/golden_tolerance.py`` measures both).

Entries are only ever added. Changing the math means bumping a version and recording the new entry;
a change that only reorders float operations keeps the versions and adds an entry beside theirs
(refused unless it is within the tolerance of them)::

    python -m mealrec.golden --record                    # adds the entries the current versions lack
    python -m mealrec.golden --record --reordered CASE   # after a float reordering
    python -m mealrec.golden --check [CASE]              # compares, as the test does
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from .integrity import cpu_info
from .utils import MealRecError, write_json_atomic
from .versions import model_versions

LEDGER = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ledger.json"
#: Relative tolerance across CPUs and thread counts (see the module docstring).
RTOL = 1e-6
DATASET, SEED, EPOCHS = "synthetic-tiny", 7, 2
#: case name -> (model, model settings): every registered model at its defaults, and MealRec's ablations.
CASES: dict[str, tuple[str, dict[str, Any]]] = {}


def _cases() -> dict[str, tuple[str, dict[str, Any]]]:
    if not CASES:
        from .models import model_names
        CASES.update({m: (m, {}) for m in model_names()})
        CASES.update({f"mealrec-sasrec {v}": ("mealrec-sasrec", {"variant": v}) for v in ("-TCD", "-NPD", "-TCD-NPD")})
    return CASES


def _machine(threads: int) -> dict[str, Any]:
    return {"cpu_model": cpu_info()["cpu_model"], "threads": threads, "torch": torch.__version__}


def trajectory(case: str, threads: int = 1) -> dict[str, Any]:
    """Train ``case`` for :data:`EPOCHS` epochs on :data:`DATASET` and return its trajectory."""
    from .data import get_dataset
    from .experiments import run_config
    from .trainer import train

    model, overrides = _cases()[case]
    run = run_config(model, DATASET, train_overrides={"seed": SEED, "epochs": EPOCHS, "eval_every": 1,
                                                      "num_threads": threads, "device": "cpu"},
                     model_overrides=overrides)
    res = train(run, get_dataset(DATASET, progress=False), progress=False, log=lambda s: None)
    params = [p.detach().double() for p in res.model.state_dict().values() if p.is_floating_point()]
    sha = hashlib.sha256()  # of the tensors' digests, sorted: renaming or reordering modules keeps it
    for digest in sorted(hashlib.sha256(p.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
                         for p in res.model.state_dict().values()):
        sha.update(digest.encode())
    return {
        "case": case, "model": model, "overrides": overrides, "versions": model_versions(model),
        "recorded_on": _machine(threads),
        "train": [{k: v for k, v in h.items() if k.startswith("train_") and k != "train_time_s"} for h in res.history],
        "valid": [h["valid"] for h in res.history],
        "test": res.test,
        "param_abs_sum": float(sum(p.abs().sum() for p in params)),
        "param_sha256": sha.hexdigest(),
    }


def _numbers(t: dict[str, Any]) -> dict[str, float]:
    out = {"param_abs_sum": t["param_abs_sum"]}
    for i, rec in enumerate(t["train"]):
        out.update({f"epoch {i + 1} {k}": v for k, v in rec.items()})
    for i, rec in enumerate(t["valid"]):
        out.update({f"epoch {i + 1} valid {k}": v for k, v in rec.items()})
    out.update({f"test {k}": v for k, v in t["test"].items()})
    return out


def compare(entry: dict[str, Any], now: dict[str, Any], exact: bool | None = None) -> list[str]:
    """What differs between a ledger entry and a trajectory just computed (empty: they agree); ``exact``
    defaults to whether both were computed on the same CPU model, thread count and torch version."""
    exact = entry["recorded_on"] == now["recorded_on"] if exact is None else exact
    a, b = _numbers(entry), _numbers(now)
    if a.keys() != b.keys():
        return [f"recorded {sorted(a.keys() ^ b.keys())} differ between the entry and now"]
    bad = [f"{k}: ledger {a[k]!r}, now {b[k]!r}" for k in a
           if (a[k] != b[k] if exact else not math.isclose(a[k], b[k], rel_tol=RTOL, abs_tol=1e-12))]
    if exact and entry["param_sha256"] != now["param_sha256"]:
        bad.append("the final parameters differ bit for bit")
    return bad


def read_ledger(path: Path = LEDGER) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))["entries"]
    except (ValueError, KeyError) as e:
        raise MealRecError(f"{path}: not a golden ledger ({e}); restore it from git") from None


def find(entries: list[dict[str, Any]], case: str) -> list[dict[str, Any]]:
    """The ledger entries of ``case`` at its model's current versions, oldest first (more than one when
    a change that only reorders float operations was recorded with ``--reordered``)."""
    versions = model_versions(_cases()[case][0])
    return [e for e in entries if e["case"] == case and e["versions"] == versions]


def check(entries: list[dict[str, Any]], case: str, now: dict[str, Any]) -> list[str]:
    """Differences of a fresh trajectory from the ledger: exact against the newest entry of the current
    versions when it was recorded here, within :data:`RTOL` against every other one."""
    found = find(entries, case)
    if not found:
        return [f"no ledger entry for {case} at {model_versions(_cases()[case][0])}: after bumping a version, record "
                f"it with `python -m mealrec.golden --record '{case}'`"]
    diffs = compare(found[-1], now)
    for older in found[:-1]:
        diffs += [f"(entry of {older['recorded_on']}) {d}" for d in compare(older, now, exact=False)]
    return diffs


def record(cases: list[str] | None = None, path: Path = LEDGER, threads: int = 1, reordered: bool = False,
           log=print) -> list[dict[str, Any]]:
    """Add an entry for each case whose current versions the ledger lacks; never edit an entry.

    ``reordered``: also add one for a case that has entries of its current versions, after a change that
    only reorders float operations (its trajectory must stay within :data:`RTOL` of theirs)."""
    entries = read_ledger(path)
    added = []
    for case in cases or sorted(_cases()):
        found = find(entries, case)
        if found and not reordered:
            log(f"{case}: recorded already for {model_versions(_cases()[case][0])}")
            continue
        now = trajectory(case, threads)
        if found:
            diffs = [d for e in found for d in compare(e, now, exact=False)]
            if diffs:
                raise MealRecError(f"{case}: not a reordering, the math changed (bump a version):\n"
                                   + "\n".join(diffs[:5]))
            if not any(compare(found[-1], now)):
                log(f"{case}: unchanged, nothing to add")
                continue
        entries.append(now)
        added.append(now)
        log(f"{case}: recorded (test ndcg@10 {now['test']['ndcg@10']:.4f})")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"about": "append-only; see mealrec/golden.py", "entries": entries})
    return added


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mealrec.golden", description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", help=f"default: all ({', '.join(sorted(_cases()))})")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="add the entries the current versions lack")
    mode.add_argument("--check", action="store_true", help="retrain and compare with the ledger")
    ap.add_argument("--reordered", action="store_true",
                    help="with --record: add an entry for the current versions after a float reordering")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ledger", type=Path, default=LEDGER)
    a = ap.parse_args(argv)
    unknown = [c for c in a.cases if c not in _cases()]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; valid: {', '.join(sorted(_cases()))}")
    if a.record:
        record(a.cases or None, a.ledger, a.threads, reordered=a.reordered)
        return 0
    entries, failed = read_ledger(a.ledger), 0
    for case in a.cases or sorted(_cases()):
        diffs = check(entries, case, trajectory(case, a.threads))
        failed += bool(diffs)
        print(f"{case}: {'ok' if not diffs else 'DIFFERS'}" + "".join(f"\n  {d}" for d in diffs[:8]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
