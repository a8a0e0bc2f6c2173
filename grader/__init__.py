"""convgrade's grader: reference solutions, checks and the autograding command line.

Hidden test cells in the notebooks do ``from grader import check_<name>`` and call it with the
student's answer. The ``check_*`` names live in :mod:`grader.probe` and are loaded lazily so
that ``import grader`` stays cheap (no torch) for the command line.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name.startswith("check_"):
        from grader import probe

        try:
            return getattr(probe, name)
        except AttributeError:
            pass
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
