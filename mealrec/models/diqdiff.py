"""DiQDiff: diffusion on the next item's embedding with quantized (codebook) guidance and
contrastive discrepancy maximization.

Paper: W. Mao, S. Liu, H. Liu, H. Liu, X. Li, L. Hu, *Distinguished Quantized Guidance for
Diffusion-based Sequence Recommendation*, Proceedings of the ACM Web Conference (WWW) 2025,
pp. 425-435 (arXiv:2501.17670).
Reference code: maowenyu-11/DiQDiff (GitHub), read for this file: ``src/codiffu.py`` (the
model: ``CoDiffu.denoise / diffu / intent_cluster / contra_loss / loss_diffu_ce /
reverse_p_sample / forward``), ``src/Modules.py`` (Transformer blocks, beta schedules),
``src/trainer.py`` (loss = CE + ``lambda_contra`` * contrastive; evaluation by the reverse
chain), ``src/main.py`` and ``README.md`` (hyperparameters). DiQDiff is built on
WHUIR/DiffuRec, read for the shared parts: ``src/diffurec.py`` (``Diffu_xstart``, schedules,
``p_sample``), ``src/model.py`` (``Att_Diffuse_model``: embedding, CE over dot products),
``src/step_sample.py`` (step sampler) and ``src/main.py``. Written anew here, not copied.

Architecture (``d`` = ``hidden_size``; the sequence is left-aligned as in the reference, so
position ``L - 1`` holds the most recent item):

1. **Sequence embedding.** ``S = LayerNorm(dropout_emb(E[s_1..s_L]))`` ``(B, L, d)``; no
   position embedding (the reference has it commented out). Padding keeps the learned
   row ``E[0]``.
2. **Semantic vector quantization (SVQ).** The flattened sequence ``vec(S) (B, L*d)`` is
   mapped by a linear layer to logits over ``K`` codes; in training a hard Gumbel-softmax
   sample (``tau`` 0.1) picks code ``k_b`` for each sequence and the code vector is the
   in-batch centroid ``c_k = mean{vec(S_b) : k_b = k}`` (the reference's
   ``intent_cluster``), reshaped to ``(L, d)``. The guidance is
   ``G = lambda_history * S + lambda_intent * c_{k_b}``.
3. **Diffusion on the target embedding (DiffuRec).** ``x_0 = E[target]``,
   ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` with ``t`` uniform on the ``T`` steps and
   the reference's truncated-linear betas (``beta`` from ``1000/T * 1e-4 + 0.01`` to
   ``1000/T * 0.02 + 0.01``).
4. **Denoiser.** ``f(x_t, t, G) = LayerNorm(dropout(Transformer(G + 0.001 * (x_t + tau(t)))))``
   read at the last position, where ``tau`` is a sinusoidal embedding of the rescaled step
   ``t * 1000 / T`` followed by a 2-layer SiLU MLP, and the Transformer is the reference's
   pre-LayerNorm block (bidirectional attention, GELU (tanh) feed-forward of width
   ``inner_size``, dropout after each sub-layer and after the block). ``x0_hat = f(...)``.
5. **Loss.** ``CE(x0_hat E^T, target)`` over all items (padding column included, as the
   reference's ``item_num + 1`` rows) ``+ lambda_contra * CDM``, where the contrastive
   discrepancy maximization term is the reference's InfoNCE on the cosine similarities of
   the batch's generated ``x0_hat``/0.07 with each row's own similarity as the "positive":
   ``CDM = mean_b -log( exp(1/0.07) / sum_b' exp(cos(x0_hat_b, x0_hat_b')/0.07) )``, which
   pushes the generated targets of different users apart (distinguished generation).
6. **Inference.** The reverse chain from step ``T`` to 1: ``x0_hat = f(x_t, t, G)``,
   ``x_{t-1} = mu(x_t, x0_hat)`` (DDPM posterior mean); the score of item ``j`` is
   ``<x0_hat, E_j>`` with ``x0_hat`` from the last step.

Defaults: the reference's ``main.py`` (``diffusion_steps`` 32, ``trunc_lin`` schedule,
rescaled steps, ``dropout`` 0.1, ``emb_dropout`` 0.3, ``lambda_history`` = ``lambda_intent`` =
``lambda_contra`` = 1, Gumbel ``tau`` 0.1, contrastive temperature 0.07, ``x_t`` weight 0.001)
except ``n_codes`` 32 (the README's value for Steam, Beauty and Toys; ``main.py``'s default of
2 is overridden in all four README commands), at the MealRec paper's backbone size: hidden
64, 2 blocks, 2 heads, inner 256 (the reference: 128, 4 blocks, 4 heads, 4 x hidden).

Departures from the reference:

* **Evaluation is deterministic and batch-independent.** (a) The reverse chain starts from
  ``x_T = 0`` (the prior's mean) instead of ``N(0, I)`` and each step moves to the posterior
  mean without sampling noise (the reference adds ``exp(0.5 * posterior_variance)``-scaled
  noise: it passes the variance where a log-variance is expected). ``x_t`` enters the
  denoiser with weight 0.001, so the start point barely matters. (b) At evaluation the code
  of a sequence is the arg-max of its logits (no Gumbel noise) and its vector comes from a
  codebook buffer holding a count-weighted exponential moving average (momentum
  ``code_momentum``; VQ-VAE style: running sums over running member counts) of the in-batch
  training centroids, like BatchNorm's running statistics; codes never assigned in training
  cannot be chosen at evaluation. The centroids average training-mode sequence embeddings
  (with embedding dropout), as the reference's in-batch centroids do; the reference recomputes
  centroids from the evaluation batch itself, so a user's scores would depend on the other
  users in the batch. The codebook is updated only in ``calculate_loss`` (training
  sequences), and is saved in checkpoints.
* **Trained code assignment.** The reference's assignment layer gets no gradient (its hard
  one-hot is only used through ``.bool()`` and ``argmax``). Here the code vector is
  ``onehot @ centroids`` with the straight-through one-hot of ``F.gumbel_softmax(hard=True)``,
  so the same forward value is produced and the assignment layer is trained by the loss.
  Gradients still reach the sequence embeddings through the centroid means, as in the
  reference.
* **Fewer reverse steps are allowed**: ``sample_steps < diffusion_steps`` runs a respaced
  chain over evenly spaced steps (improved-DDPM respacing: betas recomputed from
  ``abar`` at the kept steps); the default ``sample_steps == diffusion_steps`` = 32 is the
  reference's full chain.
* Right-padded library batches are left-aligned inside the model (most recent item at
  position ``max_len - 1``), which is the reference's layout; shorter inputs are padded on
  the left to ``max_len``.
* Attention masks padding **keys** (the reference masks padding query rows only, so real
  positions attend to the learned padding embedding). No causal mask, as the reference.
* Sampled steps are uniform. The reference names the ``lossaware`` sampler, but it never
  feeds it losses (``update_with_all_losses`` is commented out), so it stays uniform; no
  importance weights are applied there either.
* Backbone size as stated above; the reference's StepLR decay (x0.1 every 100 epochs) is not
  used (the library's trainer keeps a constant learning rate). The loss is the reference's
  (cross-entropy over all items plus the contrastive term), which is also the library's.
* ``beta_end`` is clipped at 0.999 (the reference's fallback rule already keeps it below 1
  for ``T >= 2``). Contrastive similarities are normalise-then-matmul instead of a
  ``(B, B, d)`` ``cosine_similarity`` broadcast (eps differs); the loss is written as a
  cross-entropy over the full ``B x B`` matrix with the diagonal as target, which equals the
  reference's ``[positive, negatives]`` logits with label 0.
* **Item embeddings start at ``N(0, emb_init_std^2)`` with ``emb_init_std`` = 0.02**, not
  the reference's ``N(0, 1)`` (``nn.Embedding``'s default; set ``emb_init_std: 1.0`` to get
  it back): with ``N(0, 1)`` the first logits ``<x0_hat, E_j>`` are large and the run learns
  barely above chance (measured in the book's implementation notes). 0.02 is the std the other
  Transformer recommenders in this library use. The other weights follow the reference
  (PyTorch defaults: uniform Linear; Xavier-normal feed-forward and attention-output
  weights). Dropout masks come from :class:`~mealrec.models.layers.Dropout` (``torch.rand``;
  same distribution).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import MealRecError
from .base import SequentialRecommender
from .diffusion import GaussianDiffusion, SinusoidalTimeEmbedding, linear_beta_schedule
from .layers import LAYER_NORM_EPS, Dropout, attend, bidirectional_padding_mask

SCHEDULES = ("trunc_lin", "linear")


@dataclass
class DiQDiffConfig:
    hidden_size: int = 64
    inner_size: int = 256
    n_layers: int = 2  # reference --num_blocks
    n_heads: int = 2
    dropout: float = 0.1  # reference --dropout (Transformer and output)
    emb_dropout: float = 0.3  # reference --emb_dropout
    diffusion_steps: int = 32  # T
    schedule: str = "trunc_lin"  # trunc_lin (reference default) | linear (DDPM betas rescaled to T)
    rescale_timesteps: bool = True  # step fed to the time embedding is t * 1000 / T
    sample_steps: int = 32  # reverse steps at inference (respaced when < diffusion_steps)
    xt_weight: float = 0.001  # weight of x_t + tau(t) in the denoiser input (hard-coded in the reference)
    lambda_history: float = 1.0
    lambda_intent: float = 1.0
    lambda_contra: float = 1.0
    n_codes: int = 32  # K, reference --num_cluster
    gumbel_tau: float = 0.1
    contra_temperature: float = 0.07
    code_momentum: float = 0.1  # EMA momentum of the evaluation codebook (not in the reference)
    emb_init_std: float = 0.02  # item embeddings N(0, std^2); the reference's is 1.0 (see departures)


def diffurec_betas(schedule: str, T: int) -> tuple[float, float]:
    """``(beta_start, beta_end)`` of DiffuRec's linear schedules for ``T`` steps.

    ``linear``: DDPM's 1e-4 .. 0.02 rescaled by ``1000 / T`` (improved-DDPM); ``trunc_lin``:
    the same plus 0.01, with ``beta_end = 1000/T * 0.001 + 0.01`` when it would exceed 1.
    Both are clipped at 0.999."""
    scale = 1000.0 / T
    if schedule == "linear":
        start, end = scale * 1e-4, scale * 0.02
    elif schedule == "trunc_lin":
        start, end = scale * 1e-4 + 0.01, scale * 0.02 + 0.01
        if end > 1:
            end = scale * 0.001 + 0.01
    else:
        raise MealRecError(f"diqdiff: schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    return min(start, 0.999), min(end, 0.999)


def respaced_steps(T: int, k: int) -> list[int]:
    """``k`` evenly spaced 1-based steps of ``1..T``, always including ``T`` (descending)."""
    if not 1 <= k <= T:
        raise MealRecError(f"diqdiff: sample_steps must be in [1, diffusion_steps={T}], got {k}")
    if k == 1:
        return [T]
    steps = sorted({round(1 + i * (T - 1) / (k - 1)) for i in range(k)}, reverse=True)
    return steps


def left_align(item_seq: torch.Tensor, item_seq_len: torch.Tensor, width: int) -> torch.Tensor:
    """Right-padded ``(B, L)`` -> left-padded ``(B, width)``: the last real item lands at column
    ``width - 1`` and padding (0) fills the front."""
    if item_seq.shape[1] > width:
        raise MealRecError(f"item_seq has {item_seq.shape[1]} columns, more than max_len={width}")
    src = torch.arange(width, device=item_seq.device)[None] - (width - item_seq_len)[:, None]  # (B, width)
    out = item_seq.gather(1, src.clamp(0, item_seq.shape[1] - 1))
    return out.masked_fill(src < 0, 0)


class PreLNBlock(nn.Module):
    """The reference's Transformer block: ``x + drop(attn(LN(x)))``, ``x + drop(ffn(LN(x)))``,
    then dropout; FFN ``W2 drop(gelu_tanh(W1 x))``."""

    def __init__(self, d: int, n_heads: int, inner: int, dropout: float):
        super().__init__()
        if d % n_heads:
            raise MealRecError(f"diqdiff: hidden_size {d} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.attn_dropout = dropout
        self.norm1 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.w1, self.w2 = nn.Linear(d, inner), nn.Linear(inner, d)
        self.drop1, self.drop2, self.drop_ffn, self.drop_out = (Dropout(dropout) for _ in range(4))
        for lin in (self.out, self.w1, self.w2):
            nn.init.xavier_normal_(lin.weight)

    def attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        p = self.attn_dropout if self.training else 0.0
        return self.out(attend(self.q(x), self.k(x), self.v(x), self.n_heads, mask, p))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attention(self.norm1(x), mask))
        x = x + self.drop2(self.w2(self.drop_ffn(F.gelu(self.w1(self.norm2(x)), approximate="tanh"))))
        return self.drop_out(x)


class DiQDiff(SequentialRecommender):
    Config = DiQDiffConfig
    version = 1  # of this class's math (see mealrec/versions.py)
    paper = "Mao et al., WWW 2025"

    def __init__(self, config: DiQDiffConfig, dataset):
        super().__init__(config, dataset)
        c = config
        if c.n_codes < 1:
            raise MealRecError(f"diqdiff: n_codes must be >= 1, got {c.n_codes}")
        if not (c.gumbel_tau > 0 and c.contra_temperature > 0):
            raise MealRecError("diqdiff: gumbel_tau and contra_temperature must be > 0")
        if not 0.0 < c.code_momentum <= 1.0:
            raise MealRecError(f"diqdiff: code_momentum must be in (0, 1], got {c.code_momentum}")
        if not c.emb_init_std > 0:
            raise MealRecError(f"diqdiff: emb_init_std must be > 0, got {c.emb_init_std} (the reference's is 1.0)")
        if c.diffusion_steps < 1:
            raise MealRecError(f"diqdiff: diffusion_steps must be >= 1, got {c.diffusion_steps}")
        d, L = c.hidden_size, self.max_len
        self.item_embedding = nn.Embedding(self.n_items, d)  # row 0 = learned padding (reference)
        nn.init.normal_(self.item_embedding.weight, std=c.emb_init_std)  # reference: N(0, 1)
        self.emb_dropout = Dropout(c.emb_dropout)
        self.emb_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        # SVQ: assignment layer over the flattened sequence, EMA codebook for evaluation
        self.code_assign = nn.Linear(L * d, c.n_codes)
        self.register_buffer("codebook", torch.zeros(c.n_codes, L * d))
        self.register_buffer("code_seen", torch.zeros(c.n_codes, dtype=torch.bool))
        self.register_buffer("code_sum", torch.zeros(c.n_codes, L * d))  # running member sums
        self.register_buffer("code_count", torch.zeros(c.n_codes))  # running member counts
        # denoiser
        self.time_embed = SinusoidalTimeEmbedding(d)
        self.blocks = nn.ModuleList(PreLNBlock(d, c.n_heads, c.inner_size, c.dropout) for _ in range(c.n_layers))
        self.out_dropout = Dropout(c.dropout)
        self.out_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        # diffusion process on the target embedding
        beta_start, beta_end = diffurec_betas(c.schedule, c.diffusion_steps)
        self.diffusion = GaussianDiffusion(linear_beta_schedule(c.diffusion_steps, beta_start, beta_end))
        # the reverse chain at inference, over the respaced steps
        self.sample_schedule, coef1, coef2 = self.diffusion.respaced(respaced_steps(c.diffusion_steps, c.sample_steps))
        self.register_buffer("sample_coef1", coef1, persistent=False)
        self.register_buffer("sample_coef2", coef2, persistent=False)

    def _time_input(self, t: torch.Tensor) -> torch.Tensor:
        t0 = (t - 1).float()  # the reference's 0-based step
        return t0 * (1000.0 / self.config.diffusion_steps) if self.config.rescale_timesteps else t0

    # ------------------------------------------------------------------ sequence side
    def embed(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-aligned sequence embedding ``S (B, L, d)`` and the additive key mask ``(B, 1, 1, L)``."""
        seq = left_align(item_seq, item_seq_len, self.max_len)  # (B, L)
        S = self.emb_norm(self.emb_dropout(self.item_embedding(seq)))  # (B, L, d)
        return S, bidirectional_padding_mask(seq, S.dtype)

    def quantize(self, S: torch.Tensor, update: bool = False) -> torch.Tensor:
        """SVQ code vectors ``(B, L, d)`` for sequence embeddings ``S (B, L, d)``.

        Training mode: Gumbel hard assignment and in-batch centroids (the reference); with
        ``update`` the EMA codebook is refreshed from them. Eval mode: arg-max code from the
        EMA codebook."""
        B, L, d = S.shape
        X = S.reshape(B, L * d)
        logits = self.code_assign(X)  # (B, K)
        if not self.training:
            if self.code_seen.any():  # only codes that training ever assigned
                logits = logits.masked_fill(~self.code_seen, float("-inf"))
            return self.codebook[logits.argmax(dim=-1)].view(B, L, d)
        onehot = F.gumbel_softmax(logits, tau=self.config.gumbel_tau, hard=True)  # (B, K), straight-through
        hard = onehot.detach()
        counts = hard.sum(0)  # (K,)
        sums = hard.T @ X  # (K, L*d)
        centroids = sums / counts.clamp(min=1.0)[:, None]  # (K, L*d): in-batch means
        if update:
            self._update_codebook(sums.detach(), counts)
        return (onehot @ centroids).view(B, L, d)

    @torch.no_grad()
    def _update_codebook(self, sums: torch.Tensor, counts: torch.Tensor) -> None:
        """Count-weighted EMA: running sums and counts decay for every seen code (a batch where
        a code has many members moves it more than one where it has a single member)."""
        m = self.config.code_momentum
        used = counts > 0
        seen, fresh = self.code_seen.clone(), used & ~self.code_seen
        self.code_sum[seen] = (1 - m) * self.code_sum[seen] + m * sums[seen]
        self.code_count[seen] = (1 - m) * self.code_count[seen] + m * counts[seen]
        self.code_sum[fresh], self.code_count[fresh] = sums[fresh], counts[fresh]
        self.code_seen |= used
        k = self.code_seen
        self.codebook[k] = self.code_sum[k] / self.code_count[k].clamp(min=1e-8)[:, None]

    def guidance(self, S: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        c = self.config
        return c.lambda_history * S + c.lambda_intent * codes  # (B, L, d)

    def denoise(self, G: torch.Tensor, mask: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x0_hat (B, d)`` from guidance ``G (B, L, d)``, noisy target ``x_t (B, d)`` and steps ``t (B,)``."""
        h = G + self.config.xt_weight * (x_t + self.time_embed(self._time_input(t)))[:, None]  # (B, L, d)
        for block in self.blocks:
            h = block(h, mask)
        return self.out_norm(self.out_dropout(h))[:, -1]  # (B, d): most recent position

    # ------------------------------------------------------------------ contract
    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """Training: ``x0_hat (B, d)`` denoised from the target's embedding noised to a random step
        (the codebook updated from the batch). Evaluation: the target representation generated by the
        deterministic reverse chain from ``x_T = 0``."""
        S, mask = self.embed(batch["item_seq"], batch["item_seq_len"])
        if self.training:
            G = self.guidance(S, self.quantize(S, update=True))
            x0 = self.item_embedding(batch["target"])  # (B, d)
            t = self.diffusion.sample_t(x0.shape[0], x0.device)
            return self.denoise(G, mask, self.diffusion.q_sample(x0, t), t)  # (B, d)
        G = self.guidance(S, self.quantize(S))
        x_T = S.new_zeros(S.shape[0], S.shape[-1])  # the prior mean
        chain = (self.sample_schedule, self.sample_coef1, self.sample_coef2)
        return self.diffusion.reverse(lambda x_t, t: self.denoise(G, mask, x_t, t), x_T, chain=chain)

    def item_representations(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n_items, d)

    def contrastive_discrepancy(self, x0_hat: torch.Tensor) -> torch.Tensor:
        """CDM: InfoNCE over cosine similarities / temperature with the diagonal as target."""
        z = F.normalize(x0_hat, dim=-1)
        sim = z @ z.T / self.config.contra_temperature  # (B, B)
        return F.cross_entropy(sim, torch.arange(z.shape[0], device=z.device))

    def auxiliary_losses(self, out, items: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        if not self.training or c.lambda_contra <= 0:
            return {}
        contra = self.contrastive_discrepancy(out.h)
        out.logs["contra"] = contra  # logged unweighted
        return {"contra": c.lambda_contra * contra}


__all__ = ["DiQDiff", "DiQDiffConfig", "diffurec_betas", "left_align", "respaced_steps"]
