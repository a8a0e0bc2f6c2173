"""A right answer is not zeroed by a wrong answer it calls (Exercise.uses and the stand-ins).

``corr2d_multi_in`` calls the student's ``corr2d``; its check also runs it with a trusted
stand-in for ``corr2d`` (grader/course/channels_pooling/standins.py) and the judge gives full
credit, with a note, to a function that is right with the stand-in. These tests run the probe
and the judge in process (the ``records`` fixture), like tests/test_checks.py:

* right answers on a wrong dependency pass with the note, right answers on a right one pass
  as before, the student's names are put back whatever happens;
* every known mistake of the functions that use others fails with its own hint, whichever
  (non-forbidden) mistake the answers it uses make;
* nothing to exploit: a wrong use of a right dependency fails, the stand-ins are forbidden
  calls to the student's own code (and dead after the run), a stand-in run that saw a
  forbidden call or a forged one does not count, grading is deterministic.
"""

from __future__ import annotations

import copy
import textwrap
from typing import Any

import pytest
import torch
from refs import MISTAKES, R

import grader
from grader.checks import CHECKS, Verdict, judge
from grader.course.channels_pooling import cases, standins
from grader.engine import forbidden
from grader.registry import solution_source
from grader.runtime import probe

#: A corr2d whose every case but the notes' square one is wrong: the struggling demo
#: student's (s02-ben).
SWAPPED = next(m for m in MISTAKES["corr2d"] if m.id == "kernel_dims_swapped").source
#: The corr2d mistakes that are wrong answers (not forbidden calls).
WRONG_CORR2D = [m for m in MISTAKES["corr2d"] if not m.id.startswith("uses_")]
BLANK_CORR2D = "def corr2d(X, K):\n    raise NotImplementedError()\n"


def notebook(*sources: str) -> dict[str, Any]:
    """The namespace of a notebook whose cells are ``sources`` (as ``__main__`` runs them)."""
    namespace: dict[str, Any] = {"__name__": "__main__", "torch": torch}
    for source in sources:
        exec(compile(textwrap.dedent(source), "<cell>", "exec"), namespace)  # noqa: S102
    return namespace


def run(records: dict, name: str, namespace: dict[str, Any], *sources: str) -> Verdict:
    """Check ``name`` on the notebook's answer and judge it with the notebook's code."""
    records.clear()
    getattr(grader, f"check_{name}")(namespace[CHECKS[name].answers[0]])
    return judge(name, records[name], source=forbidden.join_cells(sources))


def right(name: str) -> str:
    return solution_source(name)


def mistake(check: str, mistake_id: str) -> str:
    return next(m for m in MISTAKES[check] if m.id == mistake_id).source


# ---------------------------------------------------------------------------------------------
# right answers


@pytest.mark.parametrize("wrong", [m.id for m in WRONG_CORR2D] + ["blank"])
def test_right_multi_in_on_a_wrong_corr2d_gets_full_credit_with_a_note(records: dict,
                                                                       wrong: str) -> None:
    corr2d = BLANK_CORR2D if wrong == "blank" else mistake("corr2d", wrong)
    for multi_in in (right("corr2d_multi_in"),
                     "def corr2d_multi_in(X, K):\n    return torch.stack(\n"
                     "        [corr2d(X[c], K[c]) for c in range(len(X))]).sum(0)\n"):
        ns = notebook(corr2d, multi_in)
        own = ns["corr2d"]
        assert not run(records, "corr2d", ns, corr2d).passed
        verdict = run(records, "corr2d_multi_in", ns, corr2d, multi_in)
        assert verdict.passed, verdict.message
        assert verdict.message == ("corr2d_multi_in is right; it only failed because it calls "
                                   "your corr2d, which is not right yet: see the test of "
                                   "corr2d(X, K).")
        assert ns["corr2d"] is own, "the student's corr2d is put back"
        assert records["corr2d_multi_in"]["with_standins"]["replaced"] == ["corr2d"]


@pytest.mark.parametrize("wrong_multi_in", [None, *(m.id for m in MISTAKES["corr2d_multi_in"])])
def test_right_multi_in_out_on_wrong_answers_gets_full_credit(records: dict,
                                                              wrong_multi_in: str | None) -> None:
    multi_in = (right("corr2d_multi_in") if wrong_multi_in is None
                else mistake("corr2d_multi_in", wrong_multi_in))
    ns = notebook(SWAPPED, multi_in, right("corr2d_multi_in_out"))
    verdict = run(records, "corr2d_multi_in_out", ns, SWAPPED, multi_in,
                  right("corr2d_multi_in_out"))
    assert verdict.passed, verdict.message
    assert "corr2d_multi_in_out is right" in verdict.message
    assert "corr2d_multi_in(X, K)" in verdict.message and "corr2d(X, K)" in verdict.message


def test_right_answers_on_right_ones_pass_as_before(records: dict) -> None:
    sources = [right(n) for n in ("corr2d", "corr2d_multi_in", "corr2d_multi_in_out")]
    ns = notebook(*sources)
    for name in ("corr2d", "corr2d_multi_in", "corr2d_multi_in_out"):
        assert run(records, name, ns, *sources) == Verdict(True)
    lent = records["corr2d_multi_in_out"]["with_standins"]
    assert lent["replaced"] == ["corr2d_multi_in", "corr2d"]
    assert all(item["forbidden"] == [] for item in lent["items"]), "the stand-ins trip nothing"


def test_ben_s_case(records: dict) -> None:
    """The demo's s02-ben: kernel_dims_swapped corr2d, right corr2d_multi_in."""
    ns = notebook(SWAPPED, right("corr2d_multi_in"))
    records.clear()
    grader.check_corr2d_multi_in(ns["corr2d_multi_in"])
    record = records["corr2d_multi_in"]
    old = {k: v for k, v in record.items() if k != "with_standins"}
    before = judge("corr2d_multi_in", old)
    assert not before.passed and before.hint == "raised", "judged as today without the run"
    assert "RuntimeError: The size of tensor a" in before.message
    assert judge("corr2d_multi_in", record).passed


def test_the_in_process_sink_prints_the_note(capsys: pytest.CaptureFixture[str]) -> None:
    probe.set_sink(None)
    ns = notebook(SWAPPED, right("corr2d_multi_in"))
    grader.check_corr2d_multi_in(ns["corr2d_multi_in"])  # passes: no AssertionError
    assert "corr2d_multi_in is right" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# wrong answers keep their own hints


def _multi_in_cases() -> list[tuple[str, str, str]]:
    out = []
    for m in MISTAKES["corr2d_multi_in"]:
        for dep in [None, *WRONG_CORR2D]:
            out.append(("corr2d_multi_in", m.id, dep.id if dep else "right"))
    for m in MISTAKES["corr2d_multi_in_out"]:
        for dep in ["right", *(d.id for d in WRONG_CORR2D)]:
            out.append(("corr2d_multi_in_out", m.id, dep))
            out.append(("corr2d_multi_in_out", m.id, f"{dep}+no_channel_sum"))
    return out


@pytest.mark.parametrize(("check", "mistake_id", "deps"), _multi_in_cases())
def test_each_mistake_fails_with_its_own_hint_whatever_its_dependencies(
        records: dict, check: str, mistake_id: str, deps: str) -> None:
    corr2d_id, _, multi_in_id = deps.partition("+")
    sources = [right("corr2d") if corr2d_id == "right" else mistake("corr2d", corr2d_id)]
    if check == "corr2d_multi_in_out":
        sources.append(mistake("corr2d_multi_in", multi_in_id) if multi_in_id
                       else right("corr2d_multi_in"))
    sources.append(mistake(check, mistake_id))
    verdict = run(records, check, notebook(*sources), *sources)
    assert not verdict.passed
    assert verdict.hint == mistake_id, verdict.message
    hint = next(m.hint for m in MISTAKES[check] if m.id == mistake_id)
    assert f"Hint: {hint}" in verdict.message
    assert "Expected" in verdict.message and "Got" in verdict.message


def test_own_mistake_is_shown_with_the_stand_in_when_only_that_run_shows_it(records: dict
                                                                           ) -> None:
    """channel_mean on an off-by-one corr2d: its own run only has a wrong shape."""
    sources = [mistake("corr2d", "output_off_by_one"), mistake("corr2d_multi_in", "channel_mean")]
    ns = notebook(*sources)
    verdict = run(records, "corr2d_multi_in", ns, *sources)
    assert verdict.hint == "channel_mean"
    assert "when a right corr2d stands in for yours" in verdict.message
    old = {k: v for k, v in records["corr2d_multi_in"].items() if k != "with_standins"}
    assert judge("corr2d_multi_in", old).hint == "wrong_shape", "the hint it had before"


def test_an_unknown_mistake_that_only_raised_on_its_own_shows_the_wrong_result(records: dict
                                                                               ) -> None:
    """Its own run raises in the student's corr2d; with the stand-in it returns a wrong
    result, which is what the message shows (no known mistake either way)."""
    corr2d = "def corr2d(X, K):\n    return X @ K\n"
    multi_in = ("def corr2d_multi_in(X, K):\n"
                "    return sum(corr2d(x, k) for x, k in zip(X, K)) + 1\n")
    ns = notebook(corr2d, multi_in)
    verdict = run(records, "corr2d_multi_in", ns, corr2d, multi_in)
    assert not verdict.passed and verdict.hint is None, verdict.message
    assert "Got: a tensor of shape (2, 2)" in verdict.message, verdict.message
    assert "when a right corr2d stands in for yours" in verdict.message
    old = {k: v for k, v in records["corr2d_multi_in"].items() if k != "with_standins"}
    assert judge("corr2d_multi_in", old).hint == "raised"


# ---------------------------------------------------------------------------------------------
# nothing to exploit


def test_a_wrong_use_of_a_right_dependency_still_fails(records: dict) -> None:
    """corr2d once on the whole 3-D input: wrong with any right corr2d, the stand-in too."""
    for corr2d in (right("corr2d"), SWAPPED):
        multi_in = "def corr2d_multi_in(X, K):\n    return corr2d(X, K)\n"
        verdict = run(records, "corr2d_multi_in", notebook(corr2d, multi_in), corr2d, multi_in)
        assert not verdict.passed, verdict.message


def test_using_a_stand_in_as_one_s_own_answer_is_a_forbidden_call(records: dict) -> None:
    code = ("from grader.course.channels_pooling.standins import corr2d as _c\n"
            "def corr2d(X, K):\n    return _c(X, K)\n")
    verdict = run(records, "corr2d", notebook(code), code)
    assert not verdict.passed and verdict.hint == "forbidden_api", verdict.message
    assert "torch.nn.functional.conv2d" in verdict.message
    multi = ("from grader.course.channels_pooling.standins import corr2d_multi_in as _m\n"
             "def corr2d_multi_in(X, K):\n    return _m(X, K)\n")
    ns = notebook(SWAPPED, multi)
    verdict = run(records, "corr2d_multi_in", ns, SWAPPED, multi)
    assert not verdict.passed and verdict.hint == "forbidden_api", verdict.message


def test_a_function_right_only_with_the_stand_ins_through_a_forbidden_call_fails(
        records: dict) -> None:
    """Wrong on its own, right with the stand-in through another stand-in: that run's
    tripwire saw the call, so it does not count."""
    code = ("from grader.course.channels_pooling import standins as _s\n"
            "def corr2d_multi_in(X, K):\n"
            "    if corr2d.__name__ == 'corr2d' and 'lent' in corr2d.__code__.co_name:\n"
            "        return _s.corr2d_multi_in(X, K)\n"
            "    return X.sum(0)[:-1, :-1]\n")
    ns = notebook(SWAPPED, code)
    verdict = run(records, "corr2d_multi_in", ns, SWAPPED, code)
    assert not verdict.passed, verdict.message
    assert records["corr2d_multi_in"]["with_standins"]["items"][0]["forbidden"]


def test_a_kept_stand_in_is_dead_after_the_run(records: dict) -> None:
    code = ("KEPT = []\n"
            "def corr2d_multi_in(X, K):\n"
            "    KEPT.append(corr2d)\n"
            "    return sum(corr2d(x, k) for x, k in zip(X, K))\n")
    ns = notebook(SWAPPED, code)
    assert run(records, "corr2d_multi_in", ns, SWAPPED, code).passed
    lent = [f for f in ns["KEPT"] if f is not ns["corr2d"]]
    assert lent, "the stand-in run lent one"
    with pytest.raises(RuntimeError, match="only lent"):
        lent[0](torch.ones(3, 3), torch.ones(2, 2))
    # so a later check cannot use it: corr2d_multi_in_out through a kept corr2d_multi_in fails
    later = ("def corr2d_multi_in_out(X, K):\n"
             "    return torch.stack([KEPT[-1](X[0], k[0]) for k in K])\n")
    exec(later, ns)  # noqa: S102
    assert not run(records, "corr2d_multi_in_out", ns, SWAPPED, code, later).passed


def test_the_names_are_put_back_whatever_happens() -> None:
    ns = notebook(SWAPPED, "def corr2d_multi_in(X, K):\n"
                           "    if corr2d.__code__.co_name == 'lent':\n"
                           "        raise SystemExit('gone')\n"
                           "    return corr2d(X[0], K[0])\n")
    own = ns["corr2d"]
    probe.set_sink(lambda name, record: None)
    try:
        with pytest.raises(SystemExit):
            grader.check_corr2d_multi_in(ns["corr2d_multi_in"])
    finally:
        probe.set_sink(None)
    assert ns["corr2d"] is own


def test_forbidden_corr2d_keeps_its_forbidden_verdicts(records: dict) -> None:
    corr2d = mistake("corr2d", "uses_torch_conv")
    ns = notebook(corr2d, right("corr2d_multi_in"))
    assert run(records, "corr2d", ns, corr2d).hint == "forbidden_api"
    verdict = run(records, "corr2d_multi_in", ns, corr2d, right("corr2d_multi_in"))
    assert verdict.hint == "forbidden_api", "it runs a forbidden call, as before"


def test_a_stand_in_run_that_tripped_or_is_damaged_does_not_count(records: dict) -> None:
    ns = notebook(SWAPPED, right("corr2d_multi_in"))
    run(records, "corr2d_multi_in", ns, SWAPPED)
    record = records["corr2d_multi_in"]
    assert judge("corr2d_multi_in", record).passed
    tripped = copy.deepcopy(record)
    tripped["with_standins"]["items"][0]["forbidden"] = ["torch.nn.functional.conv2d"]
    assert judge("corr2d_multi_in", tripped).hint == "raised"
    for damage in ({"replaced": ["pool2d"]}, {"items": []}, {"replaced": []}):
        forged = copy.deepcopy(record)
        forged["with_standins"].update(damage)
        assert not judge("corr2d_multi_in", forged).passed
    forged = copy.deepcopy(record)
    forged["with_standins"] = "yes"
    assert not judge("corr2d_multi_in", forged).passed
    # an exercise that uses nothing ignores the run
    ns = notebook(mistake("corr2d", "flipped_kernel"))
    run(records, "corr2d", ns)
    forged = {**records["corr2d"], "with_standins": record["with_standins"]}
    assert not judge("corr2d", forged).passed


def test_no_stand_in_run_when_the_globals_do_not_define_the_names(records: dict) -> None:
    ns = notebook("def corr2d_multi_in(X, K):\n    return X.sum(0)\n")
    run(records, "corr2d_multi_in", ns)
    assert "with_standins" not in records["corr2d_multi_in"]


def test_grading_is_deterministic(records: dict) -> None:
    ns = notebook(SWAPPED, right("corr2d_multi_in"))
    seen = []
    for _ in range(2):
        records.clear()
        grader.check_corr2d_multi_in(ns["corr2d_multi_in"])
        seen.append(copy.deepcopy(records["corr2d_multi_in"]))
    assert seen[0] == seen[1]


# ---------------------------------------------------------------------------------------------
# the stand-ins themselves


@pytest.mark.parametrize("name", sorted(standins.STANDINS))
def test_stand_ins_agree_with_the_reference(name: str) -> None:
    fn, ref = standins.STANDINS[name], getattr(R, name)
    for seed in range(3):
        for case in cases.CASES[name](seed):
            got, expected = fn(*case.args), ref(*case.args)
            assert got.dtype == expected.dtype == torch.float32
            assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(("name", "args"), [
    ("corr2d", (torch.ones(2, 4, 4), torch.ones(2, 2, 2))),
    ("corr2d", (torch.ones(4, 4), torch.ones(2, 2, 2))),
    ("corr2d", (torch.ones(2, 2), torch.ones(3, 3))),
    ("corr2d", ([[1.0, 2.0], [3.0, 4.0]], torch.ones(1, 1))),
    ("corr2d", (torch.nn.Parameter(torch.ones(3, 3)), torch.ones(2, 2))),
    ("corr2d_multi_in", (torch.ones(2, 4, 4), torch.ones(3, 2, 2))),
    ("corr2d_multi_in", (torch.ones(2, 4, 4), torch.ones(3, 2, 2, 2))),
    ("corr2d_multi_in", (torch.ones(4, 4), torch.ones(2, 2))),
])
def test_stand_ins_refuse_what_a_right_answer_would_not_compute(name: str, args: tuple) -> None:
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        standins.STANDINS[name](*args)


def test_stand_ins_run_no_code_of_the_caller() -> None:
    from torch.overrides import TorchFunctionMode

    calls = []

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            calls.append(func)
            return func(*args, **(kwargs or {}))

    X, K = torch.ones(3, 3), torch.ones(2, 2)
    with Spy():
        standins.corr2d(X, K)
    assert calls == []


def test_every_use_has_a_stand_in() -> None:
    from dataclasses import replace

    from grader.registry import CourseError, _validate_uses

    spec = CHECKS["corr2d_multi_in"]
    assert spec.uses == ("corr2d",) and CHECKS["corr2d_multi_in_out"].uses == (
        "corr2d_multi_in", "corr2d")
    with pytest.raises(CourseError, match="no stand-in"):
        _validate_uses(spec, R, {})
    with pytest.raises(CourseError, match="no other reference"):
        _validate_uses(replace(spec, uses=("corr2d_multi_in",)), R, standins.STANDINS)
