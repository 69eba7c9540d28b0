"""The positive-controls page (``notebooks/controls.ipynb``): does our MealRec use content where
the content holds the answer?

On each planted control (:mod:`mealrec.data.controls`) it trains, for the SASRec and TedRec
backbones, the bare backbone and MealRec's ``full``, ``-TCD``, ``-NPD`` and ``-TCD-NPD``, at the
profile's control seeds and a fixed number of epochs (validation targets on the controls are
unpredictable tails, so the model is the last epoch's: the control datasets evaluate validation
only after the last epoch). Beside them, the content-reading reference (a rule, no training) and
the frame-shuffle diagnostic: every run that reads frames is evaluated again with each item's
frames in a fixed random order (``<run>.shuffled.npz``, computed from the checkpoint right after
training and committed beside the run, since checkpoints are not).

Verdict rules, per backbone (NDCG@10, means over seeds):

* ``control-content``: every variant beats the backbone by >= :data:`CONTENT_MARGIN`.
* ``control-temporal``: ``full`` beats the backbone by >= :data:`TEMPORAL_MARGIN`, and shuffling
  the frames costs ``full`` at least :data:`SHUFFLE_SHARE` of that gain.
* ``control-selection``: ``full`` beats ``-NPD`` (paired t-test over users, p < :data:`ALPHA`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import dataset_spec
from ..data.controls import ControlParams, floor_and_ceiling, reference_scores
from ..evaluation import evaluate, paired_ttest
from ..trainer import load_checkpoint
from ..utils import save_npz_atomic
from .ablation import VARIANTS
from .page import Page, seeds_text
from .profiles import Profile
from .requests import RunRequest
from .store import RunStore

NOTEBOOK = "controls"
#: The page runs on the positive controls only, and no other page runs on them.
CONTROLS_ONLY = True
FIELDS = ("control_seeds", "control_epochs")

BACKBONES = ("sasrec", "tedrec")
ROWS = ("backbone",) + VARIANTS
CONTENT_MARGIN = 0.30
TEMPORAL_MARGIN = 0.15
SHUFFLE_SHARE = 0.5
ALPHA = 0.05
SHUFFLE_SEED = 0
#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("controls", "controls", "Positive controls: does our MealRec use content?",
            "Planted datasets whose answer lies in the frames of the last item (control-content), in their order "
            "(control-temporal), or in the frame segment the user's history selects (control-selection). On each: "
            "the bare SASRec and TedRec backbones and MealRec's four variants on them at three seeds (means and "
            "standard deviations over the seeds), trained for a fixed number of epochs (validation targets there "
            "are unpredictable tails, so the model is the last epoch's), at batch size 256; the content-reading "
            "reference (a rule that reads the planted frames directly); the analytic floor (what an ID-only model "
            "can reach) and ceiling (a perfect reader of the content); and every MealRec run evaluated again with "
            "each item's frames shuffled. p-values are paired t-tests over test users of the seed-averaged N@10. "
            "MealRec here runs the settings these controls chose (`mealrec/configs/models/mealrec-*.yaml`); the other "
            "pages still show MealRec runs made before them (`V1_SETTINGS` in `mealrec/models/mealrec.py`), marked "
            "'Made by older code', until those runs are retrained on the final code.",
            (("text", "generator"), ("any", "bounds"), ("any", "table"), ("text", "verdict"), ("figure", "figure")))


@dataclass
class ControlsResult:
    """The page's numbers on one control."""

    kind: str  # content | temporal | selection
    generator: str  # how the control was planted
    bounds: dict  # floor and ceiling per metric
    table: pd.DataFrame  # (backbone, row) -> metrics, shuffled N@10, p-values
    verdicts: dict[str, str]  # backbone -> verdict


GENERATOR = {
    "content": "Topics with five warm hub items each and many single-use tail items; every user moves from a tail "
               "of a topic to a hub of the same topic, four times, the topic drawn anew each time. Tail frames show "
               "their topic, hub frames are background and titles are random words. The test's last input is a "
               "tail no training instance contains, so only its frames can tell the target's topic.",
    "temporal": "The same users, hubs and titles as control-content, but every tail shows the same five base frames, "
                "in an order that is its topic's (one permutation per topic), plus noise. The frames' mean carries "
                "no topic; only their order does. Shuffling a tail's frames at evaluation erases the signal.",
    "selection": "Topics fall into two families and every user belongs to one. A tail shows a two-frame segment of "
                 "one topic from each family; the target is a hub of the topic whose family is the user's, which "
                 "the earlier hubs of the history tell. Reading the frames without the user leaves two topics.",
}


def is_control(dataset: str) -> bool:
    return dataset_spec(dataset).source == "control"


def control_kind(dataset: str) -> str:
    return dataset_spec(dataset).params.get("kind", "content")


def requests(dataset: str, profile: Profile) -> dict[tuple[str, str], list[RunRequest]]:
    """(backbone, row) -> one request per control seed, at the profile's fixed control epochs."""
    out = {}
    for b in BACKBONES:
        for row in ROWS:
            model, over = (b, ()) if row == "backbone" else (f"mealrec-{b}", (("variant", row),))
            out[(b, row)] = [RunRequest(model, dataset, s, profile.control_epochs, profile.control_epochs, over)
                             for s in profile.control_seeds]
    return out


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """The runs the notebook reads on ``dataset``, in its order (none off the controls)."""
    return [r for rs in requests(dataset, profile).values() for r in rs] if is_control(dataset) else []


def notebook_seeds(profile: Profile, value) -> tuple[int, ...]:
    """The page's seeds are the profile's control seeds (its SEEDS parameter is not read)."""
    return profile.control_seeds


def profile_line(p: Profile) -> str:
    """The page's profile sentence."""
    return f"{p.control_epochs} epochs per run, no early stopping, {seeds_text(p.control_seeds)}"


def shuffle_frames(frames: torch.Tensor, seed: int = SHUFFLE_SEED) -> torch.Tensor:
    """``frames (n_items, K, d)`` with each item's K frames in its own random order (seeded)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.argsort(torch.rand(frames.shape[0], frames.shape[1], generator=g), dim=1)
    return torch.gather(frames, 1, perm[:, :, None].expand_as(frames))


def shuffled_path(result_path: str | Path) -> Path:
    return Path(result_path).with_suffix(".shuffled.npz")


def shuffled_test(store: RunStore, res: dict) -> dict[str, np.ndarray] | None:
    """Per-user test metrics of a stored MealRec run with every item's frames shuffled: read from
    ``<run>.shuffled.npz``, or computed from the run's checkpoint when the store trains (None when
    neither is possible, or for a model without frames)."""
    if not res["config"]["model"].startswith("mealrec"):
        return None
    path = shuffled_path(res["result_path"])
    if path.exists():
        with np.load(path) as z:
            if str(z["store_key"]) == str(res.get("store_key")):
                return {k: z[k] for k in z.files if k != "store_key"}
    ckpt = store.checkpoint(res)
    if not store.train or ckpt is None:
        return None
    ds = store.dataset(res["config"]["dataset"])
    model = load_checkpoint(ckpt, ds)
    model.frames = shuffle_frames(model.frames)
    with torch.inference_mode():
        _, per_user = evaluate(model.full_sort_predict, ds.test, 1024, torch.device("cpu"))
    save_npz_atomic(path, store_key=np.array(str(res.get("store_key"))), **per_user)
    return per_user


def reference(store: RunStore, dataset: str) -> dict[str, np.ndarray]:
    """Per-user test metrics of the content-reading reference (:func:`reference_scores`)."""
    ds = store.dataset(dataset)
    with torch.inference_mode():
        return evaluate(reference_scores(ds), ds.test, 1024, torch.device("cpu"))[1]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def controls(store: RunStore, dataset: str, profile: Profile) -> ControlsResult:
    """The page's numbers on one control: its bounds, the table and the verdict per backbone."""
    kind = control_kind(dataset)
    params = ControlParams(**store.dataset(dataset).metadata["generator_params"])
    bounds = floor_and_ceiling(params)
    per_user: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    for (b, row), reqs in requests(dataset, profile).items():
        runs = [q.run(store) for q in reqs]
        shuffled = [shuffled_test(store, r) for r in runs]
        per_user[(b, row)] = np.mean([r["per_user_test"]["ndcg@10"] for r in runs], axis=0)
        n, nsd = _mean_sd([r["test"]["ndcg@10"] for r in runs])
        h, hsd = _mean_sd([r["test"]["hr@10"] for r in runs])
        shuf = [float(np.mean(s["ndcg@10"])) for s in shuffled if s is not None]
        rows.append({"backbone": b, "row": row, "H@10": h, "H@10 sd": hsd, "N@10": n, "N@10 sd": nsd,
                     "N@10 shuffled": float(np.mean(shuf)) if len(shuf) == len(runs) else np.nan,
                     "seeds": len(runs), "older code": sum("older_code" in r for r in runs)})
    ref = reference(store, dataset)
    rows.append({"backbone": "reference", "row": "content reader", "H@10": float(np.mean(ref["hr@10"])),
                 "H@10 sd": 0.0, "N@10": float(np.mean(ref["ndcg@10"])), "N@10 sd": 0.0,
                 "N@10 shuffled": np.nan, "seeds": 0, "older code": 0})
    table = pd.DataFrame(rows).set_index(["backbone", "row"])
    for (b, row), pu in per_user.items():
        for other, col in (("backbone", "p vs backbone"), ("full", "p vs full")):
            table.loc[(b, row), col] = np.nan if row == other else paired_ttest(pu, per_user[(b, other)])["p"]
    n = len(profile.control_seeds)
    verdicts = {b: verdict(kind, table.loc[b], b)[:-1] + f"; {n} seed{'s' if n > 1 else ''}." for b in BACKBONES}
    return ControlsResult(kind, GENERATOR[kind], bounds, table, verdicts)


def verdict(kind: str, t: pd.DataFrame, backbone: str) -> str:
    """The verdict on one backbone's rows ``t`` (indexed by row), by the rule of the module docstring."""
    n = t["N@10"]
    gain = {v: n[v] - n["backbone"] for v in VARIANTS}
    if kind == "content":
        ok = all(g >= CONTENT_MARGIN for g in gain.values())
        detail = (f"gain over {backbone} in N@10: " + ", ".join(f"{v} {g:+.3f}" for v, g in gain.items())
                  + f" (rule: every variant >= +{CONTENT_MARGIN:.2f})")
    elif kind == "temporal":
        lost = n["full"] - t.loc["full", "N@10 shuffled"]
        ok = bool(gain["full"] >= TEMPORAL_MARGIN and lost >= SHUFFLE_SHARE * gain["full"])
        drops = ", ".join(f"{v} {n[v] - t.loc[v, 'N@10 shuffled']:+.3f}" for v in VARIANTS)
        detail = (f"full gains {gain['full']:+.3f} N@10 over {backbone} and shuffling its frames costs it {lost:.3f}; "
                  f"-TCD gains {gain['-TCD']:+.3f}; loss under shuffling: {drops} (rule: full's gain >= "
                  f"+{TEMPORAL_MARGIN:.2f} and shuffling costs >= {SHUFFLE_SHARE:.0%} of it)")
    else:
        p = t.loc["-NPD", "p vs full"]
        ok = bool(n["full"] > n["-NPD"] and p < ALPHA)
        detail = (f"full {n['full']:.3f} vs -NPD {n['-NPD']:.3f} N@10 (p = {p:.2g}); -TCD {n['-TCD']:.3f} vs -TCD-NPD "
                  f"{n['-TCD-NPD']:.3f} (rule: full above -NPD at p < {ALPHA}; a null is suggestive, not proof)")
    return f"{'uses the planted signal' if ok else 'does not use the planted signal'} (MealRec-{backbone}): {detail}."


def figure(result: ControlsResult, dataset: str):
    """Bars of N@10 per row and backbone, the shuffled evaluation beside them, floor and ceiling as lines."""
    import matplotlib.pyplot as plt

    t = result.table
    fig, axes = plt.subplots(1, len(BACKBONES), figsize=(4.2 * len(BACKBONES), 3.2), sharey=True)
    for ax, b in zip(np.atleast_1d(axes), BACKBONES):
        sub = t.loc[b]
        x = np.arange(len(sub))
        ax.bar(x - 0.2, sub["N@10"], 0.4, yerr=sub["N@10 sd"].fillna(0), label="N@10")
        ax.bar(x + 0.2, sub["N@10 shuffled"].fillna(0), 0.4, label="frames shuffled")
        for name, style in (("floor", ":"), ("ceiling", "--")):
            ax.axhline(result.bounds[name]["ndcg@10"], ls=style, color="grey", lw=1, label=name)
        ax.axhline(t.loc[("reference", "content reader"), "N@10"], ls="-.", color="black", lw=1, label="reference")
        ax.set_xticks(x, [r if r != "backbone" else b for r in sub.index], rotation=30)
        ax.set_title(f"MealRec-{b} on {dataset}")
    np.atleast_1d(axes)[0].set_ylabel("test N@10")
    np.atleast_1d(axes)[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig


def sidecar(result: ControlsResult) -> dict:
    return {"kind": result.kind, "bounds": result.bounds, "verdicts": result.verdicts,
            "table": result.table.reset_index().to_dict(orient="records")}


__all__ = ["BACKBONES", "ControlsResult", "FIELDS", "PAGE", "ROWS", "controls", "figure", "is_control",
           "notebook_requests", "notebook_seeds", "profile_line", "reference", "requests", "shuffle_frames",
           "shuffled_test", "sidecar", "verdict"]
