"""Machine- and human-readable reports of an autograde run.

Every function here takes the result dict that ``python -m grader autograde`` builds::

    {"assignment": "channels_pooling",
     "results": [{"student": "ada", "assignment": "channels_pooling",
                  "score": 11.0, "max_score": 13.0,
                  "tests": [{"grade_id": "corr2d_tests", "score": 2.0, "max_score": 2.0,
                             "passed": True, "message": "", "hint": None}, ...],
                  "error": None}, ...]}

``error`` is ``None`` for a submission that was graded, or a message saying why it could not be
(broken notebook, timeout, crashed kernel...). Formats:

- :func:`write_json`: the dict itself, pretty-printed;
- :func:`write_junit`: JUnit XML, one ``<testsuite>`` per submission, one ``<testcase>`` per
  graded cell (classname ``student.assignment``); a submission that could not be graded is one
  testcase with an ``<error>``;
- :func:`write_markdown`: tables for a GitHub step summary (``$GITHUB_STEP_SUMMARY``);
- :func:`write_classroom`: the JSON that GitHub Classroom's
  ``classroom-resources/autograding-grading-reporter@v1`` reads; the reporter takes it
  base64-encoded from a step output named ``result`` (:func:`classroom_output_b64`);
- :func:`write_csv`: one row per submission, one column per graded cell.

Review: a submission whose code the tamper scan flagged carries a ``review`` list (finding,
cell, line, snippet, grade_ids) and ``needs_manual_grade`` on the tests it affects. JUnit marks
those testcases (a ``needs_manual_grade`` property, the reason in ``system-out``), Markdown
lists the findings and marks the cells with 🔍, and Classroom posts the checks' score with the
reason in the test's message: a flag is the instructor's to decide, never a lost point.

Pure functions over plain data: no torch, no nbgrader. Files are written atomically (a
temporary file in the same folder, then a rename) so an interrupted run never leaves half a
report behind, and parent folders are created as needed.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CLASSROOM_TEST_FIELDS",
    "classroom_output_b64",
    "classroom_payload",
    "csv_text",
    "escape_markdown_cell",
    "junit_xml",
    "markdown_summary",
    "several_notebooks",
    "test_name",
    "write_classroom",
    "write_csv",
    "write_json",
    "write_junit",
    "write_markdown",
]

#: the keys of one test in the Classroom reporter's format, in the order the graders write them
CLASSROOM_TEST_FIELDS = (
    "name",
    "status",
    "score",
    "max_score",
    "message",
    "test_code",
    "filename",
    "line_no",
    "execution_time",
)

#: messages longer than this are cut in the Markdown summary (the full text is in the JSON)
MARKDOWN_MESSAGE_LIMIT = 400

# Characters XML 1.0 cannot hold at all (ANSI colour escapes in a traceback, for instance).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


# --------------------------------------------------------------------------------------------
# helpers


def _submissions(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The per-submission entries of ``result`` (an empty list when there are none)."""
    subs = result.get("results") or []
    if not isinstance(subs, Sequence) or isinstance(subs, str | bytes):
        raise ValueError("result['results'] must be a list of submission results")
    return [s for s in subs if isinstance(s, Mapping)]


def _tests(sub: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The graded cells of one submission."""
    return [t for t in (sub.get("tests") or []) if isinstance(t, Mapping)]


def _num(value: Any) -> float:
    """``value`` as a float; ``None`` or junk counts as 0."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _fmt(value: Any) -> str:
    """A score for people: ``2.0`` -> ``"2"``, ``1.5`` -> ``"1.5"``."""
    number = _num(value)
    if number == int(number):
        return str(int(number))
    return f"{number:.2f}".rstrip("0").rstrip(".")


def _plain(value: Any) -> int | float:
    """A score for machines: an int when whole, else a float."""
    number = _num(value)
    return int(number) if number == int(number) else number


def _text(value: Any) -> str:
    """``value`` as text without ANSI colour codes (``None`` -> ``""``)."""
    if value is None:
        return ""
    return _ANSI.sub("", str(value))


def _assignment(result: Mapping[str, Any], sub: Mapping[str, Any] | None = None) -> str:
    """The assignment name of a submission, falling back to the run's."""
    if sub is not None and sub.get("assignment"):
        return str(sub["assignment"])
    return str(result.get("assignment") or "assignment")


def _student(sub: Mapping[str, Any]) -> str:
    return str(sub.get("student") or "student")


def _ungraded(sub: Mapping[str, Any]) -> bool:
    """True when the submission got no score at all.

    The grader marks that with ``"graded": False``; without that key, an ``error`` means the
    submission was not graded. A graded submission may still carry an ``error`` (a repaired
    notebook, a timed-out cell): its tests are reported and the error is shown as a note.
    """
    if "graded" in sub:
        return not sub.get("graded")
    return bool(sub.get("error"))


def _test_passed(test: Mapping[str, Any]) -> bool:
    return bool(test.get("passed"))


def _failure_text(test: Mapping[str, Any]) -> str:
    """The check's message, with its hint on a new line when the hint adds something."""
    message = _text(test.get("message")).strip()
    hint = _text(test.get("hint")).strip()
    if hint and hint not in message:
        return f"{message}\nHint: {hint}" if message else f"Hint: {hint}"
    return message


# --------------------------------------------------------------------------------------------
# review (the tamper scan's findings: a flag for the instructor, never a score)


def _review(sub: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    review = sub.get("review")
    return [f for f in review if isinstance(f, Mapping)] if isinstance(review, list) else []


def _finding_text(finding: Mapping[str, Any]) -> str:
    """One finding in a sentence: where, the code, what the scan saw."""
    return (f"cell {int(_num(finding.get('cell'))) + 1}, line {_fmt(finding.get('line'))}: "
            f"`{_text(finding.get('snippet')).strip()}`: {_text(finding.get('finding'))}")


def several_notebooks(subs: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the tests of ``subs`` come from more than one notebook: then a grade_id alone
    does not name a test (nbgrader's grade_ids are unique only within a notebook)."""
    return len({str(t.get("notebook")) for sub in subs for t in _tests(sub)
                if t.get("notebook")}) > 1


def test_name(test: Mapping[str, Any], qualified: bool) -> str:
    """A test cell's name in a report: its grade_id, or ``notebook/grade_id`` when
    ``qualified`` (an assignment with several notebooks, :func:`several_notebooks`)."""
    grade_id = str(test.get("grade_id") or "test")
    notebook = test.get("notebook")
    return f"{notebook}/{grade_id}" if qualified and notebook else grade_id


def review_note(sub: Mapping[str, Any], test: Mapping[str, Any]) -> str:
    """Why ``test`` of ``sub`` is flagged for review ("" when it is not)."""
    if not test.get("needs_manual_grade"):
        return ""
    gid = test.get("grade_id")
    found = [_finding_text(f) for f in _review(sub) if gid in (f.get("grade_ids") or [])
             and f.get("notebook", test.get("notebook")) == test.get("notebook")]
    why = "; ".join(found) if found else "the gradebook marks it for manual grading"
    return (f"Flagged for the instructor's review (the score stands until then): {why}")


def _atomic_write(path: str | os.PathLike[str], data: str) -> Path:
    """Write ``data`` (UTF-8) to ``path`` through a temporary file and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------------------------
# JSON


def write_json(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the result dict as indented JSON (UTF-8, keys in their given order)."""
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n"
    return _atomic_write(path, text)


# --------------------------------------------------------------------------------------------
# JUnit XML


def _xml_safe(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)


def junit_xml(result: Mapping[str, Any]) -> str:
    """The JUnit XML document for ``result``.

    One ``<testsuite name="student.assignment">`` per submission; one ``<testcase>`` per graded
    cell, named by its grade_id, with a ``<failure>`` carrying the check's message when it did
    not pass. A submission that could not be graded becomes a single ``autograde`` testcase
    with an ``<error>``. Scores go into ``<properties>`` so nothing is lost.
    """
    subs = _submissions(result)
    qualified = several_notebooks(subs)
    root = ET.Element("testsuites", name=_xml_safe(_assignment(result)))
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for sub in subs:
        classname = _xml_safe(f"{_student(sub)}.{_assignment(result, sub)}")
        suite = ET.SubElement(root, "testsuite", name=classname)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="score", value=_fmt(sub.get("score")))
        ET.SubElement(props, "property", name="max_score", value=_fmt(sub.get("max_score")))
        if _review(sub):
            ET.SubElement(props, "property", name="review", value=_xml_safe(
                " | ".join(_finding_text(f) for f in _review(sub))))
        counts = {"tests": 0, "failures": 0, "errors": 0}
        error = sub.get("error")
        if _ungraded(sub):
            case = ET.SubElement(suite, "testcase", classname=classname, name="autograde")
            message = _xml_safe(_text(error).strip() or "the submission could not be graded")
            node = ET.SubElement(case, "error", message=message, type="AutogradeError")
            node.text = message
            counts["tests"] += 1
            counts["errors"] += 1
        else:
            for test in _tests(sub):
                name = _xml_safe(test_name(test, qualified))
                case = ET.SubElement(suite, "testcase", classname=classname, name=name)
                counts["tests"] += 1
                _junit_review(case, sub, test)
                if not _test_passed(test):
                    counts["failures"] += 1
                    message = _xml_safe(_text(test.get("message")).strip() or "check failed")
                    node = ET.SubElement(case, "failure", message=message, type="AssertionError")
                    node.text = _xml_safe(_failure_text(test)) or message
            if error:
                note = ET.SubElement(suite, "system-err")
                note.text = _xml_safe(_text(error).strip())
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("skipped", "0")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _junit_review(case: ET.Element, sub: Mapping[str, Any], test: Mapping[str, Any]) -> None:
    """Mark a flagged testcase: a needs_manual_grade property and the reason in system-out."""
    note = review_note(sub, test)
    if not note:
        return
    props = ET.SubElement(case, "properties")
    ET.SubElement(props, "property", name="needs_manual_grade", value="true")
    out = ET.SubElement(case, "system-out")
    out.text = _xml_safe(note)


def write_junit(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`junit_xml` of ``result`` to ``path``."""
    return _atomic_write(path, junit_xml(result))


# --------------------------------------------------------------------------------------------
# Markdown


def escape_markdown_cell(text: Any, limit: int | None = MARKDOWN_MESSAGE_LIMIT) -> str:
    """``text`` made safe for one cell of a GitHub Markdown table.

    HTML special characters become entities (a student's output cannot inject markup), ``|``
    is escaped so it cannot end the cell, newlines become ``<br>``, and text longer than
    ``limit`` characters is cut with an ellipsis.
    """
    value = _text(text).strip()
    if limit is not None and len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    value = html.escape(value, quote=False)
    value = value.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")
    return value


def _percent(score: Any, max_score: Any) -> str:
    top = _num(max_score)
    return f"{100.0 * _num(score) / top:.0f}%" if top > 0 else "–"


def markdown_summary(result: Mapping[str, Any]) -> str:
    """Markdown tables for a GitHub step summary.

    First a table of every submission (score, maximum, percentage, passed cells), then one
    table per submission with a ✅/❌ line per graded cell and the check's message.
    """
    subs = _submissions(result)
    qualified = several_notebooks(subs)
    assignment = escape_markdown_cell(_assignment(result), limit=None)
    lines = [f"## Autograde: {assignment}", ""]
    if not subs:
        lines += ["No submission was graded.", ""]
        return "\n".join(lines)
    lines += [
        "| student | score | max | % | passed | status |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for sub in subs:
        tests = _tests(sub)
        passed = sum(_test_passed(t) for t in tests)
        if _ungraded(sub):
            status = "⚠️ not graded"
        elif passed == len(tests):
            status = "✅"
        else:
            status = "❌"
        if _review(sub):
            status += " 🔍 review"
        lines.append(
            f"| {escape_markdown_cell(_student(sub), limit=None)} | {_fmt(sub.get('score'))} "
            f"| {_fmt(sub.get('max_score'))} | {_percent(sub.get('score'), sub.get('max_score'))} "
            f"| {passed}/{len(tests)} | {status} |"
        )
    lines.append("")
    for sub in subs:
        student = escape_markdown_cell(_student(sub), limit=None)
        lines.append(f"### {student}: {_fmt(sub.get('score'))}/{_fmt(sub.get('max_score'))}")
        lines.append("")
        if _ungraded(sub):
            message = escape_markdown_cell(sub.get("error") or "no score could be computed")
            lines += [f"⚠️ **Not graded:** {message}", ""]
            continue
        if sub.get("error"):
            lines += [f"⚠️ **Note:** {escape_markdown_cell(sub.get('error'))}", ""]
        lines += _markdown_review(sub)
        tests = _tests(sub)
        if not tests:
            lines += ["No graded cells were found.", ""]
            continue
        lines += ["| test | result | points | message |", "| --- | :---: | ---: | --- |"]
        for test in tests:
            mark = ("✅" if _test_passed(test) else "❌") + (
                " 🔍" if test.get("needs_manual_grade") else "")
            message = "" if _test_passed(test) else escape_markdown_cell(_failure_text(test))
            lines.append(
                f"| {escape_markdown_cell(test_name(test, qualified), limit=None)} | {mark} "
                f"| {_fmt(test.get('score'))}/{_fmt(test.get('max_score'))} | {message} |"
            )
        lines.append("")
    return "\n".join(lines)


def _markdown_review(sub: Mapping[str, Any]) -> list[str]:
    """The review lines of one submission's section (none when nothing was found)."""
    review = _review(sub)
    if not review:
        return []
    lines = ["🔍 **Flagged for review** (the scores below are the checks' own; 🔍 marks the "
             "cells to look at in formgrader):", ""]
    lines += [f"* {escape_markdown_cell(_finding_text(f))}" for f in review]
    return lines + [""]


def write_markdown(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`markdown_summary` of ``result`` to ``path``."""
    return _atomic_write(path, markdown_summary(result))


# --------------------------------------------------------------------------------------------
# GitHub Classroom


def _classroom_test(
    name: str, status: str, score: Any, max_score: Any, message: str
) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "score": _plain(score),
        "max_score": _plain(max_score),
        "message": message,
        "test_code": "",
        "filename": "",
        "line_no": 0,
        "execution_time": "",
    }


def classroom_payload(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result in the format of GitHub Classroom's autograding runners.

    ``{"version": 1, "status": "pass"|"fail"|"error", "max_score": N, "tests": [...]}`` with
    one test per graded cell (:data:`CLASSROOM_TEST_FIELDS`). The reporter adds up each test's
    ``score`` against the top-level ``max_score`` for the points it posts to Classroom, and
    fails the job when the status is ``fail`` or ``error``. When several submissions are in
    one result, test names are prefixed with the student. A submission that could not be
    graded is one test with status ``error`` and score 0; an empty result is ``error`` too.
    """
    subs = _submissions(result)
    prefix = len(subs) > 1
    qualified = several_notebooks(subs)
    tests: list[dict[str, Any]] = []
    max_score = 0.0
    any_error = False
    any_fail = False
    for sub in subs:
        student = _student(sub)
        max_score += _num(sub.get("max_score"))
        if _ungraded(sub):
            any_error = True
            name = f"{student}: autograde" if prefix else "autograde"
            message = _text(sub.get("error")).strip() or "the submission could not be graded"
            tests.append(_classroom_test(name, "error", 0, sub.get("max_score"), message))
            continue
        for test in _tests(sub):
            grade_id = test_name(test, qualified)
            passed = _test_passed(test)
            any_fail = any_fail or not passed
            tests.append(
                _classroom_test(
                    f"{student}: {grade_id}" if prefix else grade_id,
                    "pass" if passed else "fail",
                    test.get("score"),
                    test.get("max_score"),
                    "\n".join(part for part in (
                        "" if passed else _failure_text(test), review_note(sub, test)) if part),
                )
            )
    if not tests:
        any_error = True
        tests.append(_classroom_test("autograde", "error", 0, 0, "no submission was graded"))
    status = "error" if any_error else "fail" if any_fail else "pass"
    return {"version": 1, "status": status, "max_score": _plain(max_score), "tests": tests}


def write_classroom(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`classroom_payload` of ``result`` as JSON to ``path``."""
    text = json.dumps(classroom_payload(result), ensure_ascii=False, indent=2) + "\n"
    return _atomic_write(path, text)


def classroom_output_b64(result: Mapping[str, Any]) -> str:
    """The Classroom payload as the reporter reads it: base64 of compact UTF-8 JSON.

    Set it as the step output ``result`` (``echo "result=$(...)" >> "$GITHUB_OUTPUT"``) and pass
    it to the reporter as ``<STEP_ID>_RESULTS: ${{ steps.<step_id>.outputs.result }}``.
    """
    data = json.dumps(classroom_payload(result), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(data.encode("utf-8")).decode("ascii")


# --------------------------------------------------------------------------------------------
# CSV


def _grade_ids(subs: Sequence[Mapping[str, Any]], qualified: bool) -> list[str]:
    seen: dict[str, None] = {}
    for sub in subs:
        for test in _tests(sub):
            seen.setdefault(test_name(test, qualified), None)
    return list(seen)


def csv_text(result: Mapping[str, Any]) -> str:
    """CSV with one row per submission: student, assignment, score, max_score, percent,
    error, then the points of each graded cell (empty when that cell was not graded)."""
    subs = _submissions(result)
    qualified = several_notebooks(subs)
    grade_ids = _grade_ids(subs, qualified)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "assignment", "score", "max_score", "percent", "error", *grade_ids])
    for sub in subs:
        points = {test_name(t, qualified): _fmt(t.get("score")) for t in _tests(sub)}
        top = _num(sub.get("max_score"))
        percent = f"{100.0 * _num(sub.get('score')) / top:.1f}" if top > 0 else ""
        writer.writerow(
            [
                _student(sub),
                _assignment(result, sub),
                _fmt(sub.get("score")),
                _fmt(sub.get("max_score")),
                percent,
                _text(sub.get("error")).strip(),
                *(points.get(g, "") for g in grade_ids),
            ]
        )
    return buffer.getvalue()


def write_csv(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`csv_text` of ``result`` to ``path``."""
    return _atomic_write(path, csv_text(result))
