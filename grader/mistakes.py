"""Running a course's known mistakes, to recognise them in a student's answer by behaviour.

A mistake is code (:class:`grader.runtime.declare.Mistake`); it runs here, in the grader's own
process, with the modules and the public functions of its assignment's reference in scope
(this course's: torch, and a right ``corr2d`` that a mistake in ``corr2d_multi_in`` can build
on). Never staged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from grader.registry import course
from grader.runtime.declare import Exercise, Mistake


@functools.cache
def mistake_namespace(check: str, mistake_id: str) -> dict[str, Any]:
    """Run a mistake's source (with the reference helpers it builds on) and return its names."""
    c = course()
    reference = c.assignment_of(check).reference
    namespace: dict[str, Any] = {k: v for k, v in vars(reference).items()
                                 if isinstance(v, ModuleType) and not k.startswith("__")}
    namespace.update({k: v for k, v in vars(reference).items()
                      if inspect.isfunction(v) and not k.startswith("_")})
    mistake = c.mistake(check, mistake_id)
    if mistake is None:
        raise KeyError(f"no mistake {mistake_id!r} of {check!r}")
    exec(compile(mistake.source, f"<mistake {check}.{mistake_id}>", "exec"), namespace)  # noqa: S102
    return namespace


def value_mistake(ex: Exercise, same: Callable[[Any, str], bool]) -> Mistake | None:
    """The known mistake of the value exercise ``ex`` whose every answer is ``same`` as the
    student's (``same(mistake's value, answer name)``), or None."""
    for mistake in course().mistakes(ex.name):
        namespace = mistake_namespace(ex.name, mistake.id)
        if all(same(namespace[name], name) for name in ex.answers):
            return mistake
    return None
