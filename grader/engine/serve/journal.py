"""The grading service's durable journal: one sqlite file beside the gradebook.

Every submission the service sees in the exchange inbound gets a row, keyed by its inbound
folder name (``<student>+<assignment>+<timestamp>+<random>``, unique per ``nbgrader submit``),
and moves through the states::

    queued --> grading --> recorded --> released
       |                       (feedback, a score page, an error page or a note is out)
       +--> superseded   a newer submission of the same student and assignment came first
       +--> closed       after the deadline with ``after_deadline = "stop"`` (told, not graded)
                         or held: named for one student, handed in by another (not graded)

``waiting`` is ``queued`` with a ``not_before`` time (the hourly limit). Each change is one
committed transaction (WAL, ``synchronous=FULL``), so a service killed at any point restarts
from the last state written: :meth:`Journal.recover` puts ``grading`` rows back in the queue
(re-grading replaces the student's rows in nbgrader's gradebook, so the submission is still
recorded once) and ``recorded`` rows are released again.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Journal", "Row", "STATES", "DONE_STATES"]

STATES = ("queued", "grading", "recorded", "released", "superseded", "closed")
DONE_STATES = ("released", "superseded", "closed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    student TEXT NOT NULL,
    assignment TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    landed REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    started REAL,
    recorded REAL,
    released REAL,
    graded_at REAL,
    score REAL,
    max_score REAL,
    late INTEGER NOT NULL DEFAULT 0,
    feedback TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS submissions_state ON submissions (state);
CREATE INDEX IF NOT EXISTS submissions_student ON submissions (student, assignment);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass
class Row:
    """One submission as the journal holds it."""

    id: str
    student: str
    assignment: str
    timestamp: str
    landed: float
    state: str
    attempts: int = 0
    not_before: float = 0.0
    started: float | None = None
    recorded: float | None = None
    released: float | None = None
    graded_at: float | None = None
    score: float | None = None
    max_score: float | None = None
    late: int = 0
    feedback: str | None = None
    error: str | None = None


class Journal:
    """The journal at ``path`` (created with its folder if missing); thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writing ------------------------------------------------------------------------------
    def add(self, sub_id: str, student: str, assignment: str, timestamp: str,
            landed: float) -> bool:
        """Queue a submission seen for the first time; False if the journal already has it."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO submissions (id, student, assignment, timestamp, landed,"
                " state) VALUES (?, ?, ?, ?, ?, 'queued')",
                (sub_id, student, assignment, timestamp, landed))
            return cur.rowcount == 1

    def update(self, sub_id: str, **fields: Any) -> None:
        """Set ``fields`` of one row in one transaction."""
        if not fields:
            return
        names = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE submissions SET {names} WHERE id = ?",
                       (*fields.values(), sub_id))

    def recover(self) -> dict[str, int]:
        """After a stop or a crash: ``grading`` rows go back to the queue (their attempt
        counted). Returns how many rows are in each unfinished state now."""
        with self._tx() as db:
            db.execute("UPDATE submissions SET state = 'queued' WHERE state = 'grading'")
        return {state: n for state, n in self.counts().items() if state not in DONE_STATES}

    def set_meta(self, key: str, value: str) -> None:
        """Store a service fact (pid, heartbeat, seed-free settings) for ``--status``."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- reading ------------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        with self._lock:
            return [Row(**dict(r)) for r in self._db.execute(sql, args).fetchall()]

    def get(self, sub_id: str) -> Row | None:
        """The row of ``sub_id``, or None."""
        rows = self._rows("SELECT * FROM submissions WHERE id = ?", (sub_id,))
        return rows[0] if rows else None

    def known(self) -> set[str]:
        """Every submission id the journal holds."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM submissions")}

    def students(self) -> set[str]:
        """Every student id the journal has seen a submission from."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT DISTINCT student FROM submissions")}

    def in_state(self, *states: str) -> list[Row]:
        """Rows in any of ``states``, oldest landing first."""
        marks = ", ".join("?" for _ in states)
        return self._rows(f"SELECT * FROM submissions WHERE state IN ({marks}) "
                          "ORDER BY landed, timestamp", tuple(states))

    def graded_since(self, student: str, assignment: str, since: float) -> list[float]:
        """When each of this student's submissions of ``assignment`` graded since ``since``
        started grading (the hourly limit counts these)."""
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT graded_at FROM submissions WHERE student = ? AND assignment = ? AND "
                "graded_at IS NOT NULL AND graded_at >= ? ORDER BY graded_at",
                (student, assignment, since))]

    def counts(self) -> dict[str, int]:
        """How many rows are in each state."""
        with self._lock:
            return {r[0]: r[1] for r in self._db.execute(
                "SELECT state, COUNT(*) FROM submissions GROUP BY state")}

    def meta(self) -> dict[str, str]:
        """The service facts stored with :meth:`set_meta`."""
        with self._lock:
            return {r[0]: r[1] for r in self._db.execute("SELECT key, value FROM meta")}

    def status(self, last: int = 200, errors: int = 5) -> dict[str, Any]:
        """Queue length, in flight, latency from landing to released (p50/p95 over the
        ``last`` released submissions) and the last ``errors`` errors."""
        counts = self.counts()
        now = time.time()
        latencies = [r.released - r.landed for r in self._rows(
            "SELECT * FROM submissions WHERE state = 'released' AND released IS NOT NULL "
            "ORDER BY released DESC LIMIT ?", (last,))]
        waiting = [r for r in self.in_state("queued") if r.not_before > now]
        failed = self._rows("SELECT * FROM submissions WHERE error IS NOT NULL "
                            "ORDER BY COALESCE(released, landed) DESC LIMIT ?", (errors,))
        return {
            "counts": counts,
            "queued": counts.get("queued", 0),
            "waiting": len(waiting),
            "in_flight": counts.get("grading", 0),
            "released": counts.get("released", 0),
            "latency": _percentiles(latencies),
            "errors": [{"id": r.id, "student": r.student, "assignment": r.assignment,
                        "error": r.error} for r in failed],
            "meta": self.meta(),
        }


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50, p95 and max of ``values`` (None when empty) and their count."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)
    if len(ordered) == 1:
        p50 = p95 = ordered[0]
    else:
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
        p50, p95 = cuts[49], cuts[94]
    return {"n": len(ordered), "p50": round(p50, 3), "p95": round(p95, 3),
            "max": round(ordered[-1], 3)}
