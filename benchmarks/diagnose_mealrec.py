"""How much do MealRec's fusion modules change the backbone's representation? (a benchmark, not a test)

For trained MealRec checkpoints (any variant), on the test users of their dataset:

* test NDCG@10 / HR@10 when scoring the final representation ``h`` (the model as trained);
* the same when scoring the backbone's own ``x0`` from the same checkpoint (NPD, or the
  -NPD fusion MLP, bypassed at evaluation);
* ``||h - x0|| / ||x0||`` and ``cos(h, x0)``: the size of the fusion's correction;
* (NPD variants) the same metrics for one NPD step from the clean ``x0``, ``g(x0, c_m)``,
  instead of the T-step reverse chain: does the chain matter?

    python benchmarks/diagnose_mealrec.py --dataset synthetic-small results/bench/synthetic-small/*.pt
"""
from __future__ import annotations

import argparse

import torch

from mealrec.data import get_dataset
from mealrec.evaluation import metrics_from_ranks, target_ranks
from mealrec.trainer import load_checkpoint


@torch.inference_mode()
def diagnose(model, split, batch_size: int = 1024) -> dict[str, float]:
    sums = {"ndcg@10 (h)": 0.0, "hr@10 (h)": 0.0, "ndcg@10 (x0)": 0.0, "hr@10 (x0)": 0.0, "rel change": 0.0,
            "cos(h, x0)": 0.0, "ndcg@10 (1 step)": 0.0, "hr@10 (1 step)": 0.0}
    n = len(split)
    for s in range(0, n, batch_size):
        b = split.batch(slice(s, min(n, s + batch_size)))
        items = model.item_representations()
        out = model.run(b, items)
        h, parts = out.h, out.parts
        x0 = parts["x0"]
        reps = [("h", h), ("x0", x0)]
        if model.use_npd:
            last = b["item_seq"].gather(1, (b["item_seq_len"] - 1)[:, None]).squeeze(1)
            cond = model.npd.condition(parts["frames_after"], model.text_proj(model.text[last]))
            reps.append(("1 step", model.npd.step(x0, cond)))
        for name, rep in reps:
            m = metrics_from_ranks(target_ranks(model.score(rep, items), b["target"]))
            sums[f"ndcg@10 ({name})"] += float(m["ndcg@10"].sum())
            sums[f"hr@10 ({name})"] += float(m["hr@10"].sum())
        sums["rel change"] += float(((h - x0).norm(dim=-1) / x0.norm(dim=-1).clamp_min(1e-12)).sum())
        sums["cos(h, x0)"] += float(torch.nn.functional.cosine_similarity(h, x0, dim=-1).sum())
    out = {k: v / n for k, v in sums.items()}
    if not model.use_npd:
        out["ndcg@10 (1 step)"] = out["hr@10 (1 step)"] = float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    ds = get_dataset(args.dataset, data_dir=args.data_dir, progress=False)
    cols = ("ndcg@10 (h)", "ndcg@10 (x0)", "ndcg@10 (1 step)", "hr@10 (h)", "hr@10 (x0)", "hr@10 (1 step)",
            "rel change", "cos(h, x0)")
    print(f"{'checkpoint':50s} {'variant':9s} " + " ".join(f"{k:>16s}" for k in cols))
    for path in args.checkpoints:
        model = load_checkpoint(path, ds)
        d = diagnose(model, ds.test)
        print(f"{path[-50:]:50s} {model.config.variant:9s} " + " ".join(f"{d[k]:16.4f}" for k in cols))


if __name__ == "__main__":
    main()
