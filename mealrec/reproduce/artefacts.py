"""The registry of the paper's tables and figures: one module per artefact, in the book's order.

Each artefact module holds its page's run requests (``notebook_requests``), its computation
(returning a dataclass), its verdict rule and prose, its figure, its sidecar (``sidecar``) and its
page (``PAGE``, ``FIELDS``: the profile fields it reads). Optional attributes: ``TAKES_MODELS``
(the notebook's MODELS parameter picks rows), ``CONTROLS_ONLY`` (the page runs on the positive
controls and on nothing else), ``TRAINS`` (False: the page trains nothing), ``notebook_seeds``
(how the notebook's SEEDS parameter is read) and ``profile_line`` (the page's profile sentence).
"""
from __future__ import annotations

from types import ModuleType

from ..utils import MealRecError
from . import ablation, controls, noise, representations, seedrec, sensitivity, table1, table2, table3
from .page import run_line
from .profiles import Profile, get_profile
from .requests import RunRequest

ARTEFACTS: dict[str, ModuleType] = {m.NOTEBOOK: m for m in (table1, controls, table2, table3, ablation, sensitivity,
                                                              noise, representations, seedrec)}
#: The notebooks (``notebooks/<name>.ipynb``), in the book's page order.
NOTEBOOKS = tuple(ARTEFACTS)
PAGES = tuple(m.PAGE for m in ARTEFACTS.values())
#: The profile fields each notebook reads (a page's thinning note names only these).
NOTEBOOK_FIELDS: dict[str, tuple[str, ...]] = {n: m.FIELDS for n, m in ARTEFACTS.items()}
#: The notebooks whose rows a ``MODELS`` parameter picks; the others' rows are fixed by their page.
MODELS_NOTEBOOKS = tuple(n for n, m in ARTEFACTS.items() if getattr(m, "TAKES_MODELS", False))


def artefact(notebook: str) -> ModuleType:
    """The module of ``notebook``'s table or figure."""
    try:
        return ARTEFACTS[notebook]
    except KeyError:
        raise MealRecError(f"unknown notebook {notebook!r}; valid: {', '.join(NOTEBOOKS)}") from None


def trains(notebook: str) -> bool:
    """Whether ``notebook``'s page reads training runs."""
    return getattr(artefact(notebook), "TRAINS", True)


def runs_on(notebook: str, dataset: str) -> bool:
    """Whether ``notebook`` renders on ``dataset``: the controls page on the positive controls only,
    every other page on everything else."""
    return getattr(artefact(notebook), "CONTROLS_ONLY", False) == controls.is_control(dataset)


def notebook_requests(notebook: str, dataset: str, profile: Profile | str) -> list[RunRequest]:
    """The runs ``notebook`` trains or reads on ``dataset`` with its default parameters
    (MODELS and SEEDS None), in the order it asks for them."""
    prof = get_profile(profile, dataset) if isinstance(profile, str) else profile
    module = artefact(notebook)
    return module.notebook_requests(dataset, prof) if runs_on(notebook, dataset) else []


def profile_line(profile: str, notebook: str) -> str:
    """The profile's settings as they apply to ``notebook``'s runs (before any thinning per dataset)."""
    p = get_profile(profile)
    module = artefact(notebook)
    return module.profile_line(p) if hasattr(module, "profile_line") else run_line(p, notebook)


__all__ = ["ARTEFACTS", "MODELS_NOTEBOOKS", "NOTEBOOKS", "NOTEBOOK_FIELDS", "PAGES", "artefact", "notebook_requests",
           "profile_line", "runs_on", "trains"]
