"""The browser check of a built book (headless Chromium, network blocked)."""
from __future__ import annotations

import shutil

import pytest


def test_browser_check_flags_a_broken_page(tmp_path):
    from mealrec.reproduce.browser import browser_check

    if not shutil.which("chromium"):
        pytest.skip("chromium not installed (apt-get install chromium)")
    (tmp_path / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "good.html").write_text('<html><body><p>fine</p><img src="fig.png"></body></html>')
    (tmp_path / "bad.html").write_text("<html><body><p>&lt;IPython.core.display.Markdown object&gt;</p></body></html>")
    (tmp_path / "noimg.html").write_text('<html><body><img src="missing/fig.png"></body></html>')
    (tmp_path / "tex.html").write_text("<html><body><p>raw $$x_t = \\frac{a}{b}$$ here</p></body></html>")
    (tmp_path / "table2.html").write_text("<html><body><p>no table here</p></body></html>")
    report = browser_check(tmp_path, screenshot_path=tmp_path / "shot.png")
    assert report["good.html"] == [] and report["bad.html"]
    assert any("image does not resolve" in p for p in report["noimg.html"])
    assert any("raw TeX" in p for p in report["tex.html"])
    assert any("without a table" in p for p in report["table2.html"])
    assert (tmp_path / "shot.png").stat().st_size > 1000  # a real PNG of the Table 2 page
