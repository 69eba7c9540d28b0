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

``control-temporal`` (does a model use the *order* of the frames?)
    The same users, pairs, hubs and titles, but every tail shows the same ``K`` base frames,
    in an order that is its topic's (one distinct permutation per topic), plus noise. The multiset
    of a tail's frames, and so their mean, carries no topic; only their order does. Floor and
    ceiling as ``control-content``; shuffling a tail's frames returns a reader of order to the floor.

``control-selection`` (user-conditioned selection of content, NPD's claimed role)
    Topics are split into ``n_families`` families and every user belongs to one. A tail shows a
    two-frame segment of one topic from each family (in random order, plus a background frame);
    the target is a hub of the segment whose family is the user's. The earlier hubs in the
    history tell the family. Floor (ID-only, which can read the family from the history): uniform
    over the family's hubs (with 20 topics in 2 families x 5 hubs, HR@10 0.200, NDCG@10 0.091);
    a reader of content that ignores the user: uniform over the two topics' 10 hubs (1.000, 0.454);
    ceiling: the user's topic's hubs (1.000, 0.590).

:func:`reference_scores` is the content-reading reference: it scores each hub by the cosine
between the last item's mean frame and the mean frame of the tails that preceded that hub in
training, learning the topic-to-hub map from the training data alone (on ``control-temporal`` the
frames are compared in their order; on ``control-selection`` only hubs of the family that the
history's hubs belong to are ranked).

Everything is drawn from ``numpy.random.default_rng(seed)``: the same parameters give the same data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .features import N_FRAMES, VISUAL_DIM

KINDS = ("content", "temporal", "selection")


@dataclass
class ControlParams:
    kind: str = "content"
    n_users: int = 2000
    n_topics: int = 20
    hubs_per_topic: int = 5
    pairs_per_user: int = 4
    frame_noise: float = 1.0
    n_background: int = 16
    n_families: int = 2  # control-selection
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
    other_topic: np.ndarray  # (n_items,) control-selection: a tail's second topic (-1 elsewhere)
    user_family: np.ndarray  # (n_users,) control-selection: each user's family (0 elsewhere)
    params: ControlParams


def _ndcg_uniform(n: int, k: int = 10) -> float:
    """NDCG@k of a target placed uniformly among ``n`` equally scored candidates ranked first."""
    return float(sum(1.0 / np.log2(r + 1) for r in range(1, min(n, k) + 1)) / n)


def _uniform(n: int) -> dict[str, float]:
    return {"hr@10": min(1.0, 10 / n), "ndcg@10": _ndcg_uniform(n)}


def floor_and_ceiling(p: ControlParams) -> dict[str, dict[str, float]]:
    """The analytic floor (ID-only) and ceiling (perfect content reader), as the docstring derives them."""
    hubs = p.n_topics * p.hubs_per_topic
    if p.kind == "selection":
        return {"floor": _uniform(hubs // p.n_families), "content without the user": _uniform(2 * p.hubs_per_topic),
                "ceiling": _uniform(p.hubs_per_topic)}
    return {"floor": _uniform(hubs), "ceiling": _uniform(p.hubs_per_topic)}


def generate(p: ControlParams) -> ControlWorld:
    if p.kind not in KINDS:
        raise ValueError(f"unknown control kind {p.kind!r}; valid: {', '.join(KINDS)}")
    if p.pairs_per_user < 2:
        raise ValueError("pairs_per_user must be >= 2 (leave-one-out needs a training part)")
    if p.kind == "selection" and (p.n_families < 2 or p.n_topics % p.n_families):
        raise ValueError("control-selection needs n_families >= 2 dividing n_topics")
    rng = np.random.default_rng(p.seed)
    n_hubs = p.n_topics * p.hubs_per_topic
    hub_topic = np.repeat(np.arange(p.n_topics), p.hubs_per_topic)
    shape = (p.n_users, p.pairs_per_user)
    family = np.zeros(p.n_users, dtype=np.int64)
    other = np.full(shape, -1)
    if p.kind == "selection":  # topic t is in family t % n_families; the tail shows one topic of each family
        family = rng.integers(0, p.n_families, size=p.n_users)
        per = rng.integers(0, p.n_topics // p.n_families, size=(*shape, p.n_families)) * p.n_families
        shown = per + np.arange(p.n_families)  # (users, pairs, families): one topic per family
        topics = np.take_along_axis(shown, family[:, None, None].repeat(p.pairs_per_user, 1), axis=2)[..., 0]
        other = np.take_along_axis(shown, ((family + 1) % p.n_families)[:, None, None].repeat(p.pairs_per_user, 1),
                                   axis=2)[..., 0]
    else:
        topics = rng.integers(0, p.n_topics, size=shape)
    hubs = topics * p.hubs_per_topic + rng.integers(0, p.hubs_per_topic, size=shape)  # 0-based hub index
    tails = n_hubs + np.arange(p.n_users * p.pairs_per_user).reshape(topics.shape)  # one fresh tail per pair
    seqs = np.stack([tails, hubs], axis=2).reshape(p.n_users, -1) + 1  # tail, hub, tail, hub, ... (1-based)
    user_seqs = {u + 1: seqs[u].tolist() for u in range(p.n_users)}
    item_topic = np.concatenate([hub_topic, topics.reshape(-1)])
    is_hub = np.arange(len(item_topic)) < n_hubs
    words = np.array([f"w{i:03d}" for i in range(p.vocabulary)])
    titles = [" ".join(row) for row in words[rng.integers(0, p.vocabulary, size=(len(item_topic), p.title_words))]]
    other_topic = np.concatenate([np.full(n_hubs, -1), other.reshape(-1)])
    return ControlWorld(user_seqs, item_topic, is_hub, titles, other_topic, family, p)


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
    topic = world.item_topic[orig]
    if p.kind == "temporal":  # the same base frames for every tail, in its topic's order
        base = rng.standard_normal((N_FRAMES, VISUAL_DIM), dtype=np.float32)
        orders = _distinct_permutations(rng, p.n_topics, N_FRAMES)
        tail = base[orders[topic]]
    elif p.kind == "selection":  # a two-frame segment per family, in random order, then background
        first = rng.random(n) < 0.5
        a, b = protos[topic], protos[np.maximum(world.other_topic[orig], 0)]
        seg1, seg2 = np.where(first[:, None], a, b), np.where(first[:, None], b, a)
        tail = np.stack([seg1, seg1, seg2, seg2, background[rng.integers(0, p.n_background, size=n)]], axis=1)
    else:
        tail = np.broadcast_to(protos[topic][:, None, :], (n, N_FRAMES, VISUAL_DIM))
    signal = np.where(world.is_hub[orig][:, None, None],
                      background[rng.integers(0, p.n_background, size=(n, N_FRAMES))], tail)
    frames = np.zeros((n + 1, N_FRAMES, VISUAL_DIM), dtype=np.float16)
    frames[1:] = (signal + p.frame_noise * rng.standard_normal(signal.shape, dtype=np.float32)).astype(np.float16)
    return frames, frames.astype(np.float32).mean(axis=1)


def _distinct_permutations(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` distinct random orders of ``k`` frames (``n`` at most ``k!``)."""
    seen: dict[tuple, None] = {}
    while len(seen) < n:
        seen.setdefault(tuple(rng.permutation(k).tolist()), None)
    return np.array(list(seen))


def reference_scores(ds) -> callable:
    """The content-reading reference as a score function for :func:`mealrec.evaluation.evaluate`:
    each item is scored by the cosine between the last input item's frames and the mean of the
    frames of the items that preceded it as training targets (items never preceded score -inf),
    learned from the training instances only. Frames are compared through their mean, or in their
    order on ``control-temporal``; on ``control-selection`` only hubs that co-occur in training
    sequences with a hub of the user's history are ranked (users keep to one family)."""
    kind = ds.metadata.get("generator_params", {}).get("kind", "content")
    feats = ds.features()
    visual = feats.frames.float().flatten(1) if kind == "temporal" else feats.visual.float()
    train = ds.train
    last = train.item_seq[torch.arange(len(train)), train.item_seq_len - 1]
    profile = torch.zeros_like(visual).index_add_(0, train.target, visual[last])
    count = torch.bincount(train.target, minlength=visual.shape[0]).float()
    profile = torch.nn.functional.normalize(profile / count.clamp(min=1)[:, None], dim=1)
    together = None
    if kind == "selection":  # hubs (targets more than once) seen in the same user's training part
        hubs = torch.nonzero(count > 1).flatten()
        index = torch.full((visual.shape[0],), -1, dtype=torch.long)
        index[hubs] = torch.arange(len(hubs))
        together = torch.zeros(len(hubs), len(hubs), dtype=torch.bool)
        for seq in ds.seqs:
            h = index[torch.as_tensor(seq[:-2], dtype=torch.long)]
            h = h[h >= 0]
            together[h[:, None], h[None, :]] = True

    def score(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = torch.arange(len(batch["item_seq"]))
        item = batch["item_seq"][rows, batch["item_seq_len"] - 1]
        out = torch.nn.functional.normalize(visual[item], dim=1) @ profile.T
        out = out.masked_fill(count[None, :] == 0, float("-inf"))
        if together is not None:
            seen = index[batch["item_seq"]]  # (B, L): hub index or -1
            allowed = torch.zeros(len(rows), visual.shape[0], dtype=torch.bool)
            for b in range(len(rows)):
                h = seen[b][seen[b] >= 0]
                allowed[b, hubs] = together[h].any(0) if len(h) else True
            out = out.masked_fill(~allowed, float("-inf"))
        return out

    return score


__all__ = ["ControlParams", "ControlWorld", "KINDS", "floor_and_ceiling", "frames_for", "generate", "reference_scores"]
