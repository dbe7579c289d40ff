"""Chromium for tests that open pages: where it is, how it starts, and a page opened with no network."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    """The Chromium to drive: ``TFCOURSE_CHROMIUM``, else the first one on the PATH."""
    chosen = os.environ.get("TFCOURSE_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).exists() else None
    return next(filter(None, map(shutil.which, ["chromium", "chromium-browser"])), None)


def chromium_or_skip() -> str:
    """Chromium's path; the test is skipped, with the reason, where playwright or Chromium is missing."""
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed: bash scripts/setup.sh dev")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found: apt-get install chromium (or set TFCOURSE_CHROMIUM to its path)")
    return executable


@dataclass
class OfflineView:
    """What a page opened from disk showed: its typeset formulas, the value of ``window.injected`` (set only
    by a script that should never run), the requests refused, whether ``\\frac`` was left as raw text, and
    the states of the MathJax fonts it used (``loaded``, or ``error`` for one that was not found)."""

    maths: int
    injected: object
    raw: bool
    refused: list[str] = field(default_factory=list)
    fonts: set[str] = field(default_factory=set)


FONT_STATES = ("async () => { await document.fonts.ready; return [...document.fonts]"
               ".filter(f => /MJX/.test(f.family) && f.status !== 'unloaded').map(f => f.status); }")


def open_offline(page_path: Path, screenshot: Path | None = None) -> OfflineView:
    """Open a page from disk in Chromium with every request but ``file:`` and ``data:`` refused, once
    MathJax has typeset it; save a full-page screenshot when asked."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.route(re.compile(r"^(?!file:|data:).*"), lambda route: (refused.append(route.request.url),
                                                                         route.abort()))
        page = context.new_page()
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        page.evaluate("MathJax.startup.promise")
        view = OfflineView(page.locator("mjx-container").count(), page.evaluate("window.injected"),
                           page.evaluate("document.body.innerText.includes('\\\\frac')"), refused,
                           set(page.evaluate(FONT_STATES)))
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return view
