"""A content-addressed store of training runs, so that reproduction is resumable.

Every run is keyed by what determines its metrics: the model, the resolved configuration
(model and training settings, seed), the visual noise, what the model is fed (the dataset's data
hash, its titles and text encoder, a hash of its visual feature tensors and its ``max_len``), and
the declared versions of the math it executes (:func:`mealrec.versions.model_versions`: the core's
and each model class's). Source code is not keyed: a refactor that changes no number keeps every
stored run, and the golden ledger (:mod:`mealrec.golden`, checked by the tests) catches a change of
the math made without a version bump. A run whose key is already in the store is read back instead
of trained again; a change to any of those inputs trains it anew. Results are written atomically
(temp file + rename), so an interrupted run leaves nothing half-written; a stored result that cannot
be read (truncated, a merge conflict, a Git LFS pointer) is reported, moved aside to
``<name>.corrupt`` and trained anew (:meth:`RunStore.read_stored`).

Layout: ``<root>/<dataset>/<model>/<tag>seed<seed>-<key>.json`` with the per-user test
metrics in a ``.npz`` beside it (both meant to be committed) and the checkpoint in a
``.pt`` (not committed; see ``.gitignore``).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..data import get_dataset
from ..experiments import run_config, run_in_subprocess
from ..models import build_model
from ..trainer import train
from ..integrity import CorruptFileError, cpu_info, read_result
from ..utils import MealRecError, seed_everything, sha256_arrays, write_json_atomic
from ..versions import model_versions
from .profiles import get_profile

PACKAGE = Path(__file__).resolve().parent.parent
#: Key scheme (3: declared versions; 2 hashed the source of the core and model modules, see rekey.py).
KEY_SCHEME = 3
#: Set to 1 around a rendered notebook: its run stores read and never train (see RunStore.train).
RENDER_ONLY_ENV = "MEALREC_RENDER_ONLY"
#: Set inside a Ray task (:mod:`.cluster`) to its scratch folder: a store elsewhere refuses to train.
WORKER_SCRATCH_ENV = "MEALREC_WORKER_SCRATCH"
#: Training settings that do not change metrics (evaluation is batch-size invariant).
_NOT_KEYED = ("num_threads", "eval_batch_size", "device")


@lru_cache(maxsize=None)
def _normalised_source_hash(path: Path) -> str:
    """Hash of a module's syntax tree without docstrings (comments never reach the tree)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def keyed_config(run) -> dict:
    """A run's resolved configuration without the settings that do not change metrics."""
    cfg = run.to_dict()
    cfg.pop("sources")
    for k in _NOT_KEYED:
        cfg["train"].pop(k)
    return cfg


def digest(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_identity(ds) -> dict[str, Any]:
    """What a dataset feeds a model, for the run key: interactions (``data_hash``), the split
    window ``max_len``, the titles and text encoder, and the visual feature tensors
    (frames and global vectors, noise included) as a hash of their bytes. Text features are
    keyed by titles + encoder rather than by their bytes, whose last bits can vary with the
    BLAS build and thread count of the machine that encoded them (extracted text, read from
    disk, is keyed by its bytes as well)."""
    feats = ds.features()
    ident = {
        "data_hash": ds.data_hash,
        "max_len": int(ds.max_len),
        "titles": hashlib.sha256("\x1e".join(ds.titles).encode("utf-8")).hexdigest()[:16],
        "text_encoder": feats.info["text_encoder"],
        "visual": sha256_arrays(feats.frames.numpy(), feats.visual.numpy())[:16],
    }
    if str(ident["text_encoder"]).startswith("extracted:"):  # read from disk: its bytes are stable
        ident["text"] = feats.info["text_hash"]
    return ident


def library_source_hash() -> str:
    """Hash of every module and config file of the library (for the notebook runner)."""
    h = hashlib.sha256()
    for f in sorted(PACKAGE.rglob("*")):
        if f.suffix == ".py":
            h.update(str(f.relative_to(PACKAGE)).encode() + _normalised_source_hash(f).encode())
        elif f.suffix == ".yaml":
            h.update(str(f.relative_to(PACKAGE)).encode() + f.read_bytes())
    return h.hexdigest()


def _tag(overrides: dict[str, Any], visual_noise: float) -> str:
    parts = [f"{k}={v}" for k, v in sorted(overrides.items())]
    if visual_noise:
        parts.append(f"noise={visual_noise:g}")
    return "".join(c if c.isalnum() or c in "=.-_" else "_" for c in ",".join(parts)) + ("-" if parts else "")


def _move_aside(path: Path) -> Path | None:
    """Rename ``path`` to ``<name>.corrupt`` (replacing one there); None if ``path`` is gone."""
    dest = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, dest)
    except FileNotFoundError:  # absent, or moved aside by a concurrent reader
        return None
    return dest


class MissingRunError(MealRecError):
    """A run that is not stored, asked of a store that does not train (rendering)."""


class RunStore:
    """Train-or-load access to runs under ``root``.

    >>> store = RunStore("runs", progress=False)                      # doctest: +SKIP
    >>> r = store.run("sasrec", "synthetic-tiny", seed=1, epochs=2)   # doctest: +SKIP
    >>> r["test"]["ndcg@10"], r["per_user_test"]["ndcg@10"].shape      # doctest: +SKIP
    """

    def __init__(self, root: str | Path, data_dir: str | None = None, device: str = "cpu",
                 threads: int = 0, progress: bool = True, profile: str | None = None, train: bool | None = None):
        self.root = Path(root)
        #: Whether a missing run is trained (True) or refused with :class:`MissingRunError`, reading a
        #: run made by older code when there is one (False: rendering). Default: False when
        #: ``$MEALREC_RENDER_ONLY`` is 1 (set by the runner around a notebook it renders), else True.
        self.train = os.environ.get(RENDER_ONLY_ENV) != "1" if train is None else train
        self.data_dir = data_dir
        #: Name of the profile whose datasets this store opens: a profile may cut a dataset to a
        #: sample of users (``Profile.max_users``, the `quick` profile on MicroLens). None: whole datasets.
        self.profile = profile
        self.device = device
        self.threads = threads
        self.progress = progress
        self._datasets: dict[tuple[str, float], Any] = {}
        self._identities: dict[tuple[str, float], dict] = {}

    def dataset(self, name: str, visual_noise: float = 0.0):
        key = (name, float(visual_noise))
        if key not in self._datasets:
            self._datasets[key] = get_dataset(name, data_dir=self.data_dir, visual_noise=visual_noise,
                                              progress=self.progress, max_users=self.max_users(name))
        return self._datasets[key]

    def max_users(self, name: str) -> int | None:
        """The user sample the store's profile cuts dataset ``name`` to (None: every user)."""
        return get_profile(self.profile, name).max_users if self.profile else None

    def dataset_identity(self, name: str, visual_noise: float = 0.0) -> dict[str, Any]:
        key = (name, float(visual_noise))
        if key not in self._identities:
            self._identities[key] = dataset_identity(self.dataset(name, visual_noise))
        return self._identities[key]

    def _resolve(self, model: str, dataset: str, seed: int, epochs: int, patience: int | None,
                 overrides: dict[str, Any], visual_noise: float) -> tuple[Any, str, Path, dict]:
        default = run_config(model, dataset).model_config
        overrides = {k: v for k, v in overrides.items() if getattr(default, k, object()) != v}  # same run, same file
        train_over: dict[str, Any] = {"seed": seed, "epochs": epochs, "device": self.device}
        if patience is not None:
            train_over["patience"] = patience
        if self.threads:
            train_over["num_threads"] = self.threads
        run = run_config(model, dataset, train_overrides=train_over, model_overrides=overrides)
        ident = {
            "scheme": KEY_SCHEME,
            "config": keyed_config(run),
            "visual_noise": float(visual_noise),
            "dataset": self.dataset_identity(dataset, visual_noise),
            "versions": model_versions(model),
        }
        key = digest(ident)
        path = self.root / dataset / model / f"{_tag(overrides, visual_noise)}seed{seed}-{key}.json"
        return run, key, path, overrides

    def path(self, model: str, dataset: str, seed: int = 2020, epochs: int = 200, patience: int | None = None,
             overrides: dict[str, Any] | None = None, visual_noise: float = 0.0) -> Path:
        """Where the run's result lives (whether or not it exists yet)."""
        return self._resolve(model, dataset, seed, epochs, patience, dict(overrides or {}), visual_noise)[2]

    def run(self, model: str, dataset: str, seed: int = 2020, epochs: int = 200, patience: int | None = None,
            overrides: dict[str, Any] | None = None, visual_noise: float = 0.0, isolate: bool = False) -> dict:
        """The result of one run (its JSON plus ``per_user_test``), trained only if it is not stored.

        ``overrides``: model settings (as ``--set model.KEY=VALUE``). ``isolate``: train in a
        fresh process, so that its peak memory is that model's alone (Table 3)."""
        run, key, path, overrides = self._resolve(model, dataset, seed, epochs, patience, dict(overrides or {}),
                                                  visual_noise)
        res = self.read_stored(path)
        if res is not None and res.get("store_key") == key and "per_user_test" in res:
            res["result_path"] = str(path)
            return res
        if not self.train:
            older = self._older(run, path, key)
            if older is None:
                raise MissingRunError(
                    f"{model} {_tag(overrides, visual_noise).rstrip('-') or 'default'} seed {seed} on {dataset} is "
                    f"not stored in {self.root} (rendering never trains): `mealrec reproduce --train-missing` "
                    "trains it")
            res = self.read_stored(older)
            res["result_path"] = str(older)
            created = res.get("environment", {}).get("created")
            res["older_code"] = {"store_key": res.get("store_key"), "created": created}
            return res
        self._refuse_worker_writes()
        if isolate:
            sets = [f"model.{k}={json.dumps(v)}" for k, v in overrides.items()]
            sets += [f"train.{k}={json.dumps(v)}"
                     for k, v in (("patience", run.train.patience), ("num_threads", run.train.num_threads))]
            run_in_subprocess(model, dataset, path, seed=seed, epochs=epochs, sets=sets,
                              data_dir=self.data_dir, device=self.device, visual_noise=visual_noise,
                              max_users=self.max_users(dataset))
        else:
            train(run, self.dataset(dataset, visual_noise), out=path, progress=self.progress)
        res = read_result(path)
        res["store_key"] = key
        res["versions"] = model_versions(model)
        res.setdefault("environment", {}).update(cpu_info())  # with its thread count: "the same hardware"
        per_user = res.pop("per_user_test")
        write_json_atomic(path, res)  # stamp the key last: a run without it is retrained
        res["per_user_test"] = per_user
        res["result_path"] = str(path)
        return res

    def _refuse_worker_writes(self) -> None:
        scratch = os.environ.get(WORKER_SCRATCH_ENV)
        if scratch and not self.root.resolve().is_relative_to(Path(scratch).resolve()):
            raise MealRecError(f"a Ray worker never writes the run store ({self.root}): its task trains into its own "
                               "scratch folder and returns the run's files, which the driver stores")

    def prepare(self, model: str, dataset: str, seed: int = 2020, epochs: int = 200, patience: int | None = None,
                overrides: dict[str, Any] | None = None, visual_noise: float = 0.0) -> None:
        """Build what the run reads from the cache (its dataset's features and the model's one-off
        inputs, :attr:`~mealrec.models.base.SequentialRecommender.one_off_inputs`), without training."""
        run, *_ = self._resolve(model, dataset, seed, epochs, patience, dict(overrides or {}), visual_noise)
        ds = self.dataset(dataset, visual_noise)
        seed_everything(run.train.seed)  # as train() does before building: SeeDRec's S2IDM cache is keyed by it
        build_model(run.model, run.model_config, ds)

    def locate(self, model: str, dataset: str, seed: int = 2020, epochs: int = 200, patience: int | None = None,
               overrides: dict[str, Any] | None = None, visual_noise: float = 0.0) -> tuple[Path | None, str]:
        """Where the run is stored and how: ``(path, "current")``; ``(path, "older")`` for the same run
        (same configuration, same data) stored by older code; ``(None, "missing")``."""
        run, key, path, _ = self._resolve(model, dataset, seed, epochs, patience, dict(overrides or {}), visual_noise)
        res = self.read_stored(path)
        if res is not None and res.get("store_key") == key:
            return path, "current"
        older = self._older(run, path, key)
        return (older, "older") if older is not None else (None, "missing")

    def _older(self, run, path: Path, key: str) -> Path | None:
        """The newest stored result with the file stem of ``path`` (same setting and seed: the same
        explicit overrides) under another key, for the same data and training settings: the same run
        made by older code. One whose resolved model configuration also matches is preferred; else
        one made when the model's defaults were different (MealRec's before the positive controls)."""
        stem = path.name[: -len(f"{key}.json")]
        want = keyed_config(run)
        found = []
        for cand in path.parent.glob(f"{stem}*.json"):
            if cand == path or len(cand.name) != len(path.name):
                continue
            res = self.read_stored(cand)
            if res is None or "per_user_test" not in res:
                continue
            cfg = res["config"]
            train = dict(cfg.get("train", {}))
            for k in _NOT_KEYED:
                train.pop(k, None)
            same_run = (cfg.get("model"), cfg.get("dataset"), train) == (want["model"], want["dataset"], want["train"])
            data = res.get("dataset", {}).get("data_hash")
            if same_run and data == self.dataset(run.dataset).data_hash:
                exact = cfg.get("model_config") == want["model_config"]
                found.append((exact, res.get("environment", {}).get("created", ""), cand))
        return max(found)[2] if found else None

    @staticmethod
    def read_stored(path: str | Path) -> dict | None:
        """The stored result at ``path`` (as :func:`load_result` reads it), or None when it is
        missing or cannot be read. An unreadable one is reported on stderr and its JSON and
        NPZ are renamed to ``<name>.corrupt`` (replacing older ones), as for a missing run."""
        path = Path(path)
        try:
            return read_result(path)
        except FileNotFoundError:
            return None
        except CorruptFileError as e:
            moved = [_move_aside(p) for p in (path, path.with_suffix(".npz"))]
            moved_txt = ", ".join(str(m) for m in moved if m is not None) or "nothing (already moved)"
            print(f"warning: stored result {e.path} cannot be read: {e.reason}; moved aside to {moved_txt}; "
                  "the run is treated as not stored", file=sys.stderr)
            return None

    @staticmethod
    def checkpoint(result: dict) -> Path | None:
        """The checkpoint beside a stored result, if it is on disk (checkpoints are not committed)."""
        ckpt = Path(result["result_path"]).with_suffix(".pt")
        return ckpt if ckpt.exists() else None


__all__ = ["KEY_SCHEME", "MissingRunError", "RENDER_ONLY_ENV", "RunStore", "WORKER_SCRATCH_ENV", "dataset_identity",
           "library_source_hash"]
