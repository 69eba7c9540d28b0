"""The SeeDRec page: the spread over seeds, seeds per backbone, and S2IDM's live cost."""
from __future__ import annotations

import pytest

from mealrec.reproduce import RunStore, get_profile
from mealrec.reproduce import seedrec as SD
from mealrec.utils import MealRecError

from .helpers import SeededStore


def test_the_seedrec_page_shows_the_spread_over_seeds():
    prof = get_profile("full", "synthetic-small")
    script = {("sasrec", "full"): (0.20, 1.0), ("mealrec-sasrec", "full"): (0.22, 1.0),
              **{("seedrec-sasrec", v): (0.20, 1.0) for v in ("full", "-S2IDM", "-IPE")}}
    res = SD.seedrec_vs_mealrec(SeededStore(script), "synthetic-small", prof, backbones=["sasrec"], seeds=[1, 2, 3])
    assert "(3 seeds)" in res.verdict and "per seed +0.0%, +10.0%, +20.0%" in res.verdict
    assert res.verdict.startswith("does not reproduce (the SeeDRec paper's claim")  # per user, .20 against .20
    assert "HR@10 (means over seeds): SeeDRec +10.0% and MealRec +10.0% against sasrec" in res.verdict
    assert res.table.loc[("sasrec", "seedrec-sasrec"), "ndcg@10 sd over seeds"] == pytest.approx(0.02)
    assert res.table.loc[("sasrec", "sasrec"), "ndcg@10 sd over seeds"] == pytest.approx(0.0, abs=1e-12)
    one = SD.seedrec_vs_mealrec(SeededStore(script), "synthetic-small", prof, backbones=["sasrec"], seeds=[1])
    assert "per seed" not in one.verdict and "ndcg@10 sd over seeds" not in one.table


def test_the_seedrec_page_takes_seeds_per_backbone():
    """A mapping backbone -> seeds: each backbone's rows average over its own seeds, and the
    verdict says how many each had; a backbone outside the page's list is refused."""
    prof = get_profile("full", "synthetic-small")
    script = {(f"{p}{b}", v): (0.20, 1.0) for b in ("sasrec", "cl4srec") for p in ("", "mealrec-")
              for v in ("full",)}
    script.update({(f"seedrec-{b}", v): (0.20, 1.0) for b in ("sasrec", "cl4srec") for v in ("full", "-S2IDM", "-IPE")})
    res = SD.seedrec_vs_mealrec(SeededStore(script), "synthetic-small", prof,
                                seeds={"sasrec": [1, 2, 3], "cl4srec": [3]})
    t = res.table
    assert t.loc[("sasrec", "seedrec-sasrec"), "seeds"] == 3 and t.loc[("cl4srec", "seedrec-cl4srec"), "seeds"] == 1
    assert t.loc[("sasrec", "seedrec-sasrec"), "ndcg@10"] == pytest.approx(0.22)  # mean of .20, .22, .24
    assert t.loc[("cl4srec", "seedrec-cl4srec"), "ndcg@10"] == pytest.approx(0.24)  # seed 3 only
    assert "on sasrec (3 seeds)" in res.verdict and "on cl4srec (1 seed)" in res.verdict
    script[("seedrec-sasrec", "full")] = (0.30, 1.0)  # far above SASRec per user; CL4SRec's rows unchanged
    res = SD.seedrec_vs_mealrec(SeededStore(script), "synthetic-small", prof,
                                seeds={"sasrec": [1, 2, 3], "cl4srec": [3]})
    assert res.verdict.startswith("partly reproduces (the SeeDRec paper's claim")
    with pytest.raises(MealRecError, match="backbones must be among sasrec, cl4srec"):
        SD.seedrec_vs_mealrec(SeededStore(script), "synthetic-small", prof, seeds={"tedrec": [1]})


def test_sememe_diffusion_cost_times_both_shapes_and_names_the_load(tmp_path, monkeypatch):
    """S2IDM against an item-level diffusion: one row each, with the dimension each diffuses
    over, the parameter count of the very model timed, a positive time, and the load the
    timing ran under."""
    from mealrec.data.sememes import sememes_for
    from mealrec.models.seedrec import S2IDM, SeeDRecConfig

    monkeypatch.setenv("MEALREC_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs", progress=False, threads=1)
    cost = SD.sememe_diffusion_cost(store, "synthetic-tiny", repeats=1)
    ds = store.dataset("synthetic-tiny")
    q = sememes_for(ds).n_sememes
    assert list(cost["dimension"]) == [q, ds.n_items - 1]
    assert list(cost["parameters"]) == [sum(p.numel() for p in S2IDM(d, SeeDRecConfig()).parameters())
                                        for d in (q, ds.n_items - 1)]
    assert (cost["train s/epoch"] > 0).all() and cost["machine load"].str.contains("cores|unknown").all()
    with pytest.raises(MealRecError, match="repeats must be >= 1"):
        SD.sememe_diffusion_cost(store, "synthetic-tiny", repeats=0)
