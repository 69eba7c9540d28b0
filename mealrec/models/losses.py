"""Full-softmax cross-entropy over every item, computed in blocks of rows.

``F.cross_entropy(q @ K.T, target)`` writes the ``(B, n_items)`` logits, then reads and writes
tensors of that size five more times (log-softmax, its gradient, the one-hot, two products); on a CPU
that memory traffic, not the arithmetic, sets the time. :func:`full_softmax_ce` computes the same loss
and gradients one block of rows at a time, each block's logits staying in cache:

* ``reduction="mean"`` with gradients wanted: the forward pass also computes the gradients (the loss
  is a sum of per-row terms, so each block's softmax minus one-hot gives that block's share), and the
  backward pass only scales them: three matrix products in all, as the plain path;
* ``reduction="none"``: the forward pass keeps each row's log-sum-exp; the backward pass recomputes
  each block's logits and weights its rows by their incoming gradient (four products).

The result equals the plain path up to float32 rounding (another summation order): a reordering of
float operations, not a change of the math (``benchmarks/bench_ce.py`` measures both). No double
backward. The block size depends only on ``n_items``, so a run's bits do not depend on the batch.
"""
from __future__ import annotations

import torch

#: logits per block (rows x items): 4M floats = 16 MB
BLOCK_ELEMENTS = 1 << 22


def block_rows(n_items: int) -> int:
    return max(16, min(1024, BLOCK_ELEMENTS // max(n_items, 1)))


def _logits_block(q_b: torch.Tensor, K: torch.Tensor, buf: torch.Tensor | None, self_at: int | None
                  ) -> torch.Tensor:
    """``q_b K^T`` ``(b, N)`` (in ``buf``'s first rows when given: one buffer serves every block); with
    ``self_at``, the block's rows are rows ``self_at..`` of ``K`` itself and their own logits are -inf."""
    lg = q_b @ K.T if buf is None else torch.mm(q_b, K.T, out=buf[: q_b.shape[0]])
    if self_at is not None:
        lg.diagonal(offset=self_at).fill_(float("-inf"))
    return lg


def _softmax_block(q_b: torch.Tensor, K: torch.Tensor, buf: torch.Tensor | None = None, scale: float = 1.0,
                   self_at: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale * softmax(q_b K^T), logsumexp)`` of one block (:func:`_logits_block`), the softmax
    written over the logits."""
    lg = _logits_block(q_b, K, buf, self_at)  # (b, N)
    m = lg.amax(dim=1, keepdim=True)
    lg.sub_(m).exp_()
    s = lg.sum(dim=1, keepdim=True)
    lg.mul_(scale / s)
    return lg, (s.log_() + m).squeeze(1)


class _BlockCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, K, target, reduction, exclude_self):
        B, block = q.shape[0], block_rows(K.shape[0])
        lse = q.new_empty(B)
        need_q, need_K = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        eager = reduction == "mean" and (need_q or need_K)
        dq = torch.empty_like(q) if eager and need_q else None
        dK = torch.zeros_like(K) if eager and need_K else None
        buf = q.new_empty(min(block, B), K.shape[0])
        for s in range(0, B, block):
            q_b, t_b = q[s : s + block], target[s : s + block]
            p, lse[s : s + block] = _softmax_block(q_b, K, buf, 1.0 / B if eager else 1.0, s if exclude_self else None)
            if eager:
                p[torch.arange(len(t_b), device=p.device), t_b] -= 1.0 / B
                if dq is not None:
                    torch.mm(p, K, out=dq[s : s + block])
                if dK is not None:
                    dK.addmm_(p.T, q_b)
        rows = lse - (q * K[target]).sum(dim=1)  # (B,)
        ctx.reduction, ctx.exclude_self = reduction, exclude_self
        if eager:
            ctx.save_for_backward(dq, dK)
        else:
            ctx.save_for_backward(q, K, target, lse)
        return rows.mean() if reduction == "mean" else rows

    @staticmethod
    def backward(ctx, g):
        if ctx.reduction == "mean":
            dq, dK = ctx.saved_tensors
            return (None if dq is None else dq * g, None if dK is None else dK * g, None, None, None)
        q, K, target, lse = ctx.saved_tensors
        block = block_rows(K.shape[0])
        dq = torch.empty_like(q) if ctx.needs_input_grad[0] else None
        dK = torch.zeros_like(K) if ctx.needs_input_grad[1] else None
        buf = q.new_empty(min(block, q.shape[0]), K.shape[0])
        for s in range(0, q.shape[0], block):
            q_b, t_b, g_b = q[s : s + block], target[s : s + block], g[s : s + block]
            p = _logits_block(q_b, K, buf, s if ctx.exclude_self else None).sub_(lse[s : s + block, None]).exp_()
            p[torch.arange(len(t_b), device=p.device), t_b] -= 1.0
            p.mul_(g_b[:, None])
            if dq is not None:
                torch.mm(p, K, out=dq[s : s + block])
            if dK is not None:
                dK.addmm_(p.T, q_b)
        return dq, dK, None, None, None


def full_softmax_ce(q: torch.Tensor, K: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                    exclude_self: bool = False) -> torch.Tensor:
    """Cross-entropy of the scores ``q @ K.T`` ``(B, N)`` against ``target`` ``(B,)``, as
    ``F.cross_entropy(q @ K.T, target, reduction=reduction)`` (``"mean"`` or ``"none"``).
    ``exclude_self`` (``B == N``, row ``i`` of ``q`` and of ``K`` the same instance): the score
    ``(i, i)`` is -inf, as in-batch contrastive losses mask it."""
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if q.dim() != 2 or K.dim() != 2 or q.shape[1] != K.shape[1] or target.shape != q.shape[:1]:
        raise ValueError(f"expected q (B, d), K (N, d), target (B,); got {tuple(q.shape)}, {tuple(K.shape)}, "
                         f"{tuple(target.shape)}")
    if exclude_self and q.shape[0] != K.shape[0]:
        raise ValueError(f"exclude_self needs as many rows in q as in K; got {q.shape[0]} and {K.shape[0]}")
    if torch.is_grad_enabled() and (q.requires_grad or K.requires_grad):
        return _BlockCE.apply(q, K, target, reduction, exclude_self)
    block = block_rows(K.shape[0])
    lse = torch.cat([_softmax_block(q[s : s + block], K, self_at=s if exclude_self else None)[1]
                     for s in range(0, q.shape[0], block)])
    rows = lse - (q * K[target]).sum(dim=1)
    return rows.mean() if reduction == "mean" else rows


__all__ = ["full_softmax_ce", "block_rows"]
