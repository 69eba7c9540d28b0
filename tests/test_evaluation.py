import math

import numpy as np
import pytest
import torch

from mealrec.data.base import Split
from mealrec.evaluation import evaluate, metrics_from_ranks, paired_ttest, target_ranks
from mealrec.utils import MealRecError


def test_rank_counts_strictly_higher_items():
    scores = torch.tensor([[0.0, 0.9, 0.5, 0.1, 0.7]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [3]  # 0.9 and 0.7 above
    assert target_ranks(scores, torch.tensor([1])).tolist() == [1]


def test_ties_never_favour_the_target():
    scores = torch.tensor([[0.0, 0.5, 0.5, 0.5, 0.1]])
    # three items tie at 0.5: the target goes after the two others
    assert target_ranks(scores, torch.tensor([2])).tolist() == [3]
    # a constant scorer ranks the target last among the real items
    flat = torch.zeros(1, 30)
    assert target_ranks(flat, torch.tensor([7])).tolist() == [29]
    m = metrics_from_ranks(target_ranks(flat, torch.tensor([7])))
    assert m["hr@20"].item() == 0.0


def test_padding_item_is_excluded_even_if_top_scored():
    scores = torch.tensor([[100.0, 0.2, 0.3]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]
    with pytest.raises(MealRecError, match="padding"):
        target_ranks(scores, torch.tensor([0]))


def test_history_items_are_not_masked():
    # item 1 is "in the history" but still outranks the target: no masking
    scores = torch.tensor([[0.0, 0.9, 0.5]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [2]


def test_metric_values():
    m = metrics_from_ranks(torch.tensor([1, 2, 10, 11, 20, 21]))
    assert m["hr@10"].tolist() == [1, 1, 1, 0, 0, 0]
    assert m["hr@20"].tolist() == [1, 1, 1, 1, 1, 0]
    assert m["ndcg@10"][0].item() == pytest.approx(1.0)
    assert m["ndcg@10"][1].item() == pytest.approx(1 / math.log2(3))
    assert m["ndcg@10"][2].item() == pytest.approx(1 / math.log2(11))
    assert m["ndcg@10"][3].item() == 0.0
    assert m["ndcg@20"][4].item() == pytest.approx(1 / math.log2(21))


def test_nan_scores_are_an_error():
    with pytest.raises(MealRecError, match="NaN"):
        target_ranks(torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([1]))


def _split(n, n_items, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(
        item_seq=torch.randint(1, n_items, (n, 4), generator=g),
        item_seq_len=torch.full((n,), 4),
        target=torch.randint(1, n_items, (n,), generator=g),
        user=torch.arange(n),
    )


def test_batched_evaluation_equals_unbatched():
    n_items = 50
    table = torch.randn(n_items, 8, generator=torch.Generator().manual_seed(1))
    split = _split(37, n_items)

    def score(batch):
        return table[batch["item_seq"]].sum(1) @ table.T

    a, pa = evaluate(score, split, batch_size=5)
    b, pb = evaluate(score, split, batch_size=1000)
    assert a == b
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert len(pa["hr@10"]) == 37


def test_evaluate_perfect_and_worst_models():
    n_items = 40
    split = _split(20, n_items)

    def perfect(batch):
        s = torch.zeros(len(batch["target"]), n_items)
        s[torch.arange(len(s)), batch["target"]] = 1.0
        return s

    def worst(batch):
        return -perfect(batch)

    assert evaluate(perfect, split)[0]["ndcg@10"] == pytest.approx(1.0)
    assert evaluate(worst, split)[0]["hr@20"] == 0.0


def test_paired_ttest():
    rng = np.random.default_rng(0)
    a = rng.random(500)
    b = a - 0.05 + rng.normal(0, 0.01, 500)
    r = paired_ttest(a, b)
    assert r["t"] > 0 and r["p"] < 1e-10
    assert paired_ttest(a, a) == {"mean_a": pytest.approx(a.mean()), "mean_b": pytest.approx(a.mean()),
                                  "t": 0.0, "p": 1.0}
    # a constant non-zero difference: every user better by the same amount, certain in sign
    q = np.arange(20) / 4.0  # exact in binary, so the difference is exactly constant
    shifted = paired_ttest(q + 0.25, q)
    assert shifted["t"] == np.inf and shifted["p"] == 0.0
    assert paired_ttest(q, q + 0.25)["t"] == -np.inf
    with pytest.raises(MealRecError):
        paired_ttest(a, b[:10])
