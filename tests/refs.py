"""The course's references and mistakes in one place for the tests, found by the registry.

``R.<name>`` is the reference ``<name>`` of whichever assignment defines it (and
``R.solution_source``); ``MISTAKES[check]`` the known mistakes of a check. Nothing here is
written by hand: adding an assignment folder adds its names.
"""

from __future__ import annotations

from types import SimpleNamespace

from grader.registry import course, solution_source


def _references() -> SimpleNamespace:
    names: dict[str, object] = {}
    for assignment in course().assignments.values():
        names.update({k: v for k, v in vars(assignment.reference).items()
                      if not k.startswith("_")})
    return SimpleNamespace(**names, solution_source=solution_source)


R = _references()
MISTAKES = {name: course().mistakes(name) for name in course().exercises}
ASSIGNMENTS = sorted(course().assignments)
