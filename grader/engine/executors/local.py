"""The local executor: the warm sandboxed :class:`WorkerPool` of this machine (the default).

This module is the one place of :mod:`grader.engine.executors` that imports the worker's types
(``WorkerPool``, ``CellJob``, ``CellResult``, ``RunResult``, ``Limits``); the Dask executor
takes them from here. It also turns those types into plain data and back (what travels to a
Dask worker and comes back from it) and fingerprints what a worker stages, so that a worker
whose course or runtime differs from the grading machine's is refused instead of grading with
other cases than the judge's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader.engine import sandbox as sandbox_mod
from grader.engine import worker as worker_mod
from grader.engine.worker import CellJob, CellResult, Limits, RunResult, WorkerPool

__all__ = [
    "CellJob",
    "CellResult",
    "Limits",
    "RunResult",
    "WorkerPool",
    "cells_from_data",
    "cells_to_data",
    "limits_for",
    "local_pool_factory",
    "run_from_data",
    "run_to_data",
    "stage_fingerprint",
]


def limits_for(timeout: float | None) -> Limits:
    """The per-submission limits of a run: the defaults, with ``timeout`` as the wall time."""
    limits = Limits()
    if timeout:
        limits = Limits(wall_seconds=float(timeout),
                        cpu_seconds=max(limits.cpu_seconds, int(timeout) + 1))
    return limits


def local_pool_factory(jobs: int | None, sandbox: bool, timeout: float | None) -> WorkerPool:
    """The default pool factory: ``jobs`` warm sandboxed servers on this machine (what
    :func:`grader.engine.autograde.autograde` uses when it is given no ``pool_factory``)."""
    return WorkerPool(jobs, sandbox=sandbox, limits=limits_for(timeout))


# -- plain data for the wire ----------------------------------------------------------------------


def cells_to_data(cells: list[Any]) -> list[dict[str, Any]]:
    """A submission's :class:`CellJob` list as plain dicts (JSON-compatible)."""
    return [{"index": int(c.index), "source": str(c.source), "is_test": bool(c.is_test),
             "grade_id": c.grade_id} for c in cells]


def cells_from_data(data: list[dict[str, Any]]) -> list[CellJob]:
    """The inverse of :func:`cells_to_data`."""
    return [CellJob(index=int(d["index"]), source=str(d["source"]),
                    is_test=bool(d.get("is_test", False)), grade_id=d.get("grade_id"))
            for d in data]


def run_to_data(run: RunResult) -> dict[str, Any]:
    """A :class:`RunResult` as plain dicts and lists (records become ``[name, record]``)."""
    data = asdict(run)
    for cell in data["cells"]:
        cell["records"] = [[name, record] for name, record in cell["records"]]
    return data


def run_from_data(data: dict[str, Any]) -> RunResult:
    """The inverse of :func:`run_to_data`: the same :class:`RunResult` the worker made."""
    cells = [CellResult(index=int(c["index"]), outputs=list(c.get("outputs") or []),
                        error=c.get("error"),
                        records=[(str(name), record) for name, record in c.get("records") or []])
             for c in data.get("cells") or []]
    return RunResult(cells=cells, error=data.get("error"), seconds=float(data.get("seconds", 0)))


# -- what a worker must share with the grading machine --------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def stage_fingerprint(package_dir: Path | None = None) -> str:
    """A digest of what decides a run's records: every file the sandbox stages (the runtime,
    each assignment's declarations and cases, the server program), Python's version and the
    installed torch and numpy. Two machines with the same fingerprint draw the same cases
    from the same seed and run them the same way."""
    package = (Path(package_dir) if package_dir is not None
               else Path(worker_mod.__file__).resolve().parents[1])
    digest = hashlib.sha256()
    for name in sorted(sandbox_mod.worker_modules(package)):
        digest.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
    digest.update(Path(worker_mod.__file__).read_bytes())
    digest.update(f"python {sys.version_info[0]}.{sys.version_info[1]}; torch "
                  f"{_version('torch')}; numpy {_version('numpy')}".encode())
    return digest.hexdigest()[:16]
