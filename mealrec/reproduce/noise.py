"""Figure 5: HR@10 and NDCG@10 of MealRec-TedRec with Gaussian noise added to the visual features at
load time; its runs, numbers, verdict, figure, sidecar and page."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .page import Page
from .profiles import RUN_FIELDS, Profile
from .requests import RunRequest, request
from .store import RunStore
from .verdicts import METRIC_LABELS, verdict_label

NOTEBOOK = "noise"
FIELDS = RUN_FIELDS + ("noise",)
#: The notebook's MODELS parameter picks its rows (None: :data:`NOISE_MODELS`).
TAKES_MODELS = True
#: What the notebook runs when its MODELS parameter is None.
NOISE_MODELS = ("mealrec-tedrec",)


#: Figure 5: a fall below the sigma = 0 value under this share reads as a "slight decline".
NOISE_FALL_LIMIT = 0.05


#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("noise", "figure5", "Figure 5: robustness to visual noise",
            "HR@10 and NDCG@10 of MealRec-TedRec with Gaussian noise of standard deviation sigma added to the "
            "visual features at load time; one seed.",
            (("any", "table"), ("text", "verdict"), ("figure", "figure")))


@dataclass
class NoiseResult:
    """Figure 5 on one dataset."""

    table: pd.DataFrame  # one row per model and sigma
    verdict: str


def noise_requests(dataset: str, profile: Profile, seed: int | None = None,
                   models: Iterable[str] = NOISE_MODELS) -> dict[tuple[str, float], RunRequest]:
    return {(m, sigma): request(m, dataset, profile, seed, visual_noise=sigma)
            for m in models for sigma in profile.noise}


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """The runs the notebook reads on ``dataset`` with its default parameters, in its order."""
    return list(noise_requests(dataset, profile).values())


def noise_robustness(store: RunStore, dataset: str, profile: Profile, seed: int | None = None,
                     models: Iterable[str] = NOISE_MODELS) -> NoiseResult:
    """Figure 5: HR@10 and NDCG@10 with N(0, sigma^2) noise added to the visual features at load time."""
    rows = []
    for (m, sigma), q in noise_requests(dataset, profile, seed, models).items():
        r = q.run(store)
        rows.append({"model": m, "sigma": sigma, "hr@10": r["test"]["hr@10"], "ndcg@10": r["test"]["ndcg@10"]})
    table = pd.DataFrame(rows)
    parts, slight = [], []
    for m, g in table.groupby("model"):
        g = g.sort_values("sigma")
        d = 100 * (g["ndcg@10"].iloc[-1] / g["ndcg@10"].iloc[0] - 1) if g["ndcg@10"].iloc[0] else np.nan
        # the largest fall below sigma = 0 over every noisy level, per metric (a rise is no fall)
        falls = {k: float(max(0.0, 1 - g[k].iloc[1:].min() / g[k].iloc[0])) if g[k].iloc[0] and len(g) > 1 else np.nan
                 for k in ("hr@10", "ndcg@10")}
        slight += [f < NOISE_FALL_LIMIT for f in falls.values()]
        parts.append(f"{m}: N@10 changes by {d:+.1f}% from sigma={g['sigma'].iloc[0]:g} to "
                     f"sigma={g['sigma'].iloc[-1]:g}; the largest fall below sigma=0 is "
                     + ", ".join(f"{100 * f:.1f}% on {METRIC_LABELS[k]}" for k, f in falls.items()))
    placeholder = "placeholder" in store.dataset(dataset).metadata.get("visual_features", "")
    text = (("not tested here" if placeholder else verdict_label(slight)) + ": " + "; ".join(parts)
            + ". The paper reports only slight declines, without noticeable "
            "degradation. (Rule: 'reproduces' = no noisy level lowers HR@10 or N@10 by "
            f"{100 * NOISE_FALL_LIMIT:.0f}% or more "
            "of its sigma=0 value; 'partly' = some metrics do not; 'not tested here' = the visual features are "
            "placeholders.)")
    if placeholder:
        text += (f" On {dataset} the visual features here are placeholders without content, so noise on them can "
                 "only test that nothing breaks, not that MealRec is robust to noise in real content.")
    return NoiseResult(table, text)


def figure(res: NoiseResult):
    """Each metric against sigma, one line per model, from zero."""
    import seaborn as sns

    long = res.table.melt(id_vars=["model", "sigma"], var_name="metric")
    g = sns.relplot(data=long, x="sigma", y="value", hue="model", col="metric", kind="line", marker="o", height=3.2,
                    facet_kws={"sharey": False})
    for ax in g.axes.flat:  # from zero, so that a change of a fraction of a percent does not look like a slope
        ax.set_ylim(0, 1.15 * ax.get_ylim()[1])
    return g.figure


def summary_number(r: dict) -> str:
    rows = r["table"]
    base = next(row for row in rows if row["sigma"] == 0.0)
    falls = {m: max(0.0, max(100 * (1 - row[m] / base[m]) for row in rows)) for m in ("hr@10", "ndcg@10")}
    return f"largest fall H@10 {falls['hr@10']:.1f}%, N@10 {falls['ndcg@10']:.1f}%"


#: The results matrix's rows for this page (``mealrec reproduce --summary``): the claim, where its verdict
#: sits in the sidecar's results, and the number shown beside it (read from the sidecar's results).
CLAIMS = (("Figure 5: robust to visual noise", ("verdict",), summary_number),)


def sidecar(res: NoiseResult) -> dict:
    return {"table": res.table.to_dict(orient="records"), "verdict": res.verdict}


__all__ = ["FIELDS", "NOISE_MODELS", "NoiseResult", "PAGE", "figure", "noise_requests", "noise_robustness",
           "notebook_requests", "sidecar"]
