"""Strict configuration: YAML files into dataclasses.

Per-dataset files (``mealrec/configs/datasets/<name>.yaml``) describe the data and
may override training and model hyperparameters for that dataset; per-model files
(``mealrec/configs/models/<name>.yaml``) hold the paper's hyperparameters. Unknown
keys and wrong types are errors that name the file, the key and what is allowed.

Precedence (later wins): dataclass defaults < model file < dataset file's
``model_overrides.<model>`` and ``train`` < a user file passed with ``--config`` <
command-line flags.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from .utils import MealRecError

CONFIG_ROOT = Path(str(resources.files("mealrec") / "configs"))


@dataclass
class TrainConfig:
    """Optimisation and evaluation settings shared by every model (paper Section 5.1.3)."""

    epochs: int = 200  # maximum; early stopping usually ends sooner
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10  # epochs without a better validation NDCG@10
    eval_batch_size: int = 1024
    eval_every: int = 1
    valid_metric: str = "ndcg@10"
    seed: int = 2020
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int = 0  # 0 = torch default


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is typing.Union or str(origin) == "types.UnionType":
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and (not args or all(_type_ok(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def build_dataclass(cls: type, values: Mapping[str, Any], source: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, rejecting unknown keys and wrong types."""
    if not isinstance(values, Mapping):
        raise MealRecError(f"{source}: expected a mapping of settings, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise MealRecError(
                f"{source}: unknown key {key!r} for {cls.__name__}; valid keys: {', '.join(names)}"
            )
        tp = hints[key]
        if not _type_ok(value, tp):
            tname = getattr(tp, "__name__", str(tp))
            raise MealRecError(
                f"{source}: key {key!r} must be of type {tname}, got {value!r} ({type(value).__name__})"
            )
        if tp is float and isinstance(value, int):
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


def replace_checked(obj: Any, values: Mapping[str, Any], source: str) -> Any:
    """``dataclasses.replace`` with the same checks as :func:`build_dataclass`."""
    merged = {**dataclasses.asdict(obj), **values}
    return build_dataclass(type(obj), merged, source)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise MealRecError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise MealRecError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MealRecError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def model_config_file(model: str) -> Path:
    return CONFIG_ROOT / "models" / f"{model}.yaml"


def dataset_config_file(dataset: str) -> Path:
    return CONFIG_ROOT / "datasets" / f"{dataset}.yaml"


@dataclass
class RunConfig:
    """Everything that determines one training run; stored beside its result."""

    model: str
    dataset: str
    train: TrainConfig
    model_config: Any
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "train": dataclasses.asdict(self.train),
            "model_config": dataclasses.asdict(self.model_config),
            "sources": self.sources,
        }


USER_FILE_KEYS = ("train", "model")


def resolve_run_config(
    model: str,
    dataset: str,
    model_cls: type,
    dataset_overrides: Mapping[str, Any] | None = None,
    user_file: str | Path | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Merge defaults, the model file, the dataset's overrides, a user file and flags."""
    sources: list[str] = []
    train = TrainConfig()
    mcfg = model_cls.Config()

    mfile = model_config_file(model)
    if mfile.exists():
        data = load_yaml(mfile)
        mcfg = replace_checked(mcfg, data, str(mfile))
        sources.append(str(mfile.relative_to(CONFIG_ROOT.parent.parent)))

    if dataset_overrides:
        src = f"dataset config {dataset_config_file(dataset).name}"
        if "train" in dataset_overrides:
            train = replace_checked(train, dataset_overrides["train"], f"{src} [train]")
        per_model = dataset_overrides.get("model_overrides", {}) or {}
        if model in per_model:
            mcfg = replace_checked(mcfg, per_model[model], f"{src} [model_overrides.{model}]")

    if user_file is not None:
        data = load_yaml(user_file)
        for key in data:
            if key not in USER_FILE_KEYS:
                raise MealRecError(
                    f"{user_file}: unknown top-level key {key!r}; valid keys: {', '.join(USER_FILE_KEYS)}"
                )
        if "train" in data:
            train = replace_checked(train, data["train"], f"{user_file} [train]")
        if "model" in data:
            mcfg = replace_checked(mcfg, data["model"], f"{user_file} [model]")
        sources.append(str(user_file))

    if train_overrides:
        train = replace_checked(train, {k: v for k, v in train_overrides.items() if v is not None}, "command line")
    if model_overrides:
        mcfg = replace_checked(mcfg, model_overrides, "command line")
    return RunConfig(model=model, dataset=dataset, train=train, model_config=mcfg, sources=sources)
