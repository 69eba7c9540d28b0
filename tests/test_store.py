"""The run store: trains once, keys runs on what changes their metrics, hashes code without comments."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mealrec.reproduce import RunStore
from mealrec import versions as V
from mealrec.models.sasrec import SASRec
from mealrec.reproduce.store import _normalised_source_hash


def test_store_trains_once_and_keys_on_what_changes_metrics(store, monkeypatch):
    a = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    assert Path(a["result_path"]).exists() and a["per_user_test"]["ndcg@10"].shape == (200,)
    import mealrec.reproduce.store as S

    def no_training(*args, **kwargs):
        raise AssertionError("a stored run was trained again")

    monkeypatch.setattr(S, "train", no_training)
    b = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    assert b["test"] == a["test"] and b["store_key"] == a["store_key"]
    # an override equal to the default is the same run; another seed, epochs or setting is not
    assert store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, overrides={"n_layers": 2}) == Path(a["result_path"])
    others = {store.path("sasrec", "synthetic-tiny", seed=2, epochs=1),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=2),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, overrides={"n_layers": 1}),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, visual_noise=0.1),
              store.path("sasrec", "synthetic-tiny", seed=1, epochs=1, patience=30)}
    assert len(others) == 5 and Path(a["result_path"]) not in others
    # threads and the progress bar do not change metrics, so they do not change the key
    assert (RunStore(store.root, progress=True, threads=4).path("sasrec", "synthetic-tiny", seed=1, epochs=1)
            == Path(a["result_path"]))
    # a file at the run's path whose recorded key differs is not trusted: the run is trained again
    path = Path(a["result_path"])
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "store_key": "something else"}))
    with pytest.raises(AssertionError, match="trained again"):
        store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    path.write_text(json.dumps(stored))
    # a declared version does: another version of the model's math (or the core's) is another run
    monkeypatch.setattr(SASRec, "version", SASRec.version + 1)
    assert store.path("sasrec", "synthetic-tiny", seed=1, epochs=1) != Path(a["result_path"])
    monkeypatch.undo()
    monkeypatch.setattr(S, "model_versions", lambda model: {**V.model_versions(model), "core": V.CORE_VERSION + 1})
    assert store.path("sasrec", "synthetic-tiny", seed=1, epochs=1) != Path(a["result_path"])
    assert stored["versions"] == V.model_versions("sasrec")


def test_source_hash_ignores_comments_and_docstrings(tmp_path):
    f1, f2, f3 = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    f1.write_text('"""doc"""\ndef f(x):\n    """inner doc"""\n    return x + 1  # comment\n')
    f2.write_text('def f(x):\n    return x + 1\n')
    f3.write_text('def f(x):\n    return x + 2\n')
    assert _normalised_source_hash(f1) == _normalised_source_hash(f2) != _normalised_source_hash(f3)


def test_every_registered_model_declares_its_version():
    from mealrec.models import model_names
    for name in model_names():
        versions = V.model_versions(name)  # raises for a model without its own `version`
        assert versions["core"] == V.CORE_VERSION and len(versions) >= 2
    assert V.model_versions("mealrec-tedrec") == {"core": V.CORE_VERSION, "mealrec-tedrec": 1, "tedrec": 1}