"""Full-ranking evaluation (RecBole semantics) and significance tests.

Protocol, stated in every table caption:

* every item is a candidate (full ranking, no negative sampling);
* items in the user's history are **not** masked (RecBole's default for sequential
  recommendation, and the paper's);
* the padding item 0 is excluded (its score is set to ``-inf``);
* one target per user; ``rank = 1 + #{items scored strictly higher than the target}
  + #{other items scored exactly equal}``: ties are broken **against** the target, so a
  model that scores every item the same gets rank ``n_items - 1`` and HR 0 (a
  pessimistic rule; RecBole's ``topk`` breaks ties arbitrarily);
* ``HR@K = [rank <= K]``, ``NDCG@K = [rank <= K] / log2(rank + 1)``, K in {10, 20};
* the reported number is the mean over users; per-user values are kept for the
  paired t-test.

:func:`sampled_evaluate` gives the sampled protocol (999 negatives) that SeeDRec's paper reports.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch

from .utils import MealRecError

DEFAULT_KS = (10, 20)
METRICS = tuple(f"{m}@{k}" for m in ("hr", "ndcg") for k in DEFAULT_KS)


def target_ranks(scores: torch.Tensor, target: torch.Tensor, exclude_padding: bool = True) -> torch.Tensor:
    """1-based rank of each target among all items, ties broken against the target.

    ``scores (B, n_items)``, ``target (B,)`` -> ``(B,)`` int64.
    """
    if scores.dim() != 2 or target.dim() != 1 or scores.shape[0] != target.shape[0]:
        raise MealRecError(
            f"scores must be (B, n_items) and target (B,), got {tuple(scores.shape)} and {tuple(target.shape)}"
        )
    if torch.isnan(scores).any():
        raise MealRecError("the model produced NaN scores; evaluation cannot rank them")
    if exclude_padding and (target == 0).any():
        raise MealRecError("a target is the padding item 0")
    scores = scores.float()
    if exclude_padding:
        scores = scores.clone()
        scores[:, 0] = -torch.inf
    t = scores.gather(1, target.view(-1, 1))  # (B, 1)
    # >= counts the target itself once, so this is 1 + higher + (ties excluding the target)
    return (scores >= t).sum(dim=1)


def metrics_from_ranks(ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS) -> dict[str, torch.Tensor]:
    """Per-instance ``hr@K`` and ``ndcg@K`` (float64 tensors) from 1-based ranks."""
    ranks = ranks.double()
    out = {}
    for k in ks:
        hit = (ranks <= k).double()
        out[f"hr@{k}"] = hit
        out[f"ndcg@{k}"] = hit / torch.log2(ranks + 1.0)
    return out


@torch.inference_mode()
def evaluate(
    score_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    split,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    ks: Iterable[int] = DEFAULT_KS,
    progress: bool = False,
    desc: str = "eval",
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Rank every item for every instance of ``split`` in batches of ``batch_size``.

    Returns ``(means, per_instance)``: means as floats, per-instance arrays (float64)
    in the split's order (one per user for valid/test), for paired tests.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    ks = tuple(ks)
    per: dict[str, list[torch.Tensor]] = {}
    n = len(split)
    starts = range(0, n, batch_size)
    for s in tqdm(starts, desc=desc, disable=not progress, leave=False):
        batch = {k: v.to(device) for k, v in split.batch(slice(s, s + batch_size)).items()}
        scores = score_fn(batch)
        ranks = target_ranks(scores, batch["target"])
        for name, v in metrics_from_ranks(ranks, ks).items():
            per.setdefault(name, []).append(v.cpu())
    per_np = {k: torch.cat(v).numpy() for k, v in per.items()}
    means = {k: float(v.mean()) for k, v in per_np.items()}
    return means, per_np


@torch.no_grad()
def sampled_evaluate(
    model: Any,
    split,
    n_negatives: int = 999,
    seed: int = 0,
    batch_size: int = 256,
    ks: tuple[int, ...] = DEFAULT_KS,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """HR/NDCG@K with ``n_negatives`` sampled negatives per instance (the paper's protocol,
    after Wang et al. 2023c): negatives are drawn uniformly without replacement from all
    real items except the target (history items may be drawn, as in the reference's
    ``generate_file``); ``min(n_negatives, n_items - 2)`` of them. ``rank = 1 + #{negatives
    scored >= the target}`` (ties against the target, as :mod:`mealrec.evaluation`).
    Deterministic given ``seed`` (one CPU generator, drawn in split order)."""
    was = model.training
    model.eval()
    n_items = model.n_items
    n_neg = min(n_negatives, n_items - 2)
    if n_neg < 1:
        raise MealRecError("sampled evaluation needs at least 3 items")
    g = torch.Generator().manual_seed(seed)
    ranks = []
    for s in range(0, len(split), batch_size):
        batch = {k: v.to(device) for k, v in split.batch(slice(s, s + batch_size)).items()}
        scores = model.full_sort_predict(batch).float().cpu()  # (B, n_items)
        target = batch["target"].cpu()
        keys = torch.rand(len(target), n_items, generator=g)
        keys[:, 0] = 2.0  # padding never drawn
        keys.scatter_(1, target[:, None], 2.0)  # nor the target
        neg = keys.topk(n_neg, dim=1, largest=False).indices  # (B, n_neg) uniform subset
        t = scores.gather(1, target[:, None])
        ranks.append(1 + (scores.gather(1, neg) >= t).sum(1))
    model.train(was)
    per = metrics_from_ranks(torch.cat(ranks), ks)
    return {k: float(v.mean()) for k, v in per.items()}


def paired_ttest(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Two-sided paired t-test over users (scipy ``ttest_rel``) of ``a`` against ``b``.

    Returns ``mean_a``, ``mean_b``, ``t`` and ``p``. Identical inputs give ``t = 0, p = 1``.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise MealRecError(f"paired t-test needs two 1-D arrays over the same users, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise MealRecError("paired t-test needs at least 2 users")
    d = a - b
    if np.all(d == d[0]):
        if d[0] == 0:
            return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "t": 0.0, "p": 1.0}
        return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "t": float(np.sign(d[0]) * np.inf), "p": 0.0}
    res = stats.ttest_rel(a, b)
    return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "t": float(res.statistic), "p": float(res.pvalue)}
