"""The planted synthetic benchmark (always labelled synthetic).

It exists so that the mechanisms MealRec claims (intra-video temporal cues,
denoising of noisy behaviour, content for long-tail items) have something real to
find. Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``,
so the same parameters give byte-identical data.

Generative story
----------------
1. **Topics.** ``n_topics`` latent topics, each with a visual prototype
   ``mu_c ~ N(0, I_768)`` and a vocabulary of ``words_per_topic`` pseudo-words.
2. **Items.** Item ``i`` has a topic ``c_i`` (uniform), a long-tail popularity weight
   ``w_i = rank_i^-popularity_alpha`` (Zipf over a random permutation), and a place
   in its topic's "series" (for successor transitions, step 3).
3. **Users and clicks.** User ``u`` holds ``interests_per_user`` interest topics and a
   current one. At each step: with probability ``drift`` the current interest is
   replaced by a new random topic (interests drift over time); else with probability
   ``switch`` the user moves to another of their interests. The click is then
   * a **random click** with probability ``random_click`` (item drawn by global
     popularity, unrelated to the interest: behavioural noise), else
   * the **successor** of the previous item in its series with probability
     ``successor`` when the previous click was on-interest and the same topic
     (ID-level sequential signal), else
   * an item of the current topic, drawn by popularity.
   Lengths: ``min_len`` plus a lognormal share of the remaining interactions, so
   that the total is exactly ``n_users * avg_len`` (rounded).
4. **Frames.** Each item has ``K = 5`` frames of width 768. A contiguous **salient
   segment** of ``salient_len`` frames at a random offset carries
   ``mu_{c_i} + e_i`` (item identity ``e_i ~ N(0, item_scale^2 I)``); the other frames
   are distractors: with probability ``distractor_topic`` the prototype of another
   random topic (misleading content), else one of 16 shared background vectors.
   Every frame gets i.i.d. noise ``N(0, frame_noise^2 I)``. The global visual vector is
   the mean of the frames, so the topic is diluted in it; the temporal cue (two
   consecutive frames that agree) and the user's history point at the salient part.
5. **Titles.** ``title_words`` pseudo-words; each is from the item's topic
   vocabulary with probability ``1 - title_noise``, else from a shared general
   vocabulary. Titles are then encoded by the same text encoder as real titles.

Items never clicked are dropped before remapping; optional iterative ``k_core``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..utils import sha256_arrays
from .features import N_FRAMES, VISUAL_DIM, cached

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


@dataclass
class SyntheticParams:
    n_users: int = 200
    n_items: int = 150
    avg_len: float = 8.0
    n_interactions: int = 0  # exact total; 0 = round(n_users * avg_len)
    min_len: int = 5
    n_topics: int = 10
    interests_per_user: int = 3
    drift: float = 0.05
    switch: float = 0.2
    random_click: float = 0.2
    successor: float = 0.3
    popularity_alpha: float = 1.0
    salient_len: int = 2
    distractor_topic: float = 0.5
    item_scale: float = 0.5
    frame_noise: float = 0.5
    words_per_topic: int = 12
    general_words: int = 300
    title_words: int = 8
    title_noise: float = 0.4
    k_core: int = 0
    seed: int = 2020


@dataclass
class SyntheticWorld:
    """The generated data plus the latent truth (kept for tests and the book)."""

    user_seqs: dict[int, list[int]]
    item_topic: np.ndarray  # (n_items,) original item id -> topic
    salient_start: np.ndarray  # (n_items,)
    titles: list[str]  # by original item id
    random_click_mask: dict[int, list[bool]]
    params: SyntheticParams


def _pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    out, seen = [], set()
    while len(out) < n:
        w = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def _lengths(rng: np.random.Generator, p: SyntheticParams) -> np.ndarray:
    total = p.n_interactions or int(round(p.n_users * p.avg_len))
    extra = total - p.n_users * p.min_len
    if extra < 0:
        raise ValueError(f"avg_len={p.avg_len} is below min_len={p.min_len}")
    weights = rng.lognormal(0.0, 0.8, size=p.n_users)
    return p.min_len + rng.multinomial(extra, weights / weights.sum())


def generate(p: SyntheticParams) -> SyntheticWorld:
    rng = np.random.default_rng(p.seed)
    C, N, U = p.n_topics, p.n_items, p.n_users
    item_topic = rng.integers(0, C, size=N)
    pop = (1.0 + rng.permutation(N)) ** (-p.popularity_alpha)

    # items grouped by topic; cumulative popularity within topic, shifted by topic index
    order = np.lexsort((-pop, item_topic))  # by topic, most popular first
    t_sorted = item_topic[order]
    w_sorted = pop[order]
    cum = np.zeros(N)
    for c in range(C):
        m = t_sorted == c
        if m.any():
            cw = np.cumsum(w_sorted[m])
            cum[m] = cw / cw[-1]
    key = t_sorted + cum  # increasing; topic c spans (c, c+1]
    # series successor: next item in the same topic (wrapping)
    succ = np.empty(N, dtype=np.int64)
    for c in range(C):
        members = order[t_sorted == c]
        if len(members):
            succ[members] = np.roll(members, -1)
    topic_has_items = np.bincount(item_topic, minlength=C) > 0
    gcum = np.cumsum(pop) / pop.sum()

    def draw_topic_items(topics: np.ndarray) -> np.ndarray:
        u = rng.random(len(topics)) * (1 - 1e-12)
        idx = np.searchsorted(key, topics + np.maximum(u, 1e-12), side="left")
        return order[np.minimum(idx, N - 1)]

    lengths = _lengths(rng, p)
    T = int(lengths.max())
    interests = rng.random((U, C)).argsort(axis=1)[:, : p.interests_per_user]
    # interests must point at topics that have items
    for j in range(interests.shape[1]):
        bad = ~topic_has_items[interests[:, j]]
        interests[bad, j] = rng.choice(np.flatnonzero(topic_has_items), size=int(bad.sum()))
    slot = rng.integers(0, p.interests_per_user, size=U)
    clicks = np.zeros((U, T), dtype=np.int64)
    noisy = np.zeros((U, T), dtype=bool)
    prev = np.full(U, -1)
    prev_ok = np.zeros(U, dtype=bool)
    valid_topics = np.flatnonzero(topic_has_items)
    for t in range(T):
        drift = rng.random(U) < p.drift
        interests[drift, slot[drift]] = rng.choice(valid_topics, size=int(drift.sum()))
        sw = (rng.random(U) < p.switch) & ~drift
        slot[sw] = (slot[sw] + rng.integers(1, max(p.interests_per_user, 2), size=int(sw.sum()))) % p.interests_per_user
        topic = interests[np.arange(U), slot]
        item = draw_topic_items(topic)
        use_succ = prev_ok & (rng.random(U) < p.successor)
        use_succ &= item_topic[np.maximum(prev, 0)] == topic
        item[use_succ] = succ[prev[use_succ]]
        rand = rng.random(U) < p.random_click
        item[rand] = np.minimum(np.searchsorted(gcum, rng.random(int(rand.sum()))), N - 1)
        clicks[:, t] = item
        noisy[:, t] = rand
        prev, prev_ok = item, ~rand

    user_seqs = {u + 1: (clicks[u, : lengths[u]] + 1).tolist() for u in range(U)}  # original ids are 1-based
    noise_mask = {u + 1: noisy[u, : lengths[u]].tolist() for u in range(U)}

    vocab = _pseudo_words(rng, C * p.words_per_topic + p.general_words)
    topic_vocab = np.array(vocab[: C * p.words_per_topic]).reshape(C, p.words_per_topic)
    general = np.array(vocab[C * p.words_per_topic :])
    on_topic = rng.random((N, p.title_words)) >= p.title_noise
    tw = topic_vocab[item_topic[:, None], rng.integers(0, p.words_per_topic, size=(N, p.title_words))]
    gw = general[rng.integers(0, len(general), size=(N, p.title_words))]
    words = np.where(on_topic, tw, gw)
    titles = [" ".join(row) for row in words]
    salient_start = rng.integers(0, N_FRAMES - p.salient_len + 1, size=N)
    return SyntheticWorld(user_seqs, item_topic, salient_start, titles, noise_mask, p)


def params_hash(p: SyntheticParams) -> str:
    return sha256_arrays(extra=repr(sorted(asdict(p).items())))


def frames_for(world: SyntheticWorld, item_ids: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Planted frames ``(n+1, K, 768)`` (float16, row 0 padding) and global visual ``(n+1, 768)``
    for the remapped items whose original ids are ``item_ids`` (1-based)."""
    p = world.params
    n = len(item_ids)
    key = sha256_arrays(np.asarray(item_ids), extra=params_hash(p) + "|frames-v1")

    def build() -> np.ndarray:
        rng = np.random.default_rng([p.seed, 7])
        protos = rng.standard_normal((p.n_topics, VISUAL_DIM), dtype=np.float32)
        background = rng.standard_normal((16, VISUAL_DIM), dtype=np.float32)
        out = np.zeros((n + 1, N_FRAMES, VISUAL_DIM), dtype=np.float16)
        orig = np.asarray(item_ids) - 1
        for s in range(0, n, chunk):
            ids = orig[s : s + chunk]
            b = len(ids)
            # item-specific randomness from a generator keyed by the chunk, so chunks are independent
            r = np.random.default_rng([p.seed, 11, s])
            topic = world.item_topic[ids]
            ident = r.standard_normal((b, VISUAL_DIM), dtype=np.float32) * p.item_scale
            salient = protos[topic] + ident  # (b, d)
            other_topic = (topic[:, None] + r.integers(1, max(p.n_topics, 2), size=(b, N_FRAMES))) % p.n_topics
            distract = np.where(
                (r.random((b, N_FRAMES)) < p.distractor_topic)[..., None],
                protos[other_topic],
                background[r.integers(0, len(background), size=(b, N_FRAMES))],
            )
            pos = np.arange(N_FRAMES)[None, :]
            st = world.salient_start[ids][:, None]
            in_seg = (pos >= st) & (pos < st + p.salient_len)
            fr = np.where(in_seg[..., None], salient[:, None, :], distract)
            fr = fr + r.standard_normal(fr.shape, dtype=np.float32) * p.frame_noise
            out[1 + s : 1 + s + b] = fr.astype(np.float16)
        return out

    frames = cached("synthetic-frames", key, (n + 1, N_FRAMES, VISUAL_DIM), build, dtype=np.float16)
    visual = frames.astype(np.float32).mean(axis=1)
    return frames, visual
