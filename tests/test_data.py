import numpy as np
import pytest

from mealrec.data import dataset_names, get_dataset, k_core, leave_one_out
from mealrec.data.synthetic import SyntheticParams, generate
from mealrec.utils import MealRecError


def test_leave_one_out_with_prefix_augmentation():
    seqs = [np.array([1, 2, 3, 4, 5]), np.array([6, 7, 8])]
    s = leave_one_out(seqs, max_len=3)
    # user 0: train targets 2, 3 (prefixes [1], [1,2]); valid 4 <- [1,2,3]; test 5 <- [2,3,4]
    # user 1: no train instance; valid 7 <- [6]; test 8 <- [6,7]
    assert s["train"].target.tolist() == [2, 3]
    assert s["train"].item_seq.tolist() == [[1, 0, 0], [1, 2, 0]]
    assert s["train"].item_seq_len.tolist() == [1, 2]
    assert s["valid"].target.tolist() == [4, 7]
    assert s["valid"].item_seq.tolist() == [[1, 2, 3], [6, 0, 0]]
    assert s["test"].target.tolist() == [5, 8]
    assert s["test"].item_seq.tolist() == [[2, 3, 4], [6, 7, 0]]
    assert s["test"].user.tolist() == [0, 1]


def test_leave_one_out_truncates_to_most_recent():
    seqs = [np.arange(1, 21)]
    s = leave_one_out(seqs, max_len=10)
    assert s["test"].item_seq.tolist() == [list(range(10, 20))]
    assert len(s["train"]) == 17
    assert s["train"].item_seq[-1].tolist() == list(range(8, 18))


def test_leave_one_out_rejects_short_users():
    with pytest.raises(MealRecError, match="at least 3"):
        leave_one_out([np.array([1, 2])], max_len=10)


def test_k_core_is_iterative():
    seqs = {1: [1, 2, 3], 2: [1, 2, 3], 3: [1, 2, 4], 4: [4, 5]}
    out = k_core(seqs, 2)
    # item 5 goes (1 click), user 4 then has 1 item and goes, item 4 drops to 1 click and goes
    assert out == {1: [1, 2, 3], 2: [1, 2, 3], 3: [1, 2]}


def test_registry_lists_names_on_error():
    with pytest.raises(MealRecError) as e:
        get_dataset("no-such-data")
    for name in ("synthetic-tiny", "microlens-small", "microlens-big", "shortvideo-small"):
        assert name in str(e.value)
    assert {"synthetic-tiny", "synthetic-small", "microlens-small", "microlens-big", "shortvideo-small",
            "shortvideo-big"} <= set(dataset_names())


def test_synthetic_tiny_is_deterministic():
    a = get_dataset("synthetic-tiny", progress=False)
    fa = a.features()
    b = get_dataset("synthetic-tiny", progress=False)
    assert a.data_hash == b.data_hash
    assert np.array_equal(fa.frames.numpy(), b.features().frames.numpy())
    assert fa.frames.shape == (a.n_items, 5, 768)
    assert fa.visual.shape == (a.n_items, 768)
    assert fa.text.shape == (a.n_items, 384)
    assert float(fa.frames[0].abs().sum()) == 0.0
    assert a.metadata["interactions"] == "synthetic"


def test_synthetic_seed_changes_data():
    p = SyntheticParams(seed=1)
    q = SyntheticParams(seed=2)
    assert generate(p).user_seqs != generate(q).user_seqs


def test_synthetic_planted_structure():
    p = SyntheticParams(n_users=300, n_items=400, avg_len=10, random_click=0.3, seed=3)
    w = generate(p)
    share = np.mean([x for v in w.random_click_mask.values() for x in v])
    assert share == pytest.approx(0.3, abs=0.03)
    # on-interest clicks concentrate on few topics per user, random clicks do not
    topics = [w.item_topic[np.array(s) - 1] for s in w.user_seqs.values()]
    n_distinct = np.mean([len(set(t)) / len(t) for t in topics])
    assert n_distinct < 0.8
    # long-tail popularity: the top 10% of items get a large share of clicks
    counts = np.sort(np.bincount(np.concatenate([np.array(s) for s in w.user_seqs.values()])))[::-1]
    assert counts[: len(counts) // 10].sum() / counts.sum() > 0.3


def test_salient_frames_carry_the_topic():
    ds = get_dataset("synthetic-tiny", progress=False)
    from mealrec.data.synthetic import generate as gen
    from mealrec.data import _source_params, dataset_spec

    world = gen(_source_params("synthetic-tiny", dataset_spec("synthetic-tiny")))
    f = ds.features().frames.numpy()
    # frames inside the salient segment of an item agree with each other more than with distractors
    sims_in, sims_out = [], []
    for j, orig in enumerate(ds.item_ids[:50], start=1):
        st = world.salient_start[orig - 1]
        a, b = f[j, st], f[j, st + 1]
        others = [k for k in range(5) if k not in (st, st + 1)]
        cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
        sims_in.append(cos(a, b))
        sims_out.append(np.mean([cos(a, f[j, k]) for k in others]))
    assert np.mean(sims_in) > np.mean(sims_out) + 0.3


def test_stats_columns():
    s = get_dataset("synthetic-tiny", progress=False).stats()
    assert set(s) == {"dataset", "users", "items", "interactions", "avg_length", "sparsity"}
    assert s["avg_length"] == pytest.approx(s["interactions"] / s["users"])


def test_user_sample_is_seeded_renumbered_and_recorded():
    whole = get_dataset("synthetic-tiny", progress=False)
    assert get_dataset("synthetic-tiny", progress=False, max_users=None).data_hash == whole.data_hash
    assert (get_dataset("synthetic-tiny", progress=False, max_users=10_000).data_hash
            == whole.data_hash)  # more than there are
    a = get_dataset("synthetic-tiny", progress=False, max_users=50)
    b = get_dataset("synthetic-tiny", progress=False, max_users=50)
    assert a.stats()["users"] == 50 and a.data_hash == b.data_hash != whole.data_hash
    assert "50 of 200 users" in a.metadata["user_sample"] and "user_sample" not in whole.metadata
    assert set(a.user_ids) <= set(whole.user_ids)
    seen = np.unique(np.concatenate(a.seqs))
    assert seen.tolist() == list(range(1, a.n_items))  # items renumbered over what the sample saw
    assert len(a.titles) == a.n_items - 1
    for bad in (0, -3, 2.5, True):
        with pytest.raises(MealRecError, match="max_users must be a positive integer"):
            get_dataset("synthetic-tiny", progress=False, max_users=bad)
