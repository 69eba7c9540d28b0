"""How far float reordering moves a golden trajectory, against how far a small change of the math does.

For every golden case (:mod:`mealrec.golden`) it computes the trajectory at 1 thread, then at 2
threads (float reordering), and under three deliberate, small changes of the math: the logits of every
cross-entropy scaled by 1.001, a LayerNorm epsilon 100 times larger, and initial weights scaled by
1.001. It prints, per case, the largest relative difference from the 1-thread trajectory (over the
numbers :func:`mealrec.golden.compare` reads), so that ``RTOL`` can sit between the two::

    python benchmarks/golden_tolerance.py [--cases CASE ...] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mealrec import golden as G  # noqa: E402
from mealrec.utils import write_json_atomic  # noqa: E402


@contextlib.contextmanager
def _patched(obj, name, make):
    old = getattr(obj, name)
    setattr(obj, name, make(old))
    try:
        yield
    finally:
        setattr(obj, name, old)


CHANGES = {
    "CE logits x1.001": lambda: _patched(
        F, "cross_entropy", lambda f: lambda x, *a, **k: f(x * 1.001, *a, **k)),
    "LayerNorm eps x100": lambda: _patched(
        F, "layer_norm", lambda f: lambda x, shape, w=None, b=None, eps=1e-5: f(x, shape, w, b, eps * 100)),
    "init x1.001": lambda: _patched(
        torch.nn.init, "normal_", lambda f: lambda t, mean=0.0, std=1.0, **k: f(t, mean, std * 1.001, **k)),
}


def max_rel(a: dict, b: dict) -> float:
    x, y = G._numbers(a), G._numbers(b)
    return max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-12) for k in x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    rows = {}
    print(f"{'case':26s} {'2 threads':>10s} " + " ".join(f"{c:>21s}" for c in CHANGES))
    for case in a.cases or sorted(G._cases()):
        base = G.trajectory(case, threads=1)
        row = {"2 threads": max_rel(base, G.trajectory(case, threads=2))}
        for name, change in CHANGES.items():
            with change():
                row[name] = max_rel(base, G.trajectory(case, threads=1))
        torch.set_num_threads(1)
        rows[case] = row
        print(f"{case:26s} " + " ".join(f"{v:>10.2e}" if k == "2 threads" else f"{v:>21.2e}" for k, v in row.items()),
              flush=True)
    worst_reorder = max(r["2 threads"] for r in rows.values())
    # per change, the smallest difference it made where it applied (0: the model does not call what it patches)
    least = {c: min((r[c] for r in rows.values() if r[c] > 0), default=0.0) for c in CHANGES}
    print(f"largest reordering difference {worst_reorder:.2e}; RTOL {G.RTOL:.0e}; smallest difference of each change "
          "where it applied: " + ", ".join(f"{c} {v:.2e}" for c, v in least.items()))
    below = [f"{c}: {k}" for k, r in rows.items() for c in CHANGES if 0 < r[c] <= G.RTOL]
    print("changes that stay within RTOL (the ledger cannot see them): " + ("; ".join(below) or "none"))
    if a.out:
        write_json_atomic(a.out, {"rows": rows, "worst_reorder": worst_reorder, "least_change": least,
                                  "below_rtol": below, "rtol": G.RTOL, "machine": G._machine(1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
