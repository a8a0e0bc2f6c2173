"""Grade-on-submit policies, per assignment, from ``c.GradeOnSubmit`` in nbgrader_config.py.

::

    c.GradeOnSubmit.feedback_before_deadline = "hints"   # or "score", "none"
    c.GradeOnSubmit.max_per_hour = 10                    # per student and hour; 0: no limit
    c.GradeOnSubmit.after_deadline = "grade"             # or "stop"
    c.GradeOnSubmit.assignments = {"padding_stride": {"max_per_hour": 3}}   # per assignment
    c.GradeOnSubmit.serve = ["channels_pooling"]         # default: every assignment in source/

``python -m grader serve --feedback/--max-per-hour/--after-deadline`` override the file for
every assignment the service serves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from traitlets import Dict, Enum, Float, Int, List, Unicode
from traitlets.config import Configurable

__all__ = ["GradeOnSubmit", "Policy", "FEEDBACK", "AFTER_DEADLINE", "policies"]

FEEDBACK = ("hints", "score", "none")
AFTER_DEADLINE = ("grade", "stop")


class GradeOnSubmit(Configurable):
    """Settings of ``python -m grader serve`` (``c.GradeOnSubmit.<name>``)."""

    feedback_before_deadline = Enum(
        FEEDBACK, default_value="hints",
        help="What a student's feedback shows before the deadline: 'hints' (the full "
        "feedback: each check's message with its hint), 'score' (the score of each test "
        "cell only) or 'none' (nothing is released before the deadline).",
    ).tag(config=True)
    max_per_hour = Int(
        10, help="Graded submissions per student and assignment in any hour; later ones wait "
        "in the queue, and the student's Fetch Feedback says when it will be graded. "
        "0: no limit.",
    ).tag(config=True)
    after_deadline = Enum(
        AFTER_DEADLINE, default_value="grade",
        help="After the assignment's due date (nbgrader's duedate in the gradebook): 'grade' "
        "(grade and record as late: nbgrader's late penalty applies) or 'stop' (do not grade; "
        "the student is told).",
    ).tag(config=True)
    assignments = Dict(
        value_trait=Dict(), default_value={},
        help="Per-assignment overrides of the three settings above, e.g. "
        "{'padding_stride': {'max_per_hour': 3}}.",
    ).tag(config=True)
    serve = List(
        Unicode(), default_value=[],
        help="The assignments the service grades (default: every assignment in source/).",
    ).tag(config=True)
    poll_interval = Float(
        0.3, help="Seconds between two looks at the exchange inbound.",
    ).tag(config=True)


@dataclass(frozen=True)
class Policy:
    """The policy of one assignment."""

    feedback_before_deadline: str = "hints"
    max_per_hour: int = 10
    after_deadline: str = "grade"


def policies(config: Any, assignments: list[str],
             overrides: dict[str, Any] | None = None) -> dict[str, Policy]:
    """Each assignment's :class:`Policy`: the defaults, ``c.GradeOnSubmit`` and its
    ``assignments`` entry, then ``overrides`` (the command line's, for every assignment).
    Raises ValueError for a value outside the allowed ones."""
    settings = GradeOnSubmit(config=config)
    base = Policy(settings.feedback_before_deadline, settings.max_per_hour,
                  settings.after_deadline)
    out = {}
    for name in assignments:
        extra = dict(settings.assignments.get(name) or {})
        extra.update({k: v for k, v in (overrides or {}).items() if v is not None})
        unknown = set(extra) - set(Policy.__dataclass_fields__)
        if unknown:
            raise ValueError(f"c.GradeOnSubmit.assignments[{name!r}]: unknown setting(s) "
                             f"{', '.join(sorted(unknown))}")
        policy = replace(base, **extra)
        _validate(name, policy)
        out[name] = policy
    return out


def _validate(name: str, policy: Policy) -> None:
    if policy.feedback_before_deadline not in FEEDBACK:
        raise ValueError(f"{name}: feedback_before_deadline must be one of "
                         f"{', '.join(FEEDBACK)}, not {policy.feedback_before_deadline!r}")
    if policy.after_deadline not in AFTER_DEADLINE:
        raise ValueError(f"{name}: after_deadline must be one of {', '.join(AFTER_DEADLINE)}, "
                         f"not {policy.after_deadline!r}")
    if not isinstance(policy.max_per_hour, int) or policy.max_per_hour < 0:
        raise ValueError(f"{name}: max_per_hour must be a whole number >= 0, "
                         f"not {policy.max_per_hour!r}")
