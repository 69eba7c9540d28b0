"""The results at a glance: one verdict and one number per claim of the paper and dataset.

Read from the sidecars the notebooks write (``book/generated/<profile>/<notebook>/<notebook>-<dataset>.json``),
never typed by hand. :func:`matrix` gives the cells, :func:`markdown` the table that
``mealrec reproduce --summary`` writes between the ``<!-- summary:start -->`` and
``<!-- summary:end -->`` markers of ``README.md`` and ``book/intro.md``, and :func:`figure` the same
matrix as a picture.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..utils import MealRecError, atomic_path
from .artefacts import artefact

LABELS = ("reproduces", "partly reproduces", "does not reproduce", "not tested here")
START, END = "<!-- summary:start -->", "<!-- summary:end -->"


@dataclass(frozen=True)
class Cell:
    label: str  # one of LABELS, or "" where the page has no verdict for the dataset
    number: str  # the number the page's rule turns on
    page: str  # the book page (slug) that states the rule


def _label(verdict: str) -> str:
    for lab in sorted(LABELS, key=len, reverse=True):
        if verdict.startswith(lab):
            return lab
    raise MealRecError(f"verdict without a label ({', '.join(LABELS)}): {verdict[:80]!r}")


#: The pages whose claims the matrix shows, in its row order; each page's module states its claims
#: (``CLAIMS``: the claim, where its verdict sits in the sidecar, the number beside it).
CLAIM_PAGES = ("overall", "ablation", "sensitivity", "noise", "complexity", "visualisation", "seedrec")
#: (claim, notebook, where the verdict sits in the sidecar's results, the number, page slug)
CLAIMS: tuple[tuple[str, str, tuple[str, ...], Callable[[dict], str], str], ...] = tuple(
    (claim, nb, where, number, artefact(nb).PAGE.slug)
    for nb in CLAIM_PAGES for claim, where, number in artefact(nb).CLAIMS)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["results"]
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise MealRecError(f"{path}: not a sidecar written by its notebook ({e}); render the page again "
                           "(`mealrec reproduce`)") from None


def matrix(gen: str | Path, datasets: list[str]) -> list[tuple[str, dict[str, Cell | None]]]:
    """One row per claim: ``(claim, {dataset: Cell or None})``; None where the page has no such
    section (a notebook not rendered there, or a backbone the profile leaves out)."""
    gen = Path(gen)
    rows = []
    for claim, notebook, where, number, page in CLAIMS:
        cells: dict[str, Cell | None] = {}
        for d in datasets:
            path = gen / notebook / f"{notebook}-{d}.json"
            res = _read(path) if path.exists() else None
            node = res
            for k in where:
                node = node.get(k) if isinstance(node, dict) else None
            if not isinstance(node, str):
                cells[d] = None
                continue
            try:
                older = " †" if older_code(gen, notebook, d) else ""  # explained in the note below the table
                cells[d] = Cell(_label(node), number(res) + older, page)
            except (KeyError, TypeError, ValueError, ZeroDivisionError, StopIteration) as e:
                raise MealRecError(f"{path}: cannot read the number of {claim!r} ({type(e).__name__}: {e})") from None
        rows.append((claim, cells))
    return rows


def older_code(gen: str | Path, notebook: str, dataset: str) -> bool:
    """Whether the page section read runs made by older code (its ``<dataset>.runs.json`` state)."""
    path = Path(gen) / notebook / f"{dataset}.runs.json"
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("older")) if path.exists() else False
    except ValueError:
        return False


def controls_rows(gen: str | Path) -> list[tuple[str, dict[str, str]]]:
    """One row per positive control with a sidecar: ``(dataset, {backbone: "label: number"})``."""
    rows = []
    order = ("content", "temporal", "selection")
    for path in Path(gen).glob("controls/controls-*.json"):
        res = _read(path)
        table = {(r["backbone"], r["row"]): r for r in res["table"]}
        cells = {}
        for b, text in res["verdicts"].items():
            label = "uses the planted signal" if text.startswith("uses") else "does not use it"
            n = {row: table[(b, row)]["N@10"] for row in ("backbone", "full", "-TCD", "-NPD", "-TCD-NPD")}
            if res["kind"] == "selection":
                number = f"full {n['full']:.3f} vs -NPD {n['-NPD']:.3f}"
            elif res["kind"] == "temporal":
                shuffled = table[(b, "full")]["N@10 shuffled"]
                number = f"full {n['full']:.3f} ({shuffled:.3f} shuffled) vs {b} {n['backbone']:.3f}"
            else:
                weakest = min(("full", "-TCD", "-NPD", "-TCD-NPD"), key=lambda v: n[v])
                number = f"weakest variant {weakest} {n[weakest]:.3f} vs {b} {n['backbone']:.3f}"
            cells[b] = f"**{label}**: N@10 {number}"
        rows.append((res["kind"], path.stem.split("-", 1)[1], cells))
    return [(d, cells) for kind, d, cells in sorted(rows, key=lambda r: order.index(r[0]) if r[0] in order else 9)]


def controls_markdown(rows: list[tuple[str, dict[str, str]]], link: str | None = None) -> str:
    """The controls as a Markdown table (MealRec on each backbone; the page states the rules)."""
    if not rows:
        return ""
    backbones = sorted({b for _, cells in rows for b in cells}, key=lambda b: (b != "sasrec", b))
    name = f"[Positive controls]({link})" if link else "Positive controls"
    head = f"| {name} | " + " | ".join(f"MealRec-{b}" for b in backbones) + " |"
    out = [head, "|---|" + "---|" * len(backbones)]
    out += [f"| `{d}` | " + " | ".join(cells.get(b, "not run") for b in backbones) + " |" for d, cells in rows]
    return "\n".join(out)


def datasets_of(gen: str | Path) -> list[str]:
    """The datasets some page of ``gen`` has a sidecar for: synthetic ones first, small before big."""
    names = {p.stem.split("-", 1)[1] for p in Path(gen).glob("*/*-*.json")
             if p.stem.startswith(p.parent.name + "-") and p.parent.name != "controls"}  # controls: their own page
    return sorted(names, key=lambda d: (not d.startswith("synthetic"), "big" in d, d))


def markdown(rows, datasets: list[str], link: Callable[[str], str] | None = None) -> str:
    """The matrix as a Markdown table; ``link(page)`` gives the target of each claim's page link."""
    head = "| claim | " + " | ".join(f"`{d}`" for d in datasets) + " |"
    out = [head, "|---|" + "---|" * len(datasets)]
    for claim, cells in rows:
        page = next((c.page for c in cells.values() if c), "")
        name = f"[{claim}]({link(page)})" if link and page else claim
        texts = [f"**{c.label}**: {c.number}" if c else "not run here" for c in (cells[d] for d in datasets)]
        out.append(f"| {name} | " + " | ".join(texts) + " |")
    return "\n".join(out)


def replace_block(text: str, block: str, where: str = "the file") -> str:
    """``text`` with what stands between the summary markers replaced by ``block``."""
    i, j = text.find(START), text.find(END)
    if i < 0 or j < i:
        raise MealRecError(f"{where} has no '{START}' ... '{END}' block for the results matrix")
    return text[: i + len(START)] + "\n" + block + "\n" + text[j:]


def block_of(text: str) -> str:
    i, j = text.find(START), text.find(END)
    return text[i + len(START): j].strip() if 0 <= i < j else ""


def figure(rows, datasets: list[str], path: str | Path) -> Path:
    """The matrix as a picture: one coloured cell per claim and dataset, the label inside."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    colours = {"reproduces": "#4daf4a", "partly reproduces": "#fdd835", "does not reproduce": "#e57373",
               "not tested here": "#bdbdbd", "": "#ffffff"}
    fig, ax = plt.subplots(figsize=(2.4 + 2.6 * len(datasets), 0.5 * len(rows) + 1.0))
    for i, (claim, cells) in enumerate(rows):
        for j, d in enumerate(datasets):
            c = cells[d]
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=colours[c.label if c else ""], edgecolor="white"))
            ax.text(j + 0.5, i + 0.5, c.label if c else "not run", ha="center", va="center", fontsize=8)
    ax.set_xlim(0, len(datasets))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([j + 0.5 for j in range(len(datasets))], datasets)
    ax.xaxis.tick_top()
    ax.set_yticks([i + 0.5 for i in range(len(rows))], [claim for claim, _ in rows], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def targets(root: Path, profile: str) -> dict[Path, Callable[[str], str] | None]:
    """The files that carry the matrix, each with how it links to a page."""
    return {root / "README.md": lambda page: f"book/generated/{profile}/{page}.md",
            root / "book" / "intro.md": None}  # the intro is built with every profile's toc: no page links


def expected_blocks(root: Path, profile: str = "full") -> dict[Path, str]:
    """What the summary block of each target file must read, from the sidecars."""
    gen = root / "book" / "generated" / profile
    datasets = datasets_of(gen)
    rows = matrix(gen, datasets)
    from .profiles import get_profile

    capped = [f"{d} at most {t['epochs']} epochs" for d, t in get_profile(profile).thinned.items()
              if d in datasets and "epochs" in t]
    note = (f"*Generated by `mealrec reproduce --summary` from the `{profile}` profile's pages, which state the rule "
            "behind each verdict. On MicroLens the visual features are placeholders (no video content offline)."
            + (f" Training there is capped ({'; '.join(capped)}), so those runs are not converged." if capped else "")
            + (" † The page reads runs made by older code (MealRec's: made before the positive controls settled its "
               "settings), shown until they are retrained." if any(c and c.number.endswith(" †")
                                                                  for _, cells in rows for c in cells.values()) else "")
            + "*")
    crows = controls_rows(gen)
    out = {}
    for f, link in targets(root, profile).items():
        controls = controls_markdown(crows, link("controls") if link else None)
        out[f] = (controls + "\n\n" if controls else "") + markdown(rows, datasets, link) + "\n\n" + note
    return out


def write(root: Path, profile: str = "full") -> list[Path]:
    """Rewrite the summary blocks and ``figures/<profile>/summary.png``; returns what it wrote."""
    written = []
    for f, block in expected_blocks(root, profile).items():
        text = f.read_text(encoding="utf-8")
        new = replace_block(text, block, str(f))
        if new != text:
            with atomic_path(f) as tmp:
                tmp.write_text(new, encoding="utf-8")
        written.append(f)
    gen = root / "book" / "generated" / profile
    datasets = datasets_of(gen)
    written.append(figure(matrix(gen, datasets), datasets, root / "figures" / profile / "summary.png"))
    return written


__all__ = ["CLAIMS", "Cell", "LABELS", "block_of", "controls_markdown", "controls_rows",
           "datasets_of", "expected_blocks", "figure", "markdown", "matrix", "older_code", "replace_block", "write"]
