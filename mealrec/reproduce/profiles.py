"""Profiles: how much work one reproduction run does.

``smoke`` checks that every notebook runs end to end (CI: a few seconds per notebook),
``quick`` gives a first look in minutes to an hour on 2 cores, ``full`` follows the
paper's protocol (up to 200 epochs with early stopping, patience 10) and is what the
committed book shows. Every notebook reads the same profile object, so a profile
changes all tables and figures together.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..utils import MealRecError


@dataclass(frozen=True)
class Profile:
    name: str
    epochs: int  # maximum epochs per training run (early stopping may end sooner)
    patience: int  # epochs without a better valid NDCG@10 before stopping
    seeds: tuple[int, ...]  # default seeds of Table 2 (significance is over users, as the paper's)
    lambdas: tuple[float, ...]  # Figure 4's lambda axis (the paper: 0.01 ... 0.9)
    steps: tuple[int, ...]  # Figure 4's T axis (the paper: 5 ... 25)
    noise: tuple[float, ...]  # Figure 5's sigma axis
    timing_epochs: int  # epochs per Table 3 timing run
    tsne_users: int  # users drawn for Figure 7
    synthetic_datasets: tuple[str, ...]  # datasets `mealrec reproduce` runs by default
    real_datasets: tuple[str, ...]  # added when the MicroLens data directory is found

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", epochs=1, patience=1, seeds=(2020,), lambdas=(0.1, 0.5), steps=(5, 10),
        noise=(0.0, 0.5), timing_epochs=1, tsne_users=100,
        synthetic_datasets=("synthetic-tiny",), real_datasets=(),
    ),
    "quick": Profile(
        name="quick", epochs=3, patience=3, seeds=(2020,), lambdas=(0.1, 0.5), steps=(5, 10),
        noise=(0.0, 0.1, 0.3, 0.5), timing_epochs=1, tsne_users=300,
        synthetic_datasets=("synthetic-small",), real_datasets=("microlens-small", "microlens-big"),
    ),
    "full": Profile(
        name="full", epochs=200, patience=10, seeds=(2020,), lambdas=(0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9),
        steps=(5, 10, 15, 20, 25), noise=(0.0, 0.1, 0.3, 0.5), timing_epochs=3, tsne_users=1000,
        synthetic_datasets=("synthetic-small", "synthetic-medium"), real_datasets=("microlens-small", "microlens-big"),
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise MealRecError(f"unknown profile {name!r}; valid: {', '.join(PROFILES)}") from None


__all__ = ["PROFILES", "Profile", "get_profile"]
