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

:func:`carry` handles a change of code that leaves a model's numbers alone (a refactor, or
settings that were already in effect but not yet recorded): the runs whose stored key equals the
key that the *previous* checkout computes for them (``--from-checkout``, read with that checkout's
own library) move to the key that the library computes now. Those are runs of the previous code;
nothing else moves::

    git worktree add /tmp/previous <commit>
    python -m mealrec.reproduce.rekey runs/full --from-checkout /tmp/previous --models seedrec-sasrec seedrec-cl4srec
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..config import replace_checked
from ..models import get_model_class
from ..utils import MealRecError, write_json_atomic
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
        if not dry_run:
            _move(path, new_path, res, old, new_key)
    return out


#: Run in a previous checkout: prints {result path: the key that checkout computes for the run}.
_PREVIOUS_KEYS = """
import json, sys
from pathlib import Path
from mealrec.reproduce.rekey import _arguments
from mealrec.reproduce.store import RunStore
root, models = Path(sys.argv[1]), set(sys.argv[3:])
store = RunStore(root, data_dir=sys.argv[2] or None, progress=False)
out = {}
for path in sorted(root.glob("*/*/*.json")):
    a = _arguments(json.loads(path.read_text(encoding="utf-8")))
    if a["model"] in models:
        out[str(path)] = store._resolve(a["model"], a["dataset"], a["seed"], a["epochs"], a["patience"],
                                        a["overrides"], a["visual_noise"])[1]
print(json.dumps(out))
"""


def _move(path: Path, new_path: Path, res: dict, old: str, new_key: str) -> None:
    res["store_key"] = new_key
    res["rekeyed_from"] = old
    # copy the arrays first and write the JSON last (it is what marks a run as stored),
    # then drop the old files: an interruption leaves the old run intact
    for suffix in (".npz", ".pt"):
        if path.with_suffix(suffix).exists():
            shutil.copy2(path.with_suffix(suffix), new_path.with_suffix(suffix))
    write_json_atomic(new_path, res)
    if new_path != path:
        for suffix in (".json", ".npz", ".pt"):
            if path.with_suffix(suffix).exists():
                path.with_suffix(suffix).unlink()


def carry(root: str | Path, previous: str | Path, models: list[str], data_dir: str | None = None,
          dry_run: bool = False) -> dict[str, list[str]]:
    """Move the runs of ``models`` under ``root`` that the checkout ``previous`` made to the keys
    this library gives them (see the module docstring)."""
    root = Path(root).resolve()
    env = {**os.environ, "PYTHONPATH": str(Path(previous).resolve())}
    proc = subprocess.run([sys.executable, "-c", _PREVIOUS_KEYS, str(root), data_dir or "", *models],
                          capture_output=True, text=True, env=env, cwd=str(previous))
    if proc.returncode != 0:
        raise MealRecError(f"computing the keys of {previous} failed:\n{proc.stderr[-2000:]}")
    previous_keys = json.loads(proc.stdout.strip().splitlines()[-1])
    store = RunStore(root, data_dir=data_dir, progress=False)
    out: dict[str, list[str]] = {"rekeyed": [], "current": [], "foreign": []}
    for path_s, prev_key in previous_keys.items():
        path = Path(path_s)
        res = json.loads(path.read_text(encoding="utf-8"))
        a = _arguments(res)
        cls = get_model_class(a["model"])
        resolved = replace_checked(cls.Config(), a["overrides"], f"{path} [model_config]")
        over = {k: getattr(resolved, k) for k in a["overrides"]}
        run, new_key, new_path, _ = store._resolve(a["model"], a["dataset"], a["seed"], a["epochs"], a["patience"],
                                                   over, a["visual_noise"])
        if res.get("store_key") == new_key:
            out["current"].append(str(path))
        elif res.get("store_key") != prev_key:
            out["foreign"].append(str(path))
        else:
            out["rekeyed"].append(f"{path} -> {new_path.name}")
            if not dry_run:
                _move(path, new_path, res, prev_key, new_key)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mealrec.reproduce.rekey", description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="+", help="run-store roots, e.g. runs/full")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--from-checkout", default=None, help="carry the runs this previous checkout made (see carry)")
    ap.add_argument("--models", nargs="+", default=None, help="with --from-checkout: the models whose runs to carry")
    a = ap.parse_args(argv)
    if a.from_checkout and not a.models:
        ap.error("--from-checkout needs --models")
    for root in a.roots:
        if a.from_checkout:
            out = carry(root, a.from_checkout, a.models, data_dir=a.data_dir, dry_run=a.dry_run)
        else:
            out = rekey(root, data_dir=a.data_dir, dry_run=a.dry_run)
        for kind, items in out.items():
            print(f"{root}: {len(items)} {kind}", file=sys.stderr)
            for it in items if kind != "current" else []:
                print(f"  {it}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
