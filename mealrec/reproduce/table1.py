"""Table 1: each dataset's statistics beside the paper's, what is real and what is synthetic, and the
number of sememes per source (which the SeeDRec page reads, as SeeDRec's Table 1); its numbers,
sentences, sidecar and page. It trains nothing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .. import paper
from ..data import dataset_spec
from ..utils import MealRecError
from .page import Page
from .profiles import Profile
from .requests import RunRequest
from .store import RunStore

NOTEBOOK = "datasets"
FIELDS = ("max_users",)
#: Table 1 reads the data only.
TRAINS = False


#: The book page: its slug, title, protocol caption and what it pastes per dataset.
PAGE = Page("datasets", "table1", "Table 1: datasets",
            "Users, items and interactions after filtering (MicroLens: iterative 4-core; leave-one-out split), "
            "beside the paper's Table 1, and for each dataset which parts are real and which are synthetic. Then "
            "the number of sememes per source (hashtags and title words on MicroLens, planted topics on the "
            "synthetic sets), which the SeeDRec page reads, as in SeeDRec's Table 1.",
            (("any", "table"), ("text", "verdict"), ("any", "sememes"), ("text", "sememe-text")))


@dataclass
class DatasetsResult:
    """Table 1 on one dataset, and its sememes."""

    table: pd.DataFrame  # one row per dataset: ours beside the paper's, and what is real
    text: str  # the page's sentence on the numbers
    sememes: pd.DataFrame  # :func:`sememe_table`
    sememe_text: str


def notebook_requests(dataset: str, profile: Profile) -> list[RunRequest]:
    """Table 1 trains nothing."""
    return []


def profile_line(profile: Profile) -> str:
    """The page's profile sentence."""
    return "statistics of the data; nothing is trained"


def dataset_table(store: RunStore, names: Iterable[str]) -> pd.DataFrame:
    """Our Table 1 statistics beside the paper's, and what is real or synthetic."""
    rows = []
    for name in names:
        spec = dataset_spec(name)
        ref = paper.TABLE1.get(name, {})
        try:
            ds = store.dataset(name)
        except MealRecError as e:
            rows.append({"dataset": name, "note": f"not available here: {e}"})
            continue
        st = ds.stats()
        meta = ds.metadata
        row = {"dataset": name, "paper row": spec.paper_name or "-"}
        for k in ("users", "items", "interactions", "avg_length", "sparsity"):
            row[f"{k} (ours)"] = st[k]
            row[f"{k} (paper)"] = ref.get(k, np.nan)
        row.update({"interactions are": meta["interactions"], "titles are": meta["titles"],
                    "visual features are": meta["visual_features"]})
        if meta.get("user_sample"):  # a profile cut the dataset (the `quick` profile on MicroLens)
            row["users are"] = "a sample: " + meta["user_sample"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")


def summary_text(table: pd.DataFrame, dataset: str) -> str:
    """The page's sentence on ``dataset``'s row of :func:`dataset_table`: ours beside the paper's row."""
    ours = table.iloc[0]
    if pd.notna(ours.get("users (paper)")):
        text = (f"{dataset}: {ours['users (ours)']:,} users, {ours['items (ours)']:,} items, "
                f"{ours['interactions (ours)']:,} interactions; the paper's {ours['paper row']} row has "
                f"{int(ours['users (paper)']):,} / {int(ours['items (paper)']):,} / "
                f"{int(ours['interactions (paper)']):,}.")
    else:
        text = (f"{dataset}: {ours['users (ours)']:,} users, {ours['items (ours)']:,} items, "
                f"{ours['interactions (ours)']:,} interactions; the paper has no such dataset.")
    return text + (f" Interactions: {ours['interactions are']}; titles: {ours['titles are']}; visual features: "
                   f"{ours['visual features are']}.")


def sememe_table(store: RunStore, dataset: str) -> pd.DataFrame:
    """The number of sememes of ``dataset`` (SeeDRec's Table 1 reports it per dataset), for
    each source that applies: planted topics on a synthetic dataset; hashtags and title words
    on MicroLens. ``used by seedrec-*`` marks the source the SeeDRec models read here."""
    from ..data.sememes import resolve_source, sememes_for

    ds = store.dataset(dataset)
    used = resolve_source(ds, "auto")
    rows = []
    for src in ("topic",) if used == "topic" else ("hashtag", "word"):
        st = sememes_for(ds, src).stats()
        rows.append({"source": src, "used by seedrec-*": src == used, "sememes": st["sememes"],
                     "items": st["items"], "items without a sememe": st["items_without_sememe"],
                     "sememes per item": st["avg_sememes_per_item"]})
    return pd.DataFrame(rows).set_index("source")


def sememe_text(table: pd.DataFrame, dataset: str) -> str:
    """One sentence on ``sememe_table``'s numbers beside SeeDRec's Table 1."""
    parts = [f"{int(r['sememes']):,} {src} sememes{' (read by the SeeDRec models)' if r['used by seedrec-*'] else ''}, "
             f"{int(r['items without a sememe']):,} of {int(r['items']):,} items without one"
             for src, r in table.iterrows()]
    lo, hi = min(paper.SEEDREC_TABLE1_SEMEMES.values()), max(paper.SEEDREC_TABLE1_SEMEMES.values())
    return (f"Sememes on {dataset} (for the SeeDRec page): " + "; ".join(parts) + ". SeeDRec's own category "
            f"datasets have {lo:,} to {hi:,} sememes (its Table 1).")


def datasets(store: RunStore, dataset: str) -> DatasetsResult:
    """Everything the page shows for ``dataset``."""
    table = dataset_table(store, [dataset])
    sememes = sememe_table(store, dataset)
    return DatasetsResult(table, summary_text(table, dataset), sememes, sememe_text(sememes, dataset))


def sidecar(res: DatasetsResult) -> dict:
    return {"table": res.table.reset_index().to_dict(orient="records"),
            "sememes": res.sememes.reset_index().to_dict(orient="records")}


__all__ = ["DatasetsResult", "FIELDS", "PAGE", "dataset_table", "datasets", "notebook_requests", "profile_line",
           "sememe_table", "sememe_text", "sidecar", "summary_text"]
