"""The fast paths compute the same function as the plain ones: the last Transformer layer for the read
position only, and every model's scores as the product its loss multiplies."""
import pytest
import torch

from mealrec.data import get_dataset
from mealrec.experiments import run_config
from mealrec.models import build_model, model_names
from mealrec.models.layers import SequenceEncoder, gather_last


@pytest.mark.parametrize("training", [False, True])
def test_last_state_equals_the_gathered_full_states(training):
    torch.manual_seed(0)
    enc = SequenceEncoder(10, 64, 2, 2, 256, 0.5, 0.5).train(training)
    B, L = 300, 10
    emb = torch.randn(B, L, 64)
    lens = torch.randint(1, L + 1, (B,))
    seq = (torch.arange(L)[None] < lens[:, None]).long() * torch.randint(1, 100, (B, L))
    torch.manual_seed(5)
    full = gather_last(enc.states(enc.inputs(emb), seq), lens)
    after_full = torch.get_rng_state()
    torch.manual_seed(5)
    fast = enc(emb, seq, lens)
    assert torch.equal(torch.get_rng_state(), after_full)  # the same random draws, so the same dropout masks
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    assert not torch.equal(fast, torch.zeros_like(fast))


@pytest.fixture(scope="module")
def tiny():
    return get_dataset("synthetic-tiny", progress=False)


@pytest.mark.parametrize("name", model_names())
def test_scores_are_the_product_of_the_score_operands(name, tiny):
    torch.manual_seed(0)
    run = run_config(name, "synthetic-tiny", train_overrides={"seed": 1})
    model = build_model(run.model, run.model_config, tiny).eval()
    batch = tiny.valid.batch(torch.arange(32))
    with torch.no_grad():
        items = model.item_representations()
        h = model.run(batch, items).h
        q, K = model.score_operands(h, items)
        torch.testing.assert_close(q @ K.T, model.score(h, items), rtol=1e-5, atol=1e-5)
        assert K.shape[0] == model.n_items
