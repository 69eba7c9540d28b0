"""Evaluation-time caching of item tables (a mixin for content-based models).

Models whose item representations are computed from content (adapters over cached
features, a denoising chain, graph propagation) would otherwise recompute every item's
representation for every evaluation batch: on microlens-big (~19k items, ~50 batches per
pass) that is minutes of repeated work per validation pass, and it would inflate the
evaluation time reported in Table 3. :class:`EvalCacheMixin` computes such a table once per
evaluation pass and reuses it while the model is in eval mode with gradients off, until a
parameter or buffer changes (keyed on every tensor's storage pointer and version counter,
so ``load_state_dict`` or an optimiser step invalidates it) or the mode changes.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class EvalCacheMixin(nn.Module):
    """``self.eval_cached(name, compute)``: ``compute()`` while training or with gradients on;
    otherwise its cached value, recomputed when any parameter or buffer has changed."""

    def _eval_cache_key(self) -> tuple:
        # dense tensors only: sparse buffers (a fixed graph) have no single storage pointer
        tensors = [t for t in (*self.parameters(), *self.buffers()) if t.layout == torch.strided]
        return (torch.is_inference_mode_enabled(),) + tuple((t.data_ptr(), t._version) for t in tensors)

    def eval_cached(self, name: str, compute: Callable[[], torch.Tensor]):
        cache = self.__dict__.setdefault("_eval_cache", {})
        if self.training or torch.is_grad_enabled():
            cache.pop(name, None)
            return compute()
        key = self._eval_cache_key()
        hit = cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute()
        cache[name] = (key, value)
        return value

    def train(self, mode: bool = True):
        self.__dict__["_eval_cache"] = {}
        return super().train(mode)


__all__ = ["EvalCacheMixin"]
