"""The dataset loader picks up extracted features (``mealrec features video|text``) for MicroLens,
keeps placeholders otherwise, says which it used, and keys runs by them; and the run-key
migration (scheme 1 -> 2) carries only runs that provably belong to the library."""
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from mealrec.data import get_dataset
from mealrec.extract.store import ChunkStore
from mealrec.reproduce import RunStore
from mealrec.reproduce import rekey as RK
from mealrec.reproduce.store import dataset_identity
from mealrec.utils import MealRecError

ITEMS = list(range(1, 9))
PAIRS = "".join(f"{u}\t" + " ".join(str(i) for i in ITEMS[(u % 3):(u % 3) + 5]) + "\n" for u in range(1, 9))
TITLES = "item,title\n" + "".join(f"{i},title of video {i} #tag{i % 2}\n" for i in ITEMS)
K, D, DT = 5, 6, 4


def _video_store(folder, ids, seed=0):
    rng = np.random.default_rng(seed)
    store = ChunkStore(folder, "video", {"n_frames": K, "dim": D,
                                         "encoder": {"architecture": "VideoMAEModel", "hidden_size": D,
                                                     "source": "random-init"}})
    frames = rng.standard_normal((len(ids), K, D)).astype(np.float16)
    glob = frames.astype(np.float32).mean(1)
    store.write_chunk([str(i) for i in ids], glob, ["0" * 64] * len(ids), {}, [], frames=frames)
    return dict(zip(ids, frames)), dict(zip(ids, glob.astype(np.float16)))


def _text_store(folder, ids):
    store = ChunkStore(folder, "text", {"dim": DT, "encoder": {"encoder": "bert", "model": "tiny-test", "dim": DT}})
    emb = np.arange(len(ids) * DT, dtype=np.float32).reshape(len(ids), DT) / 10
    store.write_chunk([str(i) for i in ids], emb, ["0" * 64] * len(ids), {}, [])
    return dict(zip(ids, emb))


def test_placeholders_when_nothing_extracted(fake_microlens):
    root = fake_microlens(PAIRS, TITLES)
    ds = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", progress=False)
    f = ds.features()
    assert "placeholder" in ds.metadata["visual_features"] and "placeholder" in f.info["visual"]
    assert f.frames.shape == (ds.n_items, 5, 768)


def test_extracted_video_and_text_are_used_and_reported(fake_microlens):
    root = fake_microlens(PAIRS, TITLES)
    feat_dir = root / "microlens-50k" / "features"
    kept = get_dataset("microlens-big", data_dir=root, features="placeholder", text_encoder="hashed",
                       progress=False).item_ids
    have = [int(i) for i in kept[:-1]]  # the last item's video was "skipped": it gets zeros, counted and warned
    frames, _ = _video_store(feat_dir / "video", have)
    text = _text_store(feat_dir / "text", ITEMS)
    ds = get_dataset("microlens-big", data_dir=root, progress=False)
    with pytest.warns(UserWarning, match=f"1 of {len(kept)} items have no extracted video"):
        f = ds.features()
    assert ds.metadata["visual_features"].startswith("extracted (VideoMAEModel d=6")
    assert ds.metadata["items_without_video"] == 1 and ds.metadata["items_without_text"] == 0
    assert f.info["text_encoder"] == "extracted:bert tiny-test"
    assert f.frames.shape == (ds.n_items, K, D) and f.text.shape == (ds.n_items, DT)
    for row, raw in enumerate(ds.item_ids, start=1):
        if raw in frames:
            assert np.array_equal(f.frames[row].numpy(), frames[raw])
        else:
            assert not f.frames[row].any() and not f.visual[row].any()
        assert np.array_equal(f.text[row].numpy(), text[raw].astype(np.float16).astype(np.float32))  # stored as float16
    assert not f.frames[0].any()

    # an explicit encoder wins over extracted text; "placeholder" ignores extracted video
    ds2 = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", features="placeholder", progress=False)
    assert ds2.features().info["text_encoder"] == "hashed" and "placeholder" in ds2.metadata["visual_features"]
    # runs on extracted features never share a key with runs on placeholders
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds3 = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", progress=False)
        assert dataset_identity(ds3)["visual"] != dataset_identity(ds2)["visual"]


def test_features_dir_argument_and_env(fake_microlens, tmp_path, monkeypatch):
    root = fake_microlens(PAIRS, TITLES)
    elsewhere = tmp_path / "feats"
    _video_store(elsewhere / "video", ITEMS, seed=3)
    ds = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", features=elsewhere, progress=False)
    assert str(elsewhere / "video") in ds.metadata["visual_features"]
    monkeypatch.setenv("MEALREC_FEATURES", str(elsewhere))
    ds = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", progress=False)
    assert ds.metadata["visual_features"].startswith("extracted")
    assert ds.metadata.get("items_without_video") is None
    ds.features()
    assert ds.metadata["items_without_video"] == 0


def test_bad_feature_inputs_have_clear_errors(fake_microlens, tmp_path):
    root = fake_microlens(PAIRS, TITLES)
    with pytest.raises(MealRecError, match="does not exist"):
        get_dataset("microlens-big", data_dir=root, features=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MealRecError, match="holds no extracted features.*mealrec features video"):
        get_dataset("microlens-big", data_dir=root, features=tmp_path / "empty")
    with pytest.raises(MealRecError, match="synthetic and generates its own features"):
        get_dataset("synthetic-tiny", features=tmp_path / "empty")
    _video_store(tmp_path / "wrong" / "video", ["a", "b"])  # ids that are not item ids
    ds = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", features=tmp_path / "wrong", progress=False)
    with pytest.raises(MealRecError, match="none of the dataset's .* items has video features"):
        ds.features()
    shutil.copytree(tmp_path / "wrong" / "video", tmp_path / "swapped" / "text")  # a video store where text belongs
    with pytest.raises(MealRecError, match="kind is 'video', expected 'text'"):
        get_dataset("microlens-big", data_dir=root, features=tmp_path / "swapped")


def test_carry_moves_only_the_runs_the_previous_checkout_made(tmp_path):
    import mealrec
    store = RunStore(tmp_path / "runs", progress=False)
    r = store.run("sasrec", "synthetic-tiny", seed=3, epochs=1)
    new = r["result_path"]
    # a previous checkout whose keys differ (same math, another declared version)
    prev = tmp_path / "previous"
    shutil.copytree(Path(mealrec.__file__).parent, prev / "mealrec", ignore=shutil.ignore_patterns("__pycache__"))
    f = prev / "mealrec" / "models" / "sasrec.py"
    f.write_text(f.read_text().replace("    version = 1 ", "    version = 9 ", 1))
    res = json.loads(open(new).read())
    old_key = RK.previous_keys(tmp_path / "runs", prev, ["sasrec"])[str(Path(new).resolve())]
    assert old_key != res["store_key"]
    # put the run where the previous checkout stored it, under its key
    old_path = Path(new).with_name(f"seed3-{old_key}.json")
    old_path.write_text(json.dumps({**res, "store_key": old_key}))
    shutil.move(new.replace(".json", ".npz"), old_path.with_suffix(".npz"))
    os.remove(new)
    np.savez(old_path.with_suffix(".shuffled.npz"), store_key=np.array(old_key),
             ndcg=np.ones(3))  # a cache keyed by run
    foreign = old_path.with_name("seed4-0123456789abcdef.json")
    foreign.write_text(json.dumps({**res, "store_key": "0123456789abcdef",
                                   "config": {**res["config"], "train": {**res["config"]["train"], "seed": 4}}}))
    out = RK.carry(tmp_path / "runs", prev, ["sasrec"])
    assert len(out["rekeyed"]) == 1 and out["foreign"] == [str(foreign.resolve())]
    assert not old_path.exists() and not old_path.with_suffix(".npz").exists()
    assert not old_path.with_suffix(".shuffled.npz").exists()
    with np.load(Path(new).with_suffix(".shuffled.npz")) as z:  # the companion moved, naming its new key
        assert str(z["store_key"]) == json.loads(open(new).read())["store_key"] and z["ndcg"].sum() == 3
    again = store.run("sasrec", "synthetic-tiny", seed=3, epochs=1)  # read back, not retrained
    assert again["rekeyed_from"] == old_key and again["result_path"] == new
    assert np.array_equal(again["per_user_test"]["ndcg@10"], r["per_user_test"]["ndcg@10"])
    assert RK.carry(tmp_path / "runs", prev, ["sasrec"])["current"] == [str(Path(new).resolve())]
