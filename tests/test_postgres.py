"""The gradebook in a real PostgreSQL server.

Starts a throw-away PostgreSQL cluster (``initdb`` + ``pg_ctl`` from Debian's
``/usr/lib/postgresql/<version>/bin``) on a free loopback port, points the course at it with
``CONVGRADE_DB_URL`` (read by ``nbgrader_config.py``), then runs the instructor's cycle on a
copy of the course: ``nbgrader generate_assignment``, three of the demo class from ``python -m
grader.demo`` (s01-ada: all right, s02-ben: typical mistakes, s03-cy: blank) plus dee (exactly
one exercise solved), ``python -m grader autograde submitted/``, ``nbgrader export``. The
grades are checked three ways: the autograde JSON, the exported CSV and SQL run directly
against PostgreSQL with psycopg2; no sqlite gradebook may appear. The cycle ends with ``python
-m grader.engine.classreport`` on the same JSON.

Skipped (with the reason) only when the PostgreSQL server binaries or psycopg2 are missing;
``bash scripts/setup.sh`` installs both.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ASSIGNMENT = "channels_pooling"
SOLVED_ONE = "corr2d_tests"  # the one exercise student dee solves
DB_NAME = "convgrade_gradebook"


# --------------------------------------------------------------------------- server


def _pg_bindir() -> Path | None:
    """The newest Debian PostgreSQL server bin directory holding initdb and pg_ctl."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(d)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            try:
                found.append((int(path.parent.name), path))
            except ValueError:
                continue
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running throw-away PostgreSQL cluster."""

    port: int
    user: str
    dbname: str
    datadir: Path

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (trust auth over TCP, no password).

        ``+psycopg2`` is needed: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3,
        which is not installed; psycopg2-binary is.
        """
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    def connect(self, dbname: str | None = None):  # noqa: ANN201 -- psycopg2 connection
        """A psycopg2 connection to ``dbname`` (default: the test database)."""
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname=dbname or self.dbname
        )


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    """Start PostgreSQL in a temporary directory; stop it and delete everything afterwards."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin"
            " or on PATH; `bash scripts/setup.sh` installs the apt package `postgresql`"
        )
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail("psycopg2 is not installed; `pip install -e .[dev]` installs psycopg2-binary")

    # PostgreSQL refuses to run as root: as root, run the server as the `postgres` user in a
    # directory it owns (directly under /tmp, since pytest's own tmp dirs are mode 0700).
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        if shutil.which("runuser") is None:
            pytest.fail("running as root but `runuser` is missing: cannot start PostgreSQL")
        prefix = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="convgrade-pg-"))
    datadir, sockdir, logfile = base / "data", base / "sock", base / "server.log"
    sockdir.mkdir()
    if as_root:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sockdir, "postgres", "postgres")
    superuser = "postgres"
    port = _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, cwd=base
        )

    init = run(
        str(bindir / "initdb"),
        "-D",
        str(datadir),
        "-U",
        superuser,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
    options = (
        f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    start = run(
        str(bindir / "pg_ctl"),
        "-D",
        str(datadir),
        "-o",
        options,
        "-l",
        str(logfile),
        "-w",
        "-t",
        "60",
        "start",
    )
    server = PgServer(port=port, user=superuser, dbname=DB_NAME, datadir=datadir)
    try:
        log = logfile.read_text(errors="replace") if logfile.exists() else ""
        assert start.returncode == 0, f"pg_ctl start failed:\n{start.stderr}\n{log}"
        conn = server.connect("postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME}")
        conn.close()
        yield server
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- course


def _env(**extra: str) -> dict[str, str]:
    """Environment for nbgrader and the grader: the venv's bin first on PATH (nbgrader
    runs ``alembic`` from PATH when it creates a gradebook)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CONVGRADE_DB_URL", None)
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    """Run ``cmd``; fail the test with its output unless it exits 0."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout + proc.stderr


def _copy_course(dest: Path) -> Path:
    """Copy what an instructor's course folder holds (config and source/) to ``dest``."""
    source = REPO / "source" / ASSIGNMENT
    if not any(source.glob("*.ipynb")):
        pytest.fail(f"the course has no source notebook in {source}")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    shutil.copytree(
        REPO / "source",
        dest / "source",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )
    return dest


def _points(source_nb: Path) -> dict[str, float]:
    """grade_id -> points of every autograded test cell of the source notebook."""
    nb = nbformat.read(source_nb, as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    }


def _submit_one_exercise(course: Path, student: str, test_id: str) -> None:
    """Write submitted/<student>/<assignment>/ from the release notebook with only the
    answer cell before the test cell ``test_id`` filled in (a correct answer, typed as a
    student would: the reference solution's source)."""
    from grader.registry import solution_source

    (release_nb,) = (course / "release" / ASSIGNMENT).glob("*.ipynb")
    nb = nbformat.read(release_nb, as_version=4)
    answer = None
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == test_id:
            break
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            answer = cell
    assert answer is not None, f"no solution cell before {test_id}"
    grade_id = answer.metadata["nbgrader"]["grade_id"]
    answer.source = solution_source(grade_id.removesuffix("_solution"))
    dest = course / "submitted" / student / ASSIGNMENT
    dest.mkdir(parents=True)
    nbformat.write(nb, dest / release_nb.name)


def _why(result: dict) -> str:
    """A result entry's score and each test's message: what a wrong score needs to be read."""
    lines = [f"{result['student']}: {result['score']} of {result.get('max_score')}"
             f" (error: {result.get('error')}, problems: {result.get('problems')})"]
    lines += [f"  {t['grade_id']}: {t['score']}/{t['max_score']} {t.get('message') or ''}"
              for t in result.get("tests", [])]
    return "\n".join(lines)


def _autograde(course: Path, env: dict[str, str], out_json: Path) -> dict:
    """``python -m grader autograde submitted/ --assignment A --json OUT``; its JSON."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "autograde",
            "submitted/",
            "--assignment",
            ASSIGNMENT,
            "--json",
            str(out_json),
        ],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    detail = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    # exit status 1 means "graded, some tests failed" (two of our students fail tests)
    assert proc.returncode in (0, 1), f"grader autograde exited {proc.returncode}\n{detail}"
    assert out_json.exists(), f"grader autograde wrote no JSON\n{detail}"
    return json.loads(out_json.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the test


def test_grading_cycle_with_postgres_gradebook(pg_server: PgServer, tmp_path: Path) -> None:
    course = _copy_course(tmp_path / "course")
    env = _env(CONVGRADE_DB_URL=pg_server.url)

    _run([str(VENV_BIN / "nbgrader"), "generate_assignment", ASSIGNMENT, "--force"], course, env)
    release_nb = next((course / "release" / ASSIGNMENT).glob("*.ipynb"))
    source_nb = course / "source" / ASSIGNMENT / release_nb.name
    points = _points(source_nb)
    assert SOLVED_ONE in points, f"{SOLVED_ONE} is not a test cell of {source_nb.name}"
    total = sum(points.values())
    assert not (course / "gradebook.db").exists(), "nbgrader used sqlite, not CONVGRADE_DB_URL"

    # three of the demo class (s01-ada: all right, s02-ben: typical mistakes, s03-cy:
    # blank) and dee, who
    # solved exactly one exercise
    _run([sys.executable, "-m", "grader.demo", "--course", str(course), "--students",
          "s01-ada", "s02-ben", "s03-cy"], course, env)
    _submit_one_exercise(course, "dee", SOLVED_ONE)
    students = {"s01-ada", "s02-ben", "s03-cy", "dee"}
    expected = {"s01-ada": total, "s03-cy": 0.0, "dee": points[SOLVED_ONE]}

    report = _autograde(course, env, tmp_path / "results.json")
    by_student = {r["student"]: r for r in report["results"]}
    assert set(by_student) == students
    for r in by_student.values():
        assert not r.get("error"), f"{r['student']}: {r['error']}"
    scores = {s: float(r["score"]) for s, r in by_student.items()}
    for student, score in expected.items():
        assert scores[student] == pytest.approx(score), _why(by_student[student])
    assert scores["s02-ben"] < total, "ben's typical mistakes should cost points"
    assert not (course / "gradebook.db").exists(), "autograde used sqlite, not CONVGRADE_DB_URL"

    # nbgrader export reads the same gradebook: one CSV row per student
    _run([str(VENV_BIN / "nbgrader"), "export", "--to", "grades.csv"], course, env)
    with open(course / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert set(rows) == students
    for student, row in rows.items():
        assert row["assignment"] == ASSIGNMENT
        assert float(row["score"]) == pytest.approx(scores[student]), row
        assert float(row["max_score"]) == pytest.approx(total), row

    # and the rows really are in PostgreSQL
    conn = pg_server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                """
                SELECT st.id, SUM(COALESCE(g.manual_score, g.auto_score, 0))
                FROM grade g
                JOIN submitted_notebook sn ON g.notebook_id = sn.id
                JOIN submitted_assignment sa ON sn.assignment_id = sa.id
                JOIN assignment a ON sa.assignment_id = a.id
                JOIN student st ON sa.student_id = st.id
                WHERE a.name = %s
                GROUP BY st.id ORDER BY st.id
                """,
                (ASSIGNMENT,),
            )
            db_scores = dict(cur.fetchall())
            cur.execute(
                "SELECT g.auto_score FROM grade g JOIN base_cell c ON g.cell_id = c.id "
                "JOIN submitted_notebook sn ON g.notebook_id = sn.id "
                "JOIN submitted_assignment sa ON sn.assignment_id = sa.id "
                "WHERE sa.student_id = 'dee' AND c.name = %s",
                (SOLVED_ONE,),
            )
            (dee_cell,) = cur.fetchone()
    finally:
        conn.close()
    assert db_scores == pytest.approx(scores)
    assert dee_cell == pytest.approx(points[SOLVED_ONE])

    # the cycle ends with the class report, read from the same autograde JSON
    _run(
        [sys.executable, "-m", "grader.engine.classreport", str(tmp_path / "results.json"),
         "--out", str(tmp_path / "class")],
        course, env,
    )  # fmt: skip
    summary = json.loads((tmp_path / "class" / "class_report.json").read_text(encoding="utf-8"))
    (a,) = summary["assignments"]
    assert a["assignment"] == ASSIGNMENT and a["submissions"] == len(students)
    exercises = {ex["grade_id"]: ex for ex in a["exercises"]}
    assert set(exercises) == set(points)
    assert exercises[SOLVED_ONE]["passed"] == 2  # s01-ada and dee
    assert (tmp_path / "class" / "score_histogram.png").stat().st_size > 0


def test_one_transaction_per_student_on_postgres(pg_server: PgServer) -> None:
    """``SharedEngines.transaction`` on PostgreSQL (issue 12's one transaction per student):
    nbgrader's commits become savepoints, a failed write rolls back only its own savepoint,
    nothing is visible to another connection before the end, and what nbgrader committed
    before an exception stays."""
    from nbgrader.api import Gradebook, InvalidEntry

    from grader.engine import gradebook as gbmod

    admin = pg_server.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE convgrade_txn")
    admin.close()
    url = pg_server.url.rsplit("/", 1)[0] + "/convgrade_txn"
    with Gradebook(url):  # nbgrader creates its tables
        pass

    def students() -> list[str]:
        conn = pg_server.connect("convgrade_txn")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM student ORDER BY id")
                return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()

    with gbmod.shared_engines() as shared:
        with shared.transaction(url):
            with Gradebook(url) as gb:
                gb.add_student("ann")
            with Gradebook(url) as gb, pytest.raises(InvalidEntry):
                gb.add_student("ann")
            with Gradebook(url) as gb:
                gb.add_student("bob")
            assert students() == [], "the transaction was visible before its end"
        assert students() == ["ann", "bob"]
        with pytest.raises(RuntimeError), shared.transaction(url):
            with Gradebook(url) as gb:
                gb.add_student("cy")
            raise RuntimeError("nbgrader failed after committing cy")
        assert students() == ["ann", "bob", "cy"]
