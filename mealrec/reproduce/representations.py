"""Figure 7: user representations, target item embeddings and (MealRec) frame representations,
TedRec beside MealRec-TedRec: the similarities the figure is read for, with paired t-tests, and a
t-SNE of a few users; its runs, numbers, verdict, figure, sidecar and page."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..evaluation import paired_ttest
from .page import Page
from .profiles import RUN_FIELDS, Profile
from .requests import RunRequest, request
from .store import MissingRunError, RunStore
from .verdicts import ALPHA, verdict_label

NOTEBOOK = "visualisation"
FIELDS = RUN_FIELDS + ("tsne_users",)
#: The notebook's MODELS parameter picks its models (None: :data:`VIS_MODELS`).
TAKES_MODELS = True
#: What the notebook shows when its MODELS parameter is None: the backbone first, MealRec last.
VIS_MODELS = ("tedrec", "mealrec-tedrec")


#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("visualisation", "figure7", "Figure 7: representations",
            "t-SNE of user representations, target item embeddings and (MealRec) frame representations for a "
            "few test users, TedRec beside MealRec-TedRec, and the similarities the figure is read for.",
            (("any", "table"), ("text", "verdict"), ("figure", "figure")))


@dataclass
class VisualisationResult:
    """Figure 7 on one dataset."""

    reps: dict[str, dict[str, np.ndarray]]  # model -> :func:`representations`
    alignment: pd.DataFrame  # model -> :func:`alignment`
    verdict: str


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """The runs the notebook reads on ``dataset`` with its default parameters, in its order."""
    return [request(m, dataset, profile) for m in VIS_MODELS]


def representations(store: RunStore, dataset: str, profile: Profile, model: str, n_users: int | None = None,
                    seed: int | None = None) -> dict[str, np.ndarray]:
    """Figure 7's inputs for the first ``n_users`` test users: user representations, target item
    embeddings and (MealRec) frame representations before/after TCD. Cached as ``.repr<N>.npz``
    beside the run; computing them needs the run's checkpoint (retrained if it is absent)."""
    from ..trainer import load_checkpoint
    from ..utils import save_npz_atomic

    n_users = n_users or profile.tsne_users
    q = request(model, dataset, profile, seed)
    r = q.run(store)
    cache = Path(r["result_path"]).with_suffix(f".repr{n_users}.npz")
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    ckpt = store.checkpoint(r)
    if ckpt is None and not store.train:
        raise MissingRunError(f"{model} seed {q.seed} on {dataset}: Figure 7 needs {cache.name} or the run's "
                              "checkpoint, "
                              "and neither is stored (rendering never trains): `mealrec reproduce --train-missing` "
                              "trains the run again")
    if ckpt is None:  # committed results carry no checkpoints: train again into the store
        Path(r["result_path"]).unlink()
        r = q.run(store)
        ckpt = store.checkpoint(r)
    ds = store.dataset(dataset)
    net = load_checkpoint(ckpt, ds)
    batch = ds.test.batch(slice(0, min(n_users, len(ds.test))))
    out = {k: v.float().numpy() for k, v in net.export_representations(batch).items()}
    out["user_index"] = batch["user"].numpy()
    save_npz_atomic(cache, **out)
    return out


def tsne_points(reps: dict[str, np.ndarray], n_show: int = 8, seed: int = 0) -> pd.DataFrame:
    """t-SNE (scikit-learn) of ``n_show`` users' points: user, target item and (if present) frames."""
    from sklearn.manifold import TSNE

    n = min(n_show, len(reps["user"]))
    pts, kinds, users = [], [], []
    for i in range(n):
        pts += [reps["user"][i], reps["target_item"][i]]
        kinds += ["user", "target"]
        users += [i, i]
        if "frames_after" in reps:
            for k, f in enumerate(reps["frames_after"][i]):
                pts.append(f)
                kinds.append(f"frame {k + 1}")
                users.append(i)
    X = np.asarray(pts)
    emb = TSNE(n_components=2, perplexity=min(10.0, (len(X) - 1) / 3), random_state=seed, init="pca").fit_transform(X)
    return pd.DataFrame({"x": emb[:, 0], "y": emb[:, 1], "kind": kinds, "user": users})


def alignment(reps: dict[str, np.ndarray]) -> dict[str, float]:
    """The quantities Figure 7 is read for, over all exported users: mean cosine similarity of the
    user representation to its target item, and (MealRec) to the frames before and after TCD."""
    return {k: float(v.mean()) for k, v in _per_user_alignment(reps).items()}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def _per_user_alignment(reps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per test user (first axis): cosine of the user representation to its target item and
    (MealRec) to each frame before and after TCD (users x frames)."""
    out = {"user-target cosine": _cosine(reps["user"], reps["target_item"])}
    if "frames_after" in reps:
        u = reps["user"][:, None, :]
        out["user-frame cosine before TCD"] = _cosine(u, reps["frames_before"])
        out["user-frame cosine after TCD"] = _cosine(u, reps["frames_after"])
    return out


def alignment_verdict(reps: dict[str, dict[str, np.ndarray]]) -> str:
    """Figure 7's reading in numbers, for the models in ``reps`` (the backbone first, MealRec
    last): per-user cosine of the user representation to its target, compared by a paired
    t-test over the same test users; and, for MealRec, the user-frame cosine before and after
    TCD (the paper's second reading: frames organise around the user's preference)."""
    models = list(reps)
    aligned = {m: _per_user_alignment(r) for m, r in reps.items()}
    per_user = {m: a["user-target cosine"] for m, a in aligned.items()}
    text = "User-target cosine similarity: " + ", ".join(f"{m} {v.mean():.3f}" for m, v in per_user.items())
    held = []  # per reading: held here (closer / frames pulled towards the user, each with p < ALPHA)
    if len(models) > 1:
        a, b = per_user[models[-1]], per_user[models[0]]
        closer = a.mean() > b.mean()
        if len(a) == len(b):
            p = paired_ttest(a, b)["p"]
            test = f" (paired t-test over {len(a):,} test users, p = {p:.2g}{', significant' if p < ALPHA else ''})"
        else:
            p, test = np.nan, ""
        held.append(bool(closer and p < ALPHA))
        text += (". The paper reads its Figure 7 as MealRec bringing the user representation closer to the target: "
                 + ("it does here" if closer else "it does not here") + test)
    last = aligned[models[-1]]
    if "user-frame cosine after TCD" in last:
        before, after = last["user-frame cosine before TCD"].mean(1), last["user-frame cosine after TCD"].mean(1)
        p = paired_ttest(after, before)["p"]
        near_zero = max(abs(before.mean()), abs(after.mean())) < 0.05
        held.append(bool(not near_zero and after.mean() > before.mean() and p < ALPHA))
        text += (f". Its second reading, that frames organise around the user's preference, is measured as the mean "
                 f"user-frame cosine of {models[-1]}: {before.mean():.4f} before TCD, {after.mean():.4f} after "
                 f"(p = {p:.2g}); " + ("both are near zero, so TCD does not visibly pull frames towards the user here"
                                      if near_zero else
                                      "TCD moves frames " + ("towards" if after.mean() > before.mean() else "away from")
                                      + " the user representation"))
    label = (verdict_label(held) + ": ") if held else ""
    return (label + text + ". One seed; the t-SNE below shows a handful of users and is read by eye. "
            "(Rule: 'reproduces' "
            "= both readings hold with p < 0.01: MealRec's user representation is closer to the target than the "
            "backbone's, and TCD raises the user-frame cosine from a value that is not near zero (|cos| >= 0.05); "
            "'partly' = one of them.)")


def visualisation(store: RunStore, dataset: str, profile: Profile, models: Iterable[str] | None = None,
                  seed: int | None = None) -> VisualisationResult:
    """The representations of ``models`` (default :data:`VIS_MODELS`), their alignment and the verdict."""
    reps = {m: representations(store, dataset, profile, m, seed=seed) for m in (list(models or VIS_MODELS))}
    align = pd.DataFrame({m: alignment(r) for m, r in reps.items()}).T
    return VisualisationResult(reps, align, alignment_verdict(reps))


def figure(res: VisualisationResult, n_show: int = 8):
    """One t-SNE panel per model: a few users, their targets and (MealRec) frames."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    reps = res.reps
    fig, axes = plt.subplots(1, len(reps), figsize=(5 * len(reps), 4.2))
    axes = [axes] if len(reps) == 1 else axes
    for ax, (m, r) in zip(axes, reps.items()):
        pts = tsne_points(r, n_show=n_show)
        sns.scatterplot(data=pts, x="x", y="y", hue="user", style="kind", palette="tab10", s=60, ax=ax,
                        legend=ax is axes[-1])
        ax.set_title(m)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
    if len(reps) > 0:
        axes[-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


def summary_number(r: dict) -> str:
    a = r["alignment"]
    return (f"user-target cosine {a['tedrec']['user-target cosine']:.3f} (TedRec) vs "
            f"{a['mealrec-tedrec']['user-target cosine']:.3f}")


#: The results matrix's rows for this page (``mealrec reproduce --summary``): the claim, where its verdict
#: sits in the sidecar's results, and the number shown beside it (read from the sidecar's results).
CLAIMS = (("Figure 7: user closer to target", ("verdict",), summary_number),)


def sidecar(res: VisualisationResult) -> dict:
    return {"alignment": res.alignment.to_dict(orient="index"), "verdict": res.verdict}


__all__ = ["FIELDS", "PAGE", "VIS_MODELS", "VisualisationResult", "alignment", "alignment_verdict", "figure",
           "notebook_requests", "representations", "sidecar", "tsne_points", "visualisation"]
