"""MicroLens-50K: strict readers for the official files, and their download.

Data: Y. Ni, Y. Cheng, X. Liu, J. Fu, Y. Li, X. He, Y. Zhang, F. Yuan (2023),
*A content-driven micro-video recommendation dataset at scale*, arXiv:2309.15379.
Official release: https://recsys.westlake.edu.cn/MicroLens-50k-Dataset/ .

Files (looked up in ``<data_dir>/microlens-50k/``):

* ``MicroLens-50k_pairs.tsv``: no header; ``user<TAB>item item item ...``; items in
  chronological order (the dataset has no timestamps, so position is time).
* ``MicroLens-50k_titles.csv``: header ``item,title``; quoted UTF-8 titles.

Both are read as UTF-8 with an optional byte-order mark (as some editors save them).

Decisions:

* A malformed line, a non-integer id, or a user listed twice is an error naming the
  file and line. A user whose line repeats an item keeps every occurrence (the
  official file has none).
* An item that appears in the pairs but has no title row, or whose title is empty,
  gets the empty title ``""``; the count is stored in the dataset's metadata
  (``items_without_title``) and a warning is printed. Its text feature is then the
  encoder's embedding of the empty string (zeros for the hashed fallback).
* The visual features of MicroLens are **synthetic placeholders**: no frame or
  cover features of MicroLens can be had offline here. The metadata says so.
"""
from __future__ import annotations

import csv
import os
import sys
import urllib.request
import warnings
from pathlib import Path

from ..utils import MealRecError, atomic_path, sha256_file

SUBDIR = "microlens-50k"
PAIRS = "MicroLens-50k_pairs.tsv"
TITLES = "MicroLens-50k_titles.csv"
OFFICIAL_URL = "https://recsys.westlake.edu.cn/MicroLens-50k-Dataset/"
# SHA-256 of the official files (same as ../shared/data/README.md).
OFFICIAL_SHA256 = {
    PAIRS: "46be22f478aa891b9c2a4b357c1df2ac2478793a99d58d07336e6277b6bf426d",
    TITLES: "244aad5380cbbe0fb43458cfcda5ebe820f534384602f80a64dbbcd07dd30e49",
}
FETCH_HINT = (
    "download it with `mealrec data fetch microlens-50k --data-dir DIR` "
    "(or set MEALREC_DATA / --data-dir to a directory that holds microlens-50k/)"
)


def default_data_dir() -> Path | None:
    env = os.environ.get("MEALREC_DATA")
    return Path(env) if env else None


def locate(data_dir: str | os.PathLike | None) -> Path:
    """The folder holding the MicroLens-50K files, with an actionable error if absent."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if base is None:
        raise MealRecError(
            f"no data directory given for MicroLens-50K: pass --data-dir or set MEALREC_DATA; {FETCH_HINT}"
        )
    if not base.is_dir():
        raise MealRecError(f"data directory {base} does not exist; {FETCH_HINT}")
    folder = base / SUBDIR if (base / SUBDIR).is_dir() else base
    if not (folder / PAIRS).exists():
        raise MealRecError(f"{PAIRS} not found in {folder}; {FETCH_HINT}")
    return folder


def read_pairs(path: str | os.PathLike, max_user_id: int | None = None) -> dict[int, list[int]]:
    """Read the pairs file strictly. Errors name the file and the 1-based line number."""
    path = Path(path)
    if not path.exists():
        raise MealRecError(f"pairs file not found: {path}; {FETCH_HINT}")
    seqs: dict[int, list[int]] = {}
    seen_line: dict[int, int] = {}
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[1].strip():
                raise MealRecError(
                    f"{path}:{lineno}: malformed line, expected 'user<TAB>item item ...', got {line[:80]!r}"
                )
            try:
                user = int(parts[0])
            except ValueError:
                raise MealRecError(f"{path}:{lineno}: user id {parts[0]!r} is not an integer") from None
            items = []
            for tok in parts[1].split():
                try:
                    items.append(int(tok))
                except ValueError:
                    raise MealRecError(f"{path}:{lineno}: item id {tok!r} is not an integer") from None
            if user in seen_line:
                raise MealRecError(
                    f"{path}:{lineno}: user {user} already appeared on line {seen_line[user]}; "
                    "each user must have one line"
                )
            seen_line[user] = lineno
            if max_user_id is None or user <= max_user_id:
                seqs[user] = items
    if not seqs:
        raise MealRecError(f"{path}: no interactions read")
    return seqs


def read_titles(path: str | os.PathLike) -> dict[int, str]:
    """Read ``item,title`` rows strictly (errors name file and line)."""
    path = Path(path)
    if not path.exists():
        raise MealRecError(f"titles file not found: {path}; {FETCH_HINT}")
    titles: dict[int, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["item", "title"]:
            raise MealRecError(f"{path}:1: expected header 'item,title', got {header!r}")
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) < 2:
                raise MealRecError(f"{path}:{lineno}: expected 2 columns 'item,title', got {row!r}")
            try:
                item = int(row[0])
            except ValueError:
                raise MealRecError(f"{path}:{lineno}: item id {row[0]!r} is not an integer") from None
            titles[item] = ",".join(row[1:]) if len(row) > 2 else row[1]
    return titles


def titles_for(item_ids, titles: dict[int, str], source: str) -> tuple[list[str], int]:
    """Titles in remapped order; missing or empty titles become ``""`` (counted and warned)."""
    out = [titles.get(int(i), "") for i in item_ids]
    missing = sum(1 for t in out if not t.strip())
    if missing:
        warnings.warn(f"{source}: {missing} item(s) have no title; their title is taken as empty", stacklevel=2)
    return out, missing


# --------------------------------------------------------------------------- download
def fetch(
    data_dir: str | os.PathLike,
    base_url: str | None = None,
    files: dict[str, str] | None = None,
    progress: bool = True,
) -> Path:
    """Download the official files into ``<data_dir>/microlens-50k/``, verifying SHA-256.

    Each file is written to a temporary file and renamed only once its hash matches; a
    mismatch removes the temporary file and raises. Files already present with the right
    hash are kept. ``base_url`` defaults to ``$MEALREC_MICROLENS_URL`` or the official site.
    """
    base_url = base_url or os.environ.get("MEALREC_MICROLENS_URL") or OFFICIAL_URL
    if not base_url.endswith("/"):
        base_url += "/"
    files = files or OFFICIAL_SHA256
    folder = Path(data_dir) / SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in files.items():
        dest = folder / name
        if dest.exists() and sha256_file(dest) == expected:
            if progress:
                print(f"{dest}: present, SHA-256 verified", file=sys.stderr)
            continue
        url = base_url + name
        with atomic_path(dest) as tmp:
            _download(url, tmp, progress)
            got = sha256_file(tmp)
            if got != expected:
                raise MealRecError(
                    f"download of {url} has SHA-256 {got}, expected {expected}; the file was removed. "
                    "Retry, or check that the URL serves the official MicroLens-50K release."
                )
        if progress:
            print(f"{dest}: downloaded, SHA-256 verified", file=sys.stderr)
    return folder


def _download(url: str, dest: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, disable=not progress) as bar:
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:  # URLError, HTTPError, timeouts
        raise MealRecError(f"could not download {url}: {e}") from e
