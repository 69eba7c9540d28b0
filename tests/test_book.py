"""The book's pages: what each states about its profile, its thinning and the datasets it lacks."""
from __future__ import annotations

import pytest

from mealrec.reproduce import get_profile
from mealrec.reproduce import plan as P
from mealrec.reproduce.artefacts import PAGES, profile_line
from mealrec.reproduce.book import _page_markdown, write_book_pages
from mealrec.utils import MealRecError


def test_pages_name_the_datasets_they_do_not_show_yet(tmp_path):
    """A page lists, from the coverage file, the datasets whose runs are not all stored, with the counts."""

    gen = tmp_path / "book/generated/smoke"
    (gen / "overall").mkdir(parents=True)
    (gen / "overall/synthetic-tiny.ipynb").write_text("{}")
    rows = [{"notebooks": ["overall"], "dataset": d, "stored": s, "est_minutes": m}
            for d, s, m in [("synthetic-tiny", True, None), ("synthetic-small", True, None),
                            ("synthetic-small", False, 90.0), ("synthetic-small", False, None)]]
    P.write_coverage(rows, "smoke", ["overall"], ["synthetic-tiny", "synthetic-small"], tmp_path)
    write_book_pages("smoke", root=tmp_path)
    page = (gen / "table2.md").read_text()
    assert "**Not shown yet:** synthetic-small (1 of 3 runs stored, ~1.5 h of training missing)" in page
    assert "## synthetic-tiny" in page and "## synthetic-small" not in page and "{doc}`coverage`" in page
    (gen / "overall/synthetic-small.ipynb").write_text("{}")  # rendered: no longer pending
    write_book_pages("smoke", root=tmp_path)
    assert "Not shown yet" not in (gen / "table2.md").read_text()
    (gen / "coverage.json").write_text("[1, 2]")
    with pytest.raises(MealRecError, match="coverage.json is not a coverage file"):
        write_book_pages("smoke", root=tmp_path)


def test_each_page_states_the_settings_its_own_runs_follow():
    assert "30 for a run that stopped on an early plateau at patience 10" in profile_line("full", "overall")
    assert profile_line("full", "overall").endswith("seed 2020")
    assert profile_line("full", "complexity") == "timing runs of 3 epochs per model, seed 2020"
    assert profile_line("full", "seedrec").endswith("seeds 2020, 2021, 2022")
    assert profile_line("full", "controls") == "30 epochs per run, no early stopping, seeds 2020, 2021, 2022"
    assert "nothing is trained" in profile_line("full", "datasets")


def test_a_page_names_only_the_thinning_its_notebook_reads():
    full = get_profile("full")
    overall = next(p for p in PAGES if p.notebook == "overall")
    page = _page_markdown(overall, "full", ["microlens-big", "synthetic-tiny"])
    assert page.count("is thinned") == 1 and full.thinning_note("microlens-big", "overall") in page
    # Figure 6's backbones are thinned away on microlens-big only: its page follows
    ablation_page = next(p for p in PAGES if p.notebook == "ablation")
    page = _page_markdown(ablation_page, "full", ["microlens-big", "synthetic-small"])
    big_part, small_part = page.split("## synthetic-small")
    assert "table-tedrec" in big_part and "table-sasrec" not in big_part and "ablation_backbones {tedrec}" in big_part
    assert "table-sasrec" in small_part and "table-cl4srec" in small_part
