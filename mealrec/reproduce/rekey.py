"""Carry stored runs from key scheme 1 to key scheme 2 (see :mod:`mealrec.reproduce.store`).

Scheme 1 hashed the *source* of the dataset loaders (``data/__init__.py``,
``data/synthetic.py``, ``data/microlens.py``) into every run key; scheme 2 hashes what they
produce instead (:func:`~mealrec.reproduce.store.dataset_identity`). A run is carried over
only when it provably belongs to the library it sits in: its stored key must equal the
scheme-1 key recomputed from its recorded arguments with the library as it is now.
That proves the run was made by this exact code (loaders included), so the scheme-2 key
computed by the same code names the same inputs. A run that fails the check is left alone
(it would be retrained). Run this with the library checkout whose loaders made the runs,
before changing any loader::

    python -m mealrec.reproduce.rekey runs/full

Each carried run's JSON records ``rekeyed_from`` (the scheme-1 key); its ``.json``, ``.npz``
and ``.pt`` files are copied to the new name before the old ones are removed, one run at a
time, so an interruption never loses a run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ..utils import write_json_atomic
from .store import PACKAGE, RunStore, digest, files_hash, keyed_config, model_source_files

#: The loaders that scheme 1 hashed by source, on top of today's CORE_FILES.
SCHEME1_EXTRA = ("data/__init__.py", "data/synthetic.py", "data/microlens.py")


def _arguments(res: dict) -> dict:
    cfg = res["config"]
    return {
        "model": cfg["model"], "dataset": cfg["dataset"], "seed": int(cfg["train"]["seed"]),
        "epochs": int(cfg["train"]["epochs"]), "patience": int(cfg["train"]["patience"]),
        "overrides": dict(cfg["model_config"]),
        "visual_noise": float(res["dataset"]["features"].get("visual_noise", 0.0)),
    }


def scheme1_key(store: RunStore, run, args: dict) -> str:
    """The key scheme 1 gave ``run`` (resolved by ``store``) with the library as it is now."""
    ds = store.dataset(args["dataset"], args["visual_noise"])
    return digest({
        "config": keyed_config(run),
        "visual_noise": float(args["visual_noise"]),
        "data_hash": ds.data_hash,
        "text_encoder": ds.features().info["text_encoder"],
        "code": files_hash(set(model_source_files(args["model"])) | {PACKAGE / f for f in SCHEME1_EXTRA}),
    })


def rekey(root: str | Path, data_dir: str | None = None, dry_run: bool = False) -> dict[str, list[str]]:
    """Carry every scheme-1 run under ``root`` that belongs to this library to its scheme-2 key."""
    root = Path(root)
    store = RunStore(root, data_dir=data_dir, progress=False)
    out: dict[str, list[str]] = {"rekeyed": [], "current": [], "foreign": []}
    for path in sorted(root.glob("*/*/*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        old = res.get("store_key")
        args = _arguments(res)
        run, new_key, new_path, _ = store._resolve(args["model"], args["dataset"], args["seed"], args["epochs"],
                                                   args["patience"], args["overrides"], args["visual_noise"])
        if old == new_key:
            out["current"].append(str(path))
            continue
        if old != scheme1_key(store, run, args):
            out["foreign"].append(str(path))
            continue
        out["rekeyed"].append(f"{path} -> {new_path.name}")
        if dry_run:
            continue
        res["store_key"] = new_key
        res["rekeyed_from"] = old
        # copy the arrays first and write the JSON last (it is what marks a run as stored),
        # then drop the old files: an interruption leaves the old run intact
        for suffix in (".npz", ".pt"):
            if path.with_suffix(suffix).exists():
                shutil.copy2(path.with_suffix(suffix), new_path.with_suffix(suffix))
        write_json_atomic(new_path, res)
        for suffix in (".json", ".npz", ".pt"):
            if path.with_suffix(suffix).exists():
                path.with_suffix(suffix).unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mealrec.reproduce.rekey", description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="+", help="run-store roots, e.g. runs/full")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    for root in a.roots:
        out = rekey(root, data_dir=a.data_dir, dry_run=a.dry_run)
        for kind, items in out.items():
            print(f"{root}: {len(items)} {kind}", file=sys.stderr)
            for it in items if kind != "current" else []:
                print(f"  {it}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
