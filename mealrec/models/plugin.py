"""Models that wrap a sequential backbone (MealRec, SeeDRec).

A wrapper's configuration holds the backbone's settings *resolved*: the backbone's defaults,
then its own model file (``mealrec/configs/models/<backbone>.yaml``), then the wrapper's
``backbone:`` overrides. They are resolved when the configuration is built, not inside the
model's constructor, so they are recorded beside every run and are part of its store key:
editing ``tedrec.yaml`` retrains MealRec-TedRec instead of silently reusing its runs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict

import torch

from ..config import build_dataclass, load_yaml, model_config_file, replace_checked
from .base import SequentialRecommender


def resolve_backbone(name: str, overrides: dict, source: str) -> dict:
    """The settings of backbone ``name``: defaults < its model file < ``overrides``."""
    from . import get_model_class

    cfg = get_model_class(name).Config()
    path = model_config_file(name)
    if path.exists():
        cfg = replace_checked(cfg, load_yaml(path), str(path))
    return asdict(replace_checked(cfg, overrides, source))


def with_backbone(base: type, backbone: str, name: str) -> type:
    """A subclass of the dataclass ``base`` whose ``backbone`` field is resolved for ``backbone``
    on construction (idempotent: resolving resolved settings gives them back)."""

    def __post_init__(self):
        if hasattr(base, "__post_init__"):
            base.__post_init__(self)
        self.backbone = resolve_backbone(backbone, self.backbone, f"{name} [backbone]")

    cls = dataclasses.make_dataclass(name, [], bases=(base,), namespace={"__post_init__": __post_init__})
    cls.__module__ = base.__module__
    cls.__doc__ = f"{base.__name__} with the {backbone} backbone's settings resolved."
    return cls


class BackbonePlugin(SequentialRecommender):
    """Base of the models that add modules to a backbone: builds the backbone from the resolved
    ``config.backbone`` and delegates item representations, scoring and the ranking loss to it."""

    backbone_name: str = ""

    def build_backbone(self, dataset):
        """Build ``self.backbone``; returns its configuration."""
        from . import get_model_class

        bcls = get_model_class(self.backbone_name)
        # resolving is idempotent: a configuration built by the model's Config is resolved already
        source = f"{type(self).__name__} config [backbone]"
        bcfg = build_dataclass(bcls.Config, resolve_backbone(self.backbone_name, self.config.backbone, source), source)
        self.backbone = bcls(bcfg, dataset)
        return bcfg

    def item_representations(self) -> torch.Tensor:
        return self.backbone.item_representations()

    def score(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.backbone.score(h, items)

    def score_operands(self, h: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone.score_operands(h, items)

    def rec_loss(self, out, items, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.backbone.rec_loss(out, items, batch)


__all__ = ["BackbonePlugin", "resolve_backbone", "with_backbone"]
