"""MoRec: a modality-based SASRec, whose items are encoded from their content instead of IDs.

Paper: Z. Yuan, F. Yuan, Y. Song, Y. Li, J. Fu, F. Yang, Y. Pan, Y. Ni, *Where to Go Next
for Recommender Systems? ID- vs. Modality-based Recommender Models Revisited*, SIGIR 2023
(arXiv:2303.13835).
Reference code: westlake-repl/IDvs.MoRec (GitHub), read for this file: the two-stage
("TS", frozen modality features) SASRec variants ``bce_text/main-2stage(SASRec)/`` and
``bce_vision/main-2stage(SASRec)/`` -- ``model/model.py`` (``Model.forward``: one item
encoder ``fc`` shared by the input sequence and the positive/negative targets, dot-product
scores, BCE loss), ``model/encoders.py`` (``MLP_Layers``, ``User_Encoder``),
``model/modules.py`` (the Transformer), ``parameters.py`` and the launch scripts
``train_bert_lyr_8.py`` / ``hm_swin_tiny_lyr_8.py`` (``dnn_layer`` 8, ``drop_rate`` 0.1,
AdamW ``l2_weight`` 0.1); ``README.md``. Written anew here, not copied.

Architecture (built on :class:`~mealrec.models.sasrec.SASRec`; the ID embedding table is
removed):

1. **Modality features.** A frozen table ``F (n_items, d_f)`` (row 0 = padding zeros)
   from ``dataset.features()``: the title embedding ``text``, the global ``visual``
   feature, or both concatenated (``modality`` = ``"text" | "visual" | "both"``; default
   ``"both"``, because the MealRec paper, Sec. 5.1.2, does not say which modality its
   MoRec row uses). The features enter raw, as in the reference; the option
   ``feature_norm`` L2-normalises each modality's rows before concatenation (the
   synthetic/placeholder visual features have norm ~17, the MiniLM text features norm 1).
   It is off by default, as raw features did better here (the book's implementation notes).
2. **Item encoder** (the reference's ``MLP_Layers``): ``e_i = MLP(F_i)`` with
   ``MLP(x) = f_n(... f_1(GELU(W_0 x + b_0)))``, ``f_k(y) = GELU(W_k dropout(y) + b_k)``,
   ``W_0 (d, d_f)``, ``W_k (d, d)``, ``k = 1..dnn_layers``; Xavier-normal weights, zero
   biases (the reference's ``_init_weights``). ``e_0`` (padding) is set to zero.
3. **User encoder**: SASRec over ``e_{s_1..s_L}`` + learned positions -> LayerNorm ->
   dropout -> causal Transformer -> state at the last real position ``h_u (B, d)``.
4. **Scores**: ``s(u, j) = <h_u, e_j>`` with the *same* item encoder on the scoring side.
   One item-encoder pass per training step gives the table used on both sides.

Loss: softmax cross-entropy over all ``n_items`` scores (the library's loss, RecBole's
CE, padding column included in training as SASRec), not the reference's BCE with one
sampled negative per position; CE over all items is what every other model of Table 2
here is trained with, so the comparison isolates the item encoder. The reference's
in-batch variant (``inbatch_sasrec_e2e_*``) also uses a softmax loss.

Departures from the reference:

* Frozen, cached features (all-MiniLM-L6-v2 title embeddings, 384-d, or the library's
  hashed fallback; the dataset's 768-d global visual feature) instead of BERT ``[CLS]`` /
  Swin outputs; i.e. the reference's two-stage setting, not its end-to-end fine-tuning of
  the modality encoder (which the paper reports as the strongest MoRec; infeasible on CPU
  and with cached features).
* ``modality: both`` (concatenated text + visual) is an addition: the reference trains one
  modality per model. The ``feature_norm`` option (off by default) is an addition.
* Backbone: the library's SASRec (RecBole post-LN Transformer, GELU FFN of width
  ``inner_size``, N(0, 0.02) init, LayerNorm eps 1e-12) at the MealRec paper's backbone
  size (hidden 64, 2 layers, 2 heads, inner 256, dropout 0.5) instead of the reference's
  Transformer (no Q/K/V biases, ReLU FFN of width 4d, LayerNorm eps 1e-6, Xavier init,
  ``embedding_dim`` 512, dropout 0.1, ``max_seq_len`` 10 for vision / 20 for text). The
  item encoder keeps the reference's ``dnn_layers`` 8 and its own dropout 0.1.
* Loss: CE over all items instead of BCE with one random negative per position (see
  above); trained by the library's trainer (Adam, no weight decay) instead of AdamW with
  ``l2_weight`` 0.1; one training instance per prefix (RecBole augmentation) instead of
  one loss term per position of each sequence.
* The item-encoder dropout mask is drawn once per item per step (the table is encoded once
  and shared by all occurrences of an item in the batch); the reference encodes every
  occurrence separately, each with its own mask.
* The padding item's representation is fixed at zero (the reference has no padding row:
  masked positions never enter its loss).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Dropout
from .sasrec import SASRec, SASRecConfig

MODALITIES = ("text", "visual", "both")


@dataclass
class MoRecConfig(SASRecConfig):
    """SASRec's encoder settings plus MoRec's item encoder."""

    modality: str = "both"  # text | visual | both (concatenated)
    dnn_layers: int = 8  # hidden Linear+GELU layers after the input projection (reference ``dnn_layer``)
    adapter_dropout: float = 0.1  # dropout before each hidden layer (reference ``drop_rate``)
    feature_norm: bool = False  # L2-normalise each modality's rows before concatenation


class ItemMLP(nn.Module):
    """The reference's ``MLP_Layers``: ``GELU(W_0 x)`` then ``n`` blocks ``GELU(W_k dropout(y))``."""

    def __init__(self, d_in: int, d: int, n_layers: int, dropout: float):
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"dnn_layers must be >= 0, got {n_layers}")
        self.proj = nn.Linear(d_in, d)
        self.hidden = nn.ModuleList(nn.Linear(d, d) for _ in range(n_layers))
        self.dropout = Dropout(dropout)
        for lin in [self.proj, *self.hidden]:
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.proj(x))  # (N, d)
        for lin in self.hidden:
            y = F.gelu(lin(self.dropout(y)))
        return y  # (N, d)


def modality_table(features, modality: str, normalize: bool) -> torch.Tensor:
    """Frozen item-feature table ``(n_items, d_f)`` for ``modality``; row 0 stays zero."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}; got {modality!r}")
    parts = {"text": [features.text], "visual": [features.visual], "both": [features.text, features.visual]}[modality]
    parts = [p.detach().float() for p in parts]
    if normalize:
        parts = [F.normalize(p, dim=-1) for p in parts]  # zero rows stay zero
    return torch.cat(parts, dim=-1)


class MoRec(SASRec):
    Config = MoRecConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Yuan et al., SIGIR 2023"

    def __init__(self, config: MoRecConfig, dataset):
        super().__init__(config, dataset)  # positions, encoder, LayerNorm, dropout (RecBole init)
        c = config
        del self.item_embedding  # no ID embeddings: items are their encoded content
        table = modality_table(dataset.features(), c.modality, c.feature_norm)  # (n_items, d_f)
        if table.shape[0] != self.n_items:
            raise ValueError(f"item features have {table.shape[0]} rows, expected n_items={self.n_items}")
        self.register_buffer("item_features", table, persistent=False)  # frozen, rebuilt from the dataset
        self.item_encoder = ItemMLP(table.shape[1], c.hidden_size, c.dnn_layers, c.adapter_dropout)

    # ------------------------------------------------------------------ item side
    def item_representations(self) -> torch.Tensor:
        """Encoded items ``(n_items, d)``; the padding row is zero."""
        e = self.item_encoder(self.item_features)  # (n_items, d)
        keep = torch.ones(self.n_items, 1, dtype=e.dtype, device=e.device)
        keep[0] = 0.0
        return e * keep

    # ------------------------------------------------------------------ user side
    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """SASRec over the encoded items of the sequence (``items``: this step's table, shared with scoring)."""
        item_seq = batch["item_seq"]
        x = self.seq.inputs(F.embedding(item_seq, items))  # (B, L, d)
        return self.seq.last_state(x, item_seq, batch["item_seq_len"])  # (B, d)


