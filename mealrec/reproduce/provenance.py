"""What every sidecar records beside its numbers: the code (version, commit, whether the tree
differs from it), the profile, the seeds, the data and the device; and the sidecar writer."""
from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path
from typing import Any, Iterable

from .. import __version__
from ..utils import MealRecError, write_json_atomic
from .profiles import Profile
from .store import RunStore, library_source_hash


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def git_dirty() -> bool | None:
    """Whether the library or the notebooks differ from the commit :func:`git_commit` names
    (None outside a git checkout): the commit alone then does not hold the code that ran."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", ":/mealrec", ":/notebooks"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(profile: Profile, datasets: Iterable[str], seeds: Iterable[int], store: RunStore) -> dict:
    """What every sidecar records beside its numbers."""
    hashes = {}
    for name in datasets:
        try:
            hashes[name] = store.dataset(name).data_hash
        except MealRecError as e:  # a real dataset whose files are absent
            hashes[name] = f"unavailable: {e}"
    return {
        "mealrec": __version__,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "library_source_hash": library_source_hash(),
        "profile": profile.to_dict(),
        "seeds": list(seeds),
        "data_hash": hashes,
        "device": store.device,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_sidecar(path: str | Path, numbers: Any, prov: dict) -> Path:
    """The notebook's numbers as JSON, with their provenance, written atomically."""
    return write_json_atomic(path, {"provenance": prov, "results": numbers})


__all__ = ["git_commit", "git_dirty", "provenance", "write_sidecar"]
