import os
from pathlib import Path

import pytest
import torch

# Small tensors: one thread is faster and immune to thread-pool contention on shared machines.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """The folder holding the MicroLens-50K files, found as the command line and notebooks find it."""
    from mealrec.reproduce.paths import find_data_dir

    found = find_data_dir()
    return Path(found) if found else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With MEALREC_NO_SKIPS=1 (set by .ci/run) a skipped test fails instead: CI has the
    MicroLens files, Chromium and the pinned packages, so a skip there hides a regression."""
    _no_skip((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped while it is collected (``pytest.importorskip``)."""
    _no_skip((yield).get_result())


def _no_skip(rep) -> None:
    if os.environ.get("MEALREC_NO_SKIPS") == "1" and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else rep.longrepr
        rep.outcome = "failed"
        rep.longrepr = f"skipped, and MEALREC_NO_SKIPS=1 forbids skips: {reason}"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Feature caches of the test session go to a temporary folder."""
    old = os.environ.get("MEALREC_CACHE")
    os.environ["MEALREC_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("MEALREC_CACHE", None)
    else:
        os.environ["MEALREC_CACHE"] = old


@pytest.fixture
def data_dir() -> Path:
    d = real_data_dir()
    if d is None:
        pytest.skip("MicroLens-50K files not found (../shared/data or $MEALREC_DATA)")
    return d


@pytest.fixture
def fake_microlens(tmp_path):
    """Write a small MicroLens-format data directory; returns a function(pairs, titles) -> data_dir."""

    def make(pairs: str, titles: str | None = "item,title\n"):
        root = tmp_path / "data"
        folder = root / "microlens-50k"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "MicroLens-50k_pairs.tsv").write_text(pairs, encoding="utf-8")
        if titles is not None:
            (folder / "MicroLens-50k_titles.csv").write_text(titles, encoding="utf-8")
        return root

    return make


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A run store shared by a test module's tests (its runs train once)."""
    from mealrec.reproduce import RunStore

    return RunStore(tmp_path_factory.mktemp("runs"), progress=False, threads=1)
