import dataclasses

import pytest
import torch

import mealrec.data
from mealrec.config import resolve_run_config
from mealrec.models import MODELS, build_model
from mealrec.models import morec as morec_module
from mealrec.models.morec import MoRec, MoRecConfig


@pytest.fixture(scope="module")
def ds():
    return mealrec.data.get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(MODELS, "morec", MoRec)


def _model(ds, seed=0, **overrides):
    torch.manual_seed(seed)
    return MoRec(MoRecConfig(**overrides), ds)


def test_docstring_config_and_yaml(registered):
    doc = morec_module.__doc__
    assert "Paper" in doc and "Reference code" in doc and "Departures" in doc and "westlake-repl/IDvs.MoRec" in doc
    c = MoRecConfig()
    assert (c.hidden_size, c.n_layers, c.n_heads, c.inner_size) == (64, 2, 2, 256)
    assert (c.modality, c.dnn_layers, c.adapter_dropout) == ("both", 8, 0.1)
    run = resolve_run_config("morec", "synthetic-tiny", MoRec)
    assert any("morec.yaml" in s for s in run.sources)
    assert dataclasses.asdict(run.model_config) == dataclasses.asdict(c)


@pytest.mark.parametrize("modality,width", [("text", 384), ("visual", 768), ("both", 384 + 768)])
def test_items_come_from_frozen_features_not_ids(ds, modality, width):
    model = _model(ds, modality=modality)
    assert model.item_features.shape == (ds.n_items, width)
    assert not hasattr(model, "item_embedding")
    # no parameter is a per-item table: the model is ID-free
    assert all(ds.n_items not in p.shape for p in model.parameters())
    assert all(p.data_ptr() != model.item_features.data_ptr() for p in model.parameters())
    model.eval()
    table = model.item_representations()
    assert table.shape == (ds.n_items, 64) and torch.all(table[0] == 0)
    # two items with identical features get identical representations (content-only items)
    with torch.no_grad():
        model.item_features[7] = model.item_features[3]
    table = model.item_representations()
    assert torch.equal(table[7], table[3])
    with pytest.raises(ValueError):
        _model(ds, modality="audio")


def test_same_encoder_on_input_and_scoring_side(ds):
    model = _model(ds).eval()
    batch = ds.train.batch(slice(0, 8))
    with torch.no_grad():
        before_scores = model.full_sort_predict(batch)
        before_h = model.represent(batch)
        table = model.item_representations()
        assert torch.allclose(before_scores, before_h @ table.T, atol=1e-5)
        # changing one item's features changes its score column and the users who saw it
        item = int(batch["item_seq"][0, 0])
        model.item_features[item] = torch.randn_like(model.item_features[item])
        after_scores = model.full_sort_predict(batch)
        after_h = model.represent(batch)
    assert (after_scores[:, item] - before_scores[:, item]).abs().max() > 1e-4
    assert (after_h[0] - before_h[0]).abs().max() > 1e-4
    # the item encoder gets gradient through the loss
    model.train()
    model.calculate_loss(batch)["loss"].backward()
    assert model.item_encoder.proj.weight.grad.abs().sum() > 0


def test_no_future_leak_and_registered_training(ds, registered):
    model = build_model("morec", MoRecConfig(), ds).eval()
    seq = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0]])
    seq2 = seq.clone()
    seq2[0, 3] = 9
    lens = torch.tensor([3])
    with torch.no_grad():
        assert torch.allclose(model.represent({"item_seq": seq, "item_seq_len": lens}),
                              model.represent({"item_seq": seq2, "item_seq_len": lens}), atol=1e-6)
    # loss falls on a fixed batch (eval-mode loss before and after 20 Adam steps)
    batch = ds.train.batch(slice(0, 64))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
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
    assert end < 0.9 * start, (start, end)


def test_feature_norm_option(ds):
    raw = _model(ds).item_features
    normed = _model(ds, feature_norm=True).item_features
    f = ds.features()
    assert torch.equal(raw, torch.cat([f.text.float(), f.visual.float()], dim=-1))
    assert torch.allclose(normed[1:, :384].norm(dim=-1), torch.ones(ds.n_items - 1), atol=1e-5)
    assert torch.allclose(normed[1:, 384:].norm(dim=-1), torch.ones(ds.n_items - 1), atol=1e-5)
    assert torch.all(normed[0] == 0)
