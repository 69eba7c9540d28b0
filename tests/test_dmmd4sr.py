"""DMMD4SR's own mechanisms: level-1 content denoising, per-modality level-2 generation,
uncertainty-guided fusion, and batch-independent deterministic evaluation."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import mealrec.data
from mealrec.config import resolve_run_config
from mealrec.models import MODELS, build_model
from mealrec.models import dmmd4sr as dmmd4sr_module
from mealrec.models.dmmd4sr import MODALITIES, DMMD4SR, DMMD4SRConfig


@pytest.fixture(scope="module")
def ds():
    return mealrec.data.get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)


def _model(ds, seed=0, **overrides):
    torch.manual_seed(seed)
    return DMMD4SR(DMMD4SRConfig(**overrides), ds)


def test_docstring_yaml_and_registry(ds, monkeypatch):
    doc = dmmd4sr_module.__doc__
    assert "Paper" in doc and "Reference code" in doc and "Departures" in doc and "none released" in doc
    monkeypatch.setitem(MODELS, "dmmd4sr", DMMD4SR)
    run = resolve_run_config("dmmd4sr", "synthetic-tiny", DMMD4SR)
    assert any("dmmd4sr.yaml" in s for s in run.sources)
    assert dataclasses.asdict(run.model_config) == dataclasses.asdict(DMMD4SRConfig())
    model = build_model("dmmd4sr", run.model_config, ds)
    batch = ds.train.batch(slice(0, 8))
    terms = model.calculate_loss(batch)
    assert set(terms) == {"loss", "rec", "item_denoise", "interest_denoise", "uncertainty"}
    assert all(torch.isfinite(v) for v in terms.values())
    assert model.represent(batch).shape == (8, 3 * 64)
    assert ({k: v.shape for k, v in model.item_representations().items()}
            == {m: (ds.n_items, 64) for m in ("id", "text", "visual")})


def test_level1_denoises_content_and_content_reaches_scores(ds):
    model = _model(ds).eval()
    batch = ds.test.batch(slice(0, 8))
    with torch.no_grad():
        tables = model.item_tables()
        assert torch.equal(tables["id"], model.item_embedding.weight)  # IDs are not denoised
        for m in ("text", "visual"):
            raw = model.raw_content(m)
            assert tables[m].shape == raw.shape
            assert (tables[m] - raw).abs().max() > 1e-4  # the chain changes the content features
        before = model.full_sort_predict(batch)
        model.visual_features[1:] = torch.randn_like(model.visual_features[1:])
        after = model.full_sort_predict(batch)
    assert (before - after).abs().max() > 1e-4
    # the level-1 denoisers and the content adaptors get gradients in training
    model.train()
    model.calculate_loss(ds.train.batch(slice(0, 32)))["loss"].backward()
    for m in ("text", "visual"):
        assert model.item_denoisers[m].mlp[0].weight.grad.abs().sum() > 0
        assert model.adaptors[m][0].weight.grad.abs().sum() > 0


def test_uncertainty_guided_fusion(ds):
    model = _model(ds).eval()
    batch = ds.test.batch(slice(0, 8))
    seq, lens = batch["item_seq"], batch["item_seq_len"]
    with torch.no_grad():
        tables = model.item_tables()
        u = model.interests(seq, lens, tables)
        z = model.generate(u)
        s = model.log_uncertainty(u)
        w = model.fusion_weights(s)
        assert torch.allclose(w.sum(-1), torch.ones(8)) and torch.allclose(w, torch.softmax(-s, -1))
        scores = model.full_sort_predict(batch)
        manual = sum(w[:, i : i + 1] * (z[m] @ tables[m].T) for i, m in enumerate(MODALITIES))
        assert torch.allclose(scores, manual, atol=1e-5)  # precision-weighted sum of per-modality scores
        # a modality declared more uncertain loses weight and the scores move
        model.uncertainty_heads["visual"].bias.add_(3.0)
        w2 = model.fusion_weights(model.log_uncertainty(u))
        assert (w2[:, 2] < w[:, 2]).all()
        assert (model.full_sort_predict(batch) - scores).abs().max() > 1e-6
    mean = _model(ds, fusion="mean").eval()
    with torch.no_grad():
        wm = mean.fusion_weights(mean.log_uncertainty(mean.interests(seq, lens, mean.item_tables())))
    assert torch.allclose(wm, torch.full_like(wm, 1 / 3))
    # the uncertainty heads learn from their own objective only (inputs detached, weights
    # stop-gradient): without it, the ranking loss leaves them untouched
    train_batch = ds.train.batch(slice(0, 32))
    for lam, expect in ((1.0, True), (0.0, False)):
        m = _model(ds, lambda_uncertainty=lam).train()
        m.calculate_loss(train_batch)["loss"].backward()
        g = m.uncertainty_heads["id"].weight.grad
        assert (g is not None and g.abs().sum() > 0) == expect


def test_evaluation_is_deterministic_batch_independent_and_causal(ds):
    model = _model(ds).eval()
    batch = ds.test.batch(slice(0, 10))
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        rows = torch.cat([model.full_sort_predict({k: v[i : i + 1] for k, v in batch.items()}) for i in range(10)])
        assert torch.equal(full, model.full_sort_predict(batch))
        assert torch.allclose(full, rows, atol=1e-4)
        seq = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0]])[:, : ds.max_len]
        seq2 = seq.clone()
        seq2[0, 3] = 9  # after the last real item
        lens = torch.tensor([3])
        assert torch.allclose(model.represent({"item_seq": seq, "item_seq_len": lens}),
                              model.represent({"item_seq": seq2, "item_seq_len": lens}), atol=1e-6)
