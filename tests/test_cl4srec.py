import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import mealrec
import mealrec.data
import mealrec.models.cl4srec
from mealrec.config import load_yaml, model_config_file, resolve_run_config
from mealrec.models.cl4srec import (
    CROP,
    MASK,
    REORDER,
    CL4SRec,
    CL4SRecConfig,
    apply_augmentations,
    info_nce,
    item_crop,
    item_mask,
    item_reorder,
    random_operator_pairs,
)
from mealrec.trainer import train
from mealrec.utils import MealRecError

MASK_TOKEN = 999
L = 10


@pytest.fixture(scope="module")
def ds():
    return mealrec.data.get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)


def _hand_made(repeats=1):
    """Rows with disjoint item ranges (row r uses items 100*(r+1) + k) and lengths 5, 10, 2, 1, 3."""
    lens = [5, 10, 2, 1, 3]
    rows = [[100 * (r + 1) + k for k in range(n)] + [0] * (L - n) for r, n in enumerate(lens)]
    seq = torch.tensor(rows).repeat(repeats, 1)
    return seq, torch.tensor(lens).repeat(repeats)


def _padding_right(out, lens):
    ar = torch.arange(out.shape[1])[None]
    return bool(((out != 0) == (ar < lens[:, None])).all())


def _is_contiguous_slice(view, row):
    n = len(view)
    return any(row[s : s + n] == view for s in range(len(row) - n + 1))


def test_crop_keeps_a_contiguous_slice_left_aligned():
    torch.manual_seed(0)
    seq, lens = _hand_made(repeats=200)
    out, new_len = item_crop(seq, lens, 0.6)
    expected = torch.tensor([max(1, math.floor(n * 0.6)) for n in [5, 10, 2, 1, 3]]).repeat(200)
    assert torch.equal(new_len, expected)  # [3, 6, 1, 1, 1]
    assert _padding_right(out, new_len)
    starts = set()
    for b in range(out.shape[0]):
        row = seq[b, : lens[b]].tolist()
        view = out[b, : new_len[b]].tolist()
        assert _is_contiguous_slice(view, row)
        if b % 5 == 1:  # the length-10 row: record the offset
            starts.add(row.index(view[0]))
    assert starts == set(range(0, 10 - 6 + 1))  # every offset 0..4 occurs


def test_crop_eta_one_is_identity_and_small_eta_keeps_one_item():
    seq, lens = _hand_made()
    out, n = item_crop(seq, lens, 1.0)
    assert torch.equal(out, seq) and torch.equal(n, lens)
    out, n = item_crop(seq, lens, 0.05)
    assert torch.equal(n, torch.ones_like(lens)) and _padding_right(out, n)


def test_mask_places_the_mask_token_on_real_positions_only():
    torch.manual_seed(1)
    seq, lens = _hand_made(repeats=200)
    out, new_len = item_mask(seq, lens, 0.3, MASK_TOKEN)
    assert torch.equal(new_len, lens)
    is_mask = out == MASK_TOKEN
    expected = torch.tensor([math.floor(n * 0.3) for n in [5, 10, 2, 1, 3]]).repeat(200)
    assert torch.equal(is_mask.sum(1), expected)  # [1, 3, 0, 0, 0]
    ar = torch.arange(L)[None]
    assert not (is_mask & (ar >= lens[:, None])).any()  # never in the padding
    assert torch.equal(out[~is_mask], seq[~is_mask])  # other items untouched
    assert _padding_right(out, lens)
    # every real position of the length-10 row gets masked at some point
    assert is_mask[1::5].any(0).all()


def test_reorder_permutes_a_contiguous_window():
    torch.manual_seed(2)
    seq, lens = _hand_made(repeats=200)
    out, new_len = item_reorder(seq, lens, 0.6)
    assert torch.equal(new_len, lens) and _padding_right(out, lens)
    changed = 0
    for b in range(out.shape[0]):
        n, w = int(lens[b]), math.floor(int(lens[b]) * 0.6)
        row, view = seq[b].tolist(), out[b].tolist()
        ok = any(
            view[:s] == row[:s] and view[s + w :] == row[s + w :] and sorted(view[s : s + w]) == sorted(row[s : s + w])
            for s in range(n - w + 1)
        )
        assert ok, (row, view)
        changed += view != row
    assert changed > 100  # the shuffles do change order
    # beta = 1 shuffles the whole real part, every order of 3 items appears
    seq3 = torch.tensor([[1, 2, 3, 0]]).repeat(600, 1)
    out3, _ = item_reorder(seq3, torch.full((600,), 3), 1.0)
    assert (out3[:, 3] == 0).all()
    assert len({tuple(r) for r in out3[:, :3].tolist()}) == 6


def test_operator_pairs_are_distinct_and_cover_all_pairs():
    torch.manual_seed(3)
    ops = random_operator_pairs(3000)
    assert ops.shape == (3000, 2) and (ops[:, 0] != ops[:, 1]).all()
    assert ((ops >= 0) & (ops <= 2)).all()
    counts = torch.bincount(ops[:, 0] * 3 + ops[:, 1], minlength=9)
    assert (counts[[1, 2, 3, 5, 6, 7]] > 400).all()


@pytest.mark.parametrize("op", [CROP, MASK, REORDER])
def test_apply_augmentations_routes_each_row_and_keeps_short_rows(op):
    torch.manual_seed(4)
    seq, lens = _hand_made(repeats=50)
    ops = torch.full((seq.shape[0],), op)
    out, n = apply_augmentations(seq, lens, ops, MASK_TOKEN, 0.6, 0.3, 0.6)
    assert _padding_right(out, n)
    short = lens <= 1
    assert torch.equal(out[short], seq[short]) and torch.equal(n[short], lens[short])
    for b in range(out.shape[0]):
        real = out[b, : n[b]]
        own = real[real != MASK_TOKEN]
        # items never come from another row: row r only holds items 100*(r+1) .. 100*(r+1)+9
        assert ((own // 100) == (b % 5) + 1).all()
    long_rows = lens >= 5
    if op == CROP:
        assert (n[long_rows] < lens[long_rows]).all()
    else:
        assert torch.equal(n, lens)
    if op == MASK:
        assert ((out == MASK_TOKEN).sum(1)[long_rows] > 0).all()
    else:
        assert not (out == MASK_TOKEN).any()


def test_model_views_are_valid_and_reproducible(ds):
    model = CL4SRec(CL4SRecConfig(), ds)
    batch = ds.train.batch(slice(0, 256))
    seq, lens = batch["item_seq"], batch["item_seq_len"]
    torch.manual_seed(5)
    s1, n1, s2, n2 = model.augment(seq, lens)
    torch.manual_seed(5)
    t1, m1, t2, m2 = model.augment(seq, lens)
    assert torch.equal(s1, t1) and torch.equal(s2, t2) and torch.equal(n1, m1) and torch.equal(n2, m2)
    assert model.mask_token == ds.n_items
    for s, n in ((s1, n1), (s2, n2)):
        assert s.shape == seq.shape and n.shape == lens.shape
        assert ((n >= 1) & (n <= lens)).all() and _padding_right(s, n)
        for b in range(seq.shape[0]):
            own = set(seq[b, : lens[b]].tolist()) | {ds.n_items}
            assert set(s[b, : n[b]].tolist()) <= own
    assert (s1 == ds.n_items).any() or (s2 == ds.n_items).any()
    assert not torch.equal(s1, s2)


def _recbole_style_info_nce(z1, z2, temperature, similarity):
    """Explicit [positive, negatives] logits with label 0, the mask built by a loop."""
    B = z1.shape[0]
    N = 2 * B
    z = torch.cat([z1, z2])
    if similarity == "cos":
        sim = F.cosine_similarity(z[:, None], z[None], dim=2) / temperature
    else:
        sim = z @ z.T / temperature
    pos = torch.cat([torch.diag(sim, B), torch.diag(sim, -B)]).reshape(N, 1)
    mask = torch.ones(N, N, dtype=torch.bool)
    for i in range(N):
        mask[i, i] = False
        mask[i, (i + B) % N] = False
    neg = sim[mask].reshape(N, -1)
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros(N, dtype=torch.long))


@pytest.mark.parametrize("similarity", ["dot", "cos"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_info_nce_matches_explicit_formulation(similarity, temperature):
    g = torch.Generator().manual_seed(6)
    z1, z2 = torch.randn(7, 16, generator=g), torch.randn(7, 16, generator=g)
    got = info_nce(z1, z2, temperature, similarity)
    want = _recbole_style_info_nce(z1, z2, temperature, similarity)
    assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)


def test_info_nce_lower_for_identical_views():
    g = torch.Generator().manual_seed(7)
    z = torch.randn(64, 32, generator=g)
    same = info_nce(z, z.clone())
    other = info_nce(z, torch.randn(64, 32, generator=g))
    assert torch.isfinite(same) and torch.isfinite(other)
    assert same < other - 1.0
    # a batch of one: the only candidate is the positive
    assert info_nce(z[:1], z[1:2]).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(MealRecError):
        info_nce(z, z, similarity="l2")


def test_shapes_loss_terms_and_eval_mode(ds):
    torch.manual_seed(8)
    model = CL4SRec(CL4SRecConfig(), ds)
    assert model.item_embedding.weight.shape[0] == ds.n_items + 1
    assert model.item_representations().shape == (ds.n_items + 1, 64)  # the mask row is never scored
    batch = ds.train.batch(slice(0, 33))
    assert model.full_sort_predict(batch).shape == (33, ds.n_items)
    model.train()
    terms = model.calculate_loss(batch)
    assert {"loss", "rec", "cl"} <= set(terms)
    assert terms["cl"] > 0 and torch.isfinite(terms["loss"])
    assert terms["loss"].item() == pytest.approx((terms["rec"] + terms["cl"]).item(), rel=1e-6)
    # the CL term is weighted by cl_weight (same draw of views, dropout off)
    nodrop = dataclasses.replace(CL4SRecConfig(), hidden_dropout=0.0, attn_dropout=0.0)
    m1 = CL4SRec(nodrop, ds).train()
    m2 = CL4SRec(dataclasses.replace(nodrop, cl_weight=0.5), ds).train()
    m2.load_state_dict(m1.state_dict())
    torch.manual_seed(9)
    a = m1.auxiliary_losses(None, None, batch)["cl"]
    torch.manual_seed(9)
    b = m2.auxiliary_losses(None, None, batch)["cl"]
    assert b.item() == pytest.approx(5 * a.item(), rel=1e-5)
    # eval mode and cl_weight = 0: no CL term
    model.eval()
    assert "cl" not in model.calculate_loss(batch) and model.auxiliary_losses(None, None, batch) == {}
    m0 = CL4SRec(dataclasses.replace(CL4SRecConfig(), cl_weight=0.0), ds).train()
    assert "cl" not in m0.calculate_loss(batch)


def test_cl_gradient_reaches_encoder_and_mask_row(ds):
    torch.manual_seed(10)
    model = CL4SRec(CL4SRecConfig(), ds).train()
    batch = ds.train.batch(slice(0, 128))
    model.auxiliary_losses(None, None, batch)["cl"].backward()
    grad = model.item_embedding.weight.grad
    assert grad[ds.n_items].abs().sum() > 0  # the mask token's row learns
    assert model.seq.encoder.layers[0].attention.query.weight.grad.abs().sum() > 0


def test_bad_config_is_rejected(ds):
    with pytest.raises(MealRecError):
        CL4SRec(dataclasses.replace(CL4SRecConfig(), similarity="l2"), ds)
    with pytest.raises(MealRecError):
        CL4SRec(dataclasses.replace(CL4SRecConfig(), temperature=0.0), ds)
    with pytest.raises(MealRecError):
        CL4SRec(dataclasses.replace(CL4SRecConfig(), crop_eta=1.5), ds)


def test_yaml_keys_equal_config_fields():
    data = load_yaml(model_config_file("cl4srec"))
    assert set(data) == {f.name for f in dataclasses.fields(CL4SRecConfig)}
    run = resolve_run_config("cl4srec", "synthetic-tiny", CL4SRec)
    assert run.model_config == CL4SRecConfig()
    assert CL4SRec.Config is CL4SRecConfig and CL4SRec.paper == "Xie et al., ICDE 2022"
    doc = mealrec.models.cl4srec.__doc__
    assert "Paper" in doc and "Reference code" in doc and "Departures" in doc


def test_tiny_training_run(ds):
    run = resolve_run_config(
        "cl4srec", "synthetic-tiny", CL4SRec, train_overrides={"epochs": 2, "device": "cpu", "batch_size": 256}
    )
    res = train(run, ds, progress=False, model=CL4SRec(run.model_config, ds))
    assert len(res.history) == 2
    for h in res.history:
        assert h["train_cl"] > 0 and math.isfinite(h["train_loss"])
        assert h["train_loss"] == pytest.approx(h["train_rec"] + h["train_cl"], rel=1e-4)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert 0.0 <= res.test["ndcg@10"] <= 1.0 and math.isfinite(res.test["hr@10"])
    assert res.model.full_sort_predict(ds.test.batch(slice(0, 5))).shape == (5, ds.n_items)
