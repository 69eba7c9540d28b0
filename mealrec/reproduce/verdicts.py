"""What every verdict shares: the significance level, metric labels, the label a rule's checks
give, and the sentences on a row's training schedule (early plateaus, the epoch cap, a longer
patience) that qualify a comparison."""
from __future__ import annotations

import numpy as np

from ..evaluation import paired_ttest
from .profiles import PLATEAU_BEST_EPOCH, Profile


ALPHA = 0.01  # significance level of the paper's paired t-tests


METRIC_LABELS = {"hr@10": "H@10", "ndcg@10": "N@10", "hr@20": "H@20", "ndcg@20": "N@20"}


def verdict_label(held: list[bool]) -> str:
    """A verdict's label from the checks its rule makes: all hold, some, or none."""
    return "reproduces" if all(held) else ("partly reproduces" if any(held) else "does not reproduce")


def p_text(p: float | None) -> str:
    """A p-value as the results matrix prints it."""
    return "p n/a" if p is None or (isinstance(p, float) and np.isnan(p)) else f"p = {p:.2g}"


def seed_mean(runs: list[dict], metric: str) -> np.ndarray:
    return np.mean([r["per_user_test"][metric] for r in runs], axis=0)


def per_seed_tests(ours: list[dict], other: list[dict], metric: str) -> dict[int, dict]:
    """Seed -> paired t-test over users of ``ours`` against ``other`` at that seed, for every seed both
    lists ran."""
    by_seed = {r["config"]["seed"]: r for r in other}
    return {r["config"]["seed"]: paired_ttest(r["per_user_test"][metric], by_seed[r["config"]["seed"]]["per_user_test"]
                                              [metric])
            for r in ours if r["config"]["seed"] in by_seed}


def _patience(result: dict, default: int) -> int:
    """The patience a stored run was trained with."""
    return int(result["config"]["train"].get("patience", default))


def training_record(rs: list[dict], patience: int) -> tuple[str, str]:
    """What a row's training record says, as (kind, text): ``"cap"`` (cut by the epoch cap while
    still improving), ``"plateau"`` (early stopping on an early plateau: best epoch <= 3) or
    ``"converged"``; means over the seeds in ``rs``. ``patience``: the patience the row was
    requested with (a longer one in its record is a plateau retry)."""
    best = float(np.mean([r["best_epoch"] for r in rs]))
    ran = float(np.mean([r["timing"]["epochs_run"] for r in rs]))
    cap = max(int(r["config"]["train"]["epochs"]) for r in rs)
    used = sorted({_patience(r, patience) for r in rs} - {patience})
    retried = f", patience {'/'.join(map(str, used))} after an early plateau at {patience}" if used else ""
    if ran >= cap and best >= cap - patience:
        return "cap", f"hit the {cap}-epoch cap while still improving (best epoch {best:.0f}{retried})"
    if best <= PLATEAU_BEST_EPOCH and ran < cap:
        return "plateau", f"stopped on an early plateau (best epoch {best:.0f}, stopped after {ran:.0f}{retried})"
    return "converged", f"converged (best epoch {best:.0f} of {ran:.0f}{retried})"


def requested_patience(rs: list[dict], profile: Profile | int) -> int:
    """The patience the profile requests for the model of the runs ``rs`` (an int: for every row)."""
    if isinstance(profile, int):
        return profile
    return profile.patience_for(str(rs[0]["config"].get("model", ""))) if rs else profile.patience


def schedule_caveat(runs: dict[str, list[dict]], profile: Profile | int) -> str:
    """A sentence naming the rows whose training stopped on an early plateau or at the epoch
    cap ('' when none did): differences against them measure the schedule, not the method.
    ``profile``: the profile as it applies to the dataset (each row's requested patience follows
    its backbone, ``Profile.backbone_patience``), or one patience for every row."""
    base = profile if isinstance(profile, int) else profile.patience
    asked = {label: requested_patience(rs, profile) for label, rs in runs.items()}
    odd = {label: training_record(rs, asked[label]) for label, rs in runs.items()}
    odd = {label: text for label, (kind, text) in odd.items() if kind != "converged"}
    retried = {label: sorted({_patience(r, asked[label]) for r in rs} - {asked[label]}) for label, rs in runs.items()}
    retried = {label: used for label, used in retried.items() if used}
    text = ""
    longer = sorted({p for p in asked.values() if p != base})
    if longer:
        labels = [label for label, p in asked.items() if p != base]
        text += (f" Note: {', '.join(labels)} {'was' if len(labels) == 1 else 'were'} trained with patience "
                 f"{'/'.join(map(str, longer))} instead of {base}: the profile gives every run on "
                 f"{'that backbone' if len(labels) == 1 else 'their backbone'} the longer patience on this dataset "
                 "(its validation metric sits flat before it climbs), so those rows compare with each other at "
                 "equal patience"
                 + (f"; the other rows had patience {base}." if len(labels) < len(asked) else "."))
    if retried:
        labels = list(retried)
        used = sorted({p for ps in retried.values() for p in ps})
        text += (f" Note: {', '.join(labels)} {'was' if len(labels) == 1 else 'were'} trained with patience "
                 f"{'/'.join(map(str, used))} instead of {'/'.join(map(str, sorted({asked[x] for x in labels})))}: "
                 f"at that patience {'it' if len(labels) == 1 else 'each'} stopped on an early plateau "
                 f"(best epoch <= {PLATEAU_BEST_EPOCH}), "
                 "so the profile trained it again with the longer patience (a favour to that row only).")
    if odd:
        text += (" Caveat: " + "; ".join(f"{label} {why}" for label, why in odd.items())
                 + ", so differences against " + ("it" if len(odd) == 1 else "them")
                 + " reflect the training schedule (early stopping or the epoch cap) more than the method.")
    return text


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


__all__ = ["ALPHA", "METRIC_LABELS", "ordinal", "p_text", "requested_patience", "schedule_caveat", "seed_mean",
           "training_record", "verdict_label"]
