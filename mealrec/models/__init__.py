"""Model registry: name -> class. A new model is one file and one line here."""
from __future__ import annotations

from ..utils import MealRecError
from .base import SequentialRecommender
from .mealrec import MealRecSASRec
from .sasrec import SASRec

MODELS: dict[str, type[SequentialRecommender]] = {
    "sasrec": SASRec,
    "mealrec-sasrec": MealRecSASRec,
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
