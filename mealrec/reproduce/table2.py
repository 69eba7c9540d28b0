"""Table 2: every model's test metrics beside the paper's, MealRec-TedRec's relative improvement over
the best baseline with a paired t-test, and where each row lands against the paper's ranking;
its runs, numbers, verdict, figure, sidecar and page."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from .. import paper
from ..evaluation import METRICS, paired_ttest
from ..models import MODELS, get_model_class
from .page import Page
from .profiles import RUN_FIELDS, Profile
from .requests import RunRequest, request
from .store import RunStore
from .verdicts import ALPHA, METRIC_LABELS, requested_patience, p_text, per_seed_tests, seed_mean, training_record

NOTEBOOK = "overall"
FIELDS = RUN_FIELDS + ("model_seeds",)
#: The notebook's MODELS parameter picks its rows (None: every registered Table 2 model).
TAKES_MODELS = True
NO_VERDICT = "MealRec-TedRec is not among MODELS; no verdict."


#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("overall", "table2", "Table 2: overall performance",
            "Test HR@10/20 and NDCG@10/20, full ranking over all items, history not masked, ties broken against "
            "the target, checkpoint of the best validation NDCG@10 (early stopping, patience as the profile sets). "
            "Ours, the paper's, and the difference; then MealRec-TedRec's relative improvement over the best "
            "baseline, with a paired t-test over test users (p < 0.01, as the paper).",
            (("any", "table"), ("any", "improvement"), ("text", "verdict"), ("figure", "figure")))


@dataclass
class OverallResult:
    """Table 2 on one dataset."""

    table: pd.DataFrame  # model -> (metric, ours | paper | Δ) and the training columns
    models: list[str]
    seeds: list[int]
    diagnostics: pd.DataFrame  # :func:`ranking_diagnostics`
    improvement: dict | None = None  # metric -> best baseline, relative improvement, p (when MealRec is a row)
    verdict: str = NO_VERDICT
    left_out: list[str] = field(default_factory=list)  # registered Table 2 rows not in the table


def table2_models(models: Iterable[str] | None = None) -> list[str]:
    """``models`` as given, or every registered Table 2 model (baselines first, MealRec last)."""
    if models:
        for m in models:
            get_model_class(m)
        return list(models)
    names = [m for m, cls in MODELS.items() if cls.table2]
    rows = list(paper._T2_ROWS)
    return sorted(names, key=lambda m: (m.startswith("mealrec"), rows.index(m) if m in rows else 99, m))


def row_seeds(model: str, profile: Profile, seeds: Iterable[int] | None = None) -> list[int]:
    """The seeds of ``model``'s row: ``seeds`` when given (a notebook's ``SEEDS``), else the
    profile's seeds for that model (``model_seeds``, the headline rows) or its ``seeds``."""
    return list(seeds or profile.model_seeds.get(model, profile.seeds))


def overall_requests(dataset: str, profile: Profile, models: Iterable[str] | None = None,
                     seeds: Iterable[int] | None = None) -> dict[str, list[RunRequest]]:
    return {m: [request(m, dataset, profile, s) for s in row_seeds(m, profile, seeds)] for m in table2_models(models)}


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """The runs the notebook reads on ``dataset`` with its default parameters, in its order."""
    return [r for rs in overall_requests(dataset, profile).values() for r in rs]


def overall(store: RunStore, dataset: str, profile: Profile, models: Iterable[str] | None = None,
            seeds: Iterable[int] | None = None, ours: str = "mealrec-tedrec") -> OverallResult:
    """Table 2 for one dataset: every model's test metrics (mean and sd over its seeds), the paper's
    numbers and the difference, MealRec's relative improvement over the best baseline (by the seed
    means), and paired t-tests of MealRec against that baseline: over users on the seed-averaged
    per-user metrics, and at each seed both rows ran. ``seeds`` None: each row's seeds as the
    profile sets them (:func:`row_seeds`)."""
    requests = overall_requests(dataset, profile, models, seeds)
    runs = {m: [q.run(store) for q in reqs] for m, reqs in requests.items()}
    seeds = sorted({q.seed for reqs in requests.values() for q in reqs})
    models = list(runs)
    ref = paper.TABLE2.get(dataset, {})
    rows = []
    for m in models:
        row = {"model": m}
        for k in METRICS:
            row[(k, "ours")] = float(np.mean([r["test"][k] for r in runs[m]]))
            row[(k, "sd")] = float(np.std([r["test"][k] for r in runs[m]], ddof=1)) if len(runs[m]) > 1 else np.nan
            row[(k, "paper")] = ref.get(m, {}).get(k, np.nan)
            row[(k, "Δ")] = row[(k, "ours")] - row[(k, "paper")]
        row[("train", "s/epoch")] = float(np.mean([r["timing"]["train_time_per_epoch_s"] for r in runs[m]]))
        row[("train", "best epoch")] = float(np.mean([r["best_epoch"] for r in runs[m]]))
        row[("train", "seeds")] = len(runs[m])
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    out = OverallResult(table, models, seeds, ranking_diagnostics(table, runs, profile))
    baselines = [m for m in models if m != ours]
    if ours in models and baselines:
        improvement, tests = {}, {}
        for k in METRICS:
            best = max(baselines, key=lambda m: table.loc[m, (k, "ours")])
            a, b = seed_mean(runs[ours], k), seed_mean(runs[best], k)
            t = paired_ttest(a, b)
            per_seed = per_seed_tests(runs[ours], runs[best], k)
            ps = [v["p"] for v in per_seed.values()]
            better = t["mean_a"] > t["mean_b"] and all(v["mean_a"] > v["mean_b"] for v in per_seed.values())
            worse = t["mean_a"] < t["mean_b"] and all(v["mean_a"] < v["mean_b"] for v in per_seed.values())
            significant = t["p"] < ALPHA and all(p < ALPHA for p in ps)
            improvement[k] = {"best_baseline": best,
                              "rel_imp_pct": 100 * (t["mean_a"] / t["mean_b"] - 1) if t["mean_b"] else np.nan,
                              "p": t["p"], "p per seed": {s: v["p"] for s, v in per_seed.items()},
                              "significant": bool(significant and better),
                              "significantly worse": bool(significant and worse),
                              "paper_rel_imp_pct": paper.TABLE2_REL_IMP.get(dataset, {}).get(k, np.nan)}
            tests[k] = t
        out.improvement = improvement
        common = sorted(improvement["ndcg@10"]["p per seed"])
        wins = sum(v["rel_imp_pct"] > 0 for v in improvement.values())
        sig = sum(v["significant"] for v in improvement.values())
        worse = sum(v["significantly worse"] for v in improvement.values())
        verdict = "reproduces" if sig == 4 else ("partly reproduces" if wins > 0 else "does not reproduce")
        out.verdict = (
            f"{verdict}: {ours} beats the best baseline on {wins} of 4 metrics here, {sig} of them significantly"
            + (f", and is significantly worse on {worse}" if worse else "")
            + f" (paired t-test over {len(a):,} test users, p < {ALPHA}"
            + (f", on the seed-averaged metrics and at each of seeds {', '.join(map(str, common))}" if len(common) > 1
               else "") + "); relative improvement "
            + ", ".join(f"{METRIC_LABELS[k]} {v['rel_imp_pct']:+.1f}% vs {v['best_baseline']}"
                        for k, v in improvement.items())
            + (". The paper reports "
               + ", ".join(f"{METRIC_LABELS[k]} {v['paper_rel_imp_pct']:+.2f}%" for k, v in improvement.items())
               + " over its best baseline." if dataset in paper.TABLE2_REL_IMP
               else ". The paper has no row for this dataset.")
            + " (Rule: 'reproduces' = better on all 4 metrics by the seed means, with p < 0.01 on the seed-averaged "
            "per-user metrics and at every seed both rows ran; 'partly' = better on at least one by the seed means.)"
        )
        left_out = [m for m in table2_models() if m not in models]
        if left_out:  # a subset (MODELS): the comparison covers only the rows shown
            out.verdict += (f" Registered Table 2 rows not in this table: {', '.join(left_out)}; the best baseline "
                               "above is the best of the rows shown, so the verdict is provisional.")
        out.left_out = left_out
    return out


def improvement_frame(improvement: dict) -> pd.DataFrame:
    """Table 2's last row as a table to show: one row per metric, p-values in scientific
    notation (a fixed 4-decimal display prints p = 4.9e-07 as 0.0000)."""
    frame = pd.DataFrame(improvement).T
    frame["p"] = [f"{p:.2g}" for p in frame["p"]]
    if "p per seed" in frame:
        frame["p per seed"] = [", ".join(f"{s}: {p:.2g}" for s, p in ps.items()) for ps in frame["p per seed"]]
    for col in ("rel_imp_pct", "paper_rel_imp_pct"):
        frame[col] = [f"{v:+.2f}" if v == v else "–" for v in frame[col].astype(float)]
    return frame


def paper_ranks(models: Iterable[str], metric: str = "ndcg@10") -> dict[str, float]:
    """Each model's rank by ``metric`` among ``models`` in the paper's Table 2, averaged over the
    paper's four datasets (1 = best): the place a model is expected to land."""
    models = list(models)
    ranks: dict[str, list[int]] = {m: [] for m in models}
    for ds_rows in paper.TABLE2.values():
        shown = [m for m in models if m in ds_rows]
        for r, m in enumerate(sorted(shown, key=lambda m: -ds_rows[m][metric]), start=1):
            ranks[m].append(r)
    return {m: float(np.mean(v)) if v else np.nan for m, v in ranks.items()}


def ranking_diagnostics(table: pd.DataFrame, runs: dict[str, list[dict]], profile: Profile,
                        metric: str = "ndcg@10", far: float = 3.0) -> pd.DataFrame:
    """Where each Table 2 row lands here against where the paper puts it.

    A rank alone overstates differences between rows whose metrics are within noise, so each
    row also gets the ranks it shares with the rows it is statistically tied with here
    (paired t-test over test users on ``metric``, averaged over seeds, p >= ``ALPHA``):
    ``tied ranks`` spans the best and worst rank among itself and those rows. A row is
    ``far from expected`` when its expected rank lies ``far`` or more places outside that
    span. Its training record says whether it stopped on an early plateau, was cut by the
    epoch cap while still improving, or neither (then the cause is the features or the
    method on this data, not the training schedule)."""
    ours = table[(metric, "ours")].rank(ascending=False, method="min")
    expected = pd.Series(paper_ranks(table.index, metric)).rank(method="min")
    per_user = {m: seed_mean(runs[m], metric) for m in table.index}
    rows = []
    for m in table.index:
        tied = [o for o in table.index if o == m or paired_ttest(per_user[m], per_user[o])["p"] >= ALPHA]
        lo, hi = int(min(ours[o] for o in tied)), int(max(ours[o] for o in tied))
        exp = expected.get(m, np.nan)
        outside = max(lo - exp, exp - hi, 0.0)  # NaN when the paper has no rank for the row
        asked = requested_patience(runs[m], profile)
        record = training_record(runs[m], asked)[1]
        if asked != profile.patience:  # the profile's patience for this row's backbone on this dataset
            record += f"; patience {asked} for its backbone here (other rows: {profile.patience})"
        rows.append({"model": m, "rank here": int(ours[m]), "tied ranks": f"{lo}-{hi}" if hi > lo else str(lo),
                     "paper rank": exp, "shift": float(ours[m] - exp),
                     "far from expected": bool(outside >= far), "training record": record})
    return pd.DataFrame(rows).set_index("model")


def figure(res: OverallResult, dataset: str, profile_name: str):
    """Ours beside the paper's, one panel per metric."""
    import seaborn as sns

    table = res.table
    long = pd.DataFrame([{"model": m, "metric": k, "source": s, "value": table.loc[m, (k, s)]}
                         for m in table.index for k in METRICS for s in ("ours", "paper")]).dropna()
    g = sns.catplot(data=long, x="value", y="model", hue="source", col="metric", kind="bar", height=3.2, aspect=0.8,
                    sharex=False)
    g.figure.suptitle(f"Table 2 on {dataset} ({profile_name} profile)", y=1.03)
    return g.figure


def summary_number(r: dict) -> str:
    imp = r["improvement"]["ndcg@10"]
    return f"N@10 {imp['rel_imp_pct']:+.1f}% vs {imp['best_baseline']} ({p_text(imp['p'])})"


#: The results matrix's rows for this page (``mealrec reproduce --summary``): the claim, where its verdict
#: sits in the sidecar's results, and the number shown beside it (read from the sidecar's results).
CLAIMS = (("Table 2: MealRec-TedRec beats every baseline", ("verdict",), summary_number),)


def sidecar(res: OverallResult) -> dict:
    return {"table": {str(m): {f"{k}|{s}": v for (k, s), v in row.items()} for m, row in res.table.iterrows()},
            "improvement": res.improvement, "verdict": res.verdict,
            "diagnostics": res.diagnostics.reset_index().to_dict(orient="records")}


__all__ = ["FIELDS", "OverallResult", "PAGE", "figure", "improvement_frame", "notebook_requests", "overall",
           "overall_requests", "paper_ranks", "ranking_diagnostics", "sidecar", "table2_models"]
