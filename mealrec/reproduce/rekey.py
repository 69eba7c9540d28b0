"""Carry stored runs to the keys this library gives them, when a change leaves their numbers alone.

A change of the key scheme (scheme 3 keys declared versions instead of source hashes), or of code
that changes no number, moves the keys of stored runs. :func:`carry` moves a run only when it
provably belongs to the previous checkout: its stored key must equal the key that checkout computes
for it (read with that checkout's own library, in a subprocess). Those are runs of the previous
code; nothing else moves (a run made by even older code stays as it is, read as "older" by the
store)::

    git worktree add /tmp/previous <commit>
    python -m mealrec.reproduce.rekey runs/full --from-checkout /tmp/previous [--models NAME ...]

Each carried run's JSON records ``rekeyed_from`` (the previous key); its ``.json``, ``.npz``
and ``.pt`` files are copied to the new name before the old ones are removed, one run at a
time, so an interruption never loses a run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..config import replace_checked
from ..models import get_model_class, model_names
from ..utils import MealRecError, save_npz_atomic, write_json_atomic
from .store import RunStore


def _arguments(res: dict) -> dict:
    cfg = res["config"]
    return {
        "model": cfg["model"], "dataset": cfg["dataset"], "seed": int(cfg["train"]["seed"]),
        "epochs": int(cfg["train"]["epochs"]), "patience": int(cfg["train"]["patience"]),
        "overrides": dict(cfg["model_config"]),
        "visual_noise": float(res["dataset"]["features"].get("visual_noise", 0.0)),
    }


#: Run in a previous checkout: prints {result path: the key that checkout computes for the run}.
_PREVIOUS_KEYS = """
import json, sys
from pathlib import Path

import numpy as np
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


def _companions(path: Path) -> list[Path]:
    """The files stored beside a run's JSON: ``.npz``, ``.pt`` and caches such as ``.shuffled.npz``."""
    stem = path.name[: -len(".json")]
    return sorted(p for p in path.parent.glob(f"{stem}.*") if p != path)


def _move(path: Path, new_path: Path, res: dict, old: str, new_key: str) -> None:
    res["store_key"] = new_key
    res["rekeyed_from"] = old
    # copy the companions first and write the JSON last (it is what marks a run as stored),
    # then drop the old files: an interruption leaves the old run intact
    stem, new_stem = path.name[: -len(".json")], new_path.name[: -len(".json")]
    for comp in _companions(path):
        dest = new_path.with_name(new_stem + comp.name[len(stem):])
        with np.load(comp) if comp.name.endswith(".npz") else contextlib.nullcontext() as z:
            if z is not None and "store_key" in z.files:  # a cache that names its run's key
                save_npz_atomic(dest, **{k: (np.array(new_key) if k == "store_key" else z[k]) for k in z.files})
                continue
        shutil.copy2(comp, dest)
    write_json_atomic(new_path, res)
    if new_path != path:
        for comp in [path, *_companions(path)]:
            comp.unlink()


def previous_keys(root: str | Path, previous: str | Path, models: list[str],
                  data_dir: str | None = None) -> dict[str, str]:
    """``{result path: key}`` that the checkout ``previous`` computes for the runs of ``models`` under
    ``root``, read with that checkout's own library."""
    root = Path(root).resolve()
    env = {**os.environ, "PYTHONPATH": str(Path(previous).resolve())}
    proc = subprocess.run([sys.executable, "-c", _PREVIOUS_KEYS, str(root), data_dir or "", *models],
                          capture_output=True, text=True, env=env, cwd=str(previous))
    if proc.returncode != 0:
        raise MealRecError(f"computing the keys of {previous} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def carry(root: str | Path, previous: str | Path, models: list[str], data_dir: str | None = None,
          dry_run: bool = False) -> dict[str, list[str]]:
    """Move the runs of ``models`` under ``root`` that the checkout ``previous`` made to the keys
    this library gives them (see the module docstring)."""
    root = Path(root).resolve()
    store = RunStore(root, data_dir=data_dir, progress=False)
    out: dict[str, list[str]] = {"rekeyed": [], "current": [], "foreign": []}
    for path_s, prev_key in previous_keys(root, previous, models, data_dir).items():
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
    ap.add_argument("--from-checkout", required=True, help="the previous checkout whose runs to carry")
    ap.add_argument("--models", nargs="+", default=None, help="the models whose runs to carry (default: all)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    for root in a.roots:
        out = carry(root, a.from_checkout, a.models or model_names(), data_dir=a.data_dir, dry_run=a.dry_run)
        for kind, items in out.items():
            print(f"{root}: {len(items)} {kind}", file=sys.stderr)
            for it in items if kind != "current" else []:
                print(f"  {it}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
