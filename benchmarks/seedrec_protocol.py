"""How much does the evaluation protocol change the SeeDRec page's numbers? (a measurement, not a test)

The SeeDRec paper ranks each test target against 999 sampled negatives; this companion ranks
it against every item (full ranking). This script takes the SeeDRec page's stored runs (the
bare backbone, MealRec and SeeDRec with its -S2IDM and -IPE ablations, same checkpoints, same
test users), scores each test user once, and reports HR/NDCG@10 under both protocols, with
each row's relative change against the backbone under each. It trains nothing: a run must be
stored with its checkpoint (``.pt``, written by training, not committed); runs without one
are listed as such in the output, never silently dropped.

    python benchmarks/seedrec_protocol.py --dataset synthetic-small --seeds 2021 2022

Sampled negatives are drawn uniformly from all items except the target
(``mealrec.evaluation.sampled_evaluate``), with one generator seeded by ``--sample-seed``.
"""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import torch

import mealrec
from mealrec.evaluation import evaluate
from mealrec.evaluation import sampled_evaluate
from mealrec.reproduce import RunStore, get_profile
from mealrec.reproduce.seedrec import SEEDREC_BACKBONES, seedrec_requests
from mealrec.trainer import load_checkpoint, load_result
from mealrec.utils import MealRecError, seed_everything, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("hr@10", "ndcg@10")


def score(store: RunStore, request, n_negatives: int, sample_seed: int) -> dict:
    """Both protocols on one stored run's checkpoint (``{"missing": why}`` when it cannot)."""
    path = request.path(store)
    if not path.exists():
        return {"missing": f"no stored result {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"}
    retry = request.retry(load_result(path))
    if retry is not None:  # the page reads the retry of a run that stopped on an early plateau
        if not retry.path(store).exists():
            return {"missing": f"no stored plateau retry (patience {retry.patience}) of {path.name}"}
        request = retry
    res = request.run(store, claimed=True)  # stored: read back, nothing trained
    ckpt = store.checkpoint(res)
    if ckpt is None:
        return {"missing": f"no checkpoint beside {Path(res['result_path']).name} (checkpoints are not committed)"}
    ds = store.dataset(request.dataset)
    seed_everything(int(res["config"]["seed"]))  # SeeDRec's S2IDM is keyed by the run's seed
    net = load_checkpoint(ckpt, ds)
    with torch.no_grad():
        full, _ = evaluate(net.full_sort_predict, ds.test)
    if abs(full["ndcg@10"] - res["test"]["ndcg@10"]) > 1e-6:
        raise MealRecError(f"{ckpt}: re-scored full-ranking NDCG@10 {full['ndcg@10']:.6f} differs from the stored "
                           f"{res['test']['ndcg@10']:.6f}; the checkpoint does not belong to this result")
    sampled = sampled_evaluate(net, ds.test, n_negatives=n_negatives, seed=sample_seed)
    return {"full": {k: float(full[k]) for k in METRICS}, "sampled": {k: float(sampled[k]) for k in METRICS},
            "best_epoch": res["best_epoch"], "result": Path(res["result_path"]).name}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="synthetic-small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022])
    ap.add_argument("--backbones", nargs="+", default=list(SEEDREC_BACKBONES), choices=list(SEEDREC_BACKBONES))
    ap.add_argument("--profile", default="full", help="whose stored runs (runs/<profile>/)")
    ap.add_argument("--negatives", type=int, default=999)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None,
                    help="JSON file (default benchmarks/results/<date>/seedrec-protocol-<dataset>.json)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    profile = get_profile(a.profile, a.dataset)
    store = RunStore(ROOT / "runs" / a.profile, data_dir=a.data_dir, threads=a.threads, progress=False,
                     profile=a.profile)
    rows = []
    for (backbone, label), reqs in seedrec_requests(a.dataset, profile, a.seeds, a.backbones).items():
        for q in reqs:
            r = {"backbone": backbone, "row": label, "seed": q.seed, **score(store, q, a.negatives, a.sample_seed)}
            rows.append(r)
            if "missing" in r:
                print(f"{label:24s} seed {q.seed}: not scored, {r['missing']}")
    # relative change of each row against its backbone, per seed and protocol
    base = {(r["backbone"], r["seed"]): r for r in rows if r["row"] == r["backbone"] and "missing" not in r}
    for r in rows:
        b = base.get((r["backbone"], r["seed"]))
        if "missing" in r or b is None:
            continue
        r["vs_backbone_%"] = {p: {k: 100 * (r[p][k] / b[p][k] - 1) for k in METRICS} for p in ("full", "sampled")}
        print(f"{r['row']:24s} seed {r['seed']}: N@10 full {r['full']['ndcg@10']:.4f} "
              f"({r['vs_backbone_%']['full']['ndcg@10']:+.1f}%), sampled-{a.negatives} {r['sampled']['ndcg@10']:.4f} "
              f"({r['vs_backbone_%']['sampled']['ndcg@10']:+.1f}%)")
    out = Path(a.out or Path(__file__).parent / "results" / dt.date.today().isoformat()
               / f"seedrec-protocol-{a.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"dataset": a.dataset, "profile": a.profile, "seeds": a.seeds, "negatives": a.negatives,
                            "sample_seed": a.sample_seed, "data_hash": store.dataset(a.dataset).data_hash,
                            "mealrec": mealrec.__version__, "torch": torch.__version__, "threads": a.threads,
                            "rows": rows, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    print(f"written {out}")


if __name__ == "__main__":
    main()
