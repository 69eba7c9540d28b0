"""How far a retrained run moves from its stored metrics when only the thread count differs.

Retrains stored `full`-profile runs (cheap ones by default) at another torch thread count than
the one they were stored with, on this machine, and prints stored vs retrained test metrics.
This is the tolerance `mealrec reproduce --verify` cannot promise bit-equality within.

    python benchmarks/verify_threads.py --threads 2 --runs synthetic-small/tedrec synthetic-small/sasrec
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from mealrec.evaluation import METRICS
from mealrec.integrity import cpu_info, read_result
from mealrec.reproduce import RunStore, get_profile
from mealrec.reproduce.requests import request

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", nargs="+", default=["synthetic-small/tedrec", "synthetic-small/sasrec"],
                    help="dataset/model pairs; the default-setting run of the profile's first seed is retrained")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="JSON file for the table")
    a = ap.parse_args()
    store = RunStore(ROOT / "runs/full", data_dir=a.data_dir, progress=False, profile="full", train=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in a.runs:
            dataset, model = pair.split("/")
            req = request(model, dataset, get_profile("full", dataset))
            path, status = store.locate(model, dataset, **{k: v for k, v in req.kwargs().items() if k != "isolate"})
            if status != "current":
                raise SystemExit(f"{pair}: no run of the current code is stored ({status})")
            stored = read_result(path)
            scratch = RunStore(tmp, data_dir=a.data_dir, progress=False, profile="full", threads=a.threads, train=True)
            kw = req.kwargs()
            kw["isolate"] = False
            fresh = scratch.run(model, dataset, **kw)
            row = {"run": pair, "stored threads": stored["config"]["train"].get("num_threads"),
                   "retrained threads": a.threads, "best epoch stored": stored["best_epoch"],
                   "best epoch retrained": fresh["best_epoch"]}
            for m in METRICS:
                row[m] = {"stored": stored["test"][m], "retrained": fresh["test"][m],
                          "diff": fresh["test"][m] - stored["test"][m]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    worst = max(abs(r[m]["diff"]) for r in rows for m in METRICS)
    print(f"largest absolute difference over {len(rows)} run(s): {worst:.3e} ({cpu_info()['cpu_model']})")
    if a.out:
        Path(a.out).write_text(json.dumps({"cpu": cpu_info(), "rows": rows, "largest": worst}, indent=1) + "\n")


if __name__ == "__main__":
    main()
