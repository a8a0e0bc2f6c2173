"""How this course compares tensors: the comparisons of its "tensor" and "kernel" exercises.

The engine's judge (:mod:`grader.checks`) is generic: it reads records, runs the forbidden-API
rule, recognises known mistakes and picks hints. How an answer of a kind other than "number"
is compared with the expected one is the course's to say: :data:`COMPARISONS` maps each such
kind to a :class:`grader.records.Comparison`, and the registry checks that every declared
exercise's kind has one. This one uses torch (the grader's own process only; never staged).
Value exercises' judges (``judges.py``) use :func:`as_tensor` and :func:`fmt_tensor` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from grader.records import Comparison, _finite, as_number, fmt_number
from grader.runtime.declare import Case, Exercise

__all__ = ["ATOL", "COMPARISONS", "KERNEL_TOLERANCE", "RTOL", "as_tensor", "fmt_tensor"]

#: How close a learned kernel must be to the kernel that made Y (absolute, per weight).
KERNEL_TOLERANCE = 0.1
RTOL, ATOL = 1e-4, 1e-4


def as_tensor(enc: dict) -> torch.Tensor | None:
    """A float64 tensor from a recorded tensor, array or nested list of numbers, else None."""
    kind = enc.get("type")
    try:
        if kind in ("tensor", "ndarray"):
            if "bool" in str(enc.get("dtype")) or "complex" in str(enc.get("dtype")):
                return None
            data = [_finite(v) for v in enc["data"]]
            return torch.tensor(data, dtype=torch.float64).reshape(enc["shape"])
        if kind in ("list", "tuple"):
            rows = [as_tensor(item) if item.get("type") in ("list", "tuple")
                    else as_number(item) for item in enc["items"]]
            if any(r is None for r in rows) or not rows:
                return None
            if all(isinstance(r, torch.Tensor) for r in rows):
                return torch.stack(rows)  # type: ignore[arg-type]
            if all(isinstance(r, float) for r in rows):
                return torch.tensor(rows, dtype=torch.float64)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
        return None
    return None


def fmt_tensor(t: torch.Tensor) -> str:
    """A tensor as students read it: its shape and, if small, its values."""
    shape = tuple(t.shape)
    if t.numel() <= 36:
        def rows(x: torch.Tensor) -> str:
            if x.dim() == 0:
                return fmt_number(float(x))
            return "[" + ", ".join(rows(v) for v in x) + "]"
        return f"a tensor of shape {shape}: {rows(t)}"
    return f"a tensor of shape {shape}"


def _tensor_mismatch(expected: torch.Tensor, enc: dict) -> tuple[str, str | None] | None:
    """None when ``enc`` matches ``expected``; else (detail, generic hint id)."""
    got = as_tensor(enc)
    if got is None:
        if enc.get("type") == "none":
            return "", "returned_none"
        return "", "wrong_type"
    if tuple(got.shape) != tuple(expected.shape):
        return (f"The shape is {tuple(got.shape)}, but it should be "
                f"{tuple(expected.shape)}."), "wrong_shape"
    exp = expected.to(torch.float64)
    close = torch.isclose(got, exp, rtol=RTOL, atol=ATOL)
    if bool(close.all()):
        return None
    index = tuple(int(i) for i in (~close).nonzero()[0])
    return (f"First difference at {list(index)}: expected {fmt_number(float(exp[index]))}, "
            f"got {fmt_number(float(got[index]))}."), None


def _tensor(spec: Exercise, case: Case, enc: dict, expected: Callable[[], Any]
            ) -> tuple[str, str, str | None] | None:
    """A "tensor" answer vs the reference's output on the case."""
    value = expected()
    found = _tensor_mismatch(value, enc)
    return None if found is None else (fmt_tensor(value), *found)


def _kernel(spec: Exercise, case: Case, enc: dict, expected: Callable[[], Any]
            ) -> tuple[str, str, str | None] | None:
    """A learned "kernel" vs the case's target, each weight within KERNEL_TOLERANCE."""
    target = torch.as_tensor(case.target, dtype=torch.float64)
    got = as_tensor(enc)
    if got is not None and got.numel() == target.numel():
        got = got.reshape(target.shape)
        if bool((got - target).abs().max() <= KERNEL_TOLERANCE):
            return None
        return (fmt_tensor(target) + f" (each weight within {KERNEL_TOLERANCE})",
                "", None)
    return fmt_tensor(target), "", "wrong_shape" if got is not None else "wrong_type"


def _expected_text(spec: Exercise, case: Case, expected: Callable[[], Any]) -> str:
    """What the answer should have been, for a student whose code raised."""
    if spec.kind == "kernel":
        return fmt_tensor(torch.as_tensor(case.target))
    value = expected()
    if isinstance(value, torch.Tensor):
        return fmt_tensor(value)
    return fmt_number(float(value))


def _same(wrong: dict, enc: dict) -> bool:
    """Whether a known mistake's recorded output equals the student's (to recognise it)."""
    a, b = as_tensor(wrong), as_tensor(enc)
    if wrong.get("type") == "none" and enc.get("type") == "none":
        return True
    return a is not None and b is not None and a.shape == b.shape and torch.allclose(
        a, b, rtol=RTOL, atol=ATOL, equal_nan=True
    )


_TENSOR = Comparison(_tensor, _expected_text, _same)

#: The comparison of each kind this course declares (other than "number" and "value").
COMPARISONS: dict[str, Comparison] = {
    "tensor": _TENSOR,
    "raises": _TENSOR,  # a "raises" exercise's mistakes that return are compared as tensors
    "kernel": Comparison(_kernel, _expected_text, _same),
}
