"""The bubblewrap sandbox around the warm fork servers of :mod:`grader.engine.execute`.

Each fork server runs as ``bwrap ... python convgrade_worker.py`` with

* new IPC, PID, network, UTS and (where possible) cgroup namespaces: no network at all, and the
  server and its children see only each other in ``/proc``;
* a root file system made of read-only binds of what Python and torch need (``/usr`` and the
  usrmerge links ``/bin``, ``/lib*``, ``/sbin``; the dynamic loader's files from ``/etc``; the
  base interpreter's prefix at its own path; the virtual environment at ``/venv``), a
  read-only *stage* at ``/opt/convgrade`` holding a copy of ``grader/`` reduced to
  ``grader.runtime.staging.staged_files`` (the fork server's modules, the runtime, each
  assignment's declarations and cases) plus the server script, a private tmpfs ``/tmp``, a
  fresh ``/proc`` and a minimal ``/dev``. The repository, ``gradebook.db``, ``source/``, other
  students' files and ``/root`` are not mounted, so they do not exist inside;
* ``--die-with-parent`` and ``--new-session``.

When the grader runs as root, bwrap is not given a user namespace. The server keeps only the
capabilities it needs to supervise (``CAP_SETUID``, ``CAP_SETGID``, ``CAP_KILL``, ``CAP_CHOWN``,
``CAP_DAC_OVERRIDE``, ``CAP_FOWNER``) and every student child drops to its own unprivileged uid
with no capabilities, which is what makes ``RLIMIT_NPROC`` bite: the kernel ignores that limit
for uid 0, also for uid 0 mapped into a user namespace (measured: a fork bomb under
``bwrap --unshare-user --uid 65534`` as root is not stopped; with a real unprivileged uid it
stops at the limit). As an ordinary user, bwrap gets ``--unshare-all`` (user namespace
included) and the rlimits apply to that user directly.

Inside, the child can write only to its own working directory under the private /tmp
(``/tmp`` itself, ``/dev/shm`` and every bind are read-only or root-owned). bwrap 0.8 cannot
cap a tmpfs's size, so the server watches /tmp's usage instead
(:mod:`grader.engine.execute.server`).
Not done here: seccomp filtering, and a cgroup for the whole sandbox (memory and pids are
limited per process with rlimits; ``max_processes`` x ``memory_bytes`` is the worst case).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader.runtime.staging import SERVER_FILES, staged_files

__all__ = [
    "BWRAP_ENV",
    "SANDBOX_STAGE",
    "SANDBOX_VENV",
    "SandboxUnavailable",
    "ServerCommand",
    "bwrap_argv",
    "find_bwrap",
    "server_command",
    "smoke_test",
    "stage",
    "worker_modules",
]

#: Environment variable naming the bwrap executable (tests point it at a missing path).
BWRAP_ENV = "CONVGRADE_BWRAP"
#: Where the stage is mounted inside the sandbox.
SANDBOX_STAGE = "/opt/convgrade"
#: Where the virtual environment is mounted inside the sandbox.
SANDBOX_VENV = "/venv"
#: Name of the fork-server script in the stage (a copy of grader/engine/execute/launcher.py,
#: which runs the staged grader.engine.execute.server).
SERVER_SCRIPT = "convgrade_worker.py"

_SERVER_CAPS = (
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_KILL",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
)
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
)
_INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap) or pass --no-sandbox (WorkerPool(sandbox=False)) to grade without isolation"
)


def _mpl_backend() -> str:
    import importlib.util

    try:
        found = importlib.util.find_spec("matplotlib_inline") is not None
    except (ImportError, ValueError):
        found = False
    return "module://matplotlib_inline.backend_inline" if found else "Agg"


_MPL_BACKEND = _mpl_backend()


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot start a sandbox on this machine."""


def find_bwrap(path: str | None = None) -> str:
    """Return the bwrap executable to use.

    ``path`` wins, then the ``CONVGRADE_BWRAP`` environment variable, then ``bwrap`` on PATH.
    Raises :class:`SandboxUnavailable` (saying how to install it) when it does not exist.
    """
    candidate = path or os.environ.get(BWRAP_ENV) or shutil.which("bwrap")
    if not candidate:
        raise SandboxUnavailable(f"sandbox unavailable: bwrap not found on PATH; {_INSTALL_HINT}")
    resolved = shutil.which(candidate) if os.sep not in candidate else candidate
    if not resolved or not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise SandboxUnavailable(
            f"sandbox unavailable: bwrap executable {candidate!r} does not exist; {_INSTALL_HINT}"
        )
    return resolved


def worker_modules(package_dir: Path) -> tuple[str, ...]:
    """The files of ``package_dir`` (grader/) the worker may see, relative paths.

    The explicit declaration of :func:`grader.runtime.staging.staged_files` (the runtime and
    each assignment's declarations and cases); it imports no torch.
    """
    return staged_files(Path(package_dir))


#: The grader package this engine runs from: the fork server's modules are staged from here.
ENGINE_PACKAGE = Path(__file__).resolve().parents[1]


def stage(package_dir: Path, server_script: Path, dest: Path | None = None) -> Path:
    """Build the read-only stage: ``grader/`` with the worker modules only, plus the server.

    The worker modules of ``package_dir`` (:func:`worker_modules`) are copied from it; the fork
    server's own modules (``grader.runtime.staging.SERVER_FILES``) always from the running
    engine (:data:`ENGINE_PACKAGE`), and ``server_script`` as :data:`SERVER_SCRIPT`.
    Returns the stage directory (a new temporary directory unless ``dest`` is given); the
    caller removes it. Packages on the way to a staged file get an empty ``__init__.py`` if
    the declaration stages none.
    """
    root = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="convgrade-stage-"))
    pkg = root / "grader"
    pkg.mkdir(parents=True, exist_ok=True)
    sources = {name: Path(package_dir) / name for name in worker_modules(Path(package_dir))}
    sources.update({name: ENGINE_PACKAGE / name for name in SERVER_FILES})
    for name, source in sources.items():
        target = pkg / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    for folder in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
        if not (folder / "__init__.py").exists():
            (folder / "__init__.py").write_text("")
    shutil.copyfile(server_script, root / SERVER_SCRIPT)
    for path in [root, pkg, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return root


def _in_venv() -> bool:
    return os.path.realpath(sys.prefix) != os.path.realpath(sys.base_prefix)


def _as_root() -> bool:
    return os.geteuid() == 0


def _grader_dirs() -> list[str]:
    """Where the grader package is installed for this interpreter (resolved paths)."""
    import importlib.util

    dirs: set[str] = set()
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec("grader")
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.add(os.path.realpath(location))
    return sorted(dirs)


def _hidden_installs() -> list[str]:
    """Sandbox paths of installed copies of grader/ (a non-editable ``pip install .`` puts
    reference.py into site-packages, which the sandbox mounts): hidden under empty tmpfs."""
    prefix, base = os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)
    hidden = []
    for path in _grader_dirs():
        if _in_venv() and (path + os.sep).startswith(prefix + os.sep):
            hidden.append(os.path.join(SANDBOX_VENV, os.path.relpath(path, prefix)))
        elif (path + os.sep).startswith(base + os.sep) or path.startswith("/usr/"):
            hidden.append(path)
    return hidden


def bwrap_argv(bwrap: str, stage_dir: Path) -> list[str]:
    """The bwrap options (without the command) for a fork server over ``stage_dir``."""
    argv = [bwrap]
    if _as_root():
        # No user namespace: children must drop to a real unprivileged uid for RLIMIT_NPROC.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
        for cap in _SERVER_CAPS:
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-all"]
    argv += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    bound: set[str] = set()
    made: set[str] = set()

    def ro_bind(src: str, dst: str | None = None) -> None:
        dst = dst or src
        if dst in bound:
            return
        bound.add(dst)
        # bwrap creates missing parents 0700 (or copies the host's /root 0700): make them
        # traversable for the unprivileged child. They stay empty apart from the binds.
        for parent in list(Path(dst).parents)[::-1][1:]:
            if str(parent) not in made:
                made.add(str(parent))
                argv.extend(["--perms", "0755", "--dir", str(parent)])
        argv.extend(["--ro-bind", src, dst])

    ro_bind("/usr")
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            ro_bind(top)
    for path in _ETC_FILES:
        if os.path.exists(path):
            ro_bind(path)
    base = os.path.realpath(sys.base_prefix)
    if not base.startswith("/usr/") and base != "/usr":
        ro_bind(base)
    if _in_venv():
        ro_bind(os.path.realpath(sys.prefix), SANDBOX_VENV)
    ro_bind(str(stage_dir), SANDBOX_STAGE)
    for path in _hidden_installs():
        argv += ["--tmpfs", path, "--remount-ro", path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"]
    argv += ["--clearenv"]
    return argv


def sandbox_python() -> str:
    """The interpreter path as seen inside the sandbox."""
    exe = sys.executable
    if _in_venv():
        prefix = os.path.realpath(sys.prefix)
        rel = os.path.relpath(os.path.abspath(exe), os.path.abspath(sys.prefix))
        if rel.startswith(".."):
            rel = os.path.relpath(os.path.realpath(exe), prefix)
        return os.path.join(SANDBOX_VENV, rel)
    return exe


@dataclass
class ServerCommand:
    """How to start one fork server: argv, environment, and where the stage is seen."""

    argv: list[str]
    env: dict[str, str]
    stage_path: str
    sandboxed: bool


def _base_env(stage_path: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "PYTHONPATH": stage_path,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        # Figures become image/png display_data, as in Jupyter (plain Agg if not installed).
        "MPLBACKEND": _MPL_BACKEND,
        "TMPDIR": "/tmp",
    }


def server_command(
    stage_dir: Path, *, sandbox: bool, bwrap: str | None, config: str
) -> ServerCommand:
    """The command line that starts a fork server on ``stage_dir``.

    ``config`` is the JSON text the server reads from its first argument. With ``sandbox``
    the command is wrapped in bwrap (``bwrap`` must come from :func:`find_bwrap`).
    """
    if not sandbox:
        env = _base_env(str(stage_dir))
        env["TMPDIR"] = env["HOME"] = tempfile.gettempdir()
        argv = [sys.executable, "-s", str(Path(stage_dir) / SERVER_SCRIPT), config]
        return ServerCommand(argv, env, str(stage_dir), False)
    assert bwrap is not None
    env = _base_env(SANDBOX_STAGE)
    argv = bwrap_argv(bwrap, stage_dir)
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += [sandbox_python(), "-s", f"{SANDBOX_STAGE}/{SERVER_SCRIPT}", config]
    return ServerCommand(argv, {}, SANDBOX_STAGE, True)


_SMOKE_OK: dict[tuple[str, str], None] = {}


def smoke_test(bwrap: str, stage_dir: Path, timeout: float = 30.0) -> None:
    """Start the sandboxed interpreter once and check it runs; raise SandboxUnavailable if not.

    The result is cached per bwrap executable and interpreter for the life of the process.
    """
    key = (bwrap, sys.executable)
    if key in _SMOKE_OK:
        return
    argv = bwrap_argv(bwrap, stage_dir)
    for k, v in _base_env(SANDBOX_STAGE).items():
        argv += ["--setenv", k, v]
    argv += [sandbox_python(), "-s", "-S", "-c", "import sys; sys.stdout.write('sandbox-ok')"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(
            f"sandbox unavailable: cannot run {bwrap}: {exc}; {_INSTALL_HINT}"
        ) from exc
    if proc.returncode != 0 or proc.stdout != b"sandbox-ok":
        detail = proc.stderr.decode("utf-8", "replace").strip()[-500:] or f"exit {proc.returncode}"
        raise SandboxUnavailable(
            f"sandbox unavailable: bwrap smoke test failed: {detail}; {_INSTALL_HINT}"
        )
    _SMOKE_OK[key] = None
