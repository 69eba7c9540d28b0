import inspect

import pytest
import torch

from mealrec.config import resolve_run_config
from mealrec.data import get_dataset
from mealrec.evaluation import evaluate
from mealrec.models import MODELS, build_model, get_model_class
from mealrec.models.mealrec import VARIANTS, MealRecConfig, NPDDenoiser
from mealrec.trainer import train

MEALREC_MODELS = sorted(n for n in MODELS if n.startswith("mealrec-"))


@pytest.fixture(scope="module")
def tiny():
    return get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)


def _model(tiny, name="mealrec-sasrec", **cfg):
    torch.manual_seed(0)
    return build_model(name, MealRecConfig(**cfg), tiny)


@pytest.mark.parametrize("name", MEALREC_MODELS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_loss_terms(tiny, name, variant):
    m = _model(tiny, name, variant=variant, steps=5)
    batch = tiny.train.batch(slice(0, 9))
    out = m.calculate_loss(batch)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert ("tcd" in out) == (variant in ("full", "-NPD"))
    assert ("npd" in out) == (variant in ("full", "-TCD"))
    m.eval()
    assert m.full_sort_predict(batch).shape == (9, tiny.n_items)
    assert m.represent(batch).shape == (9, m.backbone.config.hidden_size)


def test_ablation_switches_remove_parameters(tiny):
    counts = {v: _model(tiny, variant=v).n_parameters() for v in VARIANTS}
    full = _model(tiny, variant="full")
    tcd_params = sum(p.numel() for n, p in full.named_parameters()
                     if n.startswith("tcd.") and not n.startswith(("tcd.frame_proj", "tcd.pos")))
    npd_params = sum(p.numel() for n, p in full.named_parameters() if n.startswith("npd."))
    assert tcd_params > 0 and npd_params > 0
    assert counts["-TCD"] == counts["full"] - tcd_params
    no_npd = _model(tiny, variant="-NPD")
    assert not any(n.startswith("npd.") for n, _ in no_npd.named_parameters())
    assert any(n.startswith("fusion.") for n, _ in no_npd.named_parameters())
    assert len(set(counts.values())) == 4


def test_npd_has_no_timestep_input(tiny):
    assert list(inspect.signature(NPDDenoiser.forward).parameters) == ["self", "x_t", "frames", "text"]
    assert list(inspect.signature(NPDDenoiser.step).parameters) == ["self", "x_t", "cond"]
    m = _model(tiny, variant="full")
    assert not any("time" in n for n, _ in m.npd.named_modules())
    # the process passes t; the denoiser never receives it (the spy sees only x_t and the condition)
    m.eval()
    seen = []
    orig = m.npd.step

    def spy(*args, **kwargs):
        seen.append((len(args), sorted(kwargs)))
        return orig(*args, **kwargs)

    m.npd.step = spy
    batch = tiny.test.batch(slice(0, 4))
    with torch.no_grad():
        m.represent(batch)
    assert seen and all(s == (2, []) for s in seen)
    x = torch.randn(4, 64)
    fr, tx = torch.randn(4, 5, 64), torch.randn(4, 64)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in m.npd.parameters():  # leave the identity start (zero-initialised correction)
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        a = m.npd_diffusion.reverse(lambda x_t, t: m.npd(x_t, fr, tx), x, steps=3)
        # by hand: the timestep enters only through the posterior-mean coefficients
        x_t = x
        for step in (3, 2, 1):
            x0 = m.npd(x_t, fr, tx)
            x_t = m.npd_diffusion.posterior_mean(x0, x_t, torch.full((4,), step))
        one = m.npd_diffusion.reverse(lambda x_t, t: m.npd(x_t, fr, tx), x, steps=1)
    assert torch.allclose(a, x0, atol=1e-6) and not torch.allclose(a, one)


def test_denoisers_start_as_identity_and_tcd_uses_the_timestep(tiny):
    m = _model(tiny).eval()
    z = torch.randn(2, 5, 64)
    with torch.no_grad():
        assert torch.equal(m.tcd.denoiser(z, torch.tensor([3, 3]), torch.randn(2, 1, 64)), z)
        x = torch.randn(2, 64)
        assert torch.equal(m.npd(x, torch.randn(2, 5, 64), torch.randn(2, 64)), x)
    torch.nn.init.normal_(m.tcd.denoiser.out.weight, std=0.1)
    z = torch.randn(2, 5, 64)
    ctx = torch.randn(2, 1, 64)
    with torch.no_grad():
        a = m.tcd.denoiser(z, torch.tensor([1, 1]), ctx)
        b = m.tcd.denoiser(z, torch.tensor([9, 9]), ctx)
        c = m.tcd.denoiser(z, torch.tensor([1, 1]), ctx + 1.0)
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_recency_context_weights(tiny):
    m = _model(tiny, gamma=0.9)
    seq = torch.tensor([[3, 5, 7, 0]])
    c = m.recency_context(seq, torch.tensor([3]))
    w = torch.softmax(torch.tensor([-1.8, -0.9, 0.0]), 0)
    expect = (w[:, None] * m.visual[torch.tensor([3, 5, 7])]).sum(0)
    assert torch.allclose(c[0], expect, atol=1e-5)


def test_evaluation_is_deterministic(tiny):
    run = resolve_run_config("mealrec-sasrec", "synthetic-tiny", get_model_class("mealrec-sasrec"),
                             train_overrides={"epochs": 1, "device": "cpu", "batch_size": 256},
                             model_overrides={"steps": 5})
    res = train(run, tiny, progress=False)
    a, _ = evaluate(res.model.full_sort_predict, tiny.test, 64)
    b, _ = evaluate(res.model.full_sort_predict, tiny.test, 100)
    assert a == b == res.test
    assert set(res.history[0]) >= {"train_rec", "train_tcd", "train_npd", "train_time_s", "eval_time_s",
                                   "peak_memory_mb"}


def test_export_representations(tiny):
    m = _model(tiny).eval()
    out = m.export_representations(tiny.test.batch(slice(0, 6)))
    assert out["user"].shape == (6, 64) and out["target_item"].shape == (6, 64)
    assert out["frames_before"].shape == out["frames_after"].shape == (6, 5, 64)
    assert not torch.allclose(out["frames_before"], out["frames_after"])


def test_visual_noise_hook():
    clean = get_dataset("synthetic-tiny", text_encoder="hashed", progress=False).features()
    noisy = get_dataset("synthetic-tiny", text_encoder="hashed", visual_noise=0.3, progress=False).features()
    diff = (noisy.frames.float() - clean.frames.float())[1:]
    assert diff.std().item() == pytest.approx(0.3, rel=0.05)
    assert torch.equal(noisy.text, clean.text)
    assert float(noisy.frames[0].float().abs().sum()) == 0.0


def test_query_block_equals_full_self_attention_at_the_query():
    from mealrec.models.layers import TransformerLayer, bidirectional_padding_mask
    from mealrec.models.mealrec import QueryBlock

    torch.manual_seed(0)
    full = TransformerLayer(16, 2, 64, 0.0, 0.0).eval()
    qb = QueryBlock(16, 2, 0.0).eval()
    qb.load_state_dict(full.state_dict())
    tokens = torch.randn(3, 6, 16)
    mask = bidirectional_padding_mask(torch.ones(3, 6, dtype=torch.long))
    with torch.no_grad():
        a = full(tokens, mask)[:, 0]
        b = qb(tokens[:, :1], tokens[:, 1:])[:, 0]
    assert torch.allclose(a, b, atol=1e-5)


def test_frame_conv_equals_conv1d():
    from mealrec.models.mealrec import FrameConv

    torch.manual_seed(0)
    fc = FrameConv(6, 4, stride=2)
    conv = torch.nn.Conv1d(6, 4, 3, stride=2, padding=1)
    with torch.no_grad():  # Conv1d weight (out, in, k) -> Linear over [x_{k-1}, x_k, x_{k+1}]
        fc.proj.weight.copy_(conv.weight.permute(0, 2, 1).reshape(4, 18))
        fc.proj.bias.copy_(conv.bias)
        x = torch.randn(3, 5, 6)
        assert torch.allclose(fc(x), conv(x.transpose(1, 2)).transpose(1, 2), atol=1e-5)


def test_truncated_chain_gradient_keeps_values_and_reaches_x_T():
    from mealrec.models.diffusion import GaussianDiffusion, linear_beta_schedule

    torch.manual_seed(0)
    diff = GaussianDiffusion(linear_beta_schedule(6))
    W = torch.nn.Linear(4, 4)
    fn = lambda x, t: x + 0.1 * torch.tanh(W(x))  # noqa: E731
    x_T = torch.randn(3, 4, requires_grad=True)
    full = diff.reverse(fn, x_T)
    trunc = diff.reverse(fn, x_T, grad_steps=1)
    assert torch.allclose(full, trunc, atol=1e-6)  # same forward values
    trunc.sum().backward()
    assert x_T.grad is not None and x_T.grad.abs().sum() > 0  # straight-through path to the input
    assert W.weight.grad is not None and W.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- the choices the positive controls settled
def test_backbone_settings_are_resolved_into_the_configuration():
    from mealrec.config import load_yaml, model_config_file

    for name, backbone in (("mealrec-tedrec", "tedrec"), ("mealrec-sasrec", "sasrec"), ("seedrec-sasrec", "sasrec")):
        run = resolve_run_config(name, "synthetic-tiny", get_model_class(name))
        settings = run.to_dict()["model_config"]["backbone"]
        for k, v in load_yaml(model_config_file(backbone)).items():
            assert settings[k] == v, (name, k)  # the backbone's file is part of the recorded (and keyed) config
        over = resolve_run_config(name, "synthetic-tiny", get_model_class(name),
                                  model_overrides={"backbone": {"hidden_dropout": 0.25}})
        assert over.model_config.backbone["hidden_dropout"] == 0.25
        assert over.model_config.backbone["hidden_size"] == settings["hidden_size"]
    with pytest.raises(Exception, match="unknown key 'nope'"):
        get_model_class("mealrec-sasrec").Config(backbone={"nope": 1})


def test_variants_differ_from_full_only_in_the_module_they_remove(tiny):
    names = {v: {n for n, _ in _model(tiny, variant=v).named_parameters()} for v in VARIANTS}
    tcd_only = {"tcd.encoder", "tcd.ctx_proj", "tcd.denoiser"}
    assert {n for n in names["full"] - names["-TCD"]} == {n for n in names["full"] if n.startswith(tuple(tcd_only))}
    assert names["-TCD"] - names["full"] == set()
    assert {n.split(".")[0] for n in names["full"] ^ names["-NPD"]} == {"npd", "fusion"}
    for v in VARIANTS:  # the condition tokens are normalised in every variant
        assert {"frame_norm.weight", "text_norm.weight"} <= names[v]


def test_every_variant_starts_from_its_backbone_direction(tiny):
    batch = tiny.train.batch(slice(0, 6))
    for v in VARIANTS:
        m = _model(tiny, variant=v, schedule="cosine").eval()
        with torch.no_grad():
            x0 = m.backbone.represent(batch)
            h = m.represent(batch)
        cos = torch.nn.functional.cosine_similarity(h, x0, dim=1)
        assert torch.allclose(cos, torch.ones_like(cos), atol=1e-4), v  # zero corrections: a rescaled x0 at most


def test_denoising_losses_train_the_denoisers_not_the_encoders(tiny):
    batch = tiny.train.batch(slice(0, 8))
    for setting, reaches in (("denoisers", False), ("all", True)):
        m = _model(tiny, variant="full", diffusion_grad=setting)
        torch.manual_seed(1)
        terms = m.run(batch, m.item_representations()).parts
        (terms["tcd"] + terms["npd"]).backward()
        enc = m.backbone.item_embedding.weight.grad if hasattr(m.backbone, "item_embedding") else None
        tcd_enc = next(m.tcd.encoder.parameters()).grad
        got = [g is not None and g.abs().sum() > 0 for g in (enc, tcd_enc)]
        assert got == [reaches, reaches], setting
        assert next(m.npd.parameters()).grad is not None  # the denoisers always learn from them


def test_full_backpropagation_reaches_the_context_at_every_step(tiny):
    batch = tiny.train.batch(slice(0, 8))
    m = _model(tiny, variant="full", grad_steps=0)
    torch.nn.init.normal_(m.tcd.denoiser.out.weight, std=0.1)
    torch.nn.init.normal_(m.npd.out.weight, std=0.1)
    items = m.item_representations()
    m.rec_loss(m.run(batch, items), items, batch).backward()
    assert m.tcd.denoiser.ctx_value.weight.grad.abs().sum() > 0
    assert m.tcd.denoiser.time.mlp[0].weight.grad.abs().sum() > 0


def test_bad_choices_name_the_setting():
    for key, value in (("npd_start", "nope"), ("diffusion_grad", "x"), ("variant", "-X")):
        with pytest.raises(Exception, match=key):
            MealRecConfig(**{key: value})


@pytest.mark.parametrize("name", MEALREC_MODELS)
def test_default_chains_start_from_most_of_their_latent(name):
    """The deterministic chains start at sqrt(abar_T) times their latent; a schedule that corrupts heavily at T
    made TCD's and NPD's outputs ignore the item's frames and the user's history on the positive controls."""
    from mealrec.experiments import run_config
    from mealrec.models.diffusion import GaussianDiffusion, make_schedule
    cfg = run_config(name, "synthetic-tiny").model_config  # the model file and dataset overrides applied
    for T in (5, 10, 15, 20, 25):  # Figure 4's axis
        abar_T = GaussianDiffusion(
            make_schedule(cfg.schedule, T, cfg.beta_start, cfg.beta_end)).alphas_cumprod[-1].item()
        assert abar_T > 0.5, f"{name}: schedule {cfg.schedule!r} leaves abar_T = {abar_T:.2g} at T = {T}"
    heavy = GaussianDiffusion(make_schedule("cosine", 10)).alphas_cumprod[-1].item()
    assert heavy < 1e-3  # the alternative the controls rejected really does corrupt heavily
