import json

import pytest

from mealrec.cli import main


def test_train_prints_table_and_writes_result(tmp_path, capsys):
    out = tmp_path / "res.json"
    rc = main(["train", "--model", "sasrec", "--dataset", "synthetic-tiny", "--epochs", "2", "--seed", "3",
               "--out", str(out), "--quiet", "--device", "cpu"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ndcg@10" in text and "hr@20" in text and "synthetic-tiny" in text
    res = json.loads(out.read_text())
    assert res["config"]["seed"] == 3 and res["config"]["train"]["epochs"] == 2
    assert len(res["history"]) == 2
    assert set(res["test"]) == {"hr@10", "hr@20", "ndcg@10", "ndcg@20"}


def test_train_out_directory(tmp_path):
    assert main(["train", "--model", "sasrec", "--dataset", "synthetic-tiny", "--epochs", "1", "--out", str(tmp_path),
                 "--quiet"]) == 0
    assert (tmp_path / "synthetic-tiny-sasrec-seed2020.json").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "nope", "--dataset", "synthetic-tiny"], "unknown model 'nope'; valid names: .*sasrec"),
        (["train", "--model", "sasrec", "--dataset", "nope"], "unknown dataset 'nope'; valid names: .*synthetic-tiny"),
        (["data", "stats", "nope"], "unknown dataset 'nope'"),
        (["data", "fetch", "movielens"], "valid: microlens-50k"),
        (["train", "--model", "sasrec", "--dataset", "synthetic-tiny", "--epochs", "0"], "train.epochs must be >= 1"),
        (["reproduce", "--profile", "smoke", "--datasets", "synthetic-tiny", "--shard", "1/2"],
         "goes with --runs-only"),
        (["reproduce", "--profile", "smoke", "--datasets", "synthetic-tiny", "--runs-only", "--shard", "3/2"],
         "need 1 <= K <= N"),
        (["reproduce", "--profile", "smoke", "--datasets", "synthetic-tiny", "--plan", "--notebooks", "tables"],
         "unknown notebook 'tables'; valid: datasets"),
        (["reproduce", "--profile", "smoke", "--datasets", "synthetic-tiny", "--runs-only", "--executor", "ray",
          "--shard", "1/2"], "--shard goes with the local executor"),
        (["reproduce", "--profile", "smoke", "--datasets", "synthetic-tiny", "--plan", "--workers", "0"],
         "--workers 0: need at least 1"),
    ],
)
def test_errors_are_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    import re

    assert re.search(message, err), err
    assert "Traceback" not in err


def test_data_stats_synthetic(capsys):
    assert main(["data", "stats", "synthetic-tiny"]) == 0
    out = capsys.readouterr().out
    for col in ("#Users", "#Items", "#Interactions", "Avg. Length", "Sparsity"):
        assert col in out
    assert "200" in out


def test_models_and_datasets_listings(capsys):
    assert main(["models"]) == 0 and "sasrec" in capsys.readouterr().out
    assert main(["datasets"]) == 0 and "microlens-big" in capsys.readouterr().out


def test_filtered_plan_leaves_the_coverage_page_alone(tmp_path, monkeypatch, capsys):
    # The coverage page covers the whole book: a plan for one dataset or notebook must not shrink it.
    import mealrec.reproduce.paths as paths

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    page = tmp_path / "book/generated/smoke/coverage.md"
    assert main(["reproduce", "--profile", "smoke", "--plan", "--notebooks", "noise"]) == 0
    assert "coverage page not written" in capsys.readouterr().out and not page.exists()
    assert main(["reproduce", "--profile", "smoke", "--plan"]) == 0
    assert "coverage page:" in capsys.readouterr().out and "stored / runs needed" in page.read_text()


def test_sigterm_leaves_nothing_half_written(tmp_path):
    """A `kill` of the CLI runs the same clean-up as an exception: the temporary file of the
    output being written is removed and nothing is renamed into place."""
    import signal
    import subprocess
    import sys
    import textwrap

    target = tmp_path / "out.json"
    script = textwrap.dedent(f"""
        import time
        from mealrec.cli import _exit_on_sigterm
        from mealrec.utils import atomic_path
        _exit_on_sigterm()
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_text("half")
            print("ready", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    assert len(list(tmp_path.iterdir())) == 1  # the temporary file, while writing
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_plan_estimates_the_wall_time_on_n_workers(capsys):
    assert main(["reproduce", "--profile", "smoke", "--datasets", "synthetic-tiny", "--plan", "--notebooks", "overall",
                 "--workers", "4"]) == 0
    assert "wall time on 4 parallel run(s), longest first" in capsys.readouterr().out


def test_threads_is_the_old_spelling_of_cpus_per_run():
    from mealrec.cli import build_parser

    for flag in ("--threads", "--cpus-per-run"):
        assert build_parser().parse_args(["reproduce", flag, "3"]).threads == 3
