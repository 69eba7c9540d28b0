"""Real item features from raw data: videos -> VideoMAE frame + global features, titles -> MiniLM/BERT/GloVe.

>>> from mealrec.extract import extract_videos, extract_titles, load_extracted   # doctest: +SKIP
>>> report = extract_videos("videos/", "features/video")        # MCG-NJU/videomae-base, offline
>>> ids, frames, glob, meta = load_extracted("features/video")   # (N,), (N,5,768), (N,768) float16

Command line (wired into ``mealrec`` by :func:`add_features_parser`)::

    mealrec features video --videos DIR --out DIR [--model-path DIR] [--batch-size 8] ...
    mealrec features text  --titles FILE --encoder {minilm,bert,glove,hashed} --out DIR [--model-path P]

Modules: :mod:`.video` (decoding with PyAV, the 1 fps central sampling rule, VideoMAE encoding),
:mod:`.text` (title encoders), :mod:`.store` (the chunked, resumable float16 format and its reader).
Nothing here imports PyAV, torch or transformers until a function needs them.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_features_parser", "extract_titles", "extract_videos", "load_extracted"]


def extract_videos(*args: Any, **kwargs: Any) -> dict:
    from .video import extract_videos as f

    return f(*args, **kwargs)


def extract_titles(*args: Any, **kwargs: Any) -> dict:
    from .text import extract_titles as f

    return f(*args, **kwargs)


def load_extracted(out_dir):  # noqa: ANN001, ANN201 - documented in store.load_extracted
    from .store import load_extracted as f

    return f(out_dir)


extract_videos.__doc__ = "See :func:`mealrec.extract.video.extract_videos`."
extract_titles.__doc__ = "See :func:`mealrec.extract.text.extract_titles`."
load_extracted.__doc__ = "See :func:`mealrec.extract.store.load_extracted`."


def _summary(report: dict) -> str:
    r = report["this_run"]
    lines = [
        f"{report['kind']} features in {report['out_dir']}: {report['stored']:,} stored, {report['skipped']:,} skipped "
        f"(this run: {r['encoded']:,} encoded, {r.get('skipped', 0):,} skipped, {r['already_done']:,} already done, "
        f"{r['remaining']:,} left)",
    ]
    for s in report.get("skipped_videos", report.get("skipped_rows", []))[:20]:
        lines.append(f"  skipped {s.get('path') or s.get('item_id')}: {s['reason']}")
    if report["skipped"] > 20:
        lines.append(f"  ... and {report['skipped'] - 20:,} more (see report.json)")
    t = report["timing"]
    if report["kind"] == "video" and t.get("decode_fps"):
        lines.append(f"decode {t['decode_fps']:.1f} sampled frames/s ({t['codec_fps']:.1f} codec frames/s), "
                     f"encode {t['encode_fps'] or 0:.1f} frames/s, wall {t['wall_s']:.1f} s")
    lines.append(f"report: {report['out_dir']}/report.json")
    return "\n".join(lines)


def _set_threads(n: int) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def cmd_features_video(args: argparse.Namespace) -> int:
    from .video import extract_videos as run, tiny_videomae_config

    _set_threads(args.threads)
    config = None
    if args.random_init == "tiny":
        config = tiny_videomae_config()
    elif args.random_init == "base":
        config = {}  # VideoMAEConfig defaults = the videomae-base architecture
    report = run(
        args.videos, args.out, model_path=args.model_path, batch_size=args.batch_size, config=config,
        progress=not args.quiet, chunk_size=args.chunk_size, fps=args.fps, device=args.device,
        decode_threads=args.decode_threads, limit=args.limit, overwrite=args.overwrite,
    )
    print(json.dumps(report, indent=2) if args.json else _summary(report))
    return 0 if report["stored"] or not report["inputs"] else 1


def cmd_features_text(args: argparse.Namespace) -> int:
    from .text import extract_titles as run

    _set_threads(args.threads)
    report = run(
        args.titles, args.out, encoder=args.encoder, model_path=args.model_path, batch_size=args.batch_size,
        progress=not args.quiet, chunk_size=args.chunk_size, pooling=args.pooling, device=args.device,
        limit=args.limit, overwrite=args.overwrite,
    )
    print(json.dumps(report, indent=2) if args.json else _summary(report))
    return 0


def add_features_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``features video`` and ``features text`` to a ``mealrec`` sub-command parser.

    In ``mealrec/cli.py``'s ``build_parser``: ``from .extract import add_features_parser`` and
    ``add_features_parser(sub)``. Handlers set ``func`` and raise ``MealRecError`` on bad input.
    """
    fp = subparsers.add_parser("features", help="extract real item features (VideoMAE video, MiniLM/BERT/GloVe titles)")
    fsub = fp.add_subparsers(dest="features_command", required=True)

    v = fsub.add_parser("video",
                        help="videos -> 5 frames at 1 fps from the centre -> VideoMAE frame [5,d] + global [d]")
    v.add_argument("--videos", required=True,
                   help="folder of video files; the item id is the file name without extension")
    v.add_argument("--out", required=True,
                   help="output folder (chunked float16 .npz + manifest.json + report.json); reruns resume")
    v.add_argument("--model-path",
                   help="local folder of MCG-NJU/videomae-base (default: the Hugging Face cache, offline)")
    v.add_argument("--random-init", choices=["tiny", "base"],
                   help="randomly initialised VideoMAE instead of the weights (tests / timing only; NOT real features)")
    v.add_argument("--batch-size", type=int, default=8, help="videos per VideoMAE forward pass")
    v.add_argument("--chunk-size", type=int, default=256, help="videos per output chunk (the unit of resumption)")
    v.add_argument("--fps", type=float, default=1.0, help="sampling rate around the centre (the paper: 1)")
    v.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    v.add_argument("--decode-threads", type=int, default=0, help="FFmpeg decoding threads (0 = FFmpeg's choice)")
    v.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    v.add_argument("--limit", type=int, help="encode at most this many new videos in this run")
    v.add_argument("--overwrite", action="store_true", help="delete features already in --out and start over")
    v.add_argument("--json", action="store_true", help="print the full report as JSON")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_features_video)

    t = fsub.add_parser("text", help="titles -> MiniLM / BERT / GloVe embeddings, same storage format")
    t.add_argument("--titles", required=True,
                   help="CSV (TSV for .tsv) with header item,title (as MicroLens-50k_titles.csv)")
    t.add_argument("--encoder", required=True, choices=["minilm", "bert", "glove", "hashed"])
    t.add_argument("--out", required=True, help="output folder; reruns resume")
    t.add_argument("--model-path",
                   help="bert: checkpoint folder; glove: .txt vectors file; "
                   "minilm: optional sentence-transformers folder")
    t.add_argument("--pooling", default="mean", choices=["mean", "cls"], help="bert only")
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--chunk-size", type=int, default=4096, help="titles per output chunk")
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    t.add_argument("--limit", type=int, help="encode at most this many new titles in this run")
    t.add_argument("--overwrite", action="store_true")
    t.add_argument("--json", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_features_text)
    return fp

