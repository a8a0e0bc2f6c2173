"""Grade on submit seen by a student in a real JupyterLab, driven by headless chromium.

The student's own Jupyter server (own HOME, the exchange in its nbgrader config) shows the
Assignment List: Fetch, then (the answers written into the fetched notebook; typing in the
notebook is test_browser.py's business) Submit. The grading service, running beside it on the
instructor's course, grades the submission; the Assignment List's Fetch Feedback then brings
the feedback, which holds the known mistake's hint, and "(view feedback)" appears.
"""

from __future__ import annotations

import getpass
import re
import time
from pathlib import Path
from typing import Any

import pytest
from exchangekit import ASSIGNMENT, answers, fill, instructor_course, wait_for
from test_browser import _jupyter_env, _session, _shot, browser, jupyter_lab, page  # noqa: F401
from test_serve import WAIT_S, _hint, running, shared_pool  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_student_submits_in_the_assignment_list_and_fetches_feedback(
        page: Any, tmp_path: Path, shared_pool: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    course, exchange = instructor_course(tmp_path, generate=False)
    home, work = tmp_path / "home-student", tmp_path / "student"
    work.mkdir(parents=True)
    _jupyter_env(home)  # creates the Jupyter folders under home
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n", encoding="utf-8")
    student = getpass.getuser()  # the Assignment List submits as the user running Jupyter

    with running(course, exchange, shared_pool) as service, \
            jupyter_lab(work, home) as server, _session(page, "serve"):
        page.goto(server.page_url("/lab"))
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Assignment List$")).click()
        released = page.locator("#released_assignments_list")
        released.get_by_text(ASSIGNMENT).wait_for()
        released.get_by_role("button", name="Fetch").click()
        fetched = page.locator("#fetched_assignments_list")
        fetched.get_by_text(ASSIGNMENT).first.wait_for()
        notebook = work / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert notebook.is_file(), "Fetch wrote no notebook"
        assert fill(notebook, course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                    answers(wrong=True)) > 0
        fetched.get_by_role("button", name="Submit").click()
        submitted = page.locator("#submitted_assignments_list")
        submitted.get_by_text(ASSIGNMENT).first.wait_for()
        _shot(page, "serve-1-submitted")

        row = wait_for(lambda: next(iter(service.journal.in_state("released")), None),
                       WAIT_S, "the service to release the feedback")
        assert row.student == student and row.error is None, row
        landed_to_released = row.released - row.landed
        submitted.get_by_role("button", name="Fetch Feedback").click()
        expect(submitted.get_by_text("(view feedback)")).to_be_visible(timeout=60_000)
        _shot(page, "serve-2-feedback-fetched")
        seen = time.time() - row.landed
    pages = sorted((work / ASSIGNMENT / "feedback").glob("*/*.html"))
    assert len(pages) == 1, pages
    text = pages[0].read_text(encoding="utf-8")
    import html

    assert _hint() in text or html.escape(_hint()) in text, "no hint in the feedback"
    assert "BEGIN HIDDEN TESTS" not in text
    print(f"landing to released {landed_to_released:.1f} s; to fetched in the browser "
          f"{seen:.1f} s")
