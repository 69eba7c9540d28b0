"""Extracted item features (the output of ``mealrec features video|text``) for a MicroLens dataset.

Where they are looked up (``get_dataset(..., features=...)``, ``--features`` on the CLI):

* ``"auto"`` (default): ``$MEALREC_FEATURES`` if set, else ``<microlens-50k folder>/features``;
  each of its sub-folders ``video/`` and ``text/`` is used when it holds a ``manifest.json``.
  Without them the dataset keeps its seeded placeholder visual features and encodes its
  titles itself (``mealrec.data.features``), exactly as before.
* a directory: the same layout (``DIR/video``, ``DIR/text``); at least one must exist.
* ``"placeholder"``: ignore extracted features even when present.

Decisions:

* Rows are matched by item id: a video's file stem (``123.mp4`` -> ``123``) or a title's item
  id must equal the MicroLens item id. Items without a row (a video that was skipped as
  corrupt, or never extracted) get **zero** features, counted in the dataset metadata
  (``items_without_video`` / ``items_without_text``) and warned about. No overlap at all is an
  error, since it almost always means the file names are not item ids.
* Frame features must have the shape ``(K, d)`` the manifest states; the models read ``K`` and
  ``d`` from the tensors, so VideoMAE-base (``d = 768``), a tiny test config or any other
  encoder work unchanged.
* Extracted text replaces the title encoder only when ``text_encoder="auto"``; an explicit
  ``minilm``/``hashed`` wins.
* Run keys hash the visual tensors and the text encoder's identity, so runs made on
  placeholder features are never confused with runs on extracted ones.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils import MealRecError

SUBDIR = "features"
MANIFEST = "manifest.json"
MODES = ("auto", "placeholder")


@dataclass
class ExtractedSources:
    video: Path | None = None
    text: Path | None = None

    def describe_video(self) -> str:
        return f"extracted ({_encoder_label(self.video)}) from {self.video}" if self.video else ""

    def text_encoder(self) -> str:
        return f"extracted:{_encoder_label(self.text)}" if self.text else ""


def _manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MealRecError(f"{folder / MANIFEST} cannot be read ({e}); rerun `mealrec features` into {folder}") from e


def _encoder_label(folder: Path) -> str:
    enc = _manifest(folder).get("settings", {}).get("encoder", {})
    if not isinstance(enc, dict):
        return str(enc)
    if "architecture" in enc:  # video: VideoMAE, pretrained or random-init
        src = enc.get("source", "")
        return f"{enc['architecture']} d={enc.get('hidden_size')}, {'pretrained' if src == 'pretrained' else src}"
    return f"{enc.get('encoder', '?')} {enc.get('model', enc.get('file', ''))}".strip()


def locate(features: str | os.PathLike | None, microlens_folder: Path) -> ExtractedSources:
    """Resolve ``features`` (see the module docstring) to the video/text folders to use."""
    if features is None:
        features = "auto"
    if isinstance(features, str) and features == "placeholder":
        return ExtractedSources()
    explicit = not (isinstance(features, str) and features == "auto")
    if explicit:
        base = Path(features)
        if not base.is_dir():
            raise MealRecError(f"features directory {base} does not exist; pass a folder holding video/ and/or text/ "
                               f"made by `mealrec features`, or one of {MODES}")
    else:
        env = os.environ.get("MEALREC_FEATURES")
        base = Path(env) if env else microlens_folder / SUBDIR
    found = ExtractedSources(
        video=base / "video" if (base / "video" / MANIFEST).exists() else None,
        text=base / "text" if (base / "text" / MANIFEST).exists() else None,
    )
    if explicit and found.video is None and found.text is None:
        raise MealRecError(f"{base} holds no extracted features: expected {base / 'video' / MANIFEST} or "
                           f"{base / 'text' / MANIFEST}; make them with "
                           f"`mealrec features video --videos DIR --out {base / 'video'}`")
    for kind, folder in (("video", found.video), ("text", found.text)):
        got = _manifest(folder).get("kind") if folder is not None else kind
        if got != kind:
            raise MealRecError(f"{folder / MANIFEST}: kind is {got!r}, expected {kind!r}")
    return found


def _aligned(folder: Path, item_ids, what: str) -> tuple[np.ndarray | None, np.ndarray, list[str]]:
    from ..extract.store import align_to_items, load_extracted

    ids, frames, glob, _ = load_extracted(folder)
    (frames_a, glob_a), missing = align_to_items([str(i) for i in item_ids], ids, frames, glob)
    if len(missing) == len(item_ids):
        raise MealRecError(f"none of the dataset's {len(item_ids)} items has {what} features in {folder} "
                           f"(stored ids look like {ids[:3]}, item ids like {[str(i) for i in item_ids[:3]]}); "
                           "the inputs must be named by MicroLens item id (e.g. 123.mp4)")
    if missing:
        warnings.warn(f"{folder}: {len(missing)} of {len(item_ids)} items have no extracted {what} features "
                      f"(first: {missing[:5]}); they get zero features", stacklevel=3)
    if not np.isfinite(glob_a.astype(np.float32)).all() or (
        frames_a is not None and not np.isfinite(frames_a.astype(np.float32)).all()
    ):
        raise MealRecError(f"{folder}: extracted {what} features contain NaN or infinite values; re-extract them")
    return frames_a, glob_a, missing


def load_visual(folder: Path, item_ids) -> tuple[np.ndarray, np.ndarray, int]:
    """``frames (n+1, K, d)`` float16 and ``visual (n+1, d)`` float32 (row 0 zero), and the
    number of items without a video."""
    frames, glob, missing = _aligned(folder, item_ids, "video")
    if frames is None:
        raise MealRecError(f"{folder}: the video store has no frame features")
    return frames.astype(np.float16), glob.astype(np.float32), len(missing)


def load_text(folder: Path, item_ids) -> tuple[np.ndarray, int]:
    """Title embeddings ``(n+1, d)`` float32 (row 0 zero), and the number of items without one."""
    _, glob, missing = _aligned(folder, item_ids, "text")
    return glob.astype(np.float32), len(missing)


__all__ = ["ExtractedSources", "MODES", "load_text", "load_visual", "locate"]
