"""The parent's side: a pool of warm fork servers, and what comes back from them.

:class:`WorkerPool` stages the worker's files (:func:`grader.engine.sandbox.stage`), keeps
``jobs`` fork servers (:mod:`grader.engine.execute.server`), each inside bubblewrap
(:mod:`grader.engine.sandbox`), restarts one that dies, and hands each submission to an idle
one. :class:`_FrameReader` reads the server's frames with deadlines; :class:`_Assembler`
validates every line the child sent and turns it into :class:`CellResult` objects; a
submission that did not end normally gets one sentence saying why (:func:`_explain`). This
module is never staged: the sandbox cannot import it.

Start-up: a server is ready 2-3 s after it is started on an idle 2-core machine (what the
course preloads, here numpy and torch, then IPython, grader.runtime.probe and pyplot are
imported once; bwrap itself adds about 20 ms); servers start lazily, on the first submission
they get, or all in parallel with :meth:`WorkerPool.start`. After that a submission costs a
fork plus its own work: about 20 ms of CPU for a trivial notebook and about 55 ms for the
whole channels_pooling notebook with its hidden checks (``benchmarks/worker_bench.py``),
against about 3.4 s for importing torch alone in a fresh kernel.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader.engine import sandbox as sandbox_mod
from grader.engine.execute import launcher
from grader.engine.execute.protocol import (
    _EXIT_CHANNEL,
    _EXIT_SETUP,
    _FRAME_KINDS,
    _FRAME_MAX,
    _HEADER_MAX,
    CellJob,
    CellResult,
    Limits,
    RunResult,
)
from grader.engine.sandbox import SandboxUnavailable

__all__ = [
    "CellJob",
    "CellResult",
    "Limits",
    "RunResult",
    "SandboxUnavailable",
    "WorkerPool",
    "run_cells",
]

_STARTUP_TIMEOUT = 300.0
_GRACE_SECONDS = 15.0


def _human_bytes(n: int) -> str:
    if n >= 2**30 and n % 2**30 == 0:
        return f"{n // 2**30} GiB"
    if n >= 2**20:
        return f"{n / 2**20:g} MB"
    if n >= 2**10:
        return f"{n / 2**10:g} kB"
    return f"{n} bytes"


class _ServerLost(Exception):
    """The fork server died, hung or spoke garbage; it must be restarted."""


class _Assembler:
    """Turns the child's JSON lines into CellResults, validating everything."""

    def __init__(self, cells: list[CellJob], byte_cap: int) -> None:
        self.known = {c.index for c in cells}
        self.results: dict[int, CellResult] = {}
        self.order: list[int] = []
        self.current: int | None = None
        self.done: set[int] = set()
        self.stop: dict | None = None
        self.ended = False
        self.malformed: str | None = None
        self.fatal: str | None = None
        self.buffer = bytearray()
        self.byte_cap = byte_cap
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.total > self.byte_cap:
            self._bad("more data than the output cap allows")
            return
        self.buffer += data
        while True:
            nl = self.buffer.find(b"\n")
            if nl < 0:
                return
            line = bytes(self.buffer[:nl])
            del self.buffer[: nl + 1]
            if self.malformed is None:
                self._line(line)

    def finish(self, clean_exit: bool) -> None:
        if self.buffer and clean_exit and self.malformed is None:
            self._bad("an unterminated line")
        self.buffer.clear()

    def _bad(self, why: str) -> None:
        if self.malformed is None:
            self.malformed = why

    def _line(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self._bad("a line that is not JSON")
            return
        if not isinstance(msg, dict) or self.ended:
            self._bad("an unexpected message")
            return
        kind = msg.get("t")
        cell = msg.get("cell")
        if kind == "end":
            self.ended = True
            return
        if kind == "fatal":
            self.fatal = str(msg.get("detail", ""))[:300]
            return
        if kind == "start":
            if (
                not isinstance(cell, int)
                or cell not in self.known
                or cell in self.results
                or (self.current is not None and self.current not in self.done)
            ):
                self._bad("a cell start out of order")
                return
            self.current = cell
            self.results[cell] = CellResult(index=cell)
            self.order.append(cell)
            return
        if cell is None or cell != self.current or (cell in self.done and kind != "stop"):
            self._bad(f"a {kind!r} message for the wrong cell")
            return
        result = self.results[cell]
        if kind == "out":
            output = _clean_output(msg.get("output"))
            if output is None:
                self._bad("an invalid output")
                return
            _append_output(result.outputs, output)
        elif kind == "clear":
            result.outputs.clear()
        elif kind == "rec":
            name, record = msg.get("name"), msg.get("record")
            if not isinstance(name, str) or not isinstance(record, dict):
                self._bad("an invalid probe record")
                return
            result.records.append((name, record))
        elif kind == "done":
            error = msg.get("error")
            if error is not None:
                error = _clean_error(error)
                if error is None:
                    self._bad("an invalid error")
                    return
            result.error = error
            self.done.add(cell)
        elif kind == "stop":
            reason = msg.get("reason")
            if reason not in ("exit", "memory") or cell not in self.done:
                self._bad("an invalid stop message")
                return
            self.stop = {"reason": reason, "detail": str(msg.get("detail", ""))[:200]}
            self.ended = True
        else:
            self._bad(f"an unknown message {kind!r}")


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _clean_error(error: Any) -> dict | None:
    if not isinstance(error, dict):
        return None
    ename, evalue, tb = error.get("ename"), error.get("evalue"), error.get("traceback")
    if not isinstance(ename, str) or not isinstance(evalue, str) or not _is_str_list(tb):
        return None
    return {"ename": ename, "evalue": evalue, "traceback": tb}


def _clean_output(output: Any) -> dict | None:
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name, text = output.get("name"), output.get("text")
        if name not in ("stdout", "stderr") or not isinstance(text, str):
            return None
        return {"output_type": "stream", "name": name, "text": text}
    if kind == "error":
        error = _clean_error(output)
        return None if error is None else {"output_type": "error", **error}
    if kind in ("display_data", "execute_result"):
        data, metadata = output.get("data"), output.get("metadata", {})
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            return None
        if not isinstance(metadata, dict):
            return None
        clean = {"output_type": kind, "data": data, "metadata": metadata}
        if kind == "execute_result":
            count = output.get("execution_count")
            clean["execution_count"] = count if isinstance(count, int) else None
        return clean
    return None


def _append_output(outputs: list[dict], output: dict) -> None:
    if (
        output["output_type"] == "stream"
        and outputs
        and outputs[-1]["output_type"] == "stream"
        and outputs[-1]["name"] == output["name"]
    ):
        outputs[-1] = {**outputs[-1], "text": outputs[-1]["text"] + output["text"]}
    else:
        outputs.append(output)


class _FrameReader:
    """Reads ``kind length\\n payload`` frames from the server's stdout with deadlines."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _ServerLost("timeout")
        if not select.select([self.fd], [], [], remaining)[0]:
            raise _ServerLost("timeout")
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            raise _ServerLost("eof")
        self.buf += chunk

    def read(self, deadline: float) -> tuple[bytes, bytes]:
        while True:
            nl = self.buf.find(b"\n", 0, _HEADER_MAX)
            if nl >= 0:
                break
            if len(self.buf) >= _HEADER_MAX:
                raise _ServerLost("garbage")
            self._fill(deadline)
        try:
            kind, size_text = bytes(self.buf[:nl]).split(b" ")
            size = int(size_text)
        except ValueError as exc:
            raise _ServerLost("garbage") from exc
        if kind not in _FRAME_KINDS or not 0 <= size <= _FRAME_MAX:
            raise _ServerLost("garbage")
        while len(self.buf) < nl + 1 + size:
            self._fill(deadline)
        payload = bytes(self.buf[nl + 1 : nl + 1 + size])
        del self.buf[: nl + 1 + size]
        return kind, payload


class _ServerHandle:
    """One fork server process seen from the parent."""

    def __init__(self, pool: WorkerPool, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: _FrameReader | None = None
        self.info: dict = {}
        self.start_seconds = 0.0
        self.starts = 0
        self.last_status: dict = {}  # the server's report on the last submission (benchmarks)
        self._stderr: Any = None
        self.lock = threading.Lock()  # a warm-up start and the first run never overlap

    def ensure_started(self) -> None:
        """Start the server unless it runs (waits for a warm-up start under way)."""
        with self.lock:
            if not self.alive():
                self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.kill()
        t0 = time.monotonic()
        workroot = "/tmp/work" if self.pool.sandbox else str(self.pool._root / f"work-{self.slot}")
        config = {
            "sandbox": self.pool.sandbox,
            "uid": self.pool._uid(self.slot),
            "workroot": workroot,
            "limits": asdict(self.pool.limits),
            "seed": self.pool.seed,
            "preload_matplotlib": self.pool.preload_matplotlib,
            "preload": list(self.pool.preload),
            "preload_probe": self.pool.preload_probe,
        }
        cmd = self.pool._command(json.dumps(config))
        self._stderr = tempfile.TemporaryFile(prefix="convgrade-worker-stderr-")
        # Popen from the pool's long-lived spawner thread: bwrap --die-with-parent and the
        # kernel's PDEATHSIG follow the *thread* that forked, and map() threads come and go.
        self.proc = self.pool._spawner.submit(
            subprocess.Popen,
            cmd.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=cmd.env or None,
            cwd=str(self.pool._root),
            start_new_session=True,
            close_fds=True,
        ).result()
        assert self.proc.stdout is not None
        self.reader = _FrameReader(self.proc.stdout.fileno())
        try:
            kind, payload = self.reader.read(time.monotonic() + _STARTUP_TIMEOUT)
            if kind != b"R":
                raise _ServerLost("no ready frame")
            self.info = json.loads(payload)
        except (_ServerLost, ValueError) as exc:
            detail = self.stderr_tail() or str(exc)
            self.kill()
            message = f"the worker could not start: {detail}"
            if self.pool.sandbox:
                raise SandboxUnavailable(f"sandbox unavailable: {message}") from exc
            raise RuntimeError(message) from exc
        self.start_seconds = time.monotonic() - t0
        self.starts += 1

    def stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 2000))
            return self._stderr.read().decode("utf-8", "replace").strip()
        return ""

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(Exception):
                    if stream is not None:
                        stream.close()
        if self._stderr is not None:
            with contextlib.suppress(Exception):
                self._stderr.close()
            self._stderr = None

    def run(self, cells: list[CellJob]) -> RunResult:
        t0 = time.monotonic()
        limits = self.pool.limits
        body = json.dumps({"cells": [asdict(c) for c in cells]}).encode("ascii")
        line = b"J %d\n" % len(body) + body
        for attempt in (0, 1):
            try:
                # under the server's lock: waits for a warm-up start that is under way
                self.ensure_started()
            except (SandboxUnavailable, RuntimeError, OSError) as exc:
                if not self.starts:
                    raise  # the very first start: a set-up problem, not a submission's
                # A restart failed (a loaded machine?): this submission gets the error,
                # the batch goes on, and the next submission tries again.
                return RunResult([], f"the worker could not be restarted: {exc}", 0.0)
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
                break
            except (BrokenPipeError, OSError):
                self.kill()
                if attempt:
                    return RunResult([], "the worker process died before the submission", 0.0)
        assembler = _Assembler(cells, limits.max_output_bytes + (1 << 16))
        status: dict | None = None
        lost: str | None = None
        deadline = time.monotonic() + limits.wall_seconds + _GRACE_SECONDS
        assert self.reader is not None
        try:
            while True:
                kind, payload = self.reader.read(deadline)
                if kind == b"C":
                    assembler.feed(payload)
                elif kind == b"E":
                    status = json.loads(payload)
                    if not isinstance(status, dict):
                        raise _ServerLost("garbage")
                    self.last_status = status
                    break
                else:
                    raise _ServerLost("garbage")
        except (_ServerLost, ValueError) as exc:
            lost = str(exc) if isinstance(exc, _ServerLost) else "garbage"
            self.kill()
        clean = status is not None and status.get("status") == "exited" and status.get("code") == 0
        assembler.finish(clean)
        error = _explain(assembler, status, lost, limits, cells)
        results = [assembler.results[i] for i in assembler.order]
        if error is not None and results and results[-1].index not in assembler.done:
            results[-1].error = {"ename": "WorkerError", "evalue": error, "traceback": []}
        return RunResult(cells=results, error=error, seconds=time.monotonic() - t0)


def _explain(
    asm: _Assembler, status: dict | None, lost: str | None, limits: Limits, cells: list[CellJob]
) -> str | None:
    """The one sentence that says why a submission did not finish normally (or None)."""
    where = f"in cell {asm.current}" if asm.current is not None else "before the first cell"
    if status is None:
        if lost == "timeout":
            return f"timed out after {limits.wall_seconds:g} s {where}"
        return f"the worker process died unexpectedly ({lost}) {where}; it has been restarted"
    kind = status.get("status")
    signum = status.get("signal")
    code = status.get("code")
    if kind == "timeout":
        return f"timed out after {limits.wall_seconds:g} s {where}"
    if kind == "output":
        return f"printed more than {_human_bytes(limits.max_output_bytes)} {where}"
    if kind == "files":
        when = "" if asm.ended else f" {where}"
        return f"wrote more than {_human_bytes(limits.max_file_bytes)} of files{when}"
    if kind == "signaled":
        cpu = float(status.get("cpu_seconds") or 0.0)
        if signum == signal.SIGXCPU or (
            signum == signal.SIGKILL and cpu >= limits.cpu_seconds - 0.5
        ):
            return f"used more than {limits.cpu_seconds} s of CPU time {where}"
        if signum == signal.SIGKILL:
            return f"the kernel was killed (signal 9, out of memory?) {where}"
        return f"the kernel crashed (signal {signum}) {where}"
    if kind != "exited":
        return f"the worker reported an unknown status {str(kind)[:40]!r} {where}"
    if asm.stop is not None:
        if asm.stop["reason"] == "memory":
            return f"used more than {_human_bytes(limits.memory_bytes)} of memory {where}"
        return f"called {asm.stop['detail']} {where}; the cells after it did not run"
    if asm.malformed is not None:
        return (
            f"the submission wrote malformed data ({asm.malformed}) to the result channel {where}"
        )
    if code == _EXIT_CHANNEL:
        return f"the submission closed or broke the grader's result channel {where}"
    if code == _EXIT_SETUP and asm.fatal is not None:
        return f"the worker failed {where}: {asm.fatal}"
    if code == _EXIT_SETUP and asm.current is None:
        return "the worker could not set up the submission's process"
    if not asm.ended:
        return f"the kernel exited (exit code {code}) {where} before the notebook finished"
    if code != 0:
        return f"the kernel exited with code {code} after the last cell"
    missing = [c.index for c in cells if c.index not in asm.done]
    if missing:
        return f"cells {missing} did not run"
    return None


_POOL_COUNTER = itertools.count()


class WorkerPool:
    """A pool of warm fork servers that run submissions (lists of code cells) in parallel.

    ``jobs`` servers (default: the number of usable CPUs) start lazily, or all at once in
    parallel with :meth:`start`. With ``sandbox=True`` (the default) each server runs inside
    bubblewrap; if bwrap is missing or fails a smoke test the constructor raises
    :class:`SandboxUnavailable`. ``bwrap`` (or the ``CONVGRADE_BWRAP`` environment variable)
    names the bwrap executable; ``package_dir`` is the ``grader/`` directory whose worker
    modules are staged (tests pass a stub; the fork server's own modules always come from this
    engine). ``seed`` seeds random, numpy, torch and ``grader.runtime.probe.set_seed`` if
    present.
    ``preload_matplotlib`` imports pyplot (inline backend) in each server: about 1.5 s more
    start-up, saved by every child that plots. ``preload`` names the modules each server
    imports once (the course's ``c.ConvGrade.preload``, :mod:`grader.engine.settings`);
    ``preload_probe`` imports the hidden checks' runtime (``grader.runtime.probe``) too.
    """

    def __init__(
        self,
        jobs: int | None = None,
        *,
        sandbox: bool = True,
        limits: Limits | None = None,
        seed: int = 0,
        bwrap: str | None = None,
        package_dir: str | Path | None = None,
        preload_matplotlib: bool = True,
        preload: Sequence[str] = ("numpy", "torch"),
        preload_probe: bool = True,
    ) -> None:
        self.jobs = max(1, jobs or len(os.sched_getaffinity(0)))
        self.sandbox = sandbox
        self.limits = limits if limits is not None else Limits()
        self.seed = int(seed)
        self.preload_matplotlib = preload_matplotlib
        self.preload = tuple(preload)
        self.preload_probe = preload_probe
        self._sandbox_mod = sandbox_mod
        self._bwrap = sandbox_mod.find_bwrap(bwrap) if sandbox else None
        self._root = Path(tempfile.mkdtemp(prefix="convgrade-pool-"))
        os.chmod(self._root, 0o755)
        package = (Path(package_dir) if package_dir is not None
                   else Path(__file__).resolve().parents[2])
        try:
            self._stage = sandbox_mod.stage(package, Path(launcher.__file__).resolve(),
                                            self._root / "stage")
            if sandbox:
                assert self._bwrap is not None
                sandbox_mod.smoke_test(self._bwrap, self._stage)
        except BaseException:
            shutil.rmtree(self._root, ignore_errors=True)
            raise
        # A block of 64 uids per pool, distinct between pools of this process and (very likely)
        # between processes, so RLIMIT_NPROC counts one server's children only.
        self._uid_base = 100000 + ((os.getpid() % 20000) * 256 + next(_POOL_COUNTER) % 4) * 64
        self._servers = [_ServerHandle(self, slot) for slot in range(self.jobs)]
        self._idle: list[_ServerHandle] = list(self._servers)
        self._cond = threading.Condition()
        self._closed = False
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convgrade-spawn")

    # -- internals used by _ServerHandle --------------------------------------------------------
    def _uid(self, slot: int) -> int | None:
        if self.sandbox and os.geteuid() == 0:
            return self._uid_base + slot % 64
        return None

    def _command(self, config: str) -> Any:
        return self._sandbox_mod.server_command(
            self._stage, sandbox=self.sandbox, bwrap=self._bwrap, config=config
        )

    # -- public API ----------------------------------------------------------------------------
    def start(self) -> float:
        """Start every server that is not running, in parallel; return the seconds it took."""
        t0 = time.monotonic()
        todo = [s for s in self._servers if not s.alive()]
        if todo:
            with ThreadPoolExecutor(max_workers=len(todo)) as ex:
                for fut in [ex.submit(s.ensure_started) for s in todo]:
                    fut.result()
        return time.monotonic() - t0

    def warm(self, count: int = 1) -> None:
        """Start up to ``count`` servers in the background and return at once.

        The next submissions go to the warmed servers first; a run that needs one waits for its
        start to finish. Start-up errors surface in that run, as with a lazy start.
        """
        warmed = [s for s in self._servers if not s.alive()][:max(0, count)]
        with self._cond:  # _acquire pops from the end: hand out the warmed servers first
            self._idle = [s for s in self._idle if s not in warmed] + [
                s for s in warmed if s in self._idle]

        def start(server: _ServerHandle) -> None:
            with contextlib.suppress(Exception):  # the run that needs it retries and reports
                server.ensure_started()

        for server in warmed:
            threading.Thread(target=start, args=(server,), name="convgrade-warm",
                             daemon=True).start()

    def server_info(self) -> list[dict]:
        """Per server: what it reported when ready, start-up seconds and restarts so far."""
        return [
            {**s.info, "start_seconds": s.start_seconds, "starts": s.starts} for s in self._servers
        ]

    def _acquire(self) -> _ServerHandle:
        with self._cond:
            while not self._idle:
                if self._closed:
                    raise RuntimeError("the worker pool is closed")
                self._cond.wait()
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            return self._idle.pop()

    def _release(self, server: _ServerHandle) -> None:
        with self._cond:
            self._idle.append(server)
            self._cond.notify()

    def run(self, cells: list[CellJob]) -> RunResult:
        """Run one submission's code cells in a fresh child of a warm server."""
        server = self._acquire()
        try:
            return server.run(list(cells))
        finally:
            self._release(server)

    def map(self, submissions: list[list[CellJob]]) -> Iterator[tuple[int, RunResult]]:
        """Run many submissions over the pool's servers; yield ``(position, result)`` as done."""
        if not submissions:
            return
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(submissions))) as ex:
            futures = {ex.submit(self.run, cells): i for i, cells in enumerate(submissions)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()

    def close(self) -> None:
        """Stop every server and remove the stage and work directories."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for server in self._servers:
            server.kill()
        self._spawner.shutdown(wait=False)
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed:
                self.close()


def run_cells(cells: list[CellJob], **pool_kwargs: Any) -> RunResult:
    """Convenience: run one submission in a one-server pool and close it."""
    with WorkerPool(1, **pool_kwargs) as pool:
        return pool.run(cells)


