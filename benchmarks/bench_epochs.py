"""Benchmark: each model's training epoch on one dataset, with a profiler table per model.

For every model (default: the paper's baselines, SASRec, TedRec and MealRec-TedRec) it builds the model
as the trainer does, runs ``--warmup`` training steps, then times ``--batches`` steps (batch assembly,
forward, backward, Adam) and extrapolates to one epoch (the epoch's number of batches); the ratio to
SASRec is taken within the same run. With ``--profile`` the steps after that go through
``torch.profiler`` and the top operators by self CPU time are kept per model. Results (and the
machine) go to ``--out`` as JSON; the table is printed.

    python benchmarks/bench_epochs.py --data-dir ../shared/data [--threads 1 2] [--models sasrec tedrec]
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["sasrec", "diqdiff", "morec", "tedrec", "iisan-versa", "mmgcn", "cl4srec", "mealrec-tedrec", "dmmd4sr",
          "iisan", "ssdrec"]


def time_model(name: str, ds, threads: int, warmup: int, batches: int, profile: int) -> dict:
    from mealrec.experiments import run_config
    from mealrec.models import build_model
    from mealrec.utils import seed_everything

    torch.set_num_threads(threads)
    run = run_config(name, ds.name, train_overrides={"seed": 2020})
    seed_everything(2020)
    model = build_model(run.model, run.model_config, ds)
    opt = torch.optim.Adam(model.parameters(), lr=run.train.lr)
    bs = run.train.batch_size
    perm = torch.randperm(len(ds.train), generator=torch.Generator().manual_seed(0))
    n_batches = math.ceil(len(ds.train) / bs)

    def step(b: int) -> None:
        idx = perm[(b % n_batches) * bs : (b % n_batches + 1) * bs]
        loss = model.calculate_loss(ds.train.batch(idx))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for b in range(warmup):
        step(b)
    t = time.perf_counter()
    for b in range(warmup, warmup + batches):
        step(b)
    per_batch = (time.perf_counter() - t) / batches
    out = {"model": name, "threads": threads, "s_per_batch": per_batch, "batches_per_epoch": n_batches,
           "s_per_epoch": per_batch * n_batches}
    if profile:
        from torch.profiler import ProfilerActivity, profile as prof

        with prof(activities=[ProfilerActivity.CPU]) as p:
            for b in range(warmup + batches, warmup + batches + profile):
                step(b)
        ops = sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
        total = sum(e.self_cpu_time_total for e in p.key_averages())
        out["top_ops"] = [{"op": e.key, "self_share": e.self_cpu_time_total / total,
                           "self_ms_per_batch": e.self_cpu_time_total / 1000 / profile, "calls": e.count}
                          for e in ops]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="microlens-big")
    ap.add_argument("--data-dir", default=os.environ.get("MEALREC_DATA"))
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--profile", type=int, default=2, help="profiled steps per model (0: none)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "epochs")
    ap.add_argument("--tag", default="", help="appended to the output file's name")
    args = ap.parse_args()

    from mealrec.data import get_dataset
    from mealrec.integrity import cpu_info
    from mealrec.utils import write_json_atomic

    ds = get_dataset(args.dataset, data_dir=args.data_dir, progress=False)
    rows = []
    for threads in args.threads:
        for name in args.models:
            r = time_model(name, ds, threads, args.warmup, args.batches, args.profile)
            rows.append(r)
            print(f"{name:16s} {threads} thread(s): {r['s_per_batch'] * 1000:7.0f} ms/batch, "
                  f"{r['s_per_epoch']:7.1f} s/epoch", flush=True)
    print(f"\n{args.dataset}, {cpu_info()['cpu_model']}")
    print(f"{'model':16s} {'threads':>7s} {'s/epoch':>8s} {'x SASRec':>9s}  top operators (self CPU share)")
    for r in rows:
        base = next((x for x in rows if x["model"] == "sasrec" and x["threads"] == r["threads"]), None)
        rel = f"{r['s_per_epoch'] / base['s_per_epoch']:9.2f}" if base else f"{'-':>9s}"
        top = ", ".join(f"{o['op'].replace('aten::', '')} {o['self_share']:.0%}" for o in r.get("top_ops", [])[:4])
        print(f"{r['model']:16s} {r['threads']:7d} {r['s_per_epoch']:8.1f} {rel}  {top}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{dt.date.today().isoformat()}-{args.dataset}{args.tag}.json"
    write_json_atomic(path, {"dataset": args.dataset, "machine": cpu_info(), "warmup": args.warmup,
                             "batches": args.batches, "created": dt.datetime.now(dt.timezone.utc).isoformat(
                                 timespec="seconds"), "rows": rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
