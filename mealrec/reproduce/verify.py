"""``mealrec reproduce --verify N``: retrain N committed runs and compare them with what is stored.

The runs are drawn at random (the seed is printed, so a draw can be repeated) among the stored
runs that the current code made, each weighted by 1 / its recorded minutes, so cheap runs
come first. Each is retrained into a scratch store at the thread count it was stored with, and
its test metrics are set beside the stored ones.

What to expect: the same CPU model, instruction set and thread count give bit-identical
metrics; elsewhere float reductions may be ordered differently, and the book's rerun page
states the tolerance measured across thread counts.
"""
from __future__ import annotations

import datetime as _dt
import json
import random
import tempfile
from pathlib import Path

from ..evaluation import METRICS
from ..integrity import cpu_info, read_result
from ..utils import atomic_path
from .store import RunStore


def choose(rows: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` stored rows, drawn without replacement with weight 1 / (minutes + 0.1)."""
    pool = [r for r in rows if r["stored"] and not r["request"].isolate]
    rng = random.Random(seed)
    keyed = sorted(pool, key=lambda r: rng.random() ** ((r["minutes_spent"] or 60.0) + 0.1))
    return keyed[::-1][:n]


def _same_hardware(stored_env: dict, here: dict, threads: int) -> str:
    cpu = stored_env.get("cpu_model")
    if not cpu:
        return "unknown (the stored run predates CPU records)"
    same = cpu == here["cpu_model"] and stored_env.get("cpu_flags") == here["cpu_flags"]
    same = same and stored_env.get("threads") == threads
    return "yes" if same else "no"


def verify(store: RunStore, rows: list[dict], n: int, seed: int, progress: bool = True) -> list[dict]:
    """Retrain ``n`` of the stored ``rows`` (from :func:`mealrec.reproduce.plan.plan`) and compare."""
    here = cpu_info()
    out = []
    with tempfile.TemporaryDirectory(prefix="mealrec-verify-") as tmp:
        for r in choose(rows, n, seed):
            stored = read_result(r["path"])
            threads = int(stored["config"]["train"].get("num_threads") or 0)
            scratch = RunStore(tmp, data_dir=store.data_dir, device=store.device, threads=threads,
                               progress=progress, profile=store.profile, train=True)
            kw = r["request"].kwargs()
            kw["isolate"] = False
            fresh = scratch.run(r["model"], r["dataset"], **kw)
            row = {"dataset": r["dataset"], "model": r["model"], "setting": r["setting"] or "default",
                   "seed": r["seed"], "threads": threads,
                   "same hardware": _same_hardware(stored.get("environment", {}), here, threads)}
            for m in METRICS:
                row[f"{m} stored"] = stored["test"][m]
                row[f"{m} retrained"] = fresh["test"][m]
                row[f"{m} diff"] = fresh["test"][m] - stored["test"][m]
            row["bit-identical"] = all(row[f"{m} diff"] == 0.0 for m in METRICS)
            out.append(row)
    return out


def markdown(rows: list[dict], seed: int, n: int) -> str:
    here = cpu_info()
    lines = [f"# `mealrec reproduce --verify {n}` (draw seed {seed})", "",
             f"Run {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} on {here['cpu_model']} "
             f"({', '.join(here['cpu_flags']) or 'no flags read'}).", "",
             "| dataset | model | setting | seed | threads | same hardware | metric | stored | retrained | diff |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for m in METRICS:
            lines.append(f"| {r['dataset']} | {r['model']} | {r['setting']} | {r['seed']} | {r['threads']} | "
                         f"{r['same hardware']} | {m} | {r[f'{m} stored']:.6f} | {r[f'{m} retrained']:.6f} | "
                         f"{r[f'{m} diff']:+.2e} |")
    same = sum(r["bit-identical"] for r in rows)
    worst = max((abs(r[f"{m} diff"]) for r in rows for m in METRICS), default=0.0)
    lines += ["", f"{same} of {len(rows)} runs bit-identical; largest absolute difference {worst:.2e}."]
    return "\n".join(lines) + "\n"


def write(rows: list[dict], seed: int, n: int, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(markdown(rows, seed, n), encoding="utf-8")
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"seed": seed, "n": n, "cpu": cpu_info(), "rows": rows}, indent=1) + "\n")
    return path


__all__ = ["choose", "markdown", "verify", "write"]
