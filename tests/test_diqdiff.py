"""DiQDiff's own mechanisms: left alignment and batch-independent deterministic generation,
the SVQ codebook (EMA updated only by training), the contrastive term, the reverse chain."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import mealrec.data
from mealrec.config import resolve_run_config
from mealrec.models import MODELS, build_model
from mealrec.models import diqdiff as diqdiff_module
from mealrec.models.diqdiff import DiQDiff, DiQDiffConfig, left_align, respaced_steps
from mealrec.utils import MealRecError


@pytest.fixture(scope="module")
def ds():
    return mealrec.data.get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)


def _model(ds, seed=0, **overrides):
    torch.manual_seed(seed)
    return DiQDiff(DiQDiffConfig(**overrides), ds)


def test_docstring_yaml_and_registry(ds, monkeypatch):
    doc = diqdiff_module.__doc__
    assert "Paper" in doc and "Reference code" in doc and "Departures" in doc and "maowenyu-11/DiQDiff" in doc
    monkeypatch.setitem(MODELS, "diqdiff", DiQDiff)
    run = resolve_run_config("diqdiff", "synthetic-tiny", DiQDiff)
    assert any("diqdiff.yaml" in s for s in run.sources)
    assert dataclasses.asdict(run.model_config) == dataclasses.asdict(DiQDiffConfig())
    c = run.model_config
    assert (c.hidden_size, c.n_layers, c.n_heads, c.diffusion_steps, c.schedule) == (64, 2, 2, 32, "trunc_lin")
    model = build_model("diqdiff", c, ds)
    # item embeddings N(0, 0.02^2) by default (a stated departure from the reference's N(0, 1))
    assert c.emb_init_std == 0.02
    assert model.item_embedding.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert _model(ds, emb_init_std=1.0).item_embedding.weight.std().item() == pytest.approx(1.0, rel=0.2)
    with pytest.raises(MealRecError, match="emb_init_std"):
        _model(ds, emb_init_std=0.0)
    # the reference's truncated-linear betas for T = 32
    assert model.diffusion.betas[0].item() == pytest.approx(1000 / 32 * 1e-4 + 0.01, rel=1e-5)
    assert model.diffusion.betas[-1].item() == pytest.approx(1000 / 32 * 0.02 + 0.01, rel=1e-5)


def test_left_alignment_and_batch_independent_deterministic_generation(ds):
    seq = torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0]])
    left = left_align(seq, torch.tensor([3, 1]), 6)
    assert left.tolist() == [[0, 0, 0, 5, 6, 7], [0, 0, 0, 0, 0, 9]]

    model = _model(ds).eval()
    batch = ds.test.batch(slice(0, 12))
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        again = model.full_sort_predict(batch)
        rows = torch.cat([model.full_sort_predict({k: v[i : i + 1] for k, v in batch.items()}) for i in range(12)])
    assert torch.equal(full, again)  # no sampling noise at evaluation
    assert torch.allclose(full, rows, atol=1e-4)  # a user's scores do not depend on the batch
    # an item written after the last real position (a padding slot) changes nothing
    seq2 = batch["item_seq"].clone()
    short = int((batch["item_seq_len"] < ds.max_len).nonzero()[0])
    seq2[short, batch["item_seq_len"][short]] = 3
    with torch.no_grad():
        h1 = model.represent({"item_seq": batch["item_seq"][short : short + 1],
                              "item_seq_len": batch["item_seq_len"][short : short + 1]})
        h2 = model.represent({"item_seq": seq2[short : short + 1],
                              "item_seq_len": batch["item_seq_len"][short : short + 1]})
    assert torch.allclose(h1, h2, atol=1e-6)


def test_quantized_guidance_codebook(ds):
    model = _model(ds)
    batch = ds.train.batch(slice(0, 64))
    assert not model.code_seen.any() and model.codebook.abs().sum() == 0
    model.train()
    model.calculate_loss(batch)  # training step: EMA codebook takes the in-batch centroids
    assert model.code_seen.any()
    used = model.code_seen.nonzero().flatten()
    assert model.codebook[used].abs().sum() > 0
    # evaluation reads the codebook (no Gumbel noise): perturbing it changes the generation ...
    model.eval()
    with torch.no_grad():
        before = model.represent(batch)
        model.codebook.add_(torch.randn_like(model.codebook))
        after = model.represent(batch)
    assert (before - after).abs().max() > 1e-3
    # ... and evaluation never writes it
    snap = model.codebook.clone()
    with torch.no_grad():
        model.calculate_loss(batch)
        model.full_sort_predict(batch)
    assert torch.equal(model.codebook, snap)
    # without intent guidance the codebook is irrelevant
    m0 = _model(ds, lambda_intent=0.0).eval()
    with torch.no_grad():
        a = m0.represent(batch)
        m0.codebook.add_(torch.randn_like(m0.codebook))
        b = m0.represent(batch)
    assert torch.equal(a, b)
    # the assignment layer is trained (straight-through), unlike the reference
    model.train()
    model.calculate_loss(batch)["loss"].backward()
    assert model.code_assign.weight.grad.abs().sum() > 0


def test_contrastive_term_and_reverse_chain(ds):
    model = _model(ds)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))  # low-dim: the loss is not tiny
    # the reference's contra_loss: logits [positive(diag), negatives(off-diagonal)] / 0.07, label 0
    sim = F.cosine_similarity(x.unsqueeze(1), x.unsqueeze(0), dim=2) / 0.07
    off = sim[~torch.eye(6, dtype=torch.bool)].view(6, -1)
    ref = F.cross_entropy(torch.cat([sim.diag()[:, None], off], dim=1), torch.zeros(6, dtype=torch.long))
    assert ref.item() > 0.1 and model.contrastive_discrepancy(x).item() == pytest.approx(ref.item(), rel=1e-5)
    batch = ds.train.batch(slice(0, 32))
    assert set(model.calculate_loss(batch)) == {"loss", "rec", "contra"}
    assert set(_model(ds, lambda_contra=0.0).calculate_loss(batch)) == {"loss", "rec"}
    # the full chain uses the DDPM posterior-mean coefficients; respacing keeps T and 1
    assert respaced_steps(32, 32) == list(range(32, 0, -1))
    assert torch.allclose(model.sample_coef1, model.diffusion.posterior_mean_coef1.flip(0), atol=1e-5)
    assert torch.allclose(model.sample_coef2, model.diffusion.posterior_mean_coef2.flip(0), atol=1e-5)
    fast = _model(ds, sample_steps=8)
    assert fast.sample_schedule[0] == 32 and fast.sample_schedule[-1] == 1 and len(fast.sample_schedule) == 8
    assert fast.sample_coef1[-1].item() == pytest.approx(1.0)
    assert fast.sample_coef2[-1].item() == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        assert torch.isfinite(fast.eval().full_sort_predict(batch)).all()
    with pytest.raises(Exception):
        _model(ds, sample_steps=40)


def test_evaluation_only_picks_codes_seen_in_training_with_count_weighted_centroids(ds):
    torch.manual_seed(0)
    model = _model(ds).train()
    model.calculate_loss(ds.train.batch(slice(0, 8)))  # a small batch: few codes used
    seen = model.code_seen.clone()
    assert 0 < int(seen.sum()) < model.config.n_codes
    assert torch.allclose(model.codebook[seen], model.code_sum[seen] / model.code_count[seen][:, None])
    model.eval()
    with torch.no_grad():
        S, _ = model.embed(*(ds.test.batch(slice(0, 64))[k] for k in ("item_seq", "item_seq_len")))
        codes = model.quantize(S).flatten(1)  # (B, L*d)
    picked = (codes[:, None, :] == model.codebook[None]).all(-1)  # (B, K)
    assert picked.any(1).all() and not picked[:, ~seen].any()
