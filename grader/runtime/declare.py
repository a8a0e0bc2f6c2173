"""What a course is written with: an exercise's declaration, its cases, its known mistakes.

Plain frozen dataclasses, no torch, so that the declarations and the cases can be staged into
the worker (the mistakes and references are not: only their type lives here).
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
class Exercise:
    """One graded exercise, declared once in its assignment's ``exercises.py``.

    Attributes:
        name: the check's name: hidden cells call ``check_<name>``, the test cell's grade_id
            is ``<name>_tests``; the cases and mistakes are keyed by it.
        answers: the names the student defines that the check reads (the first one is the
            function for function kinds; the reference solution has the same names).
        title: how messages name the exercise ("corr2d(X, K)").
        kind: how results are compared, one of :data:`KINDS`.
        forbid_torch_ops: whether torch's conv/pool/unfold are off limits.
        hints: generic hints of this exercise by failure ("wrong_shape": ...), overriding the
            engine's neutral ones so that each message fits the exercise.
        assignment: filled in by the registry from the folder the exercise is declared in.
    """

    name: str
    answers: tuple[str, ...]
    title: str
    kind: str
    forbid_torch_ops: bool = False
    hints: dict[str, str] = field(default_factory=dict)
    assignment: str = ""

    @property
    def grade_id(self) -> str:
        """The grade_id of the test cell that calls this check."""
        return f"{self.name}_tests"

    @property
    def calls_function(self) -> bool:
        """Whether the check calls the student's function on cases (else it reads values)."""
        return self.kind in FUNCTION_KINDS


def exercise(name: str, answers: str, title: str, kind: str, forbid: bool = False,
             **hints: str) -> Exercise:
    """Shorthand for :class:`Exercise`: ``answers`` is space-separated."""
    return Exercise(name, tuple(answers.split()), title, kind, forbid, dict(hints))


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
