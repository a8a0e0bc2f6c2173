"""End to end through the real nbgrader exchange, on temporary folders only.

Instructor (a copy of the course in tmp, exchange root in tmp, world-writable):
    nbgrader generate_assignment -> nbgrader release_assignment
Student (own HOME and working folder, no course config):
    nbgrader fetch_assignment -> answers filled in -> nbgrader submit
Instructor again:
    nbgrader collect -> python -m grader autograde submitted/ ... -> nbgrader generate_feedback
    -> nbgrader export
and the exported CSV holds the expected score, the feedback HTML exists and shows no hidden
test source. The correct student's answers come from grader.registry.solution_source, a
wrong one's from the exercise's known mistakes.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from exchangekit import ASSIGNMENT
from exchangekit import clean_env as _env
from exchangekit import run as _run
from exchangekit import student_round as _student_round

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.timeout(900), pytest.mark.e2e]


def _missing() -> str | None:
    """What this test still needs from the rest of the project, or None."""
    if not (ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file():
        return f"source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb does not exist yet"
    for module in ("grader.__main__", "grader.checks", "grader.registry"):
        if importlib.util.find_spec(module) is None:
            return f"{module} does not exist yet"
    return None


def _course_id() -> str:
    text = (ROOT / "nbgrader_config.py").read_text(encoding="utf-8")
    match = re.search(r"course_id\s*=\s*['\"]([^'\"]+)['\"]", text)
    assert match, "nbgrader_config.py sets no CourseDirectory.course_id"
    return match[1]


def test_exchange_round_trip(tmp_path: Path) -> None:
    reason = _missing()
    if reason:
        pytest.fail(f"the course or the grader is incomplete: {reason}")
    course_id = _course_id()

    # the instructor's course, copied
    course = tmp_path / "course"
    course.mkdir()
    shutil.copytree(ROOT / "source", course / "source")
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    instructor = _env(tmp_path / "home-instructor", CONVGRADE_EXCHANGE=str(exchange))
    (tmp_path / "home-instructor").mkdir()

    _run(["nbgrader", "generate_assignment", ASSIGNMENT], course, instructor)
    _run(["nbgrader", "release_assignment", ASSIGNMENT], course, instructor)
    assert (exchange / course_id / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()

    _student_round("ada", False, exchange, course, tmp_path, course_id)
    _student_round("ben", True, exchange, course, tmp_path, course_id)

    _run(["nbgrader", "collect", ASSIGNMENT, "--CollectApp.check_owner=False"], course, instructor)
    for student in ("ada", "ben"):
        assert (course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()

    results_json = tmp_path / "results.json"
    _run(
        [sys.executable, "-m", "grader", "autograde", "submitted/", "--assignment", ASSIGNMENT,
         "--json", str(results_json)],
        course, instructor, ok=(0, 1),
    )  # fmt: skip
    results: dict[str, Any] = json.loads(results_json.read_text(encoding="utf-8"))
    subs = {s["student"]: s for s in results["results"]}
    assert set(subs) == {"ada", "ben"}
    ada, ben = subs["ada"], subs["ben"]
    assert ada["error"] is None and ben["error"] is None
    assert ada["max_score"] > 0 and ada["score"] == ada["max_score"], ada
    assert ben["score"] < ben["max_score"], ben
    wrong_cells = [t for t in ben["tests"] if not t["passed"]]
    assert wrong_cells and all(t["message"] for t in wrong_cells)

    _run(["nbgrader", "generate_feedback", ASSIGNMENT], course, instructor)
    _run(["nbgrader", "export", "--to", str(tmp_path / "grades.csv")], course, instructor)

    with (tmp_path / "grades.csv").open(newline="", encoding="utf-8") as handle:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(handle)}
    for student, sub in subs.items():
        row = rows[(ASSIGNMENT, student)]
        assert float(row["raw_score"]) == pytest.approx(sub["score"]), row
        assert float(row["max_score"]) == pytest.approx(sub["max_score"]), row

    leaks = []
    for student in ("ada", "ben"):
        pages = list((course / "feedback" / student / ASSIGNMENT).glob("*.html"))
        assert pages, f"no feedback HTML for {student}"
        html = pages[0].read_text(encoding="utf-8")
        if "BEGIN HIDDEN TESTS" in html:
            leaks.append(f"{student}'s feedback shows the hidden tests")
        if "check_" in html:
            leaks.append(f"{student}'s feedback names a hidden check")
    # stock nbgrader 0.9.6 would copy the restored hidden tests into the feedback;
    # nbgrader_config.py adds a preprocessor to GenerateFeedback that clears them
    assert not leaks, "; ".join(leaks)
