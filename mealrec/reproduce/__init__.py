"""Reproduction of the paper's tables and figures: profiles, a resumable run store, one module per
table or figure (:mod:`.artefacts` lists them), the notebooks' setup (:mod:`.notebook`), and the
papermill runner and book build behind ``mealrec reproduce`` (:mod:`.execution`, :mod:`.book`)."""
from .notebook import parse_models, parse_seeds, setup
from .profiles import PROFILES, Profile, get_profile
from .store import RunStore

__all__ = ["PROFILES", "Profile", "RunStore", "get_profile", "parse_models", "parse_seeds", "setup"]
