"""Reproduction of the paper's tables and figures: profiles, a resumable run store, the
helpers the notebooks call, and the papermill/jupyter-book runner (``mealrec reproduce``)."""
from .profiles import PROFILES, Profile, get_profile, parse_models, parse_seeds
from .store import RunStore

__all__ = ["PROFILES", "Profile", "RunStore", "get_profile", "parse_models", "parse_seeds"]
