"""The forked child: runs one submission's cells in the warm server's IPython shell.

Runs inside the sandbox, in a child the fork server (:mod:`grader.engine.execute.server`)
forked for one submission: it sets its limits and identity (:func:`_child_setup`), parses the
request, runs the code cells in notebook order in the inherited shell (so magics, ``display``
and last-expression results behave as in Jupyter) and sends what happened as JSON lines on its
result pipe (:class:`_Channel`). Before each test cell the shell is put back as it was before
any student code ran (:class:`_Pristine`). Only the standard library is imported at top level.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import sys
import tempfile
from typing import Any

from grader.engine.execute.protocol import _EXIT_CHANNEL, _EXIT_SETUP


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
        # the grader modules the hidden checks use; not this machinery (the server and child
        # themselves, whose state, e.g. _CHANNEL, changes after the snapshot)
        self.modules = {
            k: v for k, v in sys.modules.items()
            if (k == "grader" or k.startswith("grader.")) and not _is_execute_module(k)
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


def _is_execute_module(name: str) -> bool:
    """Whether ``name`` is a module of this package (grader.engine.execute)."""
    return name == __package__ or name.startswith(f"{__package__}.")


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

