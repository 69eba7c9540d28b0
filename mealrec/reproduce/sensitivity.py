"""Figure 4: test NDCG@10 of MealRec-TedRec over the loss weight x diffusion steps grid, for TCD
(lambda_T) and NPD (lambda_N), and the setting a user tuning on validation would pick; its runs,
numbers, verdict, figure, sidecar and page."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..evaluation import paired_ttest
from ..utils import MealRecError
from .page import Page
from .profiles import RUN_FIELDS, Profile, backbone_of
from .requests import RunRequest, request
from .store import RunStore
from .verdicts import ALPHA, METRIC_LABELS, ordinal, verdict_label

NOTEBOOK = "sensitivity"
FIELDS = RUN_FIELDS + ("lambdas", "steps")


#: Figure 4: a relative spread (max - min) / max of test N@10 under this reads as "insensitive".
SPREAD_LIMIT = 0.10


#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("sensitivity", "figure4", "Figure 4: sensitivity to lambda and T",
            "Test NDCG@10 of MealRec-TedRec over the loss weight x diffusion steps grid, for TCD (lambda_T) and "
            "NPD (lambda_N), the other weight at its default; one seed.",
            (("text", "verdict"), ("figure", "figure")))


@dataclass
class SensitivityResult:
    """Figure 4 on one dataset."""

    grids: dict[str, pd.DataFrame]  # lambda_t | lambda_n -> lambda x T test metric
    spread: dict[str, float]  # relative spread (max - min) / max per grid
    tuned: dict  # :func:`_tuned_on_validation`
    verdict: str
    metric: str


def sensitivity_requests(dataset: str, profile: Profile, seed: int | None = None,
                         model: str = "mealrec-tedrec") -> dict[tuple[str, float, int], RunRequest]:
    """Figure 4: lambda x T, once for lambda_T (TCD) and once for lambda_N (NPD)."""
    return {(which, lam, T): request(model, dataset, profile, seed, {which: lam, "steps": T})
            for which in ("lambda_t", "lambda_n") for lam in profile.lambdas for T in profile.steps}


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """The runs the notebook reads on ``dataset`` with its default parameters, in its order."""
    # the grids, then the backbone the tuned setting is compared with
    return (list(sensitivity_requests(dataset, profile).values())
            + [request(backbone_of("mealrec-tedrec"), dataset, profile)])


def sensitivity(store: RunStore, dataset: str, profile: Profile, seed: int | None = None,
                model: str = "mealrec-tedrec", metric: str = "ndcg@10") -> SensitivityResult:
    """Figure 4: test ``metric`` over lambda x T, once varying lambda_T (TCD, lambda_N at its
    default) and once lambda_N (NPD, lambda_T at its default); T is shared, as in the paper."""
    grids = {which: pd.DataFrame(index=pd.Index(profile.lambdas, name=which), columns=pd.Index(profile.steps, name="T"),
                                 dtype=float) for which in ("lambda_t", "lambda_n")}
    runs = {}
    for (which, lam, T), q in sensitivity_requests(dataset, profile, seed, model).items():
        runs[which, lam, T] = q.run(store)
        grids[which].loc[lam, T] = runs[which, lam, T]["test"][metric]
    spread = {k: float((g.max().max() - g.min().min()) / g.max().max()) for k, g in grids.items()}
    flat = [v < SPREAD_LIMIT for v in spread.values()]
    names = {"lambda_t": "TCD (lambda_T)", "lambda_n": "NPD (lambda_N)"}
    text = (verdict_label(flat) + ": relative spread of test " + METRIC_LABELS[metric]
            + " over the grid (max - min) / max: "
            + ", ".join(f"{names[k]} {100 * v:.1f}%" for k, v in spread.items())
            + f". The paper calls MealRec insensitive to these settings. (Rule: 'reproduces' = a spread under "
            f"{100 * SPREAD_LIMIT:.0f}% on both grids; 'partly' = on one of them.)")
    tuned = _tuned_on_validation(store, dataset, profile, seed, model, runs, metric)
    return SensitivityResult(grids, spread, tuned, text + " " + tuned["text"], metric)


def _tuned_on_validation(store: RunStore, dataset: str, profile: Profile, seed: int | None, model: str,
                         runs: dict, metric: str) -> dict:
    """The grid point a user tuning on validation ``metric`` would pick (the grid's test maximum
    is not a fair pick), its test ``metric`` against the default setting's and the backbone's."""
    (which, lam, T) = best = max(runs, key=lambda k: runs[k]["valid"][metric])
    default = request(model, dataset, profile, seed).run(store)
    backbone = backbone_of(model)
    base = request(backbone, dataset, profile, seed).run(store)
    t = paired_ttest(np.asarray(runs[best]["per_user_test"][metric]), np.asarray(base["per_user_test"][metric]))
    test, ref = runs[best]["test"][metric], base["test"][metric]
    distinct = {r.get("store_key", id(r)): r for r in runs.values()}.values()  # the default cell is in both grids
    rank = 1 + sum(r["test"][metric] > default["test"][metric] for r in distinct)
    label = METRIC_LABELS[metric]
    text = (f"The default setting scores test {label} {default['test'][metric]:.4f} ({ordinal(rank)} of the "
            f"{len(distinct)} distinct settings). Tuned on validation {label} over both grids, as a "
            "user without test labels would tune, the pick is "
            f"{'lambda_T' if which == 'lambda_t' else 'lambda_N'} {lam:g}, "
            f"T {T}: test {label} {test:.4f}, {100 * (test / ref - 1):+.1f}% against {backbone} ({ref:.4f}; "
            f"p = {t['p']:.2g}, paired t-test over test users{', significant' if t['p'] < ALPHA else ''}); one seed.")
    return {"which": which, "lambda": float(lam), "steps": int(T), "test": float(test),
            "default_test": float(default["test"][metric]),
            "backbone": backbone, "backbone_test": float(ref), "p": float(t["p"]), "text": text}


def figure(res: SensitivityResult):
    """One heatmap per grid."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, (k, g) in zip(axes, res.grids.items()):
        sns.heatmap(g.astype(float), annot=True, fmt=".4f", cmap="Blues", ax=ax, cbar=False)
        ax.set_title(("TCD: " if k == "lambda_t" else "NPD: ") + k + " x T (N@10)")
    fig.tight_layout()
    return fig


def summary_number(r: dict) -> str:
    m = re.search(r"TCD \(lambda_T\) ([\d.]+)%, NPD \(lambda_N\) ([\d.]+)%", r["verdict"])
    if m is None:
        raise MealRecError("sensitivity sidecar: its verdict does not state the two spreads")
    return f"N@10 spread TCD {m.group(1)}%, NPD {m.group(2)}%"


#: The results matrix's rows for this page (``mealrec reproduce --summary``): the claim, where its verdict
#: sits in the sidecar's results, and the number shown beside it (read from the sidecar's results).
CLAIMS = (("Figure 4: insensitive to lambda and T", ("verdict",), summary_number),)


def sidecar(res: SensitivityResult) -> dict:
    side = {k: {str(i): {str(c): v for c, v in row.items()} for i, row in g.iterrows()} for k, g in res.grids.items()}
    side["verdict"] = res.verdict
    side["tuned_on_validation"] = {k: v for k, v in res.tuned.items() if k != "text"}
    return side


__all__ = ["FIELDS", "PAGE", "SPREAD_LIMIT", "SensitivityResult", "figure", "notebook_requests", "sensitivity",
           "sensitivity_requests", "sidecar"]
