"""Positive controls: planted datasets whose answer lies in the content, so that a model that
reads content must beat one that does not.

``control-content`` (does content reach the score at all?)
    ``n_topics`` topics, each with ``hubs_per_topic`` warm "hub" items, and single-use "tail"
    items. A user's sequence is ``pairs_per_user`` pairs (tail of topic k, then a hub of topic k),
    the topic of each pair drawn anew, so nothing earlier in the history tells the next target's
    topic. Tail frames show their topic (its prototype plus noise in every frame); hub frames
    are shared background vectors plus noise; titles are random words with no topic. The last
    input of the test instance is a tail that no training instance contains (it is the
    validation target), so its ID embedding is never trained.

    * Floor (an ID-only model): nothing tells the topic, so at best uniform over the
      ``n_topics * hubs_per_topic`` hubs: HR@10 = 10 / H and NDCG@10 = (1/H) sum_{r=1..10}
      1 / log2(r + 1); with 20 x 5 hubs, 0.100 and 0.045.
    * Ceiling (a model that reads the tail's topic perfectly): uniform over the topic's
      ``hubs_per_topic`` hubs: HR@10 = 1 and NDCG@10 = (1/h) sum_{r=1..h} 1 / log2(r + 1);
      with h = 5, 1.000 and 0.590.
    * Validation targets are tails (unpredictable), so validation does not measure the test's
      task; model selection on this control uses fixed epochs, not the validation metric.

:func:`reference_scores` is the content-reading reference: it scores each hub by the cosine
between the last item's mean frame and the mean frame of the tails that preceded that hub in
training, learning the topic-to-hub map from the training data alone.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same parameters give the same data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .features import N_FRAMES, VISUAL_DIM

KINDS = ("content",)


@dataclass
class ControlParams:
    kind: str = "content"
    n_users: int = 2000
    n_topics: int = 20
    hubs_per_topic: int = 5
    pairs_per_user: int = 4
    frame_noise: float = 1.0
    n_background: int = 16
    title_words: int = 8
    vocabulary: int = 500
    seed: int = 2020


@dataclass
class ControlWorld:
    """The generated data and its latent truth (original item ids are 1-based)."""

    user_seqs: dict[int, list[int]]
    item_topic: np.ndarray  # (n_items,) topic of each original item
    is_hub: np.ndarray  # (n_items,) bool
    titles: list[str]
    params: ControlParams


def _ndcg_uniform(n: int, k: int = 10) -> float:
    """NDCG@k of a target placed uniformly among ``n`` equally scored candidates ranked first."""
    return float(sum(1.0 / np.log2(r + 1) for r in range(1, min(n, k) + 1)) / n)


def floor_and_ceiling(p: ControlParams) -> dict[str, dict[str, float]]:
    """The analytic floor (ID-only) and ceiling (perfect content reader), as the docstring derives them."""
    hubs = p.n_topics * p.hubs_per_topic
    return {"floor": {"hr@10": min(1.0, 10 / hubs), "ndcg@10": _ndcg_uniform(hubs)},
            "ceiling": {"hr@10": 1.0 if p.hubs_per_topic <= 10 else 10 / p.hubs_per_topic,
                        "ndcg@10": _ndcg_uniform(p.hubs_per_topic)}}


def generate(p: ControlParams) -> ControlWorld:
    if p.kind not in KINDS:
        raise ValueError(f"unknown control kind {p.kind!r}; valid: {', '.join(KINDS)}")
    if p.pairs_per_user < 2:
        raise ValueError("pairs_per_user must be >= 2 (leave-one-out needs a training part)")
    rng = np.random.default_rng(p.seed)
    n_hubs = p.n_topics * p.hubs_per_topic
    hub_topic = np.repeat(np.arange(p.n_topics), p.hubs_per_topic)
    topics = rng.integers(0, p.n_topics, size=(p.n_users, p.pairs_per_user))
    hubs = topics * p.hubs_per_topic + rng.integers(0, p.hubs_per_topic, size=topics.shape)  # 0-based hub index
    tails = n_hubs + np.arange(p.n_users * p.pairs_per_user).reshape(topics.shape)  # one fresh tail per pair
    seqs = np.stack([tails, hubs], axis=2).reshape(p.n_users, -1) + 1  # tail, hub, tail, hub, ... (1-based)
    user_seqs = {u + 1: seqs[u].tolist() for u in range(p.n_users)}
    item_topic = np.concatenate([hub_topic, topics.reshape(-1)])
    is_hub = np.arange(len(item_topic)) < n_hubs
    words = np.array([f"w{i:03d}" for i in range(p.vocabulary)])
    titles = [" ".join(row) for row in words[rng.integers(0, p.vocabulary, size=(len(item_topic), p.title_words))]]
    return ControlWorld(user_seqs, item_topic, is_hub, titles, p)


def frames_for(world: ControlWorld, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(n+1, K, 768)`` (float16, row 0 padding) and their mean, for the remapped items whose
    original ids are ``item_ids``: a tail shows its topic's prototype in every frame, a hub shows
    background; both with i.i.d. noise."""
    p = world.params
    rng = np.random.default_rng([p.seed, 7])
    protos = rng.standard_normal((p.n_topics, VISUAL_DIM), dtype=np.float32)
    background = rng.standard_normal((p.n_background, VISUAL_DIM), dtype=np.float32)
    orig = np.asarray(item_ids) - 1
    n = len(orig)
    signal = np.where(world.is_hub[orig][:, None, None],
                      background[rng.integers(0, p.n_background, size=(n, N_FRAMES))],
                      protos[world.item_topic[orig]][:, None, :])
    frames = np.zeros((n + 1, N_FRAMES, VISUAL_DIM), dtype=np.float16)
    frames[1:] = (signal + p.frame_noise * rng.standard_normal(signal.shape, dtype=np.float32)).astype(np.float16)
    return frames, frames.astype(np.float32).mean(axis=1)


def reference_scores(ds) -> callable:
    """The content-reading reference as a score function for :func:`mealrec.evaluation.evaluate`:
    each item is scored by the cosine between the last input item's mean frame and the mean of
    the mean frames of the items that preceded it as training targets (items never preceded
    score -inf), learned from the training instances only."""
    visual = ds.features().visual.float()  # (n_items, 768): mean frame
    train = ds.train
    last = train.item_seq[torch.arange(len(train)), train.item_seq_len - 1]
    profile = torch.zeros_like(visual).index_add_(0, train.target, visual[last])
    count = torch.bincount(train.target, minlength=visual.shape[0]).float()
    profile = torch.nn.functional.normalize(profile / count.clamp(min=1)[:, None], dim=1)

    def score(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        item = batch["item_seq"][torch.arange(len(batch["item_seq"])), batch["item_seq_len"] - 1]
        query = torch.nn.functional.normalize(visual[item], dim=1)
        out = query @ profile.T
        return out.masked_fill(count[None, :] == 0, float("-inf"))

    return score


__all__ = ["ControlParams", "ControlWorld", "KINDS", "floor_and_ceiling", "frames_for", "generate", "reference_scores"]
