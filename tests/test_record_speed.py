"""Faster recording (issue 12) must record exactly what nbgrader's own steps record.

``grader.engine.autograde.FAST_RECORDING`` switches the fast recording on and off: the run's
shared SQLAlchemy engine (:func:`grader.engine.gradebook.shared_engines`, the schema checked
once), one gradebook transaction per student (``SharedEngines.transaction``: nbgrader's commits
become savepoints), the cached metadata-schema check
(:func:`grader.engine.speedups.cached_metadata_schemas`) and the single collecting session. Off
is nbgrader's own path (a new engine per open, a commit per change, SaveAutoGrades as is). The
gradebook rows, the autograded notebooks (cell by cell, metadata included) and the result
entries of both must be the same, for the demo class's right, wrong, blank, damaged and
review-flagged submissions and for a two-notebook assignment of a plain course.

``grader.engine.record.DIRECT_RECORDING`` (on with FAST_RECORDING) records each student without
nbgrader's converter (:class:`grader.engine.record.DirectRecorder`); the same comparisons check
it against nbgrader's own path, and check that the direct path did record (a comparison of the
converter with itself would prove nothing): timestamps, a late penalty, a student not yet in
the gradebook and one who is, a re-grade over rows with a manual score, a notebook whose
recording fails, and a course with a step the direct path does not know (the converter then).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest

from grader.engine import autograde as ag
from grader.engine import gradebook as gbmod
from grader.engine import record as recmod

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools

ASSIGNMENT = "channels_pooling"
#: the demo class's first students (right, struggling, blank, then a spread of mistakes),
#: its damaged notebook (s09-ivan) and its cheat (s21-uma, flagged for review)
STUDENTS = 8
EXTRA = ("s09-ivan", "s21-uma")
#: a submission time for some students (nbgrader reads it from timestamp.txt)
TIMESTAMPS = {"s02-ben": "2026-11-30 09:15:00.000000 UTC", "s21-uma": "2026-12-01 23:59:59 UTC"}


def _rows(db: Path) -> dict[str, Any]:
    """The gradebook's rows by natural keys (no ids): grades, comments, submitted notebooks
    and submissions, each with every field nbgrader computes or stores for them."""
    from nbgrader.api import Gradebook

    grades, comments, notebooks, submissions = {}, {}, {}, {}
    with Gradebook(f"sqlite:///{db}") as gb:
        for assignment in gb.assignments:
            for sub in gb.assignment_submissions(assignment.name):
                submissions[(sub.student_id, assignment.name)] = (
                    sub.timestamp, sub.late_submission_penalty, sub.needs_manual_grade,
                    sub.score, sub.max_score, sub.code_score, sub.written_score,
                    sub.total_seconds_late, sub.extension)
                for nb in sub.notebooks:
                    notebooks[(sub.student_id, assignment.name, nb.name)] = (
                        nb.score, nb.max_score, nb.code_score, nb.written_score,
                        nb.needs_manual_grade, nb.failed_tests, nb.flagged,
                        nb.late_submission_penalty)
                    for g in nb.grades:
                        grades[(sub.student_id, nb.name, g.name)] = (
                            g.auto_score, g.manual_score, g.extra_credit,
                            g.needs_manual_grade, g.max_score, g.cell_type)
                    for c in nb.comments:
                        comments[(sub.student_id, nb.name, c.name)] = (
                            c.auto_comment, c.manual_comment)
    return {"grades": grades, "comments": comments, "notebooks": notebooks,
            "submissions": submissions}


def _autograded(root: Path) -> dict[str, Any]:
    """Every autograded notebook, cell by cell (metadata included), by its path."""
    return {str(p.relative_to(root)): nbformat.read(str(p), as_version=4)
            for p in sorted((root / "autograded").rglob("*.ipynb"))}


def _grade(course: Path, paths: list[Path], assignment: str, work: Path, fast: bool,
           monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Grade ``paths`` in the course folder ``work``; the result entries, the gradebook's rows,
    the autograded notebooks and (``direct``) what the direct record path did: the students
    it recorded, those it left to the converter, or why the run had no direct path."""
    monkeypatch.setattr(ag, "FAST_RECORDING", fast)
    made: list[tuple[Any, str | None]] = []
    real = recmod.direct_recorder

    def spied(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(recmod, "direct_recorder", spied)
    result = ag.autograde(paths, assignment, course=course, seed=0, workdir=work)
    entries = [{k: v for k, v in r.items() if k != "seconds"}  # the run's time varies
               for r in result["results"]]
    for entry in entries:
        for part in entry.get("notebooks") or []:
            part["path"] = str(Path(part["path"]).name)
        if entry["error"]:  # nbgrader's messages name the work folder
            entry["error"] = entry["error"].replace(str(work), "<work>")
    recorder, why = made[0] if made else (None, "no recorder asked for")
    direct = {"recorded": sorted(recorder.recorded) if recorder else [],
              "fallbacks": dict(recorder.fallbacks) if recorder else {}, "why_not": why}
    return {"result": entries, "rows": _rows(work / "gradebook.db"),
            "autograded": _autograded(work), "direct": direct}


def _compare(fast: dict[str, Any], slow: dict[str, Any]) -> None:
    assert fast["rows"]["grades"], "no grades recorded: the comparison would prove nothing"
    for key in ("grades", "comments", "notebooks", "submissions"):
        assert fast["rows"][key] == slow["rows"][key], (
            f"the gradebook's {key} differ between the fast recording and nbgrader's own "
            "(FAST_RECORDING off); hint: the shared engine, the one transaction per student "
            "or the cached schema check must not change what nbgrader writes")
    assert sorted(fast["autograded"]) == sorted(slow["autograded"])
    for path, nb in fast["autograded"].items():
        other = slow["autograded"][path]
        assert nb.metadata == other.metadata, f"{path}: the notebook metadata differ"
        assert len(nb.cells) == len(other.cells), f"{path}: not the same cells"
        for k, (a, b) in enumerate(zip(nb.cells, other.cells, strict=True)):
            assert a == b, f"{path}, cell {k}: the autograded cells differ"
        assert nb == other
    assert fast["result"] == slow["result"], "the result entries differ"


@pytest.fixture(scope="module")
def demo_class(demo_course: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo course's submitted/ folder: its first students, the damaged
    notebook and the cheat, some with a submission time."""
    root = tmp_path_factory.mktemp("record") / "submitted"
    names = sorted(p.name for p in (demo_course / "submitted").iterdir())[:STUDENTS]
    for name in [*names, *EXTRA]:
        shutil.copytree(demo_course / "submitted" / name / ASSIGNMENT, root / name / ASSIGNMENT)
        if name in TIMESTAMPS:
            (root / name / ASSIGNMENT / "timestamp.txt").write_text(TIMESTAMPS[name])
    return root


def test_fast_recording_records_what_nbgrader_records(demo_course: Path, demo_class: Path,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    paths = sorted(demo_class.iterdir())
    fast = _grade(demo_course, paths, ASSIGNMENT, tmp_path / "fast", True, monkeypatch)
    slow = _grade(demo_course, paths, ASSIGNMENT, tmp_path / "slow", False, monkeypatch)
    by = {e["student"]: e for e in fast["result"]}
    assert not by["s09-ivan"]["graded"], "the damaged notebook was graded"
    assert by["s21-uma"]["review"], "the cheat was not flagged for review"
    scores = {e["score"] for e in fast["result"] if e["graded"]}
    assert len(scores) > 2, f"expected a spread of scores, got {scores}"
    stamps = {k[0]: v[0] for k, v in fast["rows"]["submissions"].items()}
    assert stamps["s02-ben"] is not None and stamps["s21-uma"] is not None
    graded = sorted(e["student"] for e in fast["result"] if e["graded"])
    assert fast["direct"]["recorded"] == graded, fast["direct"]
    assert slow["direct"]["why_not"] == "no recorder asked for"  # nbgrader's own path
    _compare(fast, slow)


def test_fast_recording_of_a_two_notebook_assignment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/fixtures/plaincourse's ps1 (problem1 and problem2, plain asserts, partial credit,
    a manual answer): right, partly right, wrong, a missing notebook and a broken one."""
    from conftest import run_nbgrader, write_nb
    from test_plaincourse import FIXTURE, PARTLY, RIGHT, WRONG, _answered

    root = tmp_path / "plaincourse"
    shutil.copytree(FIXTURE, root)
    run_nbgrader(root, "generate_assignment", "ps1", "--force")
    (root / "gradebook.db").unlink(missing_ok=True)
    release, submitted = root / "release" / "ps1", tmp_path / "submitted"
    for student, answers in (("ann", RIGHT), ("ben", PARTLY), ("cat", WRONG)):
        for name in ("problem1", "problem2"):
            write_nb(_answered(release / f"{name}.ipynb", answers),
                     submitted / student / "ps1" / f"{name}.ipynb")
    write_nb(_answered(release / "problem1.ipynb", RIGHT),
             submitted / "dan" / "ps1" / "problem1.ipynb")  # forgot problem2
    (submitted / "ben" / "ps1" / "timestamp.txt").write_text("2026-11-30 10:00:00 UTC")
    write_nb(_answered(release / "problem1.ipynb", RIGHT),
             submitted / "eve" / "ps1" / "problem1.ipynb")
    (submitted / "eve" / "ps1" / "problem2.ipynb").write_text('{"cells": [')
    paths = sorted(submitted.iterdir())
    fast = _grade(root, paths, "ps1", tmp_path / "fast", True, monkeypatch)
    slow = _grade(root, paths, "ps1", tmp_path / "slow", False, monkeypatch)
    assert {k[2] for k in fast["rows"]["notebooks"]} == {"problem1", "problem2"}
    assert fast["direct"]["recorded"] == ["ann", "ben", "cat", "dan", "eve"], fast["direct"]
    _compare(fast, slow)


def _late_course(demo_course: Path, dest: Path, extra_config: str = "") -> Path:
    """The demo course with nbgrader's 'zero' late penalty (and ``extra_config``)."""
    shutil.copytree(demo_course, dest, ignore=shutil.ignore_patterns("submitted", "gradebook.db",
                                                                     "autograded"))
    config = dest / "nbgrader_config.py"
    config.write_text(config.read_text() + '\nc.LateSubmissionPlugin.penalty_method = "zero"\n'
                      + extra_config)
    return dest


def _prepared_gradebook(work: Path) -> None:
    """A gradebook where the assignment is due before some submissions and one student of
    the class is already known (with a name), before anything is graded."""
    from nbgrader.api import Gradebook

    work.mkdir(parents=True)
    url = f"sqlite:///{work / 'gradebook.db'}"
    gbmod.prepare_gradebook(url)
    with Gradebook(url, "convgrade") as gb:
        gb.add_assignment(ASSIGNMENT, duedate="2026-12-01 00:00:00 UTC")
        gb.add_student("s01-ada", first_name="Ada", last_name="L")


def _regrade(work: Path) -> None:
    """Between two runs: an instructor's manual score on one grade, a comment on another."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{work / 'gradebook.db'}", "convgrade") as gb:
        nb = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "s02-ben")
        grade = sorted(nb.grades, key=lambda g: g.name)[0]
        grade.manual_score = 0.5
        comment = sorted(nb.comments, key=lambda c: c.name)[0]
        comment.manual_comment = "see me"
        gb.db.commit()


def test_direct_recording_of_late_work_and_a_regrade(demo_course: Path, demo_class: Path,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A due date and the zero late penalty (one student late, one on time, one without a
    timestamp), a student already in the gradebook, then a re-grade of the same folder over
    the first run's rows (a manual score, a new timestamp, a changed answer): the direct
    path and nbgrader's converter leave the same rows and notebooks after each run."""
    course = _late_course(demo_course, tmp_path / "course")
    first = sorted(demo_class.iterdir())[:4]
    runs = {}
    for fast in (True, False):
        work = tmp_path / ("fast" if fast else "slow")
        _prepared_gradebook(work)
        once = _grade(course, first, ASSIGNMENT, work, fast, monkeypatch)
        _regrade(work)
        again_dir = tmp_path / "again"  # the same paths in both results
        shutil.rmtree(again_dir, ignore_errors=True)
        shutil.copytree(demo_class, again_dir)
        (again_dir / "s02-ben" / ASSIGNMENT / "timestamp.txt").write_text(
            "2026-12-02 10:00:00 UTC")  # late now
        shutil.copytree(demo_class / "s01-ada" / ASSIGNMENT,
                        again_dir / "s03-cy" / ASSIGNMENT, dirs_exist_ok=True)  # new answer
        twice = _grade(course, sorted(again_dir.iterdir())[:4], ASSIGNMENT, work, fast,
                       monkeypatch)
        runs[fast] = (once, twice)
    (fast_once, fast_twice), (slow_once, slow_twice) = runs[True], runs[False]
    penalties = {k[0]: v[1] for k, v in fast_twice["rows"]["submissions"].items()}
    assert penalties["s02-ben"], "the late submission got no penalty"
    assert fast_once["rows"]["submissions"][("s01-ada", ASSIGNMENT)][1] == 0
    manual = [v for v in fast_twice["rows"]["grades"].values() if v[1] == 0.5]
    assert manual and all(v[3] for v in manual), "a manual score did not need review"
    for fast_run in (fast_once, fast_twice):
        assert fast_run["direct"]["recorded"] and not fast_run["direct"]["fallbacks"]
    _compare(fast_once, slow_once)
    _compare(fast_twice, slow_twice)


def test_direct_recording_of_a_failing_notebook(demo_course: Path, demo_class: Path,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that fails for one student: the direct path rolls them back and leaves them to
    nbgrader's converter, which fails as it does on its own path; the others are recorded."""
    from grader.engine.steps import SanitizeStudentContent

    real = SanitizeStudentContent.preprocess

    def failing(self: Any, nb: Any, resources: dict) -> Any:
        nb, resources = real(self, nb, resources)
        if resources["nbgrader"]["student"] == "s02-ben":
            raise RuntimeError("a step failed for s02-ben")
        return nb, resources

    monkeypatch.setattr(SanitizeStudentContent, "preprocess", failing)
    paths = sorted(demo_class.iterdir())[:4]
    fast = _grade(demo_course, paths, ASSIGNMENT, tmp_path / "fast", True, monkeypatch)
    slow = _grade(demo_course, paths, ASSIGNMENT, tmp_path / "slow", False, monkeypatch)
    by = {e["student"]: e for e in fast["result"]}
    assert not by["s02-ben"]["graded"] and "nbgrader" in by["s02-ben"]["error"]
    assert list(fast["direct"]["fallbacks"]) == ["s02-ben"], fast["direct"]
    assert "s02-ben" not in fast["direct"]["recorded"] and len(fast["direct"]["recorded"]) == 3
    _compare(fast, slow)


def test_an_unknown_step_records_through_the_converter(demo_course: Path, demo_class: Path,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A course whose autograde steps include one the direct path does not know records every
    student through nbgrader's converter, with the same rows as nbgrader's own path."""
    extra = ("from nbconvert.preprocessors import RegexRemovePreprocessor\n"
             "c.Autograde.autograde_preprocessors = list(c.Autograde.autograde_preprocessors)"
             " + [RegexRemovePreprocessor]\n")
    course = _late_course(demo_course, tmp_path / "course", extra)
    paths = sorted(demo_class.iterdir())[:3]
    fast = _grade(course, paths, ASSIGNMENT, tmp_path / "fast", True, monkeypatch)
    slow = _grade(course, paths, ASSIGNMENT, tmp_path / "slow", False, monkeypatch)
    assert fast["direct"]["why_not"] == (
        "the course's step nbconvert.preprocessors.regexremove.RegexRemovePreprocessor")
    assert not fast["direct"]["recorded"]
    _compare(fast, slow)


def test_shared_engines_share_one_engine_and_restore_nbgrader(tmp_path: Path) -> None:
    import nbgrader.api as nbapi
    import sqlalchemy
    from nbgrader.api import Gradebook
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    real = nbapi.create_engine
    with gbmod.shared_engines():
        with Gradebook(url) as first:
            engine = first.engine
            first.add_student("ann")
        with Gradebook(url) as second:
            assert second.engine is engine, "a second open made a new engine"
            assert [s.id for s in second.students] == ["ann"]
            # an in-course gradebook keeps sqlite's fsync (synchronous=FULL, 2)
            assert second.db.execute(text("PRAGMA synchronous")).scalar() == 2
        with Gradebook(f"sqlite:///{tmp_path / 'other.db'}") as other:
            assert other.engine is not engine, "another database shared the engine"
            # the schema check is per engine: the other database got its tables
            assert sqlalchemy.inspect(other.engine).get_table_names()
    assert nbapi.create_engine is real, "nbgrader.api.create_engine was not restored"
    assert "create_all" not in vars(nbapi.Base.metadata), "create_all was not restored"
    assert nbapi.inspect is sqlalchemy.inspect, "nbgrader.api.inspect was not restored"
    assert "dispose" not in vars(engine), "the shared engine kept its no-op dispose"
    with Gradebook(url) as later:
        assert later.engine is not engine


def test_transaction_keeps_nbgrader_commits_and_rollbacks_in_one_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside ``SharedEngines.transaction`` each Gradebook's commit is a savepoint released and
    each rollback a rollback to its own savepoint; the disk sees one commit at the end, and
    what nbgrader committed before an exception stays."""
    import sqlite3

    import nbgrader.api as nbapi
    from nbgrader.api import Gradebook, InvalidEntry
    from sqlalchemy.engine import default

    db = tmp_path / "gradebook.db"
    url = f"sqlite:///{db}"
    gbmod.prepare_gradebook(url)
    commits: list[int] = []
    real_commit = default.DefaultDialect.do_commit

    def counted(self: Any, dbapi_connection: Any) -> None:
        commits.append(1)
        real_commit(self, dbapi_connection)

    monkeypatch.setattr(default.DefaultDialect, "do_commit", counted)
    real_sessionmaker = nbapi.sessionmaker

    def students() -> list[str]:
        with sqlite3.connect(db) as conn:
            return sorted(r[0] for r in conn.execute("SELECT id FROM student"))

    with gbmod.shared_engines() as shared:
        with shared.transaction(url):
            with Gradebook(url) as gb:
                gb.add_student("ann")
            with Gradebook(url) as gb, pytest.raises(InvalidEntry):
                gb.add_student("ann")  # nbgrader's IntegrityError, rolled back to its savepoint
            with Gradebook(url) as gb:
                gb.add_student("bob")
                assert [s.id for s in gb.students] == ["ann", "bob"]
            assert students() == [], "the transaction reached the disk before its end"
            before = len(commits)
        assert len(commits) == before + 1, "the transaction did not end in one commit"
        assert students() == ["ann", "bob"]
        with pytest.raises(RuntimeError), shared.transaction(url):
            with Gradebook(url) as gb:
                gb.add_student("cy")
            raise RuntimeError("nbgrader failed after committing cy")
        assert students() == ["ann", "bob", "cy"], "what nbgrader committed was lost"
        with Gradebook(url) as gb:  # outside a transaction: nbgrader's own commits
            gb.add_student("dee")
        assert students() == ["ann", "bob", "cy", "dee"]
    assert nbapi.sessionmaker is real_sessionmaker, "nbgrader.api.sessionmaker was not restored"


@pytest.mark.parametrize("meta", [
    {"grade": True, "solution": False, "locked": True, "points": 2, "grade_id": "a_tests",
     "schema_version": 3},
    {"grade": True, "solution": False, "locked": True, "points": "two", "grade_id": "a_tests",
     "schema_version": 3},
    {"grade": True, "solution": False, "locked": True, "grade_id": "a_tests",
     "schema_version": 3},
    {"grade": "yes", "solution": False, "locked": True, "points": 1, "grade_id": "",
     "schema_version": 3, "extra": 1},
])
def test_cached_metadata_schemas_validate_as_nbgrader(meta: dict[str, Any]) -> None:
    """nbgrader's metadata validation says the same (pass, or the same error) with the
    schema check cached."""
    from nbgrader.nbgraderformat import MetadataValidator, common

    from grader.engine import speedups

    def outcome() -> str:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "x = 1", metadata={"nbgrader": dict(meta)})])
        try:
            MetadataValidator().validate_nb(nb)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok"

    real = common.jsonschema
    stock = outcome()
    with speedups.cached_metadata_schemas():
        cached = [outcome(), outcome()]
    assert common.jsonschema is real
    assert cached == [stock, stock]


def test_remembered_notebook_validation_validates_as_nbformat(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid notebook seen before is not validated again; a changed or an invalid one is,
    every time, with nbformat's own error."""
    import nbformat as nbf

    from grader.engine import speedups

    nb = nbf.v4.new_notebook(cells=[nbf.v4.new_code_cell("x = 1")])
    bad = nbf.v4.new_notebook(cells=[nbf.v4.new_code_cell("x = 1")])
    bad.cells[0]["outputs"] = [{"output_type": "nonsense"}]
    seen: list[Any] = []
    real = nbf.validate

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[0] if args else None)
        return real(*args, **kwargs)

    def calls() -> int:  # validations of the two whole notebooks (not of new cells)
        return sum(1 for x in seen if x is nb or x is bad)

    monkeypatch.setattr(nbf, "validate", counted)
    with pytest.raises(nbf.ValidationError) as stock:
        real(bad, relax_add_props=True)
    with speedups.remembered_notebook_validation():
        assert nbf.validate(nb, relax_add_props=True) is None
        assert nbf.validate(nb, relax_add_props=True) is None
        assert calls() == 1, "a valid notebook seen before was validated again"
        nbf.validate(nb)  # other arguments: validated
        assert calls() == 2
        nb.cells[0].source = "x = 2"
        nbf.validate(nb, relax_add_props=True)
        assert calls() == 3, "a changed notebook was not validated"
        for _ in range(2):
            with pytest.raises(nbf.ValidationError) as err:
                nbf.validate(bad, relax_add_props=True)
            assert str(err.value) == str(stock.value)
        assert calls() == 5, "an invalid notebook was not validated each time"
        # nbformat's own writes and nbconvert's exporter look the name up at call time
        nbf.writes(nb)
        nbf.writes(nb)
        assert calls() == 6, "nbformat.writes did not go through the remembered validation"
    assert nbf.validate is counted
