"""The browser check of a built book: every page opened in headless Chromium, network blocked."""
from __future__ import annotations

import re
import subprocess
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..utils import MealRecError


_CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=8000")
_RAW_TEX = ("\\(", "\\[", "$$", "\\frac", "\\mathbf", "\\begin{")


def _visible_text(dom: str) -> str:
    """The DOM without scripts, styles and typeset math (what a reader sees as text)."""
    for tag in ("script", "style", "mjx-container", "mjx-assistive-mml", "math"):
        dom = re.sub(rf"(?is)<{tag}\b.*?</{tag}>", " ", dom)
    return re.sub(r"(?s)<[^>]+>", " ", dom)


def browser_check(html_dir: str | Path, chromium: str | None = None, screenshot: str | None = "table2.html",
                  screenshot_path: str | Path | None = None) -> dict[str, list[str]]:
    """Open every page of the built book in headless Chromium with all network lookups
    blocked, and report per page what is wrong: a page that does not load, an image whose
    file does not resolve, a table page without a table, raw TeX left untypeset (or MathJax
    not loaded offline), pasted objects that fell back to their Python repr, a glue or Sphinx
    error box. Returns ``{page: [problems]}`` (empty lists = fine). Saves a screenshot of the
    first page whose name ends with ``screenshot`` (default: the Table 2 page) to
    ``screenshot_path`` (default ``<html_dir>/../table2.png``). Needs Debian's ``chromium``."""
    exe = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise MealRecError("browser check needs Chromium: apt-get install chromium (Debian), or pass its path")
    html_dir = Path(html_dir)
    report: dict[str, list[str]] = {}
    shot_done = False
    for page in sorted(html_dir.rglob("*.html")):
        rel = str(page.relative_to(html_dir))
        if rel in ("genindex.html", "search.html"):
            continue
        proc = subprocess.run([exe, *_CHROMIUM_FLAGS, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                              timeout=120)
        dom = proc.stdout
        problems = []
        if not dom.strip() or "<body" not in dom:
            problems.append(f"page did not load (chromium exit {proc.returncode})")
        source = page.read_text(encoding="utf-8")
        if ("\\(" in source or "\\[" in source or 'class="math' in source) and "mjx-container" not in dom:
            problems.append("math not typeset (MathJax missing or not loaded offline)")
        text = _visible_text(dom)
        raw = [t for t in _RAW_TEX if t in text]
        if raw:
            problems.append(f"raw TeX left in the page: {raw}")
        for src in re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', dom):
            if src.startswith("data:"):
                continue
            url = urlsplit(src)
            target = Path(unquote(url.path)) if url.scheme else (page.parent / unquote(url.path)).resolve()
            if not target.is_file():
                problems.append(f"image does not resolve: {src}")
        if re.match(r"(.*/)?table\d", rel) and "<table" not in dom:
            problems.append("table page without a table")
        for bad in ("&lt;IPython.core.display", "<IPython.core.display", "object at 0x",
                    "Traceback (most recent call last)",
                    "system-message"):
            if bad in dom:
                problems.append(f"page contains {bad!r}")
        report[rel] = problems
        if screenshot and not shot_done and rel.endswith(screenshot):
            out = (Path(screenshot_path) if screenshot_path
                   else html_dir.parent / Path(screenshot).with_suffix(".png").name)
            subprocess.run([exe, *_CHROMIUM_FLAGS, "--hide-scrollbars", "--window-size=1280,2400",
                            f"--screenshot={out}", page.as_uri()], capture_output=True, timeout=120)
            if not out.is_file():
                problems.append(f"screenshot not written: {out}")
            shot_done = True
    return report


__all__ = ["browser_check"]
