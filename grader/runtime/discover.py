"""Where the course is: its package and its assignments' parts, found by discovery.

Shared by the probe (in the worker, over the stage's copy) and the registry (in the grader's
process, over the whole course). Standard library only: importing it loads no course module.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

#: The package holding the course's assignments (one subpackage per assignment).
COURSE_PACKAGE = "grader.course"


def assignment_modules(part: str, package: str = COURSE_PACKAGE) -> dict[str, ModuleType]:
    """``{assignment: module}`` of each assignment's ``<part>.py`` (e.g. "cases"), by discovery.

    An assignment is a subpackage of ``package``; one without that part is left out.
    """
    try:
        course = importlib.import_module(package)
    except ImportError:
        return {}
    found = {}
    for info in sorted(pkgutil.iter_modules(course.__path__), key=lambda m: m.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        try:
            found[info.name] = importlib.import_module(f"{package}.{info.name}.{part}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{info.name}.{part}":
                raise
    return found
