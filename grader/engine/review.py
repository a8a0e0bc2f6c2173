"""Suspicions go to review, and stderr never zeroes a right answer.

The work of two steps of the autograde pipeline, both listed in
``c.Autograde.autograde_preprocessors`` (nbgrader_config.py), so the fast and the stock engine
run them alike; the nbgrader preprocessors themselves are in :mod:`grader.engine.steps`:

* ``KeepStderrVisible``, between execution and ``SaveAutoGrades``: nbgrader scores a test
  cell 0 as soon as it wrote to stderr (``nbgrader.utils.determine_grade``), so a right answer
  that warns lost its points. :func:`stderr_as_display` turns the stderr text of test cells
  into a plain-text ``display_data`` output: still shown in the autograded notebook and in
  the feedback, no longer a zero. Errors (a failed assert, a failed check) still score 0.
* ``FlagForReview``, after ``SaveAutoGrades``: when the tamper scan
  (:func:`grader.engine.forbidden.tamper_scan`) finds something in the student's code, the test
  cells that ran after it keep the score the checks gave and are flagged
  ``needs_manual_grade`` in the gradebook, so formgrader lists them for the instructor. The
  scan never zeroes a grade.

:func:`review_findings` is the one place that turns scan findings into review entries (the
JSON ``review`` list, the reports and the gradebook flag all come from it). This module
imports no nbgrader: the lone-notebook path of the fast engine uses it without a gradebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbformat import NotebookNode

from grader.engine.precheck import is_test_cell

__all__ = ["ReviewFinding", "flagged_grade_ids", "review_findings", "stderr_as_display"]

#: Marks the display_data outputs that were stderr text (for the reports and the tests).
STDERR_MARK = "convgrade_stderr"


@dataclass(frozen=True)
class ReviewFinding:
    """One reason for an instructor to look at a submission.

    Attributes:
        finding: what the tamper scan saw, as a phrase.
        cell: the notebook cell it stands in (0-based index into the notebook's cells).
        line: the line within that cell (1-based).
        snippet: the line's code.
        grade_ids: the test cells that ran after it, whose grades are flagged.
    """

    finding: str
    cell: int
    line: int
    snippet: str
    grade_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the result entry's ``review`` list)."""
        return {"finding": self.finding, "cell": self.cell, "line": self.line,
                "snippet": self.snippet, "grade_ids": list(self.grade_ids)}

    def describe(self) -> str:
        """One sentence for the reports."""
        return f"cell {self.cell + 1}, line {self.line}: `{self.snippet}`: {self.finding}"


def _nbgrader(cell: NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def review_findings(nb: NotebookNode) -> list[ReviewFinding]:
    """The tamper scan's findings on ``nb``'s student code, each with the grades it affects.

    The code scanned is every code cell that is not a test cell, as it stands in ``nb`` (the
    notebook the grader read from the submission; test cells are the source's). A finding
    affects the test cells after its own cell only: code cannot change a record that was
    already sent.
    """
    from grader.engine.forbidden import join_cells, locate, tamper_scan

    student = [(i, c) for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and not is_test_cell(c)]
    source = join_cells(c.source for _, c in student)
    tests = [(i, str(_nbgrader(c).get("grade_id", ""))) for i, c in enumerate(nb.cells)
             if is_test_cell(c)]
    findings = []
    for found in tamper_scan(source):
        number, line = locate(source, found.line)
        index = student[number][0] if number < len(student) else 0
        findings.append(ReviewFinding(found.name, index, line, found.text,
                                      tuple(gid for i, gid in tests if i > index)))
    return findings


def flagged_grade_ids(findings: list[ReviewFinding]) -> set[str]:
    """Every grade_id some finding affects."""
    return {gid for f in findings for gid in f.grade_ids}


def stderr_as_display(nb: NotebookNode) -> int:
    """Turn the stderr stream outputs of ``nb``'s test cells into plain-text display_data.

    Returns how many outputs changed. The text is kept word for word.
    """
    import nbformat

    changed = 0
    for cell in nb.cells:
        if not is_test_cell(cell):
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                out = nbformat.v4.new_output(
                    "display_data", data={"text/plain": str(out.get("text", ""))},
                    metadata={STDERR_MARK: True})
                changed += 1
            outputs.append(out)
        cell.outputs = outputs
    return changed
