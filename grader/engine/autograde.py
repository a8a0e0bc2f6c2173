"""Autograde submissions: precheck, run, judge, record with nbgrader, and build the result.

:func:`autograde` is the whole job behind ``python -m grader autograde``; it returns the
result dict that :mod:`grader.engine.reports` turns into JSON, JUnit, Markdown and Classroom files::

    {"assignment": "channels_pooling",
     "results": [{"student": "ada", "assignment": "channels_pooling",
                  "score": 11.0, "max_score": 13.0, "manual_max_score": 0.0,
                  "graded": True, "error": None, "problems": [...], "seconds": 0.4,
                  "tests": [{"grade_id": "corr2d_tests", "score": 2.0, "max_score": 2.0,
                             "passed": True, "message": "", "hint": None}, ...]}]}

``score``/``max_score`` count autograded test cells only; the points of manually graded
answers are in ``manual_max_score``. ``error`` is None for a clean submission; otherwise it
says what went wrong. ``graded`` is False only when no score could be computed at all
(unreadable notebook, missing file, nbgrader failure); a submission with a repaired notebook
or a timed-out cell is graded and carries an ``error`` as well.

Two engines record grades through nbgrader's own ``Autograde`` converter (sanitising with
``ClearOutput``, ``DeduplicateIds``, ``OverwriteKernelspec``, ``OverwriteCells``; recording
with ``SaveAutoGrades``), so the gradebook, ``nbgrader export``, formgrader and
``nbgrader generate_feedback`` work unchanged:

* ``nbgrader``: stock execution, one Jupyter kernel per notebook;
* ``fast`` (default): every submission first runs in :class:`grader.engine.execute.pool.WorkerPool`
  (forked, sandboxed workers, in parallel); nbgrader's ``Execute`` preprocessor is replaced
  by :class:`PrecomputedExecute`, which puts the worker's outputs into the notebook and judges
  each hidden check in this process with :func:`grader.checks.judge`. A failed verdict becomes
  the test cell's ``AssertionError`` output, so ``SaveAutoGrades`` scores exactly as stock
  nbgrader would. Where the course's steps allow it, the fast engine records without the
  converter itself: :class:`grader.engine.record.DirectRecorder` applies the same steps
  (nbgrader's ``SaveAutoGrades`` included) once per notebook and writes the same rows and
  files; a student it cannot record goes through the converter.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import queue
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from grader.engine import gradebook as gbmod
from grader.engine import record as recmod
from grader.engine import settings, speedups
from grader.engine.precheck import PrecheckResult, SourceSpec, is_test_cell, load_sources, precheck

__all__ = [
    "AutogradeError",
    "Submission",
    "autograde",
    "discover",
    "run_check",
]

ENGINES = ("fast", "nbgrader")
#: Record with one SQLAlchemy engine for all of a run's gradebook opens
#: (:func:`grader.engine.gradebook.shared_engines`), each fast-engine student in one gradebook
#: transaction, nbgrader's schema checks and notebook validations done once
#: (:mod:`grader.engine.speedups`), one gradebook session for collecting the entries and the
#: direct record path where the course allows it (:mod:`grader.engine.record`). Off:
#: nbgrader's own path; the rows and notebooks are the same either way
#: (tests/test_record_speed.py).
FAST_RECORDING = True
_STUDENT_RE = re.compile(r"[^A-Za-z0-9_.@+-]+")

Progress = Callable[[str, int, int, str], None]
"""progress(phase, done, total, label): called as submissions move through the phases."""


class AutogradeError(RuntimeError):
    """The run as a whole cannot proceed (unknown assignment, sandbox unavailable, ...)."""


# ---------------------------------------------------------------------------------------------
# finding submissions


@dataclass
class Submission:
    """One student's notebook for the assignment (one per notebook of the assignment)."""

    student: str
    notebook: Path
    """The student's notebook (may not exist: then that notebook gets an error entry)."""
    folder: Path | None = None
    """The student's ``submitted/<student>/<assignment>`` folder (extra files, timestamp)."""
    notebook_name: str = ""
    """The name of the assignment's notebook this is (``problem1`` for ``problem1.ipynb``)."""
    check: PrecheckResult | None = None
    seconds: float = 0.0
    run_error: str | None = None
    hints: dict[str, str | None] = field(default_factory=dict)
    nbgrader_error: str | None = None


@dataclass
class _Found:
    """One student's submission as found on disk: their id, folder and notebooks by name."""

    student: str
    folder: Path | None
    notebooks: dict[str, Path]


def _safe_id(name: str) -> str:
    return _STUDENT_RE.sub("_", name).strip("._") or "student"


def _notebooks(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))


def _in_folder(folder: Path, names: list[str]) -> dict[str, Path]:
    """Each of the assignment's notebooks in a student's folder (a path that may not exist).
    A one-notebook assignment also takes the folder's only notebook, whatever its name."""
    if len(names) == 1 and not (folder / f"{names[0]}.ipynb").exists():
        others = _notebooks(folder)
        if len(others) == 1:
            return {names[0]: others[0]}
    return {name: folder / f"{name}.ipynb" for name in names}


def _found_file(path: Path, assignment: str, names: list[str], student: str | None) -> _Found:
    """The submission a single notebook path stands for."""
    parent = path.parent
    if parent.name == assignment and parent.parent.parent.name == "submitted":
        notebooks = _in_folder(parent, names) if len(names) > 1 else {names[0]: path}
        return _Found(parent.parent.name, parent, notebooks)
    if len(names) > 1:
        if path.stem not in names:
            raise FileNotFoundError(
                f"{path}: assignment {assignment!r} has the notebooks "
                f"{', '.join(n + '.ipynb' for n in names)}; name the file after one of them "
                "or pass the student's folder"
            )
        notebooks = {name: parent / f"{name}.ipynb" for name in names}
        notebooks[path.stem] = path
        return _Found(student or parent.name, None, notebooks)
    if student:
        sid = student
    elif path.stem in (assignment, names[0]):
        sid = parent.name
    else:
        sid = path.stem
    return _Found(sid, None, {names[0]: path})


def _found_folder(path: Path, assignment: str, names: list[str],
                  student: str | None) -> list[_Found]:
    """The submissions a folder holds (see :func:`discover`)."""
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    students = [d for d in subdirs if (d / assignment).is_dir()]
    if students:  # a submitted/ folder
        return [_Found(d.name, d / assignment, _in_folder(d / assignment, names))
                for d in students]
    if (path / assignment).is_dir():
        return [_Found(student or path.name, path / assignment,
                       _in_folder(path / assignment, names))]
    if path.name == assignment:
        return [_Found(student or path.parent.name, path, _in_folder(path, names))]
    loose = _notebooks(path)
    if len(names) > 1 and any(nb.stem in names for nb in loose):
        return [_Found(student or path.name, path, _in_folder(path, names))]
    if loose and len(names) == 1:
        return [_Found(nb.stem, None, {names[0]: nb}) for nb in loose]
    raise FileNotFoundError(
        f"{path}: no submissions found (expected notebooks, or folders in the "
        f"submitted/<student>/{assignment}/ layout)"
    )


def discover(
    paths: Iterable[str | os.PathLike[str]],
    assignment: str,
    notebook_names: str | list[str],
    student: str | None = None,
) -> list[Submission]:
    """Turn command-line paths into submissions: one per (student, notebook of the assignment).

    ``notebook_names`` are the assignment's notebooks (``["problem1", "problem2"]``; a string
    for a one-notebook assignment). A path may be a notebook, a ``submitted/`` folder holding
    several students, one student's folder (holding ``<assignment>/``), a student's
    ``<assignment>`` folder, or, for a one-notebook assignment, a folder of loose notebooks
    (one student per file, named after the file). A notebook of the assignment that a student
    did not submit is a submission whose file does not exist (graded as that notebook's
    error). Student ids that collide get a numeric suffix. Raises FileNotFoundError for a path
    that does not exist.
    """
    names = [notebook_names] if isinstance(notebook_names, str) else list(notebook_names)
    found: list[_Found] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        path = path.resolve()
        if path.is_file():
            found.append(_found_file(path, assignment, names, student))
        else:
            found.extend(_found_folder(path, assignment, names, student))
    seen: dict[str, int] = {}
    subs: list[Submission] = []
    for one in found:
        sid = _safe_id(one.student)
        n = seen.get(sid, 0)
        seen[sid] = n + 1
        if n:
            sid = f"{sid}-{n + 1}"
        subs.extend(Submission(sid, nb, one.folder, name) for name, nb in one.notebooks.items())
    return subs


# ---------------------------------------------------------------------------------------------
# the fast engine's Execute replacement


def _error_output(ename: str, evalue: str, traceback: list[str] | None = None) -> NotebookNode:
    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue,
        traceback=traceback if traceback else [f"{ename}: {evalue}"],
    )


def _check_name(name: str) -> str:
    return name[len("check_"):] if name.startswith("check_") else name


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def cell_jobs(nb: NotebookNode) -> list[Any]:
    """The code cells of a notebook as :class:`grader.engine.execute.pool.CellJob` objects."""
    try:
        from grader.engine.execute.pool import CellJob
    except ImportError:  # the worker module is not installed: a plain stand-in
        CellJob = _CellJob  # noqa: N806

    return [
        CellJob(index=i, source=c.source, is_test=is_test_cell(c),
                grade_id=_grade_id(c) if is_test_cell(c) else None)
        for i, c in enumerate(nb.cells) if c.cell_type == "code"
    ]


@dataclass
class _CellJob:
    index: int
    source: str
    is_test: bool = False
    grade_id: str | None = None


def _job_key(nb: NotebookNode) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _student_source(nb: NotebookNode) -> str:
    from grader.engine.forbidden import join_cells

    return join_cells(c.source for c in nb.cells
                      if c.cell_type == "code" and not is_test_cell(c))


def apply_run(
    nb: NotebookNode,
    run: Any,
    spec: SourceSpec,
    judge: Callable[..., Any],
) -> dict[str, str | None]:
    """Put a worker :class:`RunResult` into ``nb`` and judge every test cell in place.

    Returns the hint of each failed test cell by grade_id. The records of a test cell are
    judged in the order it sent them; the first failed verdict becomes the cell's
    ``AssertionError`` output (as if the check had raised there, which is what stock nbgrader
    shows). Otherwise a cell that raised keeps its error, a cell whose expected checks did not
    all report fails with "the hidden test did not run", and a cell that did not run at all
    gets an error saying why.
    """
    by_index = {r.index: r for r in run.cells}
    checks = {c.grade_id: c.checks for c in spec.tests}
    source = _student_source(nb)
    hints: dict[str, str | None] = {}
    count = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        result = by_index.get(i)
        if result is None:
            cell.outputs = []
            cell.execution_count = None
            if is_test_cell(cell):
                why = run.error or "the worker returned no result for it"
                cell.outputs = [_error_output("CellNotRun", f"this cell did not run: {why}")]
            continue
        count += 1
        cell.execution_count = count
        outputs = [nbformat.from_dict(copy.deepcopy(o)) for o in (result.outputs or [])]
        for out in outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = count
        if result.error and not any(o.get("output_type") == "error" for o in outputs):
            err = result.error
            outputs.append(_error_output(str(err.get("ename", "Error")),
                                         str(err.get("evalue", "")),
                                         list(err.get("traceback") or [])))
        cell.outputs = outputs
        if not is_test_cell(cell):
            continue
        gid = _grade_id(cell) or ""
        # Judge the records in the order the cell sent them: in stock nbgrader the first
        # failing check raises right there, before any later line of the cell runs.
        failure: tuple[str, str | None] | None = None
        notes: list[str] = []  # what passing checks say (a right answer's wrong dependency)
        reported: set[str] = set()
        expected = checks.get(gid, [])
        for raw_name, record in result.records or []:
            name = _check_name(str(raw_name))
            if name in reported or name not in expected:
                # A hidden test calls each of its checks once: anything else was sent by the
                # student's code, not by the hidden test.
                how = ("twice" if name in reported
                       else "from a cell whose hidden test does not call it")
                failure = (f"check_{name} reported {how}; the submission's code interferes "
                           "with the hidden tests", "bad_record")
                break
            reported.add(name)
            # Judge with the whole notebook's code (not the function's own recorded source):
            # the forbidden-API and tamper scans must see module-level aliases and helpers.
            try:
                verdict = judge(name, record, source=source)
            except Exception as exc:  # a judge bug must not pass the student
                failure = (f"the grader could not judge check_{name}: {exc!r}", None)
                break
            if not verdict.passed:
                failure = (str(verdict.message), getattr(verdict, "hint", None))
                break
            if getattr(verdict, "message", ""):
                notes.append(str(verdict.message))
        if notes:  # printed by the check, as the in-process sink does (grader/__init__.py)
            at = next((k for k, o in enumerate(outputs) if o.get("output_type") == "error"),
                      len(outputs))
            outputs.insert(at, nbformat.v4.new_output(
                "stream", name="stdout", text="".join(f"{note}\n" for note in notes)))
            cell.outputs = outputs
        if failure is None and result.error:
            continue  # the cell raised after every check it reached had passed: keep that
        if failure is None:
            for name in expected:
                if name not in reported:
                    failure = (f"the hidden test did not run: check_{name} reported no result",
                               None)
                    break
        if failure is not None:
            message, hint = failure
            # what the cell printed stays visible, stderr included (KeepStderrVisible makes
            # that text harmless to the score, grader/engine/review.py)
            kept = [o for o in outputs if o.get("output_type") in ("stream", "display_data")]
            cell.outputs = kept + [_error_output("AssertionError", message,
                                                 [f"AssertionError: {message}"])]
            hints[gid] = hint
    return hints


@functools.cache
def _precomputed_execute_class() -> type:
    from nbgrader.preprocessors import NbGraderPreprocessor

    class PrecomputedExecute(NbGraderPreprocessor):
        """Stands in for nbgrader's Execute: fills outputs from the worker, then judges."""

        def __init__(self, runner: _FastRunner, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.runner = runner

        def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
            meta = resources["nbgrader"]
            self.runner.execute(meta["student"], meta["notebook"], nb)
            return nb, resources

    return PrecomputedExecute


class _FastRunner:
    """Holds worker results by (student, notebook) and applies them when nbgrader asks."""

    def __init__(self, pool: Any, specs: dict[str, SourceSpec], judge: Callable[..., Any],
                 subs: dict[tuple[str, str], Submission]) -> None:
        self.pool = pool
        self.specs = specs
        self.judge = judge
        self.subs = subs
        self.runs: dict[tuple[str, str], tuple[list[tuple[int, str]], Any]] = {}

    def execute(self, student: str, notebook: str, nb: NotebookNode) -> None:
        key = _job_key(nb)
        stored = self.runs.pop((student, notebook), None)
        if stored is not None and stored[0] == key:
            run = stored[1]
        else:  # nbgrader's sanitising changed a cell: run this notebook again as it is now
            run = self.pool.run(cell_jobs(nb))
        judge_run(self.subs.get((student, notebook)), nb, run, self.specs[notebook], self.judge)


def judge_run(sub: Submission | None, nb: NotebookNode, run: Any, spec: SourceSpec,
              judge: Callable[..., Any]) -> None:
    """Judge a worker run into ``nb`` (:func:`apply_run`) and note its error, time and hints
    on the submission."""
    hints = apply_run(nb, run, spec, judge)
    if sub is not None:
        sub.run_error = run.error
        sub.seconds = float(getattr(run, "seconds", 0.0) or 0.0)
        sub.hints = hints


# ---------------------------------------------------------------------------------------------
# nbgrader plumbing


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(record.getMessage())
        except Exception:  # pragma: no cover - a broken log record must not stop grading
            pass


def _make_logger(name: str, verbose: bool) -> tuple[logging.Logger, _LogCollector]:
    log = logging.getLogger(f"grader.nbgrader.{name}")
    log.propagate = False
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    for h in list(log.handlers):
        log.removeHandler(h)
    collector = _LogCollector()
    log.addHandler(collector)
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("[nbgrader %(levelname)s] %(message)s"))
        log.addHandler(stream)
    return log, collector


def _nbgrader_error(lines: list[str]) -> str:
    useful = [ln for ln in lines if ln.strip() and not ln.startswith("Traceback")]
    tail = ""
    for ln in reversed(useful):
        last = ln.strip().splitlines()[-1] if ln.strip() else ""
        if last and not last.startswith(("Please see", "There was an error processing")):
            tail = last
            break
    return f"nbgrader could not grade the notebook: {tail or 'see the log'}"


@dataclass
class _Workspace:
    root: Path
    config: Any
    submitted: Path
    temporary: Path | None
    keep: bool


def _workspace(
    course_root: Path, subs: list[Submission], workdir: str | os.PathLike[str] | None
) -> _Workspace:
    """Where nbgrader works: the course itself when the submissions are its own
    ``submitted/`` folder, else a temporary course with a copy of ``source/``."""
    scratch = Path(tempfile.mkdtemp(prefix="convgrade-"))
    own = (course_root / "submitted").resolve()
    in_course = workdir is None and subs and all(
        s.notebook.resolve().is_relative_to(own) for s in subs
    )
    if in_course:
        config = gbmod.load_config(course_root)
        staged = scratch / "submitted"
        staged.mkdir()
        config.CourseDirectory.submitted_directory = str(staged)
        return _Workspace(course_root, config, staged, scratch, False)
    root = Path(workdir).resolve() if workdir is not None else scratch / "course"
    root.mkdir(parents=True, exist_ok=True)
    if (root / "source").exists():
        shutil.rmtree(root / "source")
    shutil.copytree(course_root / "source", root / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
    if (course_root / "nbgrader_config.py").exists():
        shutil.copy2(course_root / "nbgrader_config.py", root / "nbgrader_config.py")
    config = gbmod.load_config(root)
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = "sqlite:///" + str(root / "gradebook.db")
    if (root / "submitted").exists():
        shutil.rmtree(root / "submitted")
    (root / "submitted").mkdir()
    return _Workspace(root, config, root / "submitted", scratch, workdir is not None)


def _stage(ws: _Workspace, subs: list[Submission], assignment: str) -> None:
    """Copy one student's folder (without notebooks) and their repaired notebooks (``subs``:
    the gradable ones, all of the same student) into staging."""
    dest = ws.submitted / subs[0].student / assignment
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    folder = subs[0].folder
    if folder is not None and folder.is_dir():
        for item in folder.iterdir():
            if item.suffix == ".ipynb" or item.name.startswith(".ipynb_checkpoints"):
                continue
            if item.is_dir():
                shutil.copytree(item, dest / item.name)
            else:
                shutil.copy2(item, dest / item.name)
    for sub in subs:
        assert sub.check is not None and sub.check.notebook is not None
        nbformat.write(sub.check.notebook, str(dest / f"{sub.notebook_name}.ipynb"))


def _by_student(subs: list[Submission]) -> dict[str, list[Submission]]:
    """The submissions grouped by student, in the order the students were found."""
    groups: dict[str, list[Submission]] = {}
    for sub in subs:
        groups.setdefault(sub.student, []).append(sub)
    return groups


def _convert_one(
    ws: _Workspace, assignment: str, student: str, preprocessors: list[Any] | None,
    execute_timeout: int | None, log: logging.Logger,
) -> None:
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    config = copy.deepcopy(ws.config)
    if execute_timeout is not None:
        config.Execute.timeout = int(execute_timeout)
    if preprocessors is None and not log.isEnabledFor(logging.INFO):
        # stock kernels: keep ipykernel's start-up warnings out of the grader's output
        extra = list(config.Execute.get("extra_arguments", []))
        if not any(a.startswith("--IPKernelApp.log_level") for a in extra):
            config.Execute.extra_arguments = extra + ["--IPKernelApp.log_level=ERROR"]
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    converter = Autograde(coursedir=coursedir, config=config, log=log, force=True)
    if preprocessors is not None:
        converter.autograde_preprocessors = preprocessors
    converter.start()


def autograde_preprocessors(config: Any) -> list[Any]:
    """The course's ``Autograde.autograde_preprocessors`` (nbgrader_config.py), else nbgrader's
    default list: both engines run the same steps after execution. A step the config names by
    import string (``"nbgrader.preprocessors.Execute"``, as nbconvert allows) is imported here,
    so the fast engine recognises nbgrader's ``Execute`` however it is spelled."""
    from nbgrader.converters import Autograde
    from traitlets.utils.importstring import import_item

    configured = config.get("Autograde", {}).get("autograde_preprocessors")
    if not configured:
        configured = Autograde.class_traits()["autograde_preprocessors"].default()
    return [import_item(pp) if isinstance(pp, str) else pp for pp in configured]


def _fast_preprocessors(runner: _FastRunner, config: Any) -> list[Any]:
    from nbgrader.preprocessors import Execute

    cls = _precomputed_execute_class()
    return [cls(runner) if pp is Execute else pp for pp in autograde_preprocessors(config)]


# ---------------------------------------------------------------------------------------------
# results


def _message(cell: NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            ename, evalue = str(out.get("ename", "")), str(out.get("evalue", ""))
            if ename == "AssertionError" and evalue:
                return evalue
            return f"{ename}: {evalue}" if evalue else ename
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = str(out.get("text", "")).strip().splitlines()
            return ("the cell wrote to stderr, which stock nbgrader scores 0 (add "
                    "grader.engine.steps.KeepStderrVisible to the course's autograde steps): "
                    + (text[-1] if text else ""))
    return ""


def _collect(ws: _Workspace, assignment: str, sub: Submission, spec: SourceSpec,
             gb: Any) -> dict[str, Any]:
    """A recorded notebook's entry: its autograded notebook and its grades in ``gb`` (an
    open nbgrader Gradebook of the workspace)."""
    from nbgrader.api import MissingEntry

    notebook_name = sub.notebook_name
    autograded = ws.root / "autograded" / sub.student / assignment / f"{notebook_name}.ipynb"
    nb = nbformat.read(str(autograded), as_version=4) if autograded.exists() else None
    scores: dict[str, tuple[float | None, float]] = {}
    flagged: set[str] = set()
    try:
        submission = gb.find_submission_notebook(notebook_name, assignment, sub.student)
    except MissingEntry:
        submission = None
    if submission is not None:
        for grade in submission.grades:
            scores[grade.name] = (grade.auto_score, float(grade.max_score or 0))
            if grade.needs_manual_grade:
                flagged.add(grade.name)
    return _graded_entry(assignment, sub, spec, nb, scores, flagged)


def _graded_entry(assignment: str, sub: Submission, spec: SourceSpec, nb: NotebookNode | None,
                  scores: dict[str, tuple[float | None, float]],
                  flagged: set[str]) -> dict[str, Any]:
    """A recorded notebook's entry from its autograded notebook (None: there is none) and
    its grades: (auto score, max score) and the grades needing manual grading, by grade_id."""
    entry = _entry(sub, assignment, spec)
    cells: dict[str, NotebookNode] = {}
    if nb is not None:
        cells = {gid: c for c in nb.cells if (gid := _grade_id(c))}
        entry["sanitized"] = _sanitized_list(nb)
    entry = _scored_entry(entry, sub, spec, cells, scores)
    if nb is not None:
        _add_review(entry, nb, flagged)
    return entry


@contextlib.contextmanager
def _open_gradebook(ws: _Workspace) -> Iterator[Any]:
    """The workspace's nbgrader Gradebook, open while the context lasts."""
    from nbgrader.api import Gradebook

    course_id = ws.config.get("CourseDirectory", {}).get("course_id", "")
    with gbmod.venv_on_path(), Gradebook(gbmod.db_url_for(ws.config), course_id) as gb:
        yield gb


def _scored_entry(entry: dict[str, Any], sub: Submission, spec: SourceSpec,
                  cells: dict[str, NotebookNode],
                  scores: dict[str, tuple[float | None, float]]) -> dict[str, Any]:
    """Fill ``entry``'s tests from the graded cells and their (auto score, max score)."""
    tests = []
    for cell in spec.tests:
        auto, max_score = scores.get(cell.grade_id, (None, cell.points))
        score = float(auto or 0.0)
        passed = auto is not None and score >= max_score
        nbcell = cells.get(cell.grade_id)
        message = "" if passed else (_message(nbcell) if nbcell is not None else
                                     "the test cell was not graded")
        if not passed and not message and auto is not None and score > 0:
            message = f"partial credit: {score:g} of {max_score:g}"
        tests.append({
            "notebook": spec.notebook_name,
            "grade_id": cell.grade_id,
            "score": score,
            "max_score": max_score,
            "passed": passed,
            "message": message,
            "hint": None if passed else sub.hints.get(cell.grade_id),
            "needs_manual_grade": False,
        })
    entry["tests"] = tests
    entry["score"] = float(sum(t["score"] for t in tests))
    entry["max_score"] = float(sum(t["max_score"] for t in tests))
    return entry


def _direct_entry(assignment: str, sub: Submission, spec: SourceSpec,
                  nb: NotebookNode) -> dict[str, Any]:
    """The entry of a judged notebook, scored the way nbgrader's SaveAutoGrades scores it
    (:func:`nbgrader.utils.determine_grade` on each test cell's outputs), without a
    gradebook: for submissions graded in a throw-away course, whose gradebook nobody reads."""
    from nbgrader.utils import determine_grade

    from grader.engine.review import flagged_grade_ids, review_findings, stderr_as_display

    stderr_as_display(nb)  # what KeepStderrVisible does on the recorded path
    cells = {gid: c for c in nb.cells if (gid := _grade_id(c))}
    scores: dict[str, tuple[float | None, float]] = {}
    for test in spec.tests:
        cell = cells.get(test.grade_id)
        if cell is not None and cell.cell_type == "code":
            scores[test.grade_id] = determine_grade(cell)
    entry = _scored_entry(_entry(sub, assignment, spec), sub, spec, cells, scores)
    entry["graded"] = True
    _add_review(entry, nb, flagged_grade_ids(review_findings(nb)))
    entry["sanitized"] = _sanitized_list(nb, sanitize=True, instructors=spec.markdown)
    return entry


def _prepare_direct_scoring() -> None:
    """Import what :func:`_direct_entry` uses (nbgrader's determine_grade, the tamper scan),
    while the pool runs the notebook and this thread would only wait."""
    from nbgrader.utils import determine_grade  # noqa: F401

    from grader.engine import forbidden, review  # noqa: F401


def _add_review(entry: dict[str, Any], nb: NotebookNode, flagged: set[str]) -> None:
    """Put the tamper scan's findings (``review``) and each test's ``needs_manual_grade`` into
    ``entry``. ``flagged`` is what the gradebook flags (or, without one, what FlagForReview
    would): nbgrader itself flags a grade that has a manual score."""
    from grader.engine.review import review_findings

    entry["review"] = [f.to_dict() for f in review_findings(nb)]
    for test in entry["tests"]:
        test["needs_manual_grade"] = test["grade_id"] in flagged


def _sanitized_list(nb: NotebookNode, sanitize: bool = False,
                    instructors: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """What grader.engine.sanitize removed from the student's content (``sanitize``: the
    notebook is not written anywhere, so just find out). Markdown cells whose text is one of
    ``instructors`` (the source notebook's own markdown) are the instructor's words, not the
    student's, and are left out: rendering them only to find nothing to list costs a lone
    notebook nbconvert's import (about 0.2 s)."""
    from grader.engine.sanitize import sanitize_notebook, sanitized_list

    if not sanitize:
        return sanitized_list(nb)
    probe = copy.deepcopy(nb)
    for cell in probe.cells:
        if cell.cell_type == "markdown" and cell.source in instructors:
            cell.source = ""
    return sanitize_notebook(probe)


def _entry(sub: Submission, assignment: str, spec: SourceSpec) -> dict[str, Any]:
    problems = sub.check.problems if sub.check is not None else []
    errors = [p.message for p in problems if p.severity in ("fatal", "error")]
    if sub.run_error:
        errors.append(f"the run stopped early: {sub.run_error}")
    if sub.nbgrader_error:
        errors.append(sub.nbgrader_error)
    return {
        "student": sub.student,
        "assignment": assignment,
        "notebook": str(sub.notebook),
        "score": 0.0,
        "max_score": spec.max_score,
        "manual_max_score": spec.manual_max_score,
        "graded": False,
        "tests": [],
        "error": " ".join(errors) if errors else None,
        "problems": [p.to_dict() for p in problems],
        "review": [],
        "seconds": round(sub.seconds, 3),
        "sanitized": [],
    }


# ---------------------------------------------------------------------------------------------
# the whole job


def _default_pool_factory(jobs: int | None, sandbox: bool, timeout: float | None) -> Any:
    from grader.engine.executors.local import local_pool_factory

    return local_pool_factory(jobs, sandbox, timeout)


#: the background import of the judge and its course (:func:`start_judge_import`), if any
_judge_import: threading.Thread | None = None
_judge_import_lock = threading.Lock()


def _default_judge() -> Callable[..., Any]:
    """The course's judge. Waits for :func:`start_judge_import`'s thread first: the course's
    modules (and torch) are imported by one thread at a time, never by two at once, where
    Python's import locks can hand one of them a half-imported module."""
    pending = _judge_import
    if pending is not None and pending is not threading.current_thread():
        pending.join()
    from grader.checks import judge

    return judge


def _import_judge() -> None:
    """Import the judge and load the course it judges by (its references and comparisons:
    this course's torch); a problem is left for the judge's own first call to report."""
    try:
        _default_judge()
        from grader.registry import course

        course()
    except Exception:  # noqa: BLE001 - reported where the judge is called
        pass


def start_judge_import() -> None:
    """Import the judge and its course in a background thread (while the pool warms, say);
    the judge's first use waits for it (:func:`_default_judge`)."""
    global _judge_import
    with _judge_import_lock:
        if _judge_import is not None:
            return  # started, or done, by an earlier run of this process
        _judge_import = threading.Thread(target=_import_judge, name="convgrade-judge-import",
                                         daemon=True)
        _judge_import.start()


def run_check(
    paths: Iterable[str | os.PathLike[str]],
    assignment: str,
    *,
    course: str | os.PathLike[str] | None = None,
    student: str | None = None,
) -> list[tuple[Submission, PrecheckResult]]:
    """Precheck only: read each submitted notebook and compare it with its source notebook."""
    course_root = gbmod.find_course_root(course)
    config = gbmod.load_config(course_root)
    specs = {s.notebook_name: s for s in load_sources(course_root, assignment, config)}
    subs = discover(paths, assignment, list(specs), student)
    out = []
    for sub in subs:
        sub.check = precheck(sub.notebook, specs[sub.notebook_name])
        out.append((sub, sub.check))
    return out


def autograde(
    paths: Iterable[str | os.PathLike[str]],
    assignment: str,
    *,
    course: str | os.PathLike[str] | None = None,
    engine: str = "fast",
    jobs: int | None = None,
    sandbox: bool = True,
    timeout: float | None = None,
    student: str | None = None,
    workdir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    pool_factory: Callable[[int | None, bool, float | None], Any] | None = None,
    judge: Callable[..., Any] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Autograde the submissions under ``paths`` for ``assignment``; return the result dict.

    ``engine`` is ``"fast"`` (worker pool + in-process judging) or ``"nbgrader"`` (stock
    kernels). ``sandbox=False`` runs the workers without bubblewrap. ``timeout`` is the wall
    time per submission (fast) or per cell (nbgrader). ``workdir`` keeps the temporary course
    (gradebook, autograded notebooks) in that folder. Submissions inside the course's own
    ``submitted/`` folder are recorded in the course's gradebook and ``autograded/``.

    ``seed`` draws the checks' random cases (fast engine); by default a fresh secret seed
    per run, so no answer can be learned by heart, and it is reported in the result. The
    stock engine judges inside the kernel with the probe's fixed seed 0.

    The students' files are never modified. Raises :class:`AutogradeError` when the run as a
    whole cannot proceed (unknown assignment, sandbox unavailable); problems with single
    submissions become error entries instead.
    """
    if engine not in ENGINES:
        raise AutogradeError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    report = _serialized(progress or (lambda phase, done, total, label: None))
    run_seed = secrets.randbelow(2**31) if seed is None else int(seed)
    started = time.monotonic()
    course_root = gbmod.find_course_root(course)
    pool = None
    if engine == "fast":
        # Start what the fast engine waits for longest right away: the judge's imports
        # (torch) in a thread and one warm server, while nbgrader's config loads.
        source_dir = course_root / "source" / assignment
        checks = settings.has_hidden_checks(source_dir)
        # The pool first: its stage and smoke test are many short system calls, each of
        # which waits for the GIL once the import thread runs (about 0.2 s instead of 20 ms).
        pool = _start_pool(pool_factory or _default_pool_factory, jobs, sandbox, timeout,
                           run_seed, course_root, source_dir, checks)
        if judge is None and checks:
            start_judge_import()
    try:
        try:
            specs = load_sources(course_root, assignment, gbmod.load_config(course_root))
        except FileNotFoundError as exc:
            raise AutogradeError(str(exc)) from exc
        try:
            subs = discover(paths, assignment, [s.notebook_name for s in specs], student)
        except FileNotFoundError as exc:
            raise AutogradeError(str(exc)) from exc
        if not subs:
            raise AutogradeError("no submissions found")
        return _autograde(subs, {s.notebook_name: s for s in specs}, assignment, course_root,
                          engine, pool, report, started, run_seed, workdir, verbose, judge,
                          timeout)
    finally:
        if pool is not None:
            pool.close()


def _serialized(progress: Progress) -> Progress:
    """``progress``, called by one thread at a time (runs report from a background thread
    while this one records)."""
    lock = threading.Lock()

    def report(phase: str, done: int, total: int, label: str) -> None:
        with lock:
            progress(phase, done, total, label)

    return report


def _start_pool(factory: Callable[..., Any], jobs: int | None, sandbox: bool,
                timeout: float | None, seed: int, course_root: Path, source_dir: Path,
                checks: bool) -> Any:
    """Make the worker pool, give it the run's seed and what the course preloads
    (:mod:`grader.engine.settings`; the checks' runtime only where hidden tests call ``grader``
    checks), and start one server in the background."""
    try:
        pool = factory(jobs, sandbox, timeout)
    except Exception as exc:
        if type(exc).__name__ == "SandboxUnavailable":
            raise AutogradeError(str(exc)) from exc
        raise
    configure_pool(pool, seed, course_root, [source_dir], checks)
    if hasattr(pool, "warm"):
        pool.warm(1)
    return pool


def configure_pool(pool: Any, seed: int, course_root: Path, source_dirs: list[Path],
                   checks: bool) -> None:
    """Give ``pool`` (where it has them) the seed its probe draws cases from and what its
    servers preload for the assignments in ``source_dirs``: the course's declared modules,
    the checks' runtime when ``checks``, and pyplot where a notebook plots."""
    if hasattr(pool, "seed"):
        pool.seed = seed  # the worker's probe draws its cases from it
    if hasattr(pool, "preload"):
        pool.preload = settings.declared_preload(course_root)
        pool.preload_probe = checks
    if hasattr(pool, "preload_matplotlib"):
        # pyplot costs each warm server about 1.5 s: load it where the assignment plots
        pool.preload_matplotlib = any(
            "matplotlib" in nb.read_text(encoding="utf-8", errors="replace")
            for source_dir in source_dirs for nb in source_dir.glob("*.ipynb"))


def _autograde(subs: list[Submission], specs: dict[str, SourceSpec], assignment: str,
               course_root: Path, engine: str, pool: Any, report: Progress, started: float,
               run_seed: int, workdir: str | os.PathLike[str] | None, verbose: bool,
               judge: Callable[..., Any] | None, timeout: float | None) -> dict[str, Any]:
    """Steps 1-6 for the discovered submissions (see :func:`autograde`); ``specs`` are the
    assignment's notebooks by name."""

    # 1-2. precheck and restore, each notebook against its own source
    for k, sub in enumerate(subs, 1):
        sub.check = precheck(sub.notebook, specs[sub.notebook_name])
        report("check", k, len(subs), _label(sub, specs))
    gradable = [s for s in subs if s.check is not None and s.check.gradable]
    students = _by_student(gradable)

    ws = _workspace(course_root, subs, workdir)
    # A throw-away course (a lone notebook in CI, say): nobody reads its gradebook, so the fast
    # engine scores the judged notebooks itself instead of registering the assignment and
    # recording through nbgrader (about 1 s of a single submission's latency).
    direct = engine == "fast" and workdir is None and ws.root != course_root
    log, collector = _make_logger(assignment, verbose)
    fast_db = contextlib.ExitStack()
    if workdir is None and ws.root != course_root and not direct:  # throw-away: no fsync
        fast_db.enter_context(gbmod.unsynced_sqlite(gbmod.db_url_for(ws.config)))
    shared: gbmod.SharedEngines | None = None
    if FAST_RECORDING and not direct:  # every gradebook open of this run on one engine
        shared = fast_db.enter_context(gbmod.shared_engines())
        fast_db.enter_context(speedups.cached_metadata_schemas())
        fast_db.enter_context(speedups.remembered_notebook_validation())
    try:
        for own in students.values() if not direct else []:
            _stage(ws, own, assignment)
        preprocessors: list[Any] | None = None
        runner: _FastRunner | None = None
        recorder: recmod.DirectRecorder | None = None
        # the direct record path's entries, made as each student is recorded (their
        # notebooks are not kept: what stays in memory per student is the entry)
        recorded_directly: dict[tuple[str, str], dict[str, Any]] = {}
        release = (ws.temporary or ws.root) / "release"

        def record(student: str, own: list[Submission]) -> None:
            """4-5. judge and record one student (all their notebooks) through nbgrader."""
            collector.records.clear()
            t0 = time.monotonic()
            if recorder is not None and runner is not None:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # sqlalchemy chatter
                        done = recorder.record(student, [s.notebook_name for s in own],
                                               runner.runs)
                except recmod.DirectRecordFailed as exc:
                    log.info("%s: recorded by nbgrader's converter (%s)", student, exc)
                    collector.records.clear()
                else:
                    for sub in own:
                        if (r := done.get(sub.notebook_name)) is not None:
                            entry = _graded_entry(assignment, sub, specs[sub.notebook_name],
                                                  r.notebook, r.scores, r.flagged)
                            recorded_directly[(student, sub.notebook_name)] = entry
                    recorded.append(student)
                    report("record", len(recorded), len(students), student)
                    return
            # the fast engine's student in one gradebook transaction (nbgrader's commits
            # become savepoints: the same rows, one write to disk)
            batch = (shared.transaction(gbmod.db_url_for(ws.config))
                     if shared is not None and engine == "fast" else contextlib.nullcontext())
            try:
                with warnings.catch_warnings(), batch:
                    warnings.simplefilter("ignore")  # sqlalchemy chatter from nbgrader's api
                    _convert_one(ws, assignment, student, preprocessors,
                                 int(timeout) if (engine == "nbgrader" and timeout) else None,
                                 log)
            except Exception as exc:
                if type(exc).__name__ == "SandboxUnavailable":
                    raise AutogradeError(str(exc)) from exc
                for sub in own:
                    sub.nbgrader_error = _nbgrader_error(collector.records + [str(exc)])
            else:
                if engine == "nbgrader":  # one converter run for all of the student's notebooks
                    own[0].seconds = time.monotonic() - t0
            recorded.append(student)
            report("record", len(recorded), len(students), student)

        recorded: list[str] = []
        if engine == "fast" and gradable:
            # 3. run every notebook in the pool (its cells as nbgrader will see them; each
            # notebook in a fresh child, as each is its own kernel in stock nbgrader) in a
            # background thread, while this thread loads nbgrader and the checks, then
            # judges and records each student as soon as their notebooks have run.
            cleared = [_sanitized_cells(s) for s in gradable]
            jobs, keys = [cell_jobs(nb) for nb in cleared], [_job_key(nb) for nb in cleared]
            for sub in gradable:
                _release_notebook(sub)
            # the direct path judges these notebooks; nbgrader's path reads the staged files
            notebooks: list[NotebookNode | None] = list(cleared) if direct else []
            del cleared
            runs = _RunsInBackground(pool, jobs,
                                     lambda k, position: report(
                                         "run", k, len(gradable),
                                         _label(gradable[position], specs)))
            try:
                if not direct:
                    gbmod.register_assignment(ws.config, assignment, release, log)
                the_judge = judge or _lazy_judge(run_seed)
            except BaseException:
                runs.wait()
                raise
            arrivals = runs.arrivals() if FAST_RECORDING else iter(list(runs.arrivals()))
            if direct:
                # 4-5 without nbgrader's recording: judge, then score as SaveAutoGrades would
                _prepare_direct_scoring()
                judged: dict[tuple[str, str], dict[str, Any]] = {}
                for position, run in arrivals:
                    sub, nb = gradable[position], notebooks[position]
                    assert nb is not None
                    notebooks[position] = None  # judged and scored just below, then dropped
                    spec = specs[sub.notebook_name]
                    judge_run(sub, nb, run, spec, the_judge)
                    judged[(sub.student, sub.notebook_name)] = _direct_entry(
                        assignment, sub, spec, nb)
                    report("record", len(judged), len(gradable), _label(sub, specs))
                return _result(assignment, engine, run_seed, course_root, started, _entries(
                    subs, specs, assignment,
                    lambda sub: judged.get((sub.student, sub.notebook_name))))
            runner = _FastRunner(pool, specs, the_judge,
                                 {(s.student, s.notebook_name): s for s in gradable})
            preprocessors = _fast_preprocessors(runner, ws.config)
            if shared is not None:
                db_url = gbmod.db_url_for(ws.config)
                recorder, why = recmod.direct_recorder(
                    ws.config, assignment, log, preprocessors, _precomputed_execute_class(),
                    shared.create_engine(db_url, echo=False, future=True), db_url)
                if recorder is not None:
                    fast_db.callback(recorder.close)
                else:
                    log.info("recording through nbgrader's converter: %s", why)
            waiting = {student: len(own) for student, own in students.items()}
            for position, run in arrivals:
                sub = gradable[position]
                runner.runs[(sub.student, sub.notebook_name)] = (
                    keys[position], run)
                waiting[sub.student] -= 1
                if not waiting[sub.student]:  # all of this student's notebooks have run
                    record(sub.student, students[sub.student])
        elif gradable:
            gbmod.register_assignment(ws.config, assignment, release, log)
            for student, own in students.items():
                record(student, own)

        def collected(sub: Submission) -> dict[str, Any] | None:
            if sub not in gradable or sub.nbgrader_error is not None:
                return None
            if (entry := recorded_directly.pop((sub.student, sub.notebook_name), None)):
                entry["graded"] = True
                return entry
            if not FAST_RECORDING:
                with _open_gradebook(ws) as gb:
                    entry = _collect(ws, assignment, sub, specs[sub.notebook_name], gb)
            else:
                if not opened:
                    opened.append(fast_db.enter_context(_open_gradebook(ws)))
                entry = _collect(ws, assignment, sub, specs[sub.notebook_name], opened[0])
            entry["graded"] = True
            return entry

        opened: list[Any] = []  # one gradebook session for collecting every entry
        entries = _entries(subs, specs, assignment, collected)
    finally:
        fast_db.close()
        if ws.temporary is not None:
            shutil.rmtree(ws.temporary, ignore_errors=True)
    return _result(assignment, engine, run_seed, course_root, started, entries)


class _RunsInBackground:
    """The pool's runs of ``jobs`` (:meth:`WorkerPool.map`) in a background thread, handed to
    the calling thread as they finish; ``progress(k, position)`` is told of each in the
    background thread."""

    def __init__(self, pool: Any, jobs: list[list[Any]],
                 progress: Callable[[int, int], None]) -> None:
        self._queue: queue.Queue[tuple[int, Any] | BaseException | None] = queue.Queue()
        self._thread = threading.Thread(target=self._consume, args=(pool, jobs, progress),
                                        name="convgrade-map", daemon=True)
        self._thread.start()

    def _consume(self, pool: Any, jobs: list[list[Any]],
                 progress: Callable[[int, int], None]) -> None:
        try:
            for k, (position, run) in enumerate(pool.map(jobs), 1):
                self._queue.put((position, run))
                progress(k, position)
        except BaseException as exc:  # re-raised in the calling thread
            self._queue.put(exc)
        else:
            self._queue.put(None)

    def arrivals(self) -> Iterator[tuple[int, Any]]:
        """``(position, run)`` in the order the runs finish; raises what the pool raised
        (:class:`AutogradeError` when the sandbox is unavailable)."""
        while (item := self._queue.get()) is not None:
            if isinstance(item, BaseException):
                self._thread.join()
                if type(item).__name__ == "SandboxUnavailable":
                    raise AutogradeError(str(item)) from item
                raise item
            yield item
        self._thread.join()

    def wait(self) -> None:
        """Wait for the background thread to finish (its results are dropped)."""
        self._thread.join()


def _label(sub: Submission, specs: dict[str, SourceSpec]) -> str:
    """How progress names a submission: the student, and the notebook where there are several."""
    return sub.student if len(specs) == 1 else f"{sub.student} ({sub.notebook_name}.ipynb)"


def _lazy_judge(seed: int) -> Callable[..., Any]:
    """The course's judge with the run's seed, imported when a hidden check first reports
    (a course without ``grader`` checks never imports it, nor torch)."""

    def judge(*args: Any, **kwargs: Any) -> Any:
        return _default_judge()(*args, seed=seed, **kwargs)

    return judge


def _entries(subs: list[Submission], specs: dict[str, SourceSpec], assignment: str,
             graded: Callable[[Submission], dict[str, Any] | None]) -> list[dict[str, Any]]:
    """One result entry per student: ``graded(sub)`` is a graded notebook's entry (None when
    that notebook could not be graded: then its error entry)."""
    out = []
    for own in _by_student(subs).values():
        parts = [graded(sub) or _entry(sub, assignment, specs[sub.notebook_name])
                 for sub in own]
        out.append(parts[0] if len(specs) == 1 else _merged_entry(own, parts, specs))
    return out


def _merged_entry(subs: list[Submission], parts: list[dict[str, Any]],
                  specs: dict[str, SourceSpec]) -> dict[str, Any]:
    """One student's entry for a several-notebook assignment, from one entry per notebook:
    totals over the notebooks, every test (a notebook that could not be graded lists its
    tests with 0 points and its error), and a ``notebooks`` summary."""
    tests: list[dict[str, Any]] = []
    errors: list[str] = []
    summary: list[dict[str, Any]] = []
    for sub, part in zip(subs, parts, strict=True):
        name = sub.notebook_name
        if not part["graded"]:
            error = part["error"]
            part = _scored_entry(dict(part), sub, specs[name], {}, {})
            for test in part["tests"]:
                test["message"] = error or test["message"]
        tests.extend(part["tests"])
        if part["error"]:
            errors.append(f"{name}.ipynb: {part['error']}")
        summary.append({"notebook": name, "path": part["notebook"]} | {key: part[key] for key in (
            "score", "max_score", "manual_max_score", "graded", "error")})
    first = parts[0]
    folder = subs[0].folder
    return {
        **first,
        "notebook": str(folder) if folder is not None else first["notebook"],
        "notebooks": summary,
        "score": float(sum(t["score"] for t in tests)),
        "max_score": float(sum(t["max_score"] for t in tests)),
        "manual_max_score": float(sum(p["manual_max_score"] for p in parts)),
        "graded": any(p["graded"] for p in parts),
        "tests": tests,
        "error": " ".join(errors) if errors else None,
        "problems": _tagged(subs, parts, "problems"),
        "review": _tagged(subs, parts, "review"),
        "seconds": round(sum(p["seconds"] for p in parts), 3),
        "sanitized": _tagged(subs, parts, "sanitized"),
    }


def _tagged(subs: list[Submission], parts: list[dict[str, Any]], key: str
            ) -> list[dict[str, Any]]:
    """The ``key`` lists of the notebooks' entries, each item marked with its notebook."""
    return [{**item, "notebook": sub.notebook_name}
            for sub, part in zip(subs, parts, strict=True) for item in part.get(key) or []
            if isinstance(item, dict)]


def _result(assignment: str, engine: str, seed: int, course_root: Path, started: float,
            entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "assignment": assignment,
        "engine": engine,
        "seed": seed if engine == "fast" else 0,
        "course": str(course_root),
        "seconds": round(time.monotonic() - started, 3),
        "results": entries,
    }


def _release_notebook(sub: Submission) -> None:
    """Drop the restored notebook of a submission whose cells are in the pool's jobs (the
    converter reads the staged copy): a class's notebooks are not all kept until the end."""
    if sub.check is not None:
        sub.check.notebook = None


def _sanitized_cells(sub: Submission) -> NotebookNode:
    """The notebook as nbgrader's sanitising will leave it (outputs cleared)."""
    assert sub.check is not None and sub.check.notebook is not None
    nb = copy.deepcopy(sub.check.notebook)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb

