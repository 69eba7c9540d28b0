import dataclasses
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

import mealrec.data
from mealrec.config import resolve_run_config
from mealrec.models import tedrec as tedrec_module
from mealrec.models.tedrec import TedRec, TedRecConfig
from mealrec.trainer import train


@pytest.fixture(scope="module")
def ds():
    return mealrec.data.get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)


@pytest.fixture
def batch(ds):
    return ds.train.batch(slice(0, 16))


def _model(ds, seed=0, **overrides):
    torch.manual_seed(seed)
    return TedRec(TedRecConfig(**overrides), ds)


def test_docstring_and_config():
    doc = tedrec_module.__doc__
    assert "Paper" in doc and "Reference code" in doc and "Departures" in doc and "Sherry-XLL/TedRec" in doc
    c = TedRecConfig()
    assert (c.hidden_size, c.inner_size, c.n_layers, c.n_heads) == (64, 256, 2, 2)
    assert (c.n_exps, c.temperature, c.adaptor_dropout, c.noisy_gating) == (8, 0.07, 0.2, True)
    assert TedRec.Config is TedRecConfig and TedRec.paper


def test_yaml_matches_dataclass():
    run = resolve_run_config("tedrec", "synthetic-tiny", TedRec)
    assert any("tedrec.yaml" in s for s in run.sources)
    assert dataclasses.asdict(run.model_config) == dataclasses.asdict(TedRecConfig())


def test_shapes(ds, batch):
    model = _model(ds)
    B = batch["item_seq"].shape[0]
    h = model.represent(batch)
    assert h.shape == (B, 64)
    assert model.item_representations().shape == (ds.n_items, 64)
    assert model.embed(batch["item_seq"]).shape == (B, ds.max_len, 64)
    assert model.text_embed(batch["item_seq"]).shape == (B, ds.max_len, 64)
    scores = model.full_sort_predict(batch)
    assert scores.shape == (B, ds.n_items) and torch.isfinite(scores).all()
    terms = model.calculate_loss(batch)
    assert terms["loss"].dim() == 0 and torch.isfinite(terms["loss"])
    assert set(terms) == {"loss", "rec"}


def test_text_is_a_frozen_buffer_and_visual_unused(ds):
    model = _model(ds)
    text = ds.features().text
    assert model.text_features.shape == (ds.n_items, 384)
    assert torch.equal(model.text_features, text.float())
    assert not model.text_features.requires_grad
    assert all(p.data_ptr() != model.text_features.data_ptr() for p in model.parameters())
    # only the text table is held; nothing with the visual width 768
    assert [n for n, _ in model.named_buffers()] == ["text_features"]
    assert all(768 not in p.shape for p in model.parameters())


def test_cosine_temperature_scoring(ds, batch):
    model = _model(ds).eval()
    h = model.represent(batch)
    s = model.score(h, model.item_representations())
    ref = F.normalize(h, dim=-1) @ F.normalize(model.item_embedding.weight, dim=-1).T / 0.07
    assert torch.allclose(s, ref, atol=1e-5)
    assert s.abs().max() <= 1 / 0.07 + 1e-4
    assert torch.allclose(model.score(3.0 * h, model.item_representations()), s, atol=1e-4)  # scale invariant
    # the default CE loss is taken over these logits
    loss = model.calculate_loss(batch)["loss"]
    assert torch.allclose(loss, F.cross_entropy(s, batch["target"]), atol=1e-5)


def test_text_features_influence_scores(ds, batch):
    model = _model(ds).eval()
    with torch.no_grad():
        before = model.full_sort_predict(batch)
        model.text_features[1:] = torch.randn_like(model.text_features[1:])
        after = model.full_sort_predict(batch)
    assert (before - after).abs().max() > 1e-3
    # and the adaptor gets gradient
    model.train()
    model.calculate_loss(batch)["loss"].backward()
    g = sum(e.proj.weight.grad.abs().sum() for e in model.moe_adaptor.experts)
    assert g > 0 and model.complex_weight.grad.abs().sum() > 0


def test_fusion_is_circular_convolution(ds):
    model = _model(ds)
    L, d = ds.max_len, 64
    a, b = torch.randn(2, L, d), torch.randn(2, L, d)
    item_conv, fusion_conv = model.mutual_filter(a, b)
    direct = torch.zeros(2, L, d)
    for t in range(L):
        for s in range(L):
            direct[:, t] += a[:, s] * b[:, (t - s) % L]
    assert torch.allclose(fusion_conv, direct / math.sqrt(L), atol=1e-4)
    # the learned filter: an all-pass filter (weight 1 + 0j) reproduces the ID sequence
    with torch.no_grad():
        model.complex_weight.zero_()
        model.complex_weight[..., 0] = 1.0
    item_conv, _ = model.mutual_filter(a, b)
    assert torch.allclose(item_conv, a, atol=1e-5)


def test_moe_gates(ds, batch):
    model = _model(ds)
    x = F.embedding(batch["item_seq"], model.text_features)
    with torch.no_grad():
        model.moe_adaptor.w_gate.normal_()
    model.eval()
    g = model.moe_adaptor.gates(x)
    assert g.shape == (*batch["item_seq"].shape, 8)
    assert torch.allclose(g.sum(-1), torch.ones_like(g[..., 0]), atol=1e-5)
    assert torch.equal(g, model.moe_adaptor.gates(x))  # no noise in eval
    model.train()
    assert not torch.allclose(model.moe_adaptor.gates(x), g)  # noisy while training
    model.eval()
    h1 = model.represent(batch)
    h2 = model.represent(batch)
    assert torch.equal(h1, h2)


def test_short_input_is_padded(ds):
    model = _model(ds).eval()
    seq = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0], [9, 3, 0, 0, 0, 0, 0, 0, 0, 0]])[:, : ds.max_len]
    lens = torch.tensor([3, 2])
    full = model.represent({"item_seq": seq, "item_seq_len": lens})
    short = model.represent({"item_seq": seq[:, :4], "item_seq_len": lens})
    assert torch.allclose(full, short, atol=1e-6)
    with pytest.raises(ValueError):
        model.represent({"item_seq": torch.ones(1, ds.max_len + 1, dtype=torch.long),
                         "item_seq_len": torch.tensor([1])})


def test_loss_falls_on_fixed_batch(ds):
    model = _model(ds)
    batch = ds.train.batch(slice(0, 64))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.eval()
    with torch.no_grad():
        start = model.calculate_loss(batch)["loss"].item()
    model.train()
    for _ in range(20):
        loss = model.calculate_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        end = model.calculate_loss(batch)["loss"].item()
    assert end < 0.7 * start, (start, end)


def test_train_end_to_end(ds):
    run = resolve_run_config(
        "tedrec", "synthetic-tiny", TedRec,
        train_overrides={"epochs": 2, "device": "cpu", "batch_size": 256},
    )
    model = TedRec(run.model_config, ds)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = train(run, ds, progress=False, model=model)
    assert len(res.history) == 2
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert set(res.test) >= {"hr@10", "ndcg@10"}
    assert 0.0 <= res.test["ndcg@10"] <= 1.0
    # the model passed in is the one trained: its weights moved and the recorded size is its own
    assert res.model is model and res.n_parameters == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    assert any(not torch.equal(before[k], v) for k, v in res.model.state_dict().items())
