"""Video features: five frames at 1 fps from a video's centre, encoded by VideoMAE.

Paper: MealRec §5.1.3 — "we follow the frame extraction strategy in (Ni et al., 2023) by uniformly
sampling frames at 1 fps from the central portion of each video, yielding five frames per video.
These frames are encoded using the pre-trained VideoMAE (Tong et al., 2022) to obtain both
frame-level features and a global visual representation".

Reference code read: westlake-repl/MicroLens, ``Data Processing/generate_cover_frames.py`` (frame
sampling: an anchor at the middle frame, ``frame_no`` frames ``frame_interval`` apart around it,
short videos padded by repeating the first/last frame) and ``Data Processing/feature_extraction.py``
/ ``video_feature_extraction_(from_lmdb).py`` (``VideoMAEModel`` with ``num_frames=5``, features =
average of ``last_hidden_state`` over all tokens). This module is written from scratch.

Decoding (PyAV)
    Duration ``D`` comes from the video stream (else the container; else from a full decode).
    Sampling rule, with ``K = 5`` frames and ``fps = 1``:

    * ``D >= K / fps`` (5 s or longer): ``t_k = D/2 + (k - (K-1)/2) / fps``, ``k = 0..K-1`` — five
      instants one second apart, centred on the midpoint (``D/2 - 2 s .. D/2 + 2 s``).
    * ``D < K / fps`` (shorter than 5 s): the spacing shrinks to ``D/K``, i.e. ``t_k = (k + 1/2) D/K``,
      the centres of five equal segments. The two rules agree at ``D = 5 s``. When the video has
      fewer distinct frames than instants (a very short clip), neighbouring instants pick the same
      frame, so frames repeat — like MicroLens, which pads short videos by repeating edge frames.

    The frame taken for ``t_k`` is the one on screen at ``t_k``: the last frame whose presentation
    time is ``<= t_k`` (the first frame if ``t_k`` precedes it). Decoding seeks to the keyframe
    before ``t_0`` and stops after ``t_{K-1}``. If the stream ends before ``t_{K-1}`` (a truncated
    file whose header overstates its length), the video is decoded in full, ``D`` is taken from the
    frames actually decoded, and the instants are recomputed. Display rotation (phone videos) is
    applied. Each frame is resized (bilinear) so its short side is the model's ``image_size`` and
    centre-cropped square — the preprocessing of transformers' ``VideoMAEImageProcessor`` — then
    scaled to [0, 1] and normalised with the ``image_mean``/``image_std`` of the checkpoint's
    ``preprocessor_config.json`` (ImageNet's mean/std when it has none, as for a random-init model).

Encoding (transformers ``VideoMAEModel``)
    VideoMAE embeds *tubelets* of ``tubelet_size = 2`` frames x 16 x 16 pixels, so a 5-frame clip
    has only 2 temporal slots and drops its fifth frame (as MicroLens' ``num_frames=5`` does). We
    repeat each sampled frame ``tubelet_size`` times — the clip ``f1 f1 f2 f2 ... f5 f5`` with
    ``num_frames = 10`` — so tubelet ``k`` is exactly frame ``k``, and all tokens attend across all
    five frames. With ``H`` = ``last_hidden_state`` ``(B, K*P, d)`` (after the final LayerNorm of
    the checkpoint; ``P = (224/16)^2 = 196`` patches per tubelet):

    * frame feature   ``F[k] = mean_p H[k*P + p]``  -> ``(K, d_v)``, ``d_v = 768`` for videomae-base
    * global feature  ``v = mean over all K*P tokens`` (= the mean of the ``F[k]``) -> ``(d_v,)``,
      the same average pooling MicroLens uses for its video features.

    VideoMAE's position embeddings are fixed sinusoids, so ``num_frames = 10`` needs no new weights.

Departures from the reference:
    * The MicroLens script's ``frame_interval`` is counted in frames (default 1: five consecutive
      frames at the middle); we follow the MealRec paper's wording, one frame per second.
    * MicroLens resizes to 224x224 without keeping the aspect ratio and normalises twice (0.5/0.5,
      then the feature extractor); we keep the aspect ratio (short side 224, centre crop) and
      normalise once, as ``VideoMAEImageProcessor`` does.
    * Frames are repeated to fill tubelets (see above) instead of encoding a 5-frame clip whose
      last frame the tubelet embedding drops; this gives per-frame tokens for the frame features.

Storage: float16 chunks with an item-id index and the SHA-256 of every input video
(``mealrec.extract.store``). Bad inputs (unreadable, not a video, no video stream, zero decodable
frames) are listed in the report with the reason and skipped; they never stop the run.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import MealRecError, sha256_file
from .store import ChunkStore, natural_key

N_FRAMES = 5
FPS = 1.0
DEFAULT_MODEL = "MCG-NJU/videomae-base"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv")
FRAME_RULE = (
    "K frames 1/fps apart centred on the midpoint (t_k = D/2 + (k-(K-1)/2)/fps) when D >= K/fps, "
    "else centres of K equal segments (t_k = (k+1/2)D/K); frame on screen at t_k"
)
POOLING = (
    "frame k = mean of tubelet k's patch tokens (each frame repeated tubelet_size times); "
    "global = mean of all tokens"
)


class VideoSkipped(Exception):
    """A video that cannot be used; the message is the reason recorded in the report."""


# --------------------------------------------------------------------------- sampling
def sample_times(duration: float, n_frames: int = N_FRAMES, fps: float = FPS) -> tuple[np.ndarray, str]:
    """Sampling instants (seconds from the start) and the rule used: ``"1fps-centre"`` or ``"short-uniform"``."""
    if not (duration > 0) or not np.isfinite(duration):
        raise ValueError(f"duration must be positive, got {duration}")
    if fps <= 0 or n_frames < 1:
        raise ValueError("fps must be positive and n_frames >= 1")
    step = 1.0 / fps
    if duration >= n_frames * step:
        spacing, rule = step, "1fps-centre"
    else:
        spacing, rule = duration / n_frames, "short-uniform"
    return duration / 2 + (np.arange(n_frames) - (n_frames - 1) / 2) * spacing, rule


@dataclass
class DecodedVideo:
    frames: np.ndarray  # (K, S, S, 3) uint8, RGB
    times: np.ndarray  # (K,) sampling instants, s from the start
    frame_times: np.ndarray  # (K,) presentation times of the frames taken, s from the start
    duration: float
    duration_source: str  # "stream" | "container" | "decoded"
    rule: str
    n_decoded: int  # frames the codec decoded for this video (all passes)
    width: int
    height: int
    rotation: int
    notes: list[str] = field(default_factory=list)


def _to_rgb(frame: Any, size: int) -> np.ndarray:
    """Short side -> ``size`` (bilinear, display rotation applied), centre crop to ``size x size``."""
    w, h = frame.width, frame.height
    k = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4  # PyAV: degrees counterclockwise
    dw, dh = (h, w) if k % 2 else (w, h)  # displayed size
    s = size / min(dw, dh)
    tw, th = max(size, round(dw * s)), max(size, round(dh * s))
    rw, rh = (th, tw) if k % 2 else (tw, th)  # size before rotation
    arr = frame.to_ndarray(width=rw, height=rh, format="rgb24", interpolation="BILINEAR")
    if k:
        arr = np.rot90(arr, k)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return np.ascontiguousarray(arr[top:top + size, left:left + size])


def _scan(container: Any, stream: Any, targets: np.ndarray, seek: bool) -> tuple[list, float | None, int, str | None]:
    """Decode forward, taking for each target the frame on screen at that time.

    Returns (picks as (time, frame) or None, last frame time, frames decoded, decode error or None).
    Times are absolute stream seconds; frames without a timestamp are timed by index/average rate
    (only on the no-seek path).
    """
    import av

    rate = float(stream.average_rate) if stream.average_rate else 25.0
    picks: list = [None] * len(targets)
    j, n, prev, last_t, err = 0, 0, None, None, None
    if seek:
        container.seek(max(0, int(targets[0] / stream.time_base)), stream=stream, backward=True, any_frame=False)
    try:
        for frame in container.decode(stream):
            t = frame.time
            if t is None:
                if seek:
                    return [None] * len(targets), None, n, "frames without timestamps"
                t = n / rate
            n += 1
            while j < len(targets) and t > targets[j] + 1e-6:
                picks[j] = prev if prev is not None else (t, frame)
                j += 1
            prev, last_t = (t, frame), t
            if j == len(targets):
                break
    except av.error.FFmpegError as e:  # a damaged stream: keep what was decoded
        err = f"{type(e).__name__}: {e}"
    while j < len(targets) and prev is not None:  # targets after the last decoded frame
        picks[j] = prev
        j += 1
    return picks, last_t, n, err


def decode_video(path: str | os.PathLike, n_frames: int = N_FRAMES, fps: float = FPS, size: int = 224,
                 threads: int = 0) -> DecodedVideo:
    """Decode the ``n_frames`` sampled frames of one video (see the module docstring for the rule).

    ``threads``: FFmpeg decoding threads (0 = FFmpeg's choice). Raises :class:`VideoSkipped` with
    the reason for a file that is not a readable video or yields no frame.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        raise VideoSkipped(f"cannot open as a video ({type(e).__name__}: {e})") from None
    with container:
        if not container.streams.video:
            raise VideoSkipped("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = int(threads)
        tb = stream.time_base
        start = float(stream.start_time * tb) if (stream.start_time is not None and tb) else 0.0
        duration, source = None, None
        if stream.duration and tb:
            duration, source = float(stream.duration * tb), "stream"
        elif container.duration:
            duration, source = container.duration / av.time_base, "container"
        notes: list[str] = []
        n_total = 0
        picks = None
        if duration and duration > 0 and tb:
            times, rule = sample_times(duration, n_frames, fps)
            try:
                picks, last_t, n, err = _scan(container, stream, start + times, seek=True)
            except av.error.FFmpegError as e:
                picks, last_t, n, err = [None], None, 0, f"seek failed: {e}"
            n_total += n
            frame_dur = 1.0 / float(stream.average_rate) if stream.average_rate else 0.1
            ends_early = last_t is not None and last_t < start + times[-1] - 1.5 * frame_dur
            if err:
                notes.append(f"decode error after seeking ({err})")
            if any(p is None for p in picks) or ends_early:
                if ends_early:
                    notes.append(f"stream ends at {last_t - start:.2f} s, before its stated duration {duration:.2f} s")
                picks = None
        if picks is None:  # no usable duration, or the seek path failed: decode everything once for timing
            container.seek(0)
            all_t, _, n, err = _scan(container, stream, np.array([np.inf]), seek=False)
            n_total += n
            if err:
                notes.append(f"decode error ({err})")
            if n == 0 or all_t[0] is None:
                raise VideoSkipped("zero frames decoded" + (f" ({err})" if err else ""))
            last_t = all_t[0][0]
            rate = float(stream.average_rate) if stream.average_rate else 25.0
            first_t = start
            duration, source = max(last_t - first_t + 1.0 / rate, 1e-3), "decoded"
            times, rule = sample_times(duration, n_frames, fps)
            container.seek(0)
            picks, _, n, err2 = _scan(container, stream, first_t + times, seek=False)
            n_total += n
            if any(p is None for p in picks):
                raise VideoSkipped("zero frames decoded" + (f" ({err2})" if err2 else ""))
        frames = np.stack([_to_rgb(f, size) for _, f in picks])
        first = picks[0][1]
        return DecodedVideo(
            frames=frames, times=times, frame_times=np.array([t - start for t, _ in picks]),
            duration=float(duration), duration_source=source, rule=rule, n_decoded=n_total,
            width=int(first.width), height=int(first.height), rotation=int(getattr(first, "rotation", 0) or 0),
            notes=notes,
        )


def list_videos(videos_dir: str | os.PathLike) -> tuple[list[tuple[str, Path]], list[dict]]:
    """Video files of a directory (by extension, not recursive), as ``(item_id = file stem, path)``
    sorted by item id; and skip records for duplicate stems (``a.mp4`` beside ``a.mkv``: the
    extension earlier in ``VIDEO_EXTENSIONS`` is used)."""
    d = Path(videos_dir)
    if not d.is_dir():
        raise MealRecError(f"--videos {d}: not a directory")
    by_id: dict[str, list[Path]] = {}
    for p in sorted(d.iterdir()):
        if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
            by_id.setdefault(p.stem, []).append(p)
    items, skipped = [], []
    for item_id in sorted(by_id, key=natural_key):
        paths = sorted(by_id[item_id], key=lambda q: (VIDEO_EXTENSIONS.index(q.suffix.lower()), q.name))
        items.append((item_id, paths[0]))
        for p in paths[1:]:
            skipped.append({"item_id": item_id, "path": str(p), "sha256": None,
                            "reason": f"duplicate item id: {paths[0].name} is used"})
    return items, skipped


# --------------------------------------------------------------------------- model
def tiny_videomae_config(image_size: int = 32) -> dict:
    """A tiny randomly initialisable VideoMAE architecture for tests and smoke runs (no weights needed)."""
    return dict(image_size=image_size, patch_size=16, num_channels=3, tubelet_size=2, hidden_size=32,
                num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, use_mean_pooling=False)


def missing_weights_message(model_path: str | None, detail: str = "") -> str:
    where = f"--model-path {model_path}" if model_path else f"the Hugging Face cache ({_hf_cache()})"
    return (
        f"VideoMAE weights '{DEFAULT_MODEL}' not found in {where}{': ' + detail if detail else ''}. "
        "Feature extraction never downloads. To get them (about 380 MB; licence CC-BY-NC-4.0), on a machine "
        f"with internet run\n    hf download {DEFAULT_MODEL} --local-dir ./videomae-base\n"
        "(the `hf` command comes with `pip install huggingface_hub`), copy the folder here and pass "
        "--model-path ./videomae-base (Python: model_path='./videomae-base'). The folder must hold config.json "
        "and model.safetensors or pytorch_model.bin. Alternatively, fill the cache once with internet: "
        f"python -c \"from transformers import VideoMAEModel; VideoMAEModel.from_pretrained('{DEFAULT_MODEL}')\""
    )


def _hf_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - hub missing
        return "~/.cache/huggingface/hub"


def _find_file(src: str, name: str) -> Path | None:
    """``name`` inside a local model folder, or in the Hugging Face cache entry of repo ``src``."""
    if Path(src).is_dir():
        p = Path(src) / name
        return p if p.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(src, name)
    except Exception:
        return None
    return Path(hit) if isinstance(hit, str) and Path(hit).is_file() else None


def _weights_sha256(src: str) -> str | None:
    """SHA-256 of the checkpoint file: identifies the weights (not the path they were loaded from)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        p = _find_file(src, name)
        if p is not None:
            return sha256_file(p)
    return None


class VideoMAEEncoder:
    """``VideoMAEModel`` wrapped to map sampled frames ``(B, K, S, S, 3)`` uint8 to
    ``frames (B, K, d)`` and ``global (B, d)`` float32.

    ``config`` (a dict of ``VideoMAEConfig`` fields, or a config) builds a randomly initialised
    model from ``seed`` — for tests and timing only, labelled so in ``identity``; otherwise the
    pretrained weights load from ``model_path`` or the Hugging Face cache, offline.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, config: Any = None, n_frames: int = N_FRAMES,
                 seed: int = 0, device: str = "cpu"):
        import torch
        from transformers import VideoMAEConfig, VideoMAEModel

        self.n_frames = n_frames
        self.device = torch.device(device)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if config is not None:
            cfg = VideoMAEConfig(**config) if isinstance(config, dict) else VideoMAEConfig(**config.to_dict())
            cfg.num_frames = n_frames * cfg.tubelet_size
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = VideoMAEModel(cfg)
            cfg_json = json.dumps(
                {k: v for k, v in sorted(cfg.to_dict().items())
                 if not k.startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")},
                sort_keys=True, default=str,
            )
            self.identity = {"source": "random-init (NOT pretrained; for tests/timing)", "seed": seed,
                             "config_sha256": hashlib.sha256(cfg_json.encode()).hexdigest()}
        else:
            src = str(model_path) if model_path is not None else DEFAULT_MODEL
            if model_path is not None and not Path(model_path).is_dir():
                raise MealRecError(missing_weights_message(str(model_path), "no such directory"))
            try:
                model = VideoMAEModel.from_pretrained(src, local_files_only=True, num_frames=n_frames * 2)
            except (OSError, ValueError) as e:
                raise MealRecError(missing_weights_message(None if model_path is None else str(model_path),
                                                           str(e).splitlines()[0][:200].rstrip("."))) from e
            cfg = model.config
            if cfg.tubelet_size != 2:  # num_frames must be K * tubelet_size
                cfg.num_frames = n_frames * cfg.tubelet_size
                model = VideoMAEModel.from_pretrained(src, local_files_only=True, num_frames=cfg.num_frames)
            pp = _find_file(src, "preprocessor_config.json")
            if pp is not None:
                pc = json.loads(pp.read_text(encoding="utf-8"))
                mean, std = tuple(pc.get("image_mean", mean)), tuple(pc.get("image_std", std))
            self.identity = {"source": "pretrained", "weights_sha256": _weights_sha256(src)}
        self.source = "random-init" if config is not None else str(model_path or DEFAULT_MODEL)
        self.model = model.to(self.device).eval()
        self.tubelet = int(cfg.tubelet_size)
        self.image_size = int(cfg.image_size)
        self.patches = (self.image_size // int(cfg.patch_size)) ** 2
        self.dim = int(cfg.hidden_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 1, 3, 1, 1)
        self.identity.update({"architecture": "VideoMAEModel", "hidden_size": self.dim, "image_size": self.image_size,
                              "tubelet_size": self.tubelet, "num_frames_fed": n_frames * self.tubelet,
                              "image_mean": list(mean), "image_std": list(std)})

    def encode(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        b, k = frames.shape[:2]
        if k != self.n_frames or frames.shape[2] != self.image_size or frames.shape[3] != self.image_size:
            raise ValueError(
                f"frames {frames.shape} do not match (B, {self.n_frames}, {self.image_size}, {self.image_size}, 3)"
            )
        with torch.inference_mode():
            # (B, K, 3, S, S)
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 1, 4, 2, 3).float().div_(255.0)
            x = ((x - self.mean) / self.std).repeat_interleave(self.tubelet, dim=1)  # (B, K*t, 3, S, S)
            h = self.model(pixel_values=x.to(self.device)).last_hidden_state  # (B, K*P, d)
            f = h.reshape(b, k, self.patches, self.dim).mean(dim=2)  # (B, K, d)
            g = h.mean(dim=1)  # (B, d)
        return f.float().cpu().numpy(), g.float().cpu().numpy()


# --------------------------------------------------------------------------- the run
def extract_videos(
    videos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_path: str | os.PathLike | None = None,
    batch_size: int = 8,
    config: Any = None,
    progress: bool = True,
    *,
    chunk_size: int = 256,
    n_frames: int = N_FRAMES,
    fps: float = FPS,
    device: str = "cpu",
    decode_threads: int = 0,
    seed: int = 0,
    limit: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Extract VideoMAE frame and global features for every video file in ``videos_dir``.

    Writes float16 chunks of ``chunk_size`` videos to ``out_dir`` (resuming where a previous run
    stopped), and ``report.json``; returns the report: counts, the skipped videos with reasons (this
    run's and earlier runs'), and timings (``decode_fps`` = sampled frames decoded per second,
    ``codec_fps`` = frames the codec decoded per second, ``encode_fps`` = sampled frames encoded per
    second). ``config``: a ``VideoMAEConfig`` field dict for a randomly initialised model (tests,
    timing; e.g. :func:`tiny_videomae_config`); ``None`` loads ``MCG-NJU/videomae-base`` offline from
    ``model_path`` or the Hugging Face cache. ``limit``: at most this many new videos this run.
    """
    from tqdm.auto import tqdm

    if batch_size < 1 or chunk_size < 1:
        raise MealRecError("batch_size and chunk_size must be >= 1")
    t_start = time.perf_counter()
    videos, dup_skips = list_videos(videos_dir)
    encoder = VideoMAEEncoder(model_path=model_path, config=config, n_frames=n_frames, seed=seed, device=device)
    settings = {
        "n_frames": n_frames, "fps": fps, "frame_rule": FRAME_RULE, "pooling": POOLING,
        "dim": encoder.dim, "image_size": encoder.image_size, "encoder": encoder.identity,
    }
    store = ChunkStore(out_dir, "video", settings, overwrite=overwrite)
    done, old_skips = store.done()
    old_skip_paths = {s.get("path") for s in old_skips}  # by path: a duplicate's record shares its id with a kept file
    remaining = [(i, p) for i, p in videos if i not in done and str(p) not in old_skip_paths]
    todo = remaining if limit is None else remaining[: max(0, int(limit))]
    resumed = len(videos) - len(remaining)
    new_skips = [s for s in dup_skips if s["path"] not in old_skip_paths]
    stats = {"decode_s": 0.0, "encode_s": 0.0, "hash_s": 0.0, "codec_frames": 0, "sampled_frames": 0,
             "encoded_videos": 0, "chunks": 0}
    bar = tqdm(total=len(videos), initial=resumed, unit="video", desc="videos", disable=not progress, file=sys.stderr)
    n_run_skipped = 0

    for c0 in range(0, len(todo), chunk_size):
        chunk = todo[c0:c0 + chunk_size]
        ids, shas, metas, feats_f, feats_g, skipped = [], [], {}, [], [], []
        if c0 == 0 and new_skips:
            skipped += new_skips
        pending: list[tuple[str, str, DecodedVideo]] = []

        def flush() -> None:
            if not pending:
                return
            t0 = time.perf_counter()
            f, g = encoder.encode(np.stack([d.frames for _, _, d in pending]))
            stats["encode_s"] += time.perf_counter() - t0
            for (item_id, sha, d), fi, gi in zip(pending, f, g):
                ids.append(item_id)
                shas.append(sha)
                feats_f.append(fi)
                feats_g.append(gi)
                metas[item_id] = {
                    "duration_s": round(d.duration, 4), "duration_source": d.duration_source, "rule": d.rule,
                    "times_s": [round(float(x), 4) for x in d.times],
                    "frame_times_s": [round(float(x), 4) for x in d.frame_times],
                    "width": d.width, "height": d.height, "rotation": d.rotation, "notes": d.notes,
                }
            stats["encoded_videos"] += len(pending)
            pending.clear()

        for item_id, path in chunk:
            t0 = time.perf_counter()
            try:
                sha = sha256_file(path)
            except OSError as e:
                skipped.append({"item_id": item_id, "path": str(path), "sha256": None,
                                "reason": f"unreadable file ({type(e).__name__}: {e})"})
                bar.update(1)
                continue
            finally:
                stats["hash_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                d = decode_video(path, n_frames=n_frames, fps=fps, size=encoder.image_size, threads=decode_threads)
            except VideoSkipped as e:
                skipped.append({"item_id": item_id, "path": str(path), "sha256": sha, "reason": str(e)})
                bar.update(1)
                continue
            except Exception as e:  # never let one file stop the run
                skipped.append({"item_id": item_id, "path": str(path), "sha256": sha,
                                "reason": f"unexpected decoding failure ({type(e).__name__}: {e})"})
                bar.update(1)
                continue
            finally:
                stats["decode_s"] += time.perf_counter() - t0
            stats["codec_frames"] += d.n_decoded
            stats["sampled_frames"] += n_frames
            pending.append((item_id, sha, d))
            if len(pending) >= batch_size:
                flush()
            bar.update(1)
            bar.set_postfix(skipped=n_run_skipped + len(skipped))
        flush()
        n_run_skipped += len(skipped)
        store.write_chunk(
            ids, np.stack(feats_g) if feats_g else np.zeros((0, encoder.dim), np.float32), shas, metas, skipped,
            frames=np.stack(feats_f) if feats_f else np.zeros((0, n_frames, encoder.dim), np.float32),
        )
        stats["chunks"] += 1
    if not todo and new_skips:  # nothing new to decode, but duplicates to record
        store.write_chunk([], np.zeros((0, encoder.dim), np.float32), [], {}, new_skips,
                          frames=np.zeros((0, n_frames, encoder.dim), np.float32))
        n_run_skipped += len(new_skips)
    bar.close()

    done_after, all_skips = store.done()
    report = {
        "kind": "video", "videos_dir": str(videos_dir), "out_dir": str(out_dir),
        "inputs": len(videos) + len(dup_skips), "stored": len(done_after), "skipped": len(all_skips),
        "this_run": {"encoded": stats["encoded_videos"], "skipped": n_run_skipped, "already_done": resumed,
                     "chunks_written": stats["chunks"], "remaining": len(videos) - resumed - len(todo)},
        "skipped_videos": all_skips,
        "timing": {
            "wall_s": round(time.perf_counter() - t_start, 3),
            "hash_s": round(stats["hash_s"], 3), "decode_s": round(stats["decode_s"], 3),
            "encode_s": round(stats["encode_s"], 3),
            "codec_frames": stats["codec_frames"], "sampled_frames": stats["sampled_frames"],
            "decode_fps": round(stats["sampled_frames"] / stats["decode_s"], 3) if stats["decode_s"] else None,
            "codec_fps": round(stats["codec_frames"] / stats["decode_s"], 3) if stats["decode_s"] else None,
            "encode_fps": (
                round(stats["encoded_videos"] * n_frames / stats["encode_s"], 3) if stats["encode_s"] else None
            ),
            "device": device, "batch_size": batch_size,
        },
        "encoder": encoder.identity, "model_source": encoder.source, "settings": settings,
    }
    store.write_report(report)
    return report
