"""``mealrec reproduce``: execute the notebooks per dataset with papermill, then build the book.

For every notebook x dataset pair the runner computes a key from the notebook file, its
parameters, the library's source (comments and docstrings ignored), the profile and the
dataset's data hash. A pair whose key matches the one stored beside its executed
notebook is skipped. A pair that runs is executed into a temporary file and renamed into
``book/generated/<profile>/<notebook>/<dataset>.ipynb`` only when every cell succeeded;
a failing cell stops the runner with the cell's source and error, and leaves the previous
output (if any) untouched. The training runs the notebooks start are cached in the run
store (``runs/``), so an interrupted reproduction resumes where it stopped.

The book is then built with jupyter-book 1.x (``execute_notebooks: off``; ``-W -n
--keep-going``) from pages the runner writes for the chosen profile: one page per table
or figure listing each dataset's table, figure and verdict (pasted with glue from the
executed notebooks), with the notebooks as sub-pages.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote, urlsplit

from ..utils import MealRecError, atomic_path
from .profiles import get_profile
from .store import RunStore, library_source_hash


@dataclass(frozen=True)
class Page:
    notebook: str  # notebooks/<notebook>.ipynb
    slug: str  # the book page: generated/<profile>/<slug>.md
    title: str
    caption: str  # the protocol, stated once per page
    glue: tuple[tuple[str, str], ...]  # (kind, key) pasted per dataset: kind in {"any", "figure", "text"}


PAGES: tuple[Page, ...] = (
    Page("datasets", "table1", "Table 1: datasets",
         "Users, items and interactions after filtering (MicroLens: iterative 4-core; leave-one-out split), "
         "beside the paper's Table 1, and for each dataset which parts are real and which are synthetic. Then "
         "the number of sememes per source (hashtags and title words on MicroLens, planted topics on the "
         "synthetic sets), which the SeeDRec page reads, as in SeeDRec's Table 1.",
         (("any", "table"), ("text", "verdict"), ("any", "sememes"), ("text", "sememe-text"))),
    Page("overall", "table2", "Table 2: overall performance",
         "Test HR@10/20 and NDCG@10/20, full ranking over all items, history not masked, ties broken against "
         "the target, checkpoint of the best validation NDCG@10 (early stopping, patience as the profile sets). "
         "Ours, the paper's, and the difference; then MealRec-TedRec's relative improvement over the best "
         "baseline, with a paired t-test over test users (p < 0.01, as the paper).",
         (("any", "table"), ("any", "improvement"), ("text", "verdict"), ("figure", "figure"))),
    Page("complexity", "table3", "Table 3: complexity",
         "Train and evaluation time per epoch and peak memory, each model trained alone in its own process; "
         "ratios to TedRec beside the paper's (one A100 there). On the CPU, memory is the process's peak "
         "resident set size, so it includes the interpreter and the data.",
         (("any", "table"), ("any", "ratios"), ("text", "verdict"), ("figure", "figure"))),
    Page("ablation", "figure3-6", "Figures 3 and 6: ablation and universality",
         "MealRec's variants (full, -TCD, -NPD, -TCD-NPD) beside the bare backbone, on TedRec (Figure 3), "
         "SASRec and CL4SRec (Figure 6); test metrics, one seed; p-values against the full model.",
         (("any", "table-tedrec"), ("text", "verdict-tedrec"), ("any", "table-sasrec"), ("text", "verdict-sasrec"),
          ("any", "table-cl4srec"), ("text", "verdict-cl4srec"), ("figure", "figure"))),
    Page("sensitivity", "figure4", "Figure 4: sensitivity to lambda and T",
         "Test NDCG@10 of MealRec-TedRec over the loss weight x diffusion steps grid, for TCD (lambda_T) and "
         "NPD (lambda_N), the other weight at its default; one seed.",
         (("text", "verdict"), ("figure", "figure"))),
    Page("noise", "figure5", "Figure 5: robustness to visual noise",
         "HR@10 and NDCG@10 of MealRec-TedRec with Gaussian noise of standard deviation sigma added to the "
         "visual features at load time; one seed.",
         (("any", "table"), ("text", "verdict"), ("figure", "figure"))),
    Page("visualisation", "figure7", "Figure 7: representations",
         "t-SNE of user representations, target item embeddings and (MealRec) frame representations for a "
         "few test users, TedRec beside MealRec-TedRec, and the similarities the figure is read for.",
         (("any", "table"), ("text", "verdict"), ("figure", "figure"))),
    Page("seedrec", "beyond-seedrec", "Beyond the paper: SeeDRec vs MealRec",
         "Test HR/NDCG@10/20 of the bare backbone, MealRec and SeeDRec (with its -S2IDM and -IPE ablations) on "
         "SASRec and CL4SRec (the seeds of each backbone's rows are in the table's `seeds` column; means over "
         "them), full ranking and CE for every row (SeeDRec's paper: BCE and 999 sampled "
         "negatives; `mealrec.models.seedrec.sampled_evaluate` gives that protocol, and "
         "`benchmarks/seedrec_protocol.py` scores this page's stored checkpoints both ways: its results on "
         "synthetic-small and on microlens-small's SASRec rows, with a reading, are in `benchmarks/results/2026-11-24/` "
         "and `benchmarks/results/2026-11-25/`); p-values are paired t-tests "
         "over test users. Then S2IDM's parameters and training time per epoch against an item-level diffusion "
         "of the same shape, timed on the same users, in turn, fastest of three rounds (a live timing on this "
         "machine: it moves with the machine's load, which the table names as the 1-minute load average against "
         "the cores).",
         (("any", "table"), ("text", "verdict"), ("any", "cost"), ("figure", "figure"))),
)
NOTEBOOKS = tuple(p.notebook for p in PAGES)
STATIC_PAGES = ("data", "method", "implementation")
CLOSING_PAGES = ("rerun",)


def repo_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "notebooks").is_dir() or not (root / "book").is_dir():
        raise MealRecError(f"`mealrec reproduce` runs from a checkout of the repository; {root} has no notebooks/ and book/")
    return root


def find_data_dir(data_dir: str | None) -> str | None:
    """``data_dir``, else ``$MEALREC_DATA``, else ``../shared/data`` beside the checkout, if it
    holds the MicroLens-50K files; None when none does."""
    from ..data import microlens

    candidates = [data_dir, os.environ.get("MEALREC_DATA"), str(repo_root().parent / "shared" / "data")]
    for cand in candidates:
        if cand:
            try:
                microlens.locate(cand)
                return str(Path(cand).resolve())
            except MealRecError:
                if cand == data_dir:
                    raise
    return None


def default_datasets(profile_name: str, data_dir: str | None) -> list[str]:
    """The profile's synthetic datasets, plus its real ones when the MicroLens files are found."""
    prof = get_profile(profile_name)
    names = list(prof.synthetic_datasets)
    if prof.real_datasets:
        if data_dir:
            names += list(prof.real_datasets)
        else:
            print("MicroLens data not found (--data-dir, $MEALREC_DATA or ../shared/data): real datasets skipped",
                  file=sys.stderr)
    return names


def _pair_key(nb_path: Path, params: dict, profile: str, data_hash: str, lib_hash: str) -> str:
    h = hashlib.sha256()
    h.update(nb_path.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(json.dumps(get_profile(profile).to_dict(), sort_keys=True).encode())
    h.update(data_hash.encode())
    h.update(lib_hash.encode())
    return h.hexdigest()


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
        return [f for d in self.folders if d.is_dir() for f in d.iterdir() if f.is_file() and not f.name.startswith(".")]

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


def execute(notebook: str, dataset: str, profile: str, root: Path, params: dict, key: str) -> Path:
    """Run one notebook for one dataset; the output appears only if every cell succeeded."""
    import papermill as pm

    src = root / "notebooks" / f"{notebook}.ipynb"
    out = root / "book" / "generated" / profile / notebook / f"{dataset}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", dir=out.parent, prefix=f".{dataset}.")
    os.close(fd)
    # what the notebook writes besides itself (figures, sidecar) is undone if a later cell fails
    saved = _Snapshot([root / params[k] for k in ("OUTPUT_DIR", "FIGURES_DIR") if params.get(k)])
    try:
        pm.execute_notebook(str(src), tmp, parameters=params, kernel_name="python3", cwd=str(root),
                            progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as e:
        os.unlink(tmp)
        saved.restore()
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
    with atomic_path(out.with_suffix(".key")) as k:
        k.write_text(key + "\n")
    return out


def run_notebooks(datasets: Iterable[str], profile: str = "quick", notebooks: Iterable[str] | None = None,
                  data_dir: str | None = None, device: str = "cpu", threads: int = 0, force: bool = False,
                  progress: bool = True, root: Path | None = None) -> list[tuple[str, str, str]]:
    """Execute every notebook x dataset pair whose inputs changed. Returns ``(notebook, dataset, status)``.

    ``root``: the tree holding ``notebooks/``, ``book/`` and ``runs/`` (default: this checkout)."""
    from tqdm.auto import tqdm

    root = Path(root) if root is not None else repo_root()
    get_profile(profile)
    notebooks = list(notebooks or NOTEBOOKS)
    for nb in notebooks:
        if nb not in NOTEBOOKS:
            raise MealRecError(f"unknown notebook {nb!r}; valid: {', '.join(NOTEBOOKS)}")
    datasets = list(datasets)
    store = RunStore(root / "runs" / profile, data_dir=data_dir, progress=False, profile=profile)
    data_hashes = {d: store.dataset(d).data_hash for d in datasets}  # fails early, naming the dataset
    lib_hash = library_source_hash()
    done = []
    pairs = [(nb, d) for nb in notebooks for d in datasets]
    bar = tqdm(pairs, desc=f"reproduce ({profile})", unit="notebook", disable=not progress)
    for nb, d in bar:
        bar.set_postfix_str(f"{nb} on {d}")
        params = {
            "DATASET": d, "PROFILE": profile, "OUTPUT_DIR": f"book/generated/{profile}/{nb}",
            "FIGURES_DIR": f"figures/{profile}", "RUNS_DIR": f"runs/{profile}", "DATA_DIR": data_dir,
            "DEVICE": device, "THREADS": threads,
        }
        key = _pair_key(root / "notebooks" / f"{nb}.ipynb", params, profile, data_hashes[d], lib_hash)
        out = root / "book" / "generated" / profile / nb / f"{d}.ipynb"
        keyfile = out.with_suffix(".key")
        if not force and out.exists() and keyfile.exists() and keyfile.read_text().strip() == key:
            done.append((nb, d, "unchanged"))
            continue
        execute(nb, d, profile, root, params, key)
        done.append((nb, d, "executed"))
    return done


# --------------------------------------------------------------------------- book
def _pending_line(pending: list[dict]) -> list[str]:
    """The sentence naming the datasets a page does not show yet, from the coverage cells."""
    if not pending:
        return []
    parts = []
    for c in pending:
        if c["stored"] >= c["needed"]:
            parts.append(f"{c['dataset']} (all {c['needed']} runs stored; its notebook is not executed yet)")
            continue
        cost = f", ~{c['est_hours']:.1f} h of training missing" if c.get("est_hours") else ""
        parts.append(f"{c['dataset']} ({c['stored']} of {c['needed']} runs stored{cost})")
    return [f"**Not shown yet:** {'; '.join(parts)}. A dataset's section appears once all of its runs are in "
            "the run store, so that no number here is trained while the page renders; "
            "{doc}`coverage` lists what is missing and how to train it.", ""]


def _page_markdown(page: Page, profile: str, datasets: list[str], pending: list[dict] | None = None) -> str:
    lines = [f"# {page.title}", "", f"*Protocol.* {page.caption}", "",
             f"Profile `{profile}` ({_profile_line(profile, page.notebook)}). Each dataset's notebook (linked below) "
             "holds the code, every number and the provenance (library version, commit, seeds, data hash).", "",
             *_pending_line(pending or [])]
    for d in datasets:
        doc = f"{page.notebook}/{d}.ipynb"
        lines += [f"## {d}", ""]
        note = get_profile(profile).thinning_note(d, page.notebook)
        if note:
            lines += [f"*{note}*", ""]
        backbones = get_profile(profile, d).ablation_backbones
        for kind, key in page.glue:
            if page.notebook == "ablation" and key.split("-", 1)[-1] not in backbones and key != "figure":
                continue  # a backbone the profile leaves out on this dataset (said in the note above)
            if kind == "text" and key.startswith("verdict"):
                lines += ["**Verdict.**", ""]
            elif key == "sememes":
                lines += ["**Sememes** (read by the SeeDRec page)", ""]
            elif key.startswith("table-"):
                lines += [f"**{key[len('table-'):]} backbone**", ""]
            lines += [f"```{{glue:any}} {key}", f":doc: {doc}", "```", ""]
        lines += [f"Notebook: {{doc}}`{page.notebook}/{d}`", ""]
    return "\n".join(lines)


def _profile_line(profile: str, notebook: str) -> str:
    """The profile's settings as they apply to ``notebook``'s runs (before any thinning per dataset)."""
    p = get_profile(profile)
    seeds = p.seeds_for(notebook)
    seed_text = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    if notebook == "seedrec" and len(set(p.seedrec_seeds_by_backbone().values())) > 1:
        seed_text += " (each backbone's seeds: see each dataset's note)"
    if notebook == "datasets":
        return "statistics of the data; nothing is trained"
    if notebook == "complexity":
        return f"timing runs of {p.timing_epochs} epoch{'s' if p.timing_epochs > 1 else ''} per model, {seed_text}"
    retry = (f" ({p.plateau_patience} for a run that stopped on an early plateau at patience {p.patience}: "
             f"it is trained again, and its row says so)") if p.plateau_patience else ""
    return f"at most {p.epochs} epochs, patience {p.patience}{retry}, {seed_text}"


def _coverage_cells(gen: Path) -> list[dict]:
    """The per notebook x dataset run counts ``mealrec reproduce --plan`` last wrote (none if it never ran)."""
    path = gen / "coverage.json"
    if not (path.exists() and (gen / "coverage.md").exists()):
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        order = {d: i for i, d in enumerate(data["datasets"])}
        return sorted(data["cells"], key=lambda c: order.get(c["dataset"], len(order)))
    except (ValueError, KeyError, TypeError) as e:
        raise MealRecError(f"{path} is not a coverage file written by `mealrec reproduce --plan` ({e}); "
                           "delete it or rerun `mealrec reproduce --plan`") from None


def write_book_pages(profile: str, root: Path | None = None) -> Path:
    """Write the profile's table/figure pages and its table of contents; returns the toc path."""
    import yaml

    root = Path(root) if root is not None else repo_root()
    gen = root / "book" / "generated" / profile
    coverage = _coverage_cells(gen)
    chapters = []
    for page in PAGES:
        datasets = sorted(p.stem for p in (gen / page.notebook).glob("*.ipynb") if not p.name.startswith("."))
        if not datasets:
            continue
        pending = [c for c in coverage if c["notebook"] == page.notebook and c["dataset"] not in datasets]
        with atomic_path(gen / f"{page.slug}.md") as tmp:
            tmp.write_text(_page_markdown(page, profile, datasets, pending), encoding="utf-8")
        chapters.append({"file": f"generated/{profile}/{page.slug}",
                         "sections": [{"file": f"generated/{profile}/{page.notebook}/{d}"} for d in datasets]})
    if (gen / "coverage.md").exists():  # written by `mealrec reproduce --plan`
        chapters.append({"file": f"generated/{profile}/coverage"})
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {"caption": "The study", "chapters": [{"file": p} for p in STATIC_PAGES]},
            {"caption": f"Tables and figures ({profile} profile)", "chapters": chapters},
            {"caption": "Using the companion", "chapters": [{"file": p} for p in CLOSING_PAGES]},
        ],
    }
    path = gen / "_toc.yml"
    with atomic_path(path) as tmp:
        tmp.write_text("# Written by `mealrec reproduce`; do not edit.\n" + yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    return path


def build_book(profile: str, strict: bool = True, root: Path | None = None) -> Path:
    """Build the HTML book for ``profile`` with jupyter-book 1.x; returns the HTML folder."""
    root = Path(root) if root is not None else repo_root()
    toc = write_book_pages(profile, root)
    out = root / "book" / "_build" / profile
    exe = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if exe is None:
        raise MealRecError("jupyter-book is not installed; install the pinned requirements (requirements.txt)")
    cmd = [exe, "build", str(root / "book"), "--config", str(root / "_config.yml"), "--toc", str(toc),
           "--path-output", str(out), "--all"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MealRecError(f"jupyter-book build failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return out / "_build" / "html"


_CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=8000")
_RAW_TEX = ("\\(", "\\[", "$$", "\\frac", "\\mathbf", "\\begin{")


def _visible_text(dom: str) -> str:
    """The DOM without scripts, styles and typeset math (what a reader sees as text)."""
    for tag in ("script", "style", "mjx-container", "mjx-assistive-mml", "math"):
        dom = re.sub(rf"(?is)<{tag}\b.*?</{tag}>", " ", dom)
    return re.sub(r"(?s)<[^>]+>", " ", dom)


def browser_check(html_dir: str | Path, chromium: str | None = None, screenshot: str | None = "table2.html",
                  screenshot_path: str | Path | None = None) -> dict[str, list[str]]:
    """Open every page of the built book in headless Chromium with all network lookups
    blocked, and report per page what is wrong: a page that does not load, an image whose
    file does not resolve, a table page without a table, raw TeX left untypeset (or MathJax
    not loaded offline), pasted objects that fell back to their Python repr, a glue or Sphinx
    error box. Returns ``{page: [problems]}`` (empty lists = fine). Saves a screenshot of the
    first page whose name ends with ``screenshot`` (default: the Table 2 page) to
    ``screenshot_path`` (default ``<html_dir>/../table2.png``). Needs Debian's ``chromium``."""
    exe = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise MealRecError("browser check needs Chromium: apt-get install chromium (Debian), or pass its path")
    html_dir = Path(html_dir)
    report: dict[str, list[str]] = {}
    shot_done = False
    for page in sorted(html_dir.rglob("*.html")):
        rel = str(page.relative_to(html_dir))
        if rel in ("genindex.html", "search.html"):
            continue
        proc = subprocess.run([exe, *_CHROMIUM_FLAGS, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        dom = proc.stdout
        problems = []
        if not dom.strip() or "<body" not in dom:
            problems.append(f"page did not load (chromium exit {proc.returncode})")
        source = page.read_text(encoding="utf-8")
        if ("\\(" in source or "\\[" in source or 'class="math' in source) and "mjx-container" not in dom:
            problems.append("math not typeset (MathJax missing or not loaded offline)")
        text = _visible_text(dom)
        raw = [t for t in _RAW_TEX if t in text]
        if raw:
            problems.append(f"raw TeX left in the page: {raw}")
        for src in re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', dom):
            if src.startswith("data:"):
                continue
            target = (page.parent / unquote(urlsplit(src).path)).resolve() if not urlsplit(src).scheme else Path(unquote(urlsplit(src).path))
            if not target.is_file():
                problems.append(f"image does not resolve: {src}")
        if re.match(r"(.*/)?table\d", rel) and "<table" not in dom:
            problems.append("table page without a table")
        for bad in ("&lt;IPython.core.display", "<IPython.core.display", "object at 0x", "Traceback (most recent call last)",
                    "system-message"):
            if bad in dom:
                problems.append(f"page contains {bad!r}")
        report[rel] = problems
        if screenshot and not shot_done and rel.endswith(screenshot):
            out = Path(screenshot_path) if screenshot_path else html_dir.parent / Path(screenshot).with_suffix(".png").name
            subprocess.run([exe, *_CHROMIUM_FLAGS, "--hide-scrollbars", "--window-size=1280,2400",
                            f"--screenshot={out}", page.as_uri()], capture_output=True, timeout=120)
            if not out.is_file():
                problems.append(f"screenshot not written: {out}")
            shot_done = True
    return report


__all__ = ["NOTEBOOKS", "PAGES", "browser_check", "build_book", "default_datasets", "execute", "find_data_dir", "run_notebooks", "write_book_pages"]
