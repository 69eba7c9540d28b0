"""The notebooks: stored clean with one parameters cell; their setup call checks the parameters."""
from __future__ import annotations

import re

import nbformat
import pytest

from mealrec.reproduce import get_profile, parse_models, parse_seeds, setup
from mealrec.reproduce.artefacts import MODELS_NOTEBOOKS, NOTEBOOKS
from mealrec.utils import MealRecError

from .helpers import ROOT


def test_notebooks_are_stored_clean_with_a_parameters_cell():
    for nb in NOTEBOOKS:
        book = nbformat.read(ROOT / "notebooks" / f"{nb}.ipynb", as_version=4)
        params = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, nb
        for name in ("DATASET", "PROFILE", "SEEDS", "MODELS", "OUTPUT_DIR"):
            assert f"{name} = " in params[0].source, (nb, name)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in book.cells if c.cell_type == "code"), nb


def test_bad_parameters_fail_in_the_first_cell_listing_the_valid_values(tmp_path):
    """An unknown dataset, a misspelled profile, an unknown model or malformed seeds stop the
    notebook in its first cell after the parameters, with the valid values in the message."""
    import papermill as pm

    cases = [({"DATASET": "synthetic-tinyy"}, "unknown dataset 'synthetic-tinyy'; valid names: .*synthetic-tiny"),
             ({"PROFILE": "smokey"}, "unknown profile 'smokey'; valid: smoke, quick, full"),
             ({"MODELS": "sasrec,tedrek"}, "unknown model 'tedrek'; valid names: .*tedrec"),
             ({"SEEDS": "2020;2021"}, "SEEDS must be None or a list of integers")]
    for params, message in cases:
        with pytest.raises(pm.PapermillExecutionError) as err:
            pm.execute_notebook(str(ROOT / "notebooks/overall.ipynb"), str(tmp_path / "out.ipynb"),
                                kernel_name="python3",
                                parameters={"DATASET": "synthetic-tiny", "PROFILE": "smoke",
                                            "RUNS_DIR": str(tmp_path / "runs"), "OUTPUT_DIR": str(tmp_path / "out"),
                                            "FIGURES_DIR": str(tmp_path / "fig"), **params},
                                cwd=str(ROOT), progress_bar=False)
        assert err.value.exec_count == 3, (params, err.value.exec_count)  # parameters, injected parameters, then this
        assert re.search(message, err.value.evalue), (params, err.value.evalue)


def test_models_is_refused_where_a_notebook_does_not_read_it():
    assert parse_models("sasrec,tedrec", notebook="overall") == ["sasrec", "tedrec"]
    assert parse_models(None, notebook="ablation") is None
    for nb in set(NOTEBOOKS) - set(MODELS_NOTEBOOKS):
        with pytest.raises(MealRecError,
                           match=f"MODELS is not read by the {nb} notebook.*overall, noise, visualisation"):
            parse_models(["sasrec"], notebook=nb)


def test_seeds_and_models_parameters_are_parsed_as_papermill_passes_them():
    """SEEDS as the notebooks receive it: None, a list, one int, or text (papermill -p passes lists as text)."""
    assert parse_seeds(None, (2020,)) == [2020] and parse_seeds([], (2020,)) == [2020]
    assert parse_seeds([2021, 2022], (2020,)) == [2021, 2022] and parse_seeds(7, (2020,)) == [7]
    assert parse_seeds("[2020, 2021, 2022]", (1,)) == [2020, 2021, 2022]
    for bad in ("2020,2021", ["2020"], [True], 1.5):
        with pytest.raises(MealRecError, match=r"SEEDS.*-y \"SEEDS: \[2020"):
            parse_seeds(bad, (2020,))
    assert parse_models(None) is None and parse_models("") is None and parse_models([]) is None
    assert (parse_models('["sasrec", "tedrec"]') == parse_models("sasrec, tedrec")
            == parse_models(["sasrec", "tedrec"]) == ["sasrec", "tedrec"])
    with pytest.raises(MealRecError, match="unknown model 'sasrek'; valid names: .*sasrec"):
        parse_models("sasrek")
    with pytest.raises(MealRecError, match="MODELS"):
        parse_models('["sasrec"')


def test_setup_gives_the_cells_the_profile_seeds_store_and_folders(tmp_path):
    """One call per notebook: the profile as it applies to the dataset, each page's own seeds, the
    store, and the output folders made; the sidecar lands under the notebook's and dataset's name."""
    params = dict(output_dir=str(tmp_path / "out"), figures_dir=str(tmp_path / "fig"), runs_dir=str(tmp_path / "runs"))
    ctx = setup("sensitivity", "synthetic-small", "full", **params)
    assert ctx.profile == get_profile("full", "synthetic-small") and ctx.seeds == [2020] and ctx.models is None
    assert ctx.output_dir.is_dir() and ctx.figures_dir.is_dir() and ctx.store.root == tmp_path / "runs"
    assert setup("sensitivity", "synthetic-small", "full", seeds="[7, 8]", **params).seeds == [7, 8]
    assert setup("seedrec", "microlens-small", "full", **params).seeds == {"sasrec": (2020, 2021, 2022)}
    control_seeds = get_profile("full", "control-content").control_seeds  # thinned while seeds are trained
    assert setup("controls", "control-content", "full", **params).seeds == control_seeds
    assert setup("overall", "synthetic-tiny", "smoke", models="sasrec", **params).models == ["sasrec"]
    with pytest.raises(ValueError, match="positive controls only"):
        setup("controls", "synthetic-small", "full", **params)
    with pytest.raises(MealRecError, match="unknown notebook 'tables'"):
        setup("tables", "synthetic-small", "full", **params)
    path = setup("datasets", "synthetic-tiny", "smoke", **params).write_sidecar({"n": 1}, seeds=[1])
    assert path == tmp_path / "out" / "datasets-synthetic-tiny.json" and '"n": 1' in path.read_text()
