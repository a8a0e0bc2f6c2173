"""grader.engine.sandbox: what a submission can and cannot see or do inside bubblewrap."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from refs import ASSIGNMENTS

from grader.engine import sandbox
from grader.engine.execute.pool import CellJob, Limits, RunResult, SandboxUnavailable, WorkerPool
from grader.runtime.staging import SERVER_FILES, staged_files

REPO = Path(__file__).resolve().parents[1]
SMALL = Limits(
    wall_seconds=5.0,
    cpu_seconds=3,
    memory_bytes=2**30,
    max_processes=16,
    max_output_bytes=2**20,
    max_file_bytes=8 * 2**20,
)


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    """A sandboxed fork server over the real grader package."""
    os.environ["CONVGRADE_TEST_SECRET"] = "must-not-leak"
    with WorkerPool(1, sandbox=True, limits=SMALL, preload_matplotlib=False) as p:
        yield p
    os.environ.pop("CONVGRADE_TEST_SECRET", None)


def run(p: WorkerPool, *sources: str) -> RunResult:
    return p.run([CellJob(index=i, source=s) for i, s in enumerate(sources)])


def stdout(result: RunResult, cell: int = 0) -> str:
    assert result.cells[cell].error is None, result.cells[cell].error
    return "".join(
        o.get("text", "") for o in result.cells[cell].outputs if o["output_type"] == "stream"
    )


def test_no_network(pool: WorkerPool) -> None:
    result = run(
        pool,
        "import socket\n"
        "for addr in [('151.101.0.223', 443), ('1.1.1.1', 53), ('127.0.0.1', 22)]:\n"
        "    s = socket.socket()\n"
        "    s.settimeout(2)\n"
        "    try:\n"
        "        s.connect(addr)\n"
        "        print('connected', addr)\n"
        "    except OSError as e:\n"
        "        print('blocked', type(e).__name__)\n",
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('pypi.org', 443)\n"
        "    print('resolved')\n"
        "except OSError:\n"
        "    print('no dns')\n",
    )
    assert "connected" not in stdout(result, 0)
    assert stdout(result, 1) == "no dns\n"


@pytest.mark.parametrize(
    "path",
    [
        str(REPO),
        str(REPO / "grader" / "reference.py"),
        str(REPO / "gradebook.db"),
        str(REPO / "source"),
        "/root/.ssh",
        "/root/.bashrc",
        "/work",
        "/home",
    ],
)
def test_host_paths_are_invisible(pool: WorkerPool, path: str) -> None:
    result = run(pool, f"import os\nprint(os.path.exists({path!r}))")
    assert stdout(result) == "False\n"


def test_root_holds_only_the_interpreter_path(pool: WorkerPool) -> None:
    result = run(pool, "import os\nprint(os.listdir('/root') if os.path.isdir('/root') else [])")
    assert stdout(result).strip() in ("[]", "['.pyenv']")


#: Modules of the grader that exist outside the worker only (references, mistakes, the judge).
NOT_STAGED = ("grader.reference", "grader.checks", "grader.hints", "grader.registry",
              "grader.mistakes", "grader.records", "grader.course.channels_pooling.reference",
              "grader.course.channels_pooling.mistakes", "grader.course.conv_basics.judges",
              "grader.engine.execute.pool", "grader.engine.execute.launcher",
              "grader.engine.sandbox", "grader.engine.autograde", "grader.engine.gradebook")
#: The fork server's own modules: staged, and importable inside (the server runs from them).
SERVER_MODULES = ("grader.engine.execute.protocol", "grader.engine.execute.child",
                  "grader.engine.execute.server")


def test_only_worker_modules_are_staged(pool: WorkerPool) -> None:
    result = run(
        pool,
        "import grader, os\nroot = os.path.dirname(grader.__file__)\n"
        "print(sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)"
        " for f in fs if '__pycache__' not in d))",
        *(f"import {module}" for module in NOT_STAGED),
    )
    listed = eval(stdout(result, 0))  # noqa: S307 - our own printed list
    allowed = set(sandbox.worker_modules(REPO / "grader"))
    assert set(listed) <= allowed, set(listed) - allowed
    assert "runtime/probe.py" in listed and "course/channels_pooling/cases.py" in listed
    for module, cell in zip(NOT_STAGED, result.cells[1:], strict=True):
        assert cell.error is not None and cell.error["ename"] == "ModuleNotFoundError", module


def test_the_server_runs_from_its_staged_modules(pool: WorkerPool) -> None:
    """The fork server and the child are staged modules; the pool and the sandbox are not."""
    result = run(
        pool,
        "import sys\nprint(sorted(m for m in sys.modules if m.startswith('grader.engine')))",
        *(f"import {module}" for module in SERVER_MODULES),
    )
    loaded = eval(stdout(result, 0))  # noqa: S307 - our own printed list
    assert set(SERVER_MODULES) <= set(loaded), loaded
    assert not {"grader.engine.execute.pool", "grader.engine.sandbox"} & set(loaded), loaded
    for module, cell in zip(SERVER_MODULES, result.cells[1:], strict=True):
        assert cell.error is None, (module, cell.error)


def test_environment_is_clean(pool: WorkerPool) -> None:
    result = run(
        pool,
        "import os\nprint('CONVGRADE_TEST_SECRET' in os.environ, os.getcwd().startswith('/tmp/'))",
    )
    assert stdout(result) == "False True\n"


def test_read_only_system_and_unprivileged_child(pool: WorkerPool) -> None:
    result = run(
        pool,
        "import os, sys\nprint(os.getuid() != 0, os.getgid() != 0)",
        "import sys\nopen(sys.prefix + '/evil.txt', 'w')",
        "open('/usr/evil.txt', 'w')",
        "open('/tmp/evil.txt', 'w')",
    )
    assert stdout(result, 0) == "True True\n"
    for cell in result.cells[1:]:
        assert cell.error is not None and cell.error["ename"] in ("PermissionError", "OSError")


def test_fork_bomb_stops_at_the_process_limit(pool: WorkerPool) -> None:
    result = run(
        pool,
        "import os, time\nn = 0\ntry:\n"
        "    for _ in range(200):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('stopped', n, e.errno)\n",
    )
    assert result.error is None
    words = stdout(result).split()
    assert words[0] == "stopped" and int(words[1]) < SMALL.max_processes and words[2] == "11"
    after = run(pool, "import os\nprint(sum(p.isdigit() for p in os.listdir('/proc')))")
    assert int(stdout(after)) <= 3  # the sleeping children were killed


def test_file_limits(pool: WorkerPool) -> None:
    big = run(pool, "open('big.bin', 'wb').write(b'x' * 9 * 2**20)")
    assert big.cells[0].error is not None and big.cells[0].error["ename"] == "OSError"  # EFBIG
    many = run(pool, "for i in range(40):\n    open(f'f{i}', 'wb').write(b'x' * 2**20)")
    assert many.error is not None and "wrote more than 8 MB of files" in many.error
    after = run(pool, "import shutil\nprint(shutil.disk_usage('/tmp').used < 4 * 2**20)")
    assert stdout(after) == "True\n"


def test_missing_bwrap_raises(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="bwrap executable .* does not exist"):
        WorkerPool(1, sandbox=True, bwrap=str(tmp_path / "no-such-bwrap"))


def test_missing_bwrap_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(sandbox.BWRAP_ENV, str(tmp_path / "missing" / "bwrap"))
    with pytest.raises(SandboxUnavailable, match="--no-sandbox"):
        WorkerPool(1)


def test_broken_bwrap_fails_the_smoke_test(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="smoke test failed.*namespace"):
        WorkerPool(1, sandbox=True, bwrap=str(fake))


def test_no_sandbox_needs_no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(sandbox.BWRAP_ENV, str(tmp_path / "missing"))
    WorkerPool(1, sandbox=False).close()  # servers start lazily: nothing to run here


def test_worker_modules_are_declared_explicitly() -> None:
    """The stage is grader.runtime.staging's list: the runtime and each assignment's
    declarations and cases; never a reference, a mistake, a judge or the engine."""
    staged = sandbox.worker_modules(REPO / "grader")
    assert staged == staged_files(REPO / "grader")
    assert {"__init__.py", "engine/forbidden.py", "runtime/probe.py",
            "runtime/declare.py"} <= set(staged)
    assert set(SERVER_FILES) <= set(staged)
    assert not {"engine/execute/pool.py", "engine/execute/launcher.py", "engine/sandbox.py",
                "engine/autograde.py"} & set(staged)
    for assignment in ASSIGNMENTS:
        assert f"course/{assignment}/cases.py" in staged
        assert f"course/{assignment}/exercises.py" in staged
    # the trusted stand-ins of the answers other exercises use (Exercise.uses)
    assert "course/channels_pooling/standins.py" in staged
    for name in staged:
        assert Path(name).name not in ("reference.py", "mistakes.py", "judges.py", "checks.py",
                                       "registry.py"), name
    # the declaration is read without torch: the grader's process starts workers cheaply
    code = ("import sys, grader.runtime.staging, grader.engine.sandbox\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_stage_copies_only_worker_modules(tmp_path: Path) -> None:
    pkg = tmp_path / "grader"
    for name in ("__init__.py", "checks.py", "runtime/__init__.py", "runtime/probe.py",
                 "course/__init__.py", "course/a1/__init__.py", "course/a1/cases.py",
                 "course/a1/exercises.py", "course/a1/reference.py", "course/a1/mistakes.py"):
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text("")
    server = tmp_path / "worker.py"
    server.write_text("")
    staged = sandbox.stage(pkg, server, tmp_path / "stage")
    # the stub's worker modules, and the fork server's own modules from the running engine
    assert sorted(str(p.relative_to(staged / "grader")) for p in (staged / "grader").rglob("*.py")
                  ) == sorted(["__init__.py", "course/__init__.py", "course/a1/__init__.py",
                               "course/a1/cases.py", "course/a1/exercises.py",
                               "runtime/__init__.py", "runtime/probe.py", *SERVER_FILES])
    for name in SERVER_FILES:
        assert (staged / "grader" / name).read_bytes() == (REPO / "grader" / name).read_bytes()
    assert (staged / sandbox.SERVER_SCRIPT).exists()


def test_an_installed_copy_of_grader_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-editable install puts grader/reference.py into site-packages: it is covered."""
    import sys

    def covered() -> list[str]:
        argv = sandbox.bwrap_argv("/usr/bin/bwrap", Path("/nonexistent-stage"))
        return [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs" and argv[i + 1] != "/tmp"]

    site = Path(os.path.realpath(sys.prefix)) / "lib" / "python3" / "site-packages" / "grader"
    monkeypatch.setattr(sandbox, "_grader_dirs", lambda: [str(site)])
    [inside] = covered()
    assert inside.endswith("site-packages/grader")
    assert inside.startswith(sandbox.SANDBOX_VENV) or inside == str(site)
    monkeypatch.setattr(sandbox, "_grader_dirs", lambda: [str(REPO / "grader")])  # editable
    assert covered() == []
