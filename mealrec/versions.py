"""Declared versions of the math a run executes: what a stored run's key holds instead of source code.

* :data:`CORE_VERSION` covers the code every run executes: the trainer, evaluation, configuration,
  utilities, the dataset base and feature code, and the shared model modules (``models/base.py``,
  ``models/layers.py``, ``models/diffusion.py``).
* Each model class declares ``version`` in its own body; it covers the class and every helper in its
  module. A model's versions are those of every library class in its method resolution order and in
  its backbone's (MealRec-SASRec: ``MealRec``, ``BackbonePlugin``, ``MealRecSASRec``, ``SASRec``).

Bump a version when the numbers a run produces change (a new default, a fix, another formula), and
record a golden trajectory for the new version (:mod:`mealrec.golden`). A change that only moves code
or reorders float operations keeps the version, so the stored runs stay valid; the golden ledger test
fails when a change moves a trajectory without a bump.
"""
from __future__ import annotations

from .utils import MealRecError

#: Version of the shared core (see the module docstring). Bump it, and record every model's golden
#: trajectory anew, when a change to the core changes any run's numbers.
CORE_VERSION = 1


def _classes(cls) -> list[type]:
    from .models.base import SequentialRecommender  # covered by CORE_VERSION
    return [c for c in cls.__mro__ if c.__module__.startswith("mealrec.models.") and c is not SequentialRecommender]


def versioned_classes(model: str) -> list[type]:
    """The library classes whose code a run of ``model`` executes (its own and its backbone's)."""
    from .models import get_model_class
    cls = get_model_class(model)
    found = _classes(cls)
    backbone = getattr(cls, "backbone_name", "")
    if backbone:
        found += [c for c in _classes(get_model_class(backbone)) if c not in found]
    return found


def model_versions(model: str) -> dict[str, int]:
    """``{"core": CORE_VERSION, <class name>: version, ...}`` for a run of ``model``."""
    out = {"core": CORE_VERSION}
    for c in versioned_classes(model):
        if "version" not in vars(c):
            raise MealRecError(f"{c.__module__}.{c.__qualname__} declares no `version`: add `version = 1` to its body "
                               "(see mealrec/versions.py)")
        out[c.__qualname__] = int(vars(c)["version"])
    return out


__all__ = ["CORE_VERSION", "model_versions", "versioned_classes"]
