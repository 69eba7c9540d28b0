import numpy as np
import pytest
import torch

from mealrec.config import resolve_run_config
from mealrec.data import dataset_spec, get_dataset
from mealrec.evaluation import evaluate
from mealrec.models import MODELS, build_model, get_model_class
from mealrec.models.layers import causal_padding_mask
from mealrec.trainer import load_result, train


@pytest.fixture(scope="module")
def tiny():
    return get_dataset("synthetic-tiny", progress=False)


def _run(epochs=2, seed=0, **train):
    spec = dataset_spec("synthetic-tiny")
    return resolve_run_config(
        "sasrec", "synthetic-tiny", get_model_class("sasrec"),
        dataset_overrides={"train": spec.train},
        train_overrides={"epochs": epochs, "seed": seed, "device": "cpu", "batch_size": 256, **train},
    )


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name, tiny):
    cls = get_model_class(name)
    model = build_model(name, cls.Config(), tiny)
    batch = tiny.train.batch(slice(0, 7))
    h = model.represent(batch)
    assert h.dim() == 2 and h.shape[0] == 7
    scores = model.full_sort_predict(batch)
    assert scores.shape == (7, tiny.n_items)
    terms = model.calculate_loss(batch)
    assert terms["loss"].dim() == 0 and torch.isfinite(terms["loss"])
    import inspect

    doc = inspect.getmodule(cls).__doc__
    assert "Paper" in doc and "Reference code" in doc and "Departures" in doc


def test_causal_mask_blocks_future_and_padding():
    m = causal_padding_mask(torch.tensor([[3, 4, 0]]))[0, 0]
    allowed = (m == 0).tolist()
    assert allowed == [[True, False, False], [True, True, False], [True, True, False]]


def test_output_ignores_padding_and_future(tiny):
    model = build_model("sasrec", get_model_class("sasrec").Config(), tiny).eval()
    seq = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0]])
    seq2 = seq.clone()
    seq2[0, 3] = 9  # an item after the last real one
    lens = torch.tensor([3])
    assert torch.allclose(model.represent({"item_seq": seq, "item_seq_len": lens}),
                          model.represent({"item_seq": seq2, "item_seq_len": lens}), atol=1e-6)


def test_training_lowers_loss_and_beats_popularity_free_chance(tiny):
    res = train(_run(epochs=8), tiny, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0] * 0.95
    # chance NDCG@10 over ~144 items is ~0.03; a trained model on planted data must exceed it clearly
    assert res.test["hr@10"] > 3 * 10 / (tiny.n_items - 1)


def test_same_seed_same_metrics(tiny):
    a = train(_run(epochs=2, seed=5), tiny, progress=False)
    b = train(_run(epochs=2, seed=5), tiny, progress=False)
    c = train(_run(epochs=2, seed=6), tiny, progress=False)
    assert a.test == b.test
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in c.history]


def test_evaluation_of_a_checkpoint_is_deterministic(tiny):
    res = train(_run(epochs=1), tiny, progress=False)
    m1, p1 = evaluate(res.model.full_sort_predict, tiny.test, 64)
    m2, p2 = evaluate(res.model.full_sort_predict, tiny.test, 64)
    assert m1 == m2 and m1 == res.test


def test_early_stopping_counts_ties_as_no_gain_and_restores_the_best_epoch(tiny, monkeypatch):
    """Scripted validation scores: the best is epoch 2; epochs 3-5 tie or fall, so training stops
    after patience (3) evaluations without a gain, and the weights of epoch 2 come back."""
    import mealrec.trainer as T

    scores = iter([0.1, 0.3, 0.3, 0.2, 0.3, 0.9, 0.9])
    snapshots = []
    real_evaluate = T.evaluate

    def scripted(predict, split, batch_size, device):
        if split is tiny.valid:
            snapshots.append(predict.__self__.item_embedding.weight.detach().clone())
            return {"hr@10": 0.0, "ndcg@10": next(scores), "hr@20": 0.0, "ndcg@20": 0.0}, {}
        return real_evaluate(predict, split, batch_size, device)

    monkeypatch.setattr(T, "evaluate", scripted)
    res = train(_run(epochs=30, patience=3), tiny, progress=False)
    assert res.best_epoch == 2 and len(res.history) == 5  # epochs 3, 4, 5 brought no gain (a tie is none)
    assert res.valid["ndcg@10"] == 0.3
    assert torch.equal(res.model.item_embedding.weight, snapshots[1])  # epoch 2's weights restored
    assert not torch.equal(snapshots[1], snapshots[4])


def test_early_stopping_restores_best(tiny):
    res = train(_run(epochs=30, patience=2, lr=0.05), tiny, progress=False)
    scores = [h["valid"]["ndcg@10"] for h in res.history]
    assert res.valid["ndcg@10"] == max(scores)
    assert res.best_epoch == int(np.argmax(scores)) + 1
    assert len(res.history) <= res.best_epoch + 2
    m, _ = evaluate(res.model.full_sort_predict, tiny.valid, 64)
    assert m["ndcg@10"] == pytest.approx(res.valid["ndcg@10"])


def test_result_files(tiny, tmp_path):
    out = tmp_path / "r" / "run.json"
    res = train(_run(epochs=1), tiny, out=out, progress=False)
    r = load_result(out)
    assert r["config"]["seed"] == 0
    assert r["config"]["model_config"]["hidden_size"] == 64
    assert r["environment"]["mealrec"] and r["environment"]["torch"]
    assert r["dataset"]["data_hash"] == tiny.data_hash
    assert r["test"] == res.test
    assert np.mean(r["per_user_test"]["ndcg@10"]) == pytest.approx(res.test["ndcg@10"])
    h = r["history"][0]
    assert h["train_time_s"] > 0 and h["eval_time_s"] > 0 and h["peak_memory_mb"] > 0
    ck = torch.load(out.with_suffix(".pt"), weights_only=False)
    assert ck["config"]["model"] == "sasrec" and "item_embedding.weight" in ck["state_dict"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.json", "run.npz", "run.pt"]
    # the checkpoint rebuilds the model that gave the stored test metrics (Figure 7 relies on it)
    from mealrec.trainer import load_checkpoint

    again = load_checkpoint(out.with_suffix(".pt"), tiny)
    again.eval()
    assert evaluate(again.full_sort_predict, tiny.test, 64)[0] == res.test


def test_a_non_finite_loss_stops_training_with_a_clear_error(tiny, monkeypatch):
    from mealrec.models.sasrec import SASRec
    from mealrec.utils import MealRecError

    real = SASRec.calculate_loss

    def poisoned(self, batch):
        terms = real(self, batch)
        return {**terms, "loss": terms["loss"] * float("nan")}

    monkeypatch.setattr(SASRec, "calculate_loss", poisoned)
    with pytest.raises(MealRecError, match="loss became nan at epoch 1, batch 0; lower train.lr"):
        train(_run(epochs=1), tiny, progress=False)
    with pytest.raises(MealRecError, match="train.valid_metric must be one of"):
        train(_run(epochs=1, valid_metric="mrr"), tiny, progress=False)


def test_failed_write_leaves_no_result_json(tiny, tmp_path, monkeypatch):
    """The JSON is the mark of a finished run (the store reads only runs whose JSON exists), and
    it is written last and atomically: a failure while writing it leaves no JSON and no temp
    file. The .npz and .pt written before it may stay; the next run overwrites them."""
    from mealrec import utils

    out = tmp_path / "run.json"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(utils.json, "dump", boom)
    with pytest.raises(RuntimeError):
        train(_run(epochs=1), tiny, out=out, progress=False)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp" or p.name.startswith(".run.json")]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_representations_for_every_model(name, tiny):
    model = build_model(name, get_model_class(name).Config(), tiny)
    model.train()
    out = model.export_representations(tiny.test.batch(slice(0, 5)))
    assert out["user"].shape[0] == 5 and out["target_item"].shape == out["user"].shape
    assert model.training  # mode restored


def test_checkpoints_from_before_the_sequence_encoder_still_load(tiny):
    from mealrec.models.sasrec import SASRec, SASRecConfig
    from mealrec.trainer import _renamed
    ds = tiny
    model = SASRec(SASRecConfig(), ds)
    old = {k.replace("seq.", "", 1): v for k, v in model.state_dict().items()}  # the names before SequenceEncoder
    assert "position_embedding.weight" in old
    fresh = SASRec(SASRecConfig(), ds)
    fresh.load_state_dict(_renamed(old, fresh.state_dict().keys()))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
