"""Shared fixtures for the autograding tests.

* ``tiny_course``: a throw-away course with one small assignment (``tiny``) whose hidden tests
  call a local ``tinycheck`` module, plus its generated release. It exercises the whole
  pipeline (precheck, worker, judge, nbgrader recording) without torch.
* ``StubWorkerPool``: a minimal stand-in for :class:`grader.engine.execute.pool.WorkerPool`
  (forks one child per submission, no sandbox) used with ``tiny``, whose checks report through
  ``tinycheck.SINK`` rather than ``grader.probe``.
* ``course_copy``: the real course (``source/`` and ``nbgrader_config.py``) copied to a
  temporary folder once per session, for the tests that grade the real assignments.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = str(Path(sys.executable).parent)

TINYCHECK = '''"""Checks for the tiny test assignment (stands in for grader.probe + checks)."""
from collections import namedtuple

Verdict = namedtuple("Verdict", "passed message hint")
SINK = None
EXPECTED = {"add": [3, 4, 0], "mul": [2, 12, 0]}
INPUTS = [(1, 2), (-1, 5), (0, 0)]
MUL_INPUTS = [(1, 2), (3, 4), (0, 9)]


def _call(fn, args):
    try:
        return fn(*args)
    except Exception as exc:
        return "raised " + type(exc).__name__


def judge(name, record, source=None):
    """Compare the recorded values with the expected ones."""
    got = record.get("values")
    if got == EXPECTED[name]:
        return Verdict(True, "", None)
    return Verdict(False, f"{name}: expected {EXPECTED[name]}, got {got}", f"{name}_wrong")


def _emit(name, record):
    if SINK is not None:
        SINK(name, record)
        return
    verdict = judge(name, record)
    if not verdict.passed:
        raise AssertionError(verdict.message)


def check_add(add):
    _emit("add", {"values": [_call(add, a) for a in INPUTS]})


def check_mul(mul):
    _emit("mul", {"values": [_call(mul, a) for a in MUL_INPUTS]})
'''


def _code(source: str, **nbg: Any) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if nbg:
        cell.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False,
                                     "locked": False, **nbg}
    return cell


def _md(source: str, **nbg: Any) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source)
    if nbg:
        cell.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False,
                                     "locked": False, **nbg}
    return cell


def tiny_source_notebook() -> nbformat.NotebookNode:
    """The instructor's version of the tiny assignment."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        _md("# Tiny assignment\nWrite `add` and `mul`."),
        _code("import math", grade_id="setup", locked=True),
        _code("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
              grade_id="add_solution", solution=True),
        _code("assert add(1, 1) == 2, 'add(1, 1) should be 2'\n### BEGIN HIDDEN TESTS\n"
              "from tinycheck import check_add\ncheck_add(add)\n### END HIDDEN TESTS",
              grade_id="add_tests", grade=True, points=2),
        _code("def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION",
              grade_id="mul_solution", solution=True),
        _code("### BEGIN HIDDEN TESTS\nfrom tinycheck import check_mul\ncheck_mul(mul)\n"
              "### END HIDDEN TESTS", grade_id="mul_tests", grade=True, points=1),
        _md("Why is addition commutative?\n"),
        _md("### BEGIN SOLUTION\nBecause.\n### END SOLUTION", grade_id="why_answer",
            grade=True, solution=True, points=1),
    ]
    return nb


def run_nbgrader(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the nbgrader command line in ``root`` with the venv's bin first on PATH."""
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    env.pop("CONVGRADE_DB_URL", None)
    proc = subprocess.run([os.path.join(VENV_BIN, "nbgrader"), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _course_skeleton(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    config = REPO / "nbgrader_config.py"
    if config.exists():
        shutil.copy2(config, root / "nbgrader_config.py")
    else:
        (root / "nbgrader_config.py").write_text(
            "c = get_config()\nc.CourseDirectory.course_id = 'convgrade'\n")


@pytest.fixture(scope="session")
def tiny_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course with the ``tiny`` assignment and its generated release (read-only use)."""
    root = tmp_path_factory.mktemp("tiny") / "course"
    _course_skeleton(root)
    src = root / "source" / "tiny"
    src.mkdir(parents=True)
    nbformat.write(tiny_source_notebook(), str(src / "tiny.ipynb"))
    (src / "tinycheck.py").write_text(TINYCHECK)
    run_nbgrader(root, "generate_assignment", "tiny", "--force")
    (root / "gradebook.db").unlink(missing_ok=True)
    return root


def tiny_release(course: Path) -> nbformat.NotebookNode:
    """The student version of ``tiny`` (blank answers)."""
    return nbformat.read(str(course / "release" / "tiny" / "tiny.ipynb"), as_version=4)


def tiny_submission(course: Path, add: str | None = "return a + b",
                    mul: str | None = "return a * b") -> nbformat.NotebookNode:
    """A student's notebook: the release with the given function bodies filled in."""
    nb = tiny_release(course)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "add_solution" and add is not None:
            cell.source = f"def add(a, b):\n    {add}"
        if gid == "mul_solution" and mul is not None:
            cell.source = f"def mul(a, b):\n    {mul}"
        if gid == "why_answer":
            cell.source = "Because order does not matter."
    return nb


def write_nb(nb: nbformat.NotebookNode, path: Path) -> Path:
    """Write a notebook, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


# ---------------------------------------------------------------------------------------------
# a stand-in worker pool for the tiny assignment


@dataclass
class StubCellResult:
    index: int
    outputs: list[dict]
    error: dict | None
    records: list[tuple[str, dict]] = field(default_factory=list)


@dataclass
class StubRunResult:
    cells: list[StubCellResult]
    error: str | None
    seconds: float


def _child(cells: list[Any], check_dir: str, conn: Any) -> None:
    sys.path.insert(0, check_dir)
    import tinycheck  # noqa: PLC0415

    ns: dict[str, Any] = {"__name__": "__main__"}
    for job in cells:
        records: list[tuple[str, dict]] = []
        tinycheck.SINK = lambda name, record, records=records: records.append((name, record))
        out, err = io.StringIO(), io.StringIO()
        error = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile(job.source, f"<cell {job.index}>", "exec"), ns)
        except BaseException as exc:  # noqa: BLE001 - report everything, like a kernel
            error = {"ename": type(exc).__name__, "evalue": str(exc),
                     "traceback": traceback.format_exception_only(type(exc), exc)}
        outputs = []
        if out.getvalue():
            outputs.append({"output_type": "stream", "name": "stdout", "text": out.getvalue()})
        if err.getvalue():
            outputs.append({"output_type": "stream", "name": "stderr", "text": err.getvalue()})
        if error:
            outputs.append({"output_type": "error", **error})
        conn.send(StubCellResult(job.index, outputs, error, records))
    conn.send(None)


class StubWorkerPool:
    """Runs each submission in a forked child without a sandbox (tests only)."""

    def __init__(self, check_dir: Path, wall_seconds: float = 10.0) -> None:
        self.check_dir = str(check_dir)
        self.wall_seconds = wall_seconds
        self.closed = False

    def run(self, cells: list[Any]) -> StubRunResult:
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(cells, self.check_dir, child))
        start = time.monotonic()
        proc.start()
        child.close()
        results: list[StubCellResult] = []
        error = None
        while True:
            left = self.wall_seconds - (time.monotonic() - start)
            if left <= 0:
                proc.kill()
                error = f"the notebook took longer than {self.wall_seconds:g} s and was stopped"
                break
            if parent.poll(min(left, 0.1)):
                try:
                    item = parent.recv()
                except EOFError:
                    item = "eof"
                if item is None:
                    break
                if item == "eof":
                    proc.join(1)
                    error = f"the worker crashed (exit code {proc.exitcode})"
                    break
                results.append(item)
            elif not proc.is_alive() and not parent.poll():
                proc.join(1)
                error = f"the worker crashed (exit code {proc.exitcode})"
                break
        proc.join(2)
        if proc.is_alive():
            proc.kill()
        return StubRunResult(results, error, time.monotonic() - start)

    def map(self, lists: list[list[Any]]):
        for position, cells in enumerate(lists):
            yield position, self.run(cells)

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def tiny_pool_factory(tiny_course: Path):
    """A pool factory for :func:`grader.engine.autograde.autograde` using
    :class:`StubWorkerPool`."""
    check_dir = tiny_course / "source" / "tiny"

    def factory(jobs: int | None, sandbox: bool, timeout: float | None) -> StubWorkerPool:
        return StubWorkerPool(check_dir, timeout or 10.0)

    return factory


@pytest.fixture()
def tiny_judge(tiny_course: Path):
    """The judge of the tiny assignment (``tinycheck.judge``)."""
    sys.path.insert(0, str(tiny_course / "source" / "tiny"))
    try:
        import tinycheck  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    return tinycheck.judge


# ---------------------------------------------------------------------------------------------
# the real course


def real_assignments() -> list[str]:
    """Assignments whose source notebook exists in this checkout."""
    src = REPO / "source"
    if not src.is_dir():
        return []
    return sorted(d.name for d in src.iterdir() if (d / f"{d.name}.ipynb").exists())


@pytest.fixture(scope="session")
def course_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real course (source/, release/, nbgrader_config.py) in a temporary folder."""
    if not real_assignments():
        pytest.fail("no source notebooks in source/: the course is missing from this checkout")
    root = tmp_path_factory.mktemp("course") / "course"
    _course_skeleton(root)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    shutil.copytree(REPO / "source", root / "source", ignore=ignore)
    if all((REPO / "release" / a / f"{a}.ipynb").exists() for a in real_assignments()):
        # release/ is committed and checked elsewhere to be exactly what generation produces
        shutil.copytree(REPO / "release", root / "release", ignore=ignore)
    else:
        for name in real_assignments():
            run_nbgrader(root, "generate_assignment", name, "--force")
        (root / "gradebook.db").unlink(missing_ok=True)
    return root


@pytest.fixture(scope="session")
def demo_course(course_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real course with the demo class (grader.demo: 30 generated students) in
    ``submitted/``. Treat as read-only: tests copy what they change."""
    from grader import demo
    root = tmp_path_factory.mktemp("demo") / "course"
    shutil.copytree(course_copy, root)
    demo.make_demo_class(root)
    return root


#: Fixtures that start real components (nbgrader on a course copy, warm worker pools, a
#: browser, Jupyter, PostgreSQL): a test that uses one is end-to-end wherever it stands.
E2E_FIXTURES = frozenset({"course_copy", "demo_course", "tiny_course", "tiny_pool_factory",
                          "pool", "plain_pool", "browser", "jupyter_lab", "pg_server"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a real component ``e2e``, so that ``pytest -m "not e2e"`` is
    the fast unit suite; the README's test command runs both."""
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture()
def records() -> Iterator[dict[str, dict]]:
    """Capture what the probe records (by check name) instead of judging in process."""
    from grader.runtime import probe

    captured: dict[str, dict] = {}
    probe.set_sink(lambda name, record: captured.__setitem__(name, record))
    yield captured
    probe.set_sink(None)
