"""Feedback that never shows hidden tests.

Stock nbgrader 0.9.6 renders the autograded notebook, hidden tests restored, into the
students' feedback HTML (nbgrader issue #917), and a failing cell's traceback quotes the
source lines around the failure, hidden ones included. :class:`ClearHiddenTestsAndTracebacks`
strips the hidden-test regions from the cells and from their tracebacks before rendering, so
the feedback shows the visible asserts and each check's message only. ``nbgrader_config.py``
puts it into ``GenerateFeedback.preprocessors``.
"""

from __future__ import annotations

import re
from typing import Any

from nbgrader.preprocessors import ClearHiddenTests
from traitlets import List

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A quoted source line in an IPython traceback: "---> 10 code" or "     10 code".
_QUOTED = re.compile(r"^\s*(?:-*>)?\s*\d+\s(.*)$")


class ClearHiddenTestsAndTracebacks(ClearHiddenTests):
    """nbgrader's ClearHiddenTests, which also drops the hidden lines quoted in tracebacks."""

    #: Configurable, as in nbgrader's GetGrades: nbconvert's HTMLExporter configures
    #: ``NbConvertBase.display_data_priority`` for every preprocessor, and traitlets warns
    #: about an option that a class inherits without ``config=True``.
    display_data_priority = List(
        ClearHiddenTests.class_traits()["display_data_priority"].default(), config=True
    )

    def preprocess_cell(self, cell: Any, resources: dict, cell_index: int) -> tuple[Any, dict]:
        """Clear the hidden region of ``cell`` and its quoted lines in error tracebacks."""
        hidden = set()
        if cell.cell_type == "code":
            inside = False
            for line in cell.source.splitlines():
                if self.begin_test_delimeter in line:
                    inside = True
                if inside and line.strip():
                    hidden.add(line.strip())
                if self.end_test_delimeter in line:
                    inside = False
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        for output in cell.get("outputs", []) if hidden else []:
            if output.get("output_type") == "error":
                output["traceback"] = [
                    "\n".join(
                        line for line in frame.split("\n")
                        if not ((m := _QUOTED.match(_ANSI.sub("", line)))
                                and m.group(1).strip() in hidden)
                    )
                    for frame in output.get("traceback", [])
                ]
        return cell, resources
