"""DMMD4SR: multi-level, per-modality diffusion denoising with uncertainty-guided fusion.

Paper: W. Lu and L. Yin, *DMMD4SR: Diffusion Model-based Multi-level Multimodal Denoising for
Sequential Recommendation*, Proceedings of the 33rd ACM International Conference on
Multimedia (MM) 2025, pp. 6363-6372.
Reference code: none released (searched GitHub through the library's code index for
"DMMD4SR", the authors' names and the title, and the docs/pages corpora for the paper and
its abstract, which were not found either; the only hit, ``ziexni/DMMD4SR``, is a third-party
attempt, not the authors': its ``models.py`` was read but not followed). This file is designed from the paper's
title, the MealRec paper's description of it ("employs multi-level DMs with
uncertainty-guided fusion to mitigate interest-agnostic noise in pre-trained multimodal
features", Sec. 1 and 2.3 of arXiv:2603.01926) and the brief's keep-list (per-modality ID /
text / visual diffusion denoising at more than one level; uncertainty-guided fusion). Every
design choice below is therefore ours and is listed under "Departures".

Architecture (``d`` = ``hidden_size``; modalities ``m`` in {id, text, visual}):

1. **Item representations.** ``E`` learned ID embeddings; ``r_text = LN(W_t x_text)`` and
   ``r_vis = LN(W_v x_vis)`` from the frozen title and global visual features (row 0 =
   padding).
2. **Level 1: item-level content denoising** (the noise the pre-trained encoders put into
   item features that is unrelated to interests). For ``m`` in {text, visual} a Gaussian
   diffusion with ``T`` steps on ``r_m`` and a skip-connected MLP denoiser conditioned on the
   item's collaborative embedding, ``g_m(x_t, t, E_j) = x_t + MLP([x_t, E_j, tau(t)])``
   (x0-prediction). Training: ``L_item = ||sg(r_m) - g_m(q(r_m, t), t, E)||^2`` on all items.
   Use: the deterministic reverse chain (posterior means, no sampling noise) started from the
   clean ``r_m`` treated as ``x_T`` gives the denoised item table ``r^_m``; in training only
   the last ``grad_steps`` steps are back-propagated
   (:meth:`~mealrec.models.diffusion.GaussianDiffusion.reverse`). ID embeddings are learned
   from the interactions, so they have no pre-training noise and keep ``r^_id = E``.
3. **Per-modality sequence encoders.** For every modality a SASRec encoder (own position
   embedding, causal post-LN Transformer) over ``r^_m`` of the history gives ``u_m (B, d)``.
4. **Level 2: interest-level denoising** (noise in the user's interest with respect to the
   next item). For every modality a diffusion on the next item's representation
   ``x0 = sg(r^_m[target])`` with a denoiser ``h_m(x_t, t, u_m) = x_t + MLP([x_t, u_m, tau(t)])``.
   Training: ``L_int = ||x0 - h_m(q(x0, t), t, u_m)||^2``. Generation (training and
   evaluation alike): the deterministic reverse chain from ``x_T = 0`` conditioned on ``u_m``
   gives ``z_m (B, d)``, the user's denoised interest in modality ``m``.
5. **Uncertainty-guided fusion.** A head ``s_m = w_m^T sg(u_m) + b_m`` predicts the log of the
   expected reconstruction error of modality ``m`` for this user; it is trained by the
   heteroscedastic objective ``L_unc = e_m exp(-s_m) + s_m`` with
   ``e_m = sg(1 - cos(h_m(x_t, t, u_m), x0))`` (scale-free, minimised at
   ``s_m = log E[e_m]``; Kendall & Gal, NeurIPS 2017). Fusion weights are the normalised
   precisions ``pi = softmax(-sg(s))`` over the three modalities. The user representation is
   ``[pi_id z_id ; pi_text z_text ; pi_vis z_vis]`` ``(B, 3d)`` and items are
   ``[E ; r^_text ; r^_vis]`` ``(n_items, 3d)``, so
   ``score(u, j) = sum_m pi_m <z_m, r^_m[j]>``: a precision-weighted sum of per-modality scores.
6. **Loss.** ``CE(score, target)`` over all items (padding column included, as RecBole)
   ``+ lambda_item * sum L_item + lambda_interest * sum L_int + lambda_uncertainty * sum L_unc``.

Departures (design choices, since no reference code or full text was available):

* "Multi-level" is read as two levels, item-level content denoising (level 1) and
  interest-level next-item denoising (level 2); "per-modality" as one diffusion denoiser per
  modality at each level (none for ID at level 1, see above).
* Level 1 is conditioned on the ID embedding (the collaborative signal that tells
  interest-relevant content from the rest); it runs on the whole item table (it is cheap:
  an MLP over ``n_items`` rows) and starts its reverse chain from the clean features, as the
  library's MealRec NPD does, so the chain refines rather than samples.
* Level 2 follows DreamRec/DiffuRec (denoise the target item's representation conditioned on
  the history), with a deterministic start ``x_T = 0`` so evaluation is reproducible and
  independent of batch composition; the recommendation loss is taken on the output of this
  generation chain (not on a one-step reconstruction that sees the noised target), so
  training and evaluation score the same quantity.
* Uncertainty: a per-user, per-modality log-variance head trained by a heteroscedastic
  objective on the (detached) cosine reconstruction error; fusion by inverse-uncertainty
  (precision) weights with stop-gradient, so the weights are set by the uncertainty estimate
  alone and not by the ranking loss. ``fusion: mean`` uses equal weights instead (ablation).
* Denoisers are 2-layer GELU MLPs of width ``denoiser_inner`` with a skip connection and the
  library's sinusoidal step embedding; targets are stop-gradient (as the library's
  :class:`~mealrec.models.diffusion.GaussianDiffusion`); ``T`` = 10 steps with DDPM's linear
  betas 1e-4..0.02 (the library's diffusion defaults, the middle of the MealRec paper's
  {5..25} axis); loss weights 0.1 (the MealRec configs' default for auxiliary diffusion
  terms). Encoders use the MealRec paper's backbone settings (SASRec: hidden 64, 2 blocks, 2
  heads, inner 256, dropout 0.5, RecBole init); content adaptors are Linear + LayerNorm
  (unit scale, as the diffusion noise assumes).
* Visual input is the global visual feature (one vector per item), not the frames; text is
  the library's title embedding (all-MiniLM-L6-v2 or its hashed fallback).
* Dropout masks come from :class:`~mealrec.models.layers.Dropout` (``torch.rand``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import MealRecError
from .base import Output, SequentialRecommender
from .sasrec import SASRecConfig
from .diffusion import GaussianDiffusion, SinusoidalTimeEmbedding, make_schedule
from .layers import LAYER_NORM_EPS, SequenceEncoder, init_weights

MODALITIES = ("id", "text", "visual")
CONTENT = ("text", "visual")
FUSIONS = ("uncertainty", "mean")


@dataclass
class DMMD4SRConfig(SASRecConfig):
    """The sequence encoders' settings (SASRec's) plus DMMD4SR's own."""

    steps: int = 10  # T of both diffusion levels
    schedule: str = "linear"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    denoiser_inner: int = 256  # width of the denoiser MLPs
    grad_steps: int = 1  # reverse-chain steps back-propagated in training (0 = all T)
    lambda_item: float = 0.1  # level-1 (item-level content) denoising loss
    lambda_interest: float = 0.1  # level-2 (interest-level) denoising loss
    lambda_uncertainty: float = 1.0  # uncertainty-head objective (trains the heads only)
    fusion: str = "uncertainty"  # uncertainty | mean


class SkipDenoiser(nn.Module):
    """``x0_hat = x_t + MLP([x_t, cond, tau(t)])`` for ``x_t (N, d)``, ``cond (N, d)``, ``t (N,)``."""

    def __init__(self, d: int, inner: int):
        super().__init__()
        self.time = SinusoidalTimeEmbedding(d)
        self.mlp = nn.Sequential(nn.Linear(3 * d, inner), nn.GELU(), nn.Linear(inner, d))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return x_t + self.mlp(torch.cat([x_t, cond, self.time(t)], dim=-1))


class DMMD4SR(SequentialRecommender):
    Config = DMMD4SRConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Lu & Yin, ACM MM 2025"

    def __init__(self, config: DMMD4SRConfig, dataset):
        super().__init__(config, dataset)
        c = config
        if c.fusion not in FUSIONS:
            raise MealRecError(f"dmmd4sr: fusion must be one of {', '.join(FUSIONS)}; got {c.fusion!r}")
        if c.grad_steps < 0 or c.grad_steps > c.steps:
            raise MealRecError(f"dmmd4sr: grad_steps must be in [0, steps={c.steps}], got {c.grad_steps}")
        for name in ("lambda_item", "lambda_interest", "lambda_uncertainty"):
            if getattr(c, name) < 0:
                raise MealRecError(f"dmmd4sr: {name} must be >= 0, got {getattr(c, name)}")
        feats = dataset.features()
        text, visual = feats.text.detach().float(), feats.visual.detach().float()
        for name, f in (("text", text), ("visual", visual)):
            if f.dim() != 2 or f.shape[0] != self.n_items:
                raise MealRecError(
                    f"dmmd4sr: {name} features must be (n_items={self.n_items}, dim), got {tuple(f.shape)}")
        self.register_buffer("text_features", text.clone(), persistent=False)
        self.register_buffer("visual_features", visual.clone(), persistent=False)
        d = c.hidden_size
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)
        self.adaptors = nn.ModuleDict({
            "text": nn.Sequential(nn.Linear(text.shape[1], d), nn.LayerNorm(d, eps=LAYER_NORM_EPS)),
            "visual": nn.Sequential(nn.Linear(visual.shape[1], d), nn.LayerNorm(d, eps=LAYER_NORM_EPS)),
        })
        self.item_denoisers = nn.ModuleDict({m: SkipDenoiser(d, c.denoiser_inner) for m in CONTENT})  # level 1
        self.encoders = nn.ModuleDict({m: SequenceEncoder.of(c, self.max_len) for m in MODALITIES})
        self.interest_denoisers = nn.ModuleDict({m: SkipDenoiser(d, c.denoiser_inner) for m in MODALITIES})  # level 2
        self.uncertainty_heads = nn.ModuleDict({m: nn.Linear(d, 1) for m in MODALITIES})
        self.diffusion = GaussianDiffusion(make_schedule(c.schedule, c.steps, c.beta_start, c.beta_end))
        self.apply(lambda mod: init_weights(mod, c.initializer_range))

    # ------------------------------------------------------------------ level 1: items
    def raw_content(self, m: str) -> torch.Tensor:
        feats = self.text_features if m == "text" else self.visual_features
        return self.adaptors[m](feats)  # (n_items, d)

    def _item_fn(self, m: str, cond: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Level-1 denoiser of modality ``m`` conditioned on ID embeddings ``cond (N, d)``."""
        return lambda x, t: self.item_denoisers[m](x, t, cond)

    def item_tables(self) -> dict[str, torch.Tensor]:
        """Per-modality item representations ``(n_items, d)``: ``E`` and the level-1 denoised content."""
        tables = {"id": self.item_embedding.weight}
        for m in CONTENT:
            fn = self._item_fn(m, self.item_embedding.weight)
            tables[m] = self.diffusion.reverse(fn, self.raw_content(m), grad_steps=self.config.grad_steps)
        return tables

    # ------------------------------------------------------------------ level 2: interests
    def interests(
        self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, tables: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``u_m (B, d)`` from each modality's sequence encoder."""
        return {m: self.encoders[m](F.embedding(item_seq, tables[m]), item_seq, item_seq_len) for m in MODALITIES}

    def log_uncertainty(self, u: dict[str, torch.Tensor]) -> torch.Tensor:
        """``s (B, 3)``: predicted log reconstruction error per modality (inputs detached)."""
        return torch.cat([self.uncertainty_heads[m](u[m].detach()) for m in MODALITIES], dim=-1)

    def fusion_weights(self, s: torch.Tensor) -> torch.Tensor:
        if self.config.fusion == "mean":
            return torch.full_like(s, 1.0 / s.shape[-1])
        return torch.softmax(-s.detach(), dim=-1)  # (B, 3) normalised precisions

    def generate(self, u: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``z_m (B, d)``: the reverse chain from ``x_T = 0`` conditioned on ``u_m``."""
        out = {}
        for m in MODALITIES:
            cond = u[m]
            fn = lambda x, t, m=m, cond=cond: self.interest_denoisers[m](x, t, cond)  # noqa: E731
            out[m] = self.diffusion.reverse(fn, torch.zeros_like(cond), grad_steps=self.config.grad_steps)
        return out

    def fuse(self, z: dict[str, torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        return torch.cat([weights[:, i : i + 1] * z[m] for i, m in enumerate(MODALITIES)], dim=-1)  # (B, 3d)

    # ------------------------------------------------------------------ contract
    def item_representations(self) -> dict[str, torch.Tensor]:
        return self.item_tables()

    @staticmethod
    def _stack(tables: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tables[m] for m in MODALITIES], dim=-1)  # (n_items, 3d)

    def score(self, h: torch.Tensor, tables: dict[str, torch.Tensor]) -> torch.Tensor:
        return h @ self._stack(tables).T  # (B, n_items)

    def score_operands(self, h: torch.Tensor, tables: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return h, self._stack(tables)

    def forward(self, batch: dict[str, torch.Tensor], tables: dict[str, torch.Tensor]) -> Output:
        """``h (B, 3d)``; in training also the three denoising losses, computed in the reference's order."""
        item_seq, item_seq_len = batch["item_seq"], batch["item_seq_len"]
        if not self.training:
            u = self.interests(item_seq, item_seq_len, tables)
            return Output(self.fuse(self.generate(u), self.fusion_weights(self.log_uncertainty(u))))
        # level 1: item-level content denoising on every real item
        E = self.item_embedding.weight[1:]
        l_item = sum(self.diffusion.training_loss(self._item_fn(m, E), self.raw_content(m)[1:])[0] for m in CONTENT)
        # level 2: interest-level denoising of the next item's representation, per modality
        u = self.interests(item_seq, item_seq_len, tables)
        s = self.log_uncertainty(u)  # (B, 3)
        l_int, l_unc = 0.0, 0.0
        for i, m in enumerate(MODALITIES):
            x0 = tables[m][batch["target"]].detach()  # (B, d)
            fn = lambda x, t, m=m: self.interest_denoisers[m](x, t, u[m])  # noqa: E731
            mse, x0_hat = self.diffusion.training_loss(fn, x0)
            err = (1.0 - F.cosine_similarity(x0_hat, x0, dim=-1)).detach()  # (B,)
            l_int = l_int + mse
            l_unc = l_unc + (err * torch.exp(-s[:, i]) + s[:, i]).mean()
        terms = {"item_denoise": l_item, "interest_denoise": l_int, "uncertainty": l_unc}
        return Output(self.fuse(self.generate(u), self.fusion_weights(s)), terms, logs=terms)  # logged unweighted

    def auxiliary_losses(self, out: Output, tables, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not out.parts:
            return {}
        c, p = self.config, out.parts
        return {"item_denoise": c.lambda_item * p["item_denoise"], "interest_denoise": c.lambda_interest *
                p["interest_denoise"], "uncertainty": c.lambda_uncertainty * p["uncertainty"]}

    def export_parts(self, out: Output, tables, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"user": out.h, "target_item": self._stack(tables)[batch["target"]]}


__all__ = ["DMMD4SR", "DMMD4SRConfig", "MODALITIES"]
