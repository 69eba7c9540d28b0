"""What an artefact module tells the book about its page (:class:`Page`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .profiles import Profile


@dataclass(frozen=True)
class Page:
    notebook: str  # notebooks/<notebook>.ipynb
    slug: str  # the book page: generated/<profile>/<slug>.md
    title: str
    caption: str  # the protocol, stated once per page
    glue: tuple[tuple[str, str], ...]  # (kind, key) pasted per dataset: kind in {"any", "figure", "text"}


def seeds_text(seeds) -> str:
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def run_line(p: "Profile", notebook: str, seeds_note: str = "") -> str:
    """The profile's settings as they apply to ``notebook``'s training runs (before any thinning per
    dataset): what a page says unless its module has a ``profile_line`` of its own."""
    retry = (f" ({p.plateau_patience} for a run that stopped on an early plateau at patience {p.patience}: "
             f"it is trained again, and its row says so)") if p.plateau_patience else ""
    return f"at most {p.epochs} epochs, patience {p.patience}{retry}, {seeds_text(p.seeds_for(notebook))}{seeds_note}"


__all__ = ["Page", "run_line", "seeds_text"]
