"""convgrade's grader: a sandboxed nbgrader grading engine and the course it grades.

Hidden test cells in the notebooks do ``from grader import check_<name>`` and call it with the
student's answer. ``check_<name>`` is made from the exercise's declaration by
:func:`grader.runtime.probe.check_function` and loaded lazily, so that ``import grader``
stays cheap (no torch) for the command line. Outside the worker (Jupyter, stock nbgrader) the
first check installs the in-process judge as the probe's sink; the worker installs its own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]
__version__ = "0.1.0"


def _judge_here(name: str, record: dict) -> None:
    """The in-process sink: judge the record here and raise AssertionError on a failure; a
    pass with a note (a right answer whose own dependency is wrong) prints the note."""
    from grader.checks import judge

    verdict = judge(name, record, source=record.get("source"))
    if not verdict.passed:
        raise AssertionError(verdict.message)
    if verdict.message:
        print(verdict.message)


def __getattr__(name: str) -> Any:
    if name.startswith("check_"):
        from grader.runtime import probe

        try:
            check = probe.check_function(name[len("check_"):])
        except KeyError:
            pass
        else:
            if not probe.has_sink():
                probe.set_sink(_judge_here)
            return check
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
