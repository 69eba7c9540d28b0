"""SeeDRec: sememe-level diffusion (S2IDM) + interest-aware prompts (IPE) as a plug-in.

Paper: H. Ma, R. Xie, L. Meng, Y. Yang, X. Sun, Z. Kang, *SeeDRec: Sememe-based Diffusion
for Sequential Recommendation*, IJCAI 2024 (Sections 3.3-3.4, 4.1, 4.3).
Reference code (read, not copied): hulkima/SeeDRec, ``SeeDRec.py`` (driver: ``get_diff``,
diffusion/DNN arguments, per-dataset overrides for Home/Electronic), ``model.py``
(``SASRec_Embedding_prompt``, ``Projector_prompt``, ``get_nonzero_position``),
``models/gaussian_diffusion.py`` (``linear-var`` betas, importance-sampled ``training_losses``,
``p_sample``, ``scale_withminmax`` reweighting) and ``models/DNN.py`` (the denoiser).
The repository ships a pre-trained S2IDM checkpoint and no S2IDM training loop (that
loop is DiffRec's, Wang et al. SIGIR 2023, whose settings the driver's arguments carry).

Pipeline (sememes from :mod:`mealrec.data.sememes`; ``D^S in {0,1}^{|I| x q}``):

* **Original interest distribution** ``s'_0`` (Sec. 3.3, "Frequency-time aware
  reweighting"): for user ``u`` with training history ``i_1..i_p`` (``dataset.seqs[u][:-2]``,
  exactly the items of ``dataset.train``; the validation and test targets never enter),
  item ``i_k`` gets ``w_k = w_min + (k-1)/(p-1) (w_max - w_min)`` (``w_max`` for all when
  ``p = 1``; positions stand for timestamps, which the dataset does not keep); every
  sememe of ``i_k`` receives ``w_k``, and weights of the same sememe are summed (so
  frequent sememes weigh more): ``s'_0[j] = sum_k w_k D^S[i_k, j]``. With
  ``normalize`` (default) it is divided by its sum, i.e. a distribution over ``q`` sememes.
* **S2IDM** (DiffRec-style, x0 objective): forward ``s'_t = sqrt(abar_t) s'_0 +
  sqrt(1 - abar_t) eps`` over ``T = 10`` steps with the reference's ``linear-var`` schedule
  (``1 - abar_t`` linear from ``noise_scale * noise_min`` to ``noise_scale * noise_max``,
  ``beta_1`` fixed to 1e-5). Denoiser ``x_theta(s'_t, t) = W_2 tanh(W_1 [drop(s'_t);
  E(t)])`` (hidden 1000, sinusoidal step embedding of size 10 through a linear layer, input
  dropout 0.5). Loss (Eq. 2): ``g(t) ||s'_0 - x_theta(s'_t, t)||^2 / p(t)`` with ``g(t) =
  SNR(t-1) - SNR(t)`` (1 at the first step) and ``t`` importance-sampled from the last 10
  losses of every step (uniform until every step has 10; Nichol & Dhariwal 2021).
  Process, posterior means and the reverse chain are :class:`~mealrec.models.diffusion.GaussianDiffusion`'s.
* **Inference** (Sec. 3.3, "Diffusion Inference"): ``s'_0`` is taken as the noisy
  ``bar s'_T`` and the deterministic reverse chain runs ``T`` steps. The result is
  clamped at 0 and renormalised (``normalize``), giving the *diffused distribution*
  ``bar s'_0``. It is computed **once, before sequential training**, for every user, and
  cached on disk (``$MEALREC_CACHE/seedrec``) with the denoiser's weights.
* **IPE** (Sec. 3.4): ``k = 3`` prompt generators ``m_i = W_b tanh(W_a bar s'_0)``
  (``q -> d -> d``); the prompts go through the backbone's input LayerNorm and are placed
  *before* the item embeddings: the backbone encodes ``[m_1, m_2, m_3, e_{i_1}+p_1, ...]``
  with its causal/padding mask (prompts are visible to every position) and the user
  representation is the state at the last real item. Scores and loss are the backbone's.

Variants (``variant``; the paper's Sec. 4.3 ablations; ``-X`` means "without X", as in
MealRec's variants): ``full`` = SASRec+IPE+S2IDM; ``-S2IDM`` = the paper's "w/ IPE" (prompts
from the original ``s'_0``, no diffusion); ``-IPE`` = the paper's "w/ S2IDM" (no prompts; the
diffused distribution is fused with the backbone output by an MLP,
``h + MLP([h; W_b tanh(W_a bar s'_0)])``, last layer zero-initialised).

Backbones: ``seedrec-sasrec`` and ``seedrec-cl4srec`` (CL4SRec's two augmented views are
encoded *with* the user's prompts; its InfoNCE term is kept).

The paper's protocol (999 sampled negatives per test instance, Sec. 4.1) is
:func:`mealrec.evaluation.sampled_evaluate`, an option beside the library's full ranking.

Departures from the reference:

1. Loss and protocol: the library's softmax cross-entropy over all items and full-ranking
   evaluation (so the numbers compare with the rest of the book), not the reference's BCE
   with one sampled negative per position, cosine logits x temperature 5, and 999
   sampled negatives at evaluation. :func:`~mealrec.evaluation.sampled_evaluate` gives the latter numbers.
2. Prompt placement: our sequences are right-padded, so prompts are prepended (concatenated
   in front) instead of written into the three padding slots before the first item of a
   left-padded sequence; prompts get no position embedding (the items keep theirs) and go
   through the backbone's LayerNorm without dropout (the reference adds the position
   embeddings of those slots). With ``<= 3`` padding slots the reference overwrites real
   items; we never do.
3. Backbone: the library's (RecBole) SASRec/CL4SRec, trained from scratch with the prompts;
   the reference loads a pre-trained SASRec checkpoint and fine-tunes it with prompts.
4. Timestamps: positions in the sequence stand for the timestamps of the time-interval
   weights (the datasets keep the order, not the times). ``w_max = 0.5`` as in the paper
   (the reference's argparse default is 1.0; its per-dataset settings use 0.5).
5. Normalisation: ``s'_0`` is divided by its sum and the diffused output is clamped at 0 and
   renormalised, so both are distributions (the reference diffuses the unnormalised weight
   vector and feeds the raw chain output to the prompt generators). ``normalize: false``
   restores the reference's behaviour. Users with no sememe in their history keep an
   all-zero distribution.
6. S2IDM training budget: ``diff_epochs`` (50) epochs of AdamW at ``diff_lr`` 1e-3,
   weight decay 0.1, batch 400, then the chain is run once. The reference's checkpoints come
   from DiffRec's loop (lr 5e-5 with early stopping over up to 1000 epochs), which is far
   beyond a CPU budget; the higher learning rate compensates for the fewer steps.
   ``noise_scale`` 0.01, ``noise_min`` 5e-4, ``noise_max`` 5e-3 are the reference's
   default/Home settings (Electronic uses ``noise_scale`` 0.1).
7. One distribution per user from the training part serves training, validation and
   test (the reference recomputes it from train+valid items for the test); like the
   reference, a training instance's prompt sees the user's whole training history
   (including the items after that prefix), never the valid/test targets.
   ``forward(item_seq, item_seq_len)`` without a user (the contract's signature) computes
   the distribution of the given sequence and runs the frozen S2IDM chain on it.
8. The S2IDM runs in its own forked RNG stream (seeded by ``diff_seed``, default the
   trainer's seed), so the backbone's initialisation equals the plain backbone's.
9. The MLP fusion of the ``-IPE`` ablation is our reading of "a MLP-based feature fusion"
   (the paper gives no formula).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.sememes import SememeMatrix, sememes_for
from ..utils import MealRecError, cache_file
from .cl4srec import CL4SRec, info_nce
from .diffusion import GaussianDiffusion, step_features
from .layers import init_weights
from .plugin import BackbonePlugin, with_backbone

VARIANTS = ("full", "-S2IDM", "-IPE")


@dataclass
class SeeDRecConfig:
    variant: str = "full"  # full | -S2IDM (= paper's "w/ IPE") | -IPE (= paper's "w/ S2IDM")
    sememes: str = "auto"  # auto | hashtag | word | topic (see mealrec.data.sememes)
    min_items: int = 0  # keep sememes in >= min_items items (0: the source's default)
    max_item_frac: float = 0.0  # ... and in <= this fraction of items (0: the source's default)
    n_prompts: int = 3  # k
    w_min: float = 0.1  # time-interval weights (Sec. 4.1)
    w_max: float = 0.5
    normalize: bool = True
    steps: int = 10  # T
    noise_scale: float = 0.01  # linear-var: 1 - abar_t from scale*noise_min to scale*noise_max
    noise_min: float = 0.0005
    noise_max: float = 0.005
    denoiser_hidden: int = 1000  # reference ``dims [1000]``
    time_emb: int = 10  # reference ``emb_size``
    denoiser_dropout: float = 0.5
    importance_history: int = 10  # losses kept per step for importance sampling
    diff_lr: float = 0.001
    diff_weight_decay: float = 0.1
    diff_batch_size: int = 400
    diff_epochs: int = 50
    diff_seed: int = -1  # -1: torch.initial_seed() (the trainer's seed)
    cache: bool = True  # cache the diffused distributions on disk
    backbone: dict = field(default_factory=dict)  # overrides of the backbone's own config


# --------------------------------------------------------------------------- S2IDM
def linear_var_betas(T: int, noise_scale: float, noise_min: float, noise_max: float,
                     beta_1: float = 1e-5) -> torch.Tensor:
    """DiffRec's ``linear-var`` schedule: ``1 - abar_t`` linear in ``t`` from
    ``noise_scale * noise_min`` to ``noise_scale * noise_max``; ``beta_1`` fixed (reference)."""
    var = torch.linspace(noise_scale * noise_min, noise_scale * noise_max, T, dtype=torch.float64)
    abar = 1.0 - var
    betas = torch.empty(T, dtype=torch.float64)
    betas[0] = 1.0 - abar[0]
    betas[1:] = (1.0 - abar[1:] / abar[:-1]).clamp(max=0.999)
    betas[0] = beta_1
    if not ((betas > 0) & (betas <= 1)).all():
        raise MealRecError(f"seedrec: noise bounds give betas outside (0, 1]: {betas.tolist()}")
    return betas


class SememeDiffusion(GaussianDiffusion):
    """:class:`GaussianDiffusion` with the ``linear-var`` betas and DiffRec's importance-sampled,
    SNR-weighted x0 loss. Steps are 1-based as in the parent class."""

    def __init__(self, T: int, noise_scale: float, noise_min: float, noise_max: float, history: int = 10):
        betas = linear_var_betas(T, noise_scale, noise_min, noise_max)
        super().__init__(betas)
        abar = torch.cumprod(1.0 - betas, 0)
        snr = abar / (1 - abar)
        weight = torch.ones(T, dtype=torch.float64)
        weight[1:] = snr[:-1] - snr[1:]  # g(t) = SNR(t-1) - SNR(t); 1 at the first step
        self.register_buffer("loss_weight", weight, persistent=False)
        self.history = history
        self.register_buffer("Lt_history", torch.zeros(T, history, dtype=torch.float64), persistent=False)
        self.register_buffer("Lt_count", torch.zeros(T, dtype=torch.long), persistent=False)

    def sample_importance(self, n: int, generator: torch.Generator | None = None, uniform_prob: float = 0.001):
        """Steps ``t (n,)`` (1-based) and their probability ratio ``p(t) * T`` (1 when uniform)."""
        if not bool((self.Lt_count == self.history).all()):
            t = torch.randint(1, self.T + 1, (n,), generator=generator)
            return t, torch.ones(n, dtype=torch.float64)
        lt = self.Lt_history.pow(2).mean(-1).sqrt()
        p = lt / lt.sum() * (1 - uniform_prob) + uniform_prob / self.T
        t = torch.multinomial(p, n, replacement=True, generator=generator)
        return t + 1, p[t] * self.T

    def weighted_loss(self, fn, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        t, pt = self.sample_importance(x0.shape[0], generator)
        noise = torch.randn(x0.shape, generator=generator)
        x_t = self.q_sample(x0, t, noise)
        mse = (x0 - fn(x_t, t)).pow(2).mean(-1)  # (B,)
        loss = self.loss_weight[t - 1] * mse.double()  # (B,)
        for step, v in zip((t - 1).tolist(), loss.detach().tolist()):  # update the loss history
            c = int(self.Lt_count[step])
            if c == self.history:
                self.Lt_history[step] = torch.roll(self.Lt_history[step], -1)
                self.Lt_history[step, -1] = v
            else:
                self.Lt_history[step, c] = v
                self.Lt_count[step] += 1
        return (loss / pt).mean().float()


class SememeDenoiser(nn.Module):
    """``x0_hat = W_2 tanh(W_1 [drop(x_t); W_e E(t)])`` (DiffRec's DNN with one hidden layer)."""

    def __init__(self, q: int, hidden: int, t_dim: int, dropout: float):
        super().__init__()
        self.t_dim = t_dim
        self.emb = nn.Linear(t_dim, t_dim)
        self.inp = nn.Linear(q + t_dim, hidden)
        self.out = nn.Linear(hidden, q)
        self.drop = nn.Dropout(dropout)
        for lin in (self.emb, self.inp, self.out):  # Xavier-normal weights, N(0, 1e-3) biases
            std = math.sqrt(2.0 / (lin.in_features + lin.out_features))
            nn.init.normal_(lin.weight, 0.0, std)
            nn.init.normal_(lin.bias, 0.0, 0.001)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.emb(step_features((t - 1).to(x_t.device), self.t_dim, cos_first=True))  # the 0-based step, as DiffRec
        return self.out(torch.tanh(self.inp(torch.cat([self.drop(x_t), e], dim=-1))))


def to_distribution(x: torch.Tensor) -> torch.Tensor:
    """Clamp at 0 and divide each row by its sum (all-zero rows stay zero)."""
    x = x.clamp(min=0)
    s = x.sum(-1, keepdim=True)
    return torch.where(s > 0, x / s.clamp(min=1e-12), torch.zeros_like(x))


def sememe_distribution(
    seqs: list[np.ndarray], mat: SememeMatrix, w_min: float, w_max: float, normalize: bool = True
) -> torch.Tensor:
    """``(len(seqs), q)`` frequency-time reweighted sememe distributions ``s'_0`` of item sequences."""
    q = mat.n_sememes
    out = torch.zeros(len(seqs), q, dtype=torch.float64)
    if q == 0 or not seqs:
        return out.float()
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if lens.sum() else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(seqs)), lens)
    pos = np.arange(len(items)) - np.repeat(np.cumsum(lens) - lens, lens)
    denom = np.maximum(np.repeat(lens, lens) - 1, 1)
    w = np.where(np.repeat(lens, lens) > 1, w_min + pos / denom * (w_max - w_min), w_max)
    counts = np.diff(mat.indptr)[items]  # sememes per position
    starts = mat.indptr[items]
    flat_rows = np.repeat(rows, counts)
    flat_w = np.repeat(w, counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = mat.indices[np.repeat(starts, counts) + offs]
    out.index_put_((torch.from_numpy(flat_rows), torch.from_numpy(cols)), torch.from_numpy(flat_w), accumulate=True)
    out = out.float()
    return to_distribution(out) if normalize else out


class S2IDM(nn.Module):
    """Sememe-to-Interest Diffusion Model: denoiser + process, trained once, then frozen."""

    def __init__(self, q: int, cfg: SeeDRecConfig):
        super().__init__()
        self.cfg = cfg
        self.denoiser = SememeDenoiser(q, cfg.denoiser_hidden, cfg.time_emb, cfg.denoiser_dropout)
        self.diffusion = SememeDiffusion(cfg.steps, cfg.noise_scale, cfg.noise_min, cfg.noise_max,
                                         cfg.importance_history)

    def fit(self, x0: torch.Tensor, seed: int) -> list[float]:
        """Train on the users' ``s'_0`` rows (users with an empty distribution are skipped)."""
        c = self.cfg
        g = torch.Generator().manual_seed(seed)
        data = x0[x0.sum(-1) > 0]
        losses: list[float] = []
        if len(data) == 0 or c.diff_epochs <= 0:
            return losses
        opt = torch.optim.AdamW(self.denoiser.parameters(), lr=c.diff_lr, weight_decay=c.diff_weight_decay)
        self.denoiser.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # dropout masks
            for _ in range(c.diff_epochs):
                perm = torch.randperm(len(data), generator=g)
                total = 0.0
                for s in range(0, len(data), c.diff_batch_size):
                    loss = self.diffusion.weighted_loss(self.denoiser, data[perm[s : s + c.diff_batch_size]], g)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item()
                losses.append(total / math.ceil(len(data) / c.diff_batch_size))
        self.denoiser.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return losses

    @torch.no_grad()
    def infer(self, s0: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Reverse chain from ``s'_0`` taken as ``bar s'_T`` (no added noise), ``T`` steps."""
        was = self.denoiser.training
        self.denoiser.eval()
        outs = [self.diffusion.reverse(self.denoiser, s0[i : i + chunk]) for i in range(0, len(s0), chunk)]
        self.denoiser.train(was)
        out = torch.cat(outs) if outs else s0.clone()
        out = to_distribution(out) if self.cfg.normalize else out
        empty = s0.sum(-1, keepdim=True) == 0
        return torch.where(empty, torch.zeros_like(out), out)


class PromptGenerator(nn.Module):
    """``f(s) = W_b tanh(W_a s)``, ``q -> d -> d`` (the reference's ``Projector_prompt``)."""

    def __init__(self, q: int, d: int):
        super().__init__()
        self.a = nn.Linear(q, d)
        self.b = nn.Linear(d, d)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(s)))


# --------------------------------------------------------------------------- model
class SeeDRec(BackbonePlugin):
    """Backbone + S2IDM + IPE. Subclasses pick the backbone (see ``MODELS``)."""

    one_off_inputs = True  # built once and cached (see SequentialRecommender.one_off_inputs)

    Config = SeeDRecConfig
    paper = "Ma et al., IJCAI 2024"
    table2 = False

    def __init__(self, config: SeeDRecConfig, dataset):
        super().__init__(config, dataset)
        c = config
        if c.variant not in VARIANTS:
            raise MealRecError(f"seedrec: variant must be one of {', '.join(VARIANTS)}; got {c.variant!r}")
        if c.n_prompts < 1 or c.steps < 1:
            raise MealRecError("seedrec: n_prompts and steps must be >= 1")
        bcfg = self.build_backbone(dataset)
        d = bcfg.hidden_size

        mat = sememes_for(dataset, c.sememes, c.min_items or None, c.max_item_frac or None, use_cache=c.cache)
        self.sememe_source = mat.source
        q = self.n_sememes = mat.n_sememes
        if q == 0:
            raise MealRecError(f"seedrec: dataset {dataset.name!r} has no sememes of source {mat.source!r}")
        self._sememes = mat
        # the training part of every user: the items of dataset.train (valid/test targets excluded)
        train_seqs = [np.asarray(s[:-2]) for s in dataset.seqs]
        s0 = sememe_distribution(train_seqs, mat, c.w_min, c.w_max, c.normalize)  # (U, q)
        self.register_buffer("user_s0", s0, persistent=False)
        self.use_diffusion = c.variant in ("full", "-IPE")
        self.use_prompts = c.variant in ("full", "-S2IDM")
        self.s2idm_parameters = 0
        self.s2idm_seconds = 0.0
        if self.use_diffusion:
            self.s2idm = S2IDM(q, c)
            self.s2idm_parameters = sum(p.numel() for p in self.s2idm.parameters())
            table = self._fit_or_load(dataset, s0, mat)
        else:
            table = s0
        self.register_buffer("user_interest", table, persistent=False)  # (U, q): bar s'_0 (or s'_0)

        if self.use_prompts:
            self.prompts = nn.ModuleList(PromptGenerator(q, d) for _ in range(c.n_prompts))
            self.prompts.apply(lambda m: init_weights(m, bcfg.initializer_range))
        else:
            self.projector = PromptGenerator(q, d)
            self.fusion = nn.Sequential(nn.Linear(2 * d, d), nn.Tanh(), nn.Linear(d, d))
            self.projector.apply(lambda m: init_weights(m, bcfg.initializer_range))
            self.fusion.apply(lambda m: init_weights(m, bcfg.initializer_range))
            nn.init.zeros_(self.fusion[2].weight)
            nn.init.zeros_(self.fusion[2].bias)

    # ------------------------------------------------------------------ S2IDM, once
    def _fit_or_load(self, dataset, s0: torch.Tensor, mat: SememeMatrix) -> torch.Tensor:
        c = self.config
        seed = int(torch.initial_seed()) if c.diff_seed < 0 else int(c.diff_seed)
        keys = {k: v for k, v in asdict(c).items() if k not in ("variant", "n_prompts", "backbone", "cache")}
        h = hashlib.sha256(json.dumps({"cfg": keys, "seed": seed, "data": dataset.data_hash,
                                       "vocab": mat.vocab, "nnz": int(len(mat.indices)),
                                       "indices": hashlib.sha256(mat.indices.tobytes()).hexdigest()},
                                      sort_keys=True).encode()).hexdigest()
        path = cache_file("seedrec", f"s2idm-{h[:32]}.pt")
        if c.cache and path.exists():
            blob = torch.load(path, map_location="cpu", weights_only=True)
            self.s2idm.denoiser.load_state_dict(blob["denoiser"])
            for p in self.s2idm.parameters():
                p.requires_grad_(False)
            self.s2idm_seconds = float(blob["seconds"])
            self.s2idm_losses = list(blob["losses"])
            return blob["table"]
        t0 = time.perf_counter()
        self.s2idm_losses = self.s2idm.fit(s0, seed)
        table = self.s2idm.infer(s0)
        self.s2idm_seconds = time.perf_counter() - t0
        if c.cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{id(self)}")
            torch.save({"table": table, "denoiser": self.s2idm.denoiser.state_dict(),
                        "seconds": self.s2idm_seconds, "losses": self.s2idm_losses}, tmp)
            tmp.replace(path)
        return table

    # ------------------------------------------------------------------ distributions
    def sequence_interest(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """Distribution of the given sequences (for ``forward`` without a user): ``s'_0`` of
        the real items, diffused by the frozen S2IDM when the variant uses it. ``(B, q)``."""
        seqs = [row[:n].cpu().numpy() for row, n in zip(item_seq, item_seq_len.tolist())]
        seqs = [s[(s > 0) & (s < self.n_items)] for s in seqs]  # drop padding / CL4SRec mask token
        s0 = sememe_distribution(seqs, self._sememes, self.config.w_min, self.config.w_max, self.config.normalize)
        s0 = s0.to(item_seq.device)
        return self.s2idm.infer(s0) if self.use_diffusion else s0

    def user_distribution(self, user: torch.Tensor) -> torch.Tensor:
        return self.user_interest[user]

    # ------------------------------------------------------------------ encoding
    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        if not self.use_prompts:
            h = bb.user_state(item_seq, item_seq_len)
            return h + self.fusion(torch.cat([h, self.projector(dist)], dim=-1))
        k = len(self.prompts)
        prompts = torch.stack([g(dist) for g in self.prompts], dim=1)  # (B, k, d)
        x = torch.cat([bb.seq.norm(prompts), bb.embed(item_seq)], dim=1)  # (B, k + L, d)
        ext = torch.cat([torch.ones_like(item_seq[:, :k]), item_seq], dim=1)  # prompts count as real tokens
        return bb.seq.last_state(x, ext, item_seq_len + k)  # (B, d)

    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """The user's interest distribution when the batch names the user, else the sequence's."""
        item_seq, item_seq_len, user = batch["item_seq"], batch["item_seq_len"], batch.get("user")
        dist = self.sequence_interest(item_seq, item_seq_len) if user is None else self.user_distribution(user)
        return self.encode(item_seq, item_seq_len, dist)

    def auxiliary_losses(self, out, items, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        bb = self.backbone
        if not isinstance(bb, CL4SRec):
            return bb.auxiliary_losses(out, items, batch)
        if not self.training or bb.config.cl_weight == 0:
            return {}
        s1, n1, s2, n2 = bb.augment(batch["item_seq"], batch["item_seq_len"])
        dist = self.user_distribution(batch["user"])
        z = self.encode(torch.cat([s1, s2]), torch.cat([n1, n2]), torch.cat([dist, dist]))
        B = s1.shape[0]
        bc = bb.config
        return {"cl": bc.cl_weight * info_nce(z[:B], z[B:], bc.temperature, bc.similarity)}


class SeeDRecSASRec(SeeDRec):
    backbone_name = "sasrec"
    Config = with_backbone(SeeDRecConfig, "sasrec", "SeeDRecSASRecConfig")
    version = 1  # of this class's math (see mealrec/versions.py)


class SeeDRecCL4SRec(SeeDRec):
    backbone_name = "cl4srec"
    Config = with_backbone(SeeDRecConfig, "cl4srec", "SeeDRecCL4SRecConfig")
    version = 1  # of this class's math (see mealrec/versions.py)
