"""Benchmark: can every model train and rank at a dataset's full size, and at what cost per epoch?

Before hours of `full`-profile runs on a large dataset (microlens-big), this builds each
registered model on the whole dataset, times a few training steps at the configured batch
size (forward, loss, backward, Adam step) and one evaluation batch scored against every
item, and prints per model: build time (SeeDRec's S2IDM pre-training happens there), seconds
per training step, seconds per evaluation batch, the implied seconds per epoch (steps x
batches per epoch + evaluation batches x validation users / eval batch size), and the
process's peak RSS so far. A model that crashes or runs out of memory is reported, not
skipped. Timings on a shared machine are noisy: compare models within one run.

    python benchmarks/smoke_full_size.py --data-dir ../shared/data --dataset microlens-big \
        [--models sasrec tedrec ...] [--steps 3] [--threads 1] \
[--out benchmarks/results/DATE/full-size-microlens-big.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time
import traceback
from pathlib import Path

import torch


def main() -> None:
    from mealrec.data import get_dataset
    from mealrec.experiments import run_config
    from mealrec.models import MODELS, build_model
    from mealrec.utils import current_memory_mb, seed_everything, write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="microlens-big")
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--data-dir")
    ap.add_argument("--steps", type=int, default=3, help="training steps timed per model (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="also write the rows as JSON here")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    torch.set_num_threads(args.threads)
    ds = get_dataset(args.dataset, data_dir=args.data_dir)
    n_train, n_valid = len(ds.train), len(ds.valid)
    rows = []
    for name in args.models or sorted(MODELS):
        run = run_config(name, args.dataset)
        tc = run.train
        row = {"model": name, "batch_size": tc.batch_size, "eval_batch_size": tc.eval_batch_size}
        try:
            seed_everything(0)
            t0 = time.perf_counter()
            model = build_model(name, run.model_config, ds)
            row["build_s"] = time.perf_counter() - t0
            opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
            model.train()
            perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))
            times = []
            for step in range(args.steps + 1):  # the first step warms up and is not timed
                idx = torch.arange(step * tc.batch_size, (step + 1) * tc.batch_size) % n_train  # full batches
                batch = ds.train.batch(perm[idx])
                t0 = time.perf_counter()
                loss = model.calculate_loss(batch)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if step:
                    times.append(time.perf_counter() - t0)
            row["loss"] = loss.item()
            row["train_step_s"] = sum(times) / len(times)
            model.eval()
            with torch.inference_mode():
                batch = ds.valid.batch(slice(0, tc.eval_batch_size))
                model.full_sort_predict(batch)  # warm-up (evaluation caches)
                t0 = time.perf_counter()
                scores = model.full_sort_predict(batch)
                row["eval_batch_s"] = time.perf_counter() - t0
            assert scores.shape == (len(batch["user"]), ds.n_items), scores.shape
            row["epoch_s_implied"] = (row["train_step_s"] * math.ceil(n_train / tc.batch_size)
                                      + row["eval_batch_s"] * math.ceil(n_valid / tc.eval_batch_size))
            row["rss_mb"] = current_memory_mb()
            row["status"] = "ok"
        except Exception as e:  # noqa: BLE001 - reported per model, never skipped
            row["status"] = f"failed: {type(e).__name__}: {e}"
            row["traceback"] = traceback.format_exc(limit=5)
        rows.append(row)
        print(f"{name:18s} {row['status'] if row['status'] != 'ok' else ''}"
              + (f"build {row['build_s']:6.1f} s  step {row['train_step_s']:6.2f} s  "
                 f"eval batch {row['eval_batch_s']:5.2f} s  "
                 f"epoch ~{row['epoch_s_implied'] / 60:5.1f} min  RSS {row['rss_mb']:6.0f} MB"
                 if row["status"] == "ok" else ""),
              flush=True)
        del model
    print(f"\n{args.dataset}: {n_train:,} training instances, {n_valid:,} validation users, {ds.n_items:,} items; "
          f"{args.threads} thread(s); epoch = steps x ceil(train / batch) + eval batches x ceil(valid / eval batch)")
    if args.out:
        write_json_atomic(Path(args.out), {"dataset": args.dataset, "threads": args.threads, "steps": args.steps,
                                           "stats": ds.stats(), "rows": rows})


if __name__ == "__main__":
    main()
