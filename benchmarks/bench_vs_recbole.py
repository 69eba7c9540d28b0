"""Benchmark: our SASRec against RecBole 1.2.1's, side by side, same split and settings, equal threads.

RecBole goes into its own environment (``--env``, created on first use: a venv with ``torch==2.13.0``
and ``recbole==1.2.1`` from the package registry). Our split of ``--dataset`` is written out as
RecBole benchmark files (``<name>.{train,valid,test}.inter``: ``user_id``, ``item_id_list`` (at most
``max_len`` items), ``item_id``), so both libraries train on the same instances, one per target,
with no augmentation. Both run SASRec with the same settings (``sasrec.yaml``: 2 layers, 2 heads,
hidden 64, inner 256, dropout 0.5, GELU, LayerNorm eps 1e-12; full-softmax cross-entropy; Adam
1e-3; batch 2048), one after the other, each for ``--epochs`` epochs at ``--threads`` threads. Each
epoch's train time and validation time (full ranking) are measured around the library's own epoch
functions; the table reports the mean over the epochs after the first (the first is warm-up) and
the ratio ours / RecBole's. RecBole's validation masks the history's items (its default), ours
does not; that costs little and is kept.

    python benchmarks/bench_vs_recbole.py --data-dir ../shared/data [--dataset microlens-big] [--threads 1]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# RecBole 1.2.1 sets np.float = np.float_, which numpy 2 removed
RECBOLE = ["torch==2.13.0", "recbole==1.2.1", "numpy==1.26.4", "pandas==2.2.3", "scipy==1.13.1"]

DRIVER = r'''
import json, sys, time
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
cfg = Config(model="SASRec", dataset=args["name"], config_dict=args["config"])
init_seed(cfg["seed"], cfg["reproducibility"])
ds = create_dataset(cfg)
train, valid, test = data_preparation(cfg, ds)
init_seed(cfg["seed"], cfg["reproducibility"])
model = SASRec(cfg, train._dataset).to(cfg["device"])
trainer = Trainer(cfg, model)
epochs = []
for e in range(args["epochs"]):
    t = time.perf_counter()
    loss = trainer._train_epoch(train, e, show_progress=False)
    t_train = time.perf_counter() - t
    t = time.perf_counter()
    score, result = trainer._valid_epoch(valid, show_progress=False)
    epochs.append({"train_s": t_train, "eval_s": time.perf_counter() - t, "loss": float(loss),
                   "valid": {k: float(v) for k, v in result.items()}})
print("RESULT " + json.dumps({"epochs": epochs, "n_items": ds.item_num, "n_train": len(train.dataset),
                              "torch": torch.__version__, "threads": torch.get_num_threads()}))
'''


def ensure_env(env: Path) -> Path:
    """The RecBole environment's python (created on first use)."""
    py = env / "bin" / "python"
    if not py.exists():
        print(f"creating the RecBole environment in {env} ({' '.join(RECBOLE)}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *RECBOLE], check=True)
    return py


def export_split(ds, folder: Path, name: str) -> None:
    """Our train/valid/test instances as RecBole benchmark files under ``folder/name``."""
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        s = getattr(ds, split)
        seq, lens, target, user = (t.numpy() for t in (s.item_seq, s.item_seq_len, s.target, s.user))
        with open(out / f"{name}.{split}.inter", "w", encoding="utf-8") as f:
            f.write("user_id:token\titem_id_list:token_seq\titem_id:token\n")
            for u, row, n, t in zip(user, seq, lens, target):
                f.write(f"{u}\t{' '.join(map(str, row[:n]))}\t{t}\n")


def recbole_config(folder: Path, mc, seed: int, batch: int, eval_batch: int) -> dict:
    return {
        "data_path": str(folder), "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "MAX_ITEM_LIST_LENGTH": 10, "train_neg_sample_args": None, "loss_type": "CE",
        "hidden_size": mc.hidden_size, "inner_size": mc.inner_size, "n_layers": mc.n_layers, "n_heads": mc.n_heads,
        "hidden_dropout_prob": mc.hidden_dropout, "attn_dropout_prob": mc.attn_dropout, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": mc.initializer_range,
        "learning_rate": 1e-3, "train_batch_size": batch, "eval_batch_size": eval_batch,
        "eval_args": {"mode": "full", "order": "TO"}, "metrics": ["Hit", "NDCG"], "topk": [10, 20],
        "valid_metric": "NDCG@10", "device": "cpu", "use_gpu": False, "gpu_id": "", "seed": seed,
        "reproducibility": True, "show_progress": False, "worker": 0, "checkpoint_dir": str(folder / "saved"),
        "log_wandb": False, "state": "WARNING",
    }


def ours(args, ds, run) -> dict:
    """Our trainer, 'epochs' epochs, timings from its history."""
    from mealrec.trainer import train

    res = train(run, ds, out=None, progress=False, resume=False)
    return {"epochs": [{"train_s": h["train_time_s"], "eval_s": h["eval_time_s"], "loss": h["train_loss"],
                        "valid": h["valid"]} for h in res.history]}


def mean_after_first(epochs: list[dict], key: str) -> float:
    xs = [e[key] for e in epochs[1:]] or [epochs[0][key]]
    return sum(xs) / len(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="microlens-big")
    ap.add_argument("--data-dir", default=os.environ.get("MEALREC_DATA"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--env", type=Path, default=ROOT / ".cache" / "recbole-1.2.1")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recbole")
    args = ap.parse_args()

    import torch

    from mealrec.data import get_dataset
    from mealrec.experiments import run_config
    from mealrec.integrity import cpu_info

    torch.set_num_threads(args.threads)
    run = run_config("sasrec", args.dataset, train_overrides={"seed": args.seed, "epochs": args.epochs,
                                                              "num_threads": args.threads, "device": "cpu"})
    ds = get_dataset(args.dataset, data_dir=args.data_dir, progress=False)
    py = ensure_env(args.env)
    with tempfile.TemporaryDirectory() as tmp:
        name = f"mealrec_{args.dataset.replace('-', '_')}"
        export_split(ds, Path(tmp), name)
        cfg = recbole_config(Path(tmp), run.model_config, args.seed, run.train.batch_size, run.train.eval_batch_size)
        driver = Path(tmp) / "driver.py"
        driver.write_text(DRIVER)
        print(f"RecBole 1.2.1: SASRec, {args.epochs} epochs, {args.threads} thread(s) ...", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        t0 = time.time()
        proc = subprocess.run([str(py), str(driver), json.dumps({"name": name, "config": cfg, "epochs": args.epochs,
                                                                 "threads": args.threads})],
                              capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            sys.exit(f"RecBole failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        rb = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
        rb["wall_s"] = time.time() - t0
    print(f"ours: SASRec, {args.epochs} epochs, {args.threads} thread(s) ...", flush=True)
    t0 = time.time()
    mine = ours(args, ds, run)
    mine["wall_s"] = time.time() - t0

    rows = []
    for label, r in (("RecBole 1.2.1", rb), ("mealrec", mine)):
        rows.append({"library": label, "train_s_per_epoch": mean_after_first(r["epochs"], "train_s"),
                     "eval_s_per_epoch": mean_after_first(r["epochs"], "eval_s")})
    ratio = {k: rows[1][k] / rows[0][k] for k in ("train_s_per_epoch", "eval_s_per_epoch")}
    print(f"\nSASRec on {args.dataset} ({len(ds.train):,} training instances, {ds.n_items - 1:,} items), "
          f"{args.threads} thread(s), {args.epochs} epochs each (mean over epochs 2..{args.epochs}); "
          f"{cpu_info()['cpu_model']}")
    print(f"{'library':16s} {'train s/epoch':>14s} {'eval s/epoch':>13s}")
    for r in rows:
        print(f"{r['library']:16s} {r['train_s_per_epoch']:14.1f} {r['eval_s_per_epoch']:13.1f}")
    print(f"{'ours / RecBole':16s} {ratio['train_s_per_epoch']:14.2f} {ratio['eval_s_per_epoch']:13.2f}")
    record = {"dataset": args.dataset, "threads": args.threads, "epochs": args.epochs, "seed": args.seed,
              "machine": cpu_info(), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "rows": rows, "ratio": ratio, "recbole": rb, "mealrec": mine}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{dt.date.today().isoformat()}-{args.dataset}-{args.threads}t.json"
    from mealrec.utils import write_json_atomic

    write_json_atomic(path, record)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
