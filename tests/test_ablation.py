"""Figures 3 and 6: the verdict follows its stated rule."""
from __future__ import annotations

from mealrec.reproduce import ablation as A
from mealrec.reproduce import get_profile

from .helpers import ScriptedStore


def test_ablation_verdict_follows_its_stated_rule():
    prof = get_profile("full", "synthetic-small")
    order = {"tedrec": 0.20, "full": 0.25, "-TCD": 0.23, "-NPD": 0.24, "-TCD-NPD": 0.21}
    script = {("tedrec", "full"): (order["tedrec"], 1.0),
              **{("mealrec-tedrec", v): (order[v], 1.0) for v in A.VARIANTS}}
    text = A.ablation(ScriptedStore(script), "synthetic-small", prof).verdict
    assert text.startswith("reproduces:") and "(1) Full model at or above every ablated variant: yes" in text
    assert "(3) -TCD-NPD the lowest variant: yes" in text and "one seed" in text
    script[("mealrec-tedrec", "full")] = (0.22, 1.0)  # below -TCD and -NPD, above the backbone
    text = A.ablation(ScriptedStore(script), "synthetic-small", prof).verdict
    assert text.startswith("partly reproduces:") and "(1) Full model at or above every ablated variant: no" in text
    script[("mealrec-tedrec", "full")] = (0.19, 1.0)  # below everything
    assert A.ablation(ScriptedStore(script), "synthetic-small", prof).verdict.startswith("does not reproduce:")


def test_ablation_at_several_seeds_shows_means_sd_and_each_seeds_p():
    from dataclasses import replace

    class Seeded(ScriptedStore):
        def run(self, model, dataset, **kw):
            res = super().run(model, dataset, **kw)
            res["config"] = {**res["config"], "seed": kw["seed"]}
            res["test"] = {k: v + 0.01 * kw["seed"] for k, v in res["test"].items()}
            res["per_user_test"] = {"ndcg@10": res["per_user_test"]["ndcg@10"] + 0.01 * kw["seed"]}
            return res

    prof = replace(get_profile("full", "synthetic-small"), ablation_seeds={"tedrec": (1, 2, 3)})
    assert [q.seed for q in A.ablation_requests("synthetic-small", prof)["full"]] == [1, 2, 3]
    assert [q.seed for q in A.ablation_requests("synthetic-small", prof, "sasrec")["full"]] == [2020]  # not named
    assert A.page_seeds(prof) == [1, 2, 3, 2020] and A.page_seeds(prof, [5]) == [5]
    assert [q.seed for q in A.ablation_requests("synthetic-small", get_profile("full", "synthetic-small"))["full"]
            ] == [2020]  # the default: the first of the profile's seeds
    order = {"tedrec": 0.20, "full": 0.25, "-TCD": 0.23, "-NPD": 0.24, "-TCD-NPD": 0.21}
    script = {("tedrec", "full"): (order["tedrec"], 1.0),
              **{("mealrec-tedrec", v): (order[v], 1.0) for v in A.VARIANTS}}
    res = A.ablation(Seeded(script), "synthetic-small", prof)
    assert abs(res.table.loc["full", "ndcg@10"] - 0.27) < 1e-9  # 0.25 + mean(0.01, 0.02, 0.03)
    assert abs(res.table.loc["full", "N@10 sd"] - 0.01) < 1e-9
    assert res.table.loc["-TCD", "p vs full per seed"].startswith("1: ")
    assert res.verdict.startswith("reproduces:") and "means over 3 seeds" in res.verdict


def test_ablation_seeds_per_backbone_load_from_yaml_and_are_stated(tmp_path):
    import yaml

    from mealrec.reproduce.profiles import PROFILE_DIR, load_profile

    data = yaml.safe_load((PROFILE_DIR / "full.yaml").read_text(encoding="utf-8"))
    data.update(seeds=[7], ablation_backbones=["tedrec", "sasrec"],
                thinned={"synthetic-small": {"ablation_seeds": {"tedrec": [7, 8, 9]}}})
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    prof = load_profile(path)
    small = prof.for_dataset("synthetic-small")
    assert small.ablation_seeds == {"tedrec": (7, 8, 9)} and A.page_seeds(small) == [7, 8, 9]
    assert A.ablation_seeds(small, "sasrec") == [7]
    note = prof.thinning_note("synthetic-small", "ablation")
    assert "the tedrec rows at seeds {7, 8, 9}" in note and "(the other backbones: seed 7)" in note
    assert prof.thinning_note("synthetic-small", "overall") == ""  # a field that page does not read
