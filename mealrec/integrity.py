"""Reading stored files that may be damaged, and what "the same hardware" means for a result.

A stored result can be truncated (a half-copied file), carry git conflict markers (a merge
of two stores) or be a Git LFS pointer instead of the file: :func:`read_result` says which,
naming the file, instead of a bare parse error. :func:`cpu_info` records the CPU model and its
vector instruction sets beside every stored run.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .utils import MealRecError


class CorruptFileError(MealRecError):
    """A stored file that exists but cannot be read; ``.path`` names it, ``.reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot be read: {reason}")

    def __reduce__(self):  # picklable across processes despite the two-argument constructor
        return type(self), (self.path, self.reason)


_CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1"


def diagnose_unreadable(path: str | os.PathLike, content: str | bytes,
                        error: BaseException | None = None) -> str | None:
    """Why ``content`` (the text or bytes of ``path``) cannot be read as JSON or, for a ``.npz``
    path, as an NPZ archive: an empty file, git conflict markers, a Git LFS pointer, else the
    parse ``error`` (found by parsing ``content`` when not given; None if it parses)."""
    if not content:
        return "empty file (0 bytes)"
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    if text.lstrip("\ufeff").startswith(_LFS_POINTER):
        return "a Git LFS pointer, not the file (run `git lfs pull`)"
    if any(line.startswith(_CONFLICT_MARKERS) or line.rstrip("\r") == "=======" for line in text.split("\n")):
        return "git merge conflict markers (resolve the conflict or delete the file)"
    npz = Path(path).suffix == ".npz"
    if error is None:
        try:
            if npz:
                with np.load(io.BytesIO(content if isinstance(content, bytes) else content.encode())) as z:
                    for k in z.files:
                        z[k]
            else:
                json.loads(text.lstrip("\ufeff"))
        except Exception as e:  # noqa: BLE001 - any failure is the diagnosis
            error = e
        else:
            return None
    if npz:
        return f"not a readable .npz archive: {type(error).__name__}: {error}"
    return f"not valid JSON (truncated or damaged?): {error}"


def read_result(path: str | os.PathLike) -> dict:
    """A result JSON with its per-user test metrics (the ``.npz`` beside it, if any) under
    ``per_user_test``, as :func:`mealrec.trainer.load_result` reads it; a file that exists but
    cannot be read raises :class:`CorruptFileError` naming it and why."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        res = json.loads(raw.decode("utf-8-sig"))  # tolerate a byte-order mark added by an editor
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(path, diagnose_unreadable(path, raw, e)) from e
    if not isinstance(res, dict):
        raise CorruptFileError(path, f"not a result: the JSON holds a {type(res).__name__}, not an object")
    npz = path.with_suffix(".npz")
    if npz.exists():
        data = npz.read_bytes()  # an I/O error here is not damage: it propagates
        try:
            with np.load(io.BytesIO(data)) as z:
                res["per_user_test"] = {k: z[k] for k in z.files if k != "users"}
        except Exception as e:  # noqa: BLE001 - parsing bytes in memory: BadZipFile, zlib.error, ValueError, ...
            raise CorruptFileError(npz, diagnose_unreadable(npz, data, e)) from e
    return res


#: The instruction-set flags that can change which float kernels run (and so the last bits of a result).
_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def cpu_info() -> dict[str, Any]:
    """The CPU model and its vector instruction sets (Linux ``/proc/cpuinfo``; the platform's
    processor string elsewhere): with the thread count, what "the same hardware" means."""
    import platform

    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            have = set(value.split())
            flags = [f for f in _CPU_FLAGS if f in have]
    return {"cpu_model": model, "cpu_flags": flags}

__all__ = ["CorruptFileError", "cpu_info", "diagnose_unreadable", "read_result"]
