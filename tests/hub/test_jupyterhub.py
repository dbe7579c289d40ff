"""A class on a real JupyterHub: an instructor and three students, each a system user on this machine.

JupyterHub runs on 127.0.0.1 from ``deploy/jupyterhub_config.py`` (the deployment ``docs/jupyterhub.md``
describes), with JupyterHub's DummyAuthenticator and a shared password in place of PAM: a test's
authenticator, never a class's. Debian's Chromium, driven by playwright, does what a student does
in the browser: logs in, opens nbgrader's assignment list, fetches the lesson, submits it, fetches
the feedback and reads the verdicts on the feedback page; the instructor logs in and opens formgrader.
Two steps run as the user on the command line instead (``runuser -u NAME -- ...``), where typing
into the browser's editor would be brittle: the students' edits are written into their fetched
notebook, and the notebook is run (Run All: every cell, ``check()`` included) with nbconvert in the
student's own kernel; the instructor's ``tfcourse collect``, ``grade`` and ``feedback`` are commands.

Screenshots go to ``_build/screenshots/hub-*.png``. Skipped, with the reason, without root (the users
are made with ``useradd``), JupyterHub, configurable-http-proxy, Chromium or playwright.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.grading.course import Course
from tests.hub.class_machine import TEST_PASSWORD, ClassMachine, Hub, why_not_here
from tests.support.grading_course import gradebook_scores, released, solution_ids, solved
from tests.support.notebooks import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.hub]

LESSON = "02-attention"
CHROMIUM = Path(os.environ.get("TFCOURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "_build" / "screenshots"
SECONDS = 1000  # playwright counts milliseconds
# what each student hands in: every exercise solved, one solved, the notebook as fetched
SOLVED = {"tfhub-ada": "all", "tfhub-bo": {"softmax"}, "tfhub-cy": set()}


def why_no_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set TFCOURSE_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (bash scripts/setup.sh dev)"
    return None


@pytest.fixture(scope="module")
def machine():
    reason = why_not_here() or why_no_browser()
    if reason:
        pytest.skip(reason)
    machine = ClassMachine(Path(tempfile.mkdtemp(prefix="tfcourse-hub-")), "tfhub-teacher", tuple(SOLVED))
    try:
        machine.create()
        yield machine
    finally:
        machine.remove()
        shutil.rmtree(machine.base, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(machine):
    solutions = machine.base / "solutions"
    shutil.copytree(ROOT / "solutions" / LESSON, solutions / LESSON)
    for step in (("init", str(machine.course), "--solutions", str(solutions), "--exchange", str(machine.exchange)),
                 ("release", LESSON, "--course", str(machine.course))):
        result = machine.tfcourse(*step)
        assert result.returncode == 0, result.stderr
    hub = Hub.start(machine)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"hub-{name}.png"))


def log_in(browser, hub: Hub, user: str, shot: str | None = None):
    """A page of ``user``'s, logged in through the hub's login form (:func:`in_lab` waits for JupyterLab)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(120 * SECONDS)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", TEST_PASSWORD)
    if shot:
        screenshot(page, shot)
    page.click("#login_submit", no_wait_after=True)
    return page


def in_lab(page, user: str):
    page.wait_for_url(f"**/user/{user}/lab**", timeout=240 * SECONDS)  # the hub starts the server
    page.wait_for_selector(".lm-MenuBar-itemLabel:text('Nbgrader')")
    return page


def open_assignment_list(page):
    page.click(".lm-MenuBar-itemLabel:text('Nbgrader')")
    page.click(".lm-Menu-itemLabel:text('Assignment List')")
    page.wait_for_selector(f".list_item:has-text('{LESSON}')")


def student_edits(machine: ClassMachine, student: str) -> Path:
    """Write the student's answers into the fetched notebook, as the student's file."""
    fetched = machine.home(student) / LESSON / f"{LESSON}.ipynb"
    assert fetched.is_file(), f"{student} fetched nothing: {sorted(machine.home(student).iterdir())}"
    wanted = SOLVED[student]
    cells = solution_ids(machine.course) if wanted == "all" else wanted
    notebook = solved(machine.course, cells) if cells else released(machine.course)
    machine.write(student, f"{LESSON}/{LESSON}.ipynb", nbformat.writes(notebook))
    return fetched


def run_all(machine: ClassMachine, notebooks: dict[str, Path]) -> dict[str, nbformat.NotebookNode]:
    """Every cell of each student's notebook run in the student's kernel, as Run All does, all students at
    once; the notebooks run, by student."""
    with ThreadPoolExecutor(len(notebooks)) as pool:
        runs = {student: pool.submit(machine.run, student, "jupyter", "nbconvert", "--to", "notebook", "--execute",
                                     "--inplace", "--allow-errors", str(notebook), timeout=300)
                for student, notebook in notebooks.items()}
    for student, run in runs.items():
        assert run.result().returncode == 0, f"{student}: {run.result().stderr}"
    return {student: nbformat.read(notebook, as_version=4) for student, notebook in notebooks.items()}


def check_outputs(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Each check cell's printed report, by grade id."""
    return {cell.metadata.nbgrader["grade_id"]: "".join(o.get("text", "") for o in cell.outputs)
            for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")}


def points(course: Path, grade_id: str) -> float:
    return next(cell.metadata.nbgrader["points"] for cell in released(course).cells
                if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def feedback_page(machine: ClassMachine, student: str) -> str:
    """The feedback the student fetched, as a path below the student's home."""
    pages = sorted((machine.home(student) / LESSON / "feedback").glob(f"*/{LESSON}.html"))
    assert len(pages) == 1, pages
    return str(pages[0].relative_to(machine.home(student)))


def submitted_notebook_id(course: Path, student: str) -> str:
    with Gradebook(Course(course).db_url) as gradebook:
        return gradebook.find_submission_notebook(LESSON, LESSON, student).id


def typeset_offline(page, hub: Hub, url: str) -> None:
    """Open ``url`` with every request off the hub refused, and wait until MathJax has typeset its maths."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    outside: list[str] = []
    off_the_hub = re.compile(rf"^(?!{re.escape(hub.url)}|data:).*")
    page.route(off_the_hub, lambda route: (outside.append(route.request.url), route.abort()))
    page.goto(url)
    try:
        page.wait_for_function("window.MathJax && MathJax.loaded === true", timeout=60_000)
    except PlaywrightTimeout:
        scripts = page.eval_on_selector_all("script[src]", "scripts => scripts.map(s => s.src)")
        raise AssertionError(f"no maths typeset at {page.url}; scripts {scripts}; refused {outside}") from None
    assert page.locator(".MathJax_CHTML, .MathJax").count() > 0, "no maths typeset on the submission page"
    assert not outside, f"the page asked for {outside}"
    page.unroute(off_the_hub)


def test_a_class_fetches_submits_and_reads_its_feedback_on_jupyterhub(machine, hub, browser):
    students = {}
    for number, student in enumerate(SOLVED):
        page = students[student] = in_lab(log_in(browser, hub, student, shot="login" if number == 0 else None),
                                          student)
        open_assignment_list(page)
        page.click(f"#released_assignments_list .list_item:has-text('{LESSON}') button:text('Fetch')")
        page.wait_for_selector(f"#fetched_assignments_list .list_item:has-text('{LESSON}')")
        if number == 0:
            screenshot(page, "assignment-list")

    reports = {student: check_outputs(notebook)
               for student, notebook in run_all(machine, {s: student_edits(machine, s) for s in SOLVED}).items()}
    assert all("cases pass on cpu" in report for report in reports["tfhub-ada"].values())
    assert "cases pass on cpu" in reports["tfhub-bo"]["check_softmax"]
    assert "not implemented yet" in reports["tfhub-bo"]["check_attention_scores"]
    assert "not implemented yet" in reports["tfhub-cy"]["check_softmax"]

    for student, page in students.items():
        page.click(f"#fetched_assignments_list .list_item:has-text('{LESSON}') button:text('Submit')")
        page.wait_for_selector(f"#submitted_assignments_list .list_item:has-text('{LESSON}')")
    screenshot(page, "submitted")

    for step in (("collect", LESSON), ("grade", LESSON, "--device", "cpu", "--workers", "2"), ("feedback", LESSON)):
        result = machine.tfcourse(*step, "--course", str(machine.course), timeout=600)
        assert result.returncode == 0, f"tfcourse {step}: {result.stdout}\n{result.stderr}"
    assert gradebook_scores(machine.course, LESSON) == {
        "tfhub-ada": sum(points(machine.course, grade_id) for grade_id in reports["tfhub-ada"]), "tfhub-bo": points(machine.course, "check_softmax"), "tfhub-cy": 0}

    teacher = in_lab(log_in(browser, hub, machine.instructor), machine.instructor)
    teacher.goto(f"{hub.url}/user/{machine.instructor}/formgrader/gradebook/{LESSON}/{LESSON}")
    for student in SOLVED:
        teacher.wait_for_selector(f"a.name-shown:text('{student}')", state="attached")  # names hidden by default
    screenshot(teacher, "formgrader")
    typeset_offline(teacher, hub, f"{hub.url}/user/{machine.instructor}/formgrader/submissions/"
                                  f"{submitted_notebook_id(machine.course, 'tfhub-ada')}/")
    screenshot(teacher, "formgrader-submission")

    student, page = "tfhub-bo", students["tfhub-bo"]
    page.click(f"#submitted_assignments_list .list_item:has-text('{LESSON}') button:text('Fetch Feedback')")
    page.wait_for_selector(f"#submitted_assignments_list .list_item:has-text('{LESSON}') >> text=view feedback")
    screenshot(page, "feedback-fetched")
    page.goto(f"{hub.url}/user/{student}/files/{feedback_page(machine, student)}")
    page.wait_for_load_state("networkidle")
    screenshot(page, "feedback")
    shown = " ".join(page.inner_text("body").split())
    score, maximum = points(machine.course, "check_softmax"), sum(points(machine.course, g) for g in reports[student])
    # the graded verdicts (the hidden cases too, so more cases than check() ran), as check() words them
    for verdict in (f"{LESSON} (Score: {score:.1f} / {maximum:.1f})", "check(softmax) softmax: all",
                    "check(attention_scores) attention_scores: 0 of", "not implemented yet"):
        assert verdict in shown, f"{verdict!r} is not on {page.url}: {shown[:2000]}"
