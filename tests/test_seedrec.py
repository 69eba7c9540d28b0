"""SeeDRec (mealrec/models/seedrec.py) and its sememes (mealrec/data/sememes.py)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mealrec.config import resolve_run_config
from mealrec.data import dataset_spec, get_dataset
from mealrec.data.sememes import hashtag_matrix, hashtags, lemmatise, sememes_for, title_words, word_matrix
from mealrec.evaluation import evaluate
from mealrec.models import MODELS, build_model
from mealrec.evaluation import sampled_evaluate
from mealrec.models.seedrec import SeeDRecCL4SRec, SeeDRecSASRec, sememe_distribution
from mealrec.trainer import train

NAMES = {"seedrec-sasrec": SeeDRecSASRec, "seedrec-cl4srec": SeeDRecCL4SRec}
FAST = {"diff_epochs": 3}  # a short S2IDM fit keeps each test in seconds


@pytest.fixture(scope="module")
def tiny():
    return get_dataset("synthetic-tiny", progress=False)


@pytest.fixture
def registered(monkeypatch):
    for name, cls in NAMES.items():
        monkeypatch.setitem(MODELS, name, cls)


def _run(name, epochs=1, seed=0, **model):
    spec = dataset_spec("synthetic-tiny")
    return resolve_run_config(
        name, "synthetic-tiny", NAMES[name],
        dataset_overrides={"train": spec.train},
        train_overrides={"epochs": epochs, "seed": seed, "device": "cpu", "batch_size": 256},
        model_overrides={**FAST, **model},
    )


def test_item_sememe_matrix_on_handmade_titles(tmp_path, monkeypatch):
    titles = [
        "",  # padding item 0
        "Cooking tips # Food # food!  ## homemade #",  # duplicate tag (case/punctuation), empty pieces
        "",  # empty title
        "no tags here, just words",
        "#food # travel vlog",
    ]
    assert hashtags(titles[1]) == ["food", "homemade"]
    m = hashtag_matrix(titles, min_items=1)
    assert m.vocab == ["food", "homemade", "travel vlog"]
    assert m.n_items == 5 and m.item_sememes(0) == [] and m.item_sememes(2) == [] and m.item_sememes(3) == []
    assert m.item_sememes(1) == ["food", "homemade"] and m.item_sememes(4) == ["food", "travel vlog"]
    dense = m.dense()
    assert dense.shape == (5, 3) and dense.sum().item() == 4 and dense.max().item() == 1
    assert hashtag_matrix(titles, min_items=2).vocab == ["food"]  # filter: tags in >= 2 items
    # word-level variant: tokenise, drop stop words, lemmatise, filter
    assert lemmatise("videos") == "video" and lemmatise("stories") == "story" and lemmatise("cooking") == "cook"
    assert title_words("The Cooking videos of my cats # cats") == ["cook", "video", "cat"]
    w = word_matrix(titles, min_items=1, max_item_frac=1.0)
    assert "cook" in w.vocab and "the" not in w.vocab and w.item_sememes(2) == []
    # built once, then read from the cache
    monkeypatch.setenv("MEALREC_CACHE", str(tmp_path))
    ds = SimpleNamespace(name="hand", n_items=5, titles=titles[1:], metadata={})
    a = sememes_for(ds, "auto", min_items=1)  # auto -> hashtag for a dataset with real titles
    assert a.source == "hashtag" and list((tmp_path / "sememes").iterdir())
    b = sememes_for(ds, "hashtag", min_items=1)
    assert b.vocab == a.vocab and np.array_equal(b.indices, a.indices)


def test_planted_topics_are_the_synthetic_sememes(tiny):
    m = sememes_for(tiny, "auto")
    assert m.source == "topic" and m.n_sememes == 10
    assert (np.diff(m.indptr)[1:] == 1).all()  # one planted topic per item


def test_diffused_distribution_is_a_distribution_of_length_q(tiny, registered):
    torch.manual_seed(0)
    model = build_model("seedrec-sasrec", _run("seedrec-sasrec").model_config, tiny)
    table = model.user_interest
    assert table.shape == (tiny.n_users, model.n_sememes)
    assert (table >= 0).all() and torch.allclose(table.sum(1), torch.ones(tiny.n_users), atol=1e-5)
    assert not torch.allclose(table, model.user_s0)  # the chain changed it
    # the user's s'_0 uses only the training part: valid/test targets do not enter
    u = 0
    seq = tiny.seqs[u]
    a = sememe_distribution([seq[:-2]], model._sememes, 0.1, 0.5)
    assert torch.allclose(model.user_s0[u], a[0])
    # on-the-fly distribution of a sequence (forward without a user) is one too
    batch = tiny.test.batch(slice(0, 4))
    d = model.sequence_interest(batch["item_seq"], batch["item_seq_len"])
    assert d.shape == (4, model.n_sememes) and torch.allclose(d.sum(1), torch.ones(4), atol=1e-5)


def test_prompts_change_the_output_and_padding_does_not(tiny, registered):
    torch.manual_seed(0)
    model = build_model("seedrec-sasrec", _run("seedrec-sasrec").model_config, tiny).eval()
    batch = tiny.test.batch(slice(0, 6))
    seq, lens = batch["item_seq"], batch["item_seq_len"]
    d = model.user_distribution(batch["user"])
    with torch.no_grad():
        h = model.encode(seq, lens, d)
        h_other = model.encode(seq, lens, d.roll(1, dims=1))
        assert not torch.allclose(h, h_other, atol=1e-5)  # prompts reach the representation
        assert not torch.allclose(h, model.backbone.user_state(seq, lens), atol=1e-5)
        short = lens.clone()
        short[0] = 2
        seq2 = seq.clone()
        seq2[0, 2:] = 7  # items after the last real one must not matter
        assert torch.allclose(model.encode(seq, short, d)[0], model.encode(seq2, short, d)[0], atol=1e-5)


@pytest.mark.parametrize("name", sorted(NAMES))
@pytest.mark.parametrize("variant", ["full", "-S2IDM", "-IPE"])
def test_every_variant_trains_one_epoch(name, variant, tiny, registered):
    res = train(_run(name, variant=variant), tiny, progress=False)
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    m1, _ = evaluate(res.model.full_sort_predict, tiny.test, 64)
    assert m1 == res.test and all(0.0 <= v <= 1.0 for v in m1.values())
    assert res.model.use_prompts == (variant != "-IPE") and res.model.use_diffusion == (variant != "-S2IDM")


@pytest.mark.parametrize("name", sorted(NAMES))
def test_loss_falls_over_20_steps_and_sampled_evaluation_is_deterministic(name, tiny, registered):
    torch.manual_seed(0)
    model = build_model(name, _run(name).model_config, tiny)
    model.train()
    batch = tiny.train.batch(slice(0, 64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        torch.manual_seed(1)
        loss = model.calculate_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    a = sampled_evaluate(model, tiny.test, n_negatives=50, seed=3, batch_size=64)
    b = sampled_evaluate(model, tiny.test, n_negatives=50, seed=3, batch_size=64)
    c = sampled_evaluate(model, tiny.test, n_negatives=50, seed=4, batch_size=64)
    assert a == b and set(a) == {"hr@10", "hr@20", "ndcg@10", "ndcg@20"} and a != c
    assert model.training
