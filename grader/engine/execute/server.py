"""The fork server: warms up once inside the sandbox, then forks a fresh child per submission.

Started by the pool (:mod:`grader.engine.execute.pool`) as the stage's launcher script
(:data:`grader.engine.sandbox.SERVER_SCRIPT`, a copy of :mod:`grader.engine.execute.launcher`)
with its configuration as JSON in its first argument. It imports what the course declares
(``preload``), the hidden checks' runtime where the course uses it, builds the IPython shell,
reports ready (frame ``R``) and then, per request on its stdin, forks a child
(:func:`grader.engine.execute.child._child_main`) and supervises it: it does not parse the
child's lines; it counts bytes (output cap), watches the clock (wall timeout), the private
/tmp (file budget) and the exit status, passes the bytes on (frames ``C``), kills the child's
process group and every leftover process when it ends, and reports the status (frame ``E``).
Only the standard library is imported at top level.

Limits per submission (:class:`~grader.engine.execute.protocol.Limits`), and how they are enforced:

* memory: ``RLIMIT_AS`` and ``RLIMIT_DATA`` = the server's own size at fork + ``memory_bytes``;
  a ``MemoryError`` (or torch's allocator failure) ends the submission with "used more than
  2 GiB of memory in cell N";
* CPU: ``RLIMIT_CPU`` (SIGXCPU, then SIGKILL one second later);
* wall clock: the server SIGKILLs the child's process group, then every other process in the
  sandbox's PID namespace (without bwrap: every descendant; the server is a subreaper);
* processes: ``RLIMIT_NPROC``; in the sandbox, as root, each server's children run as their own
  unprivileged uid so that the limit really applies (see :mod:`grader.engine.sandbox`);
* files: ``RLIMIT_FSIZE`` per file, and in the sandbox the private tmpfs /tmp is watched so the
  total written stays under ``max_file_bytes`` too; the child's temp dir is removed afterwards;
* output: the server stops reading and kills the child after ``max_output_bytes``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sys
import time
from typing import Any

from grader.engine.execute.child import (
    _child_main,
    _is_editable_finder,
    _make_shell,
    _Pristine,
    _status_bytes,
)
from grader.engine.execute.protocol import _EXIT_SETUP, _write_frame, _write_json_frame


def _read_exactly(fd: int, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError("the request ended early")
        got += n
    return buf


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_leftovers(pid_namespace: bool) -> None:
    """SIGKILL every process the submission left behind, and reap them."""
    me = os.getpid()
    for _ in range(200):
        if pid_namespace:
            victims = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        else:
            victims = _descendants(me)
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        time.sleep(0.002)


def _tmp_used(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class _Server:
    """The fork server's main loop."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.sandboxed = bool(config.get("sandbox"))
        self.uid: int | None = config.get("uid")
        self.workroot = config["workroot"]
        self.settings = {"limits": config["limits"], "seed": int(config.get("seed", 0))}
        self.counter = 0
        self.state: dict[str, Any] = {}
        # Child output passes through this one buffer, zeroed after each submission, so no
        # student's output lingers in the server's heap for the next child to find.
        self.chunk = bytearray(1 << 16)
        self.zeros = bytes(1 << 16)

    def warm(self) -> dict:
        t0 = time.perf_counter()
        problems: list[str] = []
        os.makedirs(self.workroot, exist_ok=True)
        os.environ["IPYTHONDIR"] = os.path.join(self.workroot, ".ipython")
        os.environ["MPLCONFIGDIR"] = os.path.join(self.workroot, ".matplotlib")
        sys.meta_path[:] = [f for f in sys.meta_path if not _is_editable_finder(f)]
        # what the course declares (c.ConvGrade.preload, grader/engine/settings.py), nothing else
        for name in self.config.get("preload", ("numpy", "torch")):
            try:
                __import__(name)
            except Exception as exc:
                problems.append(f"import {name}: {exc}")
        torch = sys.modules.get("torch")
        if torch is not None:
            with contextlib.suppress(Exception):
                torch.set_num_threads(1)
                (torch.ones(4, 4) @ torch.ones(4, 4)).sum().item()
        if self.config.get("preload_probe", True):
            try:
                import grader.runtime.probe  # noqa: F401  (staged; the course's declarations, cases)
            except Exception as exc:
                problems.append(f"import grader.runtime.probe: {type(exc).__name__}: {exc}")
        shell = _make_shell()
        # Warm the compiler, display and traceback machinery (stack_data, pygments, ...).
        shell.run_cell("pass", store_history=False)
        shell.run_cell("1/0", store_history=False)
        if self.config.get("preload_matplotlib", True):
            # conv_basics plots: importing pyplot and building the font cache costs 1-2 s, and
            # would otherwise be paid by every child (each has a fresh, empty MPLCONFIGDIR).
            try:
                shell.run_cell(
                    "import io as _io, matplotlib.pyplot as _plt\n"
                    "_fig = _plt.figure(figsize=(1, 1)); _plt.plot([0, 1])\n"
                    "_fig.savefig(_io.BytesIO(), format='png'); _plt.close('all')\n"
                    "del _io, _plt, _fig",
                    store_history=False,
                )
            except Exception as exc:
                problems.append(f"preload matplotlib: {exc}")
        self.state = {"shell": shell, "pristine": _Pristine(shell)}
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        return {
            "pid": os.getpid(),
            "warm_seconds": time.perf_counter() - t0,
            "problems": problems,
            "python": sys.version.split()[0],
            "vm_bytes": _status_bytes("VmSize"),
            "rss_bytes": _status_bytes("VmRSS"),
        }

    def serve(self) -> None:
        info = self.warm()
        _write_json_frame(b"R", info)
        while True:
            header = b""
            while not header.endswith(b"\n"):
                byte = os.read(0, 1)  # unbuffered: the request body is read into a bytearray
                if not byte:
                    return
                header += byte
                if len(header) > 32:
                    return
            kind, size = header.split()
            if kind != b"J":
                return
            request = _read_exactly(0, int(size))
            status = self.run(request)
            request[:] = bytes(len(request))  # forget this student's code
            del request
            _write_json_frame(b"E", status)

    def run(self, request: bytearray) -> dict:
        limits = self.settings["limits"]
        self.counter += 1
        workdir = os.path.join(self.workroot, f"sub-{self.counter}")
        os.mkdir(workdir, 0o700)
        if self.uid is not None:
            os.chown(workdir, self.uid, self.uid)
        tmp_base = _tmp_used("/tmp") if self.sandboxed else 0
        rfd, wfd = os.pipe()
        usage0 = _children_cpu()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child_main(request, self.settings, workdir, self.uid, wfd, self.state)
            os._exit(_EXIT_SETUP)  # not reached
        os.close(wfd)
        status = self.supervise(pid, rfd, limits, start, tmp_base)
        os.close(rfd)
        status["seconds"] = round(time.monotonic() - start, 4)
        status["cpu_seconds"] = round(_children_cpu() - usage0, 3)
        shutil.rmtree(workdir, ignore_errors=True)
        self.chunk[:] = self.zeros
        return status

    def supervise(self, pid: int, rfd: int, limits: dict, start: float, tmp_base: int) -> dict:
        deadline = start + float(limits["wall_seconds"])
        cap = int(limits["max_output_bytes"])
        file_cap = int(limits["max_file_bytes"])
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        total = 0
        verdict: str | None = None
        wait_status: int | None = None
        eof = False
        next_file_check = start + 0.2
        while True:
            now = time.monotonic()
            if now >= deadline:
                verdict = "timeout"
                break
            watch = [] if eof else [rfd]
            if pidfd is not None:
                watch.append(pidfd)
            timeout = min(deadline - now, 0.2 if self.sandboxed else 0.05)
            ready = select.select(watch, [], [], timeout)[0] if watch else []
            if not watch:
                time.sleep(min(timeout, 0.005))
            if rfd in ready:
                n = os.readv(rfd, [self.chunk])
                if not n:
                    eof = True
                else:
                    total += n
                    if total > cap:
                        verdict = "output"
                        break
                    _write_frame(b"C", memoryview(self.chunk)[:n])
            if pidfd is None or pidfd in ready or eof:
                done, wait_status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                wait_status = None
            if self.sandboxed and time.monotonic() >= next_file_check:
                next_file_check = time.monotonic() + 0.2
                if _tmp_used("/tmp") - tmp_base > file_cap:
                    verdict = "files"
                    break
        if wait_status is None:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            _, wait_status = os.waitpid(pid, 0)
        if pidfd is not None:
            os.close(pidfd)
        _kill_leftovers(self.sandboxed)
        if verdict is None and self.sandboxed and _tmp_used("/tmp") - tmp_base > file_cap:
            verdict = "files"
        if verdict is None:  # normal end: drain what is left in the pipe (bounded)
            drain_deadline = time.monotonic() + 1.0
            while time.monotonic() < drain_deadline:
                if not select.select([rfd], [], [], 0.05)[0]:
                    break
                n = os.readv(rfd, [self.chunk])
                if not n:
                    break
                total += n
                if total > cap:
                    verdict = "output"
                    break
                _write_frame(b"C", memoryview(self.chunk)[:n])
        status: dict[str, Any] = {"status": verdict or "exited", "bytes": total}
        if os.WIFSIGNALED(wait_status):
            status["signal"] = os.WTERMSIG(wait_status)
            status.setdefault("code", None)
            if verdict is None:
                status["status"] = "signaled"
        else:
            status["code"] = os.WEXITSTATUS(wait_status)
        return status


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _server_main(argv: list[str]) -> None:
    """Entry point of the fork server (``python -s convgrade_worker.py CONFIG_JSON``)."""
    config = json.loads(argv[1])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        _Server(config).serve()
    except BrokenPipeError:
        pass


