"""The engine on a plain nbgrader course (tests/fixtures/plaincourse, course101 style).

``ps1`` has two notebooks (``problem1.ipynb``, ``problem2.ipynb``), ``ps2`` one; the test
cells are plain ``assert`` cells, two of them give partial credit (a number as the cell's last
value), ``problem2`` has a manual answer, and the course uses neither torch nor ``grader``
checks. Its release is made with ``nbgrader generate_assignment``; the submissions are graded
through the command line (``python -m grader autograde``, ``export``, ``grader.engine.classreport``)
with both engines, which must give the same score to every (student, notebook, grade_id).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import REPO, VENV_BIN, run_nbgrader, write_nb

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

FIXTURE = REPO / "tests" / "fixtures" / "plaincourse"

RIGHT = {
    "squares": "def squares(n):\n    if n < 1:\n        raise ValueError(n)\n"
               "    return [i * i for i in range(1, n + 1)]",
    "sum_of_squares": "def sum_of_squares(n):\n    return sum(squares(n))",
    "word_count": "def word_count(text):\n    from collections import Counter\n"
                  "    return dict(Counter(text.split()))",
    "dict_answer": "Looking a word up is fast.",
    "factorial": "import math\n\ndef factorial(n):\n    return math.factorial(n)",
}
PARTLY = {
    "squares": "def squares(n):\n    return [i * i for i in range(1, n + 1)]",  # no ValueError
    "sum_of_squares": "def sum_of_squares(n):\n    return n * n * (n + 1) // 2 - n + 1",
    "word_count": RIGHT["word_count"],
    "factorial": "def factorial(n):\n    out = 1\n    for k in range(2, n + 1):\n"
                 "        out = out * k % 2 ** 32\n    return out",  # wrong from 13 on
}
WRONG = {
    "squares": "def squares(n):\n    return list(range(n))",
    "sum_of_squares": "def sum_of_squares(n):\n    return 0",
    "word_count": "def word_count(text):\n    return {}",
    "factorial": "def factorial(n):\n    return n",
}

#: what stock nbgrader gives (partial credit: 2 of 4 sums right is 1 of 2 points; 2 of 3
#: large factorials right is 2 of 3 points)
EXPECTED_PS1 = {
    "ann": {("problem1", "correct_squares"): 1.0, ("problem1", "squares_invalid_input"): 1.0,
            ("problem1", "correct_sum_of_squares"): 2.0,
            ("problem2", "correct_word_count"): 2.0},
    "ben": {("problem1", "correct_squares"): 1.0, ("problem1", "squares_invalid_input"): 0.0,
            ("problem1", "correct_sum_of_squares"): 1.0,
            ("problem2", "correct_word_count"): 2.0},
    "cat": {("problem1", "correct_squares"): 0.0, ("problem1", "squares_invalid_input"): 0.0,
            ("problem1", "correct_sum_of_squares"): 0.0,
            ("problem2", "correct_word_count"): 0.0},
    "dan": {("problem1", "correct_squares"): 1.0, ("problem1", "squares_invalid_input"): 1.0,
            ("problem1", "correct_sum_of_squares"): 2.0,
            ("problem2", "correct_word_count"): 0.0},  # problem2.ipynb not submitted
    "eve": {("problem1", "correct_squares"): 0.0, ("problem1", "squares_invalid_input"): 0.0,
            ("problem1", "correct_sum_of_squares"): 0.0,
            ("problem2", "correct_word_count"): 0.0},  # raises; problem2 is not a notebook
}
EXPECTED_PS2 = {
    "ann": {("problem1", "correct_factorial"): 1.0, ("problem1", "factorial_large"): 3.0},
    "ben": {("problem1", "correct_factorial"): 1.0, ("problem1", "factorial_large"): 2.0},
    "cat": {("problem1", "correct_factorial"): 0.0, ("problem1", "factorial_large"): 0.0},
}


def _answered(release: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(str(release), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain course with its release (nbgrader generate_assignment) and submissions."""
    root = tmp_path_factory.mktemp("plain") / "plaincourse"
    shutil.copytree(FIXTURE, root)
    for assignment in ("ps1", "ps2"):
        run_nbgrader(root, "generate_assignment", assignment, "--force")
    (root / "gradebook.db").unlink(missing_ok=True)
    release = root / "release"
    submitted = root / "submitted"
    for student, answers in (("ann", RIGHT), ("ben", PARTLY), ("cat", WRONG)):
        for name in ("problem1", "problem2"):
            write_nb(_answered(release / "ps1" / f"{name}.ipynb", answers),
                     submitted / student / "ps1" / f"{name}.ipynb")
        write_nb(_answered(release / "ps2" / "problem1.ipynb", answers),
                 submitted / student / "ps2" / "problem1.ipynb")
    write_nb(_answered(release / "ps1" / "problem1.ipynb", RIGHT),
             submitted / "dan" / "ps1" / "problem1.ipynb")  # forgot problem2
    broken = _answered(release / "ps1" / "problem1.ipynb", RIGHT)
    broken.cells.insert(1, nbformat.v4.new_code_cell("squares = None\n1 / 0"))
    broken.cells.insert(3, nbformat.v4.new_code_cell("del squares"))
    write_nb(broken, submitted / "eve" / "ps1" / "problem1.ipynb")
    (submitted / "eve" / "ps1" / "problem2.ipynb").write_text('{"cells": [')
    return root


def _grader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m grader ARGS`` in the course folder, as an instructor runs it."""
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=str(REPO))
    env.pop("CONVGRADE_DB_URL", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)


def _autograde(course: Path, assignment: str, engine: str, out: Path,
               *paths: str) -> dict[str, Any]:
    proc = _grader(course, "grader", "autograde", *(paths or ("submitted",)),
                   "--assignment", assignment, "--engine", engine,
                   "--json", str(out / "result.json"), "--junit", str(out / "junit.xml"),
                   "--markdown", str(out / "summary.md"),
                   "--classroom", str(out / "classroom.json"))
    assert proc.returncode in (0, 1), (
        f"python -m grader autograde {assignment} --engine {engine} exited "
        f"{proc.returncode}, expected 0 (all graded):\n{proc.stdout}\n{proc.stderr}")
    return json.loads((out / "result.json").read_text())


def _scores(result: dict[str, Any]) -> dict[str, dict[tuple[str, str], float]]:
    return {r["student"]: {(t["notebook"], t["grade_id"]): t["score"] for t in r["tests"]}
            for r in result["results"]}


@pytest.fixture(scope="module")
def runs(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """ps1 and ps2 graded by each engine; ``fast-direct`` grades a copy of ps1's submissions
    outside the course (a throw-away course, scored without a gradebook)."""
    out: dict[str, dict[str, Any]] = {}
    outside = tmp_path_factory.mktemp("outside") / "submitted"
    shutil.copytree(plain / "submitted", outside)
    for name, assignment, engine, paths in (
            ("fast-direct", "ps1", "fast", (str(outside),)),
            ("nbgrader-ps2", "ps2", "nbgrader", ()),
            ("fast-ps2", "ps2", "fast", ()),
            ("nbgrader", "ps1", "nbgrader", ()),
            ("fast", "ps1", "fast", ())):  # last: the course's gradebook holds the fast run
        folder = tmp_path_factory.mktemp(name)
        out[name] = _autograde(plain, assignment, engine, folder, *paths)
        out[name]["_out"] = str(folder)
    return out


@pytest.mark.parametrize("run", ["fast", "fast-direct", "nbgrader"])
def test_ps1_scores_per_notebook(runs: dict[str, dict[str, Any]], run: str) -> None:
    got = _scores(runs[run])
    assert got == EXPECTED_PS1, (
        f"the {run} run scored ps1 per (notebook, grade_id) as {got}, expected stock "
        f"nbgrader's {EXPECTED_PS1}; hint: compare the autograded notebooks' outputs")


def test_both_engines_agree(runs: dict[str, dict[str, Any]]) -> None:
    for a, b in (("fast", "nbgrader"), ("fast-direct", "nbgrader"), ("fast-ps2", "nbgrader-ps2")):
        assert _scores(runs[a]) == _scores(runs[b]), (
            f"{a} and {b} disagree: {_scores(runs[a])} vs {_scores(runs[b])}")
    assert _scores(runs["fast-ps2"]) == EXPECTED_PS2


def test_ps1_entries_cover_both_notebooks(runs: dict[str, dict[str, Any]]) -> None:
    for run in ("fast", "fast-direct", "nbgrader"):
        by = {r["student"]: r for r in runs[run]["results"]}
        assert sorted(by) == sorted(EXPECTED_PS1), f"{run}: one entry per student expected"
        for student, entry in by.items():
            assert [n["notebook"] for n in entry["notebooks"]] == ["problem1", "problem2"]
            assert entry["max_score"] == 6.0 and entry["manual_max_score"] == 1.0, entry
            assert entry["score"] == sum(EXPECTED_PS1[student].values())
            assert entry["graded"] is True, f"{run} {student}: {entry['error']}"
        assert by["ann"]["error"] is None and by["ben"]["error"] is None
        dan = by["dan"]
        assert "problem2.ipynb" in (dan["error"] or "") and "no such file" in dan["error"]
        assert [n["graded"] for n in dan["notebooks"]] == [True, False]
        missed = [t for t in dan["tests"] if t["notebook"] == "problem2"]
        assert missed and all(not t["passed"] and t["message"] for t in missed)
        eve = by["eve"]
        assert "problem2.ipynb" in (eve["error"] or "") and "JSON" in eve["error"]
        failed = {t["grade_id"]: t["message"] for t in eve["tests"]
                  if t["notebook"] == "problem1"}
        assert "NameError" in failed["correct_squares"], failed


def test_ps2_one_notebook_entry_as_before(runs: dict[str, dict[str, Any]]) -> None:
    for entry in runs["fast-ps2"]["results"]:
        assert "notebooks" not in entry  # a one-notebook assignment keeps its entry format
        assert entry["notebook"].endswith("/ps2/problem1.ipynb")
        assert {t["notebook"] for t in entry["tests"]} == {"problem1"}
        assert entry["max_score"] == 4.0


def test_reports_name_tests_by_notebook(runs: dict[str, dict[str, Any]]) -> None:
    out = Path(runs["fast"]["_out"])
    junit = (out / "junit.xml").read_text()
    assert 'name="problem1/correct_squares"' in junit
    assert 'name="problem2/correct_word_count"' in junit
    summary = (out / "summary.md").read_text()
    assert "problem2/correct_word_count" in summary and "dan" in summary
    classroom = json.loads((out / "classroom.json").read_text())
    names = {t["name"] for t in classroom["tests"]}
    assert "ann: problem1/correct_sum_of_squares" in names
    assert "dan: problem2/correct_word_count" in names
    ps2 = Path(runs["fast-ps2"]["_out"])
    assert 'name="correct_factorial"' in (ps2 / "junit.xml").read_text()  # no prefix


def test_export_and_class_report(plain: Path, runs: dict[str, dict[str, Any]],
                                 tmp_path: Path) -> None:
    proc = _grader(plain, "grader", "export", str(tmp_path / "grades.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    ps1 = {r["student_id"]: float(r["score"]) for r in rows if r["assignment"] == "ps1"}
    want = {s: sum(v.values()) for s, v in EXPECTED_PS1.items()}
    assert ps1 == want, f"export gave {ps1} for ps1 (both notebooks), expected {want}"
    assert {float(r["max_score"]) for r in rows if r["assignment"] == "ps1"} == {7.0}
    ps2 = {r["student_id"]: float(r["score"]) for r in rows if r["assignment"] == "ps2"}
    want = {s: sum(EXPECTED_PS2[s].values()) if s in EXPECTED_PS2 else 0.0 for s in ps2}
    assert ps2 == want and set(EXPECTED_PS2) <= set(ps2), f"export gave {ps2} for ps2"

    out = Path(runs["fast"]["_out"])
    proc = _grader(plain, "grader.engine.classreport", str(out / "result.json"),
                   str(Path(runs["fast-ps2"]["_out"]) / "result.json"),
                   "--out", str(tmp_path / "class"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "class" / "class_report.json").read_text())
    by = {a["assignment"]: a for a in report["assignments"]}
    cells = {e["grade_id"]: e for e in by["ps1"]["exercises"]}
    assert set(cells) == {f"{nb}/{gid}" for nb, gid in EXPECTED_PS1["ann"]}
    assert cells["problem2/correct_word_count"]["passed"] == 2  # ann and ben
    assert {e["grade_id"] for e in by["ps2"]["exercises"]} == {"correct_factorial",
                                                               "factorial_large"}


def test_course_without_torch_preloads_nothing() -> None:
    from grader.engine.execute.pool import CellJob, WorkerPool
    from grader.engine.settings import declared_preload

    assert declared_preload(FIXTURE) == []
    assert declared_preload(REPO) == ["numpy", "torch"]
    probe = "import sys\nprint(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    with WorkerPool(1, preload=[], preload_probe=False, preload_matplotlib=False) as pool:
        run = pool.run([CellJob(index=0, source=probe)])
    text = "".join(o.get("text", "") for o in run.cells[0].outputs)
    assert text.strip() == "[]", f"a course that preloads nothing got {text!r} preloaded"


def test_sources_and_discovery_of_a_two_notebook_assignment(tmp_path: Path) -> None:
    from grader.engine.autograde import discover
    from grader.engine.precheck import load_source, load_sources

    specs = load_sources(FIXTURE, "ps1")
    assert [s.notebook_name for s in specs] == ["problem1", "problem2"]
    assert [s.max_score for s in specs] == [4.0, 2.0]
    assert [s.manual_max_score for s in specs] == [0.0, 1.0]
    with pytest.raises(FileNotFoundError, match="has 2 notebooks"):
        load_source(FIXTURE, "ps1")
    assert load_source(FIXTURE, "ps2").notebook_name == "problem1"

    names = ["problem1", "problem2"]
    folder = tmp_path / "submitted" / "zoe" / "ps1"
    write_nb(nbformat.v4.new_notebook(), folder / "problem1.ipynb")
    subs = discover([tmp_path / "submitted"], "ps1", names)
    assert [(s.student, s.notebook_name, s.notebook.exists()) for s in subs] == [
        ("zoe", "problem1", True), ("zoe", "problem2", False)]
    # a notebook in the submitted layout stands for the student's whole assignment folder
    one = discover([folder / "problem1.ipynb"], "ps1", names)
    assert [(s.student, s.notebook_name) for s in one] == [("zoe", "problem1"),
                                                           ("zoe", "problem2")]
    loose = write_nb(nbformat.v4.new_notebook(), tmp_path / "ci" / "problem2.ipynb")
    got = discover([loose], "ps1", names, student="ann")
    assert [(s.student, s.notebook_name, s.notebook.exists()) for s in got] == [
        ("ann", "problem1", False), ("ann", "problem2", True)]
    with pytest.raises(FileNotFoundError, match="name the file after one of them"):
        discover([write_nb(nbformat.v4.new_notebook(), tmp_path / "x" / "mine.ipynb")],
                 "ps1", names)


def test_the_wheel_is_the_engine_without_torch(tmp_path: Path) -> None:
    """Another course's `pip install` of the wheel pulls no torch: torch==2.13.0 is the
    `course` extra only; the wheel holds the engine, the runtime and this course's package."""
    import zipfile

    project = tmp_path / "project"  # a copy: the build leaves build/ and *.egg-info behind
    shutil.copytree(REPO / "grader", project / "grader",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, project / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", str(project), "-w", str(tmp_path / "dist")], check=True, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("convgrade-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line for line in zf.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    torch = [r for r in requires if "torch" in r]
    assert torch and all('extra == "course"' in r for r in torch), requires
    assert any("torch==2.13.0" in r for r in torch), requires
    assert any(r.startswith("Requires-Dist: nbgrader==0.9.6") for r in requires), requires
    for name in ("grader/engine/execute/pool.py", "grader/engine/execute/server.py",
                 "grader/runtime/discover.py", "grader/course/compare.py"):
        assert name in names, name
