"""What a course is written with: an exercise's declaration, its cases, its known mistakes.

Plain frozen dataclasses, no torch, so that the declarations and the cases can be staged into
the worker (the mistakes and references are not: only their type lives here). A course's
forbidden-API rule (:class:`ForbiddenApi`, :class:`Tripwire`) is declared with them: the worker's
tripwires need it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

#: The kinds of exercise: how results are compared.
#: "tensor", "number", "raises" and "kernel" call a student's function on cases;
#: "value" reads names the student defines (no cases, an assignment-specific judge).
FUNCTION_KINDS = ("tensor", "number", "raises", "kernel")
KINDS = (*FUNCTION_KINDS, "value")


@dataclass(frozen=True)
class Tripwire:
    """Where the runtime tripwires wrap forbidden calls while a check runs the student's code.

    Attributes:
        owner: the module or class whose attributes are wrapped, by dotted path
            ("torch.nn.functional", "torch.Tensor", "torch.nn.Conv2d"); a tripwire whose owner
            cannot be found (the library is not installed) is left out.
        names: the attributes to wrap; ``None``: every name of the rule that is a plain
            function (not a class) of ``owner``.
        label: how a call is recorded, ``{owner}`` and ``{name}`` filled in
            ("torch.nn.functional.conv2d").
    """

    owner: str
    names: tuple[str, ...] | None = None
    label: str = "{owner}.{name}"


@dataclass(frozen=True)
class ForbiddenApi:
    """A forbidden-API rule: library calls an exercise must not use, under any name.

    Declared by the course (this course: ``grader.course.FROM_SCRATCH``) and given to the
    exercises it applies to (:attr:`Exercise.forbidden`); the engine only runs it
    (:mod:`grader.engine.forbidden`). A course without one has no forbidden-API rule.

    Attributes:
        names: the attribute and function names the static scan rejects wherever they are
            used ("conv2d", "unfold"); they also name what a ``names=None`` tripwire wraps.
        tripwires: where the runtime tripwires watch calls, in order.
        requirement: what the verdict says the exercise must be ("must be written from
            scratch"), after the exercise's title.
        hint: the verdict's hint.
    """

    names: frozenset[str]
    tripwires: tuple[Tripwire, ...] = ()
    requirement: str = "must not use these library calls"
    hint: str = ""


@dataclass(frozen=True)
class Exercise:
    """One graded exercise, declared once in its assignment's ``exercises.py``.

    Attributes:
        name: the check's name: hidden cells call ``check_<name>``, the test cell's grade_id
            is ``<name>_tests``; the cases and mistakes are keyed by it.
        answers: the names the student defines that the check reads (the first one is the
            function for function kinds; the reference solution has the same names).
        title: how messages name the exercise ("corr2d(X, K)").
        kind: how results are compared, one of :data:`KINDS`.
        forbidden: the course's forbidden-API rule for this exercise (:class:`ForbiddenApi`),
            or None: no library call is off limits.
        hints: generic hints of this exercise by failure ("wrong_shape": ...), overriding the
            engine's neutral ones so that each message fits the exercise.
        uses: the student's other answers this exercise's function builds on, by the name
            it calls them ("corr2d"), dependencies of dependencies included. Each has a
            trusted stand-in (``STANDINS[name]`` in the assignment's ``standins.py``): the
            check also runs the student's function with these names replaced by the
            stand-ins, and a function that is right with them gets full credit even when
            the student's own dependency is wrong (:mod:`grader.runtime.probe`,
            :mod:`grader.checks`).
        assignment: filled in by the registry from the folder the exercise is declared in.
    """

    name: str
    answers: tuple[str, ...]
    title: str
    kind: str
    forbidden: ForbiddenApi | None = None
    hints: dict[str, str] = field(default_factory=dict)
    uses: tuple[str, ...] = ()
    assignment: str = ""

    @property
    def grade_id(self) -> str:
        """The grade_id of the test cell that calls this check."""
        return f"{self.name}_tests"

    @property
    def calls_function(self) -> bool:
        """Whether the check calls the student's function on cases (else it reads values)."""
        return self.kind in FUNCTION_KINDS


def exercise(name: str, answers: str, title: str, kind: str,
             forbidden: ForbiddenApi | None = None, *, uses: str = "", **hints: str
             ) -> Exercise:
    """Shorthand for :class:`Exercise`: ``answers`` and ``uses`` are space-separated,
    ``forbidden`` the course's rule for this exercise (if any), ``hints`` its generic hints
    by failure."""
    return Exercise(name, tuple(answers.split()), title, kind, forbidden, dict(hints),
                    tuple(uses.split()))


@dataclass(frozen=True)
class Case:
    """One call of the student's code.

    Attributes:
        label: what the student reads in a failure message ("the notes' 3x3 example").
        args: positional arguments (tensors are cloned before every call).
        kwargs: keyword arguments.
        raises: name of the exception the call must raise, or None.
        target: for checks judged against a known truth rather than the reference
            (``learn_kernel``: the kernel that made Y).
    """

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    raises: str | None = None
    target: Any = None


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer (never staged: it lives in the assignment's ``mistakes.py``).

    Attributes:
        id: short stable name, used in reports ("flipped_kernel").
        hint: what the student is told when their answer behaves like this one.
        source: Python code defining the exercise's name(s) the wrong way.
    """

    id: str
    hint: str
    source: str


def mistake(id: str, hint: str, source: str) -> Mistake:
    """A :class:`Mistake` with ``source`` dedented (written indented in a triple-quoted string)."""
    return Mistake(id, hint, textwrap.dedent(source).strip() + "\n")
