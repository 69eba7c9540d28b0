"""The contract every Table 2 baseline must meet (on ``synthetic-tiny``):
one epoch of training with a finite loss, a loss that falls over 20 steps on a fixed
batch, ``full_sort_predict`` of shape ``(B, n_items)``, and deterministic evaluation.
(The registry-wide shape/docstring checks in ``test_sasrec.py`` also cover them.)"""
from __future__ import annotations

import math

import pytest
import torch

from mealrec.config import resolve_run_config
from mealrec.data import dataset_spec, get_dataset
from mealrec.evaluation import evaluate
from mealrec.models import MODELS, build_model, get_model_class
from mealrec.trainer import train

#: the seven baselines beside SASRec, CL4SRec and TedRec in the paper's Table 2
BASELINES = ("ssdrec", "diqdiff", "morec", "iisan", "dmmd4sr", "mmgcn", "iisan-versa")


@pytest.fixture(scope="module")
def tiny():
    return get_dataset("synthetic-tiny", progress=False)


def _run(name: str, epochs: int = 1, seed: int = 0):
    spec = dataset_spec("synthetic-tiny")
    return resolve_run_config(
        name, "synthetic-tiny", get_model_class(name),
        dataset_overrides={"train": spec.train},
        train_overrides={"epochs": epochs, "seed": seed, "device": "cpu", "batch_size": 256},
    )


def test_every_baseline_is_registered_for_table2():
    missing = [b for b in BASELINES if b not in MODELS]
    assert not missing, f"not in the model registry: {missing}"
    assert all(get_model_class(b).table2 for b in BASELINES)


@pytest.mark.parametrize("name", BASELINES)
def test_one_epoch_has_finite_loss_and_deterministic_evaluation(name, tiny):
    res = train(_run(name), tiny, progress=False)
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    m1, _ = evaluate(res.model.full_sort_predict, tiny.test, 64)
    m2, _ = evaluate(res.model.full_sort_predict, tiny.test, 64)
    assert m1 == m2 == res.test
    assert all(0.0 <= v <= 1.0 for v in m1.values())


@pytest.mark.parametrize("name", BASELINES)
def test_loss_falls_over_20_steps_on_a_fixed_batch(name, tiny):
    torch.manual_seed(0)
    cfg = _run(name)
    model = build_model(name, cfg.model_config, tiny)
    model.train()
    batch = tiny.train.batch(slice(0, 64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        torch.manual_seed(1)  # same noise draws each step: the change is the parameters'
        loss = model.calculate_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", BASELINES)
def test_full_sort_predict_shape(name, tiny):
    model = build_model(name, _run(name).model_config, tiny).eval()
    batch = tiny.test.batch(slice(0, 9))
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
    assert scores.shape == (9, tiny.n_items) and torch.isfinite(scores).all()


@pytest.mark.parametrize("name", ["iisan", "dmmd4sr", "mmgcn"])
def test_item_tables_are_cached_per_evaluation_pass_and_invalidated(name, tiny):
    """Content-based models compute their item table once per evaluation pass (not per
    batch); an update of any parameter, a reload or a train/eval switch recomputes it."""
    model = build_model(name, _run(name).model_config, tiny).eval()
    b1, b2 = tiny.test.batch(slice(0, 5)), tiny.test.batch(slice(5, 12))
    with torch.no_grad():
        s1 = model.full_sort_predict(b1)
        cache = dict(model._eval_cache)
        model.full_sort_predict(b2)
        assert all(model._eval_cache[k][1] is v[1] for k, v in cache.items()) and cache  # reused
        state = {k: v.clone() for k, v in model.state_dict().items()}
        next(model.parameters()).add_(0.5)
        s_changed = model.full_sort_predict(b1)
        assert not torch.equal(s1, s_changed)
        model.load_state_dict(state)
        assert torch.equal(model.full_sort_predict(b1), s1)
    model.train()
    assert not model._eval_cache
