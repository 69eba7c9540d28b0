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
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class SequentialRecommender(nn.Module):
    Config: ClassVar[type]
    #: citation shown by ``mealrec models``
    paper: ClassVar[str] = ""

    def __init__(self, config: Any, dataset: Any):
        super().__init__()
        self.config = config
        self.n_items = dataset.n_items
        self.max_len = dataset.max_len

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
