"""What the sandboxed worker is given: the runtime and each assignment's declarations and cases.

An explicit, importable list (no torch, no parsing of source): the sandbox copies exactly
:func:`staged_files` of the package directory, and the engine's own :data:`SERVER_FILES`
(the fork server and its child), into the worker's read-only stage. References,
mistakes, judges and the rest of the engine are never in it, so ``import grader.checks`` or
``import grader.course.<assignment>.reference`` fails inside the sandbox.
"""

from __future__ import annotations

from pathlib import Path

#: The fork server and the child it forks, which run in the sandbox (never the pool or the
#: sandbox module), relative to the grader package. The stage always takes them from the
#: running engine, whatever package it stages (tests stage a stub package).
SERVER_FILES: tuple[str, ...] = (
    "engine/__init__.py",
    "engine/execute/__init__.py",
    "engine/execute/protocol.py",
    "engine/execute/child.py",
    "engine/execute/server.py",
)
#: The runtime and the engine modules it needs, relative to the grader package.
RUNTIME_FILES: tuple[str, ...] = (
    "__init__.py",
    "engine/forbidden.py",
    "runtime/__init__.py",
    "runtime/declare.py",
    "runtime/discover.py",
    "runtime/probe.py",
    "runtime/staging.py",
)
#: The course folder, relative to the grader package.
COURSE_DIR = "course"
#: Files of the course folder itself that are staged (shared inputs of the cases).
COURSE_FILES: tuple[str, ...] = ("__init__.py", "inputs.py")
#: Files of each assignment folder that are staged: what the probe needs to call and record
#: (``standins.py``: the trusted stand-ins of the answers exercises build on, if any).
ASSIGNMENT_FILES: tuple[str, ...] = ("__init__.py", "exercises.py", "cases.py", "standins.py")


def assignment_dirs(package_dir: Path) -> list[Path]:
    """The assignment folders of the course under ``package_dir`` (one per subpackage)."""
    course = Path(package_dir) / COURSE_DIR
    if not course.is_dir():
        return []
    return sorted(p for p in course.iterdir() if p.is_dir()
                  and not p.name.startswith(("_", ".")) and (p / "__init__.py").is_file())


def staged_files(package_dir: Path) -> tuple[str, ...]:
    """The files of ``package_dir`` (grader/) staged into the worker, relative paths.

    Files listed here that do not exist are left out (a test's stub package holds fewer;
    :func:`grader.engine.sandbox.stage` adds the engine's own :data:`SERVER_FILES` anyway).
    """
    package_dir = Path(package_dir)
    names = [*SERVER_FILES, *RUNTIME_FILES]
    dirs = assignment_dirs(package_dir)
    if dirs:
        names += [f"{COURSE_DIR}/{name}" for name in COURSE_FILES]
    for folder in dirs:
        names += [f"{COURSE_DIR}/{folder.name}/{name}" for name in ASSIGNMENT_FILES]
    return tuple(name for name in names if (package_dir / name).is_file())
