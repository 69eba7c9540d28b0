"""The state a training run saves after every epoch, so that a killed run resumes where it stopped.

:func:`mealrec.trainer.train` writes ``<result>.resume.pt`` (atomically: a temp file renamed) after
each epoch and removes it once the result is written. The state holds the model, the optimiser, every
attribute the model declares in ``training_attributes`` (schedules kept outside the parameters), every
random stream the loop draws from (torch's global and CUDA generators, the epoch-shuffle generator,
numpy's and Python's), the early-stopping state (best score, epoch, parameters and validation
metrics, epochs since the best) and the history. A run started again with the same configuration on
the same data resumes after the last finished epoch and ends bit-identical to an uninterrupted run
(``tests/test_resume.py``). A state written for another configuration, other data or by another
resume format is set aside and the run starts afresh.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .utils import atomic_path

#: Bumped when the saved fields change; a state of another format is not resumed.
FORMAT = 1


def state_path(out: str | Path) -> Path:
    """Where the run whose result goes to ``out`` (``*.json``) keeps its resume state."""
    return Path(out).with_suffix(".resume.pt")


def _identity(config: dict, data_hash: str) -> dict:
    """What must match for a state to be resumed: the configuration (where it runs aside: device,
    threads and the config files' paths) and the data."""
    train = {k: v for k, v in config.get("train", {}).items() if k not in ("device", "num_threads")}
    config = {**{k: v for k, v in config.items() if k != "sources"}, "train": train}
    return {"format": FORMAT, "config": config, "data_hash": data_hash}


def capture_rng(shuffle_gen: torch.Generator) -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state(), "shuffle": shuffle_gen.get_state(), "numpy": np.random.get_state(),
           "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any], shuffle_gen: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    shuffle_gen.set_state(rng["shuffle"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if "cuda" in rng:
        torch.cuda.set_rng_state_all(rng["cuda"])


def save(path: Path, config: dict, data_hash: str, loop: dict[str, Any], model: torch.nn.Module,
         optimizer: torch.optim.Optimizer, shuffle_gen: torch.Generator) -> None:
    """Write the state after a finished epoch; ``loop`` is the trainer's own bookkeeping (epoch,
    history, early-stopping state)."""
    state = {"format": FORMAT, "config": config, "data_hash": data_hash, "loop": loop, "model": model.state_dict(),
             "model_attributes": {a: getattr(model, a) for a in getattr(model, "training_attributes", ())},
             "optimizer": optimizer.state_dict(), "rng": capture_rng(shuffle_gen)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: Path, config: dict, data_hash: str, log) -> dict[str, Any] | None:
    """The saved state at ``path`` when it belongs to this run (same configuration and data); else
    None, after moving an unusable file aside (``*.stale``) and saying why."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):  # a save killed before its rename
        tmp.unlink(missing_ok=True)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        ident = {k: state.get(k) for k in ("format", "config", "data_hash")}
        ident["config"] = _identity(ident["config"] or {}, "")["config"]
    except Exception as e:  # noqa: BLE001 - any unreadable file is set aside, never half-used
        why = f"it cannot be read ({type(e).__name__}: {e})"
    else:
        if ident == _identity(config, data_hash):
            return state
        what = [k for k in ident if ident[k] != _identity(config, data_hash)[k]]
        why = f"it was saved for another {' and '.join(what)}"
    stale = path.with_suffix(".stale")
    path.replace(stale)
    log(f"not resuming from {path}: {why}; moved it to {stale.name} and starting afresh")
    return None


def restore(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            shuffle_gen: torch.Generator) -> dict[str, Any]:
    """Load ``state`` into the model, optimiser and random streams; returns the loop bookkeeping."""
    model.load_state_dict(state["model"])
    for name, value in state["model_attributes"].items():
        setattr(model, name, value)
    optimizer.load_state_dict(state["optimizer"])
    restore_rng(state["rng"], shuffle_gen)
    return state["loop"]


__all__ = ["FORMAT", "state_path", "save", "load", "restore"]
