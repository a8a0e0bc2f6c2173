"""Grading on a Dask cluster (``--cluster``, :mod:`grader.engine.executors.dask`).

A real ``dask scheduler`` and two ``dask worker`` processes (the venv's ``dask`` command) on
127.0.0.1, random free ports, killed at teardown. Against local grading of the demo class's
``channels_pooling`` with the same ``--seed``:

* ``--cluster tcp://...`` through the command line gives the same JSON results (scores,
  messages, per-test outcomes, hints, problems, review flags) and the same gradebook rows;
* a worker SIGKILLed while it runs a submission: every submission is graded, recorded once
  (one gradebook submission each, one "record" progress step each) and scored as locally;
* an unreachable scheduler: a clear error and exit 2 before anything is graded;
* ``--cluster local:2`` (a LocalCluster) grades like local too;
* without ``--cluster`` neither ``grader.cli`` nor a local run imports ``distributed``.
* ``serve`` on the cluster: submissions landing in a real exchange are graded on the workers,
  recorded once and released with their hints.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.cli import main

pytestmark = pytest.mark.e2e  # real Dask scheduler and workers, worker pools, nbgrader

REPO = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).parent / "dask")
ASSIGNMENT = "channels_pooling"
SEED = 20261202


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Cluster:
    """A scheduler and its workers, each a process in its own session."""

    def __init__(self, log_dir: Path) -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                  str(self.port), "--no-dashboard"])

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            env=_env(), cwd=self.log_dir,
                                            start_new_session=True)
        log.close()

    def add_worker(self, name: str) -> None:
        """Start a one-thread worker without a nanny (a SIGKILL really loses it)."""
        self._start(name, [DASK, "worker", self.address, "--name", name, "--nthreads", "1",
                           "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                           "--memory-limit", "0"])

    def wait_for(self, names: set[str], timeout: float = 120.0) -> dict[str, str]:
        """Wait until the workers ``names`` have joined; their addresses by name."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                workers = client.scheduler_info(n_workers=-1)["workers"]
                by_name = {str(w["name"]): addr for addr, w in workers.items()}
                if names <= set(by_name):
                    return by_name
                for name, proc in self.procs.items():
                    assert proc.poll() is None, f"{name} exited: {self.log(name)}"
                time.sleep(0.3)
        pytest.fail(f"workers {names} did not join {self.address}: {self.log('scheduler')}")

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> None:
        """SIGKILL one process (not its session: its pool's servers lose their parent)."""
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def close(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the worker, its pool and its servers
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A scheduler and two workers (w1, w2) on 127.0.0.1."""
    one = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        one.add_worker("w1")
        one.add_worker("w2")
        one.wait_for({"w1", "w2"})
        yield one
    finally:
        one.close()


def _class(demo_course: Path, dest: Path, students: int | None = None) -> Path:
    """A copy of the demo course (its gradebook and outputs are the run's own)."""
    root = dest / "course"
    shutil.copytree(demo_course, root, ignore=shutil.ignore_patterns("gradebook.db",
                                                                     "autograded"))
    if students is not None:
        for extra in sorted((root / "submitted").iterdir())[students:]:
            shutil.rmtree(extra)
    return root


def _grade(course: Path, *extra: str) -> tuple[int, str, str, dict[str, Any]]:
    """``python -m grader autograde submitted/`` in process; (code, out, err, JSON)."""
    import io

    out, err = io.StringIO(), io.StringIO()
    result = course / "result.json"
    code = main(["autograde", str(course / "submitted"), "--assignment", ASSIGNMENT,
                 "--course", str(course), "--seed", str(SEED), "--json", str(result), *extra],
                out=out, err=err)
    return code, out.getvalue(), err.getvalue(), (
        json.loads(result.read_text()) if result.exists() else {})


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """The result without what depends on when and where it ran (times, the course path)."""
    entries = {}
    for entry in result["results"]:
        entry = {k: v for k, v in entry.items() if k not in ("seconds", "notebook")}
        entries[entry["student"]] = entry
    assert len(entries) == len(result["results"]), "a student appears twice"
    return {"seed": result["seed"], "entries": entries}


def _gradebook(course: Path) -> dict[str, Any]:
    """Per student: the submission's score and each grade's auto score, and how many
    submissions the gradebook holds for each."""
    from nbgrader.api import Gradebook

    rows: dict[str, Any] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            assert sub.student_id not in rows, f"{sub.student_id} recorded twice"
            rows[sub.student_id] = (sub.score, sorted(
                (g.name, g.auto_score) for nb in sub.notebooks for g in nb.grades))
    return rows


@pytest.fixture(scope="module")
def local(demo_course: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo class graded by the local pool: (comparable JSON, gradebook rows)."""
    course = _class(demo_course, tmp_path_factory.mktemp("local"))
    code, out, err, result = _grade(course)
    assert code == 2, out + err  # s09-ivan's notebook is damaged: exit 2 as always
    assert "s09-ivan" in out.splitlines()[-1]
    return _comparable(result), _gradebook(course)


def test_cluster_grades_like_local(cluster: Cluster, demo_course: Path, tmp_path: Path,
                                   local: tuple[dict[str, Any], dict[str, Any]]) -> None:
    course = _class(demo_course, tmp_path)
    code, out, err, result = _grade(course, "--cluster", cluster.address)
    assert code == 2, out + err
    assert _comparable(result) == local[0]
    assert _gradebook(course) == local[1]
    assert len(local[1]) == 29  # every readable notebook recorded (s09-ivan's is not)
    passed = {t["passed"] for e in local[0]["entries"].values() for t in e["tests"]}
    assert passed == {True, False}  # the class has right and wrong answers


def test_lost_worker_grades_every_submission_once(
        cluster: Cluster, demo_course: Path, tmp_path: Path,
        local: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """A third worker is SIGKILLed while it runs a submission; its work goes to w1 and w2."""
    from distributed import Client

    from grader.engine.autograde import autograde
    from grader.engine.executors import pool_factory

    cluster.add_worker("doomed")
    doomed = cluster.wait_for({"w1", "w2", "doomed"})["doomed"]
    course = _class(demo_course, tmp_path)
    steps: dict[str, list[tuple[int, str]]] = {"run": [], "record": []}
    killed = threading.Event()
    in_flight: list[Any] = []

    def progress(phase: str, done: int, total: int, label: str) -> None:
        if phase in steps:
            steps[phase].append((done, label))
        if phase == "run" and done == 3 and not killed.is_set():
            with Client(cluster.address, timeout=10, set_as_default=False) as client:
                deadline = time.monotonic() + 30
                while not client.processing(workers=[doomed])[doomed]:
                    assert time.monotonic() < deadline, "the doomed worker never got a task"
                    time.sleep(0.01)
                in_flight.extend(client.processing(workers=[doomed])[doomed])
                cluster.kill("doomed")
            killed.set()

    result = autograde([course / "submitted"], ASSIGNMENT, course=course, seed=SEED,
                       progress=progress, pool_factory=pool_factory(cluster.address))
    assert killed.is_set() and in_flight, "the worker was not killed mid-run"
    assert cluster.procs["doomed"].poll() is not None
    assert _comparable(result) == local[0]
    assert _gradebook(course) == local[1]
    runs = [label for _, label in steps["run"]]
    records = [label for _, label in steps["record"]]
    assert sorted(runs) == sorted(set(runs)) and len(runs) == 29
    assert sorted(records) == sorted(local[1]) and len(records) == 29


def test_unreachable_scheduler_is_a_clear_error_before_grading(
        demo_course: Path, tmp_path: Path) -> None:
    course = _class(demo_course, tmp_path, students=3)
    address = f"tcp://127.0.0.1:{_free_port()}"  # nobody listens there
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(course / "submitted"),
         "--assignment", ASSIGNMENT, "--course", str(course), "--cluster", address],
        capture_output=True, text=True, env={**_env(), "CONVGRADE_DASK_CONNECT_TIMEOUT": "2"},
        timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("exit 2: nothing was graded (cannot reach the Dask scheduler at "
                           f"{address} within 2 s"), last
    assert "Traceback" not in proc.stderr
    assert not [line for line in proc.stderr.splitlines()
                if line.startswith(("running", "recording"))], proc.stderr
    assert not (course / "gradebook.db").exists() and not (course / "autograded").exists()


def test_bad_cluster_option(tmp_path: Path) -> None:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(["autograde", str(tmp_path), "-a", ASSIGNMENT, "--cluster", "local:zero"],
                out=out, err=err)
    assert code == 2 and "local:N" in err.getvalue()
    assert out.getvalue().startswith("exit 2: nothing was graded")


def test_local_cluster(demo_course: Path, tmp_path: Path,
                       local: tuple[dict[str, Any], dict[str, Any]]) -> None:
    course = _class(demo_course, tmp_path, students=8)
    code, out, err, result = _grade(course, "--cluster", "local:2")
    assert code == 0, out + err
    mine = _comparable(result)
    assert len(mine["entries"]) == 8
    assert mine["entries"] == {s: local[0]["entries"][s] for s in mine["entries"]}
    assert _gradebook(course) == {s: local[1][s] for s in mine["entries"]}


def test_no_dask_without_cluster(demo_course: Path, tmp_path: Path) -> None:
    """``import grader.cli`` and a local run of one submission leave ``distributed`` out."""
    course = _class(demo_course, tmp_path, students=1)
    script = (
        "import sys, grader.cli\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
        f"code = grader.cli.main(['autograde', {str(course / 'submitted')!r}, '-a', "
        f"{ASSIGNMENT!r}, '--course', {str(course)!r}])\n"
        "print('CODE', code, 'distributed' in sys.modules, 'dask' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_env(), timeout=300, check=False)
    assert proc.stdout.strip().splitlines()[-1] == "CODE 0 False False", (
        proc.stdout + proc.stderr)


def test_serve_grades_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """``serve --cluster``: the service's one pool is the Dask executor (the same
    ``executors.pool_factory`` as ``autograde --cluster``); a right and a wrong submission
    landing in a real exchange are graded on the workers, recorded once and released, the
    wrong one's feedback with its known mistake's hint."""
    from exchangekit import (
        ASSIGNMENT,
        WRONG_CHECK,
        instructor_course,
        student_notebook,
        submit_like_nbgrader,
    )

    from grader.engine.executors import pool_factory
    from grader.engine.serve.service import Service
    from grader.registry import course as load_course

    course, exchange = instructor_course(tmp_path, generate=False)
    for student, wrong in (("ada", False), ("ben", True)):
        home = tmp_path / f"home-{student}"
        folder = student_notebook(course, home / "work" / ASSIGNMENT, wrong=wrong).parent
        submit_like_nbgrader(folder, exchange, "convgrade", student, ASSIGNMENT,
                             home / "nbgrader_cache")
    service = Service(course, exchange=exchange, assignments=[ASSIGNMENT],
                      pool_factory=pool_factory(cluster.address), seed=4321,
                      poll_interval=0.1)
    try:
        service.run(once=True)
        rows = {row.student: row for row in service.journal.in_state("released")}
    finally:
        service.close()
    assert set(rows) == {"ada", "ben"}, rows
    assert rows["ada"].error is None and rows["ada"].score == rows["ada"].max_score
    assert rows["ben"].error is None and 0 < rows["ben"].score < rows["ben"].max_score
    db = sqlite3.connect(course / "gradebook.db")
    try:
        per_student = dict(db.execute(
            "SELECT student_id, COUNT(*) FROM submitted_assignment GROUP BY student_id"))
    finally:
        db.close()
    assert per_student == {"ada": 1, "ben": 1}
    hint = load_course().mistakes(WRONG_CHECK)[0].hint
    pages = [p.read_text(encoding="utf-8")
             for p in (course / "feedback" / "ben" / ASSIGNMENT).glob("*.html")]
    assert pages and any(hint in page or html.escape(hint) in page for page in pages)
