"""Declared versions of the math a run executes: what a stored run's key holds instead of source code.

* :data:`CORE_VERSION` covers the code every run executes: the trainer, evaluation, configuration,
  utilities, the dataset base and feature code, and the shared model modules (``models/base.py``,
  ``models/layers.py``, ``models/diffusion.py``).
* Each registered model class (``mealrec.models.MODELS``) declares ``version`` in its own body; it
  covers everything the model's runs execute beyond the core: its module, the classes it inherits
  from and the helpers it calls. A run's versions are its model's and its backbone's
  (MealRec-SASRec: ``mealrec-sasrec`` and ``sasrec``), keyed by registered name, so moving code
  between classes or modules changes no key.

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


def model_versions(model: str) -> dict[str, int]:
    """``{"core": CORE_VERSION, model: its version[, backbone: its version]}`` for a run of ``model``."""
    from .models import get_model_class

    out = {"core": CORE_VERSION}
    cls = get_model_class(model)
    names = [model] + ([cls.backbone_name] if getattr(cls, "backbone_name", "") else [])
    for name in names:
        c = get_model_class(name)
        if "version" not in vars(c):
            raise MealRecError(f"{c.__module__}.{c.__qualname__} ({name}) declares no `version` of its own: add "
                               "`version = 1` to its body (see mealrec/versions.py)")
        out[name] = int(vars(c)["version"])
    return out


__all__ = ["CORE_VERSION", "model_versions"]
