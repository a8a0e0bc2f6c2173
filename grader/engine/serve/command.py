"""``python -m grader serve``: the command line of the grading service (grader/cli.py parses,
this runs)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["add_arguments", "run", "status_text"]

#: the choices of grader.engine.serve.policy (kept here too: building the parser must not load
#: traitlets; tests/test_serve.py checks that they agree)
FEEDBACK = ("hints", "score", "none")
AFTER_DEADLINE = ("grade", "stop")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` options."""
    parser.add_argument("--assignment", "-a", action="append", metavar="NAME",
                        help="an assignment to serve (repeat for several; default: "
                        "c.GradeOnSubmit.serve, else every assignment in source/)")
    parser.add_argument("--exchange", metavar="DIR",
                        help="exchange root (default: the course's Exchange.root)")
    parser.add_argument("--course", metavar="DIR", help="course root (default: the current "
                        "directory if it has nbgrader_config.py)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                        help="warm sandboxed workers (default: number of CPUs)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="wall time per submission")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run student code without bubblewrap (trusted code only)")
    parser.add_argument("--cluster", metavar="ADDRESS", default=None,
                        help="run the submissions on a Dask cluster: a scheduler address "
                        "(tcp://HOST:8786) or local:N; needs convgrade[dask] "
                        "(docs/SCALING.md)")
    parser.add_argument("--once", action="store_true",
                        help="grade what is in the inbound now, then exit")
    parser.add_argument("--status", action="store_true",
                        help="print the queue, latency and last errors, then exit")
    parser.add_argument("--json", action="store_true", help="with --status: as JSON")
    parser.add_argument("--feedback", choices=FEEDBACK, default=None,
                        help="feedback before the deadline, for every served assignment")
    parser.add_argument("--max-per-hour", type=int, default=None, metavar="N",
                        help="graded submissions per student and hour (0: no limit)")
    parser.add_argument("--after-deadline", choices=AFTER_DEADLINE, default=None,
                        help="grade late submissions (marked late) or stop grading")


def status_text(status: dict[str, Any]) -> str:
    """``--status`` as lines of text."""
    meta = status.get("meta", {})
    lat = status["latency"]
    now = time.time()
    beat = float(meta.get("heartbeat", 0) or 0)
    stopped = float(meta.get("stopped", 0) or 0)
    if beat and now - beat < 30 and stopped < beat:
        state = f"running (pid {meta.get('pid', '?')}, last pass {now - beat:.1f} s ago)"
    else:
        state = "not running"
    lines = [
        f"service: {state}",
        f"assignments: {meta.get('assignments', '-')}",
        f"queue: {status['queued']} queued ({status['waiting']} waiting for the hourly limit),"
        f" {status['in_flight']} in flight, {status['released']} released",
    ]
    other = {k: v for k, v in status["counts"].items()
             if k not in ("queued", "grading", "released")}
    if other:
        lines.append("also: " + ", ".join(f"{n} {k}" for k, n in sorted(other.items())))
    if lat["n"]:
        lines.append(f"landing to released (last {lat['n']}): p50 {lat['p50']:.1f} s, "
                     f"p95 {lat['p95']:.1f} s, max {lat['max']:.1f} s")
    else:
        lines.append("landing to released: nothing released yet")
    if status["errors"]:
        lines.append("last errors:")
        lines += [f"  {e['student']} {e['assignment']} ({e['id'].split('+')[2]}): {e['error']}"
                  for e in status["errors"]]
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``serve`` (or ``serve --status``); returns the exit status."""
    from grader.engine import gradebook as gbmod
    from grader.engine.serve.journal import Journal
    from grader.engine.serve.service import ServeError, Service, journal_path

    if args.status:
        try:
            root = gbmod.find_course_root(args.course)
        except FileNotFoundError as exc:
            err.write(f"error: {exc}\n")
            return 2
        path = journal_path(root)
        if not path.exists():
            out.write(f"no grading service has run for {root} (no {path})\n")
            return 0
        journal = Journal(path)
        try:
            status = journal.status()
        finally:
            journal.close()
        out.write((json.dumps(status, indent=2) if args.json else status_text(status)) + "\n")
        return 0
    if args.jobs is not None and args.jobs < 1:
        err.write("error: --jobs must be at least 1\n")
        return 2
    if args.max_per_hour is not None and args.max_per_hour < 0:
        err.write("error: --max-per-hour must be 0 (no limit) or more\n")
        return 2
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           "%Y-%m-%dT%H:%M:%S"))
    logger = logging.getLogger("grader.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    factory = None
    if args.cluster is not None:
        from grader.engine.executors import pool_factory

        try:
            factory = pool_factory(args.cluster)
        except ValueError as exc:
            err.write(f"error: {exc}\n")
            return 2
    overrides = {"feedback_before_deadline": args.feedback, "max_per_hour": args.max_per_hour,
                 "after_deadline": args.after_deadline}
    try:
        service = Service(args.course, assignments=args.assignment, exchange=args.exchange,
                          jobs=args.jobs, sandbox=not args.no_sandbox, timeout=args.timeout,
                          overrides=overrides, pool_factory=factory)
    except (ServeError, FileNotFoundError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    try:
        service.install_signal_handlers()
        service.run(once=args.once)
    except KeyboardInterrupt:
        err.write("stopped\n")
    except Exception as exc:  # the service itself failed: say so, keep the traceback
        logger.exception("the grading service failed")
        out.write(f"exit 2: the grading service failed ({type(exc).__name__}: {exc})\n")
        return 2
    finally:
        service.close()
        sys.stderr.flush()
    logger.info("stopped")
    return 0
