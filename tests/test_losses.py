"""The blocked full-softmax cross-entropy equals ``F.cross_entropy`` over ``q @ K.T`` to float rounding."""
import pytest
import torch
import torch.nn.functional as F

from mealrec.models.losses import block_rows, full_softmax_ce


def _inputs(B, N, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, d, generator=g, dtype=torch.float64)
    K = torch.randn(N, d, generator=g, dtype=torch.float64)
    return q, K, torch.randint(0, N, (B,), generator=g)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("B,N", [(7, 5), (300, 40_000), (2050, 3000)])  # one block, many blocks, ragged last
def test_matches_plain_cross_entropy_and_its_gradients(reduction, B, N):
    q, K, t = _inputs(B, N, 8)
    assert B > block_rows(N) or (B, N) == (7, 5)
    w = torch.rand(B, dtype=torch.float64)  # a weight per row: the incoming gradient of "none"
    grads = []
    for fn in (lambda a, b: F.cross_entropy(a @ b.T, t, reduction=reduction),
               lambda a, b: full_softmax_ce(a, b, t, reduction=reduction)):
        a, b = q.clone().requires_grad_(), K.clone().requires_grad_()
        loss = fn(a * 1.0, b)  # q a non-leaf, as a model's user state is
        (loss * 3.0 if reduction == "mean" else (loss * w).sum()).backward()
        grads.append((loss.detach(), a.grad, b.grad))
    for x, y in zip(*grads):
        torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-12)


def test_float32_within_rounding_and_no_grad_path():
    q, K, t = (x.float() if x.is_floating_point() else x for x in _inputs(512, 15_000, 64, seed=3))
    plain = F.cross_entropy(q @ K.T, t)
    torch.testing.assert_close(full_softmax_ce(q, K, t), plain, rtol=1e-6, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(full_softmax_ce(q.requires_grad_(), K, t, "none"),
                                   F.cross_entropy(q @ K.T, t, reduction="none"), rtol=1e-5, atol=1e-5)


def test_only_the_wanted_gradient_is_computed():
    q, K, t = _inputs(40, 30, 4)
    K.requires_grad_()
    full_softmax_ce(q, K, t).backward()
    assert q.grad is None and K.grad is not None


def test_bad_arguments_say_what_is_wrong():
    q, K, t = _inputs(4, 6, 3)
    with pytest.raises(ValueError, match="reduction"):
        full_softmax_ce(q, K, t, reduction="sum")
    with pytest.raises(ValueError, match=r"q \(B, d\)"):
        full_softmax_ce(q, K[:, :2], t)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("n", [6, 4100])  # one block; several blocks with a ragged last one (block 1023 rows)
def test_exclude_self_matches_a_masked_diagonal_and_its_gradients(reduction, n):
    g = torch.Generator().manual_seed(5)
    z0 = torch.randn(n, 8, generator=g, dtype=torch.float64)
    t = (torch.arange(n) + n // 2) % n
    w = torch.rand(n, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.bool)
    out = []
    for fn in (lambda z: F.cross_entropy((z / 0.5 @ z.T).masked_fill(eye, float("-inf")), t, reduction=reduction),
               lambda z: full_softmax_ce(z / 0.5, z, t, reduction=reduction, exclude_self=True)):
        z = z0.clone().requires_grad_()
        loss = fn(z * 1.0)  # both operands from one tensor, as InfoNCE's
        (loss if reduction == "mean" else (loss * w).sum()).backward()
        out.append((loss.detach(), z.grad))
        with torch.no_grad():
            out[-1] += (fn(z),)
    for x, y in zip(*out):
        torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="exclude_self needs as many rows"):
        full_softmax_ce(z0[:3], z0, t[:3], exclude_self=True)


def test_info_nce_equals_the_plain_masked_cross_entropy():
    from mealrec.models.cl4srec import info_nce

    g = torch.Generator().manual_seed(2)
    z1, z2 = (torch.randn(300, 16, generator=g) for _ in range(2))
    for sim, tau in (("dot", 1.0), ("cos", 0.2)):
        z = torch.cat([z1, z2])
        z = F.normalize(z, dim=-1) if sim == "cos" else z
        s = (z @ z.T / tau).masked_fill(torch.eye(600, dtype=torch.bool), float("-inf"))
        plain = F.cross_entropy(s, (torch.arange(600) + 300) % 600)
        torch.testing.assert_close(info_nce(z1, z2, tau, sim), plain, rtol=1e-6, atol=1e-6)
