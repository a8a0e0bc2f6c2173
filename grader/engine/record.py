"""The fast engine's direct record path: what nbgrader's ``Autograde`` converter writes, faster.

For a student whose notebooks the pool has run, :class:`DirectRecorder` writes what
``nbgrader autograde`` would write for them (grader.engine.autograde ``_convert_one``):

* the ``autograded/<student>/<assignment>/`` folder: the submission's other files, the
  source's files, each notebook after nbgrader's two passes, the files' permissions;
* the gradebook rows: the student if missing, the SubmittedAssignment (with the timestamp of
  ``timestamp.txt``) and its SubmittedNotebook, Grade and Comment rows as
  ``Gradebook.add_submission`` makes them (or the existing ones of a re-grade, updated as
  nbgrader updates them), the grades of a notebook the student did not submit zeroed, the
  ``auto_score``/``needs_manual_grade`` and ``auto_comment`` of ``SaveAutoGrades``, the flags
  of :class:`grader.engine.steps.FlagForReview`, the late penalty of ``AssignLatePenalties``.

It runs the course's own preprocessor instances, configured as nbgrader's exporter configures
them, in the same order, on the notebook node read from the staged submission, once: no
nbconvert export, no deep copies, no write and re-read between the passes, one validation per
pass (nbconvert validates after every step; the steps this path knows cannot turn an invalid
notebook valid again) and one write. The steps that use the gradebook run against
:class:`_StudentBook`, the student's rows in one SQLAlchemy session of the run (nbgrader's own
``SaveAutoGrades.preprocess_cell`` and ``OverwriteCells.preprocess_cell`` score and repair
the cells, over the rows in memory); the rows reach the database in bulk, in one
transaction per student. The assignment's notebooks, cells and source files are read once
per run.

Only courses whose steps are all known here (:data:`PURE_STEPS`, :data:`GRADEBOOK_STEPS`) and
whose converter options are nbgrader's defaults where this path relies on them get a
recorder (:func:`direct_recorder`); any other course records through nbgrader's converter.
A student whose recording fails here is rolled back (rows and folder) and recorded through the
converter, which then fails, or not, exactly as nbgrader does. tests/test_record_speed.py
compares both paths row by row and cell by cell.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

__all__ = ["DIRECT_RECORDING", "DirectRecorder", "DirectRecordFailed", "Recorded",
           "direct_recorder", "unsupported"]

#: Record the fast engine's students with :class:`DirectRecorder` where the course allows it
#: (off: nbgrader's converter for every student, as before).
DIRECT_RECORDING = True


class DirectRecordFailed(RuntimeError):
    """The direct path did not record a student (rolled back): record them with nbgrader."""


@dataclass
class Recorded:
    """One recorded notebook: the autograded notebook as written and its grades as stored."""

    notebook: NotebookNode
    scores: dict[str, tuple[float | None, float]] = field(default_factory=dict)
    """(auto score, max score) of each grade of the submitted notebook, by grade_id."""
    flagged: set[str] = field(default_factory=set)
    """The grade_ids whose grade needs manual grading."""


def _steps() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """The preprocessor classes the direct path applies: those it calls as they are, and those
    it runs against the student's rows in memory (:class:`_StudentBook`)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )

    from grader.engine.steps import FlagForReview, KeepStderrVisible, SanitizeStudentContent

    pure = (ClearOutput, DeduplicateIds, CheckCellMetadata, IgnorePattern, LimitOutput,
            ClearMetadataPreprocessor, SanitizeStudentContent, KeepStderrVisible)
    gradebook = (OverwriteKernelspec, OverwriteCells, SaveAutoGrades, FlagForReview,
                 AssignLatePenalties)
    return pure, gradebook


def __getattr__(name: str) -> Any:
    """``PURE_STEPS`` and ``GRADEBOOK_STEPS``, imported when first asked for."""
    if name in ("PURE_STEPS", "GRADEBOOK_STEPS"):
        pure, gradebook = _steps()
        return pure if name == "PURE_STEPS" else gradebook
    raise AttributeError(name)


def _converter(config: Any, assignment: str, log: logging.Logger,
               autograde_preprocessors: list[Any]) -> Any:
    """nbgrader's Autograde converter for the run, its exporter and writer set up as
    ``BaseConverter.start`` sets them up (nothing converted)."""
    from nbconvert.writers import FilesWriter
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    converter = Autograde(coursedir=coursedir, config=config, log=log, force=True)
    converter.autograde_preprocessors = autograde_preprocessors
    converter.writer = FilesWriter(parent=converter, config=converter.config)
    converter.exporter = converter.exporter_class(parent=converter, config=converter.config)
    return converter


def _registered(converter: Any, sanitizing: bool) -> list[Any]:
    """The preprocessor instances nbgrader's exporter runs in one of the two passes."""
    converter._sanitizing = sanitizing
    converter._init_preprocessors()
    steps = list(converter.exporter._preprocessors)
    converter._sanitizing = True
    return steps


def unsupported(converter: Any, steps: list[Any], execute: type) -> str | None:
    """Why the direct path cannot record for this converter and these preprocessor instances
    (both passes), or None when it can. ``execute`` is the fast engine's Execute step."""
    from nbconvert.exporters import NotebookExporter
    from nbgrader.preprocessors import OverwriteCells

    pure, gradebook = _steps()
    for step in steps:
        kind = type(step)
        if kind not in pure and kind not in gradebook and kind is not execute:
            return f"the course's step {kind.__module__}.{kind.__qualname__}"
        if kind is OverwriteCells and step.add_missing_cells:
            return "OverwriteCells.add_missing_cells"
    if converter.exporter_class is not NotebookExporter:
        return "an exporter other than nbconvert's NotebookExporter"
    if not converter.create_student:
        return "Autograde.create_student = False"
    if converter.pre_convert_hook or converter.post_convert_hook:
        return "a pre- or post-convert hook"
    if converter.coursedir.notebook_id != "*":
        return "CourseDirectory.notebook_id"
    return None


@dataclass
class _Notebook:
    """One notebook of the assignment as the gradebook holds it (read once per run)."""

    row: Any
    """nbgrader.api.Notebook"""
    kernelspec: dict[str, Any] | None
    source_cells: dict[str, Any]
    graded_cells: dict[str, Any]
    """GradeCell rows by name, then TaskCell rows (``Gradebook.find_graded_cell``'s order)."""
    cell_names: dict[str, str]
    """grade, solution and task cell names by row id"""


class _StudentBook:
    """``nbgrader.api.Gradebook`` as nbgrader's preprocessors use it, over one student's rows
    in the run's session: ``find_*`` return the rows (changed in memory), ``db.commit()``
    leaves the writing to the end of the student."""

    def __init__(self, notebooks: dict[str, _Notebook], submission: Any) -> None:
        self._notebooks = notebooks
        self.submission = submission
        self.rows: dict[str, Any] = {}
        """SubmittedNotebook rows by notebook name"""
        self.grades: dict[tuple[str, str], Any] = {}
        self.comments: dict[tuple[str, str], Any] = {}
        for row in submission.notebooks:
            name = row.notebook.name
            self.rows[name] = row
            names = notebooks[name].cell_names
            for grade in row.grades:
                self.grades[(name, names.get(grade.cell_id, ""))] = grade
            for comment in row.comments:
                self.comments[(name, names.get(comment.cell_id, ""))] = comment

    @property
    def db(self) -> _StudentBook:
        """``gradebook.db``: only ``commit()`` is called on it."""
        return self

    def commit(self) -> None:
        """nbgrader's commit after each change: the rows are written when the student is done."""

    @staticmethod
    def _missing(what: str, *names: str) -> Exception:
        from nbgrader.api import MissingEntry

        return MissingEntry(f"No such {what}: {'/'.join(names)}")

    def find_source_cell(self, name: str, notebook: str, assignment: str) -> Any:
        """The source cell ``name`` of ``notebook`` (MissingEntry as nbgrader)."""
        try:
            return self._notebooks[notebook].source_cells[name]
        except KeyError:
            raise self._missing("source cell", assignment, notebook, name) from None

    def find_graded_cell(self, name: str, notebook: str, assignment: str) -> Any:
        """The grade or task cell ``name`` of ``notebook``."""
        try:
            return self._notebooks[notebook].graded_cells[name]
        except KeyError:
            raise self._missing("graded cell", assignment, notebook, name) from None

    def find_grade(self, grade_cell: str, notebook: str, assignment: str, student: str) -> Any:
        """The student's Grade row of ``grade_cell`` in ``notebook``."""
        try:
            return self.grades[(notebook, grade_cell)]
        except KeyError:
            raise self._missing("grade", assignment, notebook, grade_cell) from None

    def find_comment(self, solution_cell: str, notebook: str, assignment: str,
                     student: str) -> Any:
        """The student's Comment row of ``solution_cell`` in ``notebook``."""
        try:
            return self.comments[(notebook, solution_cell)]
        except KeyError:
            raise self._missing("comment", assignment, notebook, solution_cell) from None


class DirectRecorder:
    """Records the fast engine's students as nbgrader's Autograde converter would (see the
    module docstring); one per run, made by :func:`direct_recorder`."""

    def __init__(self, converter: Any, sanitize: list[Any], autograde: list[Any],
                 engine: Any, db_url: str) -> None:
        from nbgrader import utils
        from sqlalchemy.orm import Session

        self._converter = converter
        self._sanitize = sanitize
        self._autograde = autograde
        self._db_url = db_url
        self._session = Session(bind=engine, autoflush=True, expire_on_commit=False)
        self._assignment_id: str = converter.coursedir.assignment_id
        self._assignment = self._load_assignment()
        coursedir = converter.coursedir
        source = coursedir.format_path(coursedir.source_directory, ".", self._assignment_id)
        files = set(utils.find_all_files(source, coursedir.ignore + ["*.ipynb"]))
        exclude = {os.path.join(source, x)
                   for x in converter.exclude_overwriting.get(self._assignment_id, [])}
        self._source = source
        self._source_files = sorted(files - exclude)
        self.recorded: list[str] = []
        """the students recorded here"""
        self.fallbacks: list[tuple[str, str]] = []
        """(student, why) of each student left to nbgrader's converter"""

    def _load_assignment(self) -> Any:
        from nbgrader.api import Assignment, MissingEntry

        row = (self._session.query(Assignment)
               .filter(Assignment.name == self._assignment_id).one_or_none())
        if row is None:
            raise MissingEntry(f"No such assignment: {self._assignment_id}")
        self._notebooks: dict[str, _Notebook] = {}
        for nb in row.notebooks:
            graded = {c.name: c for c in nb.grade_cells}
            for cell in nb.task_cells:
                graded.setdefault(cell.name, cell)
            names = {c.id: c.name for c in [*nb.grade_cells, *nb.solution_cells,
                                            *nb.task_cells]}
            self._notebooks[nb.name] = _Notebook(
                nb, json.loads(nb.kernelspec) if nb.kernelspec is not None else None,
                {c.name: c for c in nb.source_cells}, graded, names)
        self._session.commit()  # end the read transaction; the rows stay loaded
        return row

    def close(self) -> None:
        """End the run's session."""
        self._session.close()

    # -- one student

    def record(self, student: str, notebooks: list[str],
               runs: dict[tuple[str, str], Any] | None = None) -> dict[str, Recorded]:
        """Record ``student``'s staged ``notebooks`` (names) as nbgrader's converter would.

        Returns each notebook's :class:`Recorded`. Raises :class:`DirectRecordFailed` when it
        could not (nothing of the student's is then left: rows rolled back, folder removed,
        the student's entries of ``runs``, the fast engine's worker runs by (student,
        notebook), put back); the caller records them through nbgrader's converter.
        """
        kept = {key: runs[key] for key in ((student, n) for n in notebooks)
                if runs is not None and key in runs}
        try:
            recorded = self._record(student, notebooks)
        except DirectRecordFailed as exc:
            if runs is not None:
                runs.update(kept)
            self.fallbacks.append((student, str(exc)))
            raise
        self.recorded.append(student)
        return recorded

    def _record(self, student: str, notebooks: list[str]) -> dict[str, Recorded]:
        from nbgrader.converters.base import BaseConverter

        converter = self._converter
        a = self._assignment_id
        try:
            go = converter.init_destination(a, student)  # removes an earlier autograded folder
        except Exception as exc:
            raise DirectRecordFailed(f"{type(exc).__name__}: {exc}") from exc
        if not go:
            raise DirectRecordFailed(f"nbgrader does not grade {student} (student_id_exclude)")
        dest = Path(converter._format_dest(a, student))
        try:
            BaseConverter.init_assignment(converter, a, student)  # the submission's files
            book = self._rows(student)
            self._copy_source_files(dest)
            submitted = Path(converter._format_source(a, student))
            for name in self._notebooks:
                if not (submitted / f"{name}.ipynb").exists():  # as Autograde.init_assignment
                    for grade in book.rows[name].grades:
                        grade.auto_score = 0
                        grade.needs_manual_grade = False
            recorded = {name: self._notebook(book, student, name, submitted, dest)
                        for name in sorted(notebooks)}
            converter.set_permissions(a, student)
            self._session.commit()
        except Exception as exc:
            self._session.rollback()
            if dest.exists():
                shutil.rmtree(dest)
            raise DirectRecordFailed(f"{type(exc).__name__}: {exc}") from exc
        return recorded

    def _rows(self, student: str) -> _StudentBook:
        """The student's rows: found, or made as ``update_or_create_student`` and
        ``update_or_create_submission`` (with the timestamp) would make them."""
        from nbgrader import utils
        from nbgrader.api import (
            Comment,
            Grade,
            Student,
            SubmittedAssignment,
            SubmittedNotebook,
        )
        from sqlalchemy.orm import selectinload

        session = self._session
        converter = self._converter
        source = converter._format_source(self._assignment_id, student)
        timestamp = converter.coursedir.get_existing_timestamp(source)
        person = session.get(Student, student)
        if person is None:
            person = Student(id=student)
            session.add(person)
        notebooks = selectinload(SubmittedAssignment.notebooks)
        submission = (
            session.query(SubmittedAssignment)
            .options(notebooks.selectinload(SubmittedNotebook.grades),
                     notebooks.selectinload(SubmittedNotebook.comments))
            .filter(SubmittedAssignment.assignment_id == self._assignment.id,
                    SubmittedAssignment.student_id == student)
            .one_or_none())
        if submission is None:  # Gradebook.add_submission
            extra = {"timestamp": utils.parse_utc(timestamp)} if timestamp else {}
            submission = SubmittedAssignment(assignment=self._assignment, student=person,
                                             **extra)
            for notebook in self._assignment.notebooks:
                nb = SubmittedNotebook(notebook=notebook, assignment=submission)
                for grade_cell in notebook.grade_cells:
                    Grade(cell_id=grade_cell.id, notebook=nb)
                for solution_cell in notebook.solution_cells:
                    Comment(cell_id=solution_cell.id, notebook=nb)
                for task_cell in notebook.task_cells:
                    Comment(cell_id=task_cell.id, notebook=nb)
                    Grade(cell_id=task_cell.id, notebook=nb)
            session.add(submission)
        elif timestamp:
            submission.timestamp = utils.parse_utc(timestamp)
        if timestamp and submission.total_seconds_late > 0:
            converter.log.warning("%s is %s seconds late", submission,
                                  submission.total_seconds_late)
        return _StudentBook(self._notebooks, submission)

    def _copy_source_files(self, dest: Path) -> None:
        """The source's other files into the autograded folder (Autograde.init_assignment)."""
        for filename in self._source_files:
            target = dest / os.path.relpath(filename, self._source)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target.unlink()
            shutil.copy(filename, target)

    def _notebook(self, book: _StudentBook, student: str, name: str, submitted: Path,
                  dest: Path) -> Recorded:
        """Both of nbgrader's passes over one staged notebook, then its one write."""
        from nbformat.v4.rwbase import strip_transient
        from nbgrader import utils

        nb = nbformat.read(str(submitted / f"{name}.ipynb"), as_version=4)
        resources = self._resources(student, name, dest, nb)
        nb = self._apply(self._sanitize, book, nb, resources)
        strip_transient(nb)  # what the write and re-read between the passes drop
        with utils.setenv(NBGRADER_EXECUTION="autograde"):
            nb = self._apply(self._autograde, book, nb, resources)
        output = nbformat.writes(nb, version=4)
        if not output.endswith("\n"):
            output += "\n"
        writer = self._converter.writer
        writer.build_directory = str(dest)
        writer.write(output, resources, notebook_name=name)
        names = self._notebooks[name].cell_names
        scores: dict[str, tuple[float | None, float]] = {}
        flagged: set[str] = set()
        graded = self._notebooks[name].graded_cells
        for grade in book.rows[name].grades:
            cell = names.get(grade.cell_id, "")
            max_score = graded[cell].max_score if cell in graded else None
            scores[cell] = (grade.auto_score, float(max_score or 0))
            if grade.needs_manual_grade:
                flagged.add(cell)
        return Recorded(nb, scores, flagged)

    def _resources(self, student: str, name: str, dest: Path, nb: NotebookNode) -> Any:
        """The resources nbgrader's converter and nbconvert's exporter give the steps."""
        resources: dict[str, Any] = {
            "unique_key": name,
            "output_files_dir": f"{name}_files",
            "nbgrader": {"student": student, "assignment": self._assignment_id,
                         "notebook": name, "db_url": self._db_url},
            "metadata": {"name": name, "path": str(dest)},
        }
        resources = self._converter.exporter._init_resources(resources)
        if "language" in nb["metadata"]:
            resources["language"] = nb["metadata"]["language"].lower()
        return resources

    def _apply(self, steps: list[Any], book: _StudentBook, nb: NotebookNode,
               resources: Any) -> NotebookNode:
        """One pass: each step on ``nb`` in order (the gradebook's against ``book``), then
        nbconvert's validation."""
        from nbconvert.preprocessors import Preprocessor
        from nbgrader.preprocessors import (
            AssignLatePenalties,
            OverwriteCells,
            OverwriteKernelspec,
            SaveAutoGrades,
        )

        from grader.engine.steps import FlagForReview

        info = resources["nbgrader"]
        for step in steps:
            kind = type(step)
            if kind in (OverwriteKernelspec, OverwriteCells, SaveAutoGrades,
                        AssignLatePenalties) and not step.enabled:
                continue
            if kind is OverwriteKernelspec:
                kernelspec = self._notebooks[info["notebook"]].kernelspec
                if kernelspec:
                    nb.metadata["kernelspec"] = kernelspec
            elif kind in (OverwriteCells, SaveAutoGrades):
                # nbgrader's own cell steps, over the rows in memory
                step.notebook_id = info["notebook"]
                step.assignment_id = info["assignment"]
                step.student_id = info["student"]
                step.db_url = info["db_url"]
                step.gradebook = book
                nb, resources = Preprocessor.preprocess(step, nb, resources)
            elif kind is FlagForReview:
                step.gradebook = book
                try:
                    nb, resources = step(nb, resources)
                finally:
                    step.gradebook = None
            elif kind is AssignLatePenalties:
                self._late_penalty(step, book, info["notebook"], info["student"])
            else:
                nb, resources = step(nb, resources)
        nbformat.validate(nb, relax_add_props=True)
        return nb

    def _late_penalty(self, step: Any, book: _StudentBook, notebook: str,
                      student: str) -> None:
        """``AssignLatePenalties.preprocess`` on the student's rows (the score of a late
        notebook is the gradebook's, read after the rows so far are flushed)."""
        step.init_plugin()
        row = book.rows[notebook]
        row.late_submission_penalty = None
        seconds = book.submission.total_seconds_late
        if seconds > 0:
            step.log.warning(f"{book.submission} is {seconds} seconds late")
            self._session.flush()
            self._session.expire(row, ["score"])
            penalty = step.plugin_inst.late_submission_penalty(student, row.score, seconds)
            step.log.warning(f"Late submission penalty: {penalty}")
            if penalty is not None:
                row.late_submission_penalty = step._check_late_penalty(row, penalty)


def direct_recorder(config: Any, assignment: str, log: logging.Logger,
                    autograde_preprocessors: list[Any], execute: type, engine: Any,
                    db_url: str) -> tuple[DirectRecorder | None, str | None]:
    """A :class:`DirectRecorder` for the run, or None and why not (the course has a step or
    an option the direct path does not know, :data:`DIRECT_RECORDING` is off)."""
    if not DIRECT_RECORDING:
        return None, "DIRECT_RECORDING is off"
    converter = _converter(config, assignment, log, autograde_preprocessors)
    sanitize = _registered(converter, True)
    autograde = _registered(converter, False)
    why = unsupported(converter, sanitize + autograde, execute)
    if why is not None:
        return None, why
    return DirectRecorder(converter, sanitize, autograde, engine, db_url), None
