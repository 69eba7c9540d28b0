"""Dataset registry: one name -> one YAML file in ``mealrec/configs/datasets/``.

>>> from mealrec.data import get_dataset, dataset_names
>>> ds = get_dataset("synthetic-tiny")
>>> ds.stats()["users"]
200
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import CONFIG_ROOT, build_dataclass, load_yaml
from ..utils import MealRecError, sha256_arrays
from . import controls, extracted, microlens, synthetic
from .base import ItemFeatures, SequentialDataset, Split, k_core, leave_one_out, remap
from .features import placeholder_visual, text_features

__all__ = [
    "DatasetSpec",
    "ItemFeatures",
    "SequentialDataset",
    "Split",
    "dataset_names",
    "dataset_spec",
    "get_dataset",
    "k_core",
    "leave_one_out",
]

SOURCES = ("synthetic", "microlens", "control")


@dataclass
class DatasetSpec:
    source: str
    description: str = ""
    paper_name: str = ""  # the row of the paper's Table 1 this stands for, if any
    max_len: int = 10
    params: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    model_overrides: dict = field(default_factory=dict)


@dataclass
class MicroLensParams:
    max_user_id: int | None = None
    k_core: int = 4


def dataset_names() -> list[str]:
    return sorted(p.stem for p in (CONFIG_ROOT / "datasets").glob("*.yaml"))


@lru_cache(maxsize=None)
def dataset_spec(name: str) -> DatasetSpec:
    path = CONFIG_ROOT / "datasets" / f"{name}.yaml"
    if not path.exists():
        raise MealRecError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}")
    spec = build_dataclass(DatasetSpec, load_yaml(path), str(path))
    if spec.source not in SOURCES:
        raise MealRecError(f"{path}: source must be one of {SOURCES}, got {spec.source!r}")
    return spec


def _source_params(name: str, spec: DatasetSpec) -> Any:
    cls = {"synthetic": synthetic.SyntheticParams, "control": controls.ControlParams}.get(spec.source, MicroLensParams)
    return build_dataclass(cls, spec.params, f"{CONFIG_ROOT / 'datasets' / name}.yaml [params]")


#: Seed of the user sample drawn by ``get_dataset(..., max_users=N)``.
USER_SAMPLE_SEED = 0


def _sample_users(user_seqs: dict[int, list[int]], max_users: int | None) -> tuple[dict[int, list[int]], str]:
    """``user_seqs`` cut to a seeded sample of ``max_users`` users, and a line saying so ('' when uncut)."""
    if max_users is None or max_users >= len(user_seqs):
        return user_seqs, ""
    users = np.array(sorted(user_seqs), dtype=np.int64)
    keep = np.sort(np.random.default_rng(USER_SAMPLE_SEED).choice(users, size=max_users, replace=False))
    return ({int(u): user_seqs[int(u)] for u in keep},
            f"{max_users} of {len(users)} users (drawn with seed {USER_SAMPLE_SEED} after the k-core filter)")


def get_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    text_encoder: str = "auto",
    visual_noise: float = 0.0,
    progress: bool = True,
    features: str | os.PathLike = "auto",
    max_users: int | None = None,
) -> SequentialDataset:
    """Build dataset ``name`` (see :func:`dataset_names`).

    ``data_dir`` (or ``$MEALREC_DATA``) is where real data lives; synthetic datasets ignore it.
    ``visual_noise`` adds N(0, sigma^2) to the visual features at load time (Figure 5).
    ``features``: extracted video/text features for MicroLens (``"auto"``: use
    ``<data>/microlens-50k/features/{video,text}`` or ``$MEALREC_FEATURES`` when present, else
    placeholders; a directory; or ``"placeholder"``); see :mod:`mealrec.data.extracted`.
    Synthetic datasets always use their planted features. The metadata's
    ``visual_features`` and the features' ``info`` say which were used.
    ``max_users``: keep a sample of this many users (drawn with a fixed seed after the
    k-core filter; items then renumbered over what they saw), the `quick` profile's first
    look at MicroLens; the metadata's ``user_sample`` records it. None keeps every user.
    """
    spec = dataset_spec(name)
    params = _source_params(name, spec)
    if visual_noise < 0:
        raise MealRecError(f"visual_noise must be >= 0, got {visual_noise}")
    if max_users is not None and (isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 1):
        raise MealRecError(f"max_users must be a positive integer or None, got {max_users!r}")
    sources = extracted.ExtractedSources()
    if spec.source == "synthetic":
        if not (isinstance(features, str) and features in extracted.MODES):
            raise MealRecError(f"{name} is synthetic and generates its own features; `features` applies to MicroLens "
                               f"datasets only (got {str(features)!r}; use one of {extracted.MODES})")
        world = synthetic.generate(params)
        user_seqs = k_core(world.user_seqs, params.k_core) if params.k_core > 1 else world.user_seqs
        user_seqs, sample = _sample_users(user_seqs, max_users)
        seqs, user_ids, item_ids = remap(user_seqs)
        titles = [world.titles[i - 1] for i in item_ids]
        meta = {
            "origin": "synthetic (planted generator, mealrec.data.synthetic)",
            "interactions": "synthetic",
            "titles": "synthetic",
            "visual_features": "synthetic (planted temporal structure)",
            "generator_params": asdict(params),
        }

        def visual(ds: SequentialDataset):
            return synthetic.frames_for(world, item_ids)

    elif spec.source == "control":
        if not (isinstance(features, str) and features in extracted.MODES):
            raise MealRecError(f"{name} is a planted control and generates its own features; `features` applies to "
                               f"MicroLens datasets only (got {str(features)!r}; use one of {extracted.MODES})")
        world = controls.generate(params)
        user_seqs, sample = _sample_users(world.user_seqs, max_users)
        seqs, user_ids, item_ids = remap(user_seqs)
        titles = [world.titles[i - 1] for i in item_ids]
        meta = {
            "origin": f"positive control (planted, mealrec.data.controls, kind {params.kind!r})",
            "interactions": "synthetic",
            "titles": "synthetic (no topic)",
            "visual_features": "synthetic (planted: the answer lies in the frames)",
            "generator_params": asdict(params),
            "floor_and_ceiling": controls.floor_and_ceiling(params),
        }

        def visual(ds: SequentialDataset):
            return controls.frames_for(world, item_ids)

    else:
        folder = microlens.locate(data_dir)
        pairs = microlens.read_pairs(folder / microlens.PAIRS, max_user_id=params.max_user_id)
        user_seqs = k_core(pairs, params.k_core)
        if not user_seqs:
            raise MealRecError(f"{name}: no user survives {params.k_core}-core filtering")
        user_seqs, sample = _sample_users(user_seqs, max_users)
        seqs, user_ids, item_ids = remap(user_seqs)
        raw_titles = microlens.read_titles(folder / microlens.TITLES)
        titles, missing = microlens.titles_for(item_ids, raw_titles, str(folder / microlens.TITLES))
        sources = extracted.locate(features, folder)
        meta = {
            "origin": f"MicroLens-50K (Ni et al. 2023) from {folder}",
            "interactions": "real",
            "titles": "real",
            "visual_features": sources.describe_video() or "synthetic placeholder (seeded Gaussian, no video content)",
            "items_without_title": missing,
            "filter": asdict(params),
        }

        def visual(ds: SequentialDataset):
            if sources.video is None:
                return placeholder_visual(ds.n_items, ds.data_hash)
            frames, glob, n_missing = extracted.load_visual(sources.video, item_ids)
            ds.metadata["items_without_video"] = n_missing
            return frames, glob

    meta.update({"paper_name": spec.paper_name, "description": spec.description})
    if sample:
        meta["user_sample"] = sample

    def build_features(ds: SequentialDataset) -> ItemFeatures:
        frames, glob = visual(ds)
        if sources.text is not None and text_encoder == "auto":
            text, n_missing = extracted.load_text(sources.text, item_ids)
            enc = sources.text_encoder()
            ds.metadata["items_without_text"] = n_missing
        else:
            text, enc = text_features(titles, encoder=text_encoder, progress=progress)
        frames_t = torch.from_numpy(np.array(frames, dtype=np.float16))  # float16 to save memory
        glob_t = torch.from_numpy(np.asarray(glob, dtype=np.float32))
        if visual_noise > 0:  # Figure 5: Gaussian noise on the visual features, at load time
            g = torch.Generator().manual_seed(int(ds.data_hash[:8], 16))
            for s in range(1, frames_t.shape[0], 8192):
                chunk = frames_t[s : s + 8192].float()
                frames_t[s : s + 8192] = (chunk + visual_noise * torch.randn(chunk.shape, generator=g)).half()
            glob_t[1:] += visual_noise * torch.randn(glob_t[1:].shape, generator=g)
        info = {
            "text_encoder": enc,
            "visual": meta["visual_features"],
            "visual_noise": visual_noise,
            "text_hash": sha256_arrays(text)[:16],
        }
        return ItemFeatures(frames=frames_t, visual=glob_t, text=torch.from_numpy(np.asarray(text)), info=info)

    ds = SequentialDataset(
        name=name,
        seqs=seqs,
        n_items=len(item_ids) + 1,
        max_len=spec.max_len,
        metadata=meta,
        titles=titles,
        feature_builder=build_features,
    )
    ds.user_ids = user_ids
    ds.item_ids = item_ids
    return ds

