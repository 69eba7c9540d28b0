"""Benchmarks for MealRec (not tests): planted comparison, ablations, real data, overhead.

    # MealRec-<backbone> vs <backbone> over seeds, paired t-test over test users
    python benchmarks/bench_mealrec.py planted  --dataset synthetic-medium --backbone tedrec --seeds 1 2 3
    # the four ablation variants (and the bare backbone)
    python benchmarks/bench_mealrec.py ablation --dataset synthetic-medium --backbone tedrec
    # same on real interactions (placeholder visual features)
    python benchmarks/bench_mealrec.py ablation --dataset microlens-small --backbone tedrec --data-dir ../shared/data
    # train/eval time per epoch and peak memory, MealRec / backbone, each model in its own process
    python benchmarks/bench_mealrec.py overhead --dataset microlens-small --backbone tedrec --epochs 3 \
--data-dir ../shared/data

Every run's JSON result goes under ``--out``; a summary JSON is written beside them.
``--set model.KEY=VALUE`` applies to the MealRec runs only (e.g. ``--set model.steps=5``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mealrec.evaluation import paired_ttest
from mealrec.experiments import compare, run_in_subprocess
from mealrec.trainer import load_result
from mealrec.utils import write_json_atomic

METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


def _run(args, model, seed, sets=(), tag=""):
    out = Path(args.out) / args.dataset / f"{model}{tag}-seed{seed}.json"
    sets = [*sets, f"train.num_threads={args.threads}"] if args.threads else list(sets)
    if args.reuse and out.exists():
        print(f"  reusing {out}", flush=True)
        r = load_result(out)
    else:
        print(f"  training {model}{tag} seed {seed} ...", flush=True)
        r = run_in_subprocess(model, args.dataset, out, seed=seed, epochs=args.epochs, sets=sets,
                              data_dir=args.data_dir, device=args.device)
    t = r["timing"]
    print(f"    best epoch {r['best_epoch']}/{t['epochs_run']}, test ndcg@10 {r['test']['ndcg@10']:.4f}, "
          f"{t['train_time_per_epoch_s']:.1f} s/epoch", flush=True)
    return r


def planted(args) -> dict:
    base, meal = args.backbone, f"mealrec-{args.backbone}"
    rows, per_seed = [], []
    for seed in args.seeds:
        a = _run(args, meal, seed, args.set)
        b = _run(args, base, seed)
        tests = compare(a, b, METRICS)
        per_seed.append({"seed": seed, meal: a["test"], base: b["test"], "ttest": tests,
                         "best_epoch": {meal: a["best_epoch"], base: b["best_epoch"]}})
        rows.append((a, b))
    # seed-averaged per-user metrics, then one paired test
    pooled = {}
    for m in METRICS:
        pa = np.mean([a["per_user_test"][m] for a, _ in rows], axis=0)
        pb = np.mean([b["per_user_test"][m] for _, b in rows], axis=0)
        pooled[m] = paired_ttest(pa, pb)
    print(f"\n{meal} vs {base} on {args.dataset}, seeds {args.seeds} (full ranking, history not masked, test)")
    print(f"{'seed':>6s} " + " ".join(
        f"{meal + ' ' + m:>22s} {base + ' ' + m:>16s} {'p':>8s}" for m in ("hr@10", "ndcg@10")))
    for r in per_seed:
        print(f"{r['seed']:6d} " + " ".join(
            f"{r[meal][m]:22.4f} {r[base][m]:16.4f} {r['ttest'][m]['p']:8.1e}" for m in ("hr@10", "ndcg@10")))
    for m in METRICS:
        p = pooled[m]
        print(f"seed-averaged {m}: {meal} {p['mean_a']:.4f}  {base} {p['mean_b']:.4f}  "
              f"rel {100 * (p['mean_a'] / p['mean_b'] - 1):+.1f}%  t {p['t']:.2f}  p {p['p']:.2e}")
    return {"per_seed": per_seed, "seed_averaged_ttest": pooled}


def ablation(args) -> dict:
    base = args.backbone
    seed = args.seeds[0]
    out = {}
    b = _run(args, base, seed)
    out[base] = b["test"]
    for v in ("full", "-TCD", "-NPD", "-TCD-NPD"):
        r = _run(args, f"mealrec-{base}", seed, [*args.set, f"model.variant={v}"], tag=f"[{v}]")
        out[v] = r["test"]
        out[v + " vs backbone p(ndcg@10)"] = paired_ttest(r["per_user_test"]["ndcg@10"],
                                                          b["per_user_test"]["ndcg@10"])["p"]
    print(f"\nablation of mealrec-{base} on {args.dataset}, seed {seed} (test, full ranking)")
    print(f"{'variant':12s} " + " ".join(f"{m:>8s}" for m in METRICS))
    for k in (base, "full", "-TCD", "-NPD", "-TCD-NPD"):
        print(f"{k:12s} " + " ".join(f"{out[k][m]:8.4f}" for m in METRICS))
    return out


def overhead(args) -> dict:
    base, meal = args.backbone, f"mealrec-{args.backbone}"
    seed = args.seeds[0]
    res = {}
    for model in (base, meal, base, meal)[: 2 * args.repeats]:
        r = _run(args, model, seed, args.set if model == meal else (), tag=f"-overhead{len(res.get(model, []))}")
        res.setdefault(model, []).append(r["timing"])
    keys = ("train_time_per_epoch_s", "eval_time_per_epoch_s", "peak_memory_mb")
    summary = {m: {k: float(np.median([t[k] for t in ts])) for k in keys} for m, ts in res.items()}
    for m, ts in res.items():
        summary[m]["memory_increase_mb"] = float(np.median([t["peak_memory_mb"] - t["memory_before_model_mb"]
                                                            for t in ts]))
    ratios = {k: summary[meal][k] / summary[base][k] for k in (*keys, "memory_increase_mb")}
    paper = {"train_time_per_epoch_s": 1.87 / 1.23, "eval_time_per_epoch_s": 2.31 / 1.47, "peak_memory_mb": 3280 / 2716}
    target = {"train_time_per_epoch_s": 1.5, "eval_time_per_epoch_s": 1.6, "peak_memory_mb": 1.25}
    print(f"\noverhead on {args.dataset} ({args.epochs} epochs per run, {args.repeats} run(s) each, "
          f"device {args.device}; median over runs)")
    print(f"{'':26s} {base:>10s} {meal:>16s} {'ratio':>7s} {'paper':>7s} {'target':>7s}")
    for k in (*keys, "memory_increase_mb"):
        print(f"{k:26s} {summary[base][k]:10.2f} {summary[meal][k]:16.2f} {ratios[k]:7.2f} "
              f"{paper.get(k, float('nan')):7.2f} {target.get(k, float('nan')):7.2f}")
    print("memory: CPU = process peak RSS (includes interpreter, data and features); "
          "memory_increase = peak minus RSS before the model was built")
    return {"summary": summary, "ratios": ratios, "paper_ratios": paper, "targets": target, "runs": res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["planted", "ablation", "overhead"])
    ap.add_argument("--dataset", default="synthetic-medium")
    ap.add_argument("--backbone", default="tedrec", choices=["sasrec", "cl4srec", "tedrec"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2020])
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=1, help="overhead: runs per model (1 or 2)")
    ap.add_argument("--set", action="append", default=[], help="MealRec overrides, e.g. model.steps=5")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = default)")
    ap.add_argument("--reuse", action="store_true", help="load a run's result if its JSON already exists under --out")
    ap.add_argument("--data-dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="results/bench")
    args = ap.parse_args()
    summary = {"planted": planted, "ablation": ablation, "overhead": overhead}[args.what](args)
    summary["args"] = vars(args)
    path = Path(args.out) / args.dataset / f"summary-{args.what}-{args.backbone}.json"
    write_json_atomic(path, summary)
    print(f"summary: {path}")


if __name__ == "__main__":
    main()
