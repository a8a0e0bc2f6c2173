"""Grade on submit (``python -m grader serve``) on a real exchange, real nbgrader, real pools.

- a student's ``nbgrader submit`` (the command line) is graded, recorded and released, and
  ``nbgrader fetch_feedback`` brings the feedback with the known mistake's hint;
- a service SIGKILLed mid-grade picks the submission up on restart and records it once;
- the hourly limit (the student is told, the submission waits), the before-deadline policies
  (score only, none) and the after-deadline ones (late, stop);
- a burst from several students, with a resubmission (superseded) and a damaged notebook
  (an error page; the others are graded).

The in-process services share one warm sandboxed pool (started with their fixed seed); the
kill test runs the real command in its own process group.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from exchangekit import (
    ASSIGNMENT,
    WRONG_CHECK,
    clean_env,
    fetch_feedback,
    instructor_course,
    student_notebook,
    student_round,
    submit_like_nbgrader,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

COURSE_ID = "convgrade"
SEED = 12345
#: a generous bound for waiting on the service (the speed target is benchmarked in
#: benchmarks/serve_bench.py, not asserted here)
WAIT_S = 120


def _hint() -> str:
    from grader.registry import course

    return course().mistakes(WRONG_CHECK)[0].hint


class _SharedPool:
    """The module's warm pool, lent to each service (which must not close it)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.jobs = pool.jobs

    def run(self, cells: Any) -> Any:
        return self.pool.run(cells)

    def map(self, jobs: Any) -> Any:
        return self.pool.map(jobs)

    def warm(self, count: int = 1) -> None:
        self.pool.warm(count)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def shared_pool() -> Iterator[_SharedPool]:
    from grader.engine import settings
    from grader.engine.execute.pool import WorkerPool

    root = Path(__file__).resolve().parents[1]
    pool = WorkerPool(2, seed=SEED, preload=settings.declared_preload(root),
                      preload_probe=True, preload_matplotlib=False)
    pool.warm(2)
    try:
        yield _SharedPool(pool)
    finally:
        pool.close()


@contextmanager
def running(course: Path, exchange: Path, pool: _SharedPool, **kwargs: Any) -> Iterator[Any]:
    """A service of ``course`` polling in a background thread until the block ends."""
    from grader.engine.serve.service import Service

    service = Service(course, exchange=exchange, assignments=[ASSIGNMENT],
                      pool_factory=lambda *a: pool, seed=SEED, poll_interval=0.1, **kwargs)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            service.run()
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            errors.append(exc)

    thread = threading.Thread(target=loop, name="serve-test", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop_event.set()
        thread.join(WAIT_S)
        service.close()
    assert not errors, f"the service failed: {errors[0]!r}"


def _released(service: Any, n: int) -> Any:
    return wait_for(lambda: len(service.journal.in_state("released", "superseded",
                                                          "closed")) >= n,
                    WAIT_S, f"{n} submission(s) released")


def _rows(course: Path, student: str) -> dict[str, int]:
    """How many gradebook rows ``student`` has for the assignment, per table."""
    db = sqlite3.connect(course / "gradebook.db")
    try:
        q = ("SELECT COUNT(*) FROM submitted_assignment sa JOIN assignment a ON "
             "sa.assignment_id = a.id WHERE sa.student_id = ? AND a.name = ?")
        assignments = db.execute(q, (student, ASSIGNMENT)).fetchone()[0]
        grades = db.execute(
            "SELECT COUNT(*) FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment sa ON sn.assignment_id = sa.id WHERE sa.student_id = ?",
            (student,)).fetchone()[0]
        return {"assignments": assignments, "grades": grades}
    finally:
        db.close()


def _published(exchange: Path, home: Path, student: str) -> list[str]:
    """The feedback pages released to the exchange for the student's cached submissions."""
    from nbgrader.utils import notebook_hash

    pages = []
    for sub in sorted((home / "nbgrader_cache" / COURSE_ID).glob(f"{student}+*")):
        secret = (sub / "submission_secret.txt").read_text()
        path = exchange / COURSE_ID / "feedback" / (
            notebook_hash(secret=secret, notebook_id=ASSIGNMENT) + ".html")
        pages.append(path.read_text(encoding="utf-8") if path.exists() else "")
    return pages


def _submit(course: Path, exchange: Path, tmp: Path, student: str, wrong: bool = False,
            extra: str | None = None) -> Path:
    home = tmp / f"home-{student}"
    folder = student_notebook(course, home / "work" / ASSIGNMENT, wrong=wrong, extra=extra).parent
    submit_like_nbgrader(folder, exchange, COURSE_ID, student, ASSIGNMENT,
                         home / "nbgrader_cache")
    return home


# ---------------------------------------------------------------------------------------------


def test_nbgrader_submit_is_graded_and_fetch_feedback_shows_the_hint(
        tmp_path: Path, shared_pool: _SharedPool) -> None:
    course, exchange = instructor_course(tmp_path, generate=False)
    with running(course, exchange, shared_pool) as service:
        home, work = student_round("ben", True, exchange, course, tmp_path, COURSE_ID)
        _released(service, 1)
        row = service.journal.in_state("released")[0]
    assert row.student == "ben" and row.error is None and row.feedback == "hints"
    assert 0 < row.score < row.max_score, row
    pages = fetch_feedback(home, work, exchange, COURSE_ID, "ben")
    assert len(pages) == 1, pages
    page = pages[0].read_text(encoding="utf-8")
    assert html.escape(_hint()) in page or _hint() in page, "the hint is not in the feedback"
    assert "BEGIN HIDDEN TESTS" not in page and "check_" not in page
    assert "Content-Security-Policy" in page
    assert _rows(course, "ben")["assignments"] == 1
    assert (course / "submitted" / "ben" / ASSIGNMENT / "timestamp.txt").read_text() == \
        row.timestamp
    print(f"landing to released: {row.released - row.landed:.1f} s")


def test_a_burst_from_several_students(tmp_path: Path, shared_pool: _SharedPool) -> None:
    course, exchange = instructor_course(tmp_path, generate=False)
    students = {f"s{i:02d}": i % 3 == 0 for i in range(8)}  # name: wrong
    # all land before the service's first look (a rush that came in while it was stopped)
    homes = {s: _submit(course, exchange, tmp_path, s, wrong) for s, wrong in
             students.items()}
    # s01 submits again, before the first is graded: only the latest is graded
    _submit(course, exchange, tmp_path, "s01", wrong=True)
    # a damaged notebook: an error page, and the service goes on
    bad = tmp_path / "home-zed" / "work" / ASSIGNMENT
    bad.mkdir(parents=True)
    (bad / f"{ASSIGNMENT}.ipynb").write_text("{ not json", encoding="utf-8")
    submit_like_nbgrader(bad, exchange, COURSE_ID, "zed", ASSIGNMENT,
                         tmp_path / "home-zed" / "nbgrader_cache")
    with running(course, exchange, shared_pool, batch=4) as service:
        _released(service, len(students) + 2)
        status = service.journal.status()
    assert status["counts"] == {"released": len(students) + 1, "superseded": 1}, status
    assert status["latency"]["n"] == len(students) + 1
    errors = {e["student"]: e["error"] for e in status["errors"]}
    assert set(errors) == {"zed"}, errors
    from grader.engine.serve.journal import Journal
    from grader.engine.serve.service import journal_path

    journal = Journal(journal_path(course))
    try:
        rows = {r.student: r for r in journal.in_state("released")}
    finally:
        journal.close()
    for student, wrong in students.items():
        if student == "s01":
            wrong = True  # the latest submission is the one of record
        row = rows[student]
        assert row.error is None, row
        assert (row.score < row.max_score) if wrong else (row.score == row.max_score), row
        assert _rows(course, student)["assignments"] == 1
    first, latest = _published(exchange, homes["s01"], "s01")
    assert "Superseded" in first and "Superseded" not in latest and latest
    assert "could not be graded" in _published(exchange, tmp_path / "home-zed", "zed")[0]


def test_a_submission_handed_in_by_another_student_is_held(
        tmp_path: Path, shared_pool: _SharedPool) -> None:
    """``nbgrader submit --student ben`` run by another student of the course: held for the
    instructor (not graded, not in the gradebook, listed with the errors), and the account
    that handed it in is told so in its place."""
    import pwd

    from nbgrader.api import Gradebook

    course, exchange = instructor_course(tmp_path, generate=False)
    me = pwd.getpwuid(os.getuid()).pw_name  # who owns the folders this test submits
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        gb.add_student(me)  # the roster makes the owner a student of the course
    home = _submit(course, exchange, tmp_path, "ben", wrong=True)
    with running(course, exchange, shared_pool) as service:
        _released(service, 1)
        status = service.journal.status()
    assert status["counts"] == {"closed": 1}, status
    (error,) = [e["error"] for e in status["errors"] if e["student"] == "ben"]
    assert "held" in error and me in error
    assert _rows(course, "ben") == {"assignments": 0, "grades": 0}
    (page,) = _published(exchange, home, "ben")
    assert "Held for your instructor" in page


def test_hourly_limit_keeps_the_next_submission_waiting(
        tmp_path: Path, shared_pool: _SharedPool) -> None:
    course, exchange = instructor_course(tmp_path, generate=False)
    with running(course, exchange, shared_pool, overrides={"max_per_hour": 1}) as service:
        home = _submit(course, exchange, tmp_path, "ada", wrong=True)
        _released(service, 1)
        _submit(course, exchange, tmp_path, "ada")
        wait_for(lambda: any(r.not_before > time.time()
                             for r in service.journal.in_state("queued")), WAIT_S,
                 "the second submission to wait")
        time.sleep(1.0)  # a few more passes: still waiting, not graded
        waiting = service.journal.in_state("queued")
        assert len(waiting) == 1 and waiting[0].not_before > time.time() + 3500, waiting
        first_page, note = _published(exchange, home, "ada")
        assert "hourly limit" in note and "graded at about" in note, note
        assert html.escape(_hint()) in first_page or _hint() in first_page
        # an hour later (the journal says so): the waiting one is graded
        first = service.journal.in_state("released")[0]
        service.journal.update(first.id, graded_at=time.time() - 3601)
        service.journal.update(waiting[0].id, not_before=time.time() - 1)
        _released(service, 2)
        latest = service.journal.get(waiting[0].id)
    assert latest is not None and latest.score == latest.max_score, latest
    assert "hourly limit" not in _published(exchange, home, "ada")[1]


def _set_duedate(course: Path, when: dt.datetime) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=when)


def test_feedback_policies_before_and_after_the_deadline(
        tmp_path: Path, shared_pool: _SharedPool) -> None:
    course, exchange = instructor_course(tmp_path, generate=False)
    hint = _hint()
    # score only before the deadline: the score and no message
    with running(course, exchange, shared_pool, overrides={
            "feedback_before_deadline": "score"}) as service:
        home = _submit(course, exchange, tmp_path, "ada", wrong=True)
        _released(service, 1)
        row = service.journal.in_state("released")[0]
    page = _published(exchange, home, "ada")[0]
    assert row.feedback == "score" and f"{row.score:g} of {row.max_score:g}" in page, page
    assert hint not in page and html.escape(hint) not in page
    # nothing before the deadline: recorded, nothing released
    with running(course, exchange, shared_pool, overrides={
            "feedback_before_deadline": "none"}) as service:
        home = _submit(course, exchange, tmp_path, "ben", wrong=True)
        _released(service, 2)
        row = [r for r in service.journal.in_state("released") if r.student == "ben"][0]
    assert row.feedback == "withheld" and row.score is not None
    assert _published(exchange, home, "ben") == [""]
    assert _rows(course, "ben")["assignments"] == 1
    # after the deadline: graded and marked late, with the full feedback (the default) ...
    _set_duedate(course, dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1))
    with running(course, exchange, shared_pool, overrides={
            "feedback_before_deadline": "none"}) as service:
        home = _submit(course, exchange, tmp_path, "cat", wrong=True)
        _released(service, 3)
        row = [r for r in service.journal.in_state("released") if r.student == "cat"][0]
        ben = wait_for(lambda: [r for r in service.journal.in_state("released")
                                if r.student == "ben" and r.feedback == "hints"], WAIT_S,
                       "ben's withheld feedback once the deadline has passed")
    assert row.late == 1 and row.feedback == "hints", row
    page = _published(exchange, home, "cat")[0]
    assert hint in page or html.escape(hint) in page
    page = _published(exchange, tmp_path / "home-ben", "ben")[0]
    assert ben and (hint in page or html.escape(hint) in page)
    # ... or not graded at all (stop): the student is told, nothing is recorded
    with running(course, exchange, shared_pool, overrides={"after_deadline": "stop"}) as service:
        home = _submit(course, exchange, tmp_path, "dan")
        wait_for(lambda: service.journal.in_state("closed"), WAIT_S, "the closed submission")
    assert "after the deadline" in _published(exchange, home, "dan")[0]
    assert _rows(course, "dan")["assignments"] == 0


def test_sigkill_mid_grade_then_restart_records_once(tmp_path: Path) -> None:
    course, exchange = instructor_course(tmp_path, generate=False)
    home = _submit(course, exchange, tmp_path, "kim",
                   extra="import time as _t\n_t.sleep(12)")
    env = clean_env(tmp_path / "home-instructor")
    (tmp_path / "home-instructor").mkdir(exist_ok=True)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    cmd = [sys.executable, "-m", "grader", "serve", "--course", str(course), "--exchange",
           str(exchange), "--jobs", "1", "-a", ASSIGNMENT]
    log1 = tmp_path / "serve1.log"
    db = course / ".convgrade" / "serve.sqlite"

    def state() -> str | None:
        if not db.exists():
            return None
        con = sqlite3.connect(db)
        try:
            row = con.execute("SELECT state FROM submissions").fetchone()
        except sqlite3.OperationalError:
            return None
        finally:
            con.close()
        return row[0] if row else None

    with open(log1, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(lambda: state() == "grading", WAIT_S, "the service to start grading")
        time.sleep(2.0)  # inside the 12 s the notebook takes
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert state() == "grading", log1.read_text()
    # restart: resumes the submission, grades it once more, records it once, releases it
    done = subprocess.run([*cmd, "--once"], cwd=course, env=env, capture_output=True,
                          text=True, timeout=WAIT_S * 2, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming 1 queued" in done.stderr, done.stderr
    assert state() == "released", done.stderr
    con = sqlite3.connect(db)
    attempts, score, max_score = con.execute(
        "SELECT attempts, score, max_score FROM submissions").fetchone()
    con.close()
    assert attempts == 2 and score == max_score, (attempts, score, max_score)
    rows = _rows(course, "kim")
    assert rows["assignments"] == 1, rows
    assert rows["grades"] == _grades_per_submission(course) > 0, rows
    assert _published(exchange, home, "kim")[0], "no feedback released after the restart"
    status = subprocess.run([*cmd[:3], "serve", "--course", str(course), "--status"],
                            cwd=course, env=env, capture_output=True, text=True, check=True)
    assert "1 released" in status.stdout and "p50" in status.stdout, status.stdout

    # SIGTERM stops a running service cleanly (exit 0, journal closed, lock released)
    proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: subprocess.run(
            [*cmd[:3], "serve", "--course", str(course), "--status"], cwd=course, env=env,
            capture_output=True, text=True, check=True).stdout.startswith("service: running"),
            WAIT_S,
            "the service to say it runs", every=0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 0 and "stopped" in out, out
    status = subprocess.run([*cmd[:3], "serve", "--course", str(course), "--status"],
                            cwd=course, env=env, capture_output=True, text=True, check=True)
    assert status.stdout.startswith("service: not running"), status.stdout


def _grades_per_submission(course: Path) -> int:
    """The grade rows one submission of the assignment has (one per graded cell)."""
    db = sqlite3.connect(course / "gradebook.db")
    try:
        return db.execute(
            "SELECT COUNT(*) FROM grade_cells gc JOIN base_cell bc ON gc.id = bc.id "
            "JOIN notebook n ON bc.notebook_id = n.id "
            "JOIN assignment a ON n.assignment_id = a.id WHERE a.name = ?",
            (ASSIGNMENT,)).fetchone()[0]
    finally:
        db.close()
