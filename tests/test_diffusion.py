import inspect

import pytest
import torch

from mealrec.models.diffusion import (
    GaussianDiffusion, cosine_beta_schedule, extract, linear_beta_schedule, make_schedule,
)


def test_schedules_are_pure_float64_and_valid():
    for T in (5, 10, 25):
        for b in (linear_beta_schedule(T), cosine_beta_schedule(T)):
            assert b.dtype == torch.float64 and b.shape == (T,)
            assert (b > 0).all() and (b < 1).all()
    assert torch.equal(linear_beta_schedule(5), linear_beta_schedule(5))
    assert linear_beta_schedule(5)[0].item() == pytest.approx(1e-4)
    assert linear_beta_schedule(5)[-1].item() == pytest.approx(0.02)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        make_schedule("quadratic", 5)


def test_extract_is_one_based_and_broadcasts():
    a = torch.tensor([10.0, 20.0, 30.0])
    out = extract(a, torch.tensor([1, 3]), torch.Size([2, 4, 5]))
    assert out.shape == (2, 1, 1) and out.flatten().tolist() == [10.0, 30.0]


def test_q_sample_matches_closed_form():
    d = GaussianDiffusion(linear_beta_schedule(10))
    x0 = torch.randn(4, 8)
    t = torch.tensor([1, 5, 10, 3])
    noise = torch.randn(4, 8)
    xt = d.q_sample(x0, t, noise)
    abar = torch.cumprod(1 - linear_beta_schedule(10), 0).float()
    expect = abar[t - 1].sqrt()[:, None] * x0 + (1 - abar[t - 1]).sqrt()[:, None] * noise
    assert torch.allclose(xt, expect, atol=1e-6)


def test_posterior_mean_recovers_x0_with_a_perfect_denoiser():
    d = GaussianDiffusion(linear_beta_schedule(10))
    x0 = torch.randn(6, 3)
    x_T = d.q_sample(x0, torch.full((6,), 10), torch.zeros_like(x0))
    out = d.reverse(lambda x_t, t: x0, x_T)
    assert torch.allclose(out, x0)


def test_reverse_chain_is_deterministic_and_visits_every_step():
    d = GaussianDiffusion(linear_beta_schedule(7))
    seen = []

    def fn(x_t, t):
        seen.append(int(t[0]))
        return 0.5 * x_t

    x = torch.randn(3, 2)
    a = d.reverse(fn, x)
    b = d.reverse(fn, x)
    assert torch.equal(a, b)
    assert seen == list(range(7, 0, -1)) * 2


def test_x0_loss_falls_on_a_fixed_toy_batch():
    torch.manual_seed(0)
    d = GaussianDiffusion(linear_beta_schedule(10))
    net = torch.nn.Sequential(torch.nn.Linear(9, 32), torch.nn.SiLU(), torch.nn.Linear(32, 8))
    fn = lambda x_t, t: net(torch.cat([x_t, t[:, None].float() / 10], dim=1))  # noqa: E731
    x0 = torch.randn(64, 8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        loss, _ = d.training_loss(fn, x0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.3 * sum(losses[:20]) / 20


def test_training_loss_detaches_the_target():
    d = GaussianDiffusion(linear_beta_schedule(5))
    x0 = torch.randn(4, 3, requires_grad=True)
    p = torch.zeros(3, requires_grad=True)
    loss, _ = d.training_loss(lambda x_t, t: p.expand_as(x_t), x0)  # the prediction ignores x_t
    loss.backward()
    assert x0.grad is None  # no gradient reaches x0 through the target
    assert p.grad is not None and torch.count_nonzero(p.grad) > 0


def test_buffers_move_with_the_module_and_are_not_saved():
    d = GaussianDiffusion(linear_beta_schedule(5))
    assert "betas" in dict(d.named_buffers())
    assert "betas" not in d.state_dict()
    before = d.betas.clone()
    d.to(torch.float64)  # a module cast (as .to(device)) carries the schedule along
    assert d.betas.dtype == torch.float64 and torch.allclose(d.betas.float(), before)
    assert "fn" in inspect.signature(d.reverse).parameters


def test_a_respaced_chain_over_every_step_is_the_full_chain():
    d = GaussianDiffusion(linear_beta_schedule(8))
    steps, c1, c2 = d.respaced(list(range(1, 9)))
    assert steps == list(range(8, 0, -1))
    # equal up to the float32 abar the respacing starts from (1 - abar_1 = beta_1 = 1e-4 loses digits)
    assert torch.allclose(c1, d.posterior_mean_coef1.flip(0), rtol=1e-3)
    assert torch.allclose(c2, d.posterior_mean_coef2.flip(0), rtol=1e-3, atol=1e-6)
    fn = lambda x, t: 0.5 * x + t[:, None].float() / 10  # noqa: E731
    x_T = torch.randn(3, 4)
    assert torch.allclose(d.reverse(fn, x_T), d.reverse(fn, x_T, chain=(steps, c1, c2)), rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        GaussianDiffusion(torch.tensor([0.1, 1.5]))
