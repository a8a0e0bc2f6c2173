"""The ``python -m grader`` command line on the real assignments (fast engine, sandboxed)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import REPO, VENV_BIN, write_nb

from grader.cli import exit_status, main

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

ASSIGNMENT = "channels_pooling"


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _ada(demo_course: Path) -> Path:
    return demo_course / "submitted" / "s01-ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def _cy(demo_course: Path) -> Path:
    return demo_course / "submitted" / "s03-cy" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def _with_cell(nb_path: Path, source: str, after_grade_id: str) -> nbformat.NotebookNode:
    nb = nbformat.read(str(nb_path), as_version=4)
    pos = [i for i, c in enumerate(nb.cells)
           if c.metadata.get("nbgrader", {}).get("grade_id") == after_grade_id][0]
    nb.cells.insert(pos + 1, nbformat.v4.new_code_cell(source))
    return nb


@pytest.fixture(scope="module")
def class_run(demo_course: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real ``python -m grader autograde`` run over a class with good and bad notebooks."""
    base = tmp_path_factory.mktemp("cli")
    subs = base / "submitted"
    for student in ("s01-ada", "s03-cy"):
        shutil.copytree(demo_course / "submitted" / student / ASSIGNMENT,
                        subs / student / ASSIGNMENT)
    write_nb(_with_cell(_ada(demo_course), "while True:\n    pass", "corr2d_tests"),
             subs / "loop" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    write_nb(_with_cell(_ada(demo_course), "import os\nos.kill(os.getpid(), 9)",
                        "corr2d_multi_in_tests"),
             subs / "crash" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    broken = subs / "broken" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [ oops')
    before = _hashes(subs)
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    env.pop("CONVGRADE_DB_URL", None)
    out = base / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(subs), "--assignment", ASSIGNMENT,
         "--course", str(demo_course), "--timeout", "8", "--json", str(out / "r.json"),
         "--junit", str(out / "junit.xml"), "--markdown", str(out / "summary.md"),
         "--classroom", str(out / "classroom.json")],
        cwd=base, env=env, capture_output=True, text=True, timeout=600,
    )
    return {"proc": proc, "out": out, "subs": subs, "before": before,
            "result": json.loads((out / "r.json").read_text()) if (out / "r.json").exists()
            else None}


def test_class_run_exit_2_names_the_broken_notebook(class_run: dict[str, Any]) -> None:
    proc = class_run["proc"]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("exit 2: 1 submission could not be graded (broken: could not read")
    assert "ada" in proc.stdout and "13/13" in proc.stdout  # the grade table
    assert "running" in proc.stderr  # plain progress lines when stderr is not a TTY


def test_class_run_json(class_run: dict[str, Any]) -> None:
    result = class_run["result"]
    assert result["assignment"] == ASSIGNMENT
    by = {r["student"]: r for r in result["results"]}
    assert set(by) == {"s01-ada", "s03-cy", "loop", "crash", "broken"}
    assert by["s01-ada"]["score"] == by["s01-ada"]["max_score"] == 13.0
    assert by["s01-ada"]["error"] is None
    assert by["s03-cy"]["score"] == 0.0 and by["s03-cy"]["error"] is None
    assert not by["broken"]["graded"] and "not valid JSON" in by["broken"]["error"]
    for name, first_lost in (("loop", "corr2d_multi_in_tests"),
                             ("crash", "corr2d_multi_in_out_tests")):
        entry = by[name]
        assert entry["graded"] and entry["error"], name
        tests = {t["grade_id"]: t for t in entry["tests"]}
        assert tests["corr2d_tests"]["passed"], name  # cells before the problem still count
        assert not tests[first_lost]["passed"], name
        assert 0 < entry["score"] < 13, name
    for t in by["s03-cy"]["tests"]:
        assert t["message"] and t["passed"] is False


def test_class_run_reports_and_originals(class_run: dict[str, Any]) -> None:
    out = class_run["out"]
    for name in ("junit.xml", "summary.md", "classroom.json"):
        assert (out / name).stat().st_size > 0, name
    assert _hashes(class_run["subs"]) == class_run["before"]


def test_single_notebook_and_fail_under(demo_course: Path, tmp_path: Path) -> None:
    nb = shutil.copy(_ada(demo_course), tmp_path / "ada_smith.ipynb")
    code, out, _ = _run_main("autograde", str(nb), "--assignment", ASSIGNMENT, "--course",
                             str(demo_course), "--json", str(tmp_path / "one.json"),
                             "--fail-under", "50")
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "exit 0: 1 submission graded"
    result = json.loads((tmp_path / "one.json").read_text())
    (entry,) = result["results"]
    assert entry["student"] == "ada_smith" and entry["score"] == 13.0
    assert {t["grade_id"] for t in entry["tests"]} >= {"corr2d_tests", "pool2d_mode_tests"}
    blank = shutil.copy(_cy(demo_course), tmp_path / "cy.ipynb")
    code, out, _ = _run_main("autograde", str(blank), "--assignment", ASSIGNMENT, "--course",
                             str(demo_course), "--fail-under", "50")
    assert code == 1
    assert out.strip().splitlines()[-1] == "exit 1: 1 submission scored below 50% (cy 0.0%)"


#: What a lone notebook graded outside the course never needs: nbgrader's preprocessors and
#: converters, nbconvert and SQLAlchemy (about 0.5 s of imports on the critical path).
_RECORDING_MODULES = ("nbgrader.preprocessors", "nbgrader.converters", "nbgrader.api",
                      "nbconvert", "sqlalchemy")


def test_a_lone_notebook_imports_nothing_for_recording(demo_course: Path,
                                                       tmp_path: Path) -> None:
    """The CI case (one notebook outside the course): the course's config names its steps by
    import string and the direct path scores without a gradebook, so none of nbgrader's
    recording machinery is imported; the score is still the full one."""
    nb = shutil.copy(_ada(demo_course), tmp_path / "ada.ipynb")
    code = ("import sys\nfrom grader.cli import main\n"
            f"rc = main(['autograde', {str(nb)!r}, '--assignment', {ASSIGNMENT!r}, "
            f"'--course', {str(demo_course)!r}, '--json', {str(tmp_path / 'r.json')!r}])\n"
            f"heavy = sorted(m for m in sys.modules if m.startswith({_RECORDING_MODULES!r}))\n"
            "print('HEAVY', heavy)\nsys.stdout.flush()\nimport os\nos._exit(rc)\n")
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout, proc.stdout
    (entry,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert entry["score"] == entry["max_score"] == 13.0, entry


def test_sandbox_unavailable_exits_2(demo_course: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CONVGRADE_BWRAP", str(tmp_path / "no-bwrap-here"))
    code, out, err = _run_main("autograde", str(_ada(demo_course)), "--assignment",
                               ASSIGNMENT, "--course", str(demo_course))
    assert code == 2
    assert out.strip().splitlines()[-1].startswith("exit 2: nothing was graded")
    assert "error: sandbox unavailable" in err


def test_check_command(demo_course: Path, tmp_path: Path) -> None:
    code, out, _ = _run_main("check", str(_ada(demo_course)), "--assignment", ASSIGNMENT,
                             "--course", str(demo_course))
    assert code == 0 and "ada" in out and out.strip().endswith("no errors")
    nb = nbformat.read(str(_ada(demo_course)), as_version=4)
    nb.cells = [c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") != "pool2d_avg_tests"]
    write_nb(nb, tmp_path / "sly.ipynb")
    code, out, _ = _run_main("check", str(tmp_path / "sly.ipynb"), "--assignment", ASSIGNMENT,
                             "--course", str(demo_course))
    assert code == 2 and "pool2d_avg_tests" in out and "was deleted" in out


def test_roster_import_and_export(course_copy: Path, tmp_path: Path) -> None:
    course = tmp_path / "course"
    shutil.copytree(course_copy, course)
    roster = tmp_path / "roster.csv"
    roster.write_text("id,first_name,last_name,email\nada,Ada,Lovelace,ada@example.org\n"
                      "ben,Ben,,\n")
    code, out, _ = _run_main("roster", "import", str(roster), "--course", str(course))
    assert code == 0 and "2 student" in out
    code, out, _ = _run_main("export", str(tmp_path / "grades.csv"), "--course", str(course))
    assert code == 0
    assert (tmp_path / "grades.csv").read_text().startswith("assignment,duedate,")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "convgrade") as gb:
        assert gb.find_student("ada").last_name == "Lovelace"
        assert gb.find_student("ben").email is None
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nx\n")
    code, _, err = _run_main("roster", "import", str(bad), "--course", str(course))
    assert code == 2 and "'id' column" in err


def test_exit_status_sentences() -> None:
    ok = {"results": [{"student": "a", "score": 5.0, "max_score": 10.0, "graded": True,
                       "error": None}]}
    assert exit_status(ok) == (0, "exit 0: 1 submission graded")
    assert exit_status(ok, 60)[0] == 1
    bad = {"results": ok["results"] + [{"student": "b", "score": 0.0, "max_score": 10.0,
                                         "graded": False, "error": "could not read it"}]}
    assert exit_status(bad, 60) == (
        2, "exit 2: 1 submission could not be graded (b: could not read it)")


def test_python_m_grader_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "grader", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "autograde" in proc.stdout
