"""Does DiQDiff's item-embedding initialisation explain its place in Table 2? (a diagnostic, not a test)

The reference's DiQDiff draws its item embeddings N(0, 1) (``nn.Embedding``'s default; this
library's default is N(0, 0.02^2) since this diagnostic, ``emb_init_std``), so its
first logits ``<x0_hat, E_j>`` are large and the training cross-entropy starts far above the
``ln(n_items)`` of a uniform guess. This script trains DiQDiff for a few epochs with the
model setting ``emb_init_std`` set to each ``--stds`` value, everything else as the
library's config and seed, and prints the validation NDCG@10 and training cross-entropy of
every epoch. The runs go to a throwaway store, not to the book's. Results go to a JSON file
with their provenance.

    python benchmarks/diagnose_diqdiff_init.py --dataset microlens-small --epochs 8 --stds 1.0 0.02
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile
from pathlib import Path

import torch

import mealrec
from mealrec.reproduce.store import RunStore
from mealrec.utils import write_json_atomic


def run_arm(dataset: str, std: float, epochs: int, seed: int, data_dir: str | None, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # a throwaway store: 8-epoch runs belong in no page
        store = RunStore(tmp, data_dir=data_dir, threads=threads, progress=False)
        r = store.run("diqdiff", dataset, seed=seed, epochs=epochs, patience=epochs,
                      overrides={"emb_init_std": std})
    n_items = r["dataset"]["stats"]["items"]
    return {"std": std, "uniform_ce": math.log(n_items + 1),
            "valid_ndcg@10": [h["valid"]["ndcg@10"] for h in r["history"]],
            "train_ce": [h["train_rec"] for h in r["history"]],
            "test_after_best_epoch": r["test"], "best_epoch": r["best_epoch"],
            "train_s_per_epoch": r["timing"]["train_time_per_epoch_s"], "data_hash": r["dataset"]["data_hash"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="synthetic-small")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--stds", type=float, nargs="+", default=[1.0, 0.02])
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None,
                    help="JSON file (default benchmarks/results/<date>/diqdiff-init-<dataset>.json)")
    a = ap.parse_args(argv)
    arms = []
    for std in a.stds:
        arm = run_arm(a.dataset, std, a.epochs, a.seed, a.data_dir, a.threads)
        arms.append(arm)
        print(f"std {std:g}: valid NDCG@10 per epoch " + " ".join(f"{v:.4f}" for v in arm["valid_ndcg@10"]))
        print(f"         train CE per epoch " + " ".join(f"{v:.2f}" for v in arm["train_ce"])
              + f" (uniform guess {arm['uniform_ce']:.2f}); test NDCG@10 {arm['test_after_best_epoch']['ndcg@10']:.4f}")
    out = Path(a.out or Path(__file__).parent / "results" / dt.date.today().isoformat()
               / f"diqdiff-init-{a.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"dataset": a.dataset, "epochs": a.epochs, "seed": a.seed, "mealrec": mealrec.__version__,
                            "torch": torch.__version__, "threads": a.threads, "arms": arms,
                            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    print(f"written {out}")


if __name__ == "__main__":
    main()
