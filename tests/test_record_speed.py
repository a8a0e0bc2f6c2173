"""Faster recording (issue 12) must record exactly what nbgrader's own steps record.

``grader.engine.autograde.FAST_RECORDING`` switches the run's shared SQLAlchemy engine
(:func:`grader.engine.gradebook.shared_engines`) and the single collecting session on and off; the
gradebook rows and the autograded notebooks of both runs must be the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from grader.engine import autograde as ag
from grader.engine import gradebook as gbmod

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools

ASSIGNMENT = "channels_pooling"
#: the demo class's first students: right, struggling, blank, then a spread of mistakes
STUDENTS = 8


def _rows(db: Path) -> dict[str, Any]:
    """The gradebook's grades, comments and submissions, by natural keys (no ids, no times)."""
    from nbgrader.api import Gradebook

    grades, comments, submissions = {}, {}, {}
    with Gradebook(f"sqlite:///{db}") as gb:
        for assignment in gb.assignments:
            for sub in gb.assignment_submissions(assignment.name):
                submissions[(sub.student_id, assignment.name)] = (
                    sub.late_submission_penalty, sub.needs_manual_grade, sub.score, sub.max_score)
                for nb in sub.notebooks:
                    for g in nb.grades:
                        grades[(sub.student_id, nb.name, g.name)] = (
                            g.auto_score, g.manual_score, g.extra_credit,
                            g.needs_manual_grade, g.max_score)
                    for c in nb.comments:
                        comments[(sub.student_id, nb.name, c.name)] = (
                            c.auto_comment, c.manual_comment)
    return {"grades": grades, "comments": comments, "submissions": submissions}


def _autograded(root: Path) -> dict[str, Any]:
    return {str(p.relative_to(root)): nbformat.read(str(p), as_version=4)
            for p in sorted((root / "autograded").rglob("*.ipynb"))}


def _grade(demo_course: Path, work: Path, fast: bool, monkeypatch: pytest.MonkeyPatch
           ) -> dict[str, Any]:
    subs = sorted((demo_course / "submitted").iterdir())[:STUDENTS]
    monkeypatch.setattr(ag, "FAST_RECORDING", fast)
    result = ag.autograde([s / ASSIGNMENT for s in subs], ASSIGNMENT, course=demo_course,
                          seed=0, workdir=work)
    entries = [{k: v for k, v in r.items() if k != "seconds"}  # the run's time varies
               for r in result["results"]]
    return {"result": entries, "rows": _rows(work / "gradebook.db"),
            "autograded": _autograded(work)}


def test_fast_recording_records_what_nbgrader_records(demo_course: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _grade(demo_course, tmp_path / "fast", True, monkeypatch)
    slow = _grade(demo_course, tmp_path / "slow", False, monkeypatch)
    assert fast["rows"]["grades"], "no grades recorded: the comparison would prove nothing"
    scores = {k[0]: 0.0 for k in fast["rows"]["grades"]}
    for (student, _nb, _name), row in fast["rows"]["grades"].items():
        scores[student] += row[0] or 0.0
    assert len(set(scores.values())) > 1, f"expected a spread of scores, got {scores}"
    for key in ("grades", "comments", "submissions"):
        assert fast["rows"][key] == slow["rows"][key], (
            f"the gradebook's {key} differ with FAST_RECORDING on and off; hint: the shared "
            "engine or the single collecting session must not change what nbgrader writes")
    assert fast["autograded"] == slow["autograded"], (
        "the autograded notebooks differ with FAST_RECORDING on and off")
    assert fast["result"] == slow["result"], "the result entries differ"


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
