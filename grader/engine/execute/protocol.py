"""What the pool, the fork server and the child share: the job and result types, the frames.

Everything here is data, never pickles, and this module imports only the standard library: it
is staged into the sandbox with the server and the child (:mod:`grader.runtime.staging`).

* parent -> server, on the server's stdin: ``b"J <length>\\n"`` and the submission's JSON
  ``{"cells": [{"index", "source", "is_test", "grade_id"}]}`` (limits and seed are fixed per
  server and passed at start-up). The server reads the body into a bytearray, forks, lets the
  child parse it and zeroes its copy: one student's code never lives in the server's heap,
  which every later child inherits. Child output passes through one zeroed buffer likewise;
* child -> server, on a fresh pipe per child: JSON lines ``{"t": "start"|"out"|"rec"|"clear"|
  "done"|"stop"|"end", "cell": index, ...}``. The server does not parse them; it counts bytes
  (output cap), watches the clock (wall timeout), the private /tmp (file budget) and the exit
  status, and kills the child's process group and every leftover process when it ends;
* server -> parent, on the server's stdout: frames ``b"<kind> <length>\\n" + payload`` with kind
  ``R`` (ready, JSON), ``C`` (raw bytes from the child), ``E`` (end of submission, JSON status).
  Framing means a child cannot forge the server's status; the parent validates every child
  line, caps what it reads, and turns garbage into that submission's error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

__all__ = ["CellJob", "CellResult", "Limits", "RunResult"]


@dataclass
class CellJob:
    """One code cell to run, in notebook order."""

    index: int
    source: str
    is_test: bool = False
    grade_id: str | None = None


@dataclass
class CellResult:
    """What one cell did: nbformat v4 outputs, its error if it raised, and probe records."""

    index: int
    outputs: list[dict] = field(default_factory=list)
    error: dict | None = None
    records: list[tuple[str, dict]] = field(default_factory=list)


@dataclass
class RunResult:
    """One submission: the cells that ran, and a sentence when the submission was cut short."""

    cells: list[CellResult]
    error: str | None
    seconds: float


@dataclass
class Limits:
    """Resource limits for one submission (memory is added on top of the warm server's own)."""

    wall_seconds: float = 60.0
    cpu_seconds: int = 60
    memory_bytes: int = 2 * 2**30
    max_processes: int = 64
    max_output_bytes: int = 10 * 2**20
    max_file_bytes: int = 100 * 2**20


# Exit codes the child uses for conditions it can still report.
_EXIT_CHANNEL = 86  # the result channel broke (the student closed or replaced its fd)
_EXIT_SETUP = 87  # the child could not set itself up (rlimits, uid, working directory)
_FRAME_MAX = 64 * 2**20
#: The frame kinds the server sends: ready, child bytes, end of submission.
_FRAME_KINDS = (b"R", b"C", b"E")
#: A frame header (``kind length\\n``) is at most this long.
_HEADER_MAX = 32


def _write_frame(kind: bytes, payload: bytes | memoryview) -> None:
    parts = [memoryview(kind + b" " + str(len(payload)).encode() + b"\n"), memoryview(payload)]
    while parts:
        n = os.writev(1, parts)
        while parts and n >= len(parts[0]):
            n -= len(parts[0])
            parts.pop(0)
        if parts and n:
            parts[0] = parts[0][n:]


def _write_json_frame(kind: bytes, obj: dict) -> None:
    _write_frame(kind, json.dumps(obj).encode("ascii"))


