"""The ``python -m grader`` command line: argument parsing and output only.

Commands::

    python -m grader autograde PATH... --assignment NAME [--json OUT.json] [--junit F]
        [--markdown F] [--classroom F] [--jobs N] [--engine fast|nbgrader] [--no-sandbox]
        [--fail-under PCT] [--course DIR] [--timeout S] [--student ID] [--workdir DIR]
        [--cluster tcp://HOST:8786|local:N]
    python -m grader check PATH... --assignment NAME [--course DIR] [--student ID]
    python -m grader roster import FILE [--course DIR]
    python -m grader export FILE [--course DIR]
    python -m grader serve [--assignment A ...] [--exchange DIR] [--jobs N] [--once] [--status]
        [--cluster tcp://HOST:8786|local:N]

Exit status of ``autograde``: 0 when every submission was graded, 1 when one scored below
``--fail-under``, 2 when one could not be graded at all (or the run could not start). The last
line of output says which (and how many submissions the tamper scan flagged for review: a
flag never changes the exit status, the instructor decides in formgrader). ``check`` exits 0
when no submission has an error, else 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
import types
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "build_parser", "exit_status", "grade_table", "review_text"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``python -m grader``."""
    parser = argparse.ArgumentParser(
        prog="python -m grader",
        description="Autograde convgrade notebooks with nbgrader.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    ag = sub.add_parser(
        "autograde", help="grade submissions and write reports",
        description="Grade one notebook, one student's folder or a whole submitted/ folder.",
    )
    ag.add_argument("paths", nargs="+", metavar="PATH",
                    help="a notebook, a student's folder, or a submitted/ folder")
    ag.add_argument("--assignment", "-a", required=True, help="assignment name, e.g. "
                    "channels_pooling")
    ag.add_argument("--json", metavar="OUT.json", help="write the result as JSON")
    ag.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    ag.add_argument("--markdown", metavar="FILE", help="write a Markdown summary")
    ag.add_argument("--classroom", metavar="FILE", help="write GitHub Classroom results JSON")
    ag.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                    help="parallel workers (default: number of CPUs)")
    ag.add_argument("--engine", choices=("fast", "nbgrader"), default="fast",
                    help="fast: forked sandboxed workers (default); nbgrader: stock kernels")
    ag.add_argument("--no-sandbox", action="store_true",
                    help="run student code without bubblewrap (trusted code only)")
    ag.add_argument("--fail-under", type=float, default=None, metavar="PCT",
                    help="exit 1 when a submission scores below PCT percent")
    ag.add_argument("--course", metavar="DIR", help="course root (default: the current "
                    "directory if it has nbgrader_config.py, else this repository)")
    ag.add_argument("--timeout", type=float, default=None, metavar="S",
                    help="wall time per submission (fast) or per cell (nbgrader)")
    ag.add_argument("--student", metavar="ID",
                    help="student id for a single notebook (default: from its file name)")
    ag.add_argument("--workdir", metavar="DIR",
                    help="keep the grading course (gradebook, autograded/) in DIR")
    ag.add_argument("--seed", type=int, default=None, metavar="N",
                    help="seed of the checks' random cases (default: a fresh secret seed per "
                    "run, reported in the JSON; give one to reproduce a run)")
    ag.add_argument("--cluster", metavar="ADDRESS", default=None,
                    help="run the submissions on a Dask cluster: a scheduler address "
                    "(tcp://HOST:8786) or local:N (a local cluster of N workers); needs "
                    "convgrade[dask], see docs/SCALING.md")
    ag.add_argument("--verbose", "-v", action="store_true", help="show nbgrader's log")

    ck = sub.add_parser("check", help="precheck submissions only (no grading)",
                        description="Compare submissions with the source notebook and list "
                        "deleted, duplicated, renamed or moved graded cells.")
    ck.add_argument("paths", nargs="+", metavar="PATH")
    ck.add_argument("--assignment", "-a", required=True)
    ck.add_argument("--course", metavar="DIR")
    ck.add_argument("--student", metavar="ID")

    roster = sub.add_parser("roster", help="manage the course roster")
    rsub = roster.add_subparsers(dest="roster_command", metavar="ACTION")
    rsub.required = True
    imp = rsub.add_parser("import", help="import students from a CSV "
                          "(columns id,first_name,last_name,email)")
    imp.add_argument("file")
    imp.add_argument("--course", metavar="DIR")

    ex = sub.add_parser("export", help="export grades to CSV like `nbgrader export`")
    ex.add_argument("file")
    ex.add_argument("--course", metavar="DIR")

    sv = sub.add_parser("serve", help="grade each submission as it lands in the exchange",
                        description="Watch the exchange inbound, grade each new submission, "
                        "record it and release its feedback (docs/INSTRUCTOR.md).")
    from grader.engine.serve.command import add_arguments

    add_arguments(sv)
    return parser


# ---------------------------------------------------------------------------------------------
# output


class _Progress:
    """A progress bar on a terminal, plain lines otherwise (CI logs)."""

    LABELS = {"check": "checking", "run": "running", "record": "recording"}

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_phase: str | None = None

    def __call__(self, phase: str, done: int, total: int, label: str) -> None:
        name = self.LABELS.get(phase, phase)
        if self.tty:
            width = 28
            filled = int(width * done / max(total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{name:<9} [{bar}] {done}/{total} {label[:30]:<30}")
            if done >= total:
                self.stream.write("\n")
        else:
            self.stream.write(f"{name} {done}/{total}: {label}\n")
        self.stream.flush()


def _fmt(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.2f}"
    return str(x)


def review_text(entry: dict[str, Any]) -> str:
    """What the review column says: the tamper scan's findings and the cells they flag."""
    findings = entry.get("review") or []
    if not findings:
        return ""
    flagged = {(f.get("notebook"), gid) for f in findings for gid in f.get("grade_ids", [])}
    first = findings[0]
    text = (f"{len(findings)} finding{'s' if len(findings) != 1 else ''}, "
            f"{len(flagged)} cell{'s' if len(flagged) != 1 else ''} flagged "
            f"(cell {int(first.get('cell', 0)) + 1}, line {first.get('line')}: "
            f"{first.get('finding')})")
    return text if len(text) <= 100 else text[:97] + "..."


def grade_table(result: dict[str, Any]) -> str:
    """A plain-text table: student, score/max, review, error."""
    rows = [("student", "score", "review", "error")]
    for r in result.get("results", []):
        score = f"{_fmt(r.get('score', 0))}/{_fmt(r.get('max_score', 0))}"
        if not r.get("graded", True):
            score = f"-/{_fmt(r.get('max_score', 0))}"
        error = r.get("error") or ""
        if len(error) > 160:
            error = error[:157] + "..."
        rows.append((str(r.get("student", "")), score, review_text(r), error))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c:<{w2}}  {d}".rstrip() for a, b, c, d in rows]
    lines.insert(1, "-" * min(max(len(ln) for ln in lines), 100))
    return "\n".join(lines)


def exit_status(result: dict[str, Any], fail_under: float | None = None) -> tuple[int, str]:
    """The exit code of an autograde run and the sentence that explains it."""
    results = result.get("results", [])
    ungraded = [r for r in results if not r.get("graded", True)]
    if ungraded:
        n = len(ungraded)
        who = "; ".join(f"{r['student']}: {r.get('error') or 'not graded'}" for r in ungraded)
        if len(who) > 300:
            who = who[:297] + "..."
        return 2, (f"exit 2: {n} submission{'s' if n != 1 else ''} could not be graded "
                   f"({who})")
    if fail_under is not None:
        low = []
        for r in results:
            maximum = float(r.get("max_score") or 0)
            pct = 100.0 * float(r.get("score") or 0) / maximum if maximum else 100.0
            if pct < fail_under:
                low.append(f"{r['student']} {pct:.1f}%")
        if low:
            n = len(low)
            return 1, (f"exit 1: {n} submission{'s' if n != 1 else ''} scored below "
                       f"{fail_under:g}% ({', '.join(low)})")
    n = len(results)
    with_errors = sum(1 for r in results if r.get("error"))
    extra = f", {with_errors} with problems reported" if with_errors else ""
    # A review flag is the instructor's to decide (formgrader): it never changes the exit code.
    flagged = sum(1 for r in results if r.get("review"))
    extra += f", {flagged} flagged for review in formgrader" if flagged else ""
    return 0, f"exit 0: {n} submission{'s' if n != 1 else ''} graded{extra}"


def _write_json(result: dict[str, Any], path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, out)


def _write_reports(result: dict[str, Any], args: argparse.Namespace, err: TextIO) -> None:
    if args.json:
        _write_json(result, args.json)
    wanted = [(flag, getattr(args, flag)) for flag in ("junit", "markdown", "classroom")
              if getattr(args, flag)]
    if not wanted:
        return
    try:
        from grader.engine import reports
    except ImportError as exc:
        err.write(f"skipped {', '.join('--' + f for f, _ in wanted)}: grader.engine.reports is not "
                  f"available ({exc})\n")
        return
    for flag, path in wanted:
        writer = getattr(reports, f"write_{flag}", None)
        if writer is None:
            err.write(f"skipped --{flag}: grader.engine.reports has no write_{flag}\n")
            continue
        writer(result, path)


# ---------------------------------------------------------------------------------------------
# commands


def _cmd_autograde(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from grader.engine.autograde import AutogradeError, autograde

    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        err.write("error: --fail-under takes a percentage between 0 and 100\n")
        return 2
    if args.jobs is not None and args.jobs < 1:
        err.write("error: --jobs must be at least 1\n")
        return 2
    factory = None
    if args.cluster is not None:
        from grader.engine.executors import pool_factory

        problem = "--cluster runs the fast engine" if args.engine != "fast" else None
        try:
            factory = pool_factory(args.cluster)
        except ValueError as exc:
            problem = str(exc)
        if problem:
            err.write(f"error: {problem}\n")
            out.write(f"exit 2: nothing was graded ({problem})\n")
            return 2
    try:
        result = autograde(
            args.paths, args.assignment, course=args.course, engine=args.engine,
            jobs=args.jobs, sandbox=not args.no_sandbox, timeout=args.timeout,
            student=args.student, workdir=args.workdir, progress=_Progress(err),
            verbose=args.verbose, seed=args.seed, pool_factory=factory,
        )
    except (AutogradeError, FileNotFoundError) as exc:
        err.write(f"error: {exc}\n")
        out.write(f"exit 2: nothing was graded ({exc})\n")
        return 2
    except Exception as exc:  # a grader bug: say so on the last line, keep the traceback
        traceback.print_exc(file=err)
        out.write(f"exit 2: the grader failed ({type(exc).__name__}: {exc})\n")
        return 2
    _write_reports(result, args, err)
    out.write(grade_table(result) + "\n")
    code, sentence = exit_status(result, args.fail_under)
    out.write(sentence + "\n")
    return code


def _cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from grader.engine.autograde import run_check

    try:
        checked = run_check(args.paths, args.assignment, course=args.course,
                            student=args.student)
    except FileNotFoundError as exc:
        err.write(f"error: {exc}\n")
        return 2
    bad = 0
    for sub, result in checked:
        if result.errors:
            bad += 1
        status = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
        out.write(f"{sub.student} ({sub.notebook}): {status}\n")
        for p in result.problems:
            out.write(f"  {p.severity}: {p.message}\n")
    if bad:
        out.write(f"exit 2: {bad} of {len(checked)} submission(s) have errors\n")
        return 2
    out.write(f"exit 0: {len(checked)} submission(s) checked, no errors\n")
    return 0


def _cmd_roster(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from grader.engine.gradebook import import_roster

    try:
        n = import_roster(args.file, course=args.course)
    except (OSError, ValueError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    out.write(f"imported {n} student(s) into the gradebook\n")
    return 0


def _cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from grader.engine.gradebook import export_grades

    try:
        path = export_grades(args.file, course=args.course)
    except OSError as exc:
        err.write(f"error: {exc}\n")
        return 2
    out.write(f"wrote {path}\n")
    return 0


def _cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from grader.engine.serve.command import run

    return run(args, out, err)


#: nbgrader's Jupyter server extensions, which ``import nbgrader`` loads (with jupyter_server:
#: about 0.8 s) although only a Jupyter server ever calls them.
_SERVER_EXTENSIONS = ("assignment_list", "course_list", "validate_assignment", "formgrader")


def _not_a_server(app: object) -> None:
    raise RuntimeError("grader's command line does not load nbgrader's server extensions")


def _skip_unused_imports() -> None:
    """Leave out two imports that the command line never uses and that cost a lone
    submission about 2 s: nbgrader's server extensions (stand-ins with the one name that
    ``nbgrader/__init__.py`` takes from each) and the RFC 3987 grammar that jsonschema compiles
    for an "iri" format check no notebook schema uses (an optional import it skips)."""
    if "nbgrader" not in sys.modules:
        for name in _SERVER_EXTENSIONS:
            stand_in = types.ModuleType(f"nbgrader.server_extensions.{name}")
            stand_in.load_jupyter_server_extension = _not_a_server  # type: ignore[attr-defined]
            sys.modules.setdefault(stand_in.__name__, stand_in)
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (``python -m grader`` exits with it)."""
    out = out or sys.stdout
    err = err or sys.stderr
    _skip_unused_imports()
    args = build_parser().parse_args(argv)
    handlers = {"autograde": _cmd_autograde, "check": _cmd_check, "roster": _cmd_roster,
                "export": _cmd_export, "serve": _cmd_serve}
    return handlers[args.command](args, out, err)
