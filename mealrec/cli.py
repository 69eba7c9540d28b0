"""Command line: ``mealrec train``, ``mealrec data stats|fetch``, ``mealrec models``, ``mealrec datasets``."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .utils import MealRecError


def _fmt_table(rows: list[dict], cols: list[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:,.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    data = [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(d[i]) for d in data)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    sep = "  ".join("-" * w for w in widths)
    body = "\n".join("  ".join(v.rjust(w) for v, w in zip(d, widths)) for d in data)
    return f"{line}\n{sep}\n{body}"


def cmd_train(args: argparse.Namespace) -> int:
    from .data import get_dataset
    from .experiments import run_config
    from .trainer import train

    sets = parse_sets(args.set)
    run = run_config(
        args.model,
        args.dataset,
        user_file=args.config,
        train_overrides={"epochs": args.epochs, "seed": args.seed, "device": args.device, "batch_size": args.batch_size,
                         **sets["train"]},
        model_overrides=sets["model"],
    )
    ds = get_dataset(
        args.dataset, data_dir=args.data_dir, text_encoder=args.text_encoder,
        visual_noise=args.visual_noise, progress=not args.quiet, features=args.features, max_users=args.max_users,
    )
    out = args.out
    if out is None:
        out = Path("results") / args.dataset / f"{args.model}-seed{run.train.seed}.json"
    elif Path(out).suffix != ".json":
        out = Path(out) / f"{args.dataset}-{args.model}-seed{run.train.seed}.json"
    res = train(run, ds, out=out, progress=not args.quiet, resume=not args.fresh)
    _stamp_hardware(out)
    row = {"model": args.model, "dataset": args.dataset, "best_epoch": res.best_epoch, **res.test}
    print(f"\nTest metrics (full ranking over {ds.n_items - 1:,} items, history not masked, "
          "best valid NDCG@10 checkpoint):")
    print(_fmt_table([row], list(row)))
    t = res.timing
    print(
        f"\ntrain {t['train_time_per_epoch_s']:.2f} s/epoch, eval {t['eval_time_per_epoch_s']:.2f} s/epoch, "
        f"peak memory {t['peak_memory_mb']:,.0f} MB ({t['memory_measure']}), {t['epochs_run']} epochs"
    )
    print(f"result: {out}")
    return 0


def _stamp_hardware(path: str | Path) -> None:
    """Add the CPU model and instruction sets to a result's ``environment`` (what "the same hardware" means)."""
    from .integrity import cpu_info
    from .utils import write_json_atomic

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data.setdefault("environment", {}).update(cpu_info())
    write_json_atomic(path, data)


def parse_sets(items: list[str] | None) -> dict[str, dict]:
    """``--set model.steps=5 --set train.lr=0.01`` -> ``{"model": {...}, "train": {...}}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, dict] = {"model": {}, "train": {}}
    for item in items or []:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in out or not name:
            raise MealRecError(f"--set {item!r}: expected model.KEY=VALUE or train.KEY=VALUE")
        out[section][name] = yaml.safe_load(value)
    return out


def cmd_stats(args: argparse.Namespace) -> int:
    from .data import dataset_names, get_dataset

    names = dataset_names() if args.name == "all" else [args.name]
    rows = []
    for n in names:
        try:
            ds = get_dataset(n, data_dir=args.data_dir, progress=False)
        except MealRecError as e:
            if args.name != "all":
                raise
            print(f"{n}: skipped ({e})", file=sys.stderr)
            continue
        s = ds.stats()
        rows.append(
            {
                "Dataset": n,
                "#Users": s["users"],
                "#Items": s["items"],
                "#Interactions": s["interactions"],
                "Avg. Length": f"{s['avg_length']:.2f}",
                "Sparsity": f"{100 * s['sparsity']:.2f}%",
                "interactions": ds.metadata["interactions"],
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_fmt_table(rows, list(rows[0])))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from .data import microlens

    if args.name != "microlens-50k":
        raise MealRecError(f"unknown downloadable dataset {args.name!r}; valid: microlens-50k")
    data_dir = args.data_dir or microlens.default_data_dir()
    if data_dir is None:
        raise MealRecError("pass --data-dir DIR (or set MEALREC_DATA) to say where to put the files")
    folder = microlens.fetch(data_dir, base_url=args.url)
    print(folder)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import MODELS

    for name, cls in sorted(MODELS.items()):
        print(f"{name:24s} {cls.paper}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import dataset_names, dataset_spec

    for n in dataset_names():
        print(f"{n:20s} {dataset_spec(n).description}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce.book import build_book
    from .reproduce.execution import default_datasets, is_unavailable, run_notebooks
    from .reproduce.paths import find_data_dir, repo_root

    if args.summary:
        return _summary(args.profile)
    data_dir = find_data_dir(args.data_dir)
    if args.shard and not args.runs_only:
        raise MealRecError("--shard K/N goes with --runs-only (it splits the missing runs between processes)")
    if args.shard:
        print("warning: --shard is deprecated and will go: processes started alike already share the missing runs "
              "(each claims a run before training it), and --executor ray spreads them over a cluster",
              file=sys.stderr)
    if args.executor == "ray" and args.shard:
        raise MealRecError("--shard goes with the local executor; --executor ray schedules every missing run itself")
    if args.device is None:
        args.device = "cuda" if args.gpus_per_run else "cpu"
    if args.plan or args.runs_only or args.verify:
        return _plan_or_train(args, args.datasets or default_datasets(args.profile, data_dir), data_dir)
    datasets = args.datasets or default_datasets(args.profile, data_dir, include_absent=True)
    # the full profile's runs are committed: rendering it trains nothing unless asked; the others are views to retrain
    train = args.train_missing or args.profile != "full"
    if train and args.executor == "ray" and not args.no_run:  # train on the cluster first; the pages then read
        status = _plan_or_train(args, [d for d in datasets if not is_unavailable(d, data_dir)], data_dir)
        if status:
            return status
    if not args.no_run:
        done = run_notebooks(datasets, profile=args.profile, notebooks=args.notebooks, data_dir=data_dir,
                             device=args.device, threads=args.threads, force=args.force, progress=not args.quiet,
                             train=train)
        for nb, d, status in done:
            print(f"{nb:14s} {d:18s} {status}")
        missing = [(nb, d, s) for nb, d, s in done if s.startswith("missing")]
        if missing:
            print(f"{len(missing)} page section(s) lack stored runs and are shown as missing (their pages name the "
                  "runs); `mealrec reproduce --train-missing` trains them")
    unchecked = [d for d in datasets if is_unavailable(d, data_dir)]
    if not args.no_build:
        html = build_book(args.profile, unchecked=unchecked)
        if args.profile == "full" and not args.datasets and not args.notebooks:
            from .reproduce import summary

            summary.write(repo_root(), args.profile)
        if args.check_browser:
            from .reproduce.browser import browser_check

            report = browser_check(html)
            bad = {p: v for p, v in report.items() if v}
            for p, v in bad.items():
                print(f"browser check: {p}: {'; '.join(v)}")
            print(f"browser check: {len(report) - len(bad)} of {len(report)} pages fine "
                  "(headless Chromium, network blocked); "
                  f"screenshot of the Table 2 page: {html.parent / 'table2.png'}")
            if bad:
                return 1
        if unchecked:
            print(f"{', '.join(unchecked)}: the MicroLens-50K files were not found, so their committed sections are "
                  "kept as they are (not re-checked here). Get the data with `mealrec data fetch microlens-50k "
                  "--data-dir DIR`, or point MEALREC_DATA at a folder holding microlens-50k/.")
        _print_matrix(args.profile)
        print(f"\nbook: {html / 'index.html'}")
    return 0


def _print_matrix(profile: str) -> None:
    """The verdict per claim and dataset, as the summary matrix gives it (nothing if no page has a sidecar)."""
    from .reproduce import summary
    from .reproduce.paths import repo_root

    gen = repo_root() / "book" / "generated" / profile
    datasets = summary.datasets_of(gen)
    if not datasets:
        return
    rows = summary.matrix(gen, datasets)
    width = max(len(c) for c, _ in rows)
    print(f"\nResults at a glance ({profile} profile; numbers and rules on each page):")
    print(" " * width + "  " + "  ".join(f"{d:18s}" for d in datasets))
    for claim, cells in rows:
        print(f"{claim:{width}s}  " + "  ".join(f"{(c.label if c else 'not run'):18s}" for c in cells.values()))


def _summary(profile: str) -> int:
    from .reproduce import summary
    from .reproduce.paths import repo_root

    for path in summary.write(repo_root(), profile):
        print(f"wrote {path}")
    _print_matrix(profile)
    return 0


def _plan_or_train(args: argparse.Namespace, datasets: list[str], data_dir: str | None) -> int:
    """``--plan``: which runs the notebooks need and which are stored (and the book's coverage
    page); ``--runs-only``: train this shard's missing runs, no notebooks, no build."""
    from .reproduce import plan as P
    from .reproduce.artefacts import NOTEBOOKS
    from .reproduce.paths import repo_root
    from .reproduce.store import RunStore

    notebooks = list(args.notebooks or NOTEBOOKS)
    for nb in notebooks:
        if nb not in NOTEBOOKS:
            raise MealRecError(f"unknown notebook {nb!r}; valid: {', '.join(NOTEBOOKS)}")
    shard = P.parse_shard(args.shard)
    root = repo_root()
    store = RunStore(root / "runs" / args.profile, data_dir=data_dir, device=args.device, threads=args.threads,
                     progress=False, profile=args.profile)
    rows = P.plan(store, args.profile, datasets, notebooks)
    if args.verify:
        return _verify(args, store, rows, root)
    if args.plan:
        print(f"{'notebook':14s} {'dataset':18s} {'stored':>8s}  missing (rough cost)")
        for s in P.summarise(rows):
            miss = s["needed"] - s["stored"]
            cost = " + ".join(([f"~{s['est_hours']:.1f} h"] if s["est_hours"] else [])
                              + ([f"{s['unknown_cost']} of unknown cost"] if s["unknown_cost"] else []))
            print(f"{s['notebook']:14s} {s['dataset']:18s} {s['stored']:>3d}/{s['needed']:<4d}  {miss} {cost}".rstrip())
        missing = [r for r in rows if not r["stored"]]
        for r in missing:
            est = f"~{r['est_minutes']:.0f} min" if r["est_minutes"] is not None else "cost unknown"
            est += f" ({r['cost_basis']})" if r["cost_basis"] else ""
            print(f"  missing: {r['model']:18s} {r['dataset']:16s} {r['setting'] or 'default':28s} "
                  f"seed {r['seed']}  {est}  ({', '.join(r['notebooks'])})")
        stored = f"{len(rows) - len(missing)} of {len(rows)} runs stored"
        hours, unknown = P.wall_hours(missing, args.workers)
        print(f"wall time on {args.workers} parallel run(s), longest first: ~{hours:.1f} h"
              + (f" (+{unknown} run(s) of unknown cost)" if unknown else "")
              + ("" if args.workers > 1 else "; --workers N estimates it for N"))
        if args.datasets or args.notebooks:  # the page covers the whole book: a filtered plan would shrink it
            print(f"{stored}; coverage page not written (run --plan without --datasets/--notebooks to refresh it)")
        else:
            print(f"{stored}; coverage page: {P.write_coverage(rows, args.profile, notebooks, datasets, root)}")
        return 0
    if args.executor == "ray":
        return _train_on_ray(args, store, rows, data_dir)
    done = P.train_missing(store, rows, shard, progress=not args.quiet)
    for r in done:
        head = f"{r['model']:18s} {r['dataset']:16s} {r['setting'] or 'default':28s} seed {r['seed']}  "
        print(head + ("skipped: another process is training it" if r.get("claimed_elsewhere")
                      else f"N@10 {r['ndcg@10']:.4f}  {r['minutes']:.1f} min"))
    ours = [r for r in done if not r.get("claimed_elsewhere")]
    print(f"shard {shard[0]}/{shard[1]}: trained or read {len(ours)} run(s) into {store.root}"
          + (f"; {len(done) - len(ours)} left to the other process(es) training them" if len(ours) < len(done) else ""))
    return 0


def _train_on_ray(args: argparse.Namespace, store, rows: list[dict], data_dir: str | None) -> int:
    from .reproduce.cluster import train_on_ray

    t0 = time.time()
    report = train_on_ray(store, rows, args.profile, address=args.address, cpus_per_run=args.threads or 1,
                          gpus_per_run=args.gpus_per_run, device=args.device, retries=args.retries,
                          data_dir=data_dir, progress=not args.quiet)
    for r in report["done"]:
        print(f"{r['model']:18s} {r['dataset']:16s} {r['setting'] or 'default':28s} seed {r['seed']}  "
              f"N@10 {r['ndcg@10']:.4f}  {r['minutes']:.1f} min")
    print(f"ray: {len(report['done'])} run(s) trained into {store.root} in {time.time() - t0:.0f} s")
    if report["failed"]:
        for run, err in report["failed"].items():
            print(f"failed: {run}: {err}", file=sys.stderr)
        print(f"{len(report['failed'])} run(s) failed after their retries (named above); the others are stored",
              file=sys.stderr)
        return 1
    return 0


def _verify(args: argparse.Namespace, store, rows: list[dict], root: Path) -> int:
    import datetime as dt
    import random

    from .reproduce import verify as V

    seed = args.verify_seed if args.verify_seed is not None else random.SystemRandom().randrange(10_000)
    print(f"--verify {args.verify}: draw seed {seed} (repeat the draw with --verify-seed {seed})")
    for r in V.choose(rows, args.verify, seed):
        spent = f"{r['minutes_spent']:.1f} min when stored" if r["minutes_spent"] else "cost unknown"
        print(f"  retraining {r['model']} {r['setting'] or 'default'} seed {r['seed']} on {r['dataset']} ({spent})")
    found = V.verify(store, rows, args.verify, seed, progress=not args.quiet)
    out = Path(args.verify_out or root / "benchmarks" / "results" / "verify"
               / f"verify-{dt.date.today().isoformat()}-seed{seed}.md")
    V.write(found, seed, args.verify, out)
    print(V.markdown(found, seed, args.verify))
    print(f"table: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mealrec", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train and evaluate one model on one dataset")
    t.add_argument("--model", required=True, help="model name (see `mealrec models`)")
    t.add_argument("--dataset", required=True, help="dataset name (see `mealrec datasets`)")
    t.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    t.add_argument("--seed", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--config", help="YAML file with `train:` and/or `model:` overrides")
    t.add_argument("--out",
                   help="result .json path, or a directory (default results/<dataset>/<model>-seed<seed>.json)")
    t.add_argument("--data-dir", help="folder holding microlens-50k/ (default $MEALREC_DATA)")
    t.add_argument("--text-encoder", default="auto", choices=["auto", "minilm", "hashed"])
    t.add_argument("--features", default="auto",
                   help="MicroLens item features: auto (extracted ones in "
                        "<data-dir>/microlens-50k/features/{video,text} or $MEALREC_FEATURES when present, "
                        "else placeholders), placeholder, or a folder holding video/ and/or text/ "
                        "made by `mealrec features`")
    t.add_argument("--visual-noise", type=float, default=0.0,
                   help="std of Gaussian noise added to visual features (Figure 5)")
    t.add_argument("--max-users", type=int, default=None,
                   help="train and evaluate on a seeded sample of this many users (default: all)")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set model.steps=5 --set model.variant=-TCD --set train.lr=0.01")
    t.add_argument("--fresh", action="store_true",
                   help="start afresh, ignoring the state a killed run of the same command saved "
                        "(<out>.resume.pt; by default the run resumes from its last finished epoch)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("data", help="dataset statistics and downloads")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("stats", help="Table 1's columns for a dataset (or `all`)")
    s.add_argument("name")
    s.add_argument("--data-dir")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stats)
    f = dsub.add_parser("fetch", help="download official files and verify SHA-256")
    f.add_argument("name", help="microlens-50k")
    f.add_argument("--data-dir")
    f.add_argument("--url", help="base URL to download from (default: the official site, or $MEALREC_MICROLENS_URL)")
    f.set_defaults(func=cmd_fetch)

    r = sub.add_parser("reproduce",
                       help="render the book from the run store (papermill per dataset, then jupyter-book)")
    r.add_argument("--datasets", nargs="+", help="default: the profile's datasets (MicroLens ones kept as committed "
                   "when their files are not found)")
    r.add_argument("--profile", default="full", choices=["smoke", "quick", "full"],
                   help="full (default): render the committed runs, training nothing unless --train-missing; "
                        "quick/smoke: retrain a small view of everything")
    r.add_argument("--train-missing", action="store_true",
                   help="train the runs a page lacks (with progress per run) before rendering it")
    r.add_argument("--summary", action="store_true",
                   help="rewrite the results matrix in README.md and book/intro.md (and its figure) from the sidecars")
    r.add_argument("--verify", type=int, metavar="N",
                   help="retrain N stored runs that the current code made (cheap ones preferred) and compare metrics")
    r.add_argument("--verify-seed", type=int, help="the seed of --verify's random draw (default: a fresh one, printed)")
    r.add_argument("--verify-out", help="where --verify writes its table (default benchmarks/results/verify/)")
    r.add_argument("--notebooks", nargs="+", help="default: all (datasets controls overall complexity ablation "
                   "sensitivity noise visualisation seedrec; controls runs on the positive controls only, the others "
                   "on the rest)")
    r.add_argument("--data-dir",
                   help="folder holding microlens-50k/ (default $MEALREC_DATA, else ../shared/data)")
    r.add_argument("--device", help="cpu | cuda (recorded beside every result; default cuda when "
                   "--gpus-per-run is given, else cpu)")
    r.add_argument("--cpus-per-run", "--threads", dest="threads", type=int, default=0,
                   help="torch threads per training run, under either executor (0 = torch's default locally, 1 on "
                        "Ray); --threads is the old spelling. Runs compared for bit-identity use equal threads")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (default): train in this process, sharing runs with processes started alike; ray: "
                        "train the missing runs as Ray tasks (a local Ray instance, or --address)")
    r.add_argument("--address", help="with --executor ray: `auto`, `HOST:PORT` or `ray://HOST:PORT` joins a "
                   "running cluster (default: start a local Ray instance)")
    r.add_argument("--gpus-per-run", type=float, default=0, help="with --executor ray: GPUs each run asks for")
    r.add_argument("--retries", type=int, default=2,
                   help="with --executor ray: times a failed run is retried before it is reported (default 2)")
    r.add_argument("--workers", type=int, default=1,
                   help="with --plan: estimate the wall time on this many parallel runs (longest first)")
    r.add_argument("--force", action="store_true", help="execute notebooks even when their inputs are unchanged")
    r.add_argument("--no-run", action="store_true", help="only build the book from the notebooks already executed")
    r.add_argument("--no-build", action="store_true", help="only execute the notebooks")
    r.add_argument("--check-browser", action="store_true",
                   help="after the build, open every page in headless Chromium offline")
    r.add_argument("--plan", action="store_true",
                   help="list the training runs the notebooks need, which are stored and a rough cost of the rest; "
                        "writes the book's coverage page when neither --datasets nor --notebooks is given; "
                        "trains nothing")
    r.add_argument("--runs-only", action="store_true",
                   help="train the missing runs (no notebooks, no build). Several processes started alike share them "
                        "out (each claims a run before training it); --shard fixes the split instead")
    r.add_argument("--shard", metavar="K/N", help="deprecated: with --runs-only, take every N-th missing run starting "
                   "at the K-th (processes started alike share the runs without it)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_reproduce)

    sub.add_parser("models", help="list registered models").set_defaults(func=cmd_models)
    sub.add_parser("datasets", help="list registered datasets").set_defaults(func=cmd_datasets)
    from .extract import add_features_parser

    add_features_parser(sub)  # `mealrec features video|text`: real content features
    return p


def _exit_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, a job scheduler's stop) into ``SystemExit(143)``, so that the
    clean-up a Ctrl-C gets runs too: a half-executed notebook's temporary file is removed, the
    kernel is shut down and no partial result is renamed into place."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _exit_on_sigterm()
    try:
        return args.func(args)
    except MealRecError as e:
        print(f"mealrec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mealrec: interrupted (every run stored before it is kept; nothing is half-written)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
