"""Do two checkouts of the library compute the same numbers? Retrain a sample of runs with each, compare bit for bit.

For each model it trains the same run (dataset, seed, epochs, one thread) with the library of checkout A
and with that of checkout B, each in its own process (``PYTHONPATH`` set to the checkout), and compares
every number the run records: the training losses and validation metrics of every epoch, the test
metrics, and the per-user test metrics, with ``==`` (NaN equal to NaN). Run both on one machine::

    python benchmarks/refactor_identity.py --a /tmp/before --b . --dataset synthetic-small --epochs 3 \\
        --out benchmarks/results/refactor-identity/DATE.json [--models sasrec ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mealrec.utils import write_json_atomic  # noqa: E402

#: Run inside a checkout: train one run, print its numbers as JSON.
_CHILD = """
import json, sys
import numpy as np
from mealrec.data import get_dataset
from mealrec.experiments import run_config
from mealrec.trainer import train
model, dataset, seed, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
run = run_config(model, dataset, train_overrides={"seed": seed, "epochs": epochs, "num_threads": 1, "device": "cpu"})
res = train(run, get_dataset(dataset, progress=False), progress=False, log=lambda s: None)
hist = [{k: v for k, v in h.items() if not k.endswith("_time_s") and k != "peak_memory_mb"} for h in res.history]
out = {"history": hist, "test": res.test, "per_user": {k: np.asarray(v).tolist() for k, v in res.per_user_test.items()}}
open(sys.argv[5], "w").write(json.dumps(out))
"""


def run_in(checkout: Path, model: str, dataset: str, seed: int, epochs: int) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = {**os.environ, "PYTHONPATH": str(checkout.resolve()), "OMP_NUM_THREADS": "1"}
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", _CHILD, model, dataset, str(seed), str(epochs), str(out)],
                              cwd=str(checkout), env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{model} in {checkout} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text()), time.time() - t0


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} and {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
    return [] if same else [f"{path}: {a!r} != {b!r}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=Path, required=True, help="checkout A (e.g. before a refactor)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B (e.g. after it)")
    ap.add_argument("--dataset", default="synthetic-small")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    from mealrec.models import model_names
    from mealrec.integrity import cpu_info
    rows = {}
    for model in a.models or model_names():
        ra, ta = run_in(a.a, model, a.dataset, a.seed, a.epochs)
        rb, tb = run_in(a.b, model, a.dataset, a.seed, a.epochs)
        diffs = differences(ra, rb)
        n = sum(len(v) for v in ra["per_user"].values()) + len(ra["history"]) + len(ra["test"])
        rows[model] = {"identical": not diffs, "differences": diffs[:20], "test_ndcg@10": ra["test"]["ndcg@10"],
                       "seconds": [round(ta, 1), round(tb, 1)]}
        print(f"{model:18s} {'identical' if not diffs else f'{len(diffs)} DIFFER'} ({n} numbers; "
              f"test N@10 {ra['test']['ndcg@10']:.4f}; {ta:.0f} s / {tb:.0f} s)", flush=True)
        if a.out:
            write_json_atomic(a.out, {"a": str(a.a), "b": str(a.b), "dataset": a.dataset, "seed": a.seed,
                                      "epochs": a.epochs, "threads": 1, "machine": cpu_info(), "rows": rows})
    return 0 if all(r["identical"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
