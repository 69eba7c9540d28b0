"""The book's one figure style, the figure writer, and text pasted by glue."""
from __future__ import annotations

from pathlib import Path

from ..utils import atomic_path


def set_style() -> None:
    """The one seaborn style of every figure in the book."""
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)


def save_figure(fig, name: str, figures_dir: str | Path) -> dict[str, str]:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` (150 dpi) and ``.pdf``, each atomically."""
    out = {}
    for ext in ("png", "pdf"):
        path = Path(figures_dir) / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        out[ext] = str(path)
    return out


def html_text(text: str):
    """``text`` as an HTML paragraph, for glue: pasting into another page keeps HTML, not Markdown."""
    import html

    from IPython.display import HTML

    return HTML(f"<p>{html.escape(text)}</p>")


__all__ = ["html_text", "save_figure", "set_style"]
