"""Where things are: the checkout (:func:`repo_root`) and the folder holding the MicroLens files
(:func:`find_data_dir`), found the same way by the command line, the notebooks and the tests."""
from __future__ import annotations

import os
from pathlib import Path

from ..utils import MealRecError


def repo_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "notebooks").is_dir() or not (root / "book").is_dir():
        raise MealRecError(f"`mealrec reproduce` runs from a checkout of the repository; {root} has no notebooks/ "
                           "and book/")
    return root


def data_dir_candidates(data_dir: str | None = None) -> list[str]:
    """Where data is looked for, in order: ``data_dir``, ``$MEALREC_DATA``, ``../shared/data`` beside the checkout."""
    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    return [c for c in (data_dir, os.environ.get("MEALREC_DATA"), str(shared)) if c]


def find_data_dir(data_dir: str | None = None) -> str | None:
    """``data_dir``, else ``$MEALREC_DATA``, else ``../shared/data`` beside the checkout, if it
    holds the MicroLens-50K files; None when none does. A ``data_dir`` given that lacks them fails."""
    from ..data import microlens

    for cand in data_dir_candidates(data_dir):
        try:
            microlens.locate(cand)
            return str(Path(cand).resolve())
        except MealRecError:
            if cand == data_dir:
                raise
    return None


__all__ = ["data_dir_candidates", "find_data_dir", "repo_root"]
