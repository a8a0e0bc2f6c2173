"""A class-wide report from one or more autograde result files.

``python -m grader autograde ... --json results.json`` writes::

    {"assignment": "channels_pooling",
     "results": [{"student": "alice", "assignment": "channels_pooling",
                  "score": 11.0, "max_score": 13.0,
                  "tests": [{"grade_id": "corr2d_tests", "score": 2.0, "max_score": 2.0,
                             "passed": true, "message": "", "hint": null}, ...],
                  "error": null}, ...]}

This module turns one or more of those files into what an instructor reads after a run:

- ``class_report.md``: per-assignment score summary, per-exercise pass rates, the most common
  misconceptions (grouped by the ``hint`` id a failed check attached, with a count and one
  example message), the other failures grouped by message (a visible assert that fails
  carries no hint id), the submissions that could not be graded (``graded`` false) and those
  graded with problems (a repaired notebook, a timed-out cell: graded, with an ``error``);
- ``class_report.json``: the same figures as data;
- ``score_histogram.png``: a histogram of total scores, one panel per assignment.

Command line::

    python -m grader.engine.classreport results.json [more.json ...] --out reports/class

matplotlib is imported only when the histogram is drawn (Agg backend, no display needed).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from grader.engine.reports import several_notebooks, test_name

__all__ = [
    "ReportError",
    "load_results",
    "summarize",
    "render_markdown",
    "plot_histogram",
    "write_report",
    "main",
]

MARKDOWN_NAME = "class_report.md"
JSON_NAME = "class_report.json"
HISTOGRAM_NAME = "score_histogram.png"

#: how many misconceptions the Markdown report lists per assignment
TOP_MISCONCEPTIONS = 10


class ReportError(ValueError):
    """A result file that cannot be read as autograde results."""


# --------------------------------------------------------------------------- loading


def _as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _hint_id(hint: Any) -> str | None:
    """The misconception id of a test's ``hint`` field (a string, or a dict with ``id``)."""
    if hint is None:
        return None
    if isinstance(hint, dict):
        hint = hint.get("id") or hint.get("hint")
    if isinstance(hint, str) and hint.strip():
        return hint.strip()
    return None


def _results_of(data: Any, origin: str) -> list[dict[str, Any]]:
    """The result entries of one parsed file, each carrying its assignment name."""
    if isinstance(data, dict) and "results" in data:
        default_assignment = data.get("assignment")
        entries = data["results"]
    elif isinstance(data, list):
        default_assignment = None
        entries = data
    elif isinstance(data, dict) and "student" in data:
        default_assignment = None
        entries = [data]
    else:
        raise ReportError(
            f"{origin}: expected an autograde result object with a 'results' list, "
            f"got {type(data).__name__}"
        )
    if not isinstance(entries, list):
        raise ReportError(f"{origin}: 'results' should be a list, got {type(entries).__name__}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ReportError(f"{origin}: results[{i}] should be an object, got {entry!r:.60}")
        entry = dict(entry)
        assignment = entry.get("assignment") or default_assignment or "(unknown assignment)"
        entry["assignment"] = str(assignment)
        entry["student"] = str(entry.get("student") or f"(unnamed #{i})")
        out.append(entry)
    return out


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read autograde result JSON files and return all their result entries.

    A later file's entry for the same (student, assignment) replaces an earlier one, so
    passing a re-run after the first run keeps the newest grade. Raises :class:`ReportError`
    with the file name when a file is missing or is not autograde output.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ReportError(f"{path}: cannot read the result file ({exc.strerror})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path}: not valid JSON ({exc})") from exc
        for entry in _results_of(data, str(path)):
            merged[(entry["assignment"], entry["student"])] = entry
    return list(merged.values())


# --------------------------------------------------------------------------- summary


def _exercise_key(grade_id: str) -> str:
    """The exercise name of a grade_id: ``pool2d_max_tests`` -> ``pool2d_max``."""
    return grade_id[: -len("_tests")] if grade_id.endswith("_tests") else grade_id


def _score_stats(scores: Sequence[float]) -> dict[str, float | None]:
    """Mean, median, min and max of ``scores`` (all None for an empty list)."""
    if not scores:
        return {"mean": None, "median": None, "min": None, "max": None}
    return {
        "mean": round(statistics.fmean(scores), 3),
        "median": round(statistics.median(scores), 3),
        "min": min(scores),
        "max": max(scores),
    }


def _graded(entry: dict[str, Any]) -> bool:
    """Whether the entry has a score: its ``graded`` (result files without it: no error)."""
    graded = entry.get("graded")
    if isinstance(graded, bool):
        return graded
    return not entry.get("error")


def _summarize_assignment(name: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures for one assignment's result entries."""
    scores: list[float] = []
    students: list[dict[str, Any]] = []
    max_scores: Counter[float] = Counter()
    errors: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    exercises: dict[str, dict[str, Any]] = {}
    misconceptions: dict[str, dict[str, Any]] = {}
    failures_without_hint: Counter[str] = Counter()
    unhinted: dict[tuple[str, str], dict[str, Any]] = {}
    # grade_ids are unique only within a notebook: name a test notebook/grade_id where the
    # assignment has several notebooks
    qualified = several_notebooks(entries)

    for entry in sorted(entries, key=lambda e: e["student"]):
        student = entry["student"]
        score = _as_number(entry.get("score"))
        max_score = _as_number(entry.get("max_score"))
        error = entry.get("error")
        graded = _graded(entry)
        if max_score is not None:
            max_scores[max_score] += 1
        if error:
            # a repaired notebook or a timed-out cell is graded and carries an error as well
            (problems if graded else errors).append({"student": student, "error": str(error)})
        if score is not None:
            scores.append(score)
        students.append(
            {"student": student, "score": score, "max_score": max_score, "error": bool(error),
             "graded": graded}
        )

        tests = entry.get("tests") or []
        if not isinstance(tests, list):
            tests = []
        for test in tests:
            if not isinstance(test, dict) or not test.get("grade_id"):
                continue
            grade_id = test_name(test, qualified)
            ex = exercises.setdefault(
                grade_id,
                {
                    "grade_id": grade_id,
                    "exercise": _exercise_key(grade_id),
                    "max_score": _as_number(test.get("max_score")),
                    "attempts": 0,
                    "passed": 0,
                    "score_total": 0.0,
                },
            )
            ex["attempts"] += 1
            passed = bool(test.get("passed"))
            ex["passed"] += passed
            ex["score_total"] += _as_number(test.get("score")) or 0.0
            if ex["max_score"] is None:
                ex["max_score"] = _as_number(test.get("max_score"))
            if passed:
                continue
            hint = _hint_id(test.get("hint"))
            message = str(test.get("message") or "").strip()
            if hint is None:
                failures_without_hint[grade_id] += 1
                key = (grade_id, message or "(no message)")
                row = unhinted.setdefault(
                    key, {"grade_id": grade_id, "message": key[1], "count": 0, "students": []}
                )
                row["count"] += 1
                row["students"].append(student)
                continue
            mis = misconceptions.setdefault(
                hint,
                {"hint": hint, "count": 0, "students": [], "grade_ids": [], "example": None},
            )
            mis["count"] += 1
            if student not in mis["students"]:
                mis["students"].append(student)
            if grade_id not in mis["grade_ids"]:
                mis["grade_ids"].append(grade_id)
            if mis["example"] is None and message:
                mis["example"] = {"student": student, "grade_id": grade_id, "message": message}

    exercise_rows = []
    for ex in exercises.values():
        attempts = ex.pop("attempts")
        score_total = ex.pop("score_total")
        ex["attempts"] = attempts
        ex["pass_rate"] = round(ex["passed"] / attempts, 4) if attempts else None
        ex["mean_score"] = round(score_total / attempts, 3) if attempts else None
        ex["failed_without_hint"] = failures_without_hint.get(ex["grade_id"], 0)
        exercise_rows.append(ex)

    top = sorted(misconceptions.values(), key=lambda m: (-m["count"], m["hint"]))
    max_score = max_scores.most_common(1)[0][0] if max_scores else None
    return {
        "assignment": name,
        "submissions": len(entries),
        "graded": len(entries) - len(errors),
        "errors": errors,
        "graded_with_problems": problems,
        "max_score": max_score,
        "scores": _score_stats(scores),
        "students": students,
        "exercises": exercise_rows,
        "misconceptions": top,
        "unhinted_failures": sorted(
            unhinted.values(), key=lambda u: (-u["count"], u["grade_id"], u["message"])
        ),
        "review": _review_rows(entries, qualified),
    }


def _review_rows(entries: list[dict[str, Any]], qualified: bool) -> list[dict[str, Any]]:
    """The submissions the tamper scan flagged for review: who, which cells, what it saw
    (cells named as :func:`grader.engine.reports.test_name` names them)."""
    rows = []
    for entry in sorted(entries, key=lambda e: e["student"]):
        review = entry.get("review")
        if not isinstance(review, list) or not review:
            continue
        findings = [f for f in review if isinstance(f, dict)]
        rows.append({
            "student": entry["student"],
            "score": _as_number(entry.get("score")),
            "grade_ids": sorted({test_name({"grade_id": g, "notebook": f.get("notebook")},
                                           qualified)
                                 for f in findings for g in f.get("grade_ids") or []}),
            "findings": [
                f"cell {int(_as_number(f.get('cell')) or 0) + 1}, line {f.get('line')}: "
                f"`{str(f.get('snippet', '')).strip()}`: {f.get('finding')}" for f in findings],
        })
    return rows


def summarize(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Class figures from autograde result entries, grouped by assignment.

    Returns ``{"assignments": [per-assignment summary, ...], "submissions": n,
    "errors": n}``. Each per-assignment summary holds score statistics, one row per test
    cell (``grade_id``, attempts, passed, ``pass_rate``, ``mean_score``), the misconceptions
    ranked by how many failed tests carried that hint id (with one example message), the
    failures without a hint id grouped by (grade_id, message), the submissions that could
    not be graded (``errors``: the entry's ``graded`` is false) and those graded with an
    error (``graded_with_problems``). The top-level ``errors`` counts the former only.
    """
    by_assignment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in results:
        by_assignment[str(entry.get("assignment") or "(unknown assignment)")].append(entry)
    assignments = [
        _summarize_assignment(name, by_assignment[name]) for name in sorted(by_assignment)
    ]
    return {
        "assignments": assignments,
        "submissions": sum(a["submissions"] for a in assignments),
        "errors": sum(len(a["errors"]) for a in assignments),
    }


# --------------------------------------------------------------------------- output


def _fmt(value: float | None) -> str:
    """A score for a table: ``2``, ``1.5`` or ``-``."""
    if value is None:
        return "-"
    return f"{value:g}"


def _cell(text: Any, limit: int | None = 300) -> str:
    """``text`` (a student's message, id, ...) made safe for one Markdown table cell: one
    line, no markup (HTML becomes entities, see
    :func:`grader.engine.reports.escape_markdown_cell`)."""
    from grader.engine.reports import escape_markdown_cell

    return escape_markdown_cell(" ".join(str(text).split()), limit=limit)


def render_markdown(summary: dict[str, Any], histogram: str | None = HISTOGRAM_NAME) -> str:
    """The Markdown class report for ``summary`` (from :func:`summarize`)."""
    lines = ["# Class report", ""]
    if not summary["assignments"]:
        lines += ["No submissions in the result files: nothing to report.", ""]
        return "\n".join(lines)
    problems = sum(len(a.get("graded_with_problems") or []) for a in summary["assignments"])
    lines.append(
        f"{summary['submissions']} submission(s), {summary['errors']} could not be graded"
        + (f", {problems} graded with problems." if problems else ".")
    )
    lines.append("")
    if histogram:
        lines += [f"![Histogram of total scores]({histogram})", ""]

    for a in summary["assignments"]:
        s = a["scores"]
        lines += [f"## {_cell(a['assignment'], None)}", ""]
        lines.append(
            f"- submissions: {a['submissions']} ({a['graded']} graded"
            + (f", {len(a['graded_with_problems'])} of them with problems"
               if a.get("graded_with_problems") else "")
            + f", {len(a['errors'])} could not be graded)"
        )
        lines.append(f"- maximum score: {_fmt(a['max_score'])}")
        lines.append(
            f"- total score: mean {_fmt(s['mean'])}, median {_fmt(s['median'])}, "
            f"min {_fmt(s['min'])}, max {_fmt(s['max'])}"
        )
        lines.append("")

        lines += ["### Exercises", ""]
        if a["exercises"]:
            lines += [
                "| grade_id | points | passed | pass rate | mean score |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for ex in a["exercises"]:
                rate = "-" if ex["pass_rate"] is None else f"{100 * ex['pass_rate']:.0f}%"
                lines.append(
                    f"| `{ex['grade_id']}` | {_fmt(ex['max_score'])} | "
                    f"{ex['passed']}/{ex['attempts']} | {rate} | {_fmt(ex['mean_score'])} |"
                )
        else:
            lines.append("No test results (every submission ended with an error).")
        lines.append("")

        lines += ["### Most common misconceptions", ""]
        if a["misconceptions"]:
            lines += [
                "| hint | failed tests | students | exercises | example |",
                "| --- | ---: | ---: | --- | --- |",
            ]
            for m in a["misconceptions"][:TOP_MISCONCEPTIONS]:
                example = m["example"]
                shown = (f"{_cell(example['student'], None)}: {_cell(example['message'])}"
                         if example else "-")
                ids = ", ".join(f"`{g}`" for g in m["grade_ids"])
                lines.append(
                    f"| `{m['hint']}` | {m['count']} | {len(m['students'])} | {ids} | {shown} |"
                )
            hidden = len(a["misconceptions"]) - TOP_MISCONCEPTIONS
            if hidden > 0:
                lines += ["", f"({hidden} rarer hint(s) in {JSON_NAME}.)"]
        else:
            lines.append("No failed test carried a hint.")
        lines.append("")

        unhinted = a.get("unhinted_failures", [])
        if unhinted:
            lines += [
                "### Other failures (no hint id), by message",
                "",
                "| grade_id | failed tests | message |",
                "| --- | ---: | --- |",
            ]
            for u in unhinted[:TOP_MISCONCEPTIONS]:
                lines.append(f"| `{u['grade_id']}` | {u['count']} | {_cell(u['message'])} |")
            hidden = len(unhinted) - TOP_MISCONCEPTIONS
            if hidden > 0:
                lines += ["", f"({hidden} more message(s) in {JSON_NAME}.)"]
            lines.append("")

        lines += ["### Submissions that could not be graded", ""]
        if a["errors"]:
            for err in a["errors"]:
                lines.append(f"- **{_cell(err['student'], None)}**: {_cell(err['error'])}")
        else:
            lines.append("None.")
        lines.append("")
        if a.get("graded_with_problems"):
            lines += ["### Submissions graded with problems", ""]
            for err in a["graded_with_problems"]:
                lines.append(f"- **{_cell(err['student'], None)}**: {_cell(err['error'])}")
            lines.append("")
        lines += _render_review(a.get("review") or [])
    return "\n".join(lines)


def _render_review(rows: list[dict[str, Any]]) -> list[str]:
    """The "Flagged for review" section: the scores stand until the instructor decides."""
    lines = ["### Flagged for review", ""]
    if not rows:
        return lines + ["None.", ""]
    lines += ["The tamper scan found code that could forge a record or skip a check. The score "
              "is the checks' own; the flagged cells need manual grading in formgrader.", ""]
    for row in rows:
        cells = ", ".join(row["grade_ids"]) or "no test cell after it"
        lines.append(f"- **{row['student']}** ({_fmt(row['score'])} points; {cells}):")
        lines += [f"  - {_cell(text)}" for text in row["findings"]]
    return lines + [""]


def plot_histogram(summary: dict[str, Any], path: str | Path) -> Path:
    """Draw a histogram of total scores, one panel per assignment, into a PNG at ``path``.

    Submissions without a numeric score are left out of the bars and counted in the panel's
    title. An empty class still gets a PNG that says so.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    path = Path(path)
    assignments = summary["assignments"]
    n = max(len(assignments), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7, 3.2 * n), squeeze=False)
    try:
        if not assignments:
            ax = axes[0][0]
            ax.text(0.5, 0.5, "no submissions", ha="center", va="center", fontsize=14)
            ax.set_xlabel("total score")
            ax.set_ylabel("students")
            ax.set_title("Total scores")
        for ax, a in zip(axes[:, 0], assignments, strict=False):
            scores = [st["score"] for st in a["students"] if st["score"] is not None]
            top = a["max_score"] or (max(scores) if scores else 1.0)
            top = max(top, max(scores, default=0.0))
            if scores:
                # one bar per integer score when the range is small, else about 20 bins
                width = 1.0 if top <= 30 else top / 20
                edges = [i * width - width / 2 for i in range(int(top / width) + 2)]
                counts, _, _ = ax.hist(scores, bins=edges, color="#4c72b0", edgecolor="white")
                ax.set_ylim(0, max(counts) * 1.3 + 0.5)  # headroom for the legend
                ax.axvline(
                    statistics.fmean(scores),
                    color="#c44e52",
                    linestyle="--",
                    label=f"mean {statistics.fmean(scores):.1f}",
                )
                ax.legend(loc="upper center", frameon=False)
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no graded submissions",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=12,
                )
            ax.set_xlim(-0.5 * (1 if top <= 30 else top / 20), top + 0.5)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ungraded = a["submissions"] - len(scores)
            title = f"{a['assignment']}: total scores of {len(scores)} submission(s)"
            if ungraded:
                title += f" ({ungraded} without a score)"
            ax.set_title(title)
            ax.set_xlabel(f"total score (out of {_fmt(a['max_score'])})")
            ax.set_ylabel("students")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def write_report(results: Iterable[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """Write the Markdown report, the JSON summary and the score histogram into ``out_dir``.

    Returns the paths written, keyed ``markdown``, ``json`` and ``histogram``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    paths = {
        "markdown": out_dir / MARKDOWN_NAME,
        "json": out_dir / JSON_NAME,
        "histogram": out_dir / HISTOGRAM_NAME,
    }
    plot_histogram(summary, paths["histogram"])
    paths["json"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(summary, HISTOGRAM_NAME), encoding="utf-8")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m grader.engine.classreport RESULTS.json [...] --out DIR``.

    Exit status 0 when the report was written, 2 when a result file cannot be read.
    """
    parser = argparse.ArgumentParser(
        prog="python -m grader.engine.classreport",
        description="Class report (pass rates, misconceptions, score histogram) "
        "from autograde result JSON files.",
    )
    parser.add_argument("results", nargs="+", type=Path, help="autograde --json output file(s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports/class"),
        help="directory for class_report.md, class_report.json and score_histogram.png "
        "(default: reports/class)",
    )
    args = parser.parse_args(argv)
    try:
        results = load_results(args.results)
    except ReportError as exc:
        print(f"classreport: {exc}", file=sys.stderr)
        return 2
    paths = write_report(results, args.out)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
