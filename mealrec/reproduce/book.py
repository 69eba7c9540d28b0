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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..utils import MealRecError, atomic_path
from .profiles import get_profile


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
    Page("controls", "controls", "Positive controls: does our MealRec use content?",
         "Planted datasets whose answer lies in the frames of the last item (control-content), in their order "
         "(control-temporal), or in the frame segment the user's history selects (control-selection). On each: "
         "the bare SASRec and TedRec backbones and MealRec's four variants on them at three seeds (means and "
         "standard deviations over the seeds), trained for a fixed number of epochs (validation targets there "
         "are unpredictable tails, so the model is the last epoch's), at batch size 256; the content-reading "
         "reference (a rule that reads the planted frames directly); the analytic floor (what an ID-only model "
         "can reach) and ceiling (a perfect reader of the content); and every MealRec run evaluated again with "
         "each item's frames shuffled. p-values are paired t-tests over test users of the seed-averaged N@10. "
         "MealRec here runs the settings these controls chose (`mealrec/configs/models/mealrec-*.yaml`); the other "
         "pages still show MealRec runs made before them (`V1_SETTINGS` in `mealrec/models/mealrec.py`), marked "
         "'Made by older code', until those runs are retrained on the final code.",
         (("text", "generator"), ("any", "bounds"), ("any", "table"), ("text", "verdict"), ("figure", "figure"))),
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
         "synthetic-small and on microlens-small's SASRec rows, with a reading, are in "
         "`benchmarks/results/2026-11-24/` "
         "and `benchmarks/results/2026-11-25/`); p-values are paired t-tests "
         "over test users. Then S2IDM's parameters and training time per epoch against an item-level diffusion "
         "of the same shape, timed on the same users, in turn, fastest of three rounds (a live timing on this "
         "machine: it moves with the machine's load, which the table names as the 1-minute load average against "
         "the cores).",
         (("any", "table"), ("text", "verdict"), ("any", "cost"), ("figure", "figure"))),
)
NOTEBOOKS = tuple(p.notebook for p in PAGES)
STATIC_PAGES = ("data", "protocol", "models", "features", "method", "implementation")
CLOSING_PAGES = ("rerun", "benchmarks")


def repo_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "notebooks").is_dir() or not (root / "book").is_dir():
        raise MealRecError(f"`mealrec reproduce` runs from a checkout of the repository; {root} has no notebooks/ "
                           "and book/")
    return root


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
             f"Profile `{profile}` ({_profile_line(profile, page.notebook)}). Each dataset's notebook (linked below) "
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
    if notebook == "controls":
        cs = p.control_seeds
        return (f"{p.control_epochs} epochs per run, no early stopping, seed{'s' if len(cs) > 1 else ''} "
                f"{', '.join(map(str, cs))}")
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


__all__ = ["CLOSING_PAGES", "NOTEBOOKS", "PAGES", "Page", "STATIC_PAGES", "build_book", "repo_root", "write_book_pages"]
