"""Reading what the probe recorded, describing it in a sentence, and the verdict it gets.

Generic judging vocabulary shared by the engine's judge (:mod:`grader.checks`) and the
courses' comparisons and value judges: no exercise names, no reference, no torch (recorded
tensors and arrays are read as plain numbers and a shape, :func:`as_array`; a course that
compares tensors does so in its own ``compare.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grader.runtime.declare import Case, Exercise


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: passed or not, the message and the hint id (or None)."""

    passed: bool
    message: str = ""
    hint: str | None = None


#: What a comparison says about a wrong answer: (the expected answer in words, a detail line,
#: the generic hint id or None); None when the answer is right.
Mismatch = tuple[str, str, str | None] | None


@dataclass(frozen=True)
class Comparison:
    """How a course compares one kind of answer with the expected one (its ``compare.py``).

    Attributes:
        mismatch: ``(exercise, case, recorded result, expected)`` -> :data:`Mismatch`;
            ``expected()`` computes the reference's output on the case (only if needed).
        expected_text: ``(exercise, case, expected)`` -> the expected answer in words, for a
            student whose code raised on the case.
        same: ``(mistake's recorded result, student's)`` -> whether they are the same answer
            (how a known mistake is recognised).
    """

    mismatch: Callable[[Exercise, Case, dict, Callable[[], Any]], Mismatch]
    expected_text: Callable[[Exercise, Case, Callable[[], Any]], str]
    same: Callable[[dict, dict], bool]



# ---------------------------------------------------------------------------------------------
# reading recorded answers


def _finite(x: Any) -> float:
    return float(x)  # also reads the probe's "nan", "inf" and "-inf"


@dataclass(frozen=True)
class Array:
    """A recorded tensor, array or nested list of numbers: its values (row-major) and shape."""

    data: tuple[float, ...]
    shape: tuple[int, ...]


def as_array(enc: dict) -> Array | None:
    """The numbers of a recorded tensor, array or nested list of numbers, else None (the same
    records a course's tensor reader accepts: no bool or complex dtype, rows of equal shape)."""
    kind = enc.get("type")
    try:
        if kind in ("tensor", "ndarray"):
            if "bool" in str(enc.get("dtype")) or "complex" in str(enc.get("dtype")):
                return None
            data = tuple(_finite(v) for v in enc["data"])
            shape = tuple(enc["shape"])
            if not all(type(d) is int and d >= 0 for d in shape) or math.prod(shape) != len(data):
                return None
            return Array(data, shape)
        if kind in ("list", "tuple"):
            rows = [as_array(item) if item.get("type") in ("list", "tuple")
                    else as_number(item) for item in enc["items"]]
            if any(r is None for r in rows) or not rows:
                return None
            if all(isinstance(r, Array) for r in rows):
                shapes = {r.shape for r in rows}  # type: ignore[union-attr]
                if len(shapes) != 1:
                    return None
                return Array(tuple(v for r in rows for v in r.data),  # type: ignore[union-attr]
                             (len(rows), *shapes.pop()))
            if all(isinstance(r, float) for r in rows):
                return Array(tuple(rows), (len(rows),))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return None


def as_number(enc: dict) -> float | None:
    """A float from a recorded int/float or one-element tensor or array, else None."""
    kind = enc.get("type")
    try:
        if kind in ("int", "float"):
            return _finite(enc["value"])
        if kind in ("tensor", "ndarray") and len(enc["data"]) == 1 and "bool" not in enc["dtype"]:
            return _finite(enc["data"][0])
    except (KeyError, TypeError, ValueError):
        return None
    return None


def as_shape(enc: dict) -> tuple[int, ...] | None:
    """A shape from a recorded tuple, list or torch.Size of whole numbers, else None."""
    if enc.get("type") not in ("tuple", "list", "size"):
        return None
    dims = []
    for item in enc.get("items", []):
        value = as_number(item) if item.get("type") in ("int", "float") else None
        if value is None or value != int(value):
            return None
        dims.append(int(value))
    return tuple(dims)


def fmt_number(x: float) -> str:
    """A number as students read it: whole numbers without decimals, else 4 digits."""
    return str(int(x)) if math.isfinite(x) and x == int(x) and abs(x) < 1e15 else f"{x:.4g}"


def fmt_array(array: Array) -> str:
    """Recorded numbers as students read them: the shape and, if small, the values."""
    shape = array.shape
    if len(array.data) <= 36:
        def rows(offset: int, dims: tuple[int, ...]) -> str:
            if not dims:
                return fmt_number(array.data[offset])
            step = math.prod(dims[1:])
            return "[" + ", ".join(rows(offset + i * step, dims[1:])
                                   for i in range(dims[0])) + "]"
        return f"a tensor of shape {shape}: {rows(0, shape)}"
    return f"a tensor of shape {shape}"


#: How some classes read in a sentence (others are "a <class> object").
_CLASS_WORDS: dict[str, str] = {
    "ellipsis": "an ellipsis (`...`), the placeholder of the release",
    "NoneType": "None",
    "function": "a function",
    "builtin_function_or_method": "a built-in function",
    "method": "a method",
    "module": "a module",
    "type": "a class",
    "generator": "a generator",
    "object": "an object",
}


def _article(word: str) -> str:
    """``word`` with "a" or "an" in front."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _describe_class(name: str) -> str:
    return _CLASS_WORDS.get(name) or f"{_article(name)} object"


def describe(enc: dict) -> str:
    """What came back, in words, for a failure message."""
    kind = enc.get("type")
    if kind == "exception":
        return f"an exception: {enc.get('exc_type')}: {enc.get('message', '')}".rstrip(": ")
    if kind in ("tensor", "ndarray"):
        t = as_array(enc)
        label = "a numpy array" if kind == "ndarray" else "a tensor"
        if t is None:
            return f"{label} of dtype {enc.get('dtype')} and shape {tuple(enc.get('shape', []))}"
        return fmt_array(t).replace("a tensor", label, 1)
    if kind == "too_large":
        what = {"ndarray": "numpy array"}.get(str(enc.get("kind")), str(enc.get("kind")))
        return f"a very large {what} of shape {tuple(enc.get('shape', []))}"
    if kind == "none":
        return "None"
    if kind in ("int", "float", "bool", "str"):
        return f"{kind} {enc.get('value')!r}"
    if kind in ("tuple", "list", "size"):
        shape = as_shape(enc)
        if shape is not None:
            return f"{'torch.Size' if kind == 'size' else kind} {shape}"
        t = as_array(enc)
        label = "a torch.Size" if kind == "size" else f"a {kind}"
        return fmt_array(t).replace("a tensor", label, 1) if t is not None else label
    if kind == "dict":
        keys = sorted(enc.get("items", {}))
        return "a dict with keys " + ", ".join(keys) if keys else "an empty dict"
    if kind == "not_callable":
        return _describe_class(str(enc.get('class', 'value')))
    return _describe_class(str(enc.get("class", kind)))


def fail(ex: Exercise, lines: list[str], hint_id: str | None, hint: str | None) -> Verdict:
    """A failed verdict: the exercise's title, the lines that say what is wrong, the hint."""
    text = f"{ex.title} is not right yet.\n" + "\n".join(line for line in lines if line)
    if hint:
        text += f"\nHint: {hint}"
    return Verdict(False, text, hint_id)
