"""The book's pages: one page per table or figure, written for a profile from the executed
notebooks (pasted with glue), then built with jupyter-book 1.x (``execute_notebooks: off``;
``-W -n --keep-going``). A dataset section whose runs are missing names them instead of showing
numbers; one read from runs made by older code says so; one whose data is not on this machine
is kept as committed and says that too.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from ..utils import MealRecError, atomic_path
from .artefacts import PAGES, artefact, profile_line
from .page import Page
from .paths import repo_root
from .profiles import get_profile


STATIC_PAGES = ("data", "protocol", "models", "features", "method", "implementation")
CLOSING_PAGES = ("rerun", "benchmarks")


def _read_state(out: Path) -> dict[str, list]:
    path = out.with_suffix(".runs.json")
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError as e:
        raise MealRecError(f"{path} is damaged ({e}); delete it and run `mealrec reproduce` again") from None


# --------------------------------------------------------------------------- pages
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


def _state_lines(state: dict[str, list], unchecked: bool) -> list[str]:
    """What a dataset's section says before its numbers: runs missing (no numbers then), runs
    made by older code, or a section kept as committed because the data is not on this machine."""
    lines = []
    if unchecked:
        lines += ["*Not re-checked on this machine: the MicroLens-50K files were not found, so this section is "
                  "shown as committed. `mealrec data fetch microlens-50k --data-dir DIR` (or `MEALREC_DATA`) gets "
                  "them.*", ""]
    if state.get("missing"):
        lines += [f"**Runs missing.** The run store lacks {len(state['missing'])} run(s) this section reads: "
                  + "; ".join(state["missing"]) + ". Rendering never trains: `mealrec reproduce --train-missing` "
                  "trains them.", ""]
    if state.get("older"):
        lines += ["**Made by older code.** These runs were stored by an earlier version of the model code (MealRec's: "
                  "before the positive controls settled its open choices, see the controls page), and "
                  "their rows are shown until they are retrained (`mealrec reproduce --train-missing`): "
                  + "; ".join(state["older"]) + ".", ""]
    return lines


def _page_markdown(page: Page, profile: str, datasets: list[str], pending: list[dict] | None = None,
                   states: dict[str, dict] | None = None, unchecked: Iterable[str] = ()) -> str:
    lines = [f"# {page.title}", "", f"*Protocol.* {page.caption}", "",
             f"Profile `{profile}` ({profile_line(profile, page.notebook)}). Each dataset's notebook (linked below) "
             "holds the code, every number and the provenance (library version, commit, seeds, data hash).", "",
             *_pending_line(pending or [])]
    for d in datasets:
        doc = f"{page.notebook}/{d}.ipynb"
        lines += [f"## {d}", ""]
        state = (states or {}).get(d, {})
        lines += _state_lines(state, d in unchecked)
        if state.get("missing"):
            continue
        note = get_profile(profile).thinning_note(d, page.notebook)
        if note:
            lines += [f"*{note}*", ""]
        pastes = getattr(artefact(page.notebook), "pastes", None)
        for kind, key in page.glue:
            if pastes is not None and not pastes(key, get_profile(profile, d)):
                continue  # e.g. a backbone the profile leaves out on this dataset (said in the note above)
            if kind == "text" and key.startswith("verdict"):
                lines += ["**Verdict.**", ""]
            elif key == "sememes":
                lines += ["**Sememes** (read by the SeeDRec page)", ""]
            elif key.startswith("table-"):
                lines += [f"**{key[len('table-'):]} backbone**", ""]
            lines += [f"```{{glue:any}} {key}", f":doc: {doc}", "```", ""]
        lines += [f"Notebook: {{doc}}`{page.notebook}/{d}`", ""]
    return "\n".join(lines)


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


def write_book_pages(profile: str, root: Path | None = None, unchecked: Iterable[str] = ()) -> Path:
    """Write the profile's table/figure pages and its table of contents; returns the toc path.
    ``unchecked``: datasets whose sections are kept as committed (their data is not here)."""
    import yaml

    root = Path(root) if root is not None else repo_root()
    gen = root / "book" / "generated" / profile
    coverage = _coverage_cells(gen)
    chapters = []
    for page in PAGES:
        folder = gen / page.notebook
        executed = {p.stem for p in folder.glob("*.ipynb") if not p.name.startswith(".")}
        states = {p.name[: -len(".runs.json")]: _read_state(folder / p.name.replace(".runs.json", ".ipynb"))
                  for p in folder.glob("*.runs.json")}
        listed = list(get_profile(profile).control_datasets)  # the controls in their page order
        datasets = sorted(executed | {d for d, st in states.items() if st.get("missing")},
                          key=lambda d: (listed.index(d) if d in listed else -1, d))
        if not datasets:
            continue
        shown = [d for d in datasets if d in executed and not states.get(d, {}).get("missing")]
        pending = [c for c in coverage if c["notebook"] == page.notebook and c["dataset"] not in datasets]
        with atomic_path(gen / f"{page.slug}.md") as tmp:
            tmp.write_text(_page_markdown(page, profile, datasets, pending, states, set(unchecked)), encoding="utf-8")
        chapters.append({"file": f"generated/{profile}/{page.slug}",
                         "sections": [{"file": f"generated/{profile}/{page.notebook}/{d}"} for d in shown]})
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
        tmp.write_text("# Written by `mealrec reproduce`; do not edit.\n" + yaml.safe_dump(toc, sort_keys=False),
                       encoding="utf-8")
    return path


def build_book(profile: str, strict: bool = True, root: Path | None = None, unchecked: Iterable[str] = ()) -> Path:
    """Build the HTML book for ``profile`` with jupyter-book 1.x; returns the HTML folder."""
    root = Path(root) if root is not None else repo_root()
    toc = write_book_pages(profile, root, unchecked)
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
        raise MealRecError(f"jupyter-book build failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n"
                           f"{proc.stderr[-4000:]}")
    return out / "_build" / "html"


__all__ = ["CLOSING_PAGES", "STATIC_PAGES", "build_book", "write_book_pages"]
