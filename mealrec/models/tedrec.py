"""TedRec: sequence-level fusion of text and ID representations in the frequency domain.

Paper: L. Xu, Z. Tian, B. Li, J. Zhang, D. Wang, H. Wang, J. Wang, S. Chen, W. X. Zhao,
*Sequence-level Semantic Representation Fusion for Recommender Systems*, CIKM 2024
(arXiv:2402.18166).
Reference code: Sherry-XLL/TedRec (GitHub), read for this file: ``tedrec.py`` (the model:
``DTRLayer``, ``MoEAdaptorLayer``, ``TedRec.contextual_convolution / forward /
calculate_loss / full_sort_predict``), ``props/TedRec.yaml`` and ``props/overall.yaml``
(hyperparameters), ``data/dataset.py`` (frozen text-embedding table), ``main.py`` and
``README.md`` (training protocol). Written anew here, not copied.

Architecture (built on :class:`~mealrec.models.sasrec.SASRec`):

1. **Text branch.** A frozen table of item text embeddings ``T (n_items, d_t)`` (row 0 =
   padding zeros) is looked up along the sequence, ``x (B, L, d_t)``.
2. **MoE adaptor with distinguishable textual representations (DTR).** ``n_exps``
   experts, expert ``k``: ``W_k (dropout(x) - b_k)`` where the whitening bias ``b_k`` is
   *position-specific*, ``(L, d_t)`` (this is how TedRec "modulates positional
   embeddings" into the text, unlike UniSRec's position-free whitening). A softmax gate
   ``softmax(x G)`` over experts (noisy during training: ``+ eps * (softplus(x G_n) + 0.01)``,
   ``eps ~ N(0, 1)``) mixes them into ``t (B, L, d)``. ``G`` and ``G_n`` start at zero
   (uniform gates), ``b_k`` at zero, ``W_k ~ N(0, 0.02)``.
3. **Sequence-level fusion by mutual filtering (FFT over the L positions).** With the ID
   sequence ``e (B, L, d)``: ``E = rfft(e)``, ``F_t = rfft(t)`` (orthonormal), then
   ``item_conv = irfft(E * W)`` with a learnable complex filter ``W (L//2+1, d)`` and
   ``fusion_conv = irfft(E * F_t)`` -- text and ID filter each other, i.e. a circular
   convolution of the two sequences over positions (scaled by ``1/sqrt(L)``). Each is
   gated by ``sigmoid(Linear(d, 1))`` and the fused input is
   ``2 * (item_conv * g_i + fusion_conv * g_f)``.
4. **SASRec encoder.** fused + learned position embedding -> LayerNorm -> dropout ->
   causal Transformer -> state at the last real position, ``h (B, d)``.
5. **Scoring.** Items are represented by their **ID embeddings only** (the text enters
   through the sequence side); ``score = cos(h, E_j) / temperature``; loss = softmax
   cross-entropy over all ``n_items`` logits (RecBole CE, padding column included as in
   the reference).

Note (as in the reference): the FFT mixes all ``L`` input positions, so the state at the
last real position also sees the (padding) positions after it; the library's inputs are
right-padded with item 0 there, so no future item leaks.

Departures from the reference:

* Text encoder: item titles through all-MiniLM-L6-v2 (384-d; or the library's hashed
  384-d fallback), not BERT ``[CLS]`` vectors (768-d, ``plm_suffix: feat1CLS``). The
  adaptor is therefore ``384 -> hidden_size`` instead of ``adaptor_layers: [768, 300]``;
  its input width is read from the features, not configured.
* Backbone size: ``hidden_size`` 64 (the MealRec paper's backbone setting) instead of
  TedRec's 300; the sequence length is the dataset's ``max_len`` (10 on the synthetic
  sets) instead of 50. All TedRec-specific hyperparameters keep the reference values
  (``n_exps`` 8, ``adaptor_dropout`` 0.2, ``temperature`` 0.07, noisy gating on).
* ``score`` (and hence ``full_sort_predict``) returns ``cos / temperature``; the
  reference's ``full_sort_predict`` returns plain cosine. Rankings are identical; the
  temperature is kept so the default ``rec_loss`` (CE over ``score``) equals the
  reference's training loss, and a wrapper can reuse ``score`` as logits.
* The text table is a non-persistent buffer (rebuilt from ``dataset.features()``, not
  stored in checkpoints) rather than a frozen ``nn.Embedding`` in the state dict.
* Inputs shorter than ``max_len`` are right-padded to ``max_len`` in ``forward`` (the
  position-specific biases and the frequency filter are sized for ``max_len``; the
  reference always receives ``max_len`` columns, as this library's splits do, so this is
  a no-op for them).
* Dropout masks come from :class:`~mealrec.models.layers.Dropout` (``torch.rand``; same
  distribution) and attention from ``scaled_dot_product_attention`` (inherited from
  SASRec). Initialisation follows the reference (RecBole's N(0, 0.02) for the SASRec
  part; the gate Linear layers keep PyTorch's default bias init as in the reference).
* Visual item features are not used (TedRec is text + ID).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Dropout
from .sasrec import SASRec, SASRecConfig

#: floor of the gate-noise standard deviation (``noise_epsilon`` in the reference)
GATE_NOISE_EPS = 1e-2


@dataclass
class TedRecConfig(SASRecConfig):
    """SASRec's encoder settings plus TedRec's own."""

    n_exps: int = 8  # MoE adaptor experts
    adaptor_dropout: float = 0.2  # dropout on the text input of each expert
    temperature: float = 0.07  # cosine-similarity temperature of the logits
    noisy_gating: bool = True  # Gaussian noise on the expert gate logits while training


class DTRExpert(nn.Module):
    """One expert of the adaptor: ``W (dropout(x) - b)`` with a position-specific bias
    ``b (max_len, d_in)`` (distinguishable textual representations)."""

    def __init__(self, d_in: int, d_out: int, max_len: int, dropout: float):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(max_len, d_in))
        self.proj = nn.Linear(d_in, d_out, bias=False)
        nn.init.normal_(self.proj.weight, mean=0.0, std=0.02)

    def forward(self, x: torch.Tensor, scaled: torch.Tensor | None = None) -> torch.Tensor:
        # x (B, L, d_in) with L <= max_len. W (dropout(x) - b) computed as W dropout(x) - W b: the same
        # function; the frozen text needs no input gradient, and b's gradient comes from (L, d_out) sums.
        # ``scaled``: x / (1 - p), shared by the experts in training (the frozen text needs no gradient); the
        # mask is drawn as Dropout draws it and multiplies it in place (no select, no new buffer).
        if scaled is None or scaled.requires_grad or not self.training or self.dropout.p == 0.0:
            dropped = self.dropout(x)
        else:
            dropped = torch.rand_like(x).ge_(self.dropout.p).mul_(scaled)  # the draws become the output in place
        return self.proj(dropped) - self.proj(self.bias[: x.shape[1]])  # (B, L, d_out)


class MoEAdaptor(nn.Module):
    """Mixture of :class:`DTRExpert` s with a (noisy) softmax gate over all experts."""

    def __init__(self, n_exps: int, d_in: int, d_out: int, max_len: int, dropout: float, noisy: bool):
        super().__init__()
        if n_exps < 1:
            raise ValueError(f"n_exps must be >= 1, got {n_exps}")
        self.noisy = noisy
        self.experts = nn.ModuleList(DTRExpert(d_in, d_out, max_len, dropout) for _ in range(n_exps))
        self.w_gate = nn.Parameter(torch.zeros(d_in, n_exps))
        self.w_noise = nn.Parameter(torch.zeros(d_in, n_exps))

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Expert weights ``(B, L, n_exps)`` (each row sums to 1) for text ``x (B, L, d_in)``."""
        logits = x @ self.w_gate  # (B, L, E)
        if self.noisy and self.training:
            std = F.softplus(x @ self.w_noise) + GATE_NOISE_EPS  # (B, L, E)
            logits = logits + torch.randn_like(logits) * std
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gates(x)  # (B, L, E)
        p = self.experts[0].dropout.p
        scaled = x * (1.0 / (1.0 - p)) if self.training and 0.0 < p < 1.0 else None
        out = None
        for k, expert in enumerate(self.experts):  # sum_k g_k * expert_k(x), accumulated expert by expert
            term = g[..., k : k + 1] * expert(x, scaled)  # (B, L, d_out)
            out = term if out is None else out + term
        return out  # (B, L, d_out)


class TedRec(SASRec):
    Config = TedRecConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Xu et al., CIKM 2024"

    def __init__(self, config: TedRecConfig, dataset):
        super().__init__(config, dataset)  # ID embedding, positions, encoder, LayerNorm, dropout (RecBole init)
        c = config
        if c.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {c.temperature}")
        text = dataset.features().text.detach().float()  # (n_items, d_t), row 0 = padding
        if text.dim() != 2 or text.shape[0] != self.n_items:
            raise ValueError(f"text features must be (n_items={self.n_items}, d_t), got {tuple(text.shape)}")
        self.register_buffer("text_features", text.clone(), persistent=False)  # frozen, not a parameter

        # created after SASRec's init_weights pass: initialised as in the reference
        self.moe_adaptor = MoEAdaptor(c.n_exps, text.shape[1], c.hidden_size, self.max_len, c.adaptor_dropout,
                                      c.noisy_gating)
        n_freq = self.max_len // 2 + 1
        self.complex_weight = nn.Parameter(torch.randn(1, n_freq, c.hidden_size, 2) * 0.02)  # (1, L//2+1, d, re/im)
        self.item_gating = nn.Linear(c.hidden_size, 1)
        self.fusion_gating = nn.Linear(c.hidden_size, 1)
        nn.init.normal_(self.item_gating.weight, mean=0.0, std=0.02)
        nn.init.normal_(self.fusion_gating.weight, mean=0.0, std=0.02)

    # ------------------------------------------------------------------ text side
    def text_embed(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Adapted text embeddings of the sequence ``(B, L, d)`` (MoE over frozen text)."""
        x = F.embedding(item_seq, self.text_features)  # (B, L, d_t)
        return self.moe_adaptor(x)  # (B, L, d)

    # ------------------------------------------------------------------ fusion
    def mutual_filter(self, item_emb: torch.Tensor, text_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frequency-domain filtering over positions; both inputs ``(B, L, d)`` with ``L == max_len``.

        Returns ``item_conv`` (ID sequence through the learnable filter) and ``fusion_conv``
        (ID and text spectra multiplied, i.e. their circular convolution / sqrt(L)), both ``(B, L, d)``.
        """
        L = item_emb.shape[1]
        if L != self.max_len:
            raise ValueError(f"mutual_filter needs sequences of length max_len={self.max_len}, got {L}")
        item_f = torch.fft.rfft(item_emb, dim=1, norm="ortho")  # (B, L//2+1, d) complex
        text_f = torch.fft.rfft(text_emb, dim=1, norm="ortho")  # (B, L//2+1, d) complex
        w = torch.view_as_complex(self.complex_weight)  # (1, L//2+1, d)
        item_conv = torch.fft.irfft(item_f * w, n=L, dim=1, norm="ortho")  # (B, L, d)
        fusion_conv = torch.fft.irfft(item_f * text_f, n=L, dim=1, norm="ortho")  # (B, L, d)
        return item_conv, fusion_conv

    def fuse(self, item_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Gated sum of the two filtered sequences ``(B, L, d)``."""
        item_conv, fusion_conv = self.mutual_filter(item_emb, text_emb)  # (B, L, d) each
        g_item = torch.sigmoid(self.item_gating(item_conv))  # (B, L, 1)
        g_fusion = torch.sigmoid(self.fusion_gating(fusion_conv))  # (B, L, 1)
        return 2.0 * (item_conv * g_item + fusion_conv * g_fusion)  # (B, L, d)

    # ------------------------------------------------------------------ SASRec hooks
    def embed(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Input embeddings ``(B, L, d)`` for ``item_seq (B, max_len)``: fused ID/text + position,
        LayerNorm, dropout."""
        return self.seq.inputs(self.fuse(self.item_embedding(item_seq), self.text_embed(item_seq)))  # (B, L, d)

    def _pad(self, item_seq: torch.Tensor) -> torch.Tensor:
        L = item_seq.shape[1]
        if L > self.max_len:
            raise ValueError(f"item_seq has {L} columns, more than max_len={self.max_len}")
        return F.pad(item_seq, (0, self.max_len - L)) if L < self.max_len else item_seq  # (B, max_len)

    def user_state(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        return super().user_state(self._pad(item_seq), item_seq_len)  # (B, d)

    def item_representations(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n_items, d): ID embeddings only, as the reference

    def score(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Cosine similarity over the temperature, ``(B, n_items)``."""
        return F.normalize(h, dim=-1) @ F.normalize(items, dim=-1).T / self.config.temperature  # (B, n_items)

    def score_operands(self, h: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(h, dim=-1) / self.config.temperature, F.normalize(items, dim=-1)
