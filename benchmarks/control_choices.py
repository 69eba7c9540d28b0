"""MealRec's open mechanism choices, judged on the positive controls (one seed, SASRec backbone).

Each row trains ``mealrec-sasrec`` (or a backbone) for the controls' fixed 30 epochs at batch 256 on
one control and prints test HR@10 / NDCG@10; a row is the default configuration with one setting
changed, so each choice is read against the same baseline. For MealRec it also records how much the
chain outputs depend on what they should read (:func:`sensitivity`). The results committed under
``benchmarks/results/control-choices/`` are the evidence the book's implementation notes cite.

    python benchmarks/control_choices.py --out benchmarks/results/control-choices/DATE.json \
        [--rows NAME ...] [--seed S]

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
    "cosine schedule on content": ("mealrec-sasrec", "control-content", {"schedule": "cosine"}),
    "-NPD on content": ("mealrec-sasrec", "control-content", {"variant": "-NPD"}),
    "cosine schedule -NPD on content": ("mealrec-sasrec", "control-content", {"variant": "-NPD", "schedule": "cosine"}),
    "grad_steps 1 on content": ("mealrec-sasrec", "control-content", {"grad_steps": 1}),
    "npd_start clean on content": ("mealrec-sasrec", "control-content", {"npd_start": "clean"}),
    "diffusion_grad all on content": ("mealrec-sasrec", "control-content", {"diffusion_grad": "all"}),
    "diffusion_grad denoisers on content": ("mealrec-sasrec", "control-content", {"diffusion_grad": "denoisers"}),
    "symmetric off on content": ("mealrec-sasrec", "control-content", {"symmetric": False}),
    "sasrec on temporal": ("sasrec", "control-temporal", {}),
    "default on temporal": ("mealrec-sasrec", "control-temporal", {}),
    "cosine schedule on temporal": ("mealrec-sasrec", "control-temporal", {"schedule": "cosine"}),
    "sasrec on selection": ("sasrec", "control-selection", {}),
    "default on selection": ("mealrec-sasrec", "control-selection", {}),
    "cosine schedule on selection": ("mealrec-sasrec", "control-selection", {"schedule": "cosine"}),
    "grad_steps 1 on selection": ("mealrec-sasrec", "control-selection", {"grad_steps": 1}),
    "npd_start clean on selection": ("mealrec-sasrec", "control-selection", {"npd_start": "clean"}),
    "diffusion_grad all on selection": ("mealrec-sasrec", "control-selection", {"diffusion_grad": "all"}),
    "diffusion_grad denoisers on selection": ("mealrec-sasrec", "control-selection", {"diffusion_grad": "denoisers"}),
    "symmetric off on selection": ("mealrec-sasrec", "control-selection", {"symmetric": False}),
}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean change of the rows of ``a`` when an input is swapped (giving ``b``), relative to their norm."""
    return round(((a - b).norm(dim=-1).mean() / a.norm(dim=-1).mean()).item(), 4)


@torch.inference_mode()
def sensitivity(model, split, n: int = 1000) -> dict[str, float]:
    """How much a trained MealRec's outputs change when one input is swapped between the first ``n``
    test users (0: the output ignores it): TCD's output against the last item's frames and against
    ``c_v``; the user representation ``h`` against the backbone's ``x0`` and against all frames."""
    model.eval()
    g = torch.Generator().manual_seed(0)
    b = split.batch(slice(0, n))
    seq, ln = b["item_seq"], b["item_seq_len"]
    perm = torch.randperm(seq.shape[0], generator=g)
    out = {}
    if model.use_tcd:
        last = seq.gather(1, (ln - 1)[:, None]).squeeze(1)
        frames, c_v = model.frames[last].float(), model.recency_context(seq, ln)
        z = model.tcd(frames, c_v)[2]
        out["tcd output vs frames"] = _rel(z, model.tcd(frames[perm], c_v)[2])
        out["tcd output vs c_v"] = _rel(z, model.tcd(frames, c_v[perm])[2])
    h = model.represent(b)
    encode = model.backbone.user_state
    model.backbone.user_state = lambda s, n_: encode(s, n_)[perm]
    out["h vs x0"] = _rel(h, model.represent(b))
    del model.backbone.user_state
    frames_all = model.frames
    model.frames = frames_all[torch.randperm(frames_all.shape[0], generator=g)]
    out["h vs frames"] = _rel(h, model.represent(b))
    model.frames = frames_all
    return out


def run_row(name: str, seed: int = 2020, epochs: int = 30) -> dict:
    model, dataset, settings = ROWS[name]
    run = run_config(model, dataset, train_overrides={"epochs": epochs, "seed": seed, "num_threads": 1},
                     model_overrides=settings)
    ds = get_dataset(dataset, progress=False)
    t0 = time.time()
    res = train(run, ds, progress=False)
    return {"model": model, "dataset": dataset, "settings": settings, "seed": seed, "epochs": epochs,
            "batch_size": run.train.batch_size, "test": {k: res.test[k] for k in ("hr@10", "ndcg@10")},
            "seconds": round(time.time() - t0, 1), "data_hash": res.dataset["data_hash"],
            "sensitivity": sensitivity(res.model, ds.test) if model.startswith("mealrec") else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), help=f"default: all of {list(ROWS)}")
    ap.add_argument("--seed", type=int, default=2020, help="training seed of every row (default 2020)")
    a = ap.parse_args(argv)
    unknown = [r for r in a.rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; valid: {list(ROWS)}")
    out = Path(a.out)
    fresh = {"mealrec": __version__, "torch": torch.__version__, "rows": {}}
    doc = json.loads(out.read_text()) if out.exists() else fresh
    for name in a.rows:
        if name in doc["rows"]:
            continue
        doc["rows"][name] = run_row(name, seed=a.seed)
        write_json_atomic(out, doc)
        t = doc["rows"][name]["test"]
        print(f"{name}: HR@10 {t['hr@10']:.4f} NDCG@10 {t['ndcg@10']:.4f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
