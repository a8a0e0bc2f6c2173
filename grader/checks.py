"""Judge recorded answers against the reference: a verdict and a hint per check.

:func:`judge` takes what :mod:`grader.runtime.probe` recorded in the student's process (plain
JSON data) and compares it with the exercise's reference (from the course's registry,
:mod:`grader.registry`) on the same cases. It runs in the grader's own process in the
sandboxed pipeline, so nothing the student's code does can change a comparison. A failed
verdict says what was expected, what came back and, when the answer behaves like one of the
exercise's known mistakes, the hint for that mistake; otherwise a generic hint that fits the
exercise (its declaration's ``hints``, else its kind's, else a neutral one).
"Value" exercises are judged by their assignment's ``judges.py``.

Never staged into the student's worker.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from grader.engine import forbidden
from grader.mistakes import mistake_namespace
from grader.records import (
    Verdict,
    as_number,
    as_tensor,
    describe,
    fail,
    fmt_number,
    fmt_tensor,
)
from grader.registry import course
from grader.runtime.declare import Case, Exercise, Mistake
from grader.runtime.probe import call

__all__ = ["CheckSpec", "GENERIC_HINTS", "KIND_HINTS", "Verdict", "describe",
           "hint_for", "judge"]

#: A check's declaration (the name the judge and the tests have always used).
CheckSpec = Exercise

#: How close a learned kernel must be to the kernel that made Y (absolute, per weight).
KERNEL_TOLERANCE = 0.1
RTOL, ATOL = 1e-4, 1e-4

#: Hints for a failure no known mistake explains, by failure; neutral for every exercise.
GENERIC_HINTS: dict[str, str] = {
    "returned_none": "Your function returned None: did you forget `return`?",
    "wrong_type": "Return the kind of value the exercise asks for.",
    "wrong_shape": "Check the output size: work out each dimension of the output from the "
                   "input's for this case.",
    "raised": "Your code raised an exception on this input; run it on the same input in "
              "the notebook to see where.",
    "not_written": "Replace `raise NotImplementedError()` with your code.",
}
#: Hints by the exercise's kind, before the neutral ones.
KIND_HINTS: dict[str, dict[str, str]] = {
    "tensor": {"wrong_type": "Return a torch tensor."},
    "number": {"wrong_type": "Return a number (an int, or a float where one is asked for)."},
    "kernel": {"wrong_type": "Return the learned kernel as a torch tensor.",
               "wrong_shape": "Return a kernel with the shape kernel_shape asks for."},
    "raises": {},
    "value": {},
}


def hint_for(ex: Exercise, failure: str | None) -> str | None:
    """The generic hint for ``failure`` that fits ``ex``: its own, its kind's or the neutral one."""
    if not failure:
        return None
    return (ex.hints.get(failure) or KIND_HINTS.get(ex.kind, {}).get(failure)
            or GENERIC_HINTS.get(failure))


def __getattr__(name: str) -> Any:
    if name == "CHECKS":  # loaded on first use: the course, validated
        return course().exercises
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# comparing


#: The reference's and the known mistakes' outputs on a run's cases, the same for every
#: student: by (check, seed, case index, "reference" or "mistake <id>"), computed once
#: per run instead of once per student (issue 12). Cleared when it grows past _OUTPUTS_MAX.
_OUTPUTS: dict[tuple[str, int, int, str], tuple[bool, Any]] = {}
_OUTPUTS_MAX = 20_000
CaseKey = tuple[str, int, int]


def _once(key: CaseKey | None, what: str, compute: Any) -> Any:
    """``compute()``, remembered under ``key + (what,)`` (its exception too); ``key`` None:
    computed each time."""
    if key is None:
        return compute()
    full = (*key, what)
    if full not in _OUTPUTS:
        if len(_OUTPUTS) >= _OUTPUTS_MAX:
            _OUTPUTS.clear()
        try:
            _OUTPUTS[full] = (True, compute())
        except Exception as exc:  # noqa: BLE001 - raised again for every student alike
            _OUTPUTS[full] = (False, exc)
    ok, value = _OUTPUTS[full]
    if not ok:
        raise value
    return value


def _expected(spec: Exercise, case: Case, key: CaseKey | None = None) -> Any:
    fn = course().reference(spec.name)
    return _once(key, "reference", lambda: fn(*case.args, **case.kwargs))


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


def _number_mismatch(expected: float, enc: dict) -> tuple[str, str | None] | None:
    got = as_number(enc)
    if got is None:
        return "", ("returned_none" if enc.get("type") == "none" else "wrong_type")
    if math.isfinite(got) and abs(got - expected) < 1e-9 * max(1.0, abs(expected)):
        return None
    return "", None


def _raises_mismatch(exc_name: str, enc: dict) -> tuple[str, str | None] | None:
    if enc.get("type") == "exception" and exc_name in enc.get("mro", [enc.get("exc_type")]):
        return None
    return f"It should raise {exc_name}.", None


def _mismatch(spec: Exercise, case: Case, enc: dict, key: CaseKey | None = None
              ) -> tuple[str, str, str | None] | None:
    """None when right; else (expected text, detail, generic hint id)."""
    if case.raises:
        found = _raises_mismatch(case.raises, enc)
        return None if found is None else (f"{case.raises} raised", *found)
    if enc.get("type") == "exception":
        return _describe_expected(spec, case, key), "", "raised"
    if spec.kind == "kernel":
        target = torch.as_tensor(case.target, dtype=torch.float64)
        got = as_tensor(enc)
        if got is not None and got.numel() == target.numel():
            got = got.reshape(target.shape)
            if bool((got - target).abs().max() <= KERNEL_TOLERANCE):
                return None
            return (fmt_tensor(target) + f" (each weight within {KERNEL_TOLERANCE})",
                    "", None)
        return fmt_tensor(target), "", "wrong_shape" if got is not None else "wrong_type"
    expected = _expected(spec, case, key)
    if spec.kind == "number":
        found = _number_mismatch(float(expected), enc)
        return None if found is None else (fmt_number(float(expected)), *found)
    found = _tensor_mismatch(expected, enc)
    return None if found is None else (fmt_tensor(expected), *found)


def _describe_expected(spec: Exercise, case: Case, key: CaseKey | None = None) -> str:
    if spec.kind == "kernel":
        return fmt_tensor(torch.as_tensor(case.target))
    expected = _expected(spec, case, key)
    if isinstance(expected, torch.Tensor):
        return fmt_tensor(expected)
    return fmt_number(float(expected))


def _mistake_hint(spec: Exercise, case: Case, enc: dict, key: CaseKey | None = None
                  ) -> Mistake | None:
    """The known mistake whose output on ``case`` equals the student's, if any."""
    for mistake in course().mistakes(spec.name):
        try:
            fn = mistake_namespace(spec.name, mistake.id)[spec.answers[0]]
            # the same recording path as the student's
            wrong = _once(key, f"mistake {mistake.id}", lambda fn=fn: call(fn, case)["result"])
        except Exception:  # noqa: BLE001 - a broken corpus entry must not break judging
            continue
        if wrong.get("type") == "exception":
            if enc.get("type") == "exception" and enc.get("exc_type") == wrong.get("exc_type"):
                return mistake
            continue
        if spec.kind == "number":
            a, b = as_number(wrong), as_number(enc)
            if a is not None and b is not None and (a == b or (a != a and b != b)):
                return mistake
            continue
        a, b = as_tensor(wrong), as_tensor(enc)
        if wrong.get("type") == "none" and enc.get("type") == "none":
            return mistake
        if a is not None and b is not None and a.shape == b.shape and torch.allclose(
            a, b, rtol=RTOL, atol=ATOL, equal_nan=True
        ):
            return mistake
    return None


def _forbidden_verdict(spec: Exercise, record: dict, source: str | None) -> Verdict | None:
    if not spec.forbid_torch_ops:
        return None
    uses: list[str] = []
    if source:
        uses += [f.describe() for f in forbidden.scan(source, spec.answers[0])]
    for item in record.get("items", []):
        uses += [f"it called {name} while running" for name in item.get("forbidden", [])]
    if not uses:
        return None
    listed = "; ".join(dict.fromkeys(uses))
    return Verdict(
        False,
        f"{spec.title} must be written from scratch, but {listed}.\nHint: torch's own "
        "convolution, pooling and unfold (and numpy/scipy equivalents) are not allowed here, "
        "under any name; use loops or slicing with * and sum/max/mean.",
        "forbidden_api",
    )


def _judge_function(spec: Exercise, record: dict, source: str | None, seed: int) -> Verdict:
    cases = course().cases(spec.name, seed)
    items = record.get("items")
    if not cases:  # the registry refuses such a course; never let an empty check pass
        return Verdict(False, f"{spec.title}: this check has no cases; tell the instructor.",
                       "bad_record")
    if not isinstance(items, list) or len(items) != len(cases):
        return Verdict(False, f"{spec.title}: the check's record is incomplete; run the "
                       "whole notebook from the top and try again.", "bad_record")
    found = _forbidden_verdict(spec, record, source)
    if found:
        return found
    for k, (case, item) in enumerate(zip(cases, items, strict=True)):
        key = (spec.name, seed, k)
        enc = item.get("result") if isinstance(item, dict) else None
        if not isinstance(enc, dict):
            return Verdict(False, f"{spec.title}: unreadable record.", "bad_record")
        if enc.get("type") == "not_callable":
            return fail(spec, [f"{spec.answers[0]} should be a function, but it is "
                                f"{describe(enc)}."], "wrong_type", None)
        if enc.get("type") == "exception" and enc.get("exc_type") == "NotImplementedError":
            return fail(spec, [f"{spec.answers[0]} is not written yet (it raises "
                                "NotImplementedError)."], "not_written",
                         hint_for(spec, "not_written"))
        mismatch = _mismatch(spec, case, enc, key)
        if mismatch is None:
            continue
        expected, detail, generic = mismatch
        mistake = _mistake_hint(spec, case, enc, key)
        hint_id = mistake.id if mistake else generic
        hint = mistake.hint if mistake else hint_for(spec, generic)
        return fail(spec, [f"Input: {case.label}", f"Expected: {expected}",
                            f"Got: {describe(enc)}", detail], hint_id, hint)
    return Verdict(True)




def _values(record: dict) -> dict[str, dict]:
    return {item["label"]: item["result"] for item in record.get("items", [])
            if isinstance(item, dict) and isinstance(item.get("result"), dict)
            and isinstance(item.get("label"), str)}




def judge(name: str, record: dict, source: str | None = None,
          seed: int | None = None) -> Verdict:
    """Judge the record of check ``name``.

    Args:
        name: the check's name (a key of :data:`CHECKS`, the course's exercises).
        record: what :mod:`grader.runtime.probe` recorded in the student's process.
        source: the student's code; when given, the static forbidden-API scan runs on it.
            (The tamper scan is no verdict: its findings go to review, grader.engine.review.)
        seed: the cases' seed; ``None`` takes the one in the record (in-process judging).

    Returns:
        The verdict. A record that cannot be read is a failed verdict, never an exception.
    """
    spec = course().exercises.get(name)
    if spec is None:
        return Verdict(False, f"unknown check {name!r}", "bad_record")
    if not isinstance(record, dict):
        return Verdict(False, f"{spec.title}: unreadable record.", "bad_record")
    try:
        if spec.kind == "value":
            got = _values(record)
            if set(got) != set(spec.answers):
                return Verdict(False, f"{spec.title}: the check's record is incomplete.",
                               "bad_record")
            return course().judge_of(name)(spec, got)
        use_seed = seed if seed is not None else record.get("seed", 0)
        if not isinstance(use_seed, int) or not 0 <= use_seed < 2**31:
            return Verdict(False, f"{spec.title}: the check's record is damaged.", "bad_record")
        return _judge_function(spec, record, source, use_seed)
    except Exception as exc:  # noqa: BLE001 - never crash on a student's record
        return Verdict(False, f"{spec.title}: the answer could not be judged ({type(exc).__name__}:"
                       f" {exc}).", "bad_record")
