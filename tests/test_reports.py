"""Tests for grader.engine.reports: every format read back by an independent parser."""

from __future__ import annotations

import base64
import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from grader.engine import reports


def _result() -> dict[str, Any]:
    """Three submissions: all right, one wrong check with a nasty message, one broken."""
    return {
        "assignment": "channels_pooling",
        "results": [
            {
                "student": "ada",
                "assignment": "channels_pooling",
                "score": 4.0,
                "max_score": 4.0,
                "tests": [
                    {
                        "grade_id": "corr2d_tests",
                        "score": 2.0,
                        "max_score": 2.0,
                        "passed": True,
                        "message": "",
                        "hint": None,
                    },
                    {
                        "grade_id": "pool2d_max_tests",
                        "score": 2.0,
                        "max_score": 2.0,
                        "passed": True,
                        "message": "",
                        "hint": None,
                    },
                ],
                "error": None,
            },
            {
                "student": "ben",
                "assignment": "channels_pooling",
                "score": 2.0,
                "max_score": 4.0,
                "tests": [
                    {
                        "grade_id": "corr2d_tests",
                        "score": 2.0,
                        "max_score": 2.0,
                        "passed": True,
                        "message": "",
                        "hint": None,
                    },
                    {
                        "grade_id": "pool2d_max_tests",
                        "score": 0.0,
                        "max_score": 2.0,
                        "passed": False,
                        "message": "pool2d(X, (2, 2)) | expected [[4, 5]]\ngot <b>[[0, 1]]</b> "
                        "\x1b[31m& more\x1b[0m",
                        "hint": "the window slides by one, not by the pool size",
                    },
                ],
                "error": None,
            },
            {
                "student": "cy",
                "assignment": "channels_pooling",
                "score": 0.0,
                "max_score": 4.0,
                "tests": [],
                "error": "the notebook is not valid JSON: Expecting value: line 1 column 1",
            },
        ],
    }


def test_json_round_trip(tmp_path: Path) -> None:
    out = reports.write_json(_result(), tmp_path / "sub" / "r.json")
    assert json.loads(out.read_text(encoding="utf-8")) == _result()


def test_junit_parses_with_right_counts(tmp_path: Path) -> None:
    path = reports.write_junit(_result(), tmp_path / "r.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "ada.channels_pooling",
        "ben.channels_pooling",
        "cy.channels_pooling",
    ]
    ada, ben, cy = suites
    assert (ada.get("tests"), ada.get("failures"), ada.get("errors")) == ("2", "0", "0")
    assert (ben.get("tests"), ben.get("failures"), ben.get("errors")) == ("2", "1", "0")
    assert (cy.get("tests"), cy.get("failures"), cy.get("errors")) == ("1", "0", "1")
    cases = ben.findall("testcase")
    assert {c.get("classname") for c in cases} == {"ben.channels_pooling"}
    assert [c.get("name") for c in cases] == ["corr2d_tests", "pool2d_max_tests"]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message").startswith("pool2d(X, (2, 2)) | expected [[4, 5]]")
    assert "\x1b" not in failure.get("message")  # ANSI codes are not valid XML
    assert "Hint: the window slides" in failure.text
    error = cy.find("testcase/error")
    assert error is not None and "not valid JSON" in error.get("message")
    scores = {p.get("name"): p.get("value") for p in ben.findall("properties/property")}
    assert scores == {"score": "2", "max_score": "4"}


def test_markdown_escapes_pipes_and_html(tmp_path: Path) -> None:
    text = reports.write_markdown(_result(), tmp_path / "s.md").read_text(encoding="utf-8")
    assert "## Autograde: channels_pooling" in text
    assert "| ben | 2 | 4 | 50% | 1/2 | ❌ |" in text
    assert "| ada | 4 | 4 | 100% | 2/2 | ✅ |" in text
    assert "⚠️" in text and "not valid JSON" in text
    row = next(line for line in text.splitlines() if line.startswith("| pool2d_max_tests | ❌"))
    assert "\\|" in row and "<b>" not in row and "&lt;b&gt;" in row and "<br>" in row
    # every table row keeps its column count: escaped pipes do not split cells
    unescaped = row.replace("\\|", "")
    assert unescaped.count("|") == 5
    assert "✅" in text


def test_markdown_cell_limit() -> None:
    cell = reports.escape_markdown_cell("x" * 1000, limit=50)
    assert len(cell) == 50 and cell.endswith("…")
    assert reports.escape_markdown_cell("a|b\nc") == "a\\|b<br>c"


def _validate_classroom(payload: dict[str, Any]) -> None:
    """The field list the Classroom reporter reads (see grader/engine/reports.py)."""
    assert set(payload) == {"version", "status", "max_score", "tests"}
    assert payload["version"] == 1
    assert payload["status"] in {"pass", "fail", "error"}
    assert isinstance(payload["max_score"], int | float)
    assert payload["tests"]
    for test in payload["tests"]:
        assert tuple(test) == reports.CLASSROOM_TEST_FIELDS
        assert isinstance(test["name"], str) and test["name"]
        assert test["status"] in {"pass", "fail", "error"}
        assert isinstance(test["score"], int | float)
        assert isinstance(test["max_score"], int | float)
        assert isinstance(test["message"], str)
        assert test["test_code"] == "" and test["filename"] == "" and test["line_no"] == 0
        assert isinstance(test["execution_time"], str)


def test_classroom_format(tmp_path: Path) -> None:
    payload = json.loads(
        reports.write_classroom(_result(), tmp_path / "c.json").read_text(encoding="utf-8")
    )
    _validate_classroom(payload)
    assert payload["status"] == "error"
    assert payload["max_score"] == 12
    names = [t["name"] for t in payload["tests"]]
    assert names == [
        "ada: corr2d_tests",
        "ada: pool2d_max_tests",
        "ben: corr2d_tests",
        "ben: pool2d_max_tests",
        "cy: autograde",
    ]
    assert sum(t["score"] for t in payload["tests"]) == 6


def test_classroom_single_submission_statuses() -> None:
    ada = {"assignment": "channels_pooling", "results": [_result()["results"][0]]}
    ben = {"assignment": "channels_pooling", "results": [_result()["results"][1]]}
    for result, status in ((ada, "pass"), (ben, "fail")):
        payload = reports.classroom_payload(result)
        _validate_classroom(payload)
        assert payload["status"] == status
        assert [t["name"] for t in payload["tests"]] == ["corr2d_tests", "pool2d_max_tests"]
        assert payload["max_score"] == 4
    failed = reports.classroom_payload(ben)["tests"][1]
    assert failed["status"] == "fail" and failed["score"] == 0 and "Hint:" in failed["message"]
    empty = reports.classroom_payload({"assignment": "x", "results": []})
    _validate_classroom(empty)
    assert empty["status"] == "error"


def test_classroom_base64_round_trip() -> None:
    encoded = reports.classroom_output_b64(_result())
    assert "\n" not in encoded and encoded.isascii()
    decoded = json.loads(base64.b64decode(encoded).decode("utf-8"))
    assert decoded == reports.classroom_payload(_result())


def test_csv(tmp_path: Path) -> None:
    path = reports.write_csv(_result(), tmp_path / "grades.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["student"] for r in rows] == ["ada", "ben", "cy"]
    assert rows[1]["score"] == "2" and rows[1]["percent"] == "50.0"
    assert rows[1]["pool2d_max_tests"] == "0" and rows[0]["pool2d_max_tests"] == "2"
    assert rows[2]["corr2d_tests"] == "" and "not valid JSON" in rows[2]["error"]


def test_writers_do_not_leave_temp_files(tmp_path: Path) -> None:
    for writer, name in (
        (reports.write_json, "a.json"),
        (reports.write_junit, "a.xml"),
        (reports.write_markdown, "a.md"),
        (reports.write_classroom, "c.json"),
        (reports.write_csv, "a.csv"),
    ):
        writer(_result(), tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.csv",
        "a.json",
        "a.md",
        "a.xml",
        "c.json",
    ]


def test_bad_results_field_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        reports.junit_xml({"assignment": "x", "results": "oops"})


def test_reports_do_not_import_torch() -> None:
    code = "import sys, grader.engine.reports; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_graded_submission_with_a_problem_keeps_its_tests() -> None:
    """``graded: True`` plus an ``error`` (e.g. a repaired notebook) is a note, not an error."""
    sub = dict(_result()["results"][1], graded=True, error="a deleted test cell was restored")
    result = {"assignment": "channels_pooling", "results": [sub]}
    root = ET.fromstring(reports.junit_xml(result).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    assert "restored" in suite.find("system-err").text
    text = reports.markdown_summary(result)
    assert "⚠️ **Note:** a deleted test cell was restored" in text and "not graded" not in text
    payload = reports.classroom_payload(result)
    assert payload["status"] == "fail" and len(payload["tests"]) == 2
    ungraded = dict(sub, graded=False, error="not valid JSON")
    payload = reports.classroom_payload({"assignment": "x", "results": [ungraded]})
    assert payload["status"] == "error" and payload["tests"][0]["name"] == "autograde"
