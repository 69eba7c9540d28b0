"""SASRec: self-attentive sequential recommendation.

Paper: W.-C. Kang and J. McAuley, *Self-Attentive Sequential Recommendation*, ICDM 2018.
Reference code: RUCAIBox/RecBole, ``recbole/model/sequential_recommender/sasrec.py``
(the variant the MealRec paper and most later work run: cross-entropy over all items).

Architecture: item embedding (padding 0) + learned position embedding -> LayerNorm ->
dropout -> ``n_layers`` post-LN Transformer layers with a causal + padding mask ->
state at the last real position. Score of item ``j`` = ``<h_u, E_j>`` (shared item
embedding). Loss: softmax cross-entropy over all ``n_items`` logits (as RecBole,
the padding column takes part in training's softmax; evaluation excludes it).
Initialisation: N(0, 0.02) weights, zero biases (RecBole's ``_init_weights``).

Departures from RecBole: none in the computation. Attention runs through
``scaled_dot_product_attention`` (same function as RecBole's explicit softmax);
hidden dropout masks are drawn with ``torch.rand`` (same distribution, faster on CPU).
RecBole's BPR loss option is not implemented (the paper uses CE).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import SequentialRecommender
from .layers import SequenceEncoder, init_weights


@dataclass
class SASRecConfig:
    hidden_size: int = 64
    inner_size: int = 256
    n_layers: int = 2
    n_heads: int = 2
    hidden_dropout: float = 0.5
    attn_dropout: float = 0.5
    initializer_range: float = 0.02


class SASRec(SequentialRecommender):
    Config = SASRecConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Kang & McAuley, ICDM 2018"

    def __init__(self, config: SASRecConfig, dataset):
        super().__init__(config, dataset)
        c = config
        self.item_embedding = nn.Embedding(self.n_items, c.hidden_size, padding_idx=0)
        self.seq = SequenceEncoder.of(c, self.max_len)
        self.apply(lambda m: init_weights(m, c.initializer_range))

    def embed(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Input embeddings ``(B, L, d)``: item + position, LayerNorm, dropout."""
        return self.seq.inputs(self.item_embedding(item_seq))

    def encode(self, x: torch.Tensor, item_seq: torch.Tensor) -> torch.Tensor:
        """Transformer over input embeddings ``x (B, L, d)`` -> all states ``(B, L, d)``."""
        return self.seq.states(x, item_seq)

    def user_state(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """The user representation ``(B, d)`` of a sequence (also of CL4SRec's augmented views)."""
        return self.seq.last_state(self.embed(item_seq), item_seq, item_seq_len)

    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        return self.user_state(batch["item_seq"], batch["item_seq_len"])  # (B, d)

    def item_representations(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n_items, d)
