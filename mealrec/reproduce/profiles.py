"""Profiles: how much work one reproduction run does, read from ``mealrec/configs/profiles/<name>.yaml``.

``smoke`` checks that every notebook runs end to end (CI: a few seconds per notebook),
``quick`` gives a first look in minutes on 2 cores (3 epochs per run; on MicroLens a
seeded sample of users, ``max_users``), ``full`` follows the
paper's protocol (up to 200 epochs with early stopping, patience 10) and is what the
committed book shows. Every notebook reads the same profile object, so a profile
changes all tables and figures together. Each YAML file's comments say why a value is what it
is; an unknown key is an error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

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
    #: Backbones of the ablation page: TedRec is Figure 3, SASRec and CL4SRec are Figure 6.
    ablation_backbones: tuple[str, ...] = ("tedrec", "sasrec", "cl4srec")
    #: Train and evaluate on a seeded sample of this many users (None: every user); a store
    #: opened with this profile's name cuts the dataset (``RunStore(..., profile=...)``).
    max_users: int | None = None
    #: A run whose early stopping fired on an early plateau (best epoch <= PLATEAU_BEST_EPOCH,
    #: stopped before the epoch cap) is trained again with this patience and the pages use that
    #: run (None: never); why: ``configs/profiles/full.yaml``.
    plateau_patience: int | None = None
    #: backbone -> patience for every run built on that backbone: the backbone itself, its
    #: MealRec and SeeDRec plug-ins and their ablations (:func:`backbone_of`), so that the rows
    #: a page compares with each other train at equal patience. Set per dataset in ``thinned``
    #: where a backbone's validation metric is known to sit flat before it climbs.
    backbone_patience: dict = field(default_factory=dict)
    #: Seeds of the SeeDRec page ("Beyond the paper"; None: ``seeds``); it is designed for 3.
    seedrec_seeds: tuple[int, ...] | None = None
    #: backbone -> seeds of the SeeDRec page's rows on that backbone, in place of
    #: ``seedrec_seeds``; an empty tuple leaves the backbone off the page. Backbones not named
    #: keep ``seedrec_seeds``. See :meth:`seedrec_seeds_by_backbone`.
    seedrec_backbone_seeds: dict = field(default_factory=dict)
    #: model -> seeds of its Table 2 row in place of ``seeds`` (the headline rows at more seeds than
    #: the others); models not named keep ``seeds``. A notebook's ``SEEDS`` replaces all of them.
    model_seeds: dict = field(default_factory=dict)
    #: backbone -> seeds of the ablation page's rows on it (Figures 3 and 6); backbones not named
    #: run at the first of ``seeds``.
    ablation_seeds: dict = field(default_factory=dict)
    #: Per-dataset thinning: dataset -> {field: value} replacing the fields above on that
    #: dataset only (a grid or an epoch budget that cannot fit on 2 cores). Stated on every page.
    thinned: dict = field(default_factory=dict)
    #: dataset -> {thinned field: why, e.g. the full grid's `--plan` cost}: stated after the
    #: thinning note on the pages that read that field.
    why_thinned: dict = field(default_factory=dict)
    #: The positive controls: only the controls page runs on them, and it runs on nothing else.
    #: Their validation targets are unpredictable, so their runs train a fixed number of epochs
    #: (see :mod:`mealrec.reproduce.controls`), at these seeds.
    control_datasets: tuple[str, ...] = ()
    control_seeds: tuple[int, ...] = (2020,)
    control_epochs: int = 30
    dataset: str | None = None  # set by :meth:`for_dataset`

    def to_dict(self) -> dict:
        return asdict(self)

    def seeds_for(self, notebook: str) -> tuple[int, ...]:
        """The default seeds of ``notebook`` (the SeeDRec page may have its own: for it, every
        seed any of its backbones runs, see :meth:`seedrec_seeds_by_backbone`)."""
        if notebook != "seedrec":
            return self.seeds
        return tuple(sorted({s for seeds in self.seedrec_seeds_by_backbone().values() for s in seeds}))

    def seedrec_seeds_by_backbone(self, seeds=None) -> dict[str, tuple[int, ...]]:
        """backbone -> the seeds of the SeeDRec page's rows on it, for the backbones the page
        shows (in :data:`SEEDREC_BACKBONES` order). ``seeds`` (a notebook's ``SEEDS``), when
        given, replaces the seeds of every backbone the page shows."""
        unknown = sorted(set(self.seedrec_backbone_seeds) - set(SEEDREC_BACKBONES))
        if unknown:
            raise MealRecError(f"profile {self.name!r}: seedrec_backbone_seeds names {', '.join(unknown)}; "
                               f"valid backbones: {', '.join(SEEDREC_BACKBONES)}")
        default = tuple(self.seedrec_seeds or self.seeds)
        out = {b: tuple(self.seedrec_backbone_seeds.get(b, default)) for b in SEEDREC_BACKBONES}
        return {b: (tuple(seeds) if seeds else s) for b, s in out.items() if s}

    def patience_for(self, model: str) -> int:
        """The patience runs of ``model`` train with (see ``backbone_patience``)."""
        return int(self.backbone_patience.get(backbone_of(model), self.patience))

    def for_dataset(self, dataset: str) -> "Profile":
        """This profile as it applies to ``dataset`` (its thinned fields replaced)."""
        return replace(self, dataset=dataset, **self.thinned.get(dataset, {}))

    def thinning_note(self, dataset: str, notebook: str | None = None) -> str:
        """One sentence naming what the profile thins on ``dataset`` ('' when nothing is thinned);
        with ``notebook``, only the fields that notebook uses (its artefact module's ``FIELDS``)."""
        changes = dict(self.thinned.get(dataset, {}))
        if notebook is not None:
            from .artefacts import NOTEBOOK_FIELDS

            used = NOTEBOOK_FIELDS.get(notebook, ())
            changes = {k: v for k, v in changes.items() if k in used}
        why = [w for k, w in self.why_thinned.get(dataset, {}).items() if k in changes]
        longer = changes.pop("backbone_patience", {})
        more_seeds = changes.pop("model_seeds", {})
        ablation_more = changes.pop("ablation_seeds", {})
        per_backbone = changes.pop("seedrec_backbone_seeds", {})
        base = PROFILES.get(self.name, self)
        parts = [f"a sample of {v} users instead of all of them" if k == "max_users"
                 else f"{k} {_fmt(v)} instead of {_fmt(getattr(base, k))}" for k, v in changes.items()]
        parts += [f"the SeeDRec page leaves the {b} backbone off" if not seeds
                  else f"seeds {_fmt(tuple(seeds))} on the SeeDRec "
                  f"page's {b} rows" for b, seeds in per_backbone.items()]
        text = (f"On {dataset} the `{self.name}` profile is thinned to fit a 2-core machine: " + "; ".join(parts)
                + "." + "".join(f" {w}" for w in why)) if parts else ""
        if more_seeds:
            text += ((" " if text else "") + f"On {dataset} the headline rows of Table 2 run at more seeds: "
                     + "; ".join(f"{m} {_fmt(tuple(s))}" for m, s in more_seeds.items())
                     + f" (the other rows: {_fmt(tuple(self.seeds))}).")
        if ablation_more:
            text += ((" " if text else "") + f"On {dataset} the ablation page runs "
                     + "; ".join(f"the {b} rows at seeds {_fmt(tuple(s))}" for b, s in ablation_more.items())
                     + f" (the other backbones: seed {self.seeds[0]}).")
        for b, pat in longer.items():
            text += ((" " if text else "") + f"On {dataset} every run on the {b} backbone ({b} itself, its MealRec and "
                     f"SeeDRec plug-ins and their ablations) trains with patience {pat} instead of {base.patience}: "
                     f"{b}'s validation NDCG@10 sits flat for about ten epochs there before it climbs, and the whole "
                     "family gets the longer patience so that its rows compare at equal patience.")
        return text


def backbone_of(model: str) -> str:
    """The sequential backbone a registered model is built on (a backbone is its own)."""
    head, _, rest = model.partition("-")
    return rest if head in ("mealrec", "seedrec") and rest else model


#: Profile fields every notebook's training runs follow (Table 3's timing runs excepted).
RUN_FIELDS = ("epochs", "patience", "plateau_patience", "backbone_patience", "seeds", "max_users")

#: The backbones the SeeDRec page can put both plug-ins on.
SEEDREC_BACKBONES = ("sasrec", "cl4srec")

#: The best epoch at or below which an early stop counts as a stop on an early plateau.
PLATEAU_BEST_EPOCH = 3

#: Where the profiles are, one YAML file per profile, and the order they are listed in.
PROFILE_DIR = Path(__file__).resolve().parents[1] / "configs" / "profiles"
PROFILE_ORDER = ("smoke", "quick", "full")
#: Fields given as YAML lists and held as tuples.
_TUPLES = ("seeds", "lambdas", "steps", "noise", "synthetic_datasets", "real_datasets", "ablation_backbones",
           "seedrec_seeds", "control_datasets", "control_seeds")


def _typed(key: str, value, where: str):
    """A YAML value as the :class:`Profile` field ``key`` holds it (lists as tuples)."""
    known = {f.name for f in fields(Profile)} - {"name", "dataset"}
    if key not in known:
        raise MealRecError(f"{where}: unknown profile field {key!r}; valid: {', '.join(sorted(known))}")
    if key in _TUPLES and value is not None:
        if not isinstance(value, list):
            raise MealRecError(f"{where}: {key} must be a list, got {value!r}")
        return tuple(value)
    if key in ("seedrec_backbone_seeds", "ablation_seeds"):
        return {b: tuple(s) for b, s in value.items()}
    if key == "why_thinned":
        for d, reasons in value.items():
            bad = sorted(set(reasons) - known)
            if bad:
                raise MealRecError(f"{where}: why_thinned: {d} names unknown fields {', '.join(bad)}")
        return {d: {k: str(w) for k, w in reasons.items()} for d, reasons in value.items()}
    if key == "thinned":
        return {d: {k: _typed(k, v, f"{where}: thinned: {d}") for k, v in over.items()} for d, over in value.items()}
    return value


def load_profile(path: str | Path) -> Profile:
    """The profile in the YAML file ``path`` (its name is the file's stem)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise MealRecError(f"{path}: a profile is a mapping of fields to values")
    return Profile(name=path.stem, **{k: _typed(k, v, str(path)) for k, v in data.items()})


def _load_all() -> dict[str, Profile]:
    def order(f: Path) -> tuple[int, str]:
        return (PROFILE_ORDER.index(f.stem) if f.stem in PROFILE_ORDER else len(PROFILE_ORDER), f.stem)

    files = sorted(PROFILE_DIR.glob("*.yaml"), key=order)
    return {f.stem: load_profile(f) for f in files}


PROFILES: dict[str, Profile] = _load_all()
#: Users the `quick` profile samples from each MicroLens dataset.
QUICK_USERS = PROFILES["quick"].thinned["microlens-small"]["max_users"]


def _fmt(v) -> str:
    return "{" + ", ".join(map(str, v)) + "}" if isinstance(v, tuple) else str(v)


def stopped_on_plateau(result: dict) -> bool:
    """Whether a stored run's early stopping fired on an early plateau: its best epoch is at most
    :data:`PLATEAU_BEST_EPOCH` and it stopped before its epoch cap."""
    return (int(result["best_epoch"]) <= PLATEAU_BEST_EPOCH
            and int(result["timing"]["epochs_run"]) < int(result["config"]["train"]["epochs"]))


def get_profile(name: str, dataset: str | None = None) -> Profile:
    """The profile ``name``; with ``dataset``, as it applies to that dataset (see ``thinned``)."""
    try:
        prof = PROFILES[name]
    except KeyError:
        raise MealRecError(f"unknown profile {name!r}; valid: {', '.join(PROFILES)}") from None
    if dataset is None:
        return prof
    from ..data import dataset_spec

    dataset_spec(dataset)  # an unknown dataset fails here, listing the valid names
    return prof.for_dataset(dataset)


__all__ = ["PLATEAU_BEST_EPOCH", "PROFILES", "Profile", "RUN_FIELDS", "SEEDREC_BACKBONES", "backbone_of",
           "get_profile", "load_profile", "stopped_on_plateau"]
