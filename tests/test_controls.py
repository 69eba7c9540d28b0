"""Positive controls: deterministic, with the floor and ceiling their docstrings derive, and learnable."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mealrec.data import controls, dataset_names, get_dataset
from mealrec.evaluation import evaluate


def test_control_content_is_listed_and_its_floor_and_ceiling_are_the_analytic_ones():
    assert "control-content" in dataset_names()
    bounds = controls.floor_and_ceiling(controls.ControlParams())
    assert bounds["floor"]["hr@10"] == pytest.approx(0.10)
    assert bounds["floor"]["ndcg@10"] == pytest.approx(0.0454, abs=1e-4)
    assert bounds["ceiling"]["hr@10"] == 1.0 and bounds["ceiling"]["ndcg@10"] == pytest.approx(0.5897, abs=1e-4)


def test_control_content_is_deterministic_and_keeps_the_answer_out_of_ids_and_titles():
    p = controls.ControlParams(n_users=300)
    a, b = controls.generate(p), controls.generate(p)
    assert a.user_seqs == b.user_seqs and a.titles == b.titles
    assert controls.generate(replace(p, seed=1)).user_seqs != a.user_seqs
    for seq in a.user_seqs.values():  # tail, hub, tail, hub, ...: each hub of its tail's topic
        items = np.asarray(seq) - 1
        assert (~a.is_hub[items[0::2]]).all() and a.is_hub[items[1::2]].all()
        assert (a.item_topic[items[0::2]] == a.item_topic[items[1::2]]).all()
    tails = np.concatenate([np.asarray(s)[0::2] for s in a.user_seqs.values()])
    assert len(np.unique(tails)) == len(tails)  # every tail is used once
    words = {w for t in np.asarray(a.titles)[~a.is_hub] for w in t.split()}
    assert len(words) > 400  # titles are drawn from one shared vocabulary, whatever the topic


def test_control_content_hides_the_test_input_from_training_and_the_reference_reaches_the_ceiling():
    ds = get_dataset("control-content", text_encoder="hashed", progress=False)
    train, test = ds.train, ds.test
    last = test.item_seq[torch.arange(len(test)), test.item_seq_len - 1]
    seen = set(train.item_seq.flatten().tolist()) | set(train.target.tolist())
    assert not seen & set(last.tolist())  # no ID embedding of a test's last input is ever trained
    bounds = ds.metadata["floor_and_ceiling"]
    got, _ = evaluate(controls.reference_scores(ds), test)
    assert got["hr@10"] >= 0.9 * bounds["ceiling"]["hr@10"] and got["ndcg@10"] >= 0.9 * bounds["ceiling"]["ndcg@10"]
    valid, _ = evaluate(controls.reference_scores(ds), ds.valid)
    assert valid["ndcg@10"] < bounds["floor"]["ndcg@10"]  # validation targets are tails: not the test's task


def _reference(name: str, read_as: str | None = None) -> dict[str, float]:
    ds = get_dataset(name, text_encoder="hashed", progress=False)
    if read_as:  # the same reference, reading the frames another way
        ds.metadata["generator_params"]["kind"] = read_as
    return evaluate(controls.reference_scores(ds), ds.test)[0] | ds.metadata["floor_and_ceiling"]


def test_control_temporal_hides_the_topic_in_the_order_of_the_frames():
    got = _reference("control-temporal")
    assert got["ndcg@10"] >= 0.9 * got["ceiling"]["ndcg@10"] and got["hr@10"] >= 0.9
    mean = _reference("control-temporal", read_as="content")  # the frame mean carries no topic
    assert mean["ndcg@10"] < 1.5 * mean["floor"]["ndcg@10"]


def test_control_selection_needs_the_user_to_pick_the_segment():
    got = _reference("control-selection")
    assert got["ndcg@10"] >= 0.9 * got["ceiling"]["ndcg@10"] and got["hr@10"] >= 0.9
    blind = _reference("control-selection", read_as="content")  # content read without the user
    assert blind["ndcg@10"] == pytest.approx(blind["content without the user"]["ndcg@10"], abs=0.03)
    w = controls.generate(controls.ControlParams(kind="selection", n_users=200))
    for u, seq in w.user_seqs.items():  # every target hub is of the user's family; the tail shows both
        items = np.asarray(seq) - 1
        assert (w.item_topic[items[1::2]] % 2 == w.user_family[u - 1]).all()
        assert (w.other_topic[items[0::2]] % 2 != w.user_family[u - 1]).all()
