"""Run submissions fast and safely: warm fork servers with a fresh child per submission.

Stock nbgrader starts a kernel and imports torch for every student (about 3.4 s each). Here a
*fork server* imports numpy, torch and IPython once, builds an IPython shell, and then forks a
fresh child for each submission. The child runs the code cells in notebook order in that shell
(so magics, ``display`` and last-expression results behave as in Jupyter) and sends what
happened back as JSON lines; nothing one student defines or patches survives into the next
child. :class:`WorkerPool` keeps ``jobs`` such servers, each inside bubblewrap
(:mod:`grader.engine.sandbox`), and restarts one that dies.

Protocol (all of it data, never pickles):

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

Limits per submission (:class:`Limits`), and how they are enforced:

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

Start-up: a server is ready 2-3 s after it is started on an idle 2-core machine (what the
course preloads, here numpy and torch, then IPython, grader.runtime.probe and pyplot are
imported once; bwrap itself adds about 20 ms); servers start lazily, on the first submission
they get, or all in parallel with :meth:`WorkerPool.start`. After that a submission costs a
fork plus its own work: about 20 ms of CPU for a trivial notebook and about 55 ms for the
whole channels_pooling notebook with its hidden checks (``benchmarks/worker_bench.py``),
against about 3.4 s for ``import torch`` alone in a fresh kernel.

This file is also the server program: the pool copies it into the sandbox's stage as
``convgrade_worker.py`` and runs it there, so it imports only the standard library at top level
(the worker's copy of ``grader`` holds only the runtime and each assignment's declarations
and cases: ``grader.runtime.staging``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CellJob",
    "CellResult",
    "Limits",
    "RunResult",
    "SandboxUnavailable",
    "WorkerPool",
]

try:  # the parent imports this module as grader.engine.worker; the server runs it as a script
    from grader.engine.sandbox import SandboxUnavailable
except ImportError:  # pragma: no cover - inside the stage, grader.engine.sandbox is not staged

    class SandboxUnavailable(RuntimeError):  # type: ignore[no-redef]
        """bubblewrap is missing or cannot start a sandbox on this machine."""


# ----------------------------------------------------------------------------------------------
# Public data types
# ----------------------------------------------------------------------------------------------


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


# ==============================================================================================
# Child side (runs in the forked child, inside the sandbox)
# ==============================================================================================


class _Channel:
    """The child's end of the result pipe: JSON lines, one os.write per message."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.cell: int | None = None
        self.error: dict | None = None
        self.out = _Stream(self, "stdout")
        self.err = _Stream(self, "stderr")
        # Bound before any student code runs: patching json.dumps or os.write later does not
        # reach what this channel sends.
        self._dumps = json.dumps
        self._write = os.write

    def send(self, msg: dict) -> None:
        data = (self._dumps(msg, default=_json_default) + "\n").encode("ascii")
        view = memoryview(data)
        try:
            while view:
                n = self._write(self.fd, view)
                view = view[n:]
        except (OSError, ValueError):
            os._exit(_EXIT_CHANNEL)

    def emit(self, output: dict) -> None:
        """Send an nbformat output of the running cell, after any buffered stream text."""
        self.out.flush()
        self.err.flush()
        self.send({"t": "out", "cell": self.cell, "output": output})


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return repr(obj)


class _Stream(io.TextIOBase):
    """sys.stdout / sys.stderr replacement that becomes nbformat ``stream`` outputs."""

    _FLUSH_AT = 64 * 1024

    def __init__(self, channel: _Channel, name: str) -> None:
        super().__init__()
        self._channel = channel
        self._stream_name = name
        self._parts: list[str] = []
        self._size = 0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"<{self._stream_name}>"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:  # type: ignore[override]
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if s:
            self._parts.append(s)
            self._size += len(s)
            if self._size >= self._FLUSH_AT:
                self.flush()
        return len(s)

    def flush(self) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            self._channel.send(
                {
                    "t": "out",
                    "cell": self._channel.cell,
                    "output": {"output_type": "stream", "name": self._stream_name, "text": text},
                }
            )


_CHANNEL: _Channel | None = None  # set in the child


def _make_shell() -> Any:
    """Build the IPython shell once in the server; children inherit it through fork."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type
    from traitlets.config import Config

    class _DisplayHook(DisplayHook):
        def start_displayhook(self) -> None:
            self._pending: tuple[dict, dict] | None = None

        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict: dict, md_dict: dict | None = None) -> None:
            self._pending = (format_dict, md_dict or {})

        def finish_displayhook(self) -> None:
            pending = getattr(self, "_pending", None)
            self._pending = None
            if pending and _CHANNEL is not None:
                _CHANNEL.emit(
                    {
                        "output_type": "execute_result",
                        "execution_count": self.prompt_count,
                        "data": pending[0],
                        "metadata": pending[1],
                    }
                )

    class _DisplayPublisher(DisplayPublisher):
        def publish(self, data: dict, metadata: dict | None = None, *args: Any, **kw: Any) -> None:
            if _CHANNEL is not None:
                _CHANNEL.emit(
                    {"output_type": "display_data", "data": data, "metadata": metadata or {}}
                )

        def clear_output(self, wait: bool = False) -> None:
            if _CHANNEL is not None:
                _CHANNEL.out.flush()
                _CHANNEL.err.flush()
                _CHANNEL.send({"t": "clear", "cell": _CHANNEL.cell})

    class _Shell(InteractiveShell):
        displayhook_class = Type(_DisplayHook)
        display_pub_class = Type(_DisplayPublisher)

        def _showtraceback(self, etype: Any, evalue: Any, stb: list[str]) -> None:
            error = {
                "ename": getattr(etype, "__name__", str(etype)),
                "evalue": _safe_str(evalue),
                "traceback": [str(line) for line in stb],
            }
            if _CHANNEL is not None:
                _CHANNEL.error = error
                _CHANNEL.emit({"output_type": "error", **error})

        def ask_exit(self) -> None:  # exit() / quit(): end the submission after this cell
            self.exit_now = True

        def system(self, cmd: str) -> Any:  # `!cmd`: capture through pipes, not the tty
            return self.system_piped(cmd)

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.autocall = 0
    config.InteractiveShell.xmode = "Context"
    return _Shell.instance(config=config)


def _safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:  # a student's exception whose __str__ raises
        return f"<unprintable {type(obj).__name__}>"


class _Pristine:
    """What the server's shell looked like before any student code ran (restored for tests)."""

    def __init__(self, shell: Any) -> None:
        import builtins

        mgr = shell.input_transformer_manager
        self.shell_type = type(shell)
        self.run_cell = type(shell).run_cell
        self.mgr = mgr
        self.cleanup = list(mgr.cleanup_transforms)
        self.line = list(mgr.line_transforms)
        self.token = list(getattr(mgr, "token_transformers", []))
        self.post = list(shell.input_transformers_post)
        self.ast = list(shell.ast_transformers)
        self.events = {name: list(cbs) for name, cbs in shell.events.callbacks.items()}
        self.import_ = builtins.__import__
        self.modules = {
            k: v for k, v in sys.modules.items() if k == "grader" or k.startswith("grader.")
        }
        self.module_dicts = {k: dict(vars(v)) for k, v in self.modules.items()}
        self.callables: list[tuple[Any, dict[str, Any]]] = []
        for name in _GUARDED_MODULES:
            module = sys.modules.get(name)
            if module is not None:
                items = {k: v for k, v in vars(module).items() if callable(v)}
                self.callables.append((module, items))
        torch = sys.modules.get("torch")
        for cls in (
            getattr(torch, "Tensor", None),
            getattr(getattr(torch, "nn", None), "Module", None),
        ):
            if isinstance(cls, type):
                self.callables.append((cls, dict(vars(cls))))

    def restore(self, shell: Any) -> None:
        """Undo input/AST transformers, event hooks, import hooks and patched grader modules."""
        import builtins

        # First the functions a student may have replaced (traitlets needs a working len()).
        for owner, items in self.callables:
            if isinstance(owner, type):
                current = vars(owner)
                for name in [n for n in current if n not in items]:  # e.g. Tensor.tolist = ...
                    with contextlib.suppress(AttributeError, TypeError):
                        delattr(owner, name)
                for name, value in items.items():
                    if current.get(name) is not value:
                        with contextlib.suppress(AttributeError, TypeError):
                            setattr(owner, name, value)
            else:
                namespace = vars(owner)
                for name, value in items.items():
                    if namespace.get(name) is not value:
                        namespace[name] = value
        shell.input_transformer_manager = self.mgr
        self.mgr.cleanup_transforms[:] = self.cleanup
        self.mgr.line_transforms[:] = self.line
        if hasattr(self.mgr, "token_transformers"):
            self.mgr.token_transformers[:] = self.token
        shell.input_transformers_post = list(self.post)
        shell.ast_transformers = list(self.ast)
        for name, cbs in self.events.items():
            shell.events.callbacks[name] = list(cbs)
        shell.custom_exceptions = ()
        builtins.__import__ = self.import_
        sys.settrace(None)
        sys.setprofile(None)
        for name, module in self.modules.items():
            sys.modules[name] = module
            namespace = vars(module)
            namespace.clear()
            namespace.update(self.module_dicts[name])
        sys.meta_path[:] = [f for f in sys.meta_path if not _is_editable_finder(f)]


#: Modules whose functions are put back before a test cell if the student replaced them.
_GUARDED_MODULES = ("builtins", "json", "os", "math", "torch", "torch.nn.functional", "numpy")


def _is_editable_finder(finder: Any) -> bool:
    name = getattr(finder, "__name__", "") or type(finder).__name__
    module = getattr(finder, "__module__", "") or type(finder).__module__
    return "__editable__" in module or "Editable" in name


def _is_memory_error(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno == 12:
        return True
    text = _safe_str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "DefaultCPUAllocator" in text
    )


def _set_probe_sink(channel: _Channel, seed: int) -> None:
    # the staged copy (the runtime only), imported by the server where the course's hidden
    # tests call checks (preload_probe); a course without checks never imports it, nor torch
    probe = sys.modules.get("grader.runtime.probe")
    if probe is None:
        return

    def sink(name: str, record: dict) -> None:
        try:
            channel._dumps(record)
        except (TypeError, ValueError) as exc:
            record = {"type": "invalid", "message": f"record is not JSON data: {exc}"}
        channel.out.flush()
        channel.err.flush()
        channel.send({"t": "rec", "cell": channel.cell, "name": str(name), "record": record})

    setter = getattr(probe, "set_sink", None)
    if callable(setter):
        setter(sink)
    seeder = getattr(probe, "set_seed", None)
    if callable(seeder):
        seeder(seed)


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _user_processes(uid: int) -> int:
    """How many processes of ``uid`` this process can see (RLIMIT_NPROC counts them all)."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                count += os.stat(f"/proc/{name}").st_uid == uid
    return count


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


def _child_setup(settings: dict, workdir: str, uid: int | None, channel_fd: int) -> int:
    """Limits, identity, fds and cwd of a fresh child; returns the channel's fd."""
    import resource

    os.setsid()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in any Python: BrokenPipeError instead
    limits = settings["limits"]
    mem = int(limits["memory_bytes"])
    cpu = max(1, int(limits["cpu_seconds"]))

    def lim(which: int, value: int) -> None:
        value = max(0, int(value))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))

    lim(resource.RLIMIT_AS, _status_bytes("VmSize") + mem)
    lim(resource.RLIMIT_DATA, _status_bytes("VmData") + mem)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    nproc = int(limits["max_processes"])
    if uid is None and os.geteuid() != 0:  # an ordinary user: the limit counts all its processes
        nproc += _user_processes(os.getuid())
    lim(resource.RLIMIT_NPROC, nproc)
    lim(resource.RLIMIT_FSIZE, int(limits["max_file_bytes"]))
    lim(resource.RLIMIT_CORE, 0)
    lim(resource.RLIMIT_NOFILE, 1024)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PDEATHSIG
    os.chdir(workdir)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    fd = 3
    if channel_fd != fd:
        os.dup2(channel_fd, fd)
    os.set_inheritable(fd, False)
    os.closerange(4, 65536)
    os.environ.update({"HOME": workdir, "TMPDIR": workdir})
    os.environ["CONVGRADE_SEED"] = str(settings["seed"])
    os.environ["MPLCONFIGDIR"] = os.path.join(workdir, ".matplotlib")
    tempfile.tempdir = workdir
    return fd


def _child_main(
    request: bytearray, settings: dict, workdir: str, uid: int | None, channel_fd: int, state: dict
) -> None:
    """Run one submission's cells in the inherited shell; never returns.

    ``request`` is the submission's JSON, still unparsed: it is parsed here, in the child, so
    the server never holds one student's code as Python objects that the next child (a copy
    of the server's memory) could dig out.
    """
    global _CHANNEL
    code = 0
    try:
        fd = _child_setup(settings, workdir, uid, channel_fd)
        job = json.loads(request)
        del request
    except BaseException:
        os._exit(_EXIT_SETUP)
    try:
        channel = _CHANNEL = _Channel(fd)
        shell = state["shell"]
        pristine: _Pristine = state["pristine"]
        seed = int(settings["seed"])
        import random

        random.seed(seed)
        for name in ("numpy", "torch"):
            module = sys.modules.get(name)
            if module is not None:
                with contextlib.suppress(Exception):
                    if name == "numpy":
                        module.random.seed(seed)
                    else:
                        module.manual_seed(seed)
        _set_probe_sink(channel, seed)
        shell.user_ns["__file__"] = os.path.join(workdir, "notebook.ipynb")
        for cell in job["cells"]:
            index = int(cell["index"])
            channel.cell = index
            channel.error = None
            channel.send({"t": "start", "cell": index})
            if cell.get("is_test"):
                pristine.restore(shell)
                _set_probe_sink(channel, seed)
            sys.stdout, sys.stderr = channel.out, channel.err
            # Test cells stay out of In/_ih/history: they hold the hidden tests.
            result = pristine.run_cell(shell, cell["source"],
                                       store_history=not cell.get("is_test"))
            channel.out.flush()
            channel.err.flush()
            exc = result.error_before_exec or result.error_in_exec
            error = channel.error
            if exc is not None and error is None:
                error = {"ename": type(exc).__name__, "evalue": _safe_str(exc), "traceback": []}
            channel.send({"t": "done", "cell": index, "error": error})
            stop = None
            if isinstance(exc, SystemExit):
                stop = ("exit", f"sys.exit({exc.code!r})" if exc.code is not None else "sys.exit()")
            elif getattr(shell, "exit_now", False):
                stop = ("exit", "exit()")
            elif _is_memory_error(exc):
                stop = ("memory", _safe_str(exc)[:200])
            if stop is not None:
                channel.send({"t": "stop", "cell": index, "reason": stop[0], "detail": stop[1]})
                break
        channel.send({"t": "end"})
    except BaseException as exc:  # the worker's own code failed (or was broken by the student)
        code = _EXIT_SETUP
        with contextlib.suppress(BaseException):
            import traceback

            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-300:]
            _CHANNEL.send({"t": "fatal", "cell": _CHANNEL.cell, "detail": detail})  # type: ignore[union-attr]
    os._exit(code)


# ==============================================================================================
# Server side (runs inside the sandbox; imports torch once)
# ==============================================================================================


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
    """Entry point of the fork server (``python convgrade_worker.py CONFIG_JSON``)."""
    config = json.loads(argv[1])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        _Server(config).serve()
    except BrokenPipeError:
        pass


# ==============================================================================================
# Parent side
# ==============================================================================================


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
            nl = self.buf.find(b"\n", 0, 32)
            if nl >= 0:
                break
            if len(self.buf) >= 32:
                raise _ServerLost("garbage")
            self._fill(deadline)
        try:
            kind, size_text = bytes(self.buf[:nl]).split(b" ")
            size = int(size_text)
        except ValueError as exc:
            raise _ServerLost("garbage") from exc
        if kind not in (b"R", b"C", b"E") or not 0 <= size <= _FRAME_MAX:
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
    names the bwrap executable; ``package_dir`` is the ``grader/`` directory to stage (tests
    pass a stub). ``seed`` seeds random, numpy, torch and ``grader.runtime.probe.set_seed`` if
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
        from grader.engine import sandbox as sandbox_mod

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
                   else Path(__file__).resolve().parents[1])
        try:
            self._stage = sandbox_mod.stage(package, Path(__file__).resolve(), self._root / "stage")
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


if __name__ == "__main__":
    _server_main(sys.argv)
