"""What a notebook's setup cell calls: :func:`setup` reads the parameters cell's values and gives the
cells what they use (:class:`Context`: the profile as it applies to the dataset, the seeds, the
models, the run store, and where figures and the sidecar go)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils import MealRecError
from .artefacts import artefact, runs_on
from .paths import find_data_dir
from .plotting import save_figure, set_style
from .profiles import Profile, get_profile
from .provenance import provenance, write_sidecar
from .store import RunStore


@dataclass
class Context:
    """What a notebook's cells use."""

    notebook: str
    dataset: str
    profile_name: str
    profile: Profile  # as it applies to ``dataset`` (its thinning)
    seeds: Any  # a list; the SeeDRec page: backbone -> seeds; the controls page: the control seeds
    models: list[str] | None  # the MODELS parameter (None: the page's own rows)
    store: RunStore
    output_dir: Path
    figures_dir: Path

    def save_figure(self, fig, name: str) -> dict[str, str]:
        """``fig`` as ``<figures_dir>/<name>.png`` and ``.pdf``."""
        return save_figure(fig, name, self.figures_dir)

    def write_sidecar(self, numbers: Any, seeds, datasets: list[str] | None = None) -> Path:
        """``numbers`` as ``<output_dir>/<notebook>-<dataset>.json``, with their provenance."""
        prov = provenance(self.profile, datasets or [self.dataset], seeds, self.store)
        return write_sidecar(self.output_dir / f"{self.notebook}-{self.dataset}.json", numbers, prov)


def setup(notebook: str, dataset: str, profile: str, seeds=None, models=None, output_dir: str = ".",
          figures_dir: str = ".", runs_dir: str = "runs", data_dir: str | None = None, device: str = "cpu",
          threads: int = 0) -> Context:
    """Check the parameters (an unknown dataset, profile or model, or malformed seeds, fail here,
    naming the valid values), open the run store, make the output folders and set the figure style."""
    import pandas as pd

    module = artefact(notebook)
    prof = get_profile(profile, dataset)  # with the thinning the profile applies to the dataset, if any
    models = parse_models(models, notebook=notebook)
    if getattr(module, "CONTROLS_ONLY", False) and not runs_on(notebook, dataset):
        raise ValueError(f"the {notebook} page runs on the positive controls only, not {dataset!r}")
    if hasattr(module, "notebook_seeds"):
        seeds = module.notebook_seeds(prof, seeds)
    else:
        seeds = parse_seeds(seeds, prof.seeds)  # None: the profile's seeds
    store = RunStore(runs_dir, data_dir=find_data_dir(data_dir), device=device, threads=threads, profile=profile)
    ctx = Context(notebook, dataset, profile, prof, seeds, models, store, Path(output_dir), Path(figures_dir))
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    set_style()
    pd.set_option("display.precision", 4)
    return ctx


def parse_seeds(value, default) -> list[int]:
    """The notebooks' ``SEEDS`` parameter as a list of seeds: None (or empty) gives ``default``
    (the profile's seeds); a list of integers or one integer is taken as is; text holding such a
    list is parsed, since ``papermill -p SEEDS "[2020, 2021]"`` passes the list as a string."""
    import json

    given = value
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except json.JSONDecodeError:
            pass  # left as text: rejected below
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return [int(s) for s in default]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise MealRecError("parameter SEEDS must be None or a list of integers such as [2020, 2021, 2022]; "
                           f"got {given!r}. "
                           "With papermill, pass it as YAML: -y \"SEEDS: [2020, 2021, 2022]\"")
    return [int(s) for s in value]


def parse_models(value, notebook: str | None = None) -> list[str] | None:
    """The notebooks' ``MODELS`` parameter: None (each page's own models, read from the
    registry), a list of registered names, or the same as text: a JSON list (what
    ``papermill -p MODELS '["sasrec", "tedrec"]'`` passes) or comma-separated names. An unknown
    name fails here, listing the valid ones. ``notebook``: the notebook asking; one outside
    the modules with ``TAKES_MODELS`` refuses any value but None, rather than ignore it."""
    import json

    from ..models import get_model_class

    from .artefacts import MODELS_NOTEBOOKS

    if notebook is not None and notebook not in MODELS_NOTEBOOKS and value not in (None, "", [], ()):
        raise MealRecError(f"parameter MODELS is not read by the {notebook} notebook, whose rows are fixed by its page "
                           f"(and the profile); leave MODELS = None. The notebooks that take MODELS: "
                           f"{', '.join(MODELS_NOTEBOOKS)}")
    given = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise MealRecError(f"parameter MODELS: {given!r} is not a JSON list of names; "
                                   "pass e.g. -y \"MODELS: [sasrec, tedrec]\"") from None
        else:
            value = [m.strip() for m in text.split(",") if m.strip()] or None
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) for m in value):
        raise MealRecError(f"parameter MODELS must be None or a list of model names; got {given!r}")
    for m in value:
        get_model_class(m)  # raises, naming the valid models
    return list(value)


__all__ = ["Context", "parse_models", "parse_seeds", "setup"]
