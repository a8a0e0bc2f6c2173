"""Grade on submit: watch the exchange inbound, collect, grade, record, release feedback.

:class:`Service` is the whole job behind ``python -m grader serve``. One pass
(:meth:`Service.step`):

1. **watch**: list ``<exchange>/<course_id>/inbound/`` (what ``nbgrader submit`` and the
   Assignment List's Submit write: ``<student>+<assignment>+<timestamp>+<random>/``). A
   folder has landed once its ``submission_secret.txt`` (the last file submit writes) is
   complete; its landing time is that file's mtime. New ones are queued in the journal.
2. **policies** (:mod:`grader.engine.serve.policy`): of a student's queued submissions of an
   assignment only the newest is graded, older ones are ``superseded`` (they stay in the
   exchange's history); after the due date ``stop`` closes it; the hourly limit makes it wait.
   Each of these tells the student with a short page that Fetch Feedback shows in place of
   the feedback of that submission (later replaced by the feedback itself).
3. **collect** the newest submission into ``submitted/<student>/<assignment>/`` the way
   ``nbgrader collect --update`` does (the folder with its ``timestamp.txt``), then **grade**
   a batch with :func:`grader.engine.autograde.autograde` on **one warm pool kept for the
   whole service** (:func:`make_pool`), which records in the course's gradebook.
4. **feedback**: nbgrader's ``GenerateFeedback`` converter in process (the course's own
   feedback preprocessors and exporter: hidden tests cleared, sanitized, CSP), or the
   score-only page, then **release** it the way ``nbgrader release_feedback`` does:
   ``<exchange>/<course_id>/feedback/<md5(secret + notebook id)>.html``, written atomically,
   where ``nbgrader fetch_feedback`` and the Assignment List's Fetch Feedback look.

Every step is a state in the journal (:mod:`grader.engine.serve.journal`), so a restart
resumes what was not released, and a submission killed mid-grade is graded again and
recorded once (nbgrader replaces a student's rows for an assignment).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import html
import logging
import os
import re
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.engine import gradebook as gbmod
from grader.engine import settings
from grader.engine.serve.journal import Journal, Row
from grader.engine.serve.policy import GradeOnSubmit, Policy, policies

__all__ = ["Service", "ServeError", "KeptPool", "make_pool", "journal_path", "inbound_folders",
           "Landed"]

log = logging.getLogger("grader.serve")

PoolFactory = Callable[[int | None, bool, float | None], Any]
#: a submission whose grading failed this often (the service died or the engine raised each
#: time) gets an error page instead of another try
MAX_ATTEMPTS = 3
#: at most this many submissions per call of the engine (one batch): big enough to keep a
#: deadline rush moving, small enough that the first feedback of a burst is out soon
BATCH = 16


#: the student ids the service collects (a name from the inbound becomes a folder name)
_SAFE_ID = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_.@+-]*")


class ServeError(RuntimeError):
    """The service cannot start (no exchange, another service running, bad settings)."""


def journal_path(course_root: str | os.PathLike[str]) -> Path:
    """Where the journal of the course's service lives: ``<course>/.convgrade/serve.sqlite``."""
    return Path(course_root) / ".convgrade" / "serve.sqlite"


# ---------------------------------------------------------------------------------------------
# the pool: one for the whole service


class KeptPool:
    """A worker pool kept warm for the whole service, lent to each engine run.

    :func:`grader.engine.autograde.autograde` sets the run's seed and preloads on the pool and
    closes it at the end of the run: here those are fixed once (a worker server keeps the seed
    it started with, so every run must use the service's seed) and :meth:`close` does nothing;
    :meth:`shutdown` closes the real pool."""

    _FIXED = ("seed", "preload", "preload_probe", "preload_matplotlib")

    def __init__(self, pool: Any) -> None:
        object.__setattr__(self, "_pool", pool)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._FIXED:
            if name == "seed" and hasattr(self._pool, "seed") and value != self._pool.seed:
                raise RuntimeError("a run asked the service's pool for another seed than the "
                                   "one its servers started with")
            return
        setattr(self._pool, name, value)

    def close(self) -> None:
        """Nothing: the pool outlives the run."""

    def shutdown(self) -> None:
        """Close the real pool."""
        self._pool.close()


def make_pool(pool_factory: PoolFactory | None, jobs: int | None, sandbox: bool,
              timeout: float | None, seed: int, course_root: Path,
              assignments: list[str]) -> KeptPool:
    """The service's one pool: ``pool_factory(jobs, sandbox, timeout)`` (default: the engine's
    sandboxed :class:`~grader.engine.execute.pool.WorkerPool`), given the service's seed and
    what the served assignments preload, with every server started in the background."""
    from grader.engine.autograde import _default_pool_factory, configure_pool

    pool = (pool_factory or _default_pool_factory)(jobs, sandbox, timeout)
    sources = [course_root / "source" / a for a in assignments]
    configure_pool(pool, seed, course_root, sources,
                   any(settings.has_hidden_checks(s) for s in sources))
    if hasattr(pool, "warm"):
        pool.warm(getattr(pool, "jobs", 1))
    return KeptPool(pool)


# ---------------------------------------------------------------------------------------------
# watching the inbound


@dataclass
class Landed:
    """A complete submission folder in the exchange inbound."""

    id: str
    path: Path
    student: str
    assignment: str
    timestamp: str
    landed: float


def _parse_name(name: str) -> tuple[str, str, str] | None:
    """(student, assignment, timestamp) of an inbound folder name, as ``nbgrader collect``
    reads it; None for a name that is not a submission."""
    parts = name.rsplit("+", 3)
    if len(parts) == 4:
        student, assignment, timestamp = parts[0], parts[1], parts[2]
    elif len(parts) == 3:
        student, assignment, timestamp = parts
    else:
        return None
    if not student or not assignment or not timestamp or name.startswith("."):
        return None
    if not _SAFE_ID.fullmatch(student) or student in (".", ".."):
        return None  # a folder name no nbgrader submit writes: it would leave submitted/
    return student, assignment, timestamp


def inbound_folders(inbound: Path, assignments: set[str],
                    known: set[str] | None = None) -> list[Landed]:
    """The complete submissions of ``assignments`` in ``inbound`` not in ``known``.

    ``nbgrader submit`` copies the files, writes ``timestamp.txt`` and then
    ``submission_secret.txt`` (128 hex digits) and finally opens the folder's mode: a folder
    whose secret is not all there yet is left for the next look."""
    out = []
    try:
        names = os.listdir(inbound)
    except FileNotFoundError:
        return []
    for name in names:
        if known is not None and name in known:
            continue
        parsed = _parse_name(name)
        if parsed is None or parsed[1] not in assignments:
            continue
        secret = inbound / name / "submission_secret.txt"
        try:
            st = secret.stat()
            text = secret.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if len(text) < 128 and time.time() - st.st_mtime < 2.0:
            continue  # still being written (an older nbgrader writes a shorter secret)
        if not text:
            continue
        out.append(Landed(name, inbound / name, *parsed, landed=min(st.st_mtime, time.time())))
    return sorted(out, key=lambda s: (s.landed, s.timestamp))


def other_student_owner(path: Path, student: str, students: set[str]) -> str | None:
    """The owner of the inbound folder ``path`` when that owner is another of the course's
    ``students`` than the one the folder is named for; else None.

    ``nbgrader submit --student ID`` lets anyone name a submission after anyone, and the
    service makes the latest one the submission of record, so a folder owned by *another
    student* is someone overwriting a classmate's grade. Every other owner passes: the
    student themself, an instructor or root copying files, one shared account for the whole
    hub (DockerSpawner's ``jovyan``), an id with no passwd entry."""
    try:
        import pwd

        owner = pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return None
    return owner if owner != student and owner in students else None


def _utc(timestamp: str) -> dt.datetime | None:
    from nbgrader.utils import parse_utc

    try:
        value = parse_utc(timestamp)
    except (ValueError, OverflowError, TypeError):
        return None
    return value.replace(tzinfo=None) if value.tzinfo else value


# ---------------------------------------------------------------------------------------------
# pages the student sees with Fetch Feedback


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:.2em .6em;text-align:left}}
</style></head><body><h1>{title}</h1>
{body}
</body></html>
"""


def note_page(title: str, paragraphs: list[str], table: list[tuple[str, str]] | None = None
              ) -> str:
    """A small self-contained page (escaped, with a Content-Security-Policy)."""
    from grader.engine.feedback import add_content_security_policy

    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    if table:
        body += "\n<table><tr><th>test</th><th>points</th></tr>\n" + "\n".join(
            f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in table
        ) + "\n</table>"
    return add_content_security_policy(_PAGE.format(title=html.escape(title), body=body))


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:g}"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------------------------
# the service


class Service:
    """The grading service of one course (see the module docstring).

    ``assignments``: the ones served (default ``c.GradeOnSubmit.serve``, else every assignment
    in ``source/``); ``exchange``: the exchange root (default the course's ``Exchange.root``);
    ``overrides``: policy settings that override the configuration for every assignment;
    ``pool_factory``/``judge``: as for :func:`~grader.engine.autograde.autograde` (tests and
    other executors). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, course: str | os.PathLike[str] | None = None, *,
                 assignments: list[str] | None = None,
                 exchange: str | os.PathLike[str] | None = None,
                 jobs: int | None = None, sandbox: bool = True, timeout: float | None = None,
                 overrides: dict[str, Any] | None = None,
                 pool_factory: PoolFactory | None = None,
                 judge: Callable[..., Any] | None = None,
                 batch: int = BATCH, poll_interval: float | None = None,
                 seed: int | None = None, feedback_process: bool = True) -> None:
        self.course_root = gbmod.find_course_root(course)
        self.config = gbmod.load_config(self.course_root)
        cfg = GradeOnSubmit(config=self.config)
        available = sorted(d.name for d in (self.course_root / "source").iterdir()
                           if d.is_dir() and any(d.glob("*.ipynb"))) \
            if (self.course_root / "source").is_dir() else []
        self.assignments = list(assignments or cfg.serve or available)
        missing = [a for a in self.assignments if a not in available]
        if missing or not self.assignments:
            raise ServeError(f"no source notebook for assignment(s) {', '.join(missing)} in "
                             f"{self.course_root / 'source'}" if missing else
                             f"no assignments to serve in {self.course_root / 'source'}")
        try:
            self.policies = policies(self.config, self.assignments, overrides)
        except ValueError as exc:
            raise ServeError(str(exc)) from exc
        self.course_id = str(self.config.get("CourseDirectory", {}).get("course_id", "") or "")
        if not self.course_id:
            raise ServeError("nbgrader_config.py sets no CourseDirectory.course_id")
        root = exchange or self.config.get("Exchange", {}).get("root") or \
            "/srv/nbgrader/exchange"
        self.exchange = Path(root)
        self.inbound = self.exchange / self.course_id / "inbound"
        self.outbound_feedback = self.exchange / self.course_id / "feedback"
        if not self.inbound.is_dir():
            raise ServeError(f"no exchange inbound at {self.inbound} (release an assignment "
                             "first, or pass --exchange)")
        self.jobs, self.sandbox, self.timeout = jobs, sandbox, timeout
        self.pool_factory, self.judge = pool_factory, judge
        self.batch = max(1, int(batch))
        self.poll_interval = float(poll_interval if poll_interval is not None
                                   else cfg.poll_interval)
        #: the checks' seed for the whole service (a worker server keeps the seed it started
        #: with): secret and fresh per start unless given
        self.seed = secrets.randbelow(2**31) if seed is None else int(seed)
        self.stop_event = threading.Event()
        jpath = journal_path(self.course_root)
        jpath.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(jpath.with_suffix(".lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            raise ServeError(f"another grading service runs for {self.course_root} "
                             f"({jpath.with_suffix('.lock')} is locked)") from exc
        self.journal = Journal(jpath)
        self._pool: KeptPool | None = None
        #: the thread of :meth:`_preload`, joined before the first grading (one thread at a
        #: time imports a module tree: see autograde.start_judge_import)
        self._imports: threading.Thread | None = None
        self._known: set[str] = set()
        self._roster: tuple[float, set[str]] = (float("-inf"), set())
        self._duedates: dict[str, tuple[float, dt.datetime | None]] = {}
        self._feedback_converters: dict[str, Any] = {}
        self._use_process = feedback_process
        self._maker: FeedbackProcess | None = None
        self._pending: dict[str, tuple[Row, Any]] = {}

    # -- life cycle -----------------------------------------------------------------------------
    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pool and release the journal and the lock."""
        if self._maker is not None:
            with contextlib.suppress(Exception):
                self._maker.close()
            self._maker = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self._pool.shutdown()
            self._pool = None
        with contextlib.suppress(Exception):
            self.journal.set_meta("stopped", str(time.time()))
        self.journal.close()
        with contextlib.suppress(Exception):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    def start(self) -> dict[str, int]:
        """Start the pool and resume what the journal left unfinished; returns what was."""
        resumed = self.journal.recover()
        self._known = self.journal.known()
        self.journal.set_meta("pid", str(os.getpid()))
        self.journal.set_meta("started", str(time.time()))
        self.journal.set_meta("assignments", ",".join(self.assignments))
        self.journal.set_meta("exchange", str(self.exchange))
        if self._use_process and self._maker is None:
            self._maker = FeedbackProcess(self.course_root)
        if self._pool is None:
            self._imports = threading.Thread(target=self._preload,
                                             name="convgrade-serve-imports", daemon=True)
            self._imports.start()
            self._pool = make_pool(self.pool_factory, self.jobs, self.sandbox, self.timeout,
                                   self.seed, self.course_root, self.assignments)
        if resumed:
            log.info("resuming %s", ", ".join(f"{n} {s}" for s, n in sorted(resumed.items())))
        return resumed

    def _preload(self) -> None:
        """Import what the first submission would wait for (nbgrader's converters, the
        judge and torch where hidden tests call ``grader`` checks) while the pool warms."""
        with contextlib.suppress(Exception):
            import nbgrader.converters  # noqa: F401

            if self.judge is None and any(settings.has_hidden_checks(
                    self.course_root / "source" / a) for a in self.assignments):
                from grader.engine.autograde import start_judge_import

                start_judge_import()

    def run(self, once: bool = False) -> None:
        """Poll and grade until :attr:`stop_event` is set (``once``: until nothing is left
        that can be graded now)."""
        self.start()
        log.info("serving %s from %s (journal %s)", ", ".join(self.assignments), self.inbound,
                 self.journal.path)
        beat = 0.0
        while not self.stop_event.is_set():
            worked = self.step()
            if time.monotonic() - beat > 2.0:  # for --status: the service is alive
                self.journal.set_meta("heartbeat", str(time.time()))
                beat = time.monotonic()
            if once and not worked and not self._pending and not self._ready_soon():
                break
            if not worked:
                self.stop_event.wait(self.poll_interval)
        deadline = time.monotonic() + 120
        while self._pending and time.monotonic() < deadline:  # feedback under way
            self._collect_feedback()
            time.sleep(0.05)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the service after the batch in progress (a second one
        stops it at once; the journal resumes that batch on the next start)."""

        def handler(signum: int, frame: Any) -> None:
            if self.stop_event.is_set():
                raise KeyboardInterrupt
            log.info("stopping (signal %d): finishing the batch in progress", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- one pass -------------------------------------------------------------------------------
    def scan(self) -> int:
        """Queue the submissions that landed since the last look; returns how many."""
        new = inbound_folders(self.inbound, set(self.assignments), self._known)
        students = self._students(new) if new else set()
        for sub in new:
            if self.journal.add(sub.id, sub.student, sub.assignment, sub.timestamp, sub.landed):
                log.info("landed %s %s (%s)", sub.student, sub.assignment, sub.timestamp)
                owner = other_student_owner(sub.path, sub.student, students)
                if owner is not None:
                    self._hold(sub, owner)
            self._known.add(sub.id)
        return len(new)

    def _students(self, new: list[Landed]) -> set[str]:
        """Every student id the service knows of: the journal's, this look's and the
        gradebook's roster (read at most every 30 s)."""
        known = self.journal.students() | {sub.student for sub in new}
        stamp, roster = self._roster
        if time.monotonic() - stamp > 30.0:
            roster = set()
            url = gbmod.db_url_for(self.config)
            if not url.startswith("sqlite:///") or Path(url[len("sqlite:///"):]).exists():
                from nbgrader.api import Gradebook

                with contextlib.suppress(Exception), gbmod.venv_on_path(), \
                        Gradebook(url, self.course_id) as gb:
                    roster = {s.id for s in gb.students}
            self._roster = (time.monotonic(), roster)
        return known | roster

    def _hold(self, sub: Landed, owner: str) -> None:
        """Keep a submission named for one student but owned by another out of the
        gradebook, for the instructor to decide (``--status`` lists it with the errors)."""
        why = (f"held for the instructor's review: named for {sub.student} but its folder "
               f"is owned by another student, {owner}")
        self.journal.update(sub.id, state="closed", released=time.time(), feedback="held",
                            error=why)
        row = self.journal.get(sub.id)
        if row is not None:
            self._publish(row, note_page("Held for your instructor's review", [
                f"This submission of {sub.assignment} ({sub.timestamp}) is named for "
                f"{sub.student} but was handed in by another account. It was received and "
                "kept, but it is not graded automatically; your instructor decides what "
                "happens to it."]))
        log.warning("held %s %s (%s): %s", sub.student, sub.assignment, sub.timestamp, why)

    def step(self) -> bool:
        """One pass: scan, apply the policies, grade one batch, release; True if anything
        was done."""
        worked = self.scan() > 0
        worked |= self._collect_feedback()
        worked |= self._release_recorded()
        worked |= self._release_withheld()
        ready = self._ready()
        if ready:
            by_assignment: dict[str, list[Row]] = {}
            for row in ready:
                by_assignment.setdefault(row.assignment, []).append(row)
            assignment = min(by_assignment, key=lambda a: by_assignment[a][0].landed)
            self._grade(assignment, by_assignment[assignment][: self.batch])
            worked = True
        return worked

    def _ready_soon(self) -> bool:
        """Whether something queued can be graded now (``--once`` waits for nothing else)."""
        now = time.time()
        return any(r.not_before <= now for r in self.journal.in_state("queued"))

    def _release_recorded(self) -> bool:
        """Release what was recorded but not released (a restart after a kill)."""
        rows = [r for r in self.journal.in_state("recorded") if r.id not in self._pending]
        for row in rows:
            self._release(row, None)
        return bool(rows)

    def _collect_feedback(self) -> bool:
        """Release the feedback the feedback process has finished."""
        done = [(sid, row, fut) for sid, (row, fut) in self._pending.items() if fut.done()]
        for sid, row, fut in done:
            del self._pending[sid]
            try:
                pages = fut.result()
            except Exception as exc:  # the process failed: make it here instead
                log.warning("the feedback process failed for %s (%s): rendering here",
                            row.id, exc)
                self._restart_maker()
                try:
                    pages = self._feedback_pages(row)
                except Exception as exc2:
                    log.exception("feedback for %s %s failed", row.student, row.assignment)
                    self._fail(row, "the feedback could not be made: "
                               f"{type(exc2).__name__}: {exc2}", final=True)
                    continue
            self._finish(row, pages, "hints")
        return bool(done)

    def _restart_maker(self) -> None:
        if self._maker is not None:
            with contextlib.suppress(Exception):
                self._maker.close()
            self._maker = FeedbackProcess(self.course_root)

    def _finish(self, row: Row, pages: dict[str, str], what: str) -> None:
        for notebook_id, page in pages.items():
            self._publish(row, page, only=notebook_id)
        self.journal.update(row.id, state="released", released=time.time(), feedback=what)
        self._log_released(self.journal.get(row.id) or row, None)

    def _release_withheld(self) -> bool:
        """Once the deadline has passed, release the full feedback that ``none`` withheld
        (the latest submission of each student; an earlier one gets nothing more)."""
        rows = [r for r in self.journal.in_state("released") if r.feedback == "withheld"]
        if not rows:
            return False
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        latest: dict[tuple[str, str], Row] = {}
        for r in self.journal.in_state("released"):
            key = (r.student, r.assignment)
            if r.error is None and (key not in latest or (_utc(r.timestamp) or dt.datetime.min)
                                    > (_utc(latest[key].timestamp) or dt.datetime.min)):
                latest[key] = r
        worked = False
        for row in rows:
            due = self.duedate(row.assignment)
            if due is None or now <= due:
                continue
            worked = True
            newest = latest.get((row.student, row.assignment))
            if newest is None or newest.id != row.id:
                self.journal.update(row.id, feedback="superseded")
                continue
            try:
                for notebook_id, page in self._feedback_pages(row).items():
                    self._publish(row, page, only=notebook_id)
            except Exception as exc:
                log.exception("feedback for %s %s failed", row.student, row.assignment)
                self.journal.update(row.id, feedback="error",
                                    error=f"the feedback could not be made: {exc}")
                continue
            self.journal.update(row.id, feedback="hints")
            log.info("released withheld feedback %s %s (%s): the deadline has passed",
                     row.student, row.assignment, row.timestamp)
        return worked

    # -- policies -------------------------------------------------------------------------------
    def duedate(self, assignment: str) -> dt.datetime | None:
        """The assignment's due date in the gradebook (naive UTC), read at most every 5 s."""
        cached = self._duedates.get(assignment)
        if cached is not None and time.monotonic() - cached[0] < 5.0:
            return cached[1]
        due = None
        url = gbmod.db_url_for(self.config)
        if not url.startswith("sqlite:///") or Path(url[len("sqlite:///"):]).exists():
            from nbgrader.api import Gradebook, MissingEntry

            with contextlib.suppress(MissingEntry), gbmod.venv_on_path(), \
                    Gradebook(url, self.course_id) as gb:
                due = gb.find_assignment(assignment).duedate
        self._duedates[assignment] = (time.monotonic(), due)
        return due

    def _late(self, row: Row) -> bool:
        due = self.duedate(row.assignment)
        when = _utc(row.timestamp)
        return due is not None and when is not None and when > due

    def _ready(self) -> list[Row]:
        """The queued submissions to grade now, after superseding, closing and limiting."""
        now = time.time()
        queued = self.journal.in_state("queued")
        newest: dict[tuple[str, str], Row] = {}
        for row in queued:
            key = (row.student, row.assignment)
            if key not in newest or (_utc(row.timestamp) or dt.datetime.min) >= \
                    (_utc(newest[key].timestamp) or dt.datetime.min):
                newest[key] = row
        done: dict[tuple[str, str], Row] = {}
        for r in self.journal.in_state("grading", "recorded", "released"):
            key = (r.student, r.assignment)
            if key not in done or (_utc(r.timestamp) or dt.datetime.min) > \
                    (_utc(done[key].timestamp) or dt.datetime.min):
                done[key] = r
        ready = []
        busy = {(r.student, r.assignment) for r, _ in self._pending.values()}
        for row in queued:
            key = (row.student, row.assignment)
            later = newest[key]
            handled = done.get(key)
            if later is not row:
                self._supersede(row, later)
                continue
            if handled is not None and (_utc(handled.timestamp) or dt.datetime.min) > \
                    (_utc(row.timestamp) or dt.datetime.max):
                self._supersede(row, handled)
                continue
            if row.not_before > now or key in busy:
                continue  # waiting; or its previous feedback is being made from autograded/
            policy = self.policies[row.assignment]
            late = self._late(row)
            if late and policy.after_deadline == "stop":
                self._close(row)
                continue
            if policy.max_per_hour:
                graded = self.journal.graded_since(row.student, row.assignment, now - 3600)
                if len(graded) >= policy.max_per_hour:
                    self._wait(row, graded[0] + 3600, len(graded), policy)
                    continue
            ready.append(row)
        return ready

    def _supersede(self, row: Row, later: Row) -> None:
        self.journal.update(row.id, state="superseded", released=time.time(),
                            feedback="superseded")
        self._publish(row, note_page("Superseded by a later submission", [
            f"You submitted {row.assignment} again ({later.timestamp}) before this submission "
            f"({row.timestamp}) was graded. Only the latest submission is graded: fetch the "
            "feedback of that one."]))
        log.info("superseded %s %s (%s) by %s", row.student, row.assignment, row.timestamp,
                 later.timestamp)

    def _close(self, row: Row) -> None:
        self.journal.update(row.id, state="closed", released=time.time(), late=1,
                            feedback="closed")
        due = self.duedate(row.assignment)
        self._publish(row, note_page("Submitted after the deadline", [
            f"This submission of {row.assignment} ({row.timestamp}) came after the deadline "
            f"({due} UTC). It was received and kept, but it is not graded automatically; "
            "your instructor decides what happens to it."]))
        log.info("closed %s %s (%s): after the deadline", row.student, row.assignment,
                 row.timestamp)

    def _wait(self, row: Row, until: float, graded: int, policy: Policy) -> None:
        first = row.not_before == 0
        self.journal.update(row.id, not_before=until, feedback="waiting")
        if first:
            self._publish(row, note_page("In the queue: hourly limit reached", [
                f"You have had {graded} submission{'s' if graded != 1 else ''} of "
                f"{row.assignment} graded in the last hour, the most this course grades per "
                f"hour ({policy.max_per_hour}).",
                f"This submission ({row.timestamp}) is kept in the queue and will be graded "
                f"at about {_when(until)}; use Fetch Feedback again then. If you submit again "
                "before that, only the latest submission is graded."]))
            log.info("waiting %s %s (%s): %d graded in the last hour, until %s", row.student,
                     row.assignment, row.timestamp, graded, _when(until))

    # -- grading --------------------------------------------------------------------------------
    def _collect(self, row: Row) -> Path:
        """Copy the inbound folder to ``submitted/<student>/<assignment>/`` as ``nbgrader
        collect --update`` does; returns that folder."""
        from nbgrader.utils import ignore_patterns

        cd = self.config.get("CourseDirectory", {})
        src = self.inbound / row.id
        dest = self.course_root / "submitted" / row.student / row.assignment
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{row.assignment}.collecting"
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp, ignore=ignore_patterns(
            exclude=list(cd.get("ignore", [".ipynb_checkpoints", "*.pyc", "__pycache__",
                                           "feedback"])),
            include=list(cd.get("include", ["*"])),
            max_file_size=cd.get("max_file_size", 100000)))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return dest

    def _grade(self, assignment: str, rows: list[Row]) -> None:
        from grader.engine.autograde import autograde

        now = time.time()
        paths: dict[str, Path] = {}
        for row in rows:
            self.journal.update(row.id, state="grading", started=now, graded_at=now,
                                attempts=row.attempts + 1)
        for row in rows:
            try:
                paths[row.id] = self._collect(row)
            except Exception as exc:  # a damaged or vanished inbound folder: that one only
                self._fail(row, f"the submission could not be collected: {exc}", final=True)
        todo = [r for r in rows if r.id in paths]
        if not todo:
            return
        if self._imports is not None:
            self._imports.join()
            self._imports = None
        try:
            result = autograde([str(paths[r.id]) for r in todo], assignment,
                               course=self.course_root, jobs=self.jobs, sandbox=self.sandbox,
                               timeout=self.timeout, pool_factory=lambda *a: self._pool,
                               judge=self.judge, seed=self.seed)
        except Exception as exc:
            log.exception("grading %d submission(s) of %s failed", len(todo), assignment)
            if len(todo) > 1:  # find the one that breaks the batch: grade each alone
                for row in todo:
                    self._grade(assignment, [self.journal.get(row.id) or row])
                return
            row = self.journal.get(todo[0].id) or todo[0]
            self._fail(row, f"the grader failed: {type(exc).__name__}: {exc}",
                       final=row.attempts >= MAX_ATTEMPTS)
            return
        entries = {}
        for entry in result.get("results", []):
            path = Path(str(entry.get("notebook", "")))
            folder = path.parent if path.suffix == ".ipynb" else path
            entries[folder.parent.name] = entry
        for row in todo:
            entry = entries.get(row.student)
            if entry is None:
                self._fail(row, "the grader returned no result for this submission", final=True)
                continue
            late = self._late(row)
            self.journal.update(row.id, state="recorded", recorded=time.time(),
                                score=float(entry.get("score") or 0),
                                max_score=float(entry.get("max_score") or 0),
                                late=int(late), error=entry.get("error"))
            row = self.journal.get(row.id) or row
            self._release(row, entry)

    def _fail(self, row: Row, error: str, final: bool) -> None:
        if not final:
            self.journal.update(row.id, state="queued", error=error)
            log.warning("retrying %s %s (%s) later: %s", row.student, row.assignment,
                        row.timestamp, error)
            return
        self.journal.update(row.id, state="released", released=time.time(), error=error,
                            feedback="error")
        self._publish(row, note_page("Your submission could not be graded", [
            f"The grader could not grade this submission of {row.assignment} "
            f"({row.timestamp}): {error}",
            "Check that you submitted the assignment's notebook (File > Save first), and "
            "submit again; your instructor can see this error too."]))
        self._log_released(row, error)

    # -- feedback -------------------------------------------------------------------------------
    def _release(self, row: Row, entry: dict[str, Any] | None) -> None:
        """Generate the feedback the policy allows for a recorded submission and release it."""
        policy = self.policies[row.assignment]
        late = bool(row.late)
        what = "hints" if late else policy.feedback_before_deadline
        if entry is not None:
            graded = bool(entry.get("graded", True))
        else:  # resumed after a restart: recorded means nbgrader wrote the autograded folder
            graded = (self.course_root / "autograded" / row.student / row.assignment).is_dir()
        try:
            if not graded:
                self._fail(row, (entry or {}).get("error") or row.error or "not graded",
                           final=True)
                return
            if what == "none":
                self.journal.update(row.id, state="released", released=time.time(),
                                    feedback="withheld")
                self._log_released(row, None, "feedback withheld until the deadline")
                return
            if what == "score":
                pages = self._score_pages(row, entry)
            elif self._maker is not None:
                self._pending[row.id] = (row, self._maker.submit(row.assignment, row.student))
                return
            else:
                pages = self._feedback_pages(row)
        except Exception as exc:
            log.exception("feedback for %s %s failed", row.student, row.assignment)
            self._fail(row, f"the feedback could not be made: {type(exc).__name__}: {exc}",
                       final=True)
            return
        self._finish(row, pages, what)

    def _feedback_pages(self, row: Row) -> dict[str, str]:
        """nbgrader's GenerateFeedback for this student (the course's preprocessors and
        exporter), in this process; the pages by notebook id."""
        return render_feedback(self._feedback_converters, self.config, self.course_root,
                               row.assignment, row.student)

    def _score_pages(self, row: Row, entry: dict[str, Any] | None) -> dict[str, str]:
        """The score-only page (no messages, no hints) for each notebook."""
        tests = (entry or {}).get("tests") or []
        by_notebook: dict[str, list[dict[str, Any]]] = {}
        for test in tests:
            by_notebook.setdefault(str(test.get("notebook") or ""), []).append(test)
        pages = {}
        for notebook_id in self._notebook_ids(row):
            own = by_notebook.get(notebook_id) or (tests if len(by_notebook) <= 1 else [])
            table = [(str(t.get("grade_id")), f"{_fmt(t.get('score'))} / "
                      f"{_fmt(t.get('max_score'))}") for t in own]
            pages[notebook_id] = note_page(f"{row.assignment}: your score", [
                f"Submission {row.timestamp}: {_fmt(row.score)} of {_fmt(row.max_score)} "
                "points from the autograded tests.",
                "Before the deadline this course shows the score only; the full feedback "
                "comes after it."], table)
        return pages

    def _notebook_ids(self, row: Row) -> list[str]:
        return sorted(p.stem for p in (self.inbound / row.id).glob("*.ipynb"))

    def _publish(self, row: Row, page: str, only: str | None = None) -> None:
        """Release ``page`` as the feedback of ``row``'s notebooks (``only``: of that one), the
        way ``nbgrader release_feedback`` does (hash of the submission secret and notebook id,
        written to a temporary name and moved into place)."""
        from nbgrader.utils import notebook_hash

        secret_path = self.inbound / row.id / "submission_secret.txt"
        try:
            secret = secret_path.read_text(encoding="ascii")
        except OSError as exc:
            log.warning("cannot release feedback for %s: %s", row.id, exc)
            return
        self.outbound_feedback.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.outbound_feedback, 0o755)
        for notebook_id in [only] if only else self._notebook_ids(row):
            digest = notebook_hash(secret=secret, notebook_id=notebook_id)
            tmp = self.outbound_feedback / f"{digest}-tmp.html"
            tmp.write_text(page, encoding="utf-8")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.outbound_feedback / f"{digest}.html")

    def _log_released(self, row: Row, error: str | None, what: str | None = None) -> None:
        seconds = time.time() - row.landed
        score = f"{_fmt(row.score)}/{_fmt(row.max_score)}" if row.score is not None else "-"
        extra = f" error: {error}" if error else (f" ({what})" if what else "")
        log.info("released %s %s score %s%s %.1f s from landing%s", row.student,
                 row.assignment, score, " late" if row.late else "", seconds, extra)


def _feedback_converter(config: Any, assignment: str) -> Any:
    """nbgrader's GenerateFeedback for ``assignment`` (the course's preprocessors and
    exporter), keeping its exporter from one student to the next: a new exporter compiles its
    page templates again (about 1.5 s of a lone submission's latency)."""
    from nbconvert.writers import FilesWriter
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    class KeptExporterFeedback(GenerateFeedback):
        kept: Any = None

        def start(self) -> None:
            self.init_notebooks()
            self.writer = FilesWriter(parent=self, config=self.config)
            if self.kept is None:
                self.kept = self.exporter_class(parent=self, config=self.config)
                for pp in self.preprocessors:
                    self.kept.register_preprocessor(pp)
            self.exporter = self.kept
            here = os.getcwd()
            os.chdir(self.coursedir.root)
            try:
                self.convert_notebooks()
            finally:
                os.chdir(here)

    config = copy.deepcopy(config)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    quiet = logging.getLogger("grader.serve.nbgrader")
    quiet.setLevel(logging.ERROR)
    return KeptExporterFeedback(coursedir=coursedir, config=config, log=quiet, force=True)


def render_feedback(converters: dict[str, Any], config: Any, course_root: Path,
                    assignment: str, student: str) -> dict[str, str]:
    """Generate ``student``'s feedback for ``assignment`` (``converters`` keeps one
    :func:`_feedback_converter` per assignment); the pages by notebook id."""
    converter = converters.get(assignment)
    if converter is None:
        converter = converters[assignment] = _feedback_converter(config, assignment)
    converter.coursedir.student_id = student
    with gbmod.venv_on_path():
        converter.start()
    folder = course_root / "feedback" / student / assignment
    pages = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.html")}
    if not pages:
        raise RuntimeError(f"nbgrader wrote no feedback into {folder}")
    return pages


class FeedbackProcess:
    """Renders feedback pages in a process of its own (nbconvert's HTML export is the
    service's largest cost per submission, about 1 s, and holds the GIL): the service grades
    the next batch meanwhile, on the other core. The child is ``python -m
    grader.engine.serve.feedback_child COURSE`` (one JSON request per line on stdin, one
    answer per line on stdout); requests are served in order by one thread here."""

    def __init__(self, course_root: Path) -> None:
        import queue
        import subprocess
        import sys

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[3])] +
            ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "grader.engine.serve.feedback_child", str(course_root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
            env=env, cwd=str(course_root))
        self._queue: queue.Queue[tuple[str, str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="convgrade-feedback",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import json

        while (item := self._queue.get()) is not None:
            assignment, student, future = item
            try:
                assert self._proc.stdin is not None and self._proc.stdout is not None
                self._proc.stdin.write(json.dumps([assignment, student]) + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the feedback process exited ({self._proc.poll()})")
                answer = json.loads(line)
                if "error" in answer:
                    raise RuntimeError(answer["error"])
                future.set_result(answer["pages"])
            except BaseException as exc:  # noqa: BLE001 -- the service falls back
                future.set_exception(exc)

    def submit(self, assignment: str, student: str) -> Any:
        """A future of the pages by notebook id."""
        from concurrent.futures import Future

        future: Future[dict[str, str]] = Future()
        self._queue.put((assignment, student, future))
        return future

    def close(self) -> None:
        """Stop the process (pages still to make are dropped: their rows stay
        ``recorded`` and are released on the next start)."""
        self._queue.put(None)
        with contextlib.suppress(Exception):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(2)  # it keeps nothing: a child still starting up is stopped
        except Exception:
            self._proc.kill()
            self._proc.wait()


@contextlib.contextmanager
def serving(**kwargs: Any) -> Iterator[Service]:
    """A started :class:`Service` that is closed when the block ends."""
    service = Service(**kwargs)
    try:
        service.start()
        yield service
    finally:
        service.close()
