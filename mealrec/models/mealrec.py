"""MealRec: hierarchical diffusion over a sequential backbone (TCD + NPD).

Paper: X. Dong, H. Ma, Y. Zheng, Y. Zha, Y. Yang, X. Wang, *MealRec: Multi-granularity
Sequential Modeling via Hierarchical Diffusion Models for Micro-Video Recommendation*,
arXiv 2603.01926 (2026), Section 4, Eqs. 6-16.
Reference code: none released ("available upon acceptance"). Diffusion conventions
follow DDPM (Ho et al. 2020) and lucidrains/denoising-diffusion-pytorch; the
timestep-free denoiser follows Sun et al. 2025 ("Is noise conditioning necessary for
denoising generative models?").

Pipeline for one instance with history ``[i_1 .. i_L]``:

* **Backbone** (SASRec / CL4SRec / TedRec): ``x0 = SeqEnc(...)`` (Eq. 12), ``(B, d)``.
* **TCD** (Eqs. 6-11): frames of the last item ``F_L (K=5, d_v)`` -> linear to ``d`` +
  learnable positions -> temporal attention encoder -> ``z0 (K, d)`` (Eq. 6). Context
  ``c_v`` = recency-decayed mean of the history's global visual features (Eq. 7,
  ``gamma = 0.9``), projected to ``d``. Denoiser: a small 1-D U-Net along the frame
  axis (``unet_channels`` = 16 wide) with a sinusoidal step embedding and
  cross-attention to ``c_v`` (Eq. 8),
  trained with the x0 loss (Eq. 11).
* **NPD** (Eqs. 12-14): tokens ``[x_t, z0_hat (K tokens), W h_L]`` + type embeddings ->
  self-attention block read out at ``x_t`` -> ``x0_hat``. **No timestep input** (Eq. 13).
* Scores: the backbone's scoring of ``x0_hat``; loss ``L_R + lambda_T L_T + lambda_N L_N``
  (Eq. 16; plus the backbone's own auxiliary terms, e.g. CL4SRec's InfoNCE).

Decisions the paper leaves open (each a setting; the book's implementation notes and its
positive-controls page give the control results that settled them; ``V1_SETTINGS`` are the
choices before the controls):

* Training: ``L_T`` and ``L_N`` each draw one ``t ~ U{1..T}`` per instance. What feeds the
  ranking loss is the *same deterministic reverse chain* that evaluation runs, back-propagated
  through all T steps (``grad_steps: 0``), so ``L_R`` reaches every step and ``c_v``'s injection
  at each of them. ``grad_steps: k`` keeps only the last k steps in the graph (the earlier
  ones get a straight-through gradient; see :meth:`GaussianDiffusion.reverse`).
* Chain start (``npd_start: noised``): both chains start from their clean latent noised to step
  T in expectation, ``sqrt(abar_T) z0`` and ``sqrt(abar_T) x0`` (Eq. 10, Eq. 13: the chain starts
  at ``x_T``), with no random noise, in training and evaluation alike; the chain then runs the
  posterior mean (Eq. 9 without ``sigma_t eps``), so a checkpoint always gives the same metrics.
  ``clean`` starts NPD at ``x0`` itself (before the controls).
* Schedule (``schedule: linear``): DDPM's linear betas from 1e-4 to 0.02, so ``abar_T`` is 0.90 at
  T = 10 and 0.78 at T = 25, and T sets how much is corrupted (Figure 4's axis). The chains are
  deterministic and start at ``sqrt(abar_T)`` times their latent, so a schedule that corrupts
  heavily at T (``cosine``: ``abar_T`` about 2e-5) makes each chain's output a function of its
  conditions alone: the positive controls measured TCD's output and NPD's output as independent of
  the item's frames and of the user's history (a generative chain, not a refinement of the latent).
* Gradients of the denoising losses (``diffusion_grad: all``): the whole of Eq. 16 trains every
  module end to end, as the paper says: the noised inputs of ``L_T`` and ``L_N`` carry gradient
  into the encoders that produce ``z0`` and ``x0``; only the targets are detached. ``denoisers``
  detaches the inputs too, so the reconstruction losses train the denoisers and their conditions
  alone. The positive controls lean towards ``all`` (see the implementation notes).
* Symmetry (``symmetric: true``): the condition tokens (frames and title) pass a LayerNorm in
  every variant, so ``full`` and ``-TCD`` feed NPD tokens on one scale, and ``-NPD``'s fusion
  MLP starts at zero like NPD's correction, so every variant starts from its backbone's
  direction.
* Both denoisers predict ``x0`` as ``input + correction`` (a skip connection) with the
  correction's output layer initialised to zero.
* ``T`` is shared by TCD and NPD (Sec. 5.1.3: ``T^t = T^n = T``).
* ``c_v`` enters the U-Net by cross-attention to one context token, which with a single
  token amounts to a learned, query-independent injection of ``c_v``; it is computed in
  that closed form, once per chain (see :class:`TemporalUNet`).
* Cost on CPU: the U-Net works channels-last with convolutions as one matrix product and
  per-frame LayerNorm, and NPD computes the condition tokens' keys and values once per chain.
  These are exact rewrites, except LayerNorm for GroupNorm.
* Ablations (Figures 3, 6): ``-TCD`` feeds the projected raw frames (with positions) to NPD
  instead of TCD's output; ``-NPD`` replaces NPD by ``x0 + MLP([x0; mean frame tokens; title
  token])``; ``-TCD-NPD`` does both. The backbone is never changed, and a variant differs from
  ``full`` only in the module it removes.
* The backbone's settings are resolved with the rest of the configuration
  (:mod:`mealrec.models.plugin`), so they are recorded and keyed with every run.
* Features are fixed inputs (no end-to-end visual encoder), as in the paper.

Departures: no released code to compare with; everything above is our reading.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import MealRecError
from .base import Output
from .diffusion import GaussianDiffusion, SinusoidalTimeEmbedding, make_schedule
from .layers import Dropout, FeedForward, MultiHeadAttention, TransformerEncoder, init_weights
from .plugin import BackbonePlugin, with_backbone

VARIANTS = ("full", "-TCD", "-NPD", "-TCD-NPD")
NPD_STARTS = ("noised", "clean")
DIFFUSION_GRADS = ("denoisers", "all")


@dataclass
class MealRecConfig:
    variant: str = "full"  # full | -TCD | -NPD | -TCD-NPD
    steps: int = 10  # T, shared by TCD and NPD; Figure 4 axis {5, 10, 15, 20, 25}
    lambda_t: float = 0.1  # weight of L_T; grid {0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9}
    lambda_n: float = 0.1  # weight of L_N; same grid
    gamma: float = 0.9  # recency decay of c_v (Eq. 7)
    schedule: str = "linear"  # beta schedule: linear | cosine (see diffusion.make_schedule)
    beta_start: float = 1e-4
    beta_end: float = 0.02
    tcd_layers: int = 1
    unet_channels: int = 16  # width of TCD's U-Net (the model width d is the backbone's)
    npd_layers: int = 1
    n_heads: int = 2
    dropout: float = 0.1
    grad_steps: int = 0  # reverse-chain steps back-propagated in training (0 = all T); see GaussianDiffusion.reverse
    npd_start: str = "noised"  # NPD's chain starts at sqrt(abar_T) x0 like TCD's (noised) | at x0 itself (clean)
    diffusion_grad: str = "all"  # L_T, L_N train the encoders too (all, Eq. 16) | only the denoisers (denoisers)
    symmetric: bool = True  # LayerNorm on the condition tokens; -NPD's fusion starts at zero like NPD
    backbone: dict = field(default_factory=dict)  # the backbone's settings (resolved: see models/plugin.py)

    def __post_init__(self):
        for name, allowed in (("variant", VARIANTS), ("npd_start", NPD_STARTS), ("diffusion_grad", DIFFUSION_GRADS)):
            if getattr(self, name) not in allowed:
                raise MealRecError(f"mealrec: {name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.grad_steps < 0 or self.steps < 1:
            raise MealRecError(f"mealrec: steps must be >= 1 and grad_steps >= 0; got {self.steps}, {self.grad_steps}")


#: The settings of MealRec before the positive controls (store runs made with them read as such).
V1_SETTINGS = {"schedule": "linear", "grad_steps": 1, "npd_start": "clean", "diffusion_grad": "all", "symmetric": False}


class FrameConv(nn.Module):
    """A kernel-3, padding-1 1-D convolution along the frame axis in channels-last layout,
    ``(B, K, c_in) -> (B, ceil(K / stride), c_out)``, computed as one matrix product over the
    three shifted copies (on CPU about twice as fast as ``nn.Conv1d`` at these sizes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.proj = nn.Linear(3 * c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp = F.pad(x, (0, 0, 1, 1))  # (B, K + 2, c)
        windows = torch.cat([xp[:, :-2], xp[:, 1:-1], xp[:, 2:]], dim=-1)  # (B, K, 3c)
        return self.proj(windows[:, :: self.stride])


class ResBlock1d(nn.Module):
    """Residual block along the frames with an added step embedding (DDPM U-Net style):
    ``x + conv(drop(silu(norm(conv(silu(norm(x))) + W temb))))``. Channels-last ``(B, K, C)``;
    per-frame LayerNorm instead of DDPM's GroupNorm (over 5 frames GroupNorm's statistics come
    from 4 channels x 5 frames, and its CPU backward cost 7x LayerNorm's)."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.LayerNorm(c_in), FrameConv(c_in, c_out)
        self.t_proj = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.LayerNorm(c_out), FrameConv(c_out, c_out)
        self.dropout = Dropout(dropout)
        self.skip = nn.Linear(c_in, c_out) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        # x (B, K, C), temb (B, t_dim)
        h = self.conv1(F.silu(self.norm1(x))) + self.t_proj(temb)[:, None, :]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class TemporalUNet(nn.Module):
    """A small 1-D U-Net over the K frames at ``ch`` channels: in-projection ``d -> ch``, a
    down block (K -> ceil(K/2) by a stride-2 convolution), a middle block with cross-attention
    to the context token, an up block (each position repeated twice) with a skip connection,
    out-projection ``ch -> d``. Predicts ``z0`` (x0-objective) as ``z_t + correction``.

    Cross-attention to the single context token ``c_v`` is computed in closed form: a softmax
    over one key is 1, so the attention output is ``W_o W_v c`` for every query, and the
    query/key projections could never receive a gradient (they are omitted). The result,
    :meth:`inject`, does not depend on ``z_t`` or ``t`` and is computed once per reverse chain.
    Attention dropout over that single weight is not applied (the output dropout is)."""

    def __init__(self, d: int, ch: int, n_heads: int, dropout: float):
        super().__init__()
        self.time = SinusoidalTimeEmbedding(ch)
        self.inp = nn.Linear(d, ch)
        self.down = ResBlock1d(ch, ch, ch, dropout)
        self.downsample = FrameConv(ch, ch, stride=2)
        self.mid = ResBlock1d(ch, ch, ch, dropout)
        self.ctx_value = nn.Linear(d, ch)  # W_v (after the context's own projection to d)
        self.ctx_out = nn.Linear(ch, ch)  # W_o
        self.ctx_dropout = Dropout(dropout)
        self.ctx_norm = nn.LayerNorm(ch, eps=1e-12)
        self.up = ResBlock1d(2 * ch, ch, ch, dropout)
        self.out = nn.Linear(ch, d)

    def inject(self, context: torch.Tensor) -> torch.Tensor:
        """``context (B, 1, d)`` -> the cross-attention output ``(B, 1, ch)`` (see the class docstring)."""
        if context.shape[1] != 1:
            raise ValueError(f"TemporalUNet attends to one context token (c_v); got {context.shape[1]}")
        return self.ctx_out(self.ctx_value(context))

    def step(self, z_t: torch.Tensor, t: torch.Tensor, inj: torch.Tensor) -> torch.Tensor:
        # z_t (B, K, d), t (B,), inj (B, 1, ch) from inject()
        K = z_t.shape[1]
        steps, inverse = torch.unique(t, return_inverse=True)  # the chain passes one step for all rows
        temb = self.time(steps)[inverse]  # (B, ch)
        h0 = self.down(self.inp(z_t), temb)  # (B, K, ch)
        h = self.mid(self.downsample(h0), temb)  # (B, K', ch)
        h = self.ctx_norm(h + self.ctx_dropout(inj))  # post-LN residual cross-attention
        h = h.repeat_interleave(2, dim=1)[:, :K]  # (B, K, ch)
        h = self.up(torch.cat([h, h0], dim=-1), temb)  # (B, K, ch)
        return z_t + self.out(h)  # (B, K, d): skip + correction

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``z_t (B, K, d)``, ``t (B,)``, ``context (B, 1, d)`` -> ``z0_hat (B, K, d)``."""
        return self.step(z_t, t, self.inject(context))


class TCD(nn.Module):
    """Temporal-guided Content Diffusion (Eqs. 6-11)."""

    def __init__(self, d: int, d_v: int, n_frames: int, cfg: MealRecConfig):
        super().__init__()
        self.frame_proj = nn.Linear(d_v, d)
        self.pos = nn.Parameter(torch.zeros(n_frames, d))
        self.encoder = TransformerEncoder(cfg.tcd_layers, d, cfg.n_heads, 4 * d, cfg.dropout, cfg.dropout)
        self.ctx_proj = nn.Linear(d_v, d)
        self.denoiser = TemporalUNet(d, cfg.unet_channels, cfg.n_heads, cfg.dropout)
        self.diffusion = GaussianDiffusion(make_schedule(cfg.schedule, cfg.steps, cfg.beta_start, cfg.beta_end))
        self.grad_steps = cfg.grad_steps
        self.detach_inputs = cfg.diffusion_grad == "denoisers"
        nn.init.normal_(self.pos, std=0.02)

    def raw_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (B, K, d_v)`` -> projected frames with positions ``(B, K, d)`` (the -TCD input)."""
        return self.frame_proj(frames) + self.pos[None]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Eq. 6: ``z0 = TempAttnEnc(F_L + P)``, ``(B, K, d)`` (all frames see each other)."""
        x = self.raw_frames(frames)
        return self.encoder(x, None)

    def forward(self, frames: torch.Tensor, c_v: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns ``(z0, L_T or None, z0_hat)``; ``c_v (B, d_v)``."""
        z0 = self.encode(frames)  # (B, K, d)
        inj = self.denoiser.inject(self.ctx_proj(c_v)[:, None, :])  # (B, 1, ch), once per chain
        fn = lambda z_t, t: self.denoiser.step(z_t, t, inj)  # noqa: E731
        T = self.diffusion.T
        t_T = torch.full((z0.shape[0],), T, dtype=torch.long, device=z0.device)
        z_T = self.diffusion.q_sample(z0, t_T, noise=torch.zeros_like(z0))  # noised to T in expectation
        clean = z0.detach() if self.detach_inputs else z0
        loss = self.diffusion.training_loss(fn, clean)[0] if self.training else None  # L_T at a random t
        out = self.diffusion.reverse(fn, z_T, grad_steps=self.grad_steps)  # the same chain in training and evaluation
        return z0, loss, out


class QueryBlock(nn.Module):
    """One post-LN Transformer layer evaluated at a single query position: the query token
    attends over ``[query, condition tokens]``, then the feed-forward block. For one layer
    this equals a full self-attention layer read out at the query's position (same weights,
    same state-dict keys as :class:`~mealrec.models.layers.TransformerLayer`).

    The condition tokens' keys and values do not change along a reverse chain, so
    :meth:`prepare` computes them once and :meth:`attend` reuses them at every step."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.attention = MultiHeadAttention(d, n_heads, dropout, dropout)
        self.ffn = FeedForward(d, 4 * d, dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, M, d = x.shape
        h = self.attention.n_heads
        return x.view(B, M, h, d // h).transpose(1, 2)  # (B, h, M, dh)

    def prepare(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cond (B, M, d)`` -> its keys (scaled as :meth:`attend` scales them) and values ``(B, h, M, dh)`` each."""
        a = self.attention
        k = self._heads(a.key(cond))
        return k * k.shape[-1] ** -0.25, self._heads(a.value(cond))

    def attend(self, q: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        # q (B, 1, d); kv from prepare(). scaled_dot_product_attention's math (q and k each scaled by
        # sqrt(1/sqrt(dh)); on the CPU its attention dropout is bernoulli_(1 - p) over the (B, h, 1, 1 + M)
        # weights, drawn here the same way), with products and sums over the single query instead of batched
        # (1 x dh) @ (dh x M) matrix products, and the query token's own key and value kept apart (no concatenation).
        a = self.attention
        kc, vc = kv  # (B, h, M, dh)
        s = kc.shape[-1] ** -0.25
        qh, kq, vq = self._heads(a.query(q) * s), self._heads(a.key(q) * s), self._heads(a.value(q))  # (B, h, 1, dh)
        attn = torch.cat([(qh * kq).sum(-1), (qh * kc).sum(-1)], dim=-1).softmax(-1)  # (B, h, 1 + M)
        if self.training and a.attn_dropout > 0.0:
            keep = 1.0 - a.attn_dropout
            attn = attn * torch.empty_like(attn).bernoulli_(keep).div_(keep)
        ctx = attn[..., :1, None] * vq + (attn[..., 1:, None] * vc).sum(2, keepdim=True)  # (B, h, 1, dh)
        ctx = ctx.transpose(1, 2).reshape(q.shape)
        return self.ffn(a.norm(a.out_dropout(a.dense(ctx)) + q))

    def forward(self, q: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # q (B, 1, d), cond (B, M, d)
        return self.attend(q, self.prepare(cond))


class NPDDenoiser(nn.Module):
    """``g(x_t, c_m) = x_t + W·SA([x_t, frames (K), h_L])[x_t]``: self-attention over the tokens
    (with type embeddings), read out at the ``x_t`` token, added to ``x_t``. Deliberately has no timestep
    argument and no step embedding (Eq. 13).

    Only the ``x_t`` position is read out, so only its row is computed (:class:`QueryBlock`):
    exact for one layer (the default); with more layers the condition tokens are not updated
    between layers (a Perceiver-style simplification)."""

    def __init__(self, d: int, cfg: MealRecConfig):
        super().__init__()
        self.type_emb = nn.Embedding(3, d)  # 0: x_t, 1: frame, 2: title
        self.layers = nn.ModuleList(QueryBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.npd_layers))
        self.out = nn.Linear(d, d)

    def condition(self, frames: torch.Tensor, text: torch.Tensor) -> list:
        """The multimodal condition ``c_m`` as each layer's keys and values (once per chain).
        ``frames (B, K, d)``, ``text (B, d)``."""
        text_token = (text + self.type_emb.weight[2])[:, None]
        cond = torch.cat([frames + self.type_emb.weight[1], text_token], dim=1)  # (B, K+1, d)
        return [layer.prepare(cond) for layer in self.layers]

    def step(self, x_t: torch.Tensor, cond: list) -> torch.Tensor:
        """One denoising step from ``x_t (B, d)`` and :meth:`condition`'s output; no timestep."""
        q = (x_t + self.type_emb.weight[0])[:, None]  # (B, 1, d)
        for layer, kv in zip(self.layers, cond):
            q = layer.attend(q, kv)
        return x_t + self.out(q[:, 0])  # (B, d): skip + correction

    def forward(self, x_t: torch.Tensor, frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.step(x_t, self.condition(frames, text))


class MealRec(BackbonePlugin):
    """Backbone + TCD + NPD. Subclasses pick the backbone (see ``MODELS``)."""

    Config = MealRecConfig
    paper = "Dong et al., arXiv 2603.01926"

    def __init__(self, config: MealRecConfig, dataset):
        super().__init__(config, dataset)
        bcfg = self.build_backbone(dataset)
        self.use_tcd = config.variant in ("full", "-NPD")
        self.use_npd = config.variant in ("full", "-TCD")

        feats = dataset.features()
        self.register_buffer("frames", feats.frames.to(torch.float16), persistent=False)  # (n_items, K, d_v)
        self.register_buffer("visual", feats.visual.float(), persistent=False)  # (n_items, d_v)
        self.register_buffer("text", feats.text.float(), persistent=False)  # (n_items, d_t)
        d = bcfg.hidden_size
        n_frames, d_v = self.frames.shape[1], self.frames.shape[2]
        self.tcd = TCD(d, d_v, n_frames, config)  # also holds the -TCD frame projection
        if not self.use_tcd:  # keep only the projection used by -TCD
            del self.tcd.encoder, self.tcd.ctx_proj, self.tcd.denoiser
        self.text_proj = nn.Linear(self.text.shape[1], d)
        if config.symmetric:  # the condition tokens on one scale in every variant
            self.frame_norm, self.text_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        if self.use_npd:
            self.npd = NPDDenoiser(d, config)
            self.npd_diffusion = GaussianDiffusion(make_schedule(config.schedule, config.steps, config.beta_start,
                                                             config.beta_end))
        else:
            self.fusion = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, d))
        for name, m in self.named_children():
            if name != "backbone":
                m.apply(init_weights)
        # the denoisers start as the identity (skip + zero correction), so MealRec starts from its backbone
        outs = ([self.tcd.denoiser.out] if self.use_tcd else []) + ([self.npd.out] if self.use_npd else [])
        if config.symmetric and not self.use_npd:
            outs.append(self.fusion[-1])  # -NPD starts from its backbone too
        for out in outs:
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)

    # ------------------------------------------------------------------ pieces
    def recency_context(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Eq. 7: ``c_v = sum_k alpha_k v_k`` with ``alpha_k ∝ exp(-gamma (L - k))`` over real items. ``(B, d_v)``."""
        L = item_seq.shape[1]
        k = torch.arange(1, L + 1, device=item_seq.device)[None, :]  # (1, L)
        logits = -self.config.gamma * (item_seq_len[:, None] - k).float()  # (B, L)
        logits = logits.masked_fill(k > item_seq_len[:, None], -torch.inf)
        alpha = torch.softmax(logits, dim=1)  # (B, L)
        # the weighted sum without gathering (B, L, d_v): alpha carries no gradient (it depends on lengths only)
        return F.embedding_bag(item_seq, self.visual, per_sample_weights=alpha, mode="sum")  # (B, d_v)

    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> Output:
        """``h (B, d)``; parts: the diffusion losses (training only) and the frames before and after TCD."""
        item_seq, item_seq_len = batch["item_seq"], batch["item_seq_len"]
        terms: dict[str, torch.Tensor] = {}
        x0 = self.backbone.user_state(item_seq, item_seq_len)  # (B, d)
        last = item_seq.gather(1, (item_seq_len - 1)[:, None]).squeeze(1)  # (B,)
        frames = self.frames[last].float()  # (B, K, d_v)
        if self.use_tcd:
            c_v = self.recency_context(item_seq, item_seq_len)
            z0, l_t, frames_out = self.tcd(frames, c_v)  # (B, K, d)
            if l_t is not None:
                terms["tcd"] = l_t
        else:
            z0 = frames_out = self.tcd.raw_frames(frames)
        text = self.text_proj(self.text[last])  # (B, d)
        tokens = frames_out
        if self.config.symmetric:
            tokens, text = self.frame_norm(frames_out), self.text_norm(text)
        if self.use_npd:
            cond = self.npd.condition(tokens, text)  # keys/values of c_m, once per chain
            fn = lambda x_t, t: self.npd.step(x_t, cond)  # noqa: E731  (t is never passed on)
            if self.training:
                clean = x0.detach() if self.config.diffusion_grad == "denoisers" else x0
                terms["npd"] = self.npd_diffusion.training_loss(fn, clean)[0]  # L_N at a random t
            x_T = x0
            if self.config.npd_start == "noised":  # noised to T in expectation, as TCD's chain
                t_T = torch.full((x0.shape[0],), self.npd_diffusion.T, dtype=torch.long, device=x0.device)
                x_T = self.npd_diffusion.q_sample(x0, t_T, noise=torch.zeros_like(x0))
            h = self.npd_diffusion.reverse(fn, x_T, grad_steps=self.config.grad_steps)  # as in evaluation
        else:
            h = x0 + self.fusion(torch.cat([x0, tokens.mean(1), text], dim=-1))
        return Output(h, {**terms, "x0": x0, "frames_before": z0, "frames_after": frames_out}, logs=terms)

    def auxiliary_losses(self, out: Output, items: torch.Tensor, batch: dict[str, torch.Tensor]
                         ) -> dict[str, torch.Tensor]:
        c, p = self.config, out.parts
        terms = {k: w * p[k] for k, w in (("tcd", c.lambda_t), ("npd", c.lambda_n)) if k in p}  # logged unweighted
        return {**terms, **self.backbone.auxiliary_losses(out, items, batch)}

    def export_parts(self, out: Output, items: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Also the last item's frame representations before and after TCD (``(B, K, d)`` each)."""
        return {**super().export_parts(out, items, batch), "frames_before": out.parts["frames_before"],
                "frames_after": out.parts["frames_after"]}


class MealRecSASRec(MealRec):
    backbone_name = "sasrec"
    Config = with_backbone(MealRecConfig, "sasrec", "MealRecSASRecConfig")
    version = 1  # of this class's math (see mealrec/versions.py)
    table2 = False  # Figure 6 (universality), not a Table 2 row


class MealRecCL4SRec(MealRec):
    backbone_name = "cl4srec"
    Config = with_backbone(MealRecConfig, "cl4srec", "MealRecCL4SRecConfig")
    version = 1  # of this class's math (see mealrec/versions.py)
    table2 = False


class MealRecTedRec(MealRec):
    backbone_name = "tedrec"
    Config = with_backbone(MealRecConfig, "tedrec", "MealRecTedRecConfig")
    version = 1  # of this class's math (see mealrec/versions.py)
