"""A killed run resumes from its last finished epoch and ends bit-identical to an uninterrupted one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from mealrec.data import get_dataset
from mealrec.experiments import run_config
from mealrec.golden import _cases
from mealrec.models import get_model_class
from mealrec.resume import state_path
from mealrec.trainer import train

EPOCHS, BATCH = 3, 64


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def tiny():
    return get_dataset("synthetic-tiny", progress=False)


def _run(case, **train_overrides):
    model, overrides = _cases()[case]
    return run_config(model, "synthetic-tiny", model_overrides=overrides,
                      train_overrides={"seed": 11, "epochs": EPOCHS, "batch_size": BATCH, "num_threads": 1,
                                       "device": "cpu", **train_overrides})


def _same(a, b):
    """The two runs' results agree bit for bit (timings and creation time aside)."""
    assert a.best_epoch == b.best_epoch
    strip = lambda h: [{k: v for k, v in r.items() if not k.endswith("_time_s") and k != "peak_memory_mb"}  # noqa
                       for r in h]
    assert strip(a.history) == strip(b.history)
    assert a.valid == b.valid and a.test == b.test
    for k in a.per_user_test:
        assert np.array_equal(a.per_user_test[k], b.per_user_test[k])
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _kill_at(monkeypatch, model_name, call):
    """Raise :class:`Killed` at the ``call``-th training batch (1-based) of ``model_name``."""
    cls = get_model_class(model_name)
    original, seen = cls.calculate_loss, {"n": 0}

    def counting(self, batch):
        seen["n"] += 1
        if seen["n"] == call:
            raise Killed
        return original(self, batch)

    monkeypatch.setattr(cls, "calculate_loss", counting)
    return seen


@pytest.mark.parametrize("case", sorted(_cases()))
def test_resumed_run_is_bit_identical(case, tiny, tmp_path, monkeypatch):
    run = _run(case)
    whole = train(run, tiny, out=tmp_path / "whole.json", progress=False, log=lambda s: None)
    assert not state_path(tmp_path / "whole.json").exists()  # removed once the result is written

    out = tmp_path / "resumed.json"
    n_batches = -(-len(tiny.train) // BATCH)
    with monkeypatch.context() as m:
        _kill_at(m, run.model, n_batches + 2)  # inside epoch 2 (its second batch, or epoch 3's first)
        with pytest.raises(Killed):
            train(run, tiny, out=out, progress=False, log=lambda s: None)
    assert not out.exists() and state_path(out).exists()
    said = []
    resumed = train(run, tiny, out=out, progress=False, log=said.append)
    assert any("resuming" in s and "after epoch 1" in s for s in said), said
    _same(whole, resumed)
    a, b = (json.loads(p.read_text()) for p in (tmp_path / "whole.json", out))
    assert a["test"] == b["test"] and a["config"] == b["config"]


def test_killed_after_the_last_epoch_writes_the_result_without_training(tiny, tmp_path, monkeypatch):
    import mealrec.trainer as T

    run = _run("sasrec", patience=1, epochs=6)
    whole = train(run, tiny, out=tmp_path / "whole.json", progress=False, log=lambda s: None)
    out = tmp_path / "resumed.json"
    with monkeypatch.context() as m:
        m.setattr(T, "save_result", lambda *a, **k: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            train(run, tiny, out=out, progress=False, log=lambda s: None)
    with monkeypatch.context() as m:
        seen = _kill_at(m, "sasrec", 10**9)
        resumed = train(run, tiny, out=out, progress=False, log=lambda s: None)
    assert seen["n"] == 0  # nothing trained again
    _same(whole, resumed)


def test_state_of_another_configuration_is_set_aside(tiny, tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    with monkeypatch.context() as m:
        _kill_at(m, "sasrec", -(-len(tiny.train) // BATCH) + 1)  # epoch 2's first batch
        with pytest.raises(Killed):
            train(_run("sasrec"), tiny, out=out, progress=False, log=lambda s: None)
    said = []
    other = train(_run("sasrec", lr=0.002), tiny, out=out, progress=False, log=said.append)
    assert any("another config" in s for s in said), said
    assert out.with_suffix(".resume.stale").exists()
    fresh = train(_run("sasrec", lr=0.002), tiny, out=tmp_path / "fresh.json", progress=False, log=lambda s: None)
    _same(other, fresh)


def test_unreadable_state_is_set_aside(tiny, tmp_path):
    out = tmp_path / "r.json"
    state_path(out).write_bytes(b"not a torch file")
    said = []
    train(_run("sasrec", epochs=1), tiny, out=out, progress=False, log=said.append)
    assert any("cannot be read" in s for s in said), said


SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    if os.environ.get("HANG_IN_EPOCH"):  # signal the parent from inside an epoch, then wait to be killed
        from mealrec.models import get_model_class
        cls = get_model_class("sasrec")
        orig, seen = cls.calculate_loss, {"n": 0}
        def slow(self, batch):
            seen["n"] += 1
            if seen["n"] == int(os.environ["HANG_IN_EPOCH"]):
                Path(os.environ["MARKER"]).write_text("in epoch")
                time.sleep(600)
            return orig(self, batch)
        cls.calculate_loss = slow
    from mealrec.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigkill_mid_epoch_then_same_command_resumes(tiny, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    args = ["train", "--model", "sasrec", "--dataset", "synthetic-tiny", "--epochs", "4", "--seed", "5",
            "--batch-size", str(BATCH), "--device", "cpu", "--set", "train.num_threads=1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = lambda out: [sys.executable, str(script), *args, "--out", str(out)]  # noqa: E731
    subprocess.run(cmd(tmp_path / "whole.json"), env=env, check=True, capture_output=True)

    out, marker = tmp_path / "killed.json", tmp_path / "marker"
    n_batches = -(-len(tiny.train) // BATCH)
    proc = subprocess.Popen(cmd(out), env={**env, "HANG_IN_EPOCH": str(2 * n_batches + 1), "MARKER": str(marker)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before reaching epoch 3"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and state_path(out).exists()
    done = subprocess.run(cmd(out), env=env, check=True, capture_output=True, text=True)
    assert "resuming sasrec on synthetic-tiny after epoch 2" in done.stderr
    a, b = (json.loads(p.read_text()) for p in (tmp_path / "whole.json", out))
    strip = lambda h: [{k: v for k, v in r.items() if not k.endswith("_time_s") and k != "peak_memory_mb"}  # noqa
                       for r in h]
    assert strip(a["history"]) == strip(b["history"]) and a["test"] == b["test"]
    with np.load(tmp_path / "whole.npz") as x, np.load(out.with_suffix(".npz")) as y:
        assert all(np.array_equal(x[k], y[k]) for k in x.files)
    sa = torch.load(tmp_path / "whole.pt", weights_only=False)["state_dict"]
    sb = torch.load(out.with_suffix(".pt"), weights_only=False)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not state_path(out).exists()
