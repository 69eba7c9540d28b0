"""On-disk format of extracted features: a manifest plus resumable, atomically written chunks.

Layout of an output directory::

    manifest.json        format version, kind ("video" | "text") and the settings that made the
                         features (encoder identity, frame rule, dims); a resumed run must match it
    chunk-000000.npz     one chunk per ``chunk_size`` inputs, written to a temp file and renamed,
    chunk-000001.npz     so a chunk is either complete or absent
    report.json          the last run's report (inputs, encoded, skipped with reasons, timings)

Each chunk is an uncompressed ``.npz`` (no pickles) holding

* ``item_ids``  ``(n,)`` unicode — the item id of each row (a video's file stem, a title's item id)
* ``global``    ``(n, d)`` float16 — the global video embedding, or the title embedding
* ``frames``    ``(n, K, d)`` float16 — frame-level features (video only)
* ``sha256``    ``(n,)`` unicode — SHA-256 of the input (the video file; the title's UTF-8 text)
* ``meta``      ``(m,)`` uint8 — UTF-8 JSON ``{"items": {id: {...}}, "skipped": [{...}]}``; the
                skipped inputs of a chunk are recorded there so a resumed run does not retry them

A run resumes by reading the ``item_ids`` and skip lists of the chunks present and processing only
the inputs in neither. Resumption is keyed by item id: an input whose file changed after its chunk
was written is not re-extracted (its recorded SHA-256 shows it; use ``overwrite`` to start over).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..utils import MealRecError, atomic_path, write_json_atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REPORT = "report.json"
_CHUNK_RE = re.compile(r"^chunk-(\d{6})\.npz$")


def natural_key(item_id: str) -> tuple:
    """Sort key: numeric ids by value, then the others by text (``"2" < "10" < "a"``)."""
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


def _chunk_files(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.iterdir() if _CHUNK_RE.match(p.name)) if out_dir.is_dir() else []


def _read_chunk(path: Path, arrays: Iterable[str]) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, Any] = {k: z[k] for k in arrays if k in z.files}
            out["meta"] = json.loads(z["meta"].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise MealRecError(f"chunk {path} cannot be read ({e}); delete it and rerun to re-extract its inputs") from e
    return out


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


class ChunkStore:
    """Writer side of the format. Opening an existing directory checks that its settings match."""

    def __init__(self, out_dir: str | Path, kind: str, settings: dict, overwrite: bool = False):
        self.out_dir = Path(out_dir)
        self.kind = kind
        self.settings = json.loads(json.dumps(settings))  # plain JSON types, so comparison is exact
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stray in self.out_dir.glob(".chunk-*.tmp"):  # left by a killed process (atomic_path cleans up otherwise)
            stray.unlink(missing_ok=True)
        manifest_path = self.out_dir / MANIFEST
        if overwrite:
            for p in _chunk_files(self.out_dir):
                p.unlink()
            (self.out_dir / REPORT).unlink(missing_ok=True)
            manifest_path.unlink(missing_ok=True)
        if manifest_path.exists():
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
            mine = {"format_version": FORMAT_VERSION, "kind": kind, "settings": self.settings}
            theirs = {k: old.get(k) for k in mine}
            if theirs != mine:
                raise MealRecError(
                    f"{self.out_dir} already holds features made with other settings "
                    f"({'; '.join(_diff(theirs, mine))}); use a new output directory, or pass overwrite "
                    "(--overwrite) to delete them and start over"
                )
        else:
            if _chunk_files(self.out_dir):
                raise MealRecError(f"{self.out_dir} has chunk files but no {MANIFEST}; use an empty output directory")
            write_json_atomic(manifest_path, {
                "format_version": FORMAT_VERSION, "kind": kind, "settings": self.settings,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            })

    def done(self) -> tuple[set[str], list[dict]]:
        """Item ids already stored, and the skip records of earlier runs."""
        ids: set[str] = set()
        skipped: list[dict] = []
        for p in _chunk_files(self.out_dir):
            c = _read_chunk(p, ["item_ids"])
            ids.update(str(i) for i in c["item_ids"])
            skipped += c["meta"].get("skipped", [])
        return ids, skipped

    def write_chunk(
        self,
        item_ids: list[str],
        global_: np.ndarray,
        sha256: list[str],
        items_meta: dict[str, dict],
        skipped: list[dict],
        frames: np.ndarray | None = None,
    ) -> Path:
        """Write one chunk atomically; returns its path. ``global_``/``frames`` are cast to float16."""
        n = len(item_ids)
        if global_.shape[0] != n or len(sha256) != n or (frames is not None and frames.shape[0] != n):
            raise ValueError("internal: chunk arrays disagree on the number of rows")
        g16 = global_.astype(np.float16)
        if not np.isfinite(g16).all() or (frames is not None and not np.isfinite(frames.astype(np.float16)).all()):
            raise MealRecError("encoder produced non-finite features (overflow in float16?); "
                               "nothing was written for this chunk")
        existing = [int(_CHUNK_RE.match(p.name).group(1)) for p in _chunk_files(self.out_dir)]
        path = self.out_dir / f"chunk-{(max(existing) + 1 if existing else 0):06d}.npz"
        meta = json.dumps({"items": items_meta, "skipped": skipped}, ensure_ascii=False).encode("utf-8")
        arrays: dict[str, np.ndarray] = {
            "item_ids": np.array(item_ids, dtype=str) if n else np.zeros(0, dtype="<U1"),
            "global": g16,
            "sha256": np.array(sha256, dtype="<U64") if n else np.zeros(0, dtype="<U64"),
            "meta": np.frombuffer(meta, dtype=np.uint8),
        }
        if frames is not None:
            arrays["frames"] = frames.astype(np.float16)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; features are meant to be shared
        return path

    def write_report(self, report: dict) -> Path:
        return write_json_atomic(self.out_dir / REPORT, report)


def load_extracted(out_dir: str | Path) -> tuple[list[str], np.ndarray | None, np.ndarray, dict]:
    """Read an output directory of ``mealrec features video|text``.

    Returns ``(item_ids, frames, global, meta)``: rows sorted by item id (numeric ids by value),
    ``frames`` ``(N, K, d)`` float16 for video features and ``None`` for text, ``global`` ``(N, d)``
    float16 (the global video embedding, or the title embedding), and ``meta`` with the manifest
    (``kind``, ``settings``), per-item records (``items``: checksum, duration, sampled times),
    ``sha256`` per item, the ``skipped`` inputs with reasons, and ``n_chunks``.
    """
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST
    if not manifest_path.exists():
        raise MealRecError(
            f"no extracted features in {out_dir} ({MANIFEST} missing); make them with "
            "`mealrec features video --videos DIR --out OUT` or `mealrec features text --titles FILE --out OUT`"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise MealRecError(
            f"{manifest_path}: format version {manifest.get('format_version')}, expected {FORMAT_VERSION}"
        )
    is_video = manifest.get("kind") == "video"
    ids: list[str] = []
    gs, fs, shas = [], [], []
    items: dict[str, dict] = {}
    skipped: list[dict] = []
    chunks = _chunk_files(out_dir)
    for p in chunks:
        c = _read_chunk(p, ["item_ids", "global", "frames", "sha256"])
        ids += [str(i) for i in c["item_ids"]]
        gs.append(c["global"])
        shas += [str(s) for s in c["sha256"]]
        if is_video:
            if "frames" not in c:
                raise MealRecError(f"chunk {p} has no frames array; delete it and rerun")
            fs.append(c["frames"])
        items.update(c["meta"].get("items", {}))
        skipped += c["meta"].get("skipped", [])
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1}, key=natural_key)[:5]
        raise MealRecError(f"{out_dir}: item ids stored twice ({dup}...); "
                           "the directory was edited by hand? rerun with --overwrite")
    dim = int(manifest["settings"].get("dim", 0))
    k = int(manifest["settings"].get("n_frames", 0))
    order = sorted(range(len(ids)), key=lambda i: natural_key(ids[i]))
    glob = np.concatenate(gs)[order] if gs else np.zeros((0, dim), np.float16)
    frames = None
    if is_video:
        frames = np.concatenate(fs)[order] if fs else np.zeros((0, k, dim), np.float16)
    ids = [ids[i] for i in order]
    meta = {
        "kind": manifest.get("kind"),
        "settings": manifest["settings"],
        "created": manifest.get("created"),
        "items": items,
        "sha256": dict(zip(ids, [shas[i] for i in order])),
        "skipped": skipped,
        "n_chunks": len(chunks),
        "out_dir": str(out_dir),
    }
    return ids, frames, glob, meta


def align_to_items(
    item_ids: list[str], extracted_ids: list[str], *arrays: np.ndarray | None
) -> tuple[list[np.ndarray | None], list[str]]:
    """Reorder extracted rows to a dataset's item order with a zero padding row 0.

    ``item_ids`` are the dataset's raw item ids for items 1..n (index-aligned); returns the arrays
    with ``n + 1`` rows (row 0 and items without features are zero) and the ids that had none.
    A helper for the loader; it does not decide what to do about missing items.
    """
    pos = {i: r for r, i in enumerate(extracted_ids)}
    rows = np.array([pos.get(str(i), -1) for i in item_ids], dtype=np.int64)
    missing = [str(i) for i, r in zip(item_ids, rows) if r < 0]
    out: list[np.ndarray | None] = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        full = np.zeros((len(item_ids) + 1, *a.shape[1:]), dtype=a.dtype)
        ok = rows >= 0
        full[1:][ok] = a[rows[ok]]
        out.append(full)
    return out, missing
