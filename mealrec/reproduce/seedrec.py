"""Beyond the paper: SeeDRec (Ma et al., IJCAI 2024) beside MealRec on the same backbones, with
SeeDRec's ablations, and S2IDM's cost against an item-level diffusion of the same shape (a live
timing); its runs, numbers, verdict, figure, sidecar and page."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from ..evaluation import METRICS, paired_ttest
from ..utils import MealRecError
from .page import Page, run_line
from .profiles import RUN_FIELDS, SEEDREC_BACKBONES, Profile
from .requests import RunRequest, request
from .store import RunStore
from .verdicts import ALPHA, p_text, schedule_caveat, seed_mean, verdict_label

NOTEBOOK = "seedrec"
FIELDS = RUN_FIELDS + ("seedrec_seeds", "seedrec_backbone_seeds")
#: SeeDRec's variants (its Section 4.3).
SEEDREC_VARIANTS = ("full", "-S2IDM", "-IPE")


#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("seedrec", "beyond-seedrec", "Beyond the paper: SeeDRec vs MealRec",
            "Test HR/NDCG@10/20 of the bare backbone, MealRec and SeeDRec (with its -S2IDM and -IPE ablations) on "
            "SASRec and CL4SRec (the seeds of each backbone's rows are in the table's `seeds` column; means over "
            "them), full ranking and CE for every row (SeeDRec's paper: BCE and 999 sampled "
            "negatives; `mealrec.evaluation.sampled_evaluate` gives that protocol, and "
            "`benchmarks/seedrec_protocol.py` scores this page's stored checkpoints both ways: its results on "
            "synthetic-small and on microlens-small's SASRec rows, with a reading, are in "
            "`benchmarks/results/2026-11-24/` "
            "and `benchmarks/results/2026-11-25/`); p-values are paired t-tests "
            "over test users. Then S2IDM's parameters and training time per epoch against an item-level diffusion "
            "of the same shape, timed on the same users, in turn, fastest of three rounds (a live timing on this "
            "machine: it moves with the machine's load, which the table names as the 1-minute load average against "
            "the cores).",
            (("any", "table"), ("text", "verdict"), ("any", "cost"), ("figure", "figure")))


@dataclass
class SeedrecResult:
    """The SeeDRec page on one dataset (the live timing apart: :func:`sememe_diffusion_cost`)."""

    table: pd.DataFrame  # (backbone, model) -> metrics (means over the backbone's seeds)
    tests: dict[str, dict]  # '<a> vs <b>' -> paired t-test on test N@10 per user
    verdict: str


def seedrec_requests(dataset: str, profile: Profile, seeds: Iterable[int],
                     backbones: Iterable[str] = SEEDREC_BACKBONES) -> dict[tuple[str, str], list[RunRequest]]:
    """(backbone, row label) -> one request per seed: the backbone, MealRec on it, SeeDRec and its ablations."""
    seeds = list(seeds)
    out = {}
    for b in backbones:
        entries = [(b, b, {}), (f"mealrec-{b}", f"mealrec-{b}", {})]
        entries += [(f"seedrec-{b}" + ("" if v == "full" else f" {v}"), f"seedrec-{b}", {"variant": v})
                    for v in SEEDREC_VARIANTS]
        for label, model, over in entries:
            out[(b, label)] = [request(model, dataset, profile, s, over) for s in seeds]
    return out


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """The runs the notebook reads on ``dataset`` with its default parameters, in its order."""
    return [r for b, seeds in profile.seedrec_seeds_by_backbone().items()
            for rs in seedrec_requests(dataset, profile, seeds, [b]).values() for r in rs]


def notebook_seeds(profile: Profile, value) -> dict[str, tuple[int, ...]]:
    """backbone -> seeds: the notebook's SEEDS None gives this page's own seeds in the profile (per
    backbone); a list replaces them all."""
    from .notebook import parse_seeds

    return profile.seedrec_seeds_by_backbone(parse_seeds(value, []) or None)


def profile_line(profile: Profile) -> str:
    """The page's profile sentence: every seed a backbone runs, and a pointer to each dataset's note where
    the backbones' seeds differ."""
    differ = len(set(profile.seedrec_seeds_by_backbone().values())) > 1
    return run_line(profile, NOTEBOOK, " (each backbone's seeds: see each dataset's note)" if differ else "")


def seedrec_vs_mealrec(store: RunStore, dataset: str, profile: Profile, seed: int | None = None,
                       backbones: Iterable[str] = SEEDREC_BACKBONES, seeds=None) -> SeedrecResult:
    """Both plug-ins on the same backbones: the bare backbone, MealRec on it, SeeDRec on it and
    SeeDRec's two ablations (``-S2IDM``: prompts from the undiffused sememe distribution;
    ``-IPE``: no prompts). ``seeds``: a mapping backbone -> seeds (what
    :meth:`Profile.seedrec_seeds_by_backbone` gives; it also picks the backbones), or seeds for
    every one of ``backbones`` (default: ``[seed]``, or the profile's first seed). Metrics are
    means over a backbone's seeds; paired t-tests on test N@10 per user (averaged over the
    seeds) of each plug-in against its backbone and of SeeDRec against MealRec."""
    if isinstance(seeds, dict):
        by_backbone = {b: list(s) for b, s in seeds.items()}
    else:
        one = list(seeds) if seeds else [profile.seeds[0] if seed is None else seed]
        by_backbone = {b: one for b in backbones}
    bad = sorted(set(by_backbone) - set(SEEDREC_BACKBONES))
    if bad or not by_backbone or not all(by_backbone.values()):
        raise MealRecError(f"seedrec_vs_mealrec: backbones must be among {', '.join(SEEDREC_BACKBONES)}, each with at "
                           f"least one seed; got {by_backbone!r}")
    backbones = list(by_backbone)
    rows, runs = [], {}
    for b, b_seeds in by_backbone.items():
        for (_, label), reqs in seedrec_requests(dataset, profile, b_seeds, [b]).items():
            rs = runs[label] = [q.run(store) for q in reqs]
            means = {k: float(np.mean([r["test"][k] for r in rs])) for k in METRICS}
            per_seed = [r["test"]["ndcg@10"] for r in rs]
            sd = {"ndcg@10 sd over seeds": float(np.std(per_seed, ddof=1))} if len(rs) > 1 else {}
            rows.append({"backbone": b, "model": label, **means, **sd,
                         "train s/epoch": float(np.mean([r["timing"]["train_time_per_epoch_s"] for r in rs])),
                         "parameters": rs[0]["n_parameters"], "seeds": len(rs)})
    table = pd.DataFrame(rows).set_index(["backbone", "model"])
    parts, tests, held = [], {}, []
    for b in backbones:
        n10 = {k: seed_mean(runs[k], "ndcg@10") for k in (b, f"mealrec-{b}", f"seedrec-{b}")}
        for a, ref in ((f"seedrec-{b}", b), (f"mealrec-{b}", b), (f"seedrec-{b}", f"mealrec-{b}")):
            t = paired_ttest(n10[a], n10[ref])
            tests[f"{a} vs {ref}"] = t
        sb, mb = tests[f"seedrec-{b} vs {b}"], tests[f"mealrec-{b} vs {b}"]
        sm = tests[f"seedrec-{b} vs mealrec-{b}"]
        held.append(bool(sb["mean_a"] > sb["mean_b"] and sb["p"] < ALPHA))

        def say(t, a, ref):
            d = 100 * (t["mean_a"] / t["mean_b"] - 1) if t["mean_b"] else float("nan")
            per_seed = ""
            if len(by_backbone[b]) > 1:  # the seed-to-seed spread, which the test over users does not see
                ds = [100 * (x["test"]["ndcg@10"] / y["test"]["ndcg@10"] - 1) for x, y in zip(runs[a], runs[ref])]
                per_seed = "; per seed " + ", ".join(f"{v:+.1f}%" for v in ds)
            return f"{d:+.1f}% (p = {t['p']:.2g}{', significant' if t['p'] < ALPHA else ''}{per_seed})"

        n = len(by_backbone[b])
        hr = {m: table.loc[(b, m), "hr@10"] for m in (b, f"mealrec-{b}", f"seedrec-{b}")}

        def hr_change(a, ref):
            return f"{100 * (hr[a] / hr[ref] - 1):+.1f}%" if hr[ref] else "n/a"

        parts.append(f"on {b} ({n} seed{'s' if n > 1 else ''}), SeeDRec changes N@10 by {say(sb, f'seedrec-{b}', b)} "
                     "and MealRec by "
                     f"{say(mb, f'mealrec-{b}', b)}; SeeDRec vs MealRec {say(sm, f'seedrec-{b}', f'mealrec-{b}')}; "
                     f"HR@10 (means over seeds): SeeDRec {hr_change(f'seedrec-{b}', b)} and MealRec "
                     f"{hr_change(f'mealrec-{b}', b)} against {b}")
    text = (f"{verdict_label(held)} (the SeeDRec paper's claim that SeeDRec improves its backbone): on {dataset}, "
            + "; ".join(parts) + ". The SeeDRec paper reports +7% to +21% over its backbones "
            "(sampled-999 evaluation, BCE); this table uses full ranking and CE for every row. "
            f"(Significance: paired t-test over test users, p < {ALPHA}. Rule: 'reproduces' = SeeDRec above its "
            "backbone on N@10 with p < 0.01 on every backbone shown; 'partly' = on some of them.)")
    text += schedule_caveat(runs, profile)
    return SeedrecResult(table, tests, text)


def sememe_diffusion_cost(store: RunStore, dataset: str, epochs: int = 1, seed: int = 0,
                          repeats: int = 3) -> pd.DataFrame:
    """S2IDM's size and training time per epoch against an item-level diffusion of the same
    shape (DiffRec's: the user's distribution over all items), as the SeeDRec paper's Table 3.
    Both are timed here on the same users with random distributions (cost does not depend on
    the values), ``epochs`` epochs each, in this process. The two are timed in turn,
    ``repeats`` rounds, and each keeps its fastest round: on a shared machine, other work only
    ever adds time, so the minimum is the least disturbed reading. ``machine load`` is the
    1-minute load average right after that round: a load above the cores means other work
    shared them, and the times (and less so their ratio) are inflated."""
    import time

    import torch

    from ..data.sememes import sememes_for
    from ..models.seedrec import S2IDM, SeeDRecConfig

    if repeats < 1:
        raise MealRecError(f"sememe_diffusion_cost: repeats must be >= 1, got {repeats}")
    ds = store.dataset(dataset)
    mat = sememes_for(ds)
    cfg = SeeDRecConfig(diff_epochs=epochs)
    shapes = ((f"S2IDM ({mat.source} sememes)", mat.n_sememes),
              ("item-level diffusion (DiffRec shape)", ds.n_items - 1))
    inputs = {}
    for label, q in shapes:  # the same random distributions for every round
        x = torch.rand(ds.n_users, q, generator=torch.Generator().manual_seed(seed))
        inputs[label] = x / x.sum(-1, keepdim=True)
    seconds = {label: float("inf") for label, _ in shapes}
    params, load = {}, {}
    for _ in range(repeats):
        for label, q in shapes:
            model = S2IDM(q, cfg)
            params[label] = sum(p.numel() for p in model.parameters())
            t0 = time.perf_counter()
            model.fit(inputs[label], seed=seed)
            took = (time.perf_counter() - t0) / epochs
            if took < seconds[label]:
                seconds[label], load[label] = took, _load_average()
            del model
    return pd.DataFrame([{"diffusion": label, "dimension": q, "parameters": params[label],
                          "train s/epoch": seconds[label],
                          "machine load": load[label]} for label, q in shapes]).set_index("diffusion")


def _load_average() -> str:
    """The machine's 1-minute load average against its cores (what a live timing moved with)."""
    import os

    try:
        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except (AttributeError, OSError):  # not on every platform
        return "unknown"


def figure(res: SeedrecResult):
    """H@10 and N@10 per row, one panel per backbone."""
    import seaborn as sns

    long = res.table[["hr@10", "ndcg@10"]].reset_index().melt(id_vars=["backbone", "model"], var_name="metric")
    g = sns.catplot(data=long, x="model", y="value", hue="metric", col="backbone", kind="bar", height=3.4,
                    sharex=False, sharey=False)
    for ax in g.axes.flat:
        ax.tick_params(axis="x", labelrotation=35)
    return g.figure


def summary_number(r: dict) -> str:
    parts = []
    for b in SEEDREC_BACKBONES:
        t = r["tests"].get(f"seedrec-{b} vs {b}")
        if t:
            parts.append(f"{b} {100 * (t['mean_a'] / t['mean_b'] - 1):+.1f}% ({p_text(t['p'])})")
    return "SeeDRec N@10 vs backbone: " + ", ".join(parts)


#: The results matrix's rows for this page (``mealrec reproduce --summary``): the claim, where its verdict
#: sits in the sidecar's results, and the number shown beside it (read from the sidecar's results).
CLAIMS = (("SeeDRec improves its backbone", ("verdict",), summary_number),)


def sidecar(res: SeedrecResult, cost: pd.DataFrame) -> dict:
    return {"table": res.table.reset_index().to_dict(orient="records"),
            "cost": cost.reset_index().to_dict(orient="records"),
            "tests": res.tests, "verdict": res.verdict}


__all__ = ["FIELDS", "PAGE", "SEEDREC_BACKBONES", "SEEDREC_VARIANTS", "SeedrecResult", "figure",
           "notebook_requests", "notebook_seeds", "seedrec_requests", "seedrec_vs_mealrec", "sememe_diffusion_cost",
           "sidecar"]
