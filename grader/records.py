"""Reading what the probe recorded, describing it in a sentence, and the verdict it gets.

Generic judging vocabulary shared by the engine's judge (:mod:`grader.checks`) and the
courses' value judges: no exercise names, no reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from grader.runtime.declare import Exercise


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: passed or not, the message and the hint id (or None)."""

    passed: bool
    message: str = ""
    hint: str | None = None



# ---------------------------------------------------------------------------------------------
# reading recorded answers


def _finite(x: Any) -> float:
    return float(x)  # also reads the probe's "nan", "inf" and "-inf"


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
        t = as_tensor(enc)
        label = "a numpy array" if kind == "ndarray" else "a tensor"
        if t is None:
            return f"{label} of dtype {enc.get('dtype')} and shape {tuple(enc.get('shape', []))}"
        return fmt_tensor(t).replace("a tensor", label, 1)
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
        t = as_tensor(enc)
        label = "a torch.Size" if kind == "size" else f"a {kind}"
        return fmt_tensor(t).replace("a tensor", label, 1) if t is not None else label
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
