"""Benchmark: SASRec on microlens-small and microlens-big (full training, early stopping).

Prints, per dataset: train time per epoch, eval (validation) time per epoch, peak
memory, best epoch and test HR/NDCG@10/20, and writes each run's JSON result to
``--out``. Needs the MicroLens-50K files (``--data-dir`` or ``$MEALREC_DATA``).

    python benchmarks/bench_sasrec.py --data-dir ../shared/data [--datasets microlens-small microlens-big]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mealrec.data import get_dataset
from mealrec.experiments import run_config
from mealrec.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["microlens-small", "microlens-big"])
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--data-dir")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: config, 200)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--out", default="results/bench")
    args = ap.parse_args()

    rows = []
    for name in args.datasets:
        run = run_config(
            args.model, name,
            train_overrides={"seed": args.seed, "epochs": args.epochs, "device": args.device,
                             "num_threads": args.threads},
        )
        ds = get_dataset(name, data_dir=args.data_dir)
        out = Path(args.out) / f"{name}-{args.model}-seed{args.seed}.json"
        res = train(run, ds, out=out)
        t = res.timing
        rows.append((name, t["train_time_per_epoch_s"], t["eval_time_per_epoch_s"], t["peak_memory_mb"],
                     res.best_epoch, t["epochs_run"], res.test))
        print(f"[{name}] done: {out}", flush=True)

    import torch

    print(f"\n{args.model}, seed {args.seed}, device {args.device}, {torch.get_num_threads()} threads; "
          "full ranking, history not masked, leave-one-out, max_len 10, batch 2048, Adam 1e-3, "
          "early stop on valid NDCG@10 (patience 10)")
    print(f"{'dataset':16s} {'train s/ep':>10s} {'eval s/ep':>9s} {'peak MB':>8s} {'best':>4s} {'epochs':>6s} "
          f"{'HR@10':>7s} {'NDCG@10':>7s} {'HR@20':>7s} {'NDCG@20':>7s}")
    for name, tr, ev, mem, best, n, m in rows:
        print(f"{name:16s} {tr:10.2f} {ev:9.2f} {mem:8.0f} {best:4d} {n:6d} "
              f"{m['hr@10']:7.4f} {m['ndcg@10']:7.4f} {m['hr@20']:7.4f} {m['ndcg@20']:7.4f}")


if __name__ == "__main__":
    main()
