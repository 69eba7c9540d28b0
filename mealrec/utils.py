"""Small shared helpers: atomic writes, hashing, seeding, timing and peak memory."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch


class MealRecError(Exception):
    """An error caused by user input (a file, a name, a parameter); the message says how to fix it."""


# --------------------------------------------------------------------------- files
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Nothing is left half-written: on any exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")
    return Path(path)


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return Path(path)


def save_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return Path(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_arrays(*arrays: np.ndarray, extra: str = "") -> str:
    """Content hash of arrays (dtype, shape and bytes) plus an optional string."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(extra.encode())
    return h.hexdigest()


def cache_dir() -> Path:
    """Feature cache: ``$MEALREC_CACHE`` or ``~/.cache/mealrec``."""
    return Path(os.environ.get("MEALREC_CACHE") or Path.home() / ".cache" / "mealrec")


_CACHE_USES: list[list[tuple[str, bool]]] = []


def cache_file(*parts: str) -> Path:
    """``cache_dir() / parts``: where a one-off input (features, a sememe matrix, a fitted S2IDM) is
    cached under a name derived from its inputs. Inside :func:`tracking_cache` the use is recorded."""
    path = cache_dir().joinpath(*parts)
    for uses in _CACHE_USES:
        uses.append(("/".join(parts), path.exists()))
    return path


@contextlib.contextmanager
def tracking_cache() -> Iterator[list[tuple[str, bool]]]:
    """Record the cache files used in the block, as ``(path relative to cache_dir(), existed)``:
    what a Ray executor ships to its workers so that none of them builds them again."""
    uses: list[tuple[str, bool]] = []
    _CACHE_USES.append(uses)
    try:
        yield uses
    finally:
        _CACHE_USES.remove(uses)


# --------------------------------------------------------------------------- seeding
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- measuring
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the lifetime peak
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory inside a ``with`` block, measured the same way for every model.

    On CUDA: ``torch.cuda.max_memory_allocated`` after a reset (MB of tensors).
    On CPU: the peak resident set size of the process, sampled every ``interval`` s
    by a background thread (MB). CPU figures include the interpreter and the data,
    so compare models by ratios measured in one process, never absolute numbers
    across machines.
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.005):
        self.device = torch.device(device)
        self.interval = interval
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mb = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            self._peak = _rss_bytes()
            self.start_mb = self._peak / 2**20
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
            self.peak_mb = self._peak / 2**20


def current_memory_mb(device: torch.device | str = "cpu") -> float:
    """Memory in use now, by the same measure as :class:`PeakMemory`."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _rss_bytes() / 2**20


class Timer:
    """Wall-clock seconds of a ``with`` block (synchronising CUDA first)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seconds = 0.0

    def __enter__(self) -> "Timer":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self._t0


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MealRecError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return dev
