"""convgrade's steps in nbgrader's autograde and feedback pipelines: the nbgrader preprocessors.

Each is a thin wrapper around its job's module, which does the work without nbgrader (so a
lone notebook graded in CI, which never records into a gradebook, does not import nbgrader's
preprocessors, nbconvert or SQLAlchemy for them):

* :class:`SanitizeStudentContent` (:mod:`grader.engine.sanitize`): makes the student's
  content inert, after execution in ``Autograde.autograde_preprocessors`` and again in
  ``GenerateFeedback.preprocessors``;
* :class:`KeepStderrVisible` (:mod:`grader.engine.review`): a test cell's stderr becomes plain
  text before ``SaveAutoGrades``, so it no longer scores 0;
* :class:`FlagForReview` (:mod:`grader.engine.review`): after ``SaveAutoGrades``, flags the
  grades a tamper finding affects as needing manual grading.

A course lists them by import string, as nbgrader's own steps may be listed
(``"grader.engine.steps.FlagForReview"``; see nbgrader_config.py), so loading the course's
config imports none of them.
"""

from __future__ import annotations

import contextlib
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List

from grader.engine.review import flagged_grade_ids, review_findings, stderr_as_display
from grader.engine.sanitize import check_student_id, sanitize_notebook

__all__ = ["FlagForReview", "KeepStderrVisible", "SanitizeStudentContent"]


class Step(NbGraderPreprocessor):
    """The base of convgrade's nbgrader preprocessors (here and in
    :mod:`grader.engine.feedback`): one that takes ``display_data_priority`` as config.

    nbconvert's HTMLExporter (generate_feedback) configures ``NbConvertBase.display_data_priority``
    for every preprocessor it runs, and NbGraderPreprocessor redeclares that trait without
    ``config=True``, so traitlets would warn "Config option `display_data_priority` not
    recognized" for each step and each run; nbgrader's own GetGrades declares it the same way."""

    display_data_priority = List(
        NbGraderPreprocessor.class_traits()["display_data_priority"].default(), config=True
    )


class SanitizeStudentContent(Step):
    """nbgrader preprocessor: :func:`grader.engine.sanitize.sanitize_notebook` on the whole
    notebook."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Make ``nb`` inert and note what was removed in its metadata.

        Refuses a student id with HTML-significant characters
        (:func:`grader.engine.sanitize.check_student_id`)."""
        student = str(resources.get("nbgrader", {}).get("student", ""))
        check_student_id(student)
        removed = sanitize_notebook(nb)
        if removed:
            self.log.warning("removed active content from %s's notebook: %s", student,
                             "; ".join(", ".join(r["removed"]) for r in removed))
        return nb, resources


class KeepStderrVisible(Step):
    """Keeps test cells' stderr visible without nbgrader scoring it 0 (before SaveAutoGrades)."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Rewrite the stderr outputs of test cells
        (:func:`grader.engine.review.stderr_as_display`)."""
        stderr_as_display(nb)
        return nb, resources


class FlagForReview(Step):
    """Flags the grades a tamper finding affects as needing manual grading (after
    SaveAutoGrades, which sets ``needs_manual_grade`` itself)."""

    #: where to find the grades instead of opening the gradebook at ``db_url`` (the direct
    #: record path's rows in memory, grader.engine.record); None: open the gradebook
    gradebook: Any = None

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Set ``needs_manual_grade`` on every affected grade of this submission."""
        from nbgrader.api import Gradebook

        flagged = flagged_grade_ids(review_findings(nb))
        if not flagged:
            return nb, resources
        info = resources["nbgrader"]
        opened = (contextlib.nullcontext(self.gradebook) if self.gradebook is not None
                  else Gradebook(info["db_url"]))
        with opened as gb:
            for gid in sorted(flagged):
                grade = gb.find_grade(gid, info["notebook"], info["assignment"],
                                      info["student"])
                grade.needs_manual_grade = True
            gb.db.commit()
        for gid in sorted(flagged):
            self.log.info("%s: %s needs review (the tamper scan found something)",
                          info["student"], gid)
        return nb, resources
