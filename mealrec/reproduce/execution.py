"""``mealrec reproduce``'s notebook execution: render each notebook per dataset with papermill.

For every notebook x dataset pair the runner computes a key from what determines the page's
content (:func:`page_key`): the notebook, the profile, the data hash, the library (the modules
that reach a page) and the bytes of every stored run the notebook reads. Never where the clone
or the data sits, nor the thread count: a fresh clone finds the committed pages current. A pair
whose key matches the one stored beside its executed notebook is skipped. Rendering never
trains: a pair whose runs are not all stored is not executed and its page names the missing
runs; ``train=True`` (``--train-missing``) trains them first. A pair that runs is executed into
a temporary file and renamed into ``book/generated/<profile>/<notebook>/<dataset>.ipynb`` only
when every cell succeeded; a failing cell stops the runner with the notebook, the cell's source
and the error, and leaves the previous output untouched. Pages and the build: :mod:`.book`; the browser check:
:mod:`.browser`; where the data is: :mod:`.paths`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from ..utils import MealRecError, atomic_path
from .artefacts import NOTEBOOKS, notebook_requests, runs_on
from .paths import repo_root
from .profiles import get_profile
from .store import PACKAGE, RENDER_ONLY_ENV, MissingRunError, RunStore, _normalised_source_hash


def default_datasets(profile_name: str, data_dir: str | None, include_absent: bool = False) -> list[str]:
    """The profile's synthetic datasets and positive controls, plus its real ones when the MicroLens
    files are found (or always, with ``include_absent``: rendering keeps their committed sections)."""
    prof = get_profile(profile_name)
    names = list(prof.synthetic_datasets) + list(prof.control_datasets)
    if prof.real_datasets:
        if data_dir or include_absent:
            names += list(prof.real_datasets)
        if not data_dir:
            print("MicroLens data not found (--data-dir, $MEALREC_DATA or ../shared/data): "
                  + ("their committed sections are kept as they are" if include_absent else "real datasets skipped"),
                  file=sys.stderr)
    return names


#: Modules whose code never reaches a notebook's output: the command line, this runner, the page
#: writer, the browser check, the summary matrix, ``--verify`` and the Ray executor. A change to them
#: re-renders nothing.
_NOT_PAGE_CODE = ("cli.py", "reproduce/execution.py", "reproduce/book.py", "reproduce/browser.py",
                  "reproduce/summary.py", "reproduce/verify.py", "reproduce/paths.py", "reproduce/cluster.py")
#: Bump when the page key's recipe changes.
PAGE_KEY_SCHEME = 2


def page_library_hash() -> str:
    """Hash of the library modules and configs that can change what a page shows (syntax trees,
    docstrings ignored; paths relative to the package, so it is the same in every clone)."""
    h = hashlib.sha256()
    for f in sorted(PACKAGE.rglob("*")):
        rel = f.relative_to(PACKAGE).as_posix()
        if rel in _NOT_PAGE_CODE or "__pycache__" in rel:
            continue
        if f.suffix == ".py":
            h.update(rel.encode() + _normalised_source_hash(f).encode())
        elif f.suffix == ".yaml":
            h.update(rel.encode() + f.read_bytes())
    return h.hexdigest()


def run_files(result_path: Path) -> list[Path]:
    """A stored run's committed files: its JSON, per-user ``.npz`` and cached representations."""
    stem = result_path.name[: -len(".json")]
    return sorted(f for f in result_path.parent.glob(f"{stem}.*")
                  if f.suffix in (".json", ".npz") and not f.name.startswith("."))


def page_key(nb_path: Path, profile: str, dataset: str, data_hash: str, lib_hash: str, runs: Iterable[Path],
             runs_root: Path) -> str:
    """What determines a page section's content: the notebook, the profile (as it applies to the
    dataset), the data, the library and the bytes of every stored run it reads. Never where the
    data or the clone sits, nor the thread count."""
    h = hashlib.sha256()
    h.update(f"page-key {PAGE_KEY_SCHEME}\0{dataset}\0{data_hash}\0{lib_hash}\0".encode())
    h.update(nb_path.read_bytes())
    h.update(json.dumps(get_profile(profile, dataset).to_dict(), sort_keys=True).encode())
    for run in sorted(set(runs)):
        for f in run_files(run):
            h.update(f.relative_to(runs_root).as_posix().encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def page_runs(store: RunStore, notebook: str, dataset: str, profile: str) -> dict[str, list]:
    """The stored runs a notebook reads on ``dataset`` (``used``: result paths), and the runs it
    lacks (``missing``) or would read as made by older code (``older``), each as a line naming it."""
    out: dict[str, list] = {"used": [], "missing": [], "older": []}

    def visit(req) -> None:
        kw = req.kwargs()
        kw.pop("isolate")
        path, status = store.locate(req.model, req.dataset, **kw)
        name = f"{req.model} {req.setting or 'default'} seed {req.seed}"
        if status == "missing":
            out["missing"].append(name)
            return
        out["used"].append(path)
        if status == "older":
            out["older"].append(f"{name} (stored {path.name})")
        retry = req.retry(json.loads(path.read_text(encoding="utf-8"))) if req.plateau_patience is not None else None
        if retry is not None:
            visit(retry)

    for req in notebook_requests(notebook, dataset, get_profile(profile, dataset)):
        visit(req)
    return out


def _title_with_dataset(path: Path, dataset: str) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    if first.cell_type == "markdown" and first.source.startswith("# "):
        head, _, rest = first.source.partition("\n")
        first.source = f"{head} ({dataset})\n{rest}"
    nbformat.write(nb, path)


class _Snapshot:
    """Copies of the files directly in some folders, so that what a failed notebook wrote
    there can be undone: :meth:`restore` removes files that appeared and puts back the saved
    ones; :meth:`discard` drops the copies. Hidden files (temporary ones) are left alone."""

    def __init__(self, folders: Iterable[Path]):
        self.folders = [Path(f) for f in folders]
        self.tmp = Path(tempfile.mkdtemp(prefix=".mealrec-snapshot-"))
        self.saved: dict[Path, Path] = {}
        for f in self._files():
            copy = self.tmp / str(len(self.saved))
            shutil.copy2(f, copy)
            self.saved[f] = copy

    def _files(self) -> list[Path]:
        return [f for d in self.folders if d.is_dir() for f in d.iterdir()
                if f.is_file() and not f.name.startswith(".")]

    def restore(self) -> None:
        for f in self._files():
            if f not in self.saved:
                f.unlink()
        for f, copy in self.saved.items():
            if copy.exists():
                with atomic_path(f) as t:
                    shutil.copy2(copy, t)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


#: The kernel logs errors only (no "running over TCP without encryption" warning on every start:
#: the kernel listens on the loopback interface only).
_KERNEL_ARGS = ("--IPKernelApp.log_level=ERROR",)


@contextlib.contextmanager
def _render_only(on: bool):
    """Within the block, run stores opened by notebook kernels read stored runs and never train
    (``MEALREC_RENDER_ONLY=1``, see :class:`RunStore`)."""
    old = os.environ.get(RENDER_ONLY_ENV)
    if on:
        os.environ[RENDER_ONLY_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RENDER_ONLY_ENV, None)
        else:
            os.environ[RENDER_ONLY_ENV] = old


def execute(notebook: str, dataset: str, profile: str, root: Path, params: dict, key: str, train: bool = False) -> Path:
    """Run one notebook for one dataset; the output appears only if every cell succeeded.
    ``train``: the notebook may train the runs it lacks (else a missing run fails its cell)."""
    import papermill as pm

    src = root / "notebooks" / f"{notebook}.ipynb"
    out = root / "book" / "generated" / profile / notebook / f"{dataset}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", dir=out.parent, prefix=f".{dataset}.")
    os.close(fd)
    # what the notebook writes besides itself (figures, sidecar) is undone if a later cell fails
    saved = _Snapshot([root / params[k] for k in ("OUTPUT_DIR", "FIGURES_DIR") if params.get(k)])
    try:
        with _render_only(not train):
            pm.execute_notebook(str(src), tmp, parameters=params, kernel_name="python3", cwd=str(root),
                                progress_bar=False, log_output=False, extra_arguments=list(_KERNEL_ARGS))
    except pm.PapermillExecutionError as e:
        os.unlink(tmp)
        saved.restore()
        if e.ename == MissingRunError.__name__:  # a stored input the pre-check cannot see (Figure 7's checkpoint)
            raise MissingRunError(e.evalue) from None
        raise MealRecError(
            f"notebooks/{notebook}.ipynb on {dataset} ({profile}) failed in cell {e.cell_index}:\n"
            f"{e.source}\n--> {e.ename}: {e.evalue}"
        ) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        saved.restore()
        raise
    finally:
        saved.discard()
    _title_with_dataset(Path(tmp), dataset)
    os.replace(tmp, out)
    write_key(out, key)
    return out


def write_key(out: Path, key: str) -> None:
    with atomic_path(out.with_suffix(".key")) as k:
        k.write_text(key + "\n")


def _write_state(out: Path, runs: dict[str, list]) -> None:
    """``<dataset>.runs.json`` beside the executed notebook: the runs its section lacks or reads as
    made by older code (the page names them); removed when there are none."""
    path = out.with_suffix(".runs.json")
    state = {k: runs[k] for k in ("missing", "older") if runs[k]}
    if not state:
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def is_unavailable(dataset: str, data_dir: str | None) -> bool:
    """A real dataset whose files are not on this machine (its committed sections are kept)."""
    from ..data import dataset_spec

    return dataset_spec(dataset).source == "microlens" and data_dir is None


def pair_params(notebook: str, dataset: str, profile: str, data_dir: str | None, device: str, threads: int) -> dict:
    return {"DATASET": dataset, "PROFILE": profile, "OUTPUT_DIR": f"book/generated/{profile}/{notebook}",
            "FIGURES_DIR": f"figures/{profile}", "RUNS_DIR": f"runs/{profile}", "DATA_DIR": data_dir,
            "DEVICE": device, "THREADS": threads}


def run_notebooks(datasets: Iterable[str], profile: str = "full", notebooks: Iterable[str] | None = None,
                  data_dir: str | None = None, device: str = "cpu", threads: int = 0, force: bool = False,
                  progress: bool = True, root: Path | None = None, train: bool = False) -> list[tuple[str, str, str]]:
    """Render every notebook x dataset pair whose inputs changed. Returns ``(notebook, dataset, status)``.

    Rendering never trains: a pair whose runs are not all stored is not executed, and its page
    names the missing runs (``status`` "missing N run(s)"). With ``train`` the missing runs are
    trained first, each with its progress. A real dataset whose files are absent keeps its
    committed sections ("kept: data absent"). ``root``: the tree holding ``notebooks/``,
    ``book/`` and ``runs/`` (default: this checkout)."""
    from tqdm.auto import tqdm

    from . import plan as P

    root = Path(root) if root is not None else repo_root()
    get_profile(profile)
    notebooks = list(notebooks or NOTEBOOKS)
    for nb in notebooks:
        if nb not in NOTEBOOKS:
            raise MealRecError(f"unknown notebook {nb!r}; valid: {', '.join(NOTEBOOKS)}")
    datasets = list(datasets)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading bars from the title encoder
    here = [d for d in datasets if not is_unavailable(d, data_dir)]
    store = RunStore(root / "runs" / profile, data_dir=data_dir, progress=False, profile=profile, train=train,
                     device=device, threads=threads)
    data_hashes = {d: store.dataset(d).data_hash for d in here}  # fails early, naming the dataset
    if train:
        rows = P.plan(store, profile, here, notebooks)
        P.train_missing(store, rows, progress=progress)
    lib_hash = page_library_hash()
    done = []
    pairs = [(nb, d) for nb in notebooks for d in datasets if runs_on(nb, d)]
    bar = tqdm(pairs, desc=f"render ({profile})", unit="page", disable=not progress)
    for nb, d in bar:
        bar.set_postfix_str(f"{nb} on {d}")
        out = root / "book" / "generated" / profile / nb / f"{d}.ipynb"
        if d not in here:
            done.append((nb, d, "kept: data absent"))
            continue
        runs = page_runs(store, nb, d, profile)
        _write_state(out, runs)
        if runs["missing"]:
            done.append((nb, d, f"missing {len(runs['missing'])} run(s)"))
            continue
        key = page_key(root / "notebooks" / f"{nb}.ipynb", profile, d, data_hashes[d], lib_hash, runs["used"],
                       store.root)
        keyfile = out.with_suffix(".key")
        if not force and out.exists() and keyfile.exists() and keyfile.read_text().strip() == key:
            done.append((nb, d, "unchanged"))
            continue
        params = pair_params(nb, d, profile, data_dir, device, threads)
        try:
            execute(nb, d, profile, root, params, key, train=train)
        except MissingRunError as e:
            _write_state(out, {**runs, "missing": [str(e)]})
            done.append((nb, d, "missing 1 run(s)"))
            continue
        done.append((nb, d, "executed"))
    return done


__all__ = ["default_datasets", "execute", "is_unavailable", "page_key", "page_runs", "run_notebooks"]
