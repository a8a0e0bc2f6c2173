"""Tests for grader.engine.classreport on synthetic autograde results (no notebooks run)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.engine import classreport

POINTS = {"corr2d_tests": 2.0, "pool2d_max_tests": 2.0, "pool2d_mode_tests": 1.0}


def _test(grade_id: str, passed: bool, hint: str | None = None, message: str = "") -> dict:
    """One test entry as autograde writes it."""
    points = POINTS[grade_id]
    return {
        "grade_id": grade_id,
        "score": points if passed else 0.0,
        "max_score": points,
        "passed": passed,
        "message": message,
        "hint": hint,
    }


def _result(
    student: str, tests: list[dict], error: str | None = None, assignment: str = "channels_pooling"
) -> dict[str, Any]:
    """One student's result entry."""
    return {
        "student": student,
        "assignment": assignment,
        "score": sum(t["score"] for t in tests),
        "max_score": sum(POINTS.values()),
        "tests": tests,
        "error": error,
    }


def _normal_class() -> dict[str, Any]:
    """Four students: one perfect, two with the flipped-kernel mistake, one crashed."""
    flipped = "corr2d: expected [[19., 25.], [37., 43.]], got [[37., 43.], [19., 25.]]"
    return {
        "assignment": "channels_pooling",
        "results": [
            _result(
                "alice",
                [
                    _test("corr2d_tests", True),
                    _test("pool2d_max_tests", True),
                    _test("pool2d_mode_tests", True),
                ],
            ),
            _result(
                "bob",
                [
                    _test("corr2d_tests", False, "flipped_kernel", flipped),
                    _test("pool2d_max_tests", True),
                    _test(
                        "pool2d_mode_tests",
                        False,
                        "unknown_mode",
                        "pool2d(mode='median') should raise ValueError",
                    ),
                ],
            ),
            _result(
                "carol",
                [
                    _test("corr2d_tests", False, "flipped_kernel", flipped),
                    _test(
                        "pool2d_max_tests",
                        False,
                        "early_return",
                        "pool2d returned after the first row",
                    ),
                    _test("pool2d_mode_tests", True),
                ],
            ),
            {
                "student": "dave",
                "assignment": "channels_pooling",
                "score": 0.0,
                "max_score": 5.0,
                "tests": [],
                "error": "kernel died: the notebook ran out of time (30 s)",
            },
        ],
    }


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, read from its IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_normal_class_figures(tmp_path: Path) -> None:
    summary = classreport.summarize(
        classreport.load_results([_write(tmp_path, "r.json", _normal_class())])
    )
    assert summary["submissions"] == 4 and summary["errors"] == 1
    (a,) = summary["assignments"]
    assert a["assignment"] == "channels_pooling"
    assert a["max_score"] == 5.0
    assert a["scores"] == {"mean": 2.0, "median": 1.5, "min": 0.0, "max": 5.0}
    rows = {ex["grade_id"]: ex for ex in a["exercises"]}
    assert rows["corr2d_tests"]["passed"] == 1 and rows["corr2d_tests"]["attempts"] == 3
    assert rows["corr2d_tests"]["pass_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert rows["pool2d_max_tests"]["pass_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows["pool2d_mode_tests"]["mean_score"] == pytest.approx(2 / 3, abs=1e-3)
    assert rows["pool2d_max_tests"]["exercise"] == "pool2d_max"
    top = a["misconceptions"][0]
    assert top["hint"] == "flipped_kernel" and top["count"] == 2
    assert top["students"] == ["bob", "carol"]
    assert top["example"]["message"].startswith("corr2d: expected")
    assert [m["hint"] for m in a["misconceptions"]] == [
        "flipped_kernel",
        "early_return",
        "unknown_mode",
    ]
    assert a["errors"] == [
        {"student": "dave", "error": "kernel died: the notebook ran out of time (30 s)"}
    ]
    assert a["unhinted_failures"] == []


def test_write_report_normal(tmp_path: Path) -> None:
    results = classreport.load_results([_write(tmp_path, "r.json", _normal_class())])
    paths = classreport.write_report(results, tmp_path / "out")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## channels_pooling" in md
    assert "| `corr2d_tests` | 2 | 1/3 | 33% |" in md
    assert "| `flipped_kernel` | 2 | 2 |" in md
    assert "expected [[19., 25.], [37., 43.]]" in md
    assert "**dave**: kernel died" in md
    assert "![Histogram of total scores](score_histogram.png)" in md
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["assignments"][0]["misconceptions"][0]["hint"] == "flipped_kernel"
    width, height = _png_size(paths["histogram"])
    assert width >= 500 and height >= 300


def test_failures_without_hint_grouped_by_message(tmp_path: Path) -> None:
    shape = "a 3x3 X and a 2x2 K give a 2x2 output, got (1, 1)"
    results = {
        "assignment": "channels_pooling",
        "results": [_result(s, [_test("corr2d_tests", False, None, shape)]) for s in ("ann", "ben")]
        + [_result("cyd", [_test("corr2d_tests", False, None, "")])],
    }
    paths = classreport.write_report(
        classreport.load_results([_write(tmp_path, "r.json", results)]), tmp_path / "out"
    )
    (a,) = json.loads(paths["json"].read_text(encoding="utf-8"))["assignments"]
    assert a["misconceptions"] == []
    assert a["unhinted_failures"][0] == {
        "grade_id": "corr2d_tests",
        "message": shape,
        "count": 2,
        "students": ["ann", "ben"],
    }
    assert a["unhinted_failures"][1]["message"] == "(no message)"
    assert a["exercises"][0]["failed_without_hint"] == 3
    md = paths["markdown"].read_text(encoding="utf-8")
    assert f"| `corr2d_tests` | 2 | {shape} |" in md


def test_empty_class(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.json", {"assignment": "conv_basics", "results": []})
    paths = classreport.write_report(classreport.load_results([path]), tmp_path / "out")
    assert "No submissions" in paths["markdown"].read_text(encoding="utf-8")
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data == {"assignments": [], "submissions": 0, "errors": 0}
    assert _png_size(paths["histogram"])[0] > 0


def test_all_errors(tmp_path: Path) -> None:
    results = {
        "assignment": "padding_stride",
        "results": [
            {
                "student": s,
                "assignment": "padding_stride",
                "score": None,
                "max_score": 14.0,
                "tests": [],
                "error": f"{s}: notebook is not valid JSON",
            }
            for s in ("erin", "frank")
        ],
    }
    paths = classreport.write_report(
        classreport.load_results([_write(tmp_path, "r.json", results)]), tmp_path / "out"
    )
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "2 submission(s), 2 could not be graded." in md
    assert "No test results" in md
    assert "**erin**: erin: notebook is not valid JSON" in md
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))
    (a,) = summary["assignments"]
    assert a["graded"] == 0 and a["scores"]["mean"] is None
    assert paths["histogram"].stat().st_size > 0


def test_several_files_merge_and_latest_wins(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.json", _normal_class())
    rerun = _write(
        tmp_path,
        "b.json",
        {
            "assignment": "channels_pooling",
            "results": [
                _result(
                    "dave",
                    [
                        _test("corr2d_tests", True),
                        _test("pool2d_max_tests", True),
                        _test("pool2d_mode_tests", True),
                    ],
                )
            ],
        },
    )
    other = _write(
        tmp_path,
        "c.json",
        {
            "assignment": "conv_basics",
            "results": [
                {"student": "alice", "score": 9, "max_score": 11, "tests": [], "error": None}
            ],
        },
    )
    summary = classreport.summarize(classreport.load_results([first, rerun, other]))
    names = [a["assignment"] for a in summary["assignments"]]
    assert names == ["channels_pooling", "conv_basics"]
    cp = summary["assignments"][0]
    assert cp["errors"] == [] and cp["scores"]["max"] == 5.0
    # the entry without its own "assignment" takes the file's
    assert summary["assignments"][1]["students"][0]["student"] == "alice"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"results": 3}', "should be a list"),
        ('"hello"', "expected an autograde result object"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(classreport.ReportError, match=needle):
        classreport.load_results([path])


def test_cli(tmp_path: Path) -> None:
    good = _write(tmp_path, "r.json", _normal_class())
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "grader.engine.classreport", str(good), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {
        "class_report.md",
        "class_report.json",
        "score_histogram.png",
    }
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader.engine.classreport",
            str(tmp_path / "nope.json"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert "nope.json: cannot read the result file" in missing.stderr


def test_graded_with_problems_is_not_could_not_be_graded(tmp_path: Path) -> None:
    """An entry with ``graded`` true and an ``error`` (a repaired notebook, a timed-out cell)
    has a score: it is listed as graded with problems, not as could not be graded."""
    results = _normal_class()
    entries = results["results"]
    for entry in entries:
        entry["graded"] = entry["student"] != "dave"
    entries[0]["error"] = "a deleted test cell was restored from the source"
    paths = classreport.write_report(
        classreport.load_results([_write(tmp_path, "r.json", results)]), tmp_path / "out"
    )
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))
    (a,) = summary["assignments"]
    assert summary["errors"] == 1 and a["graded"] == 3
    assert [e["student"] for e in a["errors"]] == ["dave"]
    assert a["graded_with_problems"] == [
        {"student": entries[0]["student"],
         "error": "a deleted test cell was restored from the source"}]
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "4 submission(s), 1 could not be graded, 1 graded with problems." in md
    assert "(3 graded, 1 of them with problems, 1 could not be graded)" in md
    graded_part = md.split("### Submissions graded with problems")[1]
    assert f"**{entries[0]['student']}**: a deleted test cell" in graded_part
    could_not = md.split("### Submissions that could not be graded")[1].split("###")[0]
    assert entries[0]["student"] not in could_not and "**dave**" in could_not
