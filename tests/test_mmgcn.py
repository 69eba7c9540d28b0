import math

import numpy as np
import pytest
import torch

import mealrec.data
from mealrec.config import resolve_run_config
from mealrec.models import MODELS, get_model_class
from mealrec.models import mmgcn as mmgcn_module
from mealrec.models.mmgcn import MMGCN, MMGCNConfig, bipartite_adjacency, training_graph
from mealrec.trainer import train


@pytest.fixture(scope="module")
def ds():
    return mealrec.data.get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)


def _model(ds, seed=0, **overrides):
    torch.manual_seed(seed)
    return MMGCN(MMGCNConfig(**overrides), ds)


def test_graph_uses_training_interactions_only(ds):
    doc = mmgcn_module.__doc__
    assert "Paper" in doc and "Reference code" in doc and "Departures" in doc and "weiyinwei/MMGCN" in doc
    users, items = training_graph(ds)
    edges = set(zip(users.tolist(), items.tolist()))
    for u, s in enumerate(ds.seqs):
        assert {(u, int(i)) for i in s[:-2]} <= edges
    # no valid/test target enters the graph unless it is also an earlier training item
    for split in (ds.valid, ds.test):
        for u, t in zip(split.user.tolist(), split.target.tolist()):
            assert ((u, t) in edges) == (t in set(int(i) for i in ds.seqs[u][:-2]))
    assert len(edges) == len(users)  # distinct pairs
    # mean aggregation: each row of a connected node sums to 1, the padding item is isolated
    adj = bipartite_adjacency(users, items, ds.n_users, ds.n_items, "mean").to_dense()
    rows = adj.sum(1)
    assert torch.allclose(rows[: ds.n_users], torch.ones(ds.n_users))
    assert rows[ds.n_users] == 0  # item 0
    assert torch.equal(adj > 0, (adj > 0).T)  # undirected


def test_user_scores_follow_the_graph_not_the_sequence(ds):
    model = _model(ds).eval()
    batch = ds.test.batch(slice(0, 6))
    with torch.no_grad():
        s1 = model.full_sort_predict(batch)
        other = dict(batch, item_seq=torch.zeros_like(batch["item_seq"]) + 1)
        s2 = model.full_sort_predict(other)
    assert s1.shape == (6, ds.n_items) and torch.equal(s1, s2)  # ranking uses batch["user"]
    # propagation is cached for an evaluation pass and invalidated by a parameter update
    with torch.no_grad():
        users, items = model.eval_cached("items", model.item_representations)
        assert model.eval_cached("items", model.item_representations)[0].data_ptr() == users.data_ptr()
        model.id_embedding.add_(0.1)
        users2, _ = model.eval_cached("items", model.item_representations)
    assert not torch.allclose(users, users2)
    # the user representation is the user's node, whatever the sequence
    with torch.no_grad():
        assert torch.allclose(model.represent(batch), users2[batch["user"]], atol=1e-5)
        assert torch.equal(model.represent(batch), model.represent(other))
    out = model.export_representations(batch)
    assert torch.allclose(out["user"], users2[batch["user"]], atol=1e-5)


def test_neighbours_and_modalities_change_the_representation(ds):
    model = _model(ds).eval()
    batch = ds.test.batch(slice(0, 4))
    with torch.no_grad():
        base = model.full_sort_predict(batch)
        # a user's representation depends on its neighbours' features (message passing)
        u = int(batch["user"][0])
        item = int(ds.seqs[u][0])
        model.text_features[item] = torch.randn_like(model.text_features[item])
        changed = model.full_sort_predict(batch)
    assert (changed[0] - base[0]).abs().max() > 1e-5
    one = _model(ds, modality="text")
    assert list(one.gcn) == ["text"] and not hasattr(one, "visual_features")
    assert list(_model(ds).gcn) == ["text", "visual"]
    # BPR negatives avoid the user's training items
    m = _model(ds, loss="bpr")
    users = torch.arange(ds.n_users).repeat(20)
    neg = m.sample_negatives(users)
    keys = users * ds.n_items + neg
    assert (neg >= 1).all() and (neg < ds.n_items).all()
    assert torch.isin(keys, m.train_keys).float().mean() < 0.01


@pytest.mark.parametrize("loss", ["ce", "bpr"])
def test_trains_with_both_losses(ds, loss, monkeypatch):
    monkeypatch.setitem(MODELS, "mmgcn", MMGCN)
    run = resolve_run_config(
        "mmgcn", "synthetic-tiny", get_model_class("mmgcn"),
        train_overrides={"epochs": 3, "device": "cpu", "batch_size": 256},
        model_overrides={"loss": loss},
    )
    res = train(run, ds, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert set(res.history[0]) >= {"train_rec", "train_reg"}
    assert 0.0 <= res.test["ndcg@10"] <= 1.0
    assert np.isfinite(res.test["hr@10"])
