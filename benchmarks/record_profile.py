"""Where the record phase's time goes: nbgrader's Autograde converter per student, step by step.

    python benchmarks/record_profile.py [--n 30] [--assignment channels_pooling] [--jobs 2]
                                        [--cprofile FILE] [--keep DIR]

Builds a course with N demo-class submissions (as ``benchmarks/autograde_bench.py`` does),
grades them in this process through :func:`grader.engine.autograde.autograde` (the course's own
``submitted/``, so the gradebook is the course's sqlite file, as for an instructor) and times,
with thin wrappers around nbgrader's, SQLAlchemy's and the grader's own functions (nothing in
the engine changes), each step the record phase takes per student: the converter's set-up
(``init_assignment``: student, submission and notebook rows), its two nbconvert passes
(sanitize, then autograde) and every preprocessor in them, the judge (inside the precomputed
Execute step), each ``Gradebook`` opened, each commit, each SQL statement compiled, each
notebook validated and written; with the direct record path (grader/engine/record.py) its
steps instead: the student's rows, each notebook's two passes and write. Times are
inclusive (a commit inside SaveAutoGrades counts in both); the table says per student and in
all. ``--cprofile FILE`` also writes a cProfile of the record phase (slower; for
``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import functools
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import autograde_bench as bench  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
ORDER: list[str] = []
_DEPTH = threading.local()


def _wrap(owner: Any, attr: str, label: str, reentrant: bool = False) -> None:
    """Replace ``owner.attr`` by a wrapper adding its wall time to TIMES[label]."""
    original = getattr(owner, attr)
    ORDER.append(label)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        depth = getattr(_DEPTH, label, 0)
        if reentrant and depth:
            return original(*args, **kwargs)
        setattr(_DEPTH, label, depth + 1)
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - t0
            CALLS[label] += 1
            setattr(_DEPTH, label, depth)

    setattr(owner, attr, timed)


def _instrument() -> None:
    """Wrap the steps of the record phase (see the module docstring)."""
    import nbconvert.preprocessors as nbp
    import nbconvert.writers
    import nbformat
    import nbformat.validator
    import sqlalchemy.engine.default
    import sqlalchemy.orm
    import sqlalchemy.sql.compiler
    from nbgrader import api, preprocessors
    from nbgrader.converters import Autograde, base

    import grader.checks
    import grader.engine.autograde as ag
    import grader.engine.forbidden
    import grader.engine.record as rec

    _wrap(ag, "_convert_one", "record: one student (_convert_one)")
    _wrap(rec.DirectRecorder, "_record", "record: one student (direct path)")
    _wrap(rec.DirectRecorder, "_rows", "  direct: the student's rows (find or make)")
    _wrap(rec.DirectRecorder, "_notebook", "  direct: one notebook (read, passes, write)")
    _wrap(rec.DirectRecorder, "_apply", "    direct: one pass of steps (+ validation)")
    _wrap(copy, "deepcopy", "  [any] copy.deepcopy (outermost calls)", reentrant=True)
    _wrap(Autograde, "init_assignment", "  Autograde.init_assignment (rows, files)")
    _wrap(Autograde, "convert_single_notebook", "  Autograde.convert_single_notebook")
    original = base.BaseConverter.convert_single_notebook
    ORDER.extend(["    sanitize pass", "    autograde pass"])

    def one_pass(self: Any, filename: str) -> Any:
        label = "    sanitize pass" if getattr(self, "_sanitizing", False) else \
            "    autograde pass"
        t0 = time.perf_counter()
        try:
            return original(self, filename)
        finally:
            TIMES[label] += time.perf_counter() - t0
            CALLS[label] += 1

    base.BaseConverter.convert_single_notebook = one_pass
    steps = [("ClearOutput", nbp), ("DeduplicateIds", preprocessors),
             ("OverwriteKernelspec", preprocessors), ("OverwriteCells", preprocessors),
             ("CheckCellMetadata", preprocessors), ("IgnorePattern", preprocessors),
             ("ClearMetadataPreprocessor", nbp), ("LimitOutput", preprocessors),
             ("SaveAutoGrades", preprocessors), ("AssignLatePenalties", preprocessors)]
    for name, module in steps:
        cls = getattr(module, name, None)
        if cls is not None:
            _wrap(cls, "preprocess", f"      {name}.preprocess")
    _wrap(ag._FastRunner, "execute", "      Execute (precomputed: apply the run, judge)")
    _wrap(grader.checks, "judge", "        grader.checks.judge")
    _wrap(grader.engine.forbidden, "scan", "          forbidden.scan")
    _wrap(nbconvert.writers.FilesWriter, "write", "      FilesWriter.write (autograded/)")
    _wrap(nbformat.validator, "validate", "  [any] nbformat.validate")
    _wrap(api.Gradebook, "__init__", "  [any] Gradebook() opened")
    _wrap(api.Gradebook, "close", "  [any] Gradebook.close")
    _wrap(sqlalchemy.orm.Session, "commit", "  [any] Session.commit")
    _wrap(sqlalchemy.engine.default.DefaultDialect, "do_commit", "  [any] sqlite COMMIT")
    _wrap(sqlalchemy.orm.Session, "execute", "  [any] Session.execute (queries)")
    _wrap(sqlalchemy.sql.compiler.SQLCompiler, "__init__", "  [any] SQL statement compiled",
          reentrant=True)
    _wrap(ag, "_collect", "collect: read scores back (_collect)")


def main(argv: list[str] | None = None) -> int:
    """Build the course, grade it with the wrappers on, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--assignment", default="channels_pooling")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cprofile", type=Path, help="also write a cProfile of the run here")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it")
    args = parser.parse_args(argv)
    base_dir = args.keep or Path(tempfile.mkdtemp(prefix="convgrade-recprof-"))
    course = base_dir / "course"
    bench._make_course(course, args.assignment)
    bench._write_class(course, args.assignment, args.n)

    from grader.cli import _skip_unused_imports

    _skip_unused_imports()
    from grader.engine.autograde import autograde

    _instrument()
    marks: dict[str, list[float]] = defaultdict(list)

    def progress(phase: str, done: int, total: int, label: str) -> None:
        marks[phase].append(time.perf_counter())

    os.chdir(course)
    profiler = cProfile.Profile() if args.cprofile else None
    t0 = time.perf_counter()
    if profiler:
        profiler.enable()
    result = autograde(["submitted/"], args.assignment, jobs=args.jobs, progress=progress,
                       seed=0)
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(args.cprofile))
    total = time.perf_counter() - t0
    n = len(result["results"])
    record = marks["record"][-1] - marks["run"][-1]
    print(f"{n} submissions of {args.assignment}: {total:.1f} s in all; record phase "
          f"{record:.1f} s = {record / n:.3f} s per student")
    print(f"{'step':<58}{'calls':>7}{'s total':>9}{'ms/student':>12}")
    for label in [x for x in ORDER if x in TIMES]:
        print(f"{label:<58}{CALLS[label]:>7}{TIMES[label]:>9.2f}"
              f"{1000 * TIMES[label] / n:>12.1f}")
    if not args.keep:
        shutil.rmtree(base_dir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
