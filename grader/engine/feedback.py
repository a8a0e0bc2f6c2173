"""Feedback that never shows hidden tests.

Stock nbgrader 0.9.6 renders the autograded notebook, hidden tests restored, into the
students' feedback HTML (nbgrader issue #917), and a failing cell's traceback quotes the
source lines around the failure, hidden ones included. :class:`ClearHiddenTestsAndTracebacks`
strips the hidden-test regions from the cells and from their tracebacks before rendering, so
the feedback shows the visible asserts and each check's message only. ``nbgrader_config.py``
puts it into ``GenerateFeedback.preprocessors``.

Student content in feedback is made inert by :class:`grader.engine.steps.SanitizeStudentContent`
(also in ``GenerateFeedback.preprocessors``, so an autograded folder made before it existed is
covered); :class:`FeedbackHTMLExporter` adds a Content-Security-Policy to the page as a second
line of defence.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from nbconvert.exporters import HTMLExporter
from nbgrader.preprocessors import ClearHiddenTests

from grader.engine.steps import Step

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A quoted source line in an IPython traceback: "---> 10 code" or "     10 code".
_QUOTED = re.compile(r"^\s*(?:-*>)?\s*\d+\s(.*)$")


class ClearHiddenTestsAndTracebacks(ClearHiddenTests, Step):
    """nbgrader's ClearHiddenTests, which also drops the hidden lines quoted in tracebacks
    (a :class:`grader.engine.steps.Step`, so generate_feedback's exporter config fits it)."""

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


# ---------------------------------------------------------------------------------------------
# a Content-Security-Policy for the feedback HTML (second line of defence behind
# grader.engine.sanitize): the page may run only the scripts its own template put in <head>


_HEAD = re.compile(r"<head\b[^>]*>(.*?)</head>", re.S | re.I)
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc=[\"']?([^\"' >]+)", re.I)


def content_security_policy(page: str) -> str:
    """The CSP for a rendered feedback page: scripts only as the template's ``<head>`` has
    them (inline ones by hash, MathJax by its folder on the CDN, and eval for MathJax's
    configuration block), images only from the page
    itself or ``data:``, inline styles (template, MathJax, pandas tables), nothing else: no
    frames, objects, forms, connections, or ``<base>``."""
    head_match = _HEAD.search(page)
    head = head_match.group(1) if head_match else ""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(head)
    ]
    folders = sorted({src.split("?")[0].rsplit("/", 1)[0] + "/"
                      for src in _SCRIPT_SRC.findall(head) if src.startswith("https://")})
    return "; ".join([
        "default-src 'none'",
        # MathJax 2 runs the template's text/x-mathjax-config block with eval: without
        # 'unsafe-eval' no math shows. Only scripts already allowed here can call eval.
        "script-src " + (" ".join(hashes + folders + ["'unsafe-eval'"]) if folders
                         else " ".join(hashes) or "'none'"),
        "style-src 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src " + " ".join(["'self'"] + folders + ["data:"]),
        "base-uri 'none'",
        "form-action 'none'",
        "frame-src 'none'",
        "object-src 'none'",
    ])


def add_content_security_policy(page: str) -> str:
    """``page`` with its CSP ``<meta>`` as the first element of ``<head>`` (so it covers
    everything after it)."""
    meta = ('<meta http-equiv="Content-Security-Policy" content="'
            + content_security_policy(page) + '">')
    return re.sub(r"(<head\b[^>]*>)", lambda m: m.group(1) + "\n" + meta, page, count=1,
                  flags=re.I)


class FeedbackHTMLExporter(HTMLExporter):
    """nbconvert's HTMLExporter whose page carries :func:`content_security_policy`
    (``GenerateFeedback.exporter_class`` in nbgrader_config.py)."""

    def from_notebook_node(self, nb: Any, resources: dict | None = None,
                           **kw: Any) -> tuple[str, dict]:
        """Render as HTMLExporter does, then add the CSP ``<meta>``."""
        output, resources = super().from_notebook_node(nb, resources, **kw)
        return add_content_security_policy(output), resources
