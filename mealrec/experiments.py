"""One-call experiment helpers shared by the CLI, the benchmarks and the notebooks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import RunConfig, resolve_run_config
from .data import dataset_spec, get_dataset
from .evaluation import paired_ttest
from .models import get_model_class
from .trainer import RunResult, load_result, train


def run_config(
    model: str,
    dataset: str,
    user_file: str | Path | None = None,
    train_overrides: dict[str, Any] | None = None,
    model_overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The config of ``model`` on ``dataset``: model file, the dataset file's overrides, then
    an optional user file and explicit overrides (see :func:`mealrec.config.resolve_run_config`)."""
    spec = dataset_spec(dataset)
    return resolve_run_config(
        model,
        dataset,
        get_model_class(model),
        dataset_overrides={"train": spec.train, "model_overrides": spec.model_overrides},
        user_file=user_file,
        train_overrides=train_overrides,
        model_overrides=model_overrides,
    )


def run_one(
    model: str,
    dataset: str,
    seed: int = 2020,
    out: str | Path | None = None,
    data_dir: str | None = None,
    train_overrides: dict[str, Any] | None = None,
    model_overrides: dict[str, Any] | None = None,
    visual_noise: float = 0.0,
    progress: bool = True,
    ds=None,
) -> RunResult:
    """Resolve the config of ``model`` on ``dataset`` (files + overrides) and train it once."""
    run = run_config(
        model, dataset, train_overrides={"seed": seed, **(train_overrides or {})}, model_overrides=model_overrides
    )
    if ds is None:
        ds = get_dataset(dataset, data_dir=data_dir, visual_noise=visual_noise, progress=progress)
    return train(run, ds, out=out, progress=progress)


def run_in_subprocess(
    model: str,
    dataset: str,
    out: str | Path,
    seed: int = 2020,
    epochs: int | None = None,
    sets: list[str] | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    visual_noise: float = 0.0,
    max_users: int | None = None,
) -> dict:
    """Train in a fresh Python process (so peak memory is that model's alone) and load its result."""
    cmd = [sys.executable, "-m", "mealrec.cli", "train", "--model", model, "--dataset", dataset, "--seed", str(seed),
           "--out", str(out), "--device", device, "--quiet"]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    if visual_noise:
        cmd += ["--visual-noise", str(visual_noise)]
    if max_users is not None:
        cmd += ["--max-users", str(max_users)]
    for s in sets or []:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return load_result(out)


def compare(a: dict | RunResult, b: dict | RunResult, metrics=("hr@10", "ndcg@10", "hr@20", "ndcg@20")) -> dict:
    """Paired t-tests of ``a`` against ``b`` over test users, per metric."""
    pa = a.per_user_test if isinstance(a, RunResult) else a["per_user_test"]
    pb = b.per_user_test if isinstance(b, RunResult) else b["per_user_test"]
    return {m: paired_ttest(pa[m], pb[m]) for m in metrics}

