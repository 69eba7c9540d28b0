"""The Gaussian diffusion *process* shared by TCD and NPD (paper Section 3.1, Eqs. 1-4).

The process (``q_sample``, the x0-prediction loss, the reverse chain) is separate from the
schedules, which are pure functions of ``T`` returning betas, and from the denoiser networks:
TCD, NPD, DMMD4SR's two levels, DiQDiff and SeeDRec's S2IDM each own one
:class:`GaussianDiffusion` built from their betas and pass their own denoiser
``fn(x_t, t) -> x0_hat``. :func:`step_features` is the one sinusoidal step embedding.

Decisions (the paper leaves them open; see the book's implementation notes):

* Steps ``t`` are 1-based, ``t in {1..T}``; training draws one ``t`` per instance
  uniformly (DESIGN.md's reading of Section 5.1.3; the other reading, drawing ``t``
  itself from {5, 10, 15, 20, 25}, is the ``T`` axis of Figure 4 here).
* Default schedule: DDPM's linear betas from 1e-4 to 0.02 over ``T`` steps (Ho et al.
  2020). With T <= 25 this keeps ``alpha_bar_T`` between 0.95 and 0.77: mild corruption,
  as DiffRec/DreamRec argue for personalised representations.
* The reverse chain is deterministic: each step moves to the posterior mean
  ``mu(x_t, x0_hat)`` with no sampling noise (Eq. 9 with ``sigma_t`` dropped), so the same
  checkpoint always gives the same metrics.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


# --------------------------------------------------------------------------- schedules
def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear betas (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models"). float64 ``(T,)``."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_beta_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, "Improved DDPM"): ``alpha_bar(t) = cos^2(((t/T)+s)/(1+s) pi/2)``."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1 - abar[1:] / abar[:-1]
    return betas.clamp(max=max_beta)


SCHEDULES = {"linear": linear_beta_schedule, "cosine": cosine_beta_schedule}


def make_schedule(name: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The betas ``(T,)`` (float64) of schedule ``name``."""
    if T < 1:
        raise ValueError(f"diffusion steps must be >= 1, got {T}")
    if name == "linear":
        return linear_beta_schedule(T, beta_start, beta_end)
    if name == "cosine":
        return cosine_beta_schedule(T)
    raise ValueError(f"unknown beta schedule {name!r}; valid: {', '.join(SCHEDULES)}")


def posterior_coefficients(betas: torch.Tensor, abar: torch.Tensor, abar_prev: torch.Tensor):
    """Coefficients of the posterior mean ``coef1 x0 + coef2 x_t`` of ``q(x_{t-1} | x_t, x0)`` (DDPM Eq. 7)."""
    return betas * abar_prev.sqrt() / (1 - abar), (1 - abar_prev) * (1.0 - betas).sqrt() / (1 - abar)


def extract(a: torch.Tensor, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``a[t - 1]`` for 1-based steps ``t (B,)``, shaped ``(B, 1, ..., 1)`` to broadcast against ``shape``."""
    out = a.gather(0, t - 1)
    return out.view(-1, *([1] * (len(shape) - 1)))


# --------------------------------------------------------------------------- process
class GaussianDiffusion(nn.Module):
    """Forward noising, x0-prediction loss and deterministic reverse chain for the betas ``(T,)`` given."""

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        betas = betas.double()
        if betas.dim() != 1 or len(betas) < 1 or not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError(f"diffusion betas must be a non-empty (T,) tensor in (0, 1], got {betas}")
        abar = torch.cumprod(1.0 - betas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        self.T = len(betas)
        reg = lambda name, v: self.register_buffer(name, v.float(), persistent=False)  # noqa: E731
        reg("betas", betas)
        reg("alphas_cumprod", abar)
        reg("sqrt_alphas_cumprod", abar.sqrt())
        reg("sqrt_one_minus_alphas_cumprod", (1 - abar).sqrt())
        coef1, coef2 = posterior_coefficients(betas, abar, abar_prev)
        reg("posterior_mean_coef1", coef1)
        reg("posterior_mean_coef2", coef2)

    def respaced(self, steps: list[int]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """A shorter reverse chain over ``steps`` (1-based; improved DDPM's respacing): the steps in
        descending order and their posterior-mean coefficients, from this process's (float32) ``abar``."""
        asc = sorted(steps)
        abar = self.alphas_cumprod.double()[torch.tensor(asc) - 1]  # (k,)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        coef1, coef2 = posterior_coefficients(1 - abar / abar_prev, abar, abar_prev)
        return asc[::-1], coef1.flip(0).float(), coef2.flip(0).float()

    def sample_t(self, n: int, device: torch.device) -> torch.Tensor:
        """One step per instance, uniform on ``1..T`` (uses torch's global RNG)."""
        return torch.randint(1, self.T + 1, (n,), device=device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 2: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``; ``noise=0`` gives the mean."""
        if noise is None:
            noise = torch.randn_like(x0)
        return extract(self.sqrt_alphas_cumprod, t, x0.shape) * x0 + extract(
            self.sqrt_one_minus_alphas_cumprod, t, x0.shape
        ) * noise

    def posterior_mean(self, x0_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return extract(self.posterior_mean_coef1, t, x_t.shape) * x0_hat + extract(
            self.posterior_mean_coef2, t, x_t.shape
        ) * x_t

    def training_loss(
        self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 4: ``E ||x0 - fn(x_t, t)||^2`` (mean over all elements).

        The target ``x0`` is detached (stop-gradient), so the encoder that produced it
        is not pulled towards an easy-to-reconstruct collapse; ``x0_hat`` keeps its graph
        and is returned for downstream use. Returns ``(loss, x0_hat)``.
        """
        if t is None:
            t = self.sample_t(x0.shape[0], x0.device)
        x_t = self.q_sample(x0, t)
        x0_hat = fn(x_t, t)
        loss = (x0.detach() - x0_hat).pow(2).mean()
        return loss, x0_hat

    def reverse(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x_T: torch.Tensor,
        steps: int | None = None,
        grad_steps: int = 0,
        chain: tuple[list[int], torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Deterministic reverse chain from ``x_T`` at step ``steps`` (default ``T``) down to step 1.

        At each step ``x0_hat = fn(x_t, t)``, then ``x_{t-1}`` = posterior mean; returns the
        last ``x0_hat`` (Eq. 10 / Eq. 13). Callers run it under ``torch.inference_mode()``
        at evaluation (the trainer's evaluation already does).

        ``grad_steps`` (training cost; ``0`` = back-propagate through every step): when
        gradients are enabled, only the last ``grad_steps`` steps are recorded for autograd.
        The earlier steps run without a graph (the forward values are exactly the full
        chain's), and ``x_T`` reaches the first recorded step through a straight-through
        path with the chain's linear part as its Jacobian: each posterior-mean step of a
        skip-connected denoiser ``fn(x) = x + c(x)`` is ``(coef1 + coef2) x + coef1 c(x)``, so
        ``dx_t / dx_T`` is taken as ``prod (coef1 + coef2)`` (the corrections' Jacobians are
        dropped). This is truncated back-propagation through the sampling chain, as in
        DRaFT-K (Clark et al., ICLR 2024). ``chain``: run a respaced chain (:meth:`respaced`) instead,
        every step recorded.
        """
        steps = self.T if steps is None else steps
        x_t = x_T
        x0_hat = x_T
        if chain is not None:  # a respaced chain: (steps descending, coef1, coef2), see respaced()
            for i, step in enumerate(chain[0]):
                x0_hat = fn(x_t, torch.full((x_T.shape[0],), step, dtype=torch.long, device=x_T.device))
                x_t = chain[1][i] * x0_hat + chain[2][i] * x_t
            return x0_hat
        n_free = steps - grad_steps if (grad_steps > 0 and torch.is_grad_enabled()) else 0
        if n_free > 0:
            with torch.no_grad():
                for step in range(steps, steps - n_free, -1):
                    t = torch.full((x_T.shape[0],), step, dtype=torch.long, device=x_T.device)
                    x_t = self.posterior_mean(fn(x_t, t), x_t, t)
            jac = (self.posterior_mean_coef1 + self.posterior_mean_coef2)[steps - n_free : steps].prod()
            x_t = x_t + jac * (x_T - x_T.detach())  # same value, straight-through gradient to x_T
        c1, c2 = self.posterior_mean_coef1, self.posterior_mean_coef2
        for step in range(steps - n_free, 0, -1):
            t = torch.full((x_T.shape[0],), step, dtype=torch.long, device=x_T.device)
            x0_hat = fn(x_t, t)
            x_t = c1[step - 1] * x0_hat + c2[step - 1] * x_t  # posterior_mean, every row at one step
        return x0_hat


def step_features(t: torch.Tensor, dim: int, cos_first: bool = False) -> torch.Tensor:
    """Transformer-style sinusoidal features ``(B, dim)`` of (float) steps ``t (B,)``: ``[sin, cos]``
    (``cos_first``: ``[cos, sin]``, DiffRec's order), zero-padded to an odd ``dim``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([args.cos(), args.sin()] if cos_first else [args.sin(), args.cos()], dim=-1)  # (B, 2*half)
    return torch.nn.functional.pad(emb, (0, dim % 2))


class SinusoidalTimeEmbedding(nn.Module):
    """:func:`step_features` of the step, then a 2-layer SiLU MLP (as in DDPM U-Nets)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(step_features(t, self.dim))  # (B, dim)
