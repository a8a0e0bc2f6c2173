"""The reference's and the known mistakes' outputs are computed once per (check, seed, case)
and run (grader.checks._OUTPUTS, issue 12): every verdict, message and hint is what judging
without that memo gives, for the first student and for every later one."""

from __future__ import annotations

from typing import Any

import pytest
from refs import MISTAKES, R

import grader
from grader import checks
from grader.checks import CHECKS, judge
from grader.mistakes import mistake_namespace

MISTAKE_CASES = [(check, m.id) for check, mistakes in MISTAKES.items() for m in mistakes]


def _record(records: dict, name: str, answers: dict[str, Any]) -> dict:
    records.clear()
    getattr(grader, f"check_{name}")(*[answers[a] for a in CHECKS[name].answers])
    return records[name]


@pytest.mark.parametrize("seed", [None, 7])  # the records' own seed, and another
def test_memo_gives_the_verdicts_of_judging_afresh(records: dict, seed: int | None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [(check, mistake_namespace(check, mid), MISTAKES[check]) for check, mid
             in MISTAKE_CASES]
    cases += [(name, {a: getattr(R, a) for a in CHECKS[name].answers}, []) for name in CHECKS]
    recorded = [(name, _record(records, name, answers)) for name, answers, _ in cases]
    monkeypatch.setattr(checks, "_OUTPUTS", {})
    first = [judge(name, rec, seed=seed) for name, rec in recorded]
    assert checks._OUTPUTS, "nothing was remembered"
    later = [judge(name, rec, seed=seed) for name, rec in recorded]
    monkeypatch.setattr(checks, "_once", lambda key, what, compute: compute())
    afresh = [judge(name, rec, seed=seed) for name, rec in recorded]
    assert first == afresh and later == afresh
    assert any(v.hint and not v.passed for v in afresh), "no mistake was recognised"


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_OUTPUTS", {})
    monkeypatch.setattr(checks, "_OUTPUTS_MAX", 3)
    for k in range(10):
        assert checks._once(("c", 0, k), "reference", lambda k=k: k) == k
    assert len(checks._OUTPUTS) <= 3
    with pytest.raises(ValueError):
        checks._once(("c", 0, 99), "reference", lambda: int("x"))
    with pytest.raises(ValueError):  # raised again, not computed again
        checks._once(("c", 0, 99), "reference", lambda: 0)
