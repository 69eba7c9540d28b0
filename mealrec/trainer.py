"""Training loop shared by every model.

Adam (lr 1e-3, batch 2048 by default), one pass over the shuffled training
instances per epoch, validation by full ranking after every epoch, early stopping
on validation NDCG@10 (patience 10 evaluations), then the best checkpoint is
restored and the test split is evaluated once. Every epoch records its train
time, validation time and peak memory (:class:`mealrec.utils.PeakMemory`), measured
the same way for every model.

A run with a result path saves its whole state after every epoch (:mod:`mealrec.resume`) and,
started again after a kill, resumes from the last finished epoch, bit-identical to an
uninterrupted run. One run writes one JSON result (full config, seed, library/torch versions, data
hash, history, metrics) plus a ``.npz`` of per-user test metrics and a ``.pt``
checkpoint that stores its config, each written to a temp file and renamed.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from . import resume as resume_state
from .config import RunConfig
from .evaluation import evaluate
from .models import build_model
from .utils import (
    MealRecError, PeakMemory, Timer, current_memory_mb, atomic_path, resolve_device, save_npz_atomic, seed_everything,
    write_json_atomic,
)


@dataclass
class RunResult:
    config: dict
    dataset: dict
    history: list[dict]
    best_epoch: int
    valid: dict[str, float]
    test: dict[str, float]
    per_user_test: dict[str, np.ndarray] = field(repr=False)
    n_parameters: int
    environment: dict
    timing: dict
    model: Any = field(default=None, repr=False)
    paths: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in ("config", "dataset", "history", "best_epoch", "valid", "test",
                                           "n_parameters", "environment", "timing", "paths")}
        return d


def environment(device: torch.device) -> dict:
    env = {
        "mealrec": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    return env


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(
    run: RunConfig,
    dataset,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    model=None,
    resume: bool = True,
) -> RunResult:
    """Train ``run.model`` on ``dataset`` with early stopping; evaluate the best checkpoint on test.

    ``out``: path of the JSON result (``.npz`` and ``.pt`` are written beside it), or None.
    ``model``: an already-built model to train instead of building ``run.model``.
    ``resume``: with ``out``, save the run's state after every epoch and resume from a saved state of
    the same configuration (False: start afresh, replacing any saved state).
    """
    from tqdm.auto import tqdm

    tc = run.train
    log = log or (lambda s: print(s, file=sys.stderr))
    if tc.valid_metric not in ("hr@10", "hr@20", "ndcg@10", "ndcg@20"):
        raise MealRecError(f"train.valid_metric must be one of hr@10, hr@20, ndcg@10, ndcg@20; got {tc.valid_metric!r}")
    for name in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
        if getattr(tc, name) < 1:
            raise MealRecError(f"train.{name} must be >= 1, got {getattr(tc, name)}")
    device = resolve_device(tc.device)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    seed_everything(tc.seed)
    memory_before_model = current_memory_mb(device)
    if model is None:
        model = build_model(run.model, run.model_config, dataset)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    shuffle_gen = torch.Generator().manual_seed(tc.seed)
    train_split = dataset.train
    n_train = len(train_split)
    n_batches = math.ceil(n_train / tc.batch_size)

    config = {**run.to_dict(), "seed": tc.seed}
    state_file = resume_state.state_path(out) if out is not None else None
    history: list[dict] = []
    best_score, best_epoch, best_state, best_valid = -math.inf, 0, None, {}
    since_best, start, stopped = 0, 1, False
    saved = resume_state.load(state_file, config, dataset.data_hash, log) if state_file and resume else None
    if saved is not None:
        loop = resume_state.restore(saved, model, optimizer, shuffle_gen)
        history, best_score, best_epoch = loop["history"], loop["best_score"], loop["best_epoch"]
        best_state, best_valid, since_best, stopped = loop["best_state"], loop["best_valid"], loop["since_best"], \
            loop["stopped"]
        start = len(history) + 1
        log(f"resuming {run.model} on {dataset.name} after epoch {len(history)} from {state_file}")
    epochs = tqdm(range(start, tc.epochs + 1), desc=f"{run.model} on {dataset.name}", disable=not progress,
                  initial=start - 1, total=tc.epochs)
    for epoch in epochs:
        if stopped:
            break
        rec: dict[str, Any] = {"epoch": epoch}
        with PeakMemory(device) as mem:
            model.train()
            perm = torch.randperm(n_train, generator=shuffle_gen)
            sums: dict[str, float] = {}
            with Timer(device) as t_train:
                for b in range(n_batches):
                    idx = perm[b * tc.batch_size : (b + 1) * tc.batch_size]
                    batch = _to(train_split.batch(idx), device)
                    terms = model.calculate_loss(batch)
                    loss = terms["loss"]
                    if not torch.isfinite(loss):
                        raise MealRecError(
                            f"{run.model}: loss became {loss.item()} at epoch {epoch}, batch {b}; lower train.lr"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            rec["train_time_s"] = t_train.seconds
            rec.update({f"train_{k}": v / n_train for k, v in sums.items()})
            if epoch % tc.eval_every == 0 or epoch == tc.epochs:
                model.eval()
                with Timer(device) as t_eval:
                    valid, _ = evaluate(model.full_sort_predict, dataset.valid, tc.eval_batch_size, device)
                rec["eval_time_s"] = t_eval.seconds
                rec["valid"] = valid
        rec["peak_memory_mb"] = mem.peak_mb
        history.append(rec)
        if "valid" in rec:
            score = rec["valid"][tc.valid_metric]
            if score > best_score:
                best_score, best_epoch, best_valid = score, epoch, rec["valid"]
                best_state = copy.deepcopy(model.state_dict())
                since_best = 0
            else:
                since_best += 1
            epochs.set_postfix(loss=f"{rec['train_loss']:.4f}", **{tc.valid_metric: f"{score:.4f}"}, best=best_epoch)
            stopped = since_best >= tc.patience
        if state_file is not None:
            loop = {"history": history, "best_score": best_score, "best_epoch": best_epoch, "best_state": best_state,
                    "best_valid": best_valid, "since_best": since_best, "stopped": stopped}
            resume_state.save(state_file, config, dataset.data_hash, loop, model, optimizer, shuffle_gen)
        if stopped:
            log(f"early stop at epoch {epoch}: no better valid {tc.valid_metric} for {tc.patience} evaluations")
            break
    epochs.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with Timer(device) as t_test:
        test, per_user = evaluate(model.full_sort_predict, dataset.test, tc.eval_batch_size, device)

    evals = [h for h in history if "eval_time_s" in h]
    timing = {
        "epochs_run": len(history),
        "train_time_per_epoch_s": float(np.mean([h["train_time_s"] for h in history])),
        "eval_time_per_epoch_s": float(np.mean([h["eval_time_s"] for h in evals])) if evals else None,
        "test_eval_time_s": t_test.seconds,
        "peak_memory_mb": float(max(h["peak_memory_mb"] for h in history)),
        "memory_before_model_mb": memory_before_model,
        "memory_measure": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS (sampled)",
    }
    feats = getattr(dataset, "_features", None)
    ds_info = {
        "name": dataset.name,
        "stats": dataset.stats(),
        "data_hash": dataset.data_hash,
        "metadata": dataset.metadata,
        "features": feats.info if feats is not None else None,
    }
    result = RunResult(
        config=config,
        dataset=ds_info,
        history=history,
        best_epoch=best_epoch,
        valid=best_valid,
        test=test,
        per_user_test=per_user,
        n_parameters=model.n_parameters(),
        environment=environment(device),
        timing=timing,
        model=model,
    )
    if out is not None:
        save_result(result, out)
        state_file.unlink(missing_ok=True)
    return result


def save_result(result: RunResult, out: str | Path) -> Path:
    """Write ``out`` (JSON), ``out.npz`` (per-user test metrics) and ``out.pt`` (checkpoint)."""
    out = Path(out)
    if out.suffix != ".json":
        raise MealRecError(f"result path must end in .json, got {out}")
    npz = out.with_suffix(".npz")
    ckpt = out.with_suffix(".pt")
    result.paths = {"per_user_test": npz.name, "checkpoint": ckpt.name}
    save_npz_atomic(npz, users=np.arange(len(next(iter(result.per_user_test.values())))), **result.per_user_test)
    if result.model is not None:
        with atomic_path(ckpt) as tmp:
            torch.save(
                {"model": result.config["model"], "config": result.config, "state_dict": result.model.state_dict()},
                tmp,
            )
    write_json_atomic(out, result.to_json())
    return out


def load_checkpoint(path: str | Path, dataset):
    """Rebuild the model of a ``.pt`` checkpoint written by :func:`save_result` on ``dataset``
    (the same dataset it was trained on), in evaluation mode."""
    from .config import replace_checked
    from .models import get_model_class

    state = torch.load(path, map_location="cpu", weights_only=False)
    name = state["model"]
    cls = get_model_class(name)
    cfg = replace_checked(cls.Config(), state["config"]["model_config"], f"{path} [model_config]")
    model = build_model(name, cfg, dataset)
    model.load_state_dict(_renamed(state["state_dict"], model.state_dict().keys()))
    return model.eval()


def _renamed(state: dict, wanted) -> dict:
    """A checkpoint's state dict with the names of modules that have since moved (the SASRec-style
    encoder into ``seq`` / :class:`~mealrec.models.layers.SequenceEncoder`) brought up to date."""
    state, wanted = dict(state), set(wanted)
    for key in wanted - state.keys():
        for old in (key.replace("seq.", "", 1), key.replace(".position_embedding.", ".position.")):
            if old in state and old not in wanted:
                state[key] = state.pop(old)
                break
    return state


def load_result(path: str | Path) -> dict:
    """Read a result JSON and attach its per-user test metrics under ``per_user_test``."""
    import json

    path = Path(path)
    with open(path, encoding="utf-8") as f:
        res = json.load(f)
    npz = path.with_suffix(".npz")
    if npz.exists():
        with np.load(npz) as z:
            res["per_user_test"] = {k: z[k] for k in z.files if k != "users"}
    return res


__all__ = ["RunResult", "train", "save_result", "load_checkpoint", "load_result"]
