"""The model contract every recommender fills in (after RecBole's ``SequentialRecommender``).

A model is one file with a ``@dataclass Config`` of its hyperparameters (defaults = the paper's;
``mealrec/configs/models/*.yaml`` may override them), a ``version`` of its math
(:mod:`mealrec.versions`), one line in :data:`mealrec.models.MODELS`, and these hooks:

* ``__init__(config, dataset)``: ``dataset`` is a :class:`mealrec.data.SequentialDataset`
  (``n_items`` counts the padding item 0; ``dataset.features()`` gives item features);
* ``item_representations()``: the item table ``(n_items, d)``, or whatever per-step state
  :meth:`score` reads (MMGCN: users and items of one propagation). The base computes it once per
  training step and once per evaluation pass;
* ``forward(batch, items)``: the user representation ``(B, d)``, or an :class:`Output` that adds
  the parts the losses or the exports read. ``batch`` holds ``item_seq (B, L)``,
  ``item_seq_len (B,)``, ``target (B,)`` and ``user (B,)``; ``items`` is this step's table.
  A model whose training path differs from its evaluation path branches on ``self.training``;
* ``score(h, items) -> (B, n_items)``: default ``h @ items.T``;
* ``rec_loss(out, items, batch)``: default cross-entropy of ``score`` over all items;
* ``auxiliary_losses(out, items, batch) -> dict``: weighted terms added to the loss in order;
* ``export_parts(out, items, batch) -> dict``: Figure 7's representations (default: the user's and
  the target item's).

``calculate_loss``, ``full_sort_predict`` and ``export_representations`` live here only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from .losses import full_softmax_ce


@dataclass
class Output:
    """What ``forward`` returns when the losses or the exports need more than ``h``."""

    h: torch.Tensor  # (B, d)
    parts: dict[str, Any] = field(default_factory=dict)  # read by the model's own loss and export hooks
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # logged per step, not added to the loss


class SequentialRecommender(nn.Module):
    Config: ClassVar[type]
    #: citation shown by ``mealrec models``
    paper: ClassVar[str] = ""
    #: whether the model is a row of the paper's Table 2 (the overall-performance notebook
    #: reads the registry and keeps the models for which this is true)
    table2: ClassVar[bool] = True
    #: whether building the model computes inputs it caches (``mealrec.utils.cache_file``) beyond
    #: its dataset's features: IISAN's frozen layer outputs, SeeDRec's sememes and fitted S2IDM.
    #: A Ray executor builds these once and ships them to its workers (``reproduce/cluster.py``).
    one_off_inputs: ClassVar[bool] = False
    #: attributes that training updates outside the parameters and buffers (schedules, counters):
    #: a run's resume state (:mod:`mealrec.resume`) saves and restores them with the parameters
    training_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, dataset: Any):
        super().__init__()
        self.config = config
        self.n_items = dataset.n_items
        self.max_len = dataset.max_len

    # ------------------------------------------------------------------ hooks
    def item_representations(self) -> Any:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor], items: Any) -> torch.Tensor | Output:
        raise NotImplementedError

    def score(self, h: torch.Tensor, items: Any) -> torch.Tensor:
        return h @ items.T  # (B, n_items)

    def score_operands(self, h: torch.Tensor, items: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q, K)`` with ``score(h, items) == q @ K.T`` up to float rounding: what the loss's blocked
        cross-entropy multiplies. A model that overrides :meth:`score` overrides this too."""
        return h, items

    def rec_loss(self, out: Output, items: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over all items (:func:`~mealrec.models.losses.full_softmax_ce`)."""
        return full_softmax_ce(*self.score_operands(out.h, items), batch["target"])

    def auxiliary_losses(self, out: Output, items: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def export_parts(self, out: Output, items: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"user": out.h, "target_item": items[batch["target"]]}

    # ------------------------------------------------------------------ the contract's fixed part
    def run(self, batch: dict[str, torch.Tensor], items: Any) -> Output:
        out = self(batch, items)
        return out if isinstance(out, Output) else Output(out)

    def represent(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The user representation ``(B, d)`` of ``batch``, with a fresh item table."""
        return self.run(batch, self.item_representations()).h

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": total, "rec": ..., <term>: ...}`` (all but ``loss`` detached, for logging)."""
        items = self.item_representations()  # once per step
        out = self.run(batch, items)
        rec = self.rec_loss(out, items, batch)
        total, logs = rec, {"rec": rec.detach()}
        for k, v in self.auxiliary_losses(out, items, batch).items():
            total = total + v
            logs[k] = v.detach()
        logs.update({k: v.detach() for k, v in out.logs.items()})
        return {"loss": total, **logs}

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        items = self.eval_cached("items", self.item_representations)  # once per evaluation pass
        return self.score(self.run(batch, items).h, items)

    @torch.inference_mode()
    def export_representations(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """For Figure 7: the user representation ``(B, d)``, the target item's ``(B, d)`` and the
        model's own parts (MealRec: the last item's frames before and after TCD)."""
        was = self.training
        self.eval()
        items = self.item_representations()
        out = self.export_parts(self.run(batch, items), items, batch)
        self.train(was)
        return out

    # ------------------------------------------------------------------ evaluation cache
    def _eval_cache_key(self) -> tuple:
        # dense tensors only: sparse buffers (a fixed graph) have no single storage pointer
        tensors = [t for t in (*self.parameters(), *self.buffers()) if t.layout == torch.strided]
        return (torch.is_inference_mode_enabled(),) + tuple((t.data_ptr(), t._version) for t in tensors)

    def eval_cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` while training or with gradients on; otherwise its value cached for the
        evaluation pass, recomputed when any parameter or buffer changes (storage pointer and version
        counter: ``load_state_dict`` or an optimiser step invalidates it) or the mode changes."""
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

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


__all__ = ["Output", "SequentialRecommender"]
