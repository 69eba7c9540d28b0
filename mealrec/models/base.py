"""The model contract every recommender fills in (after RecBole's ``SequentialRecommender``).

A model is one file with:

* a ``@dataclass Config`` of its hyperparameters (defaults = the paper's; per-model
  YAML files in ``mealrec/configs/models/`` may override them);
* ``__init__(config, dataset)``: ``dataset`` is a :class:`mealrec.data.SequentialDataset`
  (``n_items`` counts the padding item 0; ``dataset.features()`` gives item features);
* ``forward(item_seq (B, L), item_seq_len (B,)) -> (B, d)``: the user representation;
* ``calculate_loss(batch) -> dict``: ``"loss"`` (the total to minimise) plus any named
  terms to log; ``batch`` holds ``item_seq``, ``item_seq_len``, ``target``, ``user``;
* ``full_sort_predict(batch) -> (B, n_items)``: a score for every item.

and one line in :data:`mealrec.models.MODELS`.

Sequential backbones (SASRec, CL4SRec, TedRec) fill in the finer hooks below, which
MealRec composes with its diffusion modules; the defaults give RecBole's CE training:

* ``item_representations() -> (n_items, d)``;
* ``score(h (B, d)) -> (B, n_items)``: default ``h @ item_representations().T``;
* ``rec_loss(h, target) -> scalar``: default cross-entropy over ``score(h)``;
* ``auxiliary_losses(batch) -> dict``: extra weighted terms (e.g. CL4SRec's InfoNCE),
  default none. Each value is already multiplied by its weight and is added to the loss.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class SequentialRecommender(nn.Module):
    Config: ClassVar[type]
    #: citation shown by ``mealrec models``
    paper: ClassVar[str] = ""
    #: whether the model is a row of the paper's Table 2 (the overall-performance notebook
    #: reads the registry and keeps the models for which this is true)
    table2: ClassVar[bool] = True

    def __init__(self, config: Any, dataset: Any):
        super().__init__()
        self.config = config
        self.n_items = dataset.n_items
        self.max_len = dataset.max_len

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_representations(self) -> torch.Tensor:
        raise NotImplementedError

    def score(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item_representations().T  # (B, n_items)

    def rec_loss(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.score(h), target)

    def auxiliary_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self.forward(batch["item_seq"], batch["item_seq_len"])  # (B, d)
        rec = self.rec_loss(h, batch["target"])
        aux = self.auxiliary_losses(batch)
        total = rec + sum(aux.values()) if aux else rec
        return {"loss": total, "rec": rec.detach(), **{k: v.detach() for k, v in aux.items()}}

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.score(self.forward(batch["item_seq"], batch["item_seq_len"]))

    @torch.inference_mode()
    def export_representations(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """For Figure 7: the final user representation ``(B, d)`` and the target item's
        representation ``(B, d)`` (models with frame representations add theirs)."""
        was = self.training
        self.eval()
        h = self.forward(batch["item_seq"], batch["item_seq_len"])
        self.train(was)
        return {"user": h, "target_item": self.item_representations()[batch["target"]]}

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
