"""Figures 3 and 6: MealRec's variants (``full``, ``-TCD``, ``-NPD``, ``-TCD-NPD``) beside the bare
backbone, on TedRec (Figure 3), SASRec and CL4SRec (Figure 6); its runs, numbers, verdict,
figure, sidecar and page."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..evaluation import METRICS, paired_ttest
from .page import Page
from .profiles import RUN_FIELDS, Profile
from .requests import RunRequest, request
from .store import RunStore
from .verdicts import ALPHA, p_text, per_seed_tests, schedule_caveat, seed_mean

NOTEBOOK = "ablation"
#: MealRec's variants (Figures 3 and 6).
VARIANTS = ("full", "-TCD", "-NPD", "-TCD-NPD")
#: The profile fields this page reads (its thinning note names only these).
FIELDS = RUN_FIELDS + ("ablation_backbones", "ablation_seeds")


#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("ablation", "figure3-6", "Figures 3 and 6: ablation and universality",
            "MealRec's variants (full, -TCD, -NPD, -TCD-NPD) beside the bare backbone, on TedRec (Figure 3), "
            "SASRec and CL4SRec (Figure 6); test metrics, mean over the page's seeds; p-values against the full "
            "model.",
            (("any", "table-tedrec"), ("text", "verdict-tedrec"), ("any", "table-sasrec"), ("text", "verdict-sasrec"),
             ("any", "table-cl4srec"), ("text", "verdict-cl4srec"), ("figure", "figure")))


@dataclass
class AblationResult:
    table: pd.DataFrame  # variant -> test metrics and the p-value against ``full``
    verdict: str


def ablation_seeds(profile: Profile, backbone: str, seeds=None) -> list[int]:
    """The seeds of the rows on ``backbone``: ``seeds`` when given (a notebook's ``SEEDS``), else the
    profile's ``ablation_seeds`` for that backbone, else the first of its ``seeds``."""
    return list(seeds or profile.ablation_seeds.get(backbone) or profile.seeds[:1])


def page_seeds(profile: Profile, seeds=None) -> list[int]:
    """Every seed a row of the page runs at (the backbones the profile shows)."""
    return sorted({s for b in profile.ablation_backbones for s in ablation_seeds(profile, b, seeds)})


def ablation_requests(dataset: str, profile: Profile, backbone: str = "tedrec",
                      seeds=None) -> dict[str, list[RunRequest]]:
    seeds = ablation_seeds(profile, backbone, seeds)
    out = {backbone: [request(backbone, dataset, profile, s) for s in seeds]}
    out.update({v: [request(f"mealrec-{backbone}", dataset, profile, s, {"variant": v}) for s in seeds]
                for v in VARIANTS})
    return out


def pastes(key: str, profile: Profile) -> bool:
    """Whether the page pastes glue ``key`` for a dataset: not the tables and verdicts of a backbone the
    profile leaves out there."""
    return key == "figure" or key.split("-", 1)[-1] in profile.ablation_backbones


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """The runs the notebook reads on ``dataset`` with its default parameters, in its order."""
    return [r for b in profile.ablation_backbones for rs in ablation_requests(dataset, profile, b).values() for r in rs]


def ablation(store: RunStore, dataset: str, profile: Profile, backbone: str = "tedrec",
             seeds=None) -> AblationResult:
    """The backbone and MealRec's four variants on it (Figure 3 for TedRec, Figure 6 for the
    others): test metrics (mean over the page's seeds, and their sd with several), and paired
    t-tests of each variant against the full model over test users: on the seed-averaged per-user
    N@10 and, with several seeds, at each seed."""
    requests = ablation_requests(dataset, profile, backbone, seeds)
    runs = {name: [q.run(store) for q in qs] for name, qs in requests.items()}
    n_seeds = len(runs["full"])
    rows = []
    for name, rs in runs.items():
        row = {"variant": name, **{k: float(np.mean([r["test"][k] for r in rs])) for k in METRICS}}
        if n_seeds > 1:
            row["N@10 sd"] = float(np.std([r["test"]["ndcg@10"] for r in rs], ddof=1))
        p = (paired_ttest(seed_mean(rs, "ndcg@10"), seed_mean(runs["full"], "ndcg@10"))["p"]
             if name != "full" else np.nan)
        row["p vs full (N@10)"] = p
        if n_seeds > 1:
            row["p vs full per seed"] = "" if name == "full" else ", ".join(
                f"{seed}: {t['p']:.2g}" for seed, t in per_seed_tests(rs, runs["full"], "ndcg@10").items())
        rows.append(row)
    table = pd.DataFrame(rows).set_index("variant")
    full = table.loc["full", "ndcg@10"]
    order_ok = all(full >= table.loc[v, "ndcg@10"] for v in ("-TCD", "-NPD", "-TCD-NPD"))
    beats_backbone = full > table.loc[backbone, "ndcg@10"]
    lowest = table.loc[list(VARIANTS), "ndcg@10"].idxmin()
    verdict = ("reproduces" if order_ok and beats_backbone and lowest == "-TCD-NPD" else
               "partly reproduces" if order_ok or beats_backbone else "does not reproduce")
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    sig = [f"{v} (p = {table.loc[v, 'p vs full (N@10)']:.2g})" for v in table.index
           if v != "full" and table.loc[v, "p vs full (N@10)"] < ALPHA]
    text = (f"{verdict}: on {dataset} with {backbone}, N@10 is "
            + ", ".join(f"{v} {table.loc[v, 'ndcg@10']:.4f}" for v in table.index)
            + f". (1) Full model at or above every ablated variant: {yes(order_ok)}. "
            f"(2) Full model above the bare backbone: {yes(beats_backbone)}. "
            f"(3) -TCD-NPD the lowest variant: {yes(lowest == '-TCD-NPD')} (lowest: {lowest}). "
            "The paper: full > -TCD, -NPD > -TCD-NPD on every dataset except -TCD on Shortvideo-small. "
            "(Rule: 'reproduces' = all three hold; 'partly' = (1) or (2) holds.) "
            + (f"Different from the full model at p < {ALPHA} (paired t-test over test users, N@10): " + ", ".join(sig)
               if sig else f"No row differs from the full model at p < {ALPHA} (paired t-test over test users, N@10)")
            + ("; one seed." if n_seeds == 1 else f"; means over {n_seeds} seeds, p on the seed-averaged per-user "
               "metrics (the table gives each seed's p)."))
    text += schedule_caveat(runs, profile)
    return AblationResult(table, text)


def figure(results: dict[str, AblationResult]):
    """Bars of H@10 and N@10 per variant, one panel per backbone."""
    import seaborn as sns

    long = pd.concat([res.table[["hr@10", "ndcg@10"]].reset_index().melt(id_vars="variant", var_name="metric")
                      .assign(backbone=b) for b, res in results.items()])
    # the bare backbone's row is labelled "backbone" in every panel (the panel title names it), so all panels
    # share one order
    long["variant"] = long["variant"].where(long["variant"] != long["backbone"], "backbone")
    order = ["backbone"] + [v for v in long["variant"].unique() if v != "backbone"]
    g = sns.catplot(data=long, x="variant", y="value", hue="metric", col="backbone", kind="bar", order=order,
                    height=3.2, sharey=False)
    g.set_xticklabels(rotation=30)
    return g.figure


def summary_number(backbone: str):
    """The matrix's number for ``backbone``'s rows: full against the backbone, and the lowest variant."""
    def number(r: dict) -> str:
        rows = {row["variant"]: row for row in r[backbone]["table"]}
        full, base = rows["full"], rows[backbone]
        change = 100 * (full["ndcg@10"] / base["ndcg@10"] - 1)
        lowest = min((v for v in rows if v != backbone), key=lambda v: rows[v]["ndcg@10"])
        return f"full vs {backbone} N@10 {change:+.1f}% ({p_text(base['p vs full (N@10)'])}); lowest variant: {lowest}"
    return number


#: The results matrix's rows for this page (``mealrec reproduce --summary``): the claim, where its verdict
#: sits in the sidecar's results, and the number shown beside it (read from the sidecar's results).
CLAIMS = (("Figure 3: TCD and NPD each help (TedRec)", ("tedrec", "verdict"), summary_number("tedrec")),
          ("Figure 6: universality (SASRec)", ("sasrec", "verdict"), summary_number("sasrec")),
          ("Figure 6: universality (CL4SRec)", ("cl4srec", "verdict"), summary_number("cl4srec")))


def sidecar(results: dict[str, AblationResult]) -> dict:
    return {b: {"table": res.table.reset_index().to_dict(orient="records"), "verdict": res.verdict}
            for b, res in results.items()}


__all__ = ["AblationResult", "FIELDS", "PAGE", "VARIANTS", "ablation", "ablation_requests", "figure",
           "notebook_requests", "sidecar"]
