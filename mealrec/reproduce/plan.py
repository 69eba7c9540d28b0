"""What a reproduction needs: the training runs behind each notebook x dataset pair.

Each artefact module builds its page's runs with the request builders the notebooks' functions
use too, and :func:`mealrec.reproduce.artefacts.notebook_requests` lists what each notebook asks
for with its default parameters, so the plan and the pages cannot disagree.

:func:`plan` says which of those runs are already in the run store, with a rough cost
for the missing ones (from stored runs of the same model on the same dataset);
:func:`train_missing` trains them without executing any notebook, optionally one shard of
them, so that several processes can fill one store side by side (``mealrec reproduce
--plan`` / ``--runs-only --shard K/N``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from ..utils import MealRecError, atomic_path
from .artefacts import notebook_requests, trains
from .profiles import get_profile
from .requests import RunRequest, claim
from .store import RunStore


# --------------------------------------------------------------------------- the plan
def _size(store: RunStore, dataset: str) -> float:
    """Interactions: what one epoch's cost grows with. Measured on the committed full runs,
    microlens-big against microlens-small (5.5x the interactions, 12x interactions x items):
    seconds per epoch grew 3.2x (SASRec) to 6.1x (DiQDiff) for the sequential models, 9.9x for
    MoRec and 18x for MMGCN; scoring every item is a small part of an epoch."""
    return float(store.dataset(dataset).stats()["interactions"])


def _stored_costs(root: Path) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float], dict[Path, dict]]:
    """From one pass over the stored results, per (dataset, model): mean wall seconds per epoch
    (train + eval), and mean epochs run by the runs that are not timing runs (> 5 epochs) and that
    early stopping ended (a run that hit its epoch cap says nothing of how long an uncapped one
    takes); and every result that parsed, by path."""
    sec: dict[tuple[str, str], list[float]] = {}
    ran: dict[tuple[str, str], list[int]] = {}
    results: dict[Path, dict] = {}
    for f in root.glob("*/*/*.json"):
        try:
            r = results[f] = json.loads(f.read_text())
            t, key = r["timing"], (f.parts[-3], f.parts[-2])
            seconds = t["train_time_per_epoch_s"] + t["eval_time_per_epoch_s"]
            long_run = r["config"]["train"]["epochs"] > 5
            epochs_run = t["epochs_run"]  # read everything before recording anything
            sec.setdefault(key, []).append(seconds)
            if long_run and epochs_run < r["config"]["train"]["epochs"]:
                ran.setdefault(key, []).append(epochs_run)
        except (KeyError, ValueError, TypeError):
            continue
    mean = lambda acc: {k: sum(v) / len(v) for k, v in acc.items()}  # noqa: E731
    return mean(sec), mean(ran), results


def _minutes_spent(r: dict | None) -> float | None:
    """A stored run's recorded wall time in minutes: every epoch's training and validation,
    plus the test pass (None when the result does not say)."""
    try:
        secs = sum(h.get("train_time_s", 0.0) + h.get("eval_time_s", 0.0) for h in r["history"])
        return (secs + (r["timing"].get("test_eval_time_s") or 0.0)) / 60
    except (KeyError, ValueError, TypeError):
        return None


def plan(store: RunStore, profile: str, datasets: Iterable[str], notebooks: Iterable[str]) -> list[dict]:
    """One row per distinct run the notebooks need on the datasets: which notebooks ask for
    it, whether it is stored, and for a missing run a rough cost in minutes: epochs as the
    model's stored runs took (else the epoch cap) times their seconds per epoch, on that
    dataset; else, for a plug-in (``mealrec-X``, ``seedrec-X``), X's cost there (stored, or
    else X's own estimate there) times the plug-in's time ratio to X where both ran; else scaled by
    interactions from the closest-sized dataset with a stored run of the model
    (``cost_basis`` says which); None when the model has no stored run."""
    sec_per_epoch, epochs_run, results = _stored_costs(store.root)
    sizes: dict[str, float | None] = {}

    def size(d: str) -> float | None:
        """Loaded only when a cost must be scaled; None for a dataset that cannot be loaded here."""
        if d not in sizes:
            try:
                sizes[d] = _size(store, d)
            except MealRecError:
                sizes[d] = None
        return sizes[d]

    def closest(cands: list[str], d: str) -> str:
        sized = [c for c in cands if size(c)] if size(d) else []
        return min(sized, key=lambda c: abs(np.log(size(c) / size(d)))) if sized else cands[0]

    def epochs_of(d: str, model: str) -> float | None:
        """Epochs a run of ``model`` on ``d`` is expected to take: as its early-stopped runs there,
        else as on the closest dataset where it has some (None: unknown)."""
        if (d, model) in epochs_run:
            return epochs_run[(d, model)]
        known = [k[0] for k in epochs_run if k[1] == model]
        return epochs_run[(closest(known, d), model)] if known else None

    def seconds(d: str, model: str) -> tuple[float | None, str, float | None]:
        """Seconds per epoch of ``model`` on ``d``, what the figure rests on, and the epochs a
        run is expected to take (None: unknown)."""
        if (d, model) in sec_per_epoch:
            return sec_per_epoch[(d, model)], "", epochs_of(d, model)
        base = model.split("-", 1)[1] if model.startswith(("mealrec-", "seedrec-")) else None
        refs = [k[0] for k in sec_per_epoch if k[1] == model and (k[0], base) in sec_per_epoch] if base else []
        if refs:
            src = closest(refs, d)
            ratio = sec_per_epoch[(src, model)] / sec_per_epoch[(src, base)]
            if (d, base) in sec_per_epoch:
                return (sec_per_epoch[(d, base)] * ratio, f"{base} there x its time ratio on {src}",
                        epochs_of(d, base))
            # the backbone's own estimate there (scaled from a dataset it ran on, often closer in size
            # than any the plug-in ran on) times the plug-in's ratio
            base_sec, base_basis, base_epochs = seconds(d, base)
            if base_sec is not None:
                return base_sec * ratio, f"{base} {base_basis} x its time ratio on {src}", base_epochs
        known = [k[0] for k in sec_per_epoch if k[1] == model and size(k[0])]
        if not known or not size(d):
            return None, "", None
        src = closest(known, d)
        return sec_per_epoch[(src, model)] * size(d) / size(src), f"scaled from {src}", epochs_of(src, model)

    rows: dict[Path, dict] = {}

    def with_retries(reqs: list[RunRequest]):
        """Each request and its path, followed by its plateau retry when its stored run needs one."""
        for req in reqs:
            path = req.path(store)
            yield req, path
            retry = req.retry(results[path]) if req.plateau_patience is not None and path in results else None
            if retry is not None:
                yield retry, retry.path(store)

    for d in datasets:
        prof = get_profile(profile, d)
        for nb in notebooks:
            for req, path in with_retries(notebook_requests(nb, d, prof)):
                if path in rows:
                    if nb not in rows[path]["notebooks"]:
                        rows[path]["notebooks"].append(nb)
                    continue
                stored = path in results and store.read_stored(path) is not None  # a damaged one is moved aside
                minutes, basis, spent = None, "", None
                if stored:
                    spent = _minutes_spent(results.get(path))
                else:
                    sec, basis, seen = seconds(d, req.model)
                    if sec is not None:
                        epochs = req.epochs if req.isolate or seen is None else min(req.epochs, seen)
                        minutes = epochs * sec / 60
                # defaults dropped, as the store names it
                setting = path.name.rsplit(f"seed{req.seed}-", 1)[0].rstrip("-")
                if not req.isolate and req.patience != prof.patience:  # a plateau retry (same file stem)
                    setting = (setting + " " if setting else "") + f"patience={req.patience}"
                rows[path] = {"dataset": d, "model": req.model, "setting": setting, "seed": req.seed,
                              "epochs": req.epochs, "notebooks": [nb], "stored": stored, "est_minutes": minutes,
                              "cost_basis": basis, "minutes_spent": spent,
                              "request": req, "path": str(path)}
    return list(rows.values())


def summarise(rows: list[dict]) -> list[dict]:
    """Per notebook x dataset: runs needed, stored, missing and their rough cost in hours."""
    out: dict[tuple[str, str], dict] = {}
    for r in rows:
        for nb in r["notebooks"]:
            s = out.setdefault((nb, r["dataset"]), {"notebook": nb, "dataset": r["dataset"], "needed": 0, "stored": 0,
                                                    "est_hours": 0.0, "unknown_cost": 0})
            s["needed"] += 1
            s["stored"] += r["stored"]
            if not r["stored"]:
                if r["est_minutes"] is None:
                    s["unknown_cost"] += 1
                else:
                    s["est_hours"] += r["est_minutes"] / 60
    return list(out.values())


def coverage_markdown(rows: list[dict], profile: str, notebooks: Iterable[str], datasets: Iterable[str]) -> str:
    """The book page listing, per table/figure and dataset, how many of its runs are stored."""
    import datetime as dt

    from .provenance import git_commit

    summary = {(s["notebook"], s["dataset"]): s for s in summarise(rows)}
    datasets = list(datasets)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Coverage of the `{profile}` profile", "",
             "Which training runs behind each table and figure are in the committed run store "
             f"(`runs/{profile}/`), as of the last `mealrec reproduce --plan --profile {profile}` "
             f"({when}, commit {git_commit() or 'unknown'}). Each cell: runs stored / runs needed. "
             "A page shows a dataset once all of its runs for that dataset are stored; until then the page names the "
             "dataset as pending. The cost of a missing run is a rough figure: its model's "
             "stored runs on that dataset (epochs until early stopping, seconds per epoch on the machine that ran "
             "them, often a loaded 2-core CPU); where it has none there, for MealRec or SeeDRec on a backbone, the "
             "backbone's runs there (or, where it has none either, the backbone's own scaled estimate) times the "
             "plug-in's time ratio to it where both ran; else its runs on the closest-sized dataset scaled by "
             "interactions (a sequential model's epoch grows about as they do).", "",
             "| notebook | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    for nb in notebooks:
        if not trains(nb):
            continue
        cells = []
        for d in datasets:
            s = summary.get((nb, d))
            if s is None:
                cells.append("–")
                continue
            cell = f"{s['stored']}/{s['needed']}"
            missing = s["needed"] - s["stored"]
            if missing:
                cost = f"~{s['est_hours']:.1f} h" if s["est_hours"] else ""
                if s["unknown_cost"]:
                    cost += (" + " if cost else "") + f"{s['unknown_cost']} of unknown cost"
                cell += f" ({cost})" if cost else ""
            cells.append(cell)
        lines.append(f"| {nb} | " + " | ".join(cells) + " |")
    missing = [r for r in rows if not r["stored"]]
    total = sum(r["est_minutes"] or 0 for r in missing) / 60
    spent = sum(r.get("minutes_spent") or 0 for r in rows if r["stored"]) / 60
    lines += ["", f"The stored runs took {spent:.0f} core-hours of training and evaluation as each recorded it "
              "(the sum of their epochs' wall times, mostly one thread per run with two runs side by side on a "
              "2-core CPU)."]
    lines += ["", f"In all, {len(rows) - len(missing)} of {len(rows)} distinct runs are stored"
              + (f"; the {len(missing)} missing would take roughly {total:.1f} core-hours where a cost is known"
                 if missing else "; none is missing")
              + (f" ({sum(r['est_minutes'] is None for r in missing)} have no stored run of their model to "
                 "estimate from)." if any(r["est_minutes"] is None for r in missing) else "."), "",
              f"To train the missing runs without executing notebooks, start "
              f"`mealrec reproduce --profile {profile} --runs-only --threads 1` in two processes side by side (each "
              f"claims a run before training it, so they share the runs out); "
              f"then `mealrec reproduce --profile {profile}` renders the pages.", ""]
    return "\n".join(lines)


def write_coverage(rows: list[dict], profile: str, notebooks: Iterable[str], datasets: Iterable[str],
                   root: Path) -> Path:
    """Write the coverage page and, beside it, ``coverage.json`` (per notebook x dataset: runs
    stored, needed, rough hours missing), which the table and figure pages read to say which
    datasets they do not show yet."""
    notebooks, datasets = list(notebooks), list(datasets)
    path = Path(root) / "book" / "generated" / profile / "coverage.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(coverage_markdown(rows, profile, notebooks, datasets), encoding="utf-8")
    cells = [{k: s[k] for k in ("notebook", "dataset", "stored", "needed", "est_hours", "unknown_cost")}
             for s in summarise(rows) if s["dataset"] in datasets and s["notebook"] in notebooks]
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"profile": profile, "datasets": datasets, "cells": cells}, indent=1) + "\n",
                       encoding="utf-8")
    return path


def wall_hours(missing: list[dict], workers: int) -> tuple[float, int]:
    """Wall hours to train ``missing`` on ``workers`` parallel slots, longest first (each run goes to
    the slot that frees first), by the cost model; and how many runs have no cost estimate."""
    import heapq

    if workers < 1:
        raise MealRecError(f"--workers {workers}: need at least 1")
    slots = [0.0] * workers
    for m in sorted((r["est_minutes"] for r in missing if r["est_minutes"] is not None), reverse=True):
        heapq.heapreplace(slots, slots[0] + m)
    return max(slots) / 60, sum(r["est_minutes"] is None for r in missing)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N; None -> (1, 1)."""
    if not text:
        return 1, 1
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise MealRecError(f"--shard {text!r}: expected K/N such as 1/2 (this process takes every N-th missing run, "
                           "starting at the K-th)") from None
    if not 1 <= k <= n:
        raise MealRecError(f"--shard {text!r}: need 1 <= K <= N, such as 1/2 and 2/2 for two processes")
    return k, n


def train_missing(store: RunStore, rows: list[dict], shard: tuple[int, int] = (1, 1),
                  progress: bool = True) -> list[dict]:
    """Train this shard's missing runs (the K-th, (K+N)-th, ... of the missing ones, in plan
    order). Each run is claimed first (:func:`claim`): a run another process is training is
    skipped, and one it stored meanwhile is read back, not trained again. So several
    processes given the same list share it out without ``--shard``."""
    from tqdm.auto import tqdm

    k, n = shard
    todo = [r for r in rows if not r["stored"]][k - 1::n]
    done = []
    left = sum(r["est_minutes"] or 0.0 for r in todo)
    unknown = sum(r["est_minutes"] is None for r in todo)
    bar = tqdm(todo, desc=f"training runs (shard {k}/{n})" if n > 1 else "training runs", unit="run",
               disable=not progress, position=0)
    was, store.progress = store.progress, progress  # each run's epochs show below the run bar
    try:
        for r in bar:
            eta = f"~{left / 60:.1f} h left by the cost model" + (f" (+{unknown} of unknown cost)" if unknown else "")
            bar.set_postfix_str(f"{r['model']} {r['setting'] or 'default'} seed {r['seed']} on {r['dataset']}; {eta}")
            t0 = time.time()
            with claim(Path(r["path"])) as mine:
                if not mine:
                    done.append({**r, "claimed_elsewhere": True})
                    continue
                try:
                    res = r["request"].run(store, claimed=True)
                    from .controls import is_control, shuffled_test

                    if is_control(r["dataset"]):
                        shuffled_test(store, res)  # the frame-shuffle diagnostic needs the checkpoint
                except MealRecError as e:
                    raise MealRecError(f"training {r['model']} {r['setting'] or 'default'} seed {r['seed']} on "
                                       f"{r['dataset']} failed: {e}") from e
            left -= r["est_minutes"] or 0.0
            unknown -= r["est_minutes"] is None
            done.append({**r, "stored": True, "minutes": (time.time() - t0) / 60, "ndcg@10": res["test"]["ndcg@10"]})
    finally:
        store.progress = was
    return done


__all__ = ["coverage_markdown", "parse_shard", "plan", "summarise", "train_missing", "wall_hours",
           "write_coverage"]
