"""The built book, opened page by page in headless Chromium.

The session builds the book once with ``scripts/build_book.sh`` (any Sphinx warning fails
it), or reuses ``_build/html`` when that script's last build succeeded and no source is
newer. Each page is then served from a local HTTP server and must load with no console
error, no failed or external request (the book reads offline), every image decoded,
every formula typeset by MathJax, and every internal link pointing at a file and anchor
that exist. Each lesson is saved as a screenshot in ``_build/screenshots``, and the
search page must find the lessons.

Needs the ``book`` extra, playwright and a Chromium (``TFCOURSE_CHROMIUM``, else
``chromium`` on the PATH); skipped with the reason when one is missing.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.browser import CHROMIUM_ARGS, chromium_path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
STAMP = ROOT / "_build" / "book.stamp"
SCREENSHOTS = ROOT / "_build" / "screenshots"
SOURCES = ["book", "_config.yml", "_toc.yml", "tfcourse", "exercises", "scripts/build_book.sh"]
BUILD_TIMEOUT_S = 1800

pytestmark = pytest.mark.book


def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` (its ``root`` and each ``file``), as ``book/name`` paths."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    return re.findall(r"^\s*(?:-\s*)?(?:root|file):\s*(\S+)", toc, flags=re.MULTILINE)


PAGES = ["index.html", *(f"{page}.html" for page in toc_pages()), "genindex.html", "search.html"]
LESSONS = [page for page in PAGES if re.match(r"book/\d\d-", page)]


def newest_source_mtime() -> float:
    """Last modification time of any file the book is built from."""
    files = (path for name in SOURCES for path in [ROOT / name, *(ROOT / name).rglob("*")])
    return max(path.stat().st_mtime for path in files if path.is_file() and "__pycache__" not in path.parts)


def build_is_fresh() -> bool:
    """True when ``scripts/build_book.sh`` last succeeded after every source's last change."""
    return STAMP.exists() and STAMP.stat().st_mtime >= newest_source_mtime()


@pytest.fixture(scope="session")
def site() -> Path:
    """The built book's directory, built now unless the last clean build is up to date."""
    if importlib.util.find_spec("jupyter_book") is None:
        pytest.skip("jupyter-book is not installed: bash scripts/setup.sh book")
    if not build_is_fresh():
        build = subprocess.run(
            ["bash", "scripts/build_book.sh"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if build.returncode != 0:
            tail = "\n".join((build.stdout + build.stderr).splitlines()[-60:])
            pytest.fail(f"scripts/build_book.sh failed (exit {build.returncode}):\n{tail}", pytrace=False)
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def base_url(site: Path) -> Iterator[str]:
    """The site served over HTTP on a free local port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")  # closed with this module: another sync_playwright cannot start while one runs
def browser():
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed: bash scripts/setup.sh dev")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found: apt-get install chromium (or set TFCOURSE_CHROMIUM to its path)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageVisit:
    """One page opened in a fresh browser context, with every problem it reported."""

    def __init__(self, browser, base_url: str, path: str):
        self.base_url = base_url
        self.problems: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._local_only)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"JavaScript error: {error}"))
        self.page.on("response", self._response)
        self.page.goto(f"{base_url}/{path}", wait_until="networkidle")

    def _local_only(self, route) -> None:
        url = route.request.url
        if url.startswith((self.base_url, "data:")):
            route.continue_()
        else:
            self.problems.append(f"request leaves the site: {url}")
            route.abort()

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, base_url):
    """``visit(path)`` opens a page of the site; the contexts are closed after the test.

    The browser comes first, so that a missing Chromium skips before the book is built.
    """
    visits: list[PageVisit] = []

    def open_page(path: str) -> PageVisit:
        visits.append(PageVisit(browser, base_url, path))
        return visits[-1]

    yield open_page
    for page_visit in visits:
        page_visit.close()


WAIT_FOR_MATHJAX = """async () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
}"""

UNTYPESET_MATHS = """() => [...document.querySelectorAll('.math')]
    .filter(el => !el.querySelector('mjx-container'))
    .map(el => el.textContent.trim().slice(0, 80))"""

BROKEN_IMAGES = """() => [...document.images]
    .filter(img => !img.complete || img.naturalWidth === 0)
    .map(img => img.getAttribute('src'))"""

RAW_DOLLAR_MATHS = r"""() => {
    const article = document.querySelector('article') || document.body;
    const copy = article.cloneNode(true);
    copy.querySelectorAll('pre, code, .highlight, .math, mjx-container').forEach(el => el.remove());
    return (copy.textContent.match(/\$\$|\$[^$\s][^$\n]*\$/g) || []);
}"""

LINKS = """() => [...document.querySelectorAll('a[href]')].map(a => a.href)"""


def missing_link_targets(site: Path, base_url: str, links: list[str]) -> list[str]:
    """Internal links whose file, or whose ``#anchor`` in that file, does not exist."""
    broken = []
    for link in sorted(set(links)):
        if not link.startswith(base_url):
            continue
        parts = urlsplit(link)
        target = site / unquote(parts.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(link)
        elif parts.fragment and target.suffix == ".html":
            html = target.read_text(encoding="utf-8")
            if f'id="{unquote(parts.fragment)}"' not in html:
                broken.append(link)
    return broken


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly(visit, site: Path, base_url: str, path: str):
    page_visit = visit(path)
    page = page_visit.page
    page.evaluate(WAIT_FOR_MATHJAX)
    problems = list(page_visit.problems)
    problems += [f"image not displayed: {src}" for src in page.evaluate(BROKEN_IMAGES)]
    problems += [f"maths not typeset: {text!r}" for text in page.evaluate(UNTYPESET_MATHS)]
    problems += [f"raw $...$ left in the text: {text!r}" for text in page.evaluate(RAW_DOLLAR_MATHS)]
    problems += [f"broken internal link: {link}" for link in missing_link_targets(site, base_url, page.evaluate(LINKS))]
    assert not problems, f"{path}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", LESSONS)
def test_lesson_screenshot(visit, path: str):
    page = visit(path).page
    page.evaluate(WAIT_FOR_MATHJAX)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{Path(path).stem}.png"
    page.screenshot(path=shot, full_page=True)
    assert page.locator("article img").count() > 0, f"{path} shows no figure"
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("query", "expected"), [("softmax", "book/02-attention.html"), ("rotary", "book/01-embeddings.html")]
)
def test_search_finds_the_lessons(visit, query: str, expected: str):
    page_visit = visit(f"search.html?q={query}")
    page = page_visit.page
    page.wait_for_function("() => /Search finished/.test(document.querySelector('#search-results')?.innerText)")
    results = page.eval_on_selector_all("#search-results ul.search li a", "links => links.map(a => a.href)")
    assert any(expected in url for url in results), f"searching {query!r} did not list {expected}: {results}"
    assert not page_visit.problems, "\n".join(page_visit.problems)


def check_quiz_answers(quiz) -> list[str]:
    """Choose a wrong answer, then the right one, of one ``{quiz}``; the problems seen."""
    problems = []
    wrong, right = quiz.locator(".quiz-answer:not(.quiz-correct)").first, quiz.locator(".quiz-answer.quiz-correct")
    question = quiz.locator(".quiz-question").inner_text()[:60]
    if wrong.locator(".quiz-why").is_visible() or right.locator(".quiz-why").is_visible():
        problems.append(f"{question!r}: an explanation shows before any answer is chosen")
    for answer, verdict, state in [(wrong, "Not quite.", "quiz-wrong"), (right, "Right.", "quiz-right")]:
        answer.locator(".quiz-choice").click()
        shown = answer.locator(".quiz-why")
        if state not in answer.get_attribute("class").split() or not shown.is_visible():
            problems.append(f"{question!r}: choosing {answer.locator('.quiz-choice').inner_text()!r} shows no {state}")
        elif not shown.inner_text().startswith(verdict) or len(shown.inner_text()) <= len(verdict) + 10:
            problems.append(f"{question!r}: the {state} answer says {shown.inner_text()!r}, not {verdict} and why")
    return problems


@pytest.mark.parametrize("path", LESSONS)
def test_lesson_quiz_answers_in_the_browser(visit, path: str):
    page_visit = visit(path)
    page = page_visit.page
    quizzes = page.locator("section#self-check-quiz div.quiz.quiz-ready")
    assert 4 <= quizzes.count() <= 6, f"{path}: its Self-check quiz shows {quizzes.count()} questions, not 4-6"
    problems = [problem for i in range(quizzes.count()) for problem in check_quiz_answers(quizzes.nth(i))]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    quizzes.first.screenshot(path=SCREENSHOTS / f"{Path(path).stem}-quiz.png")
    assert not problems + page_visit.problems, f"{path}:\n  " + "\n  ".join(problems + page_visit.problems)
