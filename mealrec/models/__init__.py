"""Model registry: name -> class. A new model is one file and one line here."""
from __future__ import annotations

from ..utils import MealRecError
from .base import SequentialRecommender
from .cl4srec import CL4SRec
from .diqdiff import DiQDiff
from .dmmd4sr import DMMD4SR
from .iisan import IISAN, IISANVersa
from .mealrec import MealRecCL4SRec, MealRecSASRec, MealRecTedRec
from .mmgcn import MMGCN
from .morec import MoRec
from .sasrec import SASRec
from .seedrec import SeeDRecCL4SRec, SeeDRecSASRec
from .ssdrec import SSDRec
from .tedrec import TedRec

MODELS: dict[str, type[SequentialRecommender]] = {
    "sasrec": SASRec,
    "cl4srec": CL4SRec,
    "tedrec": TedRec,
    "ssdrec": SSDRec,
    "diqdiff": DiQDiff,
    "morec": MoRec,
    "iisan": IISAN,
    "dmmd4sr": DMMD4SR,
    "mmgcn": MMGCN,
    "iisan-versa": IISANVersa,
    "mealrec-sasrec": MealRecSASRec,
    "mealrec-cl4srec": MealRecCL4SRec,
    "mealrec-tedrec": MealRecTedRec,
    "seedrec-sasrec": SeeDRecSASRec,
    "seedrec-cl4srec": SeeDRecCL4SRec,
}


def model_names() -> list[str]:
    return sorted(MODELS)


def get_model_class(name: str) -> type[SequentialRecommender]:
    try:
        return MODELS[name]
    except KeyError:
        raise MealRecError(f"unknown model {name!r}; valid names: {', '.join(model_names())}") from None


def build_model(name: str, config, dataset) -> SequentialRecommender:
    return get_model_class(name)(config, dataset)


__all__ = ["MODELS", "SequentialRecommender", "build_model", "get_model_class", "model_names"]
