"""Figure 4: the verdict follows its stated rule; the tuned setting is picked on validation."""
from __future__ import annotations

from dataclasses import replace

from mealrec.reproduce import get_profile
from mealrec.reproduce import sensitivity as S
from mealrec.reproduce.artefacts import notebook_requests

from .helpers import FixedRun


def test_sensitivity_verdict_follows_its_stated_rule(monkeypatch):
    prof = get_profile("full", "synthetic-small")
    # Figure 4: a spread under 10% on both grids reproduces, on one of them partly
    grid = {("lambda_t", 0.1, 5): .20, ("lambda_t", 0.9, 5): .21, ("lambda_n", 0.1, 5): .20, ("lambda_n", 0.9, 5): .25}
    monkeypatch.setattr(S, "sensitivity_requests", lambda d, p, s, m: {k: FixedRun(v) for k, v in grid.items()})
    monkeypatch.setattr(S, "_tuned_on_validation", lambda *a, **k: {"text": "tuned."})
    small = replace(prof, lambdas=(0.1, 0.9), steps=(5,))
    res = S.sensitivity(None, "synthetic-small", small)
    assert res.verdict.startswith("partly reproduces: relative spread") and "NPD (lambda_N) 20.0%" in res.verdict
    grid[("lambda_n", 0.9, 5)] = .205
    assert S.sensitivity(None, "synthetic-small", small).verdict.startswith("reproduces:")


def test_figure4_picks_the_setting_by_validation_and_compares_it_with_the_backbone(monkeypatch):
    """The tuned setting is the best on validation, not on test; the default's rank counts
    distinct settings once; the backbone comparison is a paired t-test over users."""
    import numpy as np

    def res(key, valid, test, per_user):
        return {"store_key": key, "valid": {"ndcg@10": valid}, "test": {"ndcg@10": test},
                "per_user_test": {"ndcg@10": np.asarray(per_user, dtype=float)}}

    default = res("d", .30, .20, [.2, .2, .2, .2])
    runs = {("lambda_t", 0.1, 10): default, ("lambda_n", 0.1, 10): default,
            ("lambda_t", 0.9, 5): res("a", .35, .25, [.3, .2, .3, .2]),  # best on validation
            ("lambda_n", 0.9, 5): res("b", .20, .40, [.4, .4, .4, .4])}  # best on test only
    backbone = res("bb", .3, .22, [.2, .25, .2, .25])

    class Req:
        def __init__(self, model):
            self.model = model

        def run(self, store):
            return backbone if self.model == "tedrec" else default

    monkeypatch.setattr(S, "request", lambda model, *a, **k: Req(model))
    tuned = S._tuned_on_validation(None, "synthetic-tiny", get_profile("full"), 2020, "mealrec-tedrec", runs, "ndcg@10")
    assert (tuned["which"], tuned["lambda"], tuned["steps"], tuned["test"]) == ("lambda_t", 0.9, 5, .25)
    assert tuned["backbone"] == "tedrec" and tuned["backbone_test"] == .22
    assert "(3rd of the 3 distinct settings)" in tuned["text"] and "lambda_T 0.9, T 5" in tuned["text"]
    assert f"{100 * (.25 / .22 - 1):+.1f}% against tedrec" in tuned["text"]
    assert notebook_requests("sensitivity", "synthetic-tiny", "full")[-1].model == "tedrec"
