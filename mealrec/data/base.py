"""The dataset object every model and the trainer see, and the leave-one-out split.

Item ids are remapped to ``1..n`` in ascending order of their original ids; id 0 is
padding. ``n_items`` counts the padding item (RecBole's convention), so score
matrices are ``[B, n_items]`` and column 0 is never a valid recommendation.

Leave-one-out (paper Section 5.1.1, DESIGN.md): per user, the last item is the test
target, the second-to-last the validation target, the rest is training. Training
instances are every prefix of the training part (RecBole's augmentation): for
``s = [i1 .. in]`` the targets ``i2 .. i(n-2)`` each get the at most ``max_len``
items before them. Inputs are left-aligned and right-padded with 0, as in RecBole.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..utils import MealRecError, sha256_arrays


@dataclass
class Split:
    """Instances of one split as tensors: inputs ``item_seq (N, L)``, ``item_seq_len (N,)``,
    ``target (N,)`` and ``user (N,)`` (0-based user index)."""

    item_seq: torch.Tensor
    item_seq_len: torch.Tensor
    target: torch.Tensor
    user: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def batch(self, index: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        return {
            "item_seq": self.item_seq[index],
            "item_seq_len": self.item_seq_len[index],
            "target": self.target[index],
            "user": self.user[index],
        }


def _instances(flat: np.ndarray, starts: np.ndarray, targets_pos: np.ndarray, users: np.ndarray, max_len: int) -> Split:
    """Vectorised construction of instances whose targets sit at ``targets_pos`` in ``flat``."""
    lens = np.minimum(max_len, targets_pos - starts)  # (N,)
    if (lens < 1).any():
        raise MealRecError("internal: an instance has an empty history")
    ar = np.arange(max_len)[None, :]
    idx = targets_pos[:, None] - lens[:, None] + ar  # (N, L)
    mask = ar < lens[:, None]
    seq = np.where(mask, flat[np.clip(idx, 0, len(flat) - 1)], 0)
    return Split(
        item_seq=torch.from_numpy(seq.astype(np.int64)),
        item_seq_len=torch.from_numpy(lens.astype(np.int64)),
        target=torch.from_numpy(flat[targets_pos].astype(np.int64)),
        user=torch.from_numpy(users.astype(np.int64)),
    )


def leave_one_out(seqs: list[np.ndarray], max_len: int) -> dict[str, Split]:
    """Split remapped sequences (each of length >= 3) into train / valid / test instances."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if (lengths < 3).any():
        bad = int(np.argmin(lengths))
        raise MealRecError(
            f"user index {bad} has {lengths[bad]} interactions; leave-one-out needs at least 3 "
            "(apply k-core filtering with k >= 3)"
        )
    flat = np.concatenate(seqs).astype(np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    users = np.arange(len(seqs))
    # train targets: positions start+1 .. end-3 (inclusive) of each user
    n_train = lengths - 3
    tr_users = np.repeat(users, n_train)
    tr_starts = np.repeat(starts, n_train)
    offs = np.arange(n_train.sum()) - np.repeat(np.cumsum(n_train) - n_train, n_train)
    tr_pos = tr_starts + 1 + offs
    return {
        "train": _instances(flat, tr_starts, tr_pos, tr_users, max_len),
        "valid": _instances(flat, starts, ends - 2, users, max_len),
        "test": _instances(flat, starts, ends - 1, users, max_len),
    }


@dataclass
class ItemFeatures:
    """Per-item features; row 0 is the padding item (all zeros).

    ``frames (n_items, K, d_v)`` float16, ``visual (n_items, d_v)`` global visual, ``text (n_items, d_t)``.
    """

    frames: torch.Tensor
    visual: torch.Tensor
    text: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


class SequentialDataset:
    """Remapped user sequences, their leave-one-out split and (lazily) item features."""

    def __init__(
        self,
        name: str,
        seqs: list[np.ndarray],
        n_items: int,
        max_len: int,
        metadata: dict[str, Any],
        titles: list[str] | None = None,
        feature_builder: Callable[["SequentialDataset"], ItemFeatures] | None = None,
    ):
        self.name = name
        self.seqs = seqs
        self.n_items = n_items  # including padding item 0
        self.n_users = len(seqs)
        self.max_len = max_len
        self.metadata = metadata
        self.titles = titles
        self._feature_builder = feature_builder
        self._features: ItemFeatures | None = None
        self.splits = leave_one_out(seqs, max_len)
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        self.data_hash = sha256_arrays(lengths, np.concatenate(seqs).astype(np.int64), extra=f"n_items={n_items}")

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def valid(self) -> Split:
        return self.splits["valid"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.seqs))

    def stats(self) -> dict[str, Any]:
        """Table 1's columns: #Users, #Items, #Interactions, Avg. Length, Sparsity."""
        n_real_items = self.n_items - 1
        inter = self.n_interactions
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": n_real_items,
            "interactions": inter,
            "avg_length": inter / self.n_users,
            "sparsity": 1.0 - inter / (self.n_users * n_real_items),
        }

    def features(self) -> ItemFeatures:
        """Item features, built on first use and cached on disk (see :mod:`mealrec.data.features`)."""
        if self._features is None:
            if self._feature_builder is None:
                raise MealRecError(f"dataset {self.name!r} has no item features")
            self._features = self._feature_builder(self)
        return self._features

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"SequentialDataset({self.name}: {s['users']} users, {s['items']} items, "
            f"{s['interactions']} interactions, max_len={self.max_len})"
        )


def remap(user_seqs: dict[int, list[int]]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Remap original ids: users sorted, items to 1..n in ascending original id.

    Returns ``(seqs, user_ids, item_ids)`` where ``item_ids[j-1]`` is the original id of item ``j``.
    """
    users = np.array(sorted(user_seqs), dtype=np.int64)
    item_ids = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in user_seqs.values()]))
    seqs = [np.searchsorted(item_ids, np.asarray(user_seqs[u], dtype=np.int64)) + 1 for u in users]
    return seqs, users, item_ids


def k_core(user_seqs: dict[int, list[int]], k: int) -> dict[int, list[int]]:
    """Iterative k-core on users and items: repeat until every user and item has >= k interactions.
    Order within each sequence is kept."""
    if k <= 1:
        return {u: list(s) for u, s in user_seqs.items()}
    users = np.array(list(user_seqs), dtype=np.int64)
    lens = np.array([len(s) for s in user_seqs.values()], dtype=np.int64)
    flat_u = np.repeat(np.arange(len(users)), lens)
    flat_i = (
        np.concatenate([np.asarray(s, dtype=np.int64) for s in user_seqs.values()])
        if len(users) else np.zeros(0, np.int64)
    )
    while True:
        _, inv, icount = np.unique(flat_i, return_inverse=True, return_counts=True)
        keep = icount[inv] >= k
        ucount = np.bincount(flat_u[keep], minlength=len(users))
        keep &= ucount[flat_u] >= k
        if keep.all():
            break
        flat_u, flat_i = flat_u[keep], flat_i[keep]
    out: dict[int, list[int]] = {}
    bounds = np.flatnonzero(np.diff(flat_u)) + 1
    for chunk_u, chunk_i in zip(np.split(flat_u, bounds), np.split(flat_i, bounds)):
        if len(chunk_u):
            out[int(users[chunk_u[0]])] = chunk_i.tolist()
    return out
