"""What several test modules share: a minimal checkout, stores with scripted results, sidecar leaves."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from mealrec.reproduce.artefacts import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]


def mini_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_build", "generated"))
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    for nb in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{nb}.ipynb", root / "notebooks")
    return root


def leaves(obj, key=""):
    """(key, value) for every scalar in a nested sidecar."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from leaves(v, key)
    else:
        yield key, obj


class ScriptedStore:
    """A run store that hands back fixed results: (model, variant) -> (test N@10, train s/epoch)."""

    def __init__(self, script):
        self.script = script

    def path(self, *a, **kw):
        return Path(__file__)  # "stored": nothing to claim

    def run(self, model, dataset, **kw):
        import numpy as np

        n10, sec = self.script[(model, kw["overrides"].get("variant", "full"))]
        per_user = n10 + np.random.default_rng(len(model) + int(1000 * n10)).normal(0, 0.01, 200)
        return {"test": {k: n10 for k in ("hr@10", "ndcg@10", "hr@20", "ndcg@20")},
                "per_user_test": {"ndcg@10": per_user},
                "best_epoch": 40,
                "timing": {"epochs_run": 50, "train_time_per_epoch_s": sec, "eval_time_per_epoch_s": sec / 2,
                           "peak_memory_mb": 1000.0 * sec},
                "config": {"train": {"epochs": 200, "patience": 10}}, "n_parameters": 1,
                "environment": {"device": "cpu", "threads": 1}}


class SeededStore(ScriptedStore):
    """As ScriptedStore, with SeeDRec's test N@10 moved by seed: +0%, +10%, +20% for seeds 1, 2, 3."""

    def run(self, model, dataset, **kw):
        res = super().run(model, dataset, **kw)
        if model.startswith("seedrec-"):
            f = 1 + 0.1 * (kw["seed"] - 1)
            res["test"] = {k: v * f for k, v in res["test"].items()}
        return res


class FixedRun:
    """A run request whose result is fixed: test metrics and validation N@10."""

    def __init__(self, test, valid=0.0):
        self.result = {"test": {"hr@10": test, "ndcg@10": test}, "valid": {"ndcg@10": valid}}

    def run(self, store):
        return self.result


class PlaceholderStore:
    def dataset(self, name):
        return type("D", (), {"metadata": {"visual_features": "placeholder (seeded Gaussian)"}})()


def fake_timing(root, dataset, model, sec, epochs):
    """A stored result holding only what the cost model reads: seconds per epoch and epochs run."""
    f = root / dataset / model / "seed1-0.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"timing": {"train_time_per_epoch_s": sec, "eval_time_per_epoch_s": 0.0,
                                        "epochs_run": epochs}, "config": {"train": {"epochs": 200}}}))
