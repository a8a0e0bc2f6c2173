"""What a hidden test cell calls: run the student's answer, record what comes back.

``check_<name>(answer...)`` (:func:`check_function`) feeds the exercise's cases
(``CASES[name]`` of its assignment's ``cases.py``) to the student's code and records the
results as plain JSON data (no pickles, no live objects), then hands ``(name, record)`` to the
current sink. For an exercise that uses other answers (``Exercise.uses``: ``corr2d_multi_in``
calls ``corr2d``) the record also holds a second run with those names replaced by their
trusted stand-ins (``STANDINS`` of the assignment's ``standins.py``), so that the judge can
tell a right function from the wrong answer it calls. The sinks:

* in Jupyter and under stock ``nbgrader autograde``/``validate``, :mod:`grader` installs a sink
  that judges in this process and raises ``AssertionError`` with the verdict's message;
* the sandboxed worker installs a sink (:func:`set_sink`) that only sends the record to the
  grader's own process, which judges it there, out of the student's reach.

A check returns ``None``: nbgrader would take a returned number as a partial score.
Output on stderr and warnings from the student's code are swallowed while it runs, because
stock nbgrader gives 0 points to a test cell that writes to stderr.

Part of the runtime staged into the worker (:mod:`grader.runtime.staging`): it finds the
course's declarations and cases by discovery and never imports a reference, a mistake or the
judge. torch is used only if the course's cases imported it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import io
import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

from grader.engine import forbidden
from grader.runtime.declare import Case, Exercise, ForbiddenApi
from grader.runtime.discover import assignment_modules

#: Largest tensor (elements) and text recorded; anything bigger is recorded as too large.
MAX_ELEMENTS = 100_000
MAX_TEXT = 500

Sink = Callable[[str, dict], None]

_sink: Sink | None = None
_seed: int = 0


def set_sink(sink: Sink | None, seed: int | None = None) -> None:
    """Send records to ``sink`` from now on (``None``: back to the default, in-process judging)."""
    global _sink, _seed
    _sink = sink
    if seed is not None:
        _seed = seed


def has_sink() -> bool:
    """Whether a sink is installed."""
    return _sink is not None


def set_seed(seed: int) -> None:
    """Draw the random cases from ``seed`` from now on."""
    global _seed
    _seed = int(seed)


# ---------------------------------------------------------------------------------------------
# the course, found by discovery (the same code runs in the worker's stage and outside)


@functools.cache
def declared() -> dict[str, Exercise]:
    """Every declared exercise by check name (declarations only, no reference)."""
    exercises: dict[str, Exercise] = {}
    for assignment, module in assignment_modules("exercises").items():
        for ex in getattr(module, "EXERCISES", ()):
            exercises[ex.name] = ex if ex.assignment else _with_assignment(ex, assignment)
    return exercises


def _with_assignment(ex: Exercise, assignment: str) -> Exercise:
    return dataclasses.replace(ex, assignment=assignment)


@functools.cache
def _case_builders() -> dict[str, Callable[[int], list[Case]]]:
    builders: dict[str, Callable[[int], list[Case]]] = {}
    for module in assignment_modules("cases").values():
        builders.update(getattr(module, "CASES", {}))
    return builders


def cases_for(name: str, seed: int = 0) -> list[Case]:
    """The cases of check ``name`` for ``seed``; [] for checks that read values only."""
    builder = _case_builders().get(name)
    return builder(seed) if builder else []


# ---------------------------------------------------------------------------------------------
# encoding answers as plain data


def _number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    return x


def _array(kind: str, dtype: str, shape: list[int], flat: list[Any]) -> dict:
    if len(flat) > MAX_ELEMENTS:
        return {"type": "too_large", "kind": kind, "shape": shape}
    return {"type": kind, "dtype": dtype, "shape": shape, "data": [_number(v) for v in flat]}


def encode(value: Any, depth: int = 0) -> dict:
    """Describe ``value`` as JSON-safe data (tensors, arrays, numbers, containers).

    Non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"``.
    """
    if depth > 4:
        return {"type": "object", "class": type(value).__name__, "repr": "(nested too deep)"}
    torch = sys.modules.get("torch")  # only a course that uses torch has tensors
    if torch is not None and isinstance(value, torch.Size):
        return {"type": "size", "items": [encode(v, depth + 1) for v in value]}
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach()
        if t.is_complex() or t.layout != torch.strided:
            return {"type": "object", "class": "Tensor", "repr": f"{t.dtype} {t.layout} tensor"}
        flat = t.reshape(-1).tolist() if t.numel() <= MAX_ELEMENTS else [0] * (MAX_ELEMENTS + 1)
        return _array("tensor", str(t.dtype), list(t.shape), flat)
    if type(value).__module__ == "numpy":
        if hasattr(value, "shape") and hasattr(value, "tolist") and getattr(value, "ndim", 0):
            flat = value.reshape(-1).tolist() if value.size <= MAX_ELEMENTS else []
            return _array("ndarray", str(value.dtype), list(value.shape),
                          flat or [0] * (MAX_ELEMENTS + 1))
        if hasattr(value, "item"):
            value = value.item()
    if value is None:
        return {"type": "none", "value": None}
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int | float):
        return {"type": type(value).__name__, "value": _number(value)}
    if isinstance(value, str):
        return {"type": "str", "value": value[:MAX_TEXT]}
    if isinstance(value, list | tuple):
        items = [encode(v, depth + 1) for v in list(value)[:1000]]
        return {"type": type(value).__name__ if type(value) in (list, tuple) else "tuple",
                "items": items}
    if isinstance(value, dict):
        return {"type": "dict",
                "items": {str(k)[:100]: encode(v, depth + 1) for k, v in list(value.items())[:100]}}
    try:
        text = repr(value)[:MAX_TEXT]
    except Exception:  # noqa: BLE001 - a student's __repr__ may raise anything
        text = "(repr failed)"
    return {"type": "object", "class": type(value).__name__, "repr": text}


def _exception(exc: BaseException) -> dict:
    try:
        message = str(exc)[:MAX_TEXT]
    except Exception:  # noqa: BLE001
        message = "(str failed)"
    return {"type": "exception", "exc_type": type(exc).__name__,
            "mro": [c.__name__ for c in type(exc).__mro__], "message": message}


def _clone(value: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def _quiet():
    """Swallow stdout, stderr and warnings of the student's code while a check runs it."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def call(fn: Any, case: Case, rule: ForbiddenApi | None = None,
         watching: list[set[str]] | None = None) -> dict:
    """Call the student's function on one case and record the outcome.

    With ``rule`` (the exercise's forbidden-API rule) its tripwires watch the call and the
    record's ``forbidden`` lists what they saw; without one it is empty. ``watching``: a
    stack that holds the set the tripwires fill while the call runs (the stand-ins'
    :func:`_lent` leave their own calls out of it).
    """
    if not callable(fn):
        return {"label": case.label, "result": {"type": "not_callable", **encode(fn)},
                "forbidden": []}
    watch = forbidden.tripwires(rule) if rule is not None else contextlib.nullcontext(set())
    stack = [] if watching is None else watching
    with _quiet(), watch as seen:
        stack.append(seen)
        try:
            result = encode(fn(*_clone(case.args), **_clone(case.kwargs)))
        except Exception as exc:  # noqa: BLE001 - every student error is data here
            result = _exception(exc)
        finally:
            stack.pop()
    return {"label": case.label, "result": result, "forbidden": sorted(seen)}


# ---------------------------------------------------------------------------------------------
# the run with trusted stand-ins for the answers an exercise uses (Exercise.uses)


@functools.cache
def _standins() -> dict[str, dict[str, Callable[..., Any]]]:
    """Each assignment's stand-ins by answer name (``STANDINS`` of its ``standins.py``)."""
    return {assignment: dict(getattr(module, "STANDINS", {}))
            for assignment, module in assignment_modules("standins").items()}


def _lent(standin: Callable[..., Any], watching: list[set[str]], live: list[bool]
          ) -> Callable[..., Any]:
    """``standin`` as the probe lends it to the student's function for one run.

    Its own forbidden calls (a stand-in is torch's convolution) are left out of what the
    tripwires saw; the stand-ins let no student code run inside them (their module says
    how). Once ``live`` is emptied (the run is over) it only raises, so a copy the student's
    code kept cannot be used in a later check, where the tripwires would not forgive it.
    """
    def lent(*args: Any, **kwargs: Any) -> Any:
        if not live:
            raise RuntimeError("a stand-in is only lent to the check's own run")
        seen = watching[-1] if watching else set()
        before = frozenset(seen)
        try:
            return standin(*args, **kwargs)
        finally:
            seen.intersection_update(before)

    lent.__name__ = lent.__qualname__ = getattr(standin, "__name__", "stand_in")
    return lent


def _run_with_standins(ex: Exercise, fn: Any, cases: list[Case]) -> dict | None:
    """The student's function run again on ``cases`` with the answers ``ex`` uses replaced
    by their stand-ins in its globals (``__main__``'s, for a notebook), put back afterwards
    whatever happens; None when the exercise uses none or its globals define none of them.

    Returns ``{"replaced": [names], "items": [one call's record per case]}``.
    """
    namespace = getattr(fn, "__globals__", None)
    available = _standins().get(ex.assignment, {})
    if not ex.uses or not isinstance(namespace, dict):
        return None
    replaced = [name for name in ex.uses if name in namespace and name in available]
    if not replaced:
        return None
    watching: list[set[str]] = []
    live = [True]
    saved = {name: namespace[name] for name in replaced}
    try:
        namespace.update({name: _lent(available[name], watching, live) for name in replaced})
        items = [call(fn, case, ex.forbidden, watching) for case in cases]
    finally:
        live.clear()
        namespace.update(saved)
    return {"replaced": replaced, "items": items}


def _source_of(fn: Any) -> str | None:
    try:
        return inspect.getsource(fn)
    except (TypeError, OSError):
        return None


def _emit(name: str, record: dict) -> None:
    record.setdefault("check", name)
    record.setdefault("seed", _seed)
    if _sink is None:
        raise RuntimeError("no sink installed: import the check from grader "
                           "(`from grader import check_<name>`)")
    _sink(name, record)


def _probe_function(name: str, fn: Any) -> None:
    ex = declared()[name]
    cases = cases_for(name, _seed)
    record = {"items": [call(fn, case, ex.forbidden) for case in cases],
              "source": _source_of(fn)}
    lent = _run_with_standins(ex, fn, cases)
    if lent is not None:
        record["with_standins"] = lent
    _emit(name, record)


def _probe_values(name: str, **values: Any) -> None:
    items = [{"label": key, "result": encode(value), "forbidden": []}
             for key, value in values.items()]
    _emit(name, {"items": items})


# ---------------------------------------------------------------------------------------------
# the checks hidden cells call (one per test cell)


@functools.cache
def check_function(name: str) -> Callable[..., None]:
    """``check_<name>``: the function a hidden cell calls, made from the declaration.

    A function exercise's check takes the student's function; a value exercise's check takes
    the declared answers, in order. Raises KeyError for an undeclared check.
    """
    ex = declared()[name]
    if ex.calls_function:
        def check(answer: Any) -> None:
            _probe_function(ex.name, answer)
    else:
        def check(*values: Any) -> None:
            if len(values) != len(ex.answers):
                raise TypeError(f"check_{ex.name} takes {len(ex.answers)} argument(s): "
                                + ", ".join(ex.answers))
            _probe_values(ex.name, **dict(zip(ex.answers, values, strict=True)))
    check.__name__ = check.__qualname__ = f"check_{ex.name}"
    check.__doc__ = f"Check {ex.title} ({ex.kind}); records the answer for the judge."
    return check


# The course's declarations and cases are imported with the probe, once: the worker's server
# imports the probe before it forks, so no submission pays for them (the stage is read-only,
# no bytecode cache could be written there).
declared()
_case_builders()
_standins()
