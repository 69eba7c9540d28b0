"""Profiles: read from YAML, thinned per dataset, and each thinning stated where it applies."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mealrec.reproduce import RunStore, get_profile
from mealrec.reproduce import plan as P
from mealrec.reproduce import table1 as T1
from mealrec.reproduce import table2 as T2
from mealrec.reproduce import verdicts as V
from mealrec.reproduce.ablation import ablation_requests
from mealrec.reproduce.artefacts import NOTEBOOKS, NOTEBOOK_FIELDS, notebook_requests
from mealrec.reproduce.requests import request
from mealrec.utils import MealRecError


def test_profiles_load_from_yaml_and_refuse_unknown_fields(tmp_path):
    import mealrec.reproduce.profiles as PR

    assert list(PR.PROFILES) == ["smoke", "quick", "full"]
    assert {f.stem for f in PR.PROFILE_DIR.glob("*.yaml")} == set(PR.PROFILES)
    full = get_profile("full")
    assert (full.epochs, full.patience, full.plateau_patience, full.seeds) == (200, 10, 30, (2020,))
    assert full.lambdas == (0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9) and isinstance(full.noise, tuple)
    assert get_profile("full", "microlens-big").seedrec_backbone_seeds == {"cl4srec": (2020,)}
    (tmp_path / "mine.yaml").write_text("epochs: 2\npatience: 1\nseeds: [1]\nlambdas: [0.1]\nsteps: [5]\nnoise: [0.0]\n"
                                        "timing_epochs: 1\ntsne_users: 10\nsynthetic_datasets: [synthetic-tiny]\n"
                                        "real_datasets: []\n")
    mine = PR.load_profile(tmp_path / "mine.yaml")
    assert mine.name == "mine" and mine.seeds == (1,) and mine.thinned == {}
    (tmp_path / "bad.yaml").write_text((tmp_path / "mine.yaml").read_text() + "epoch: 3\n")
    with pytest.raises(MealRecError, match="unknown profile field 'epoch'"):
        PR.load_profile(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text((tmp_path / "mine.yaml").read_text()
                                       + "thinned: {synthetic-tiny: {lambda: [1]}}\n")
    with pytest.raises(MealRecError, match="thinned: synthetic-tiny: unknown profile field 'lambda'"):
        PR.load_profile(tmp_path / "bad.yaml")


def test_profile_thinning_applies_per_dataset_and_is_stated_on_the_page():
    full = get_profile("full")
    big = get_profile("full", "microlens-big")
    assert big.epochs < full.epochs and len(big.lambdas) < len(full.lambdas)
    assert get_profile("full", "synthetic-small").epochs == full.epochs  # only what is named is thinned
    assert get_profile("full", "synthetic-small").lambdas == (0.01, 0.1, 0.9)
    assert get_profile("full", "synthetic-tiny").lambdas == full.lambdas and full.thinning_note("synthetic-tiny") == ""
    assert "lambdas {0.01, 0.1, 0.9} instead of" in full.thinning_note("synthetic-small")
    # a page names only the thinning its notebook is affected by
    assert "lambdas" in full.thinning_note("synthetic-small", "sensitivity")
    assert "lambdas" not in full.thinning_note("synthetic-small", "overall")
    assert full.thinning_note("microlens-small", "overall") == ""
    assert ("epochs 10" in full.thinning_note("microlens-big", "overall")
            and "lambdas" not in full.thinning_note("microlens-big", "overall"))
    assert "epochs" not in full.thinning_note("microlens-big", "complexity")
    assert set(NOTEBOOK_FIELDS) == set(NOTEBOOKS)
    note = full.thinning_note("microlens-big")
    assert f"epochs {big.epochs} instead of {full.epochs}" in note
    with pytest.raises(MealRecError, match="valid: smoke, quick, full"):
        get_profile("ful", "microlens-big")
    # synthetic-medium is out of the full profile's defaults but keeps its thinning when named
    from mealrec.reproduce.execution import default_datasets
    assert default_datasets("full", "some/data") == ["synthetic-small", "control-content", "control-temporal",
                                                     "control-selection", "microlens-small", "microlens-big"]
    assert get_profile("full", "synthetic-medium").lambdas == (0.01, 0.1, 0.9)
    # Figure 6's backbones are thinned away on microlens-big only: its runs follow (its page: test_book.py)
    assert {r.model for r in notebook_requests("ablation", "microlens-big", "full")} == {"tedrec", "mealrec-tedrec"}
    assert len(notebook_requests("ablation", "synthetic-small", "full")) == 15


def test_quick_profile_samples_microlens_users_and_the_store_follows(tmp_path, monkeypatch):
    import mealrec.reproduce.profiles as PR

    quick = get_profile("quick")
    assert (get_profile("quick", "microlens-small").max_users == PR.QUICK_USERS
            == get_profile("quick", "microlens-big").max_users)
    assert (get_profile("quick", "synthetic-small").max_users is None
            and get_profile("full", "microlens-big").max_users is None)
    assert f"a sample of {PR.QUICK_USERS} users instead of all of them" in quick.thinning_note("microlens-small")
    # a store opened with a profile cuts the datasets that profile samples, in process and in a subprocess
    monkeypatch.setitem(PR.PROFILES, "smoke",
                        replace(PR.PROFILES["smoke"], thinned={"synthetic-tiny": {"max_users": 60}}))
    cut = RunStore(tmp_path, progress=False, threads=1, profile="smoke")
    assert cut.dataset("synthetic-tiny").stats()["users"] == 60
    assert RunStore(tmp_path, progress=False, profile=None).dataset("synthetic-tiny").stats()["users"] == 200
    r = cut.run("sasrec", "synthetic-tiny", seed=1, epochs=1, isolate=True)
    assert r["dataset"]["stats"]["users"] == 60 and r["per_user_test"]["ndcg@10"].shape == (60,)
    table = T1.dataset_table(cut, ["synthetic-tiny"])
    assert table.loc["synthetic-tiny", "users are"].startswith("a sample: 60 of 200 users")


def test_a_run_that_stops_on_an_early_plateau_is_retried_with_the_longer_patience(tmp_path, monkeypatch):
    """The full profile retrains a plateau-stopped run with patience 30; the plan counts the retry,
    the request returns it, and the pages say which rows got it."""
    from mealrec.reproduce.profiles import stopped_on_plateau

    def result(best, ran, patience=10, cap=200):
        return {"best_epoch": best, "timing": {"epochs_run": ran},
                "config": {"train": {"epochs": cap, "patience": patience}}}

    assert stopped_on_plateau(result(2, 12)) and not stopped_on_plateau(result(40, 50))
    assert not stopped_on_plateau(result(3, 3, cap=3))  # a 3-epoch timing run did not stop early
    full = get_profile("full")
    req = request("cl4srec", "synthetic-tiny", full)
    assert req.plateau_patience == 30 and req.retry(result(40, 50)) is None
    retry = req.retry(result(2, 12))
    assert retry.patience == 30 and retry.plateau_patience is None and retry.retry(result(2, 32, 30)) is None
    assert request("cl4srec", "synthetic-tiny", get_profile("smoke")).retry(result(1, 2, 1)) is None  # smoke: never
    # RunRequest.run hands back the retry when the first run stalled
    asked = []

    class FakeStore:
        def path(self, *a, **kw):
            return Path(__file__)  # "stored": nothing to claim

        def run(self, model, dataset, **kw):
            asked.append(kw["patience"])
            return result(2, 12) if kw["patience"] == 10 else result(90, 120, 30)

    assert req.run(FakeStore())["best_epoch"] == 90 and asked == [10, 30]
    # The plan lists the retry once the stalled run is stored, named by its patience
    store = RunStore(tmp_path / "runs", progress=False, threads=1)
    tiny = full.for_dataset("synthetic-tiny")
    monkeypatch.setattr(P, "notebook_requests", lambda nb, d, prof: [request("sasrec", d, tiny)])
    first = request("sasrec", "synthetic-tiny", tiny).path(store)
    first.parent.mkdir(parents=True)
    first.write_text(json.dumps(result(2, 12)))
    rows = P.plan(store, "full", ["synthetic-tiny"], ["overall"])
    assert [r["stored"] for r in rows] == [True, False] and rows[1]["setting"] == "patience=30"
    # Pages: the protocol line states the rule (test_book.py); the verdict names the retried row
    text = V.schedule_caveat({"cl4srec": [result(104, 134, 30)], "full": [result(40, 50)]}, 10)
    assert "cl4srec was trained with patience 30 instead of 10" in text and "Caveat" not in text
    assert "patience 30 after an early plateau at 10" in V.training_record([result(104, 134, 30)], 10)[1]


def test_a_backbone_patience_applies_to_the_whole_family_and_is_stated(monkeypatch):
    """synthetic-small gives every CL4SRec-backbone run patience 30 (the backbone, both plug-ins
    and their ablations), no other run; pages say so, apart from a plateau retry."""
    from mealrec.reproduce.profiles import backbone_of

    assert [backbone_of(m) for m in ("cl4srec", "mealrec-cl4srec", "seedrec-sasrec", "tedrec", "mmgcn")] == [
        "cl4srec", "cl4srec", "sasrec", "tedrec", "mmgcn"]
    small = get_profile("full", "synthetic-small")
    assert [small.patience_for(m) for m in ("cl4srec", "mealrec-cl4srec", "seedrec-cl4srec", "sasrec",
                                            "mealrec-tedrec")] == [30, 30, 30, 10, 10]
    assert get_profile("full", "microlens-small").patience_for("mealrec-cl4srec") == 10
    reqs = ablation_requests("synthetic-small", small, backbone="cl4srec")
    assert {r.patience for rs in reqs.values() for r in rs} == {30}
    assert {r.patience for rs in ablation_requests("synthetic-small", small, backbone="sasrec").values()
            for r in rs} == {10}
    note = get_profile("full").thinning_note("synthetic-small", "ablation")
    assert "every run on the cl4srec backbone" in note and "patience 30 instead of 10" in note and "thinned" not in note

    def result(model, best, ran, patience):
        return {"best_epoch": best, "timing": {"epochs_run": ran},
                "config": {"model": model, "train": {"epochs": 200, "patience": patience}}}

    text = V.schedule_caveat({"cl4srec": [result("cl4srec", 104, 134, 30)],
                              "full": [result("mealrec-cl4srec", 61, 91, 30)],
                              "sasrec": [result("sasrec", 40, 50, 10)]}, small)
    assert ("cl4srec, full were trained with patience 30 instead of 10" in text
            and "the other rows had patience 10" in text)
    assert "early plateau" not in text  # requested, not retried
    # Table 2's diagnostics name the row's patience where it differs from the profile's
    import numpy as np
    import pandas as pd
    runs = {m: [dict(result(m, 40, 50, p), per_user={"ndcg@10": np.full(4, v)})]
            for m, p, v in (("cl4srec", 30, .2), ("sasrec", 10, .1))}
    table = pd.DataFrame({("ndcg@10", "ours"): [.2, .1]}, index=["cl4srec", "sasrec"])
    monkeypatch.setattr(T2, "seed_mean", lambda rs, metric: rs[0]["per_user"][metric])
    diag = T2.ranking_diagnostics(table, runs, small)
    assert diag.loc["cl4srec", "training record"].endswith("patience 30 for its backbone here (other rows: 10)")
    assert "patience" not in diag.loc["sasrec", "training record"]
    # a family row retried beyond its requested patience is still named as a retry
    text = V.schedule_caveat({"cl4srec": [result("cl4srec", 104, 134, 60)]}, small)
    assert "trained with patience 60 instead of 30" in text and "early plateau" in text


def test_the_seedrec_page_has_its_own_seeds_and_states_their_thinning():
    """The page is designed for 3 seeds: the full profile says so, and each dataset that cuts
    them, or gives a backbone fewer, or leaves one off, says so; the runs follow."""
    full = get_profile("full")
    assert full.seeds_for("seedrec") == (2020, 2021, 2022) and full.seeds_for("overall") == (2020,)
    assert full.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022), "cl4srec": (2020, 2021, 2022)}
    big = get_profile("full", "microlens-big")
    assert big.seeds_for("seedrec") == (2020, 2021, 2022)
    assert big.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022), "cl4srec": (2020,)}
    assert "seeds {2020} on the SeeDRec page's cl4srec rows" in full.thinning_note("microlens-big", "seedrec")
    assert "SeeDRec" not in full.thinning_note("microlens-big", "overall")
    med = get_profile("full", "synthetic-medium")
    assert med.seeds_for("seedrec") == (2020,)
    assert "seedrec_seeds {2020} instead of {2020, 2021, 2022}" in full.thinning_note("synthetic-medium", "seedrec")
    small = get_profile("full", "microlens-small")
    assert small.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022)}
    assert "the SeeDRec page leaves the cl4srec backbone off" in full.thinning_note("microlens-small", "seedrec")
    syn = get_profile("full", "synthetic-small")
    assert syn.seedrec_seeds_by_backbone() == {"sasrec": (2020, 2021, 2022), "cl4srec": (2020,)}
    assert "seeds {2020} on the SeeDRec page's cl4srec rows" in full.thinning_note("synthetic-small", "seedrec")
    assert syn.seedrec_seeds_by_backbone([7]) == {"sasrec": (7,), "cl4srec": (7,)}  # a notebook's SEEDS
    reqs = notebook_requests("seedrec", "synthetic-small", "full")
    assert ({(r.model, r.seed) for r in reqs if r.model.endswith("cl4srec")}
            == {(m, 2020) for m in ("cl4srec", "mealrec-cl4srec", "seedrec-cl4srec")})
    assert {r.seed for r in reqs if r.model.endswith("sasrec")} == {2020, 2021, 2022}
    assert not [r for r in notebook_requests("seedrec", "microlens-small", "full") if "cl4srec" in r.model]
    assert {r.seed for r in notebook_requests("seedrec", "synthetic-tiny", "full")} == {2020, 2021, 2022}
    assert get_profile("quick").seeds_for("seedrec") == (2020,)
    with pytest.raises(MealRecError, match="valid backbones: sasrec, cl4srec"):
        replace(full, seedrec_backbone_seeds={"tedrec": (1,)}).seedrec_seeds_by_backbone()


def test_why_thinned_is_stated_on_the_pages_that_read_the_field(tmp_path):
    from mealrec.reproduce import profiles as PR

    import yaml

    data = yaml.safe_load((PR.PROFILE_DIR / "full.yaml").read_text(encoding="utf-8"))
    data["why_thinned"] = {"synthetic-small": {"lambdas": "The full grid: ~99 core-hours."}}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    prof = PR.load_profile(path)
    assert "{5, 10, 25} instead of {5, 10, 15, 20, 25}. The full grid: ~99 core-hours." in prof.thinning_note(
        "synthetic-small", "sensitivity")
    assert "core-hours" not in prof.thinning_note("synthetic-small", "seedrec")
    data["why_thinned"] = {"synthetic-small": {"lambda": "typo"}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(MealRecError, match="why_thinned: synthetic-small names unknown fields lambda"):
        PR.load_profile(path)
