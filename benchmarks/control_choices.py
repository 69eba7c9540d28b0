"""MealRec's open mechanism choices, judged on the positive controls (one seed, SASRec backbone).

Each row trains ``mealrec-sasrec`` (or a backbone) for the controls' fixed 30 epochs at batch 256 on
one control and prints test HR@10 / NDCG@10; a row is the default configuration with one setting
changed, so each choice is read against the same baseline. The results committed under
``benchmarks/results/control-choices/`` are the evidence the book's implementation notes cite.

    python benchmarks/control_choices.py --out benchmarks/results/control-choices/DATE.json [--rows NAME ...]

Rows already in ``--out`` are kept (the file is rewritten after every row, atomically).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mealrec import __version__
from mealrec.data import get_dataset
from mealrec.experiments import run_config
from mealrec.models.mealrec import V1_SETTINGS
from mealrec.trainer import train
from mealrec.utils import write_json_atomic

#: name -> (model, dataset, model settings)
ROWS = {
    "sasrec on content": ("sasrec", "control-content", {}),
    "default on content": ("mealrec-sasrec", "control-content", {}),
    "v1 settings on content": ("mealrec-sasrec", "control-content", V1_SETTINGS),
    "linear schedule on content": ("mealrec-sasrec", "control-content", {"schedule": "linear"}),
    "grad_steps 1 on content": ("mealrec-sasrec", "control-content", {"grad_steps": 1}),
    "npd_start clean on content": ("mealrec-sasrec", "control-content", {"npd_start": "clean"}),
    "diffusion_grad all on content": ("mealrec-sasrec", "control-content", {"diffusion_grad": "all"}),
    "symmetric off on content": ("mealrec-sasrec", "control-content", {"symmetric": False}),
    "sasrec on temporal": ("sasrec", "control-temporal", {}),
    "default on temporal": ("mealrec-sasrec", "control-temporal", {}),
    "linear schedule on temporal": ("mealrec-sasrec", "control-temporal", {"schedule": "linear"}),
    "sasrec on selection": ("sasrec", "control-selection", {}),
    "default on selection": ("mealrec-sasrec", "control-selection", {}),
    "linear schedule on selection": ("mealrec-sasrec", "control-selection", {"schedule": "linear"}),
}


def run_row(name: str, seed: int = 2020, epochs: int = 30) -> dict:
    model, dataset, settings = ROWS[name]
    run = run_config(model, dataset, train_overrides={"epochs": epochs, "seed": seed, "num_threads": 1},
                     model_overrides=settings)
    t0 = time.time()
    res = train(run, get_dataset(dataset, progress=False), progress=False)
    return {"model": model, "dataset": dataset, "settings": settings, "seed": seed, "epochs": epochs,
            "batch_size": run.train.batch_size, "test": {k: res.test[k] for k in ("hr@10", "ndcg@10")},
            "seconds": round(time.time() - t0, 1), "data_hash": res.dataset["data_hash"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), help=f"default: all of {list(ROWS)}")
    a = ap.parse_args(argv)
    unknown = [r for r in a.rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; valid: {list(ROWS)}")
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {"mealrec": __version__, "torch": torch.__version__, "rows": {}}
    for name in a.rows:
        if name in doc["rows"]:
            continue
        doc["rows"][name] = run_row(name)
        write_json_atomic(out, doc)
        t = doc["rows"][name]["test"]
        print(f"{name}: HR@10 {t['hr@10']:.4f} NDCG@10 {t['ndcg@10']:.4f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
