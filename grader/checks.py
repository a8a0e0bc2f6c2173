"""Judge recorded answers against the reference: a verdict and a hint per check.

:func:`judge` takes what :mod:`grader.runtime.probe` recorded in the student's process (plain
JSON data) and compares it with the exercise's reference (from the course's registry,
:mod:`grader.registry`) on the same cases: numbers and raised exceptions itself, every other
kind of answer with the course's comparison for that kind (this course's tensors and learned
kernels: ``grader/course/compare.py``). No torch here. It runs in the grader's own process in the
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

from grader.engine import forbidden
from grader.records import Mismatch, Verdict, as_number, describe, fail, fmt_number
from grader.registry import course
from grader.runtime.declare import Case, Exercise, Mistake

__all__ = ["CheckSpec", "GENERIC_HINTS", "KIND_HINTS", "Verdict", "describe",
           "hint_for", "judge"]

#: A check's declaration (the name the judge and the tests have always used).
CheckSpec = Exercise

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


def _mismatch(spec: Exercise, case: Case, enc: dict, key: CaseKey | None = None) -> Mismatch:
    """None when right; else (expected text, detail, generic hint id)."""
    if case.raises:
        found = _raises_mismatch(case.raises, enc)
        return None if found is None else (f"{case.raises} raised", *found)
    if enc.get("type") == "exception":
        return _describe_expected(spec, case, key), "", "raised"
    if spec.kind == "number":
        expected = _expected(spec, case, key)
        found = _number_mismatch(float(expected), enc)
        return None if found is None else (fmt_number(float(expected)), *found)
    return course().comparison(spec.kind).mismatch(spec, case, enc,
                                                   lambda: _expected(spec, case, key))


def _describe_expected(spec: Exercise, case: Case, key: CaseKey | None = None) -> str:
    if spec.kind == "number":
        return fmt_number(float(_expected(spec, case, key)))
    return course().comparison(spec.kind).expected_text(spec, case,
                                                        lambda: _expected(spec, case, key))


def _same(spec: Exercise, wrong: dict, enc: dict) -> bool:
    """Whether a known mistake's recorded result is the student's answer."""
    if wrong.get("type") == "exception":
        return enc.get("type") == "exception" and enc.get("exc_type") == wrong.get("exc_type")
    if spec.kind == "number":
        a, b = as_number(wrong), as_number(enc)
        return a is not None and b is not None and (a == b or (a != a and b != b))
    return course().comparison(spec.kind).same(wrong, enc)


def _mistake_hint(spec: Exercise, case: Case, enc: dict, key: CaseKey | None = None
                  ) -> Mistake | None:
    """The known mistake whose output on ``case`` equals the student's, if any."""
    from grader.mistakes import mistake_namespace
    from grader.runtime.probe import call

    for mistake in course().mistakes(spec.name):
        try:
            fn = mistake_namespace(spec.name, mistake.id)[spec.answers[0]]
            # the same recording path as the student's
            wrong = _once(key, f"mistake {mistake.id}", lambda fn=fn: call(fn, case)["result"])
        except Exception:  # noqa: BLE001 - a broken corpus entry must not break judging
            continue
        if _same(spec, wrong, enc):
            return mistake
    return None


def _forbidden_verdict(spec: Exercise, record: dict, source: str | None) -> Verdict | None:
    rule = spec.forbidden
    if rule is None:
        return None
    uses: list[str] = []
    if source:
        uses += [f.describe() for f in forbidden.scan(source, spec.answers[0], rule=rule)]
    for item in record.get("items", []):
        uses += [f"it called {name} while running" for name in item.get("forbidden", [])]
    if not uses:
        return None
    listed = "; ".join(dict.fromkeys(uses))
    hint = f"\nHint: {rule.hint}" if rule.hint else ""
    return Verdict(False, f"{spec.title} {rule.requirement}, but {listed}.{hint}",
                   "forbidden_api")


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
    verdict = _judge_items(spec, cases, items, seed)
    lent = None if verdict.passed else _standin_run(spec, record, len(cases))
    if lent is None:
        return verdict
    replaced, lent_items = lent
    return _with_standins(spec, verdict, _judge_items(spec, cases, lent_items, seed), replaced,
                          _differ(spec, items, lent_items))


def _judge_items(spec: Exercise, cases: list[Case], items: list, seed: int) -> Verdict:
    """The verdict on one run's recorded results (``items``, one per case)."""
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


# ---------------------------------------------------------------------------------------------
# the run with trusted stand-ins for the answers an exercise uses (Exercise.uses)

#: Hint ids of failures that say little about the function itself: it raised, or it is not
#: written (which a dependency that raises NotImplementedError also looks like).
_OPAQUE = frozenset({"raised", "not_written"})


def _standin_run(spec: Exercise, record: dict, count: int) -> tuple[list[str], list] | None:
    """The names the probe replaced and the results of its run with the stand-ins, or None
    when the record has none, or one that cannot count: incomplete, replacing names the
    exercise does not use, or in which a forbidden-API tripwire saw a call."""
    lent = record.get("with_standins")
    if not spec.uses or not isinstance(lent, dict):
        return None
    replaced, items = lent.get("replaced"), lent.get("items")
    if not isinstance(replaced, list) or not replaced or not set(replaced) <= set(spec.uses):
        return None
    if not isinstance(items, list) or len(items) != count:
        return None
    if not all(isinstance(item, dict) and item.get("forbidden") == [] for item in items):
        return None
    return [str(name) for name in replaced], items


def _differ(spec: Exercise, items: list, lent_items: list) -> bool:
    """Whether the two runs' results differ on some case (within the comparison's tolerance)."""
    for mine, lent in zip(items, lent_items, strict=True):
        a = mine.get("result") if isinstance(mine, dict) else None
        b = lent.get("result") if isinstance(lent, dict) else None
        if not isinstance(a, dict) or not isinstance(b, dict) or not _same(spec, a, b):
            return True
    return False


def _listed(names: list[str]) -> str:
    """``names`` in a sentence: "corr2d", "corr2d_multi_in and corr2d"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _tests_of(spec: Exercise, names: list[str]) -> str:
    """Where the student reads about ``names``: the tests of the exercises they answer."""
    titles = {ex.answers[0]: ex.title for ex in course().exercises.values()
              if ex.assignment == spec.assignment and ex.calls_function}
    return "the test of " + " and of ".join(dict.fromkeys(titles.get(n, n) for n in names))


def _with_standins(spec: Exercise, verdict: Verdict, lent: Verdict, replaced: list[str],
                   differ: bool) -> Verdict:
    """The verdict of an exercise whose own run failed (``verdict``), given the run with
    stand-ins for the answers it uses (``lent``).

    Right with the stand-ins: full credit, with a note that the answers it builds on are not
    right yet. Wrong with them too: the own run's failure, unless the two runs differ and only
    the run with stand-ins points at this function's own mistake (a known mistake of it, or a
    wrong result where the own run only raised); then that one, saying so.
    """
    fn, deps, where = spec.answers[0], _listed(replaced), _tests_of(spec, replaced)
    one = len(replaced) == 1
    if lent.passed:
        return Verdict(True, f"{fn} is right; it only failed because it "
                       f"{'calls' if one else 'builds on'} your {deps}, "
                       f"{'which is not' if one else 'which are not all'} right yet: see {where}.")
    if not differ:
        return verdict
    own = {m.id for m in course().mistakes(spec.name)}
    if (lent.hint in own and verdict.hint not in own) or (
            verdict.hint in _OPAQUE and lent.hint not in _OPAQUE):
        return Verdict(False, f"{lent.message}\n(This is what {fn} returns when a right "
                       f"{deps} stand{'s' if one else ''} in for yours, which "
                       f"{'is' if one else 'are'} not right yet either: see {where}.)",
                       lent.hint)
    return Verdict(False, f"{verdict.message}\n(Its results also change when a right {deps} "
                   f"stand{'s' if one else ''} in for yours: see {where} too.)", verdict.hint)


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
