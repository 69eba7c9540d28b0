"""SSDRec's own mechanisms: the training-only graphs, insertion, and the hierarchical denoiser."""
import dataclasses

import numpy as np
import pytest
import torch

import mealrec.models.ssdrec as ssd
from mealrec.config import load_yaml, model_config_file, resolve_run_config
from mealrec.data import get_dataset
from mealrec.models import MODELS
from mealrec.models.ssdrec import SSDRec, SSDRecConfig, insertion_index, training_windows, transition_graph


@pytest.fixture(scope="module")
def tiny():
    return get_dataset("synthetic-tiny", progress=False)


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    monkeypatch.setitem(MODELS, "ssdrec", SSDRec)


def test_config_and_graphs_use_training_items_only(tiny):
    assert set(load_yaml(model_config_file("ssdrec"))) == {f.name for f in dataclasses.fields(SSDRecConfig)}
    assert resolve_run_config("ssdrec", "synthetic-tiny", SSDRec).model_config == SSDRecConfig()
    assert all(w in ssd.__doc__ for w in ("Paper", "Reference code", "Departures"))
    # hand-made: one window [1, 2, 3] (n = 3): pairs at distance 1 weigh 2/3, at distance 2 weigh 1/3
    items, lens = training_windows([np.array([1, 2, 3, 7, 8])], window=10)  # 7, 8: valid and test targets
    assert items[0, :3].tolist() == [1, 2, 3] and lens.tolist() == [3] and not (items[0, 3:]).any()
    w = transition_graph(items, lens, 9, min_count=0).toarray()
    expected = np.zeros((9, 9))
    expected[1, 2] = expected[2, 3] = 2 / 3
    expected[1, 3] = 1 / 3
    np.testing.assert_allclose(w, expected)
    assert transition_graph(items, lens, 9, min_count=1).nnz == 0  # each pair occurs once: not > 1

    # the model's graphs do not change when every user's validation and test items change
    rng = np.random.default_rng(0)
    altered = [np.concatenate([s[:-2], rng.integers(1, tiny.n_items, 2)]) for s in tiny.seqs]
    cfg = SSDRecConfig(min_cooccurrence=0)
    a = SSDRec(cfg, tiny).relations

    class Altered:
        seqs, n_items, n_users, max_len, train = altered, tiny.n_items, tiny.n_users, tiny.max_len, tiny.train

    b = SSDRec(cfg, Altered()).relations
    for name in ("a_in", "a_out", "r_t"):
        assert torch.equal(getattr(a, name).to_dense(), getattr(b, name).to_dense())
    assert torch.equal(a.windows, b.windows)
    assert a.a_out._nnz() > 0


def test_insertion_places_two_items_around_the_chosen_position():
    L = 6
    lens = torch.tensor([4, 6, 6, 2])
    p = torch.tensor([1, 3, 3, 5])  # the last row drew a padding position: no augmentation
    seq = torch.tensor([[1, 2, 3, 4, 0, 0], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [1, 2, 0, 0, 0, 0]])
    FW, BW = 90, 91
    bank = torch.cat([seq, torch.full((4, 1), FW), torch.full((4, 1), BW)], dim=1)

    src, new_len, aug, q = insertion_index(lens, p, L, truncate=True)
    out = bank.gather(1, src) * (torch.arange(L)[None] < new_len[:, None])
    assert out[0].tolist() == [1, FW, 2, BW, 3, 4] and new_len[0] == 6 and q[0] == 1
    assert out[1].tolist() == [3, FW, 4, BW, 5, 6] and new_len[1] == 6 and q[1] == 1  # two oldest dropped
    assert out[3].tolist() == [1, 2, 0, 0, 0, 0] and not aug[3]
    assert aug.tolist() == [True, True, True, False]

    src, new_len, aug, q = insertion_index(lens, p, L, truncate=False)  # the reference's rule
    out = bank.gather(1, src) * (torch.arange(L)[None] < new_len[:, None])
    assert aug.tolist() == [True, False, False, False]
    assert out[1].tolist() == seq[1].tolist() and new_len[1] == 6


def test_augmented_training_sequences_keep_the_original_order(tiny):
    torch.manual_seed(0)
    model = SSDRec(SSDRecConfig(), tiny).train()
    batch = tiny.train.batch(slice(0, 200))
    seq, lens, user = batch["item_seq"], batch["item_seq_len"], batch["user"]
    E, P = model.item_embedding.weight, model.user_embedding.weight
    with torch.no_grad():
        ids, emb, new_len, augmented = model.augment(seq, lens, user, model.relations.items(E, P),
                                                     model.relations.users(user, E, P))
    L = tiny.max_len
    assert ids.shape == (200, L) and emb.shape == (200, L, 64)
    assert torch.equal(ids > 0, torch.arange(L)[None] < new_len[:, None])  # right-padded, no holes
    assert augmented.any() and (~augmented).any()
    full = (lens + 2).clamp(max=L)
    assert (new_len[augmented] >= full[augmented] - 1).all() and (new_len[augmented] <= full[augmented]).all()
    assert (new_len[~augmented] >= lens[~augmented] - 1).all() and (new_len[~augmented] <= lens[~augmented]).all()

    def explains(orig, out):
        """Is ``out`` = ``orig`` with (*, orig[p], *) in place of orig[p] for some p, cut to its last
        L items, minus at most one of the three block items? (* = any inserted item)"""
        for p in range(len(orig)):
            ext = orig[:p] + [None, orig[p], None] + orig[p + 1 :]
            shift = max(0, len(ext) - L)
            ext, q = ext[shift:], p - shift
            for r in [None] + [i for i in (q, q + 1, q + 2) if 0 <= i < len(ext)]:
                cand = [x for i, x in enumerate(ext) if i != r]
                if len(cand) == len(out) and all(c is None or c == o for c, o in zip(cand, out)):
                    return True
        return False

    for b in range(200):
        orig, out = seq[b, : lens[b]].tolist(), ids[b, : new_len[b]].tolist()
        if augmented[b]:
            assert explains(orig, out), (orig, out)
        else:  # nothing inserted, nothing removed (truncate policy: the draw fell on padding)
            assert out == orig


def test_denoiser_decisions_shape_the_representation(tiny, monkeypatch):
    torch.manual_seed(0)
    model = SSDRec(SSDRecConfig(), tiny).eval()
    batch = tiny.test.batch(slice(0, 16))
    seq, lens, user = batch["item_seq"], batch["item_seq_len"], batch["user"]
    with torch.no_grad():
        h = model.represent({"item_seq": seq, "item_seq_len": lens, "user": user})
        assert torch.equal(h, model.represent({"item_seq": seq, "item_seq_len": lens,
                                               "user": user}))  # deterministic evaluation
        # items after the last real position are ignored (no future leak through the denoisers)
        seq2 = seq.clone()
        short = lens < tiny.max_len
        seq2[short, lens[short]] = 5
        assert torch.allclose(h, model.represent({"item_seq": seq2, "item_seq_len": lens, "user": user}), atol=1e-6)

        def encode(s):  # SASRec over a sequence as given, nothing removed
            raw = model.item_embedding(s)
            return model.encode_kept(s, raw, (s > 0).float())

        def both_levels(noisy: bool):
            def level(self, *args):
                x = args[0]
                s = torch.zeros(*x.shape[:2], 2)
                s[..., 1 if noisy else 0] = 1.0
                return (s, torch.zeros(x.shape[0])) if isinstance(self, ssd.SequenceLevelDenoiser) else s
            monkeypatch.setattr(ssd.SequenceLevelDenoiser, "forward", level)
            monkeypatch.setattr(ssd.ItemLevelDenoiser, "forward", level)

        both_levels(noisy=False)  # nothing is noise: plain SASRec on the sequence
        assert torch.allclose(model.represent({"item_seq": seq, "item_seq_len": lens, "user": user}), encode(seq),
                              atol=1e-5)
        both_levels(noisy=True)  # everything is noise: each sequence keeps its last item
        last = torch.zeros_like(seq)
        last[:, 0] = seq.gather(1, (lens - 1)[:, None]).squeeze(1)
        assert torch.allclose(model.represent({"item_seq": seq, "item_seq_len": lens, "user": user}), encode(last),
                              atol=1e-5)
        assert not torch.allclose(model.represent({"item_seq": seq, "item_seq_len": lens, "user": user}), h, atol=1e-3)


def test_truncation_never_drops_the_inserted_items():
    L = 6
    lens = torch.tensor([6, 6, 5])
    p = torch.tensor([0, 1, 0])  # full rows: positions 0 and 1 are the ones truncation drops
    src, new_len, aug, q = insertion_index(lens, p, L, truncate=True)
    # rows 0-1 would lose FW (and s_p) to the truncation: left as they are; the 5-item row
    # overflows by one, so p = 0 would lose s_0 and FW: left as it is too
    assert aug.tolist() == [False, False, False]
    assert torch.equal(src, torch.arange(L).expand(3, L)) and new_len.tolist() == [6, 6, 5]
    src, new_len, aug, q = insertion_index(torch.tensor([6]), torch.tensor([2]), L, truncate=True)
    FW, BW = L, L + 1  # bank indices of the inserted items
    assert aug.tolist() == [True] and src[0].tolist() == [FW, 2, BW, 3, 4, 5]  # s_0, s_1 dropped
