"""grader.engine.autograde: the whole pipeline, on the tiny course and on the real assignments."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import real_assignments, tiny_release, tiny_submission, write_nb

from grader.engine.autograde import AutogradeError, autograde, discover

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

TINY_STUDENTS = ("alice", "bob", "carl", "dave", "erin", "frank", "gina", "hank")


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _by_student(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["student"]: r for r in result["results"]}


def _scores(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {r["student"]: {t["grade_id"]: t["score"] for t in r["tests"]}
            for r in result["results"]}


@pytest.fixture(scope="module")
def tiny_folder(tiny_course: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of loose tiny notebooks, one per student, good and bad."""
    folder = tmp_path_factory.mktemp("tiny_subs")
    write_nb(tiny_submission(tiny_course), folder / "alice.ipynb")
    write_nb(tiny_submission(tiny_course, add="return a - b", mul="return a + b"),
             folder / "bob.ipynb")
    write_nb(tiny_release(tiny_course), folder / "carl.ipynb")
    nb = tiny_submission(tiny_course)
    nb.cells = [c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") != "mul_tests"]
    write_nb(nb, folder / "dave.ipynb")  # deleted a test cell
    nb = tiny_submission(tiny_course)
    dup = nbformat.from_dict(json.loads(json.dumps(nb.cells[3])))
    dup["id"] = "copied-by-erin"
    nb.cells.insert(4, dup)
    write_nb(nb, folder / "erin.ipynb")  # duplicated grade_id add_tests
    nb = tiny_submission(tiny_course)
    nb.cells.insert(4, nbformat.v4.new_code_cell("while True:\n    pass"))
    write_nb(nb, folder / "frank.ipynb")  # infinite loop after add_tests
    nb = tiny_submission(tiny_course)
    nb.cells.insert(4, nbformat.v4.new_code_cell("import os\nos.kill(os.getpid(), 9)"))
    write_nb(nb, folder / "gina.ipynb")  # crashes the worker after add_tests
    (folder / "hank.ipynb").write_text('{"cells": [')  # invalid JSON
    return folder


@pytest.fixture(scope="module")
def tiny_fast(tiny_course: Path, tiny_folder: Path, tmp_path_factory) -> dict[str, Any]:
    import sys

    sys.path.insert(0, str(tiny_course / "source" / "tiny"))
    import tinycheck
    from conftest import StubWorkerPool

    before = _hashes(tiny_folder)
    result = autograde(
        [tiny_folder], "tiny", course=tiny_course, engine="fast",
        timeout=3.0, judge=tinycheck.judge,
        pool_factory=lambda jobs, sandbox, timeout: StubWorkerPool(
            tiny_course / "source" / "tiny", timeout or 10.0),
    )
    result["_unchanged"] = _hashes(tiny_folder) == before
    return result


def test_tiny_result_shape(tiny_fast: dict[str, Any]) -> None:
    assert tiny_fast["assignment"] == "tiny"
    assert sorted(r["student"] for r in tiny_fast["results"]) == sorted(TINY_STUDENTS)
    for r in tiny_fast["results"]:
        assert {"student", "assignment", "score", "max_score", "tests", "error"} <= set(r)
        assert r["max_score"] == 3.0 and r["manual_max_score"] == 1.0
        for t in r["tests"]:
            assert set(t) == {"notebook", "grade_id", "score", "max_score", "passed",
                              "message", "hint", "needs_manual_grade"}
            assert t["notebook"] == "tiny"
            assert "notebooks" not in r  # a one-notebook assignment: the entry as before
            assert (t["message"] == "") == t["passed"]


def test_tiny_honest_scores(tiny_fast: dict[str, Any]) -> None:
    s = _by_student(tiny_fast)
    assert s["alice"]["score"] == 3.0 and s["alice"]["error"] is None
    assert s["carl"]["score"] == 0.0 and s["carl"]["error"] is None
    bob = {t["grade_id"]: t for t in s["bob"]["tests"]}
    assert bob["add_tests"]["message"] == "add(1, 1) should be 2"  # the visible assert
    assert bob["mul_tests"]["message"].startswith("mul: expected [2, 12, 0]")  # the verdict
    assert bob["mul_tests"]["hint"] == "mul_wrong"


def test_tiny_bad_submissions_get_error_entries(tiny_fast: dict[str, Any]) -> None:
    s = _by_student(tiny_fast)
    assert "mul_tests" in s["dave"]["error"] and s["dave"]["graded"]
    assert s["dave"]["score"] == 3.0  # the restored test cell ran and passed
    assert "appears 2 times" in s["erin"]["error"] and s["erin"]["score"] == 3.0
    for name in ("frank", "gina"):
        entry = s[name]
        assert entry["error"] and entry["graded"], name
        tests = {t["grade_id"]: t for t in entry["tests"]}
        assert tests["add_tests"]["passed"], name  # ran before the problem
        assert not tests["mul_tests"]["passed"] and "did not run" in tests["mul_tests"][
            "message"], name
    assert "longer than" in s["frank"]["error"]
    assert "crashed" in s["gina"]["error"]
    assert not s["hank"]["graded"] and "not valid JSON" in s["hank"]["error"]


def test_tiny_originals_unchanged(tiny_fast: dict[str, Any]) -> None:
    assert tiny_fast["_unchanged"]


def test_tiny_stock_engine_agrees(tiny_course: Path, tiny_folder: Path, tiny_fast, tmp_path):
    honest = tmp_path / "honest"
    honest.mkdir()
    for name in ("alice", "bob", "carl", "dave", "erin"):
        shutil.copy(tiny_folder / f"{name}.ipynb", honest)
    stock = autograde([honest], "tiny", course=tiny_course, engine="nbgrader")
    fast = {k: v for k, v in _scores(tiny_fast).items() if k in _scores(stock)}
    assert _scores(stock) == fast
    assert {r["student"]: r["error"] for r in stock["results"]} == {
        r["student"]: r["error"] for r in tiny_fast["results"] if r["student"] in fast}


def test_discover_layouts(tmp_path: Path, tiny_course: Path) -> None:
    nb = tiny_submission(tiny_course)
    write_nb(nb, tmp_path / "submitted" / "zoe" / "tiny" / "tiny.ipynb")
    write_nb(nb, tmp_path / "submitted" / "yan" / "tiny" / "tiny.ipynb")
    (tmp_path / "submitted" / "yan" / "tiny" / "timestamp.txt").write_text("2026-01-01")
    subs = discover([tmp_path / "submitted"], "tiny", "tiny")
    assert [s.student for s in subs] == ["yan", "zoe"]
    assert discover([tmp_path / "submitted" / "zoe"], "tiny", "tiny")[0].student == "zoe"
    one = discover([tmp_path / "submitted" / "zoe" / "tiny" / "tiny.ipynb"], "tiny", "tiny")
    assert one[0].student == "zoe" and one[0].folder is not None
    loose = write_nb(nb, tmp_path / "ci" / "tiny.ipynb")
    assert discover([loose], "tiny", "tiny")[0].student == "ci"
    assert discover([loose], "tiny", "tiny", student="ann")[0].student == "ann"
    twice = discover([loose, loose], "tiny", "tiny")
    assert [s.student for s in twice] == ["ci", "ci-2"]
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "nope"], "tiny", "tiny")


def test_unknown_assignment(tiny_course: Path, tmp_path: Path) -> None:
    with pytest.raises(AutogradeError, match="no source notebook"):
        autograde([tmp_path], "nope", course=tiny_course)


def test_in_course_submissions_fill_the_course_gradebook(tiny_course: Path, tmp_path: Path,
                                                        tiny_pool_factory, tiny_judge) -> None:
    course = tmp_path / "course"
    shutil.copytree(tiny_course, course)
    write_nb(tiny_submission(tiny_course), course / "submitted" / "ivy" / "tiny" / "tiny.ipynb")
    release = _hashes(course / "release")
    result = autograde([course / "submitted"], "tiny", course=course,
                       pool_factory=tiny_pool_factory, judge=tiny_judge)
    assert result["results"][0]["score"] == 3.0
    assert _hashes(course / "release") == release  # the committed release is left alone
    assert (course / "autograded" / "ivy" / "tiny" / "tiny.ipynb").exists()
    assert (course / "gradebook.db").exists()
    from grader.engine.gradebook import export_grades

    csv = export_grades(tmp_path / "grades.csv", course=str(course))
    assert "ivy" in csv.read_text()


# ---------------------------------------------------------------------------------------------
# the real assignments: fast and stock engines agree on the demo class


@pytest.fixture(scope="module")
def engines(demo_course: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    extra = demo_course.parent / "extra"
    ada = nbformat.read(str(demo_course / "submitted" / "s01-ada" / "channels_pooling" /
                            "channels_pooling.ipynb"), as_version=4)
    # passes the visible asserts, fails the hidden forbidden-API check
    sneaky = nbformat.from_dict(ada)
    for cell in sneaky.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "corr2d_solution":
            cell.source = ("import torch.nn.functional as F\n\ndef corr2d(X, K):\n"
                           "    return F.conv2d(X[None, None], K[None, None])[0, 0]")
    write_nb(sneaky, extra / "sneaky" / "channels_pooling" / "channels_pooling.ipynb")
    # right, and compares itself with torch in a scratch cell (allowed)
    honest = nbformat.from_dict(ada)
    pos = [i for i, c in enumerate(honest.cells)
           if c.metadata.get("nbgrader", {}).get("grade_id") == "corr2d_tests"][0]
    honest.cells.insert(pos, nbformat.v4.new_code_cell(
        "import torch\nimport torch.nn.functional as F\nX, K = torch.rand(4, 4), "
        "torch.rand(2, 2)\nprint(torch.allclose(corr2d(X, K), "
        "F.conv2d(X[None, None], K[None, None])[0, 0]))"))
    write_nb(honest, extra / "scratch" / "channels_pooling" / "channels_pooling.ipynb")
    for assignment in real_assignments():
        subs = [demo_course / "submitted" / s / assignment
                for s in ("s01-ada", "s02-ben", "s03-cy")]
        if assignment == "channels_pooling":
            subs += [extra / "sneaky", extra / "scratch"]
        out[assignment] = {
            # seed 0: the cases stock's in-kernel checks draw, so the messages match too
            "fast": autograde(subs, assignment, course=demo_course, engine="fast", seed=0,
                              workdir=demo_course.parent / f"fast-{assignment}"),
            "nbgrader": autograde(subs, assignment, course=demo_course, engine="nbgrader",
                                  workdir=demo_course.parent / f"stock-{assignment}"),
        }
    return out


@pytest.mark.parametrize("assignment", real_assignments())
def test_engines_agree_on_demo_class(engines, assignment: str) -> None:
    fast, stock = engines[assignment]["fast"], engines[assignment]["nbgrader"]
    assert _scores(fast) == _scores(stock)
    by = _by_student(fast)
    assert by["s01-ada"]["score"] == by["s01-ada"]["max_score"] > 0
    assert by["s03-cy"]["score"] == 0
    assert by["s02-ben"]["score"] < by["s02-ben"]["max_score"]
    if assignment == "channels_pooling":
        assert by["scratch"]["score"] == by["scratch"]["max_score"]
        corr2d = {t["grade_id"]: t for t in by["sneaky"]["tests"]}["corr2d_tests"]
        assert not corr2d["passed"] and "conv2d" in corr2d["message"]
        assert corr2d["hint"] == "forbidden_api"
    for r in fast["results"]:
        assert r["error"] is None and r["graded"]
    stock_msgs = {(r["student"], t["grade_id"]): t["message"]
                  for r in stock["results"] for t in r["tests"]}
    for r in fast["results"]:
        for t in r["tests"]:
            if t["hint"] == "forbidden_api":
                continue  # fast scans the whole notebook: its line numbers count from cell 1
            assert t["message"] == stock_msgs[(r["student"], t["grade_id"])]


def test_workdir_keeps_the_grading_course(tiny_course: Path, tmp_path: Path,
                                          tiny_pool_factory, tiny_judge) -> None:
    nb = write_nb(tiny_submission(tiny_course, mul="return 0"), tmp_path / "in" / "jo.ipynb")
    work = tmp_path / "work"
    result = autograde([nb], "tiny", course=tiny_course, workdir=work,
                       pool_factory=tiny_pool_factory, judge=tiny_judge)
    assert result["results"][0]["score"] == 2.0
    graded = nbformat.read(str(work / "autograded" / "jo" / "tiny" / "tiny.ipynb"), 4)
    errors = [o for c in graded.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert [(e.ename, e.evalue.split(":")[0]) for e in errors] == [("AssertionError", "mul")]
    assert (work / "gradebook.db").exists()
    assert not (tiny_course / "autograded").exists()


# ---------------------------------------------------------------------------------------------
# apply_run: how worker results and verdicts become cell outputs


def _apply(records, error=None, ran=True):
    from collections import namedtuple

    from conftest import StubCellResult, StubRunResult

    from grader.engine.autograde import apply_run
    from grader.engine.precheck import GradedCell, SourceSpec

    Verdict = namedtuple("Verdict", "passed message hint")
    cell = nbformat.v4.new_code_cell("check_t(f)\nassert False, 'visible'")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "t_tests", "points": 1, "schema_version": 3}
    nb = nbformat.v4.new_notebook(cells=[cell])
    spec = SourceSpec("a", "a", Path("a.ipynb"), [GradedCell(
        "t_tests", 0, "code", True, False, True, False, 1.0, cell.source,
        dict(cell.metadata["nbgrader"]), ["t"])])
    outputs = [{"output_type": "error", **error}] if error else []
    cells = [StubCellResult(0, outputs, error, records)] if ran else []
    run = StubRunResult(cells, None if ran else "the notebook took too long", 0.1)

    def judge(name, record, source=None):
        return Verdict(record["ok"], "" if record["ok"] else f"{name} is wrong", "h1")

    hints = apply_run(nb, run, spec, judge)
    return [(o["ename"], o["evalue"]) for o in nb.cells[0].outputs
            if o["output_type"] == "error"], hints


def test_apply_run_first_failed_verdict_wins_over_a_later_error() -> None:
    visible = {"ename": "AssertionError", "evalue": "visible", "traceback": []}
    assert _apply([("t", {"ok": False})], visible) == (
        [("AssertionError", "t is wrong")], {"t_tests": "h1"})
    assert _apply([("check_t", {"ok": True})], visible) == ([("AssertionError", "visible")], {})
    assert _apply([("t", {"ok": True})]) == ([], {})
    assert _apply([])[0] == [("AssertionError",
                              "the hidden test did not run: check_t reported no result")]
    assert _apply([], ran=False)[0] == [
        ("CellNotRun", "this cell did not run: the notebook took too long")]


@pytest.mark.parametrize("assignment", ["channels_pooling", "conv_basics"])
def test_throwaway_course_scores_like_nbgrader_recording(demo_course: Path, tmp_path: Path,
                                                        assignment: str) -> None:
    """Loose notebooks graded in a throw-away course skip nbgrader's recording (the lone-CI
    case); with --workdir they go through it. Both must give the same entries."""
    loose = tmp_path / "loose"
    loose.mkdir()
    for student in ("s01-ada", "s02-ben", "s03-cy"):
        shutil.copy2(demo_course / "submitted" / student / assignment / f"{assignment}.ipynb",
                     loose / f"{student}.ipynb")
    direct = autograde([loose], assignment, course=demo_course, seed=0)
    recorded = autograde([loose], assignment, course=demo_course, seed=0,
                         workdir=tmp_path / "work")
    keys = ("student", "score", "max_score", "graded", "error", "tests", "manual_max_score")
    assert ([{k: r[k] for k in keys} for r in direct["results"]]
            == [{k: r[k] for k in keys} for r in recorded["results"]])
    assert {r["student"]: r["score"] for r in direct["results"]}["s01-ada"] > 0
