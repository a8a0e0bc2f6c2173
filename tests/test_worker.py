"""grader.engine.execute: warm fork servers run submissions with Jupyter-like outputs, isolated
state, probe records tagged by cell, and a clear error for every kind of abuse.

The servers here use a stub ``grader`` package (``package_dir``) so the tests do not depend on
the real probe, and small limits so the abuse cases stay fast.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.engine.execute.pool import CellJob, CellResult, Limits, RunResult, WorkerPool

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

SMALL = Limits(
    wall_seconds=2.5,
    cpu_seconds=1,
    memory_bytes=2**30,
    max_processes=16,
    max_output_bytes=2**20,
    max_file_bytes=8 * 2**20,
)

STUB_PROBE = '''
"""A stand-in for grader.runtime.probe: records what the student's function returns."""
_sink = None
_seed = None


def set_sink(sink, seed=None):
    global _sink
    _sink = sink


def set_seed(seed):
    global _seed
    _seed = seed


def check_double(double):
    _sink("double", {"value": double(21), "seed": _seed})
    return None
'''


@pytest.fixture(scope="session")
def stub_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grader/ directory with a stub probe and a reference that must never be staged."""
    pkg = tmp_path_factory.mktemp("stub") / "grader"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            def __getattr__(name):
                if name.startswith("check_"):
                    from grader.runtime import probe
                    return getattr(probe, name)
                raise AttributeError(name)
            """
        )
    )
    (pkg / "runtime").mkdir()
    (pkg / "runtime" / "__init__.py").write_text("")
    (pkg / "runtime" / "probe.py").write_text(STUB_PROBE)
    (pkg / "reference.py").write_text("SECRET = 'reference answers'\n")
    (pkg / "checks.py").write_text("SECRET = 'judging code'\n")
    return pkg


@pytest.fixture(scope="module")
def pool(stub_package: Path) -> Iterator[WorkerPool]:
    """One sandboxed fork server shared by the tests of this module."""
    with WorkerPool(
        1, sandbox=True, limits=SMALL, seed=7, package_dir=stub_package, preload_matplotlib=False
    ) as p:
        yield p


@pytest.fixture(scope="module")
def plain_pool(stub_package: Path) -> Iterator[WorkerPool]:
    """Two fork servers without bubblewrap (rlimits only)."""
    with WorkerPool(
        2, sandbox=False, limits=SMALL, seed=7, package_dir=stub_package, preload_matplotlib=False
    ) as p:
        yield p


def cells(*sources: str, tests: tuple[int, ...] = ()) -> list[CellJob]:
    """Code cells numbered 0.. (cells listed in ``tests`` are autograded test cells)."""
    return [
        CellJob(
            index=i, source=s, is_test=i in tests, grade_id=f"c{i}_tests" if i in tests else None
        )
        for i, s in enumerate(sources)
    ]


def text_of(cell: CellResult, name: str = "stdout") -> str:
    """All stream text of one kind in a cell."""
    return "".join(
        o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == name
    )


def assert_next_runs(p: WorkerPool) -> None:
    """After an abuse case, the pool still runs an ordinary submission."""
    result = p.run(cells("print(6 * 7)"))
    assert result.error is None, result.error
    assert text_of(result.cells[0]) == "42\n"


# -- ordinary behaviour ------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["pool", "plain_pool"])
def test_outputs_and_last_expression(which: str, request: pytest.FixtureRequest) -> None:
    p: WorkerPool = request.getfixturevalue(which)
    result = p.run(
        cells(
            "import torch\nprint('hello')\ntorch.ones(2)",
            "import sys\nprint('warn', file=sys.stderr)\nx = 3\nx;",
            "from IPython.display import display, Markdown\n"
            "display(Markdown('**hi**'))\n%time y = 1",
        )
    )
    assert isinstance(result, RunResult)
    assert result.error is None
    assert [c.index for c in result.cells] == [0, 1, 2]
    first = result.cells[0]
    assert first.outputs[0] == {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    assert first.outputs[1]["output_type"] == "execute_result"
    assert first.outputs[1]["data"]["text/plain"] == "tensor([1., 1.])"
    assert isinstance(first.outputs[1]["execution_count"], int)
    second = result.cells[1]
    assert text_of(second, "stderr") == "warn\n"
    assert not [o for o in second.outputs if o["output_type"] == "execute_result"]  # `x;`
    third = result.cells[2]
    display = [o for o in third.outputs if o["output_type"] == "display_data"]
    assert display and display[0]["data"]["text/markdown"] == "**hi**"
    assert "Wall time" in text_of(third)  # the %time magic works
    json.dumps([c.outputs for c in result.cells])  # nbformat outputs are plain JSON


def test_errors_have_ename_evalue_and_traceback(pool: WorkerPool) -> None:
    result = pool.run(cells("def f():\n    return 1 / 0", "f()", "print('still runs')"))
    assert result.error is None  # an exception in a cell is the cell's error, as in Jupyter
    err = result.cells[1].error
    assert err is not None and err["ename"] == "ZeroDivisionError"
    assert err["evalue"] == "division by zero"
    assert any("1 / 0" in line for line in err["traceback"])
    assert result.cells[1].outputs[-1]["output_type"] == "error"
    assert text_of(result.cells[2]) == "still runs\n"


def test_syntax_error_is_a_cell_error(pool: WorkerPool) -> None:
    result = pool.run(cells("def broken(:\n    pass", "print('next')"))
    assert result.cells[0].error is not None and result.cells[0].error["ename"] == "SyntaxError"
    assert text_of(result.cells[1]) == "next\n"


def test_probe_records_are_tagged_with_their_cell(pool: WorkerPool) -> None:
    result = pool.run(
        cells(
            "def double(x):\n    return 2 * x",
            "print('not a test')",
            "from grader import check_double\ncheck_double(double)",
            tests=(2,),
        )
    )
    assert result.error is None
    assert [c.records for c in result.cells[:2]] == [[], []]
    assert result.cells[2].records == [("double", {"value": 42, "seed": 7})]


def test_judging_modules_are_not_staged(pool: WorkerPool) -> None:
    result = pool.run(
        cells("import grader.course.channels_pooling.reference", "import grader.checks",
              "import grader.runtime.probe\nprint('ok')")
    )
    assert [c.error and c.error["ename"] for c in result.cells[:2]] == ["ModuleNotFoundError"] * 2
    assert text_of(result.cells[2]) == "ok\n"


def test_cwd_is_a_fresh_private_dir(pool: WorkerPool) -> None:
    first = pool.run(cells("import os\nprint(os.listdir('.'))\nopen('left.txt', 'w').write('x')"))
    second = pool.run(cells("import os\nprint(os.listdir('.'), os.path.exists('left.txt'))"))
    assert text_of(first.cells[0]) == "[]\n"
    assert text_of(second.cells[0]) == "[] False\n"


# -- no state leaks between submissions -----------------------------------------------------------

LEAKS = [
    "import torch\ntorch.allclose = lambda *a, **k: True",
    "import torch\ntorch.Tensor.sum = lambda self, *a, **k: 0",
    "secret_global = 'from student A'",
    "import builtins\nbuiltins.print = lambda *a, **k: None",
    "import sys\nsys.modules['grader.runtime.probe'] = None",
    "get_ipython().ast_transformers.append(None)",
]

PROBE_LEAKS = """
import torch
assert not torch.allclose(torch.zeros(1), torch.ones(1)), "torch.allclose is patched"
assert torch.tensor([1.0, 2.0]).sum().item() == 3.0, "Tensor.sum is patched"
assert 'secret_global' not in globals(), "a global leaked"
assert not get_ipython().ast_transformers, "an AST transformer leaked"
import grader.runtime.probe
print('clean')
"""


@pytest.mark.parametrize("which", ["pool", "plain_pool"])
def test_state_does_not_leak(which: str, request: pytest.FixtureRequest) -> None:
    p: WorkerPool = request.getfixturevalue(which)
    for source in LEAKS:
        p.run(cells(source))
        result = p.run(cells(PROBE_LEAKS))
        assert result.error is None and result.cells[0].error is None, (source, result)
        assert text_of(result.cells[0]) == "clean\n", source


def test_test_cells_get_pristine_transformers_and_probe(pool: WorkerPool) -> None:
    result = pool.run(
        cells(
            "def double(x):\n    return 2 * x",
            # The student rewrites every later cell and fakes the probe's record.
            "import grader.runtime.probe as P\n"
            "P.check_double = lambda f: P._sink('double', {'value': 999})\n"
            "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
            "from grader import check_double\ncheck_double(double)",
            tests=(2,),
        )
    )
    assert result.cells[2].records == [("double", {"value": 42, "seed": 7})]


def test_test_cells_undo_patched_torch_and_builtins(pool: WorkerPool) -> None:
    result = pool.run(
        cells(
            "import torch, builtins\n"
            "torch.Tensor.tolist = lambda self: 'forged'\n"
            "torch.zeros = lambda *a, **k: 'forged'\n"
            "builtins.len = lambda x: -1",
            "import torch\nprint(torch.ones(2).tolist(), torch.zeros(1).tolist(), len('ab'))",
            tests=(1,),
        )
    )
    assert text_of(result.cells[1]) == "[1.0, 1.0] [0.0] 2\n"


def test_seed_is_the_same_in_every_child(pool: WorkerPool) -> None:
    source = "import torch, random\nprint(torch.rand(1).item(), random.random())"
    a, b = pool.run(cells(source)), pool.run(cells(source))
    assert text_of(a.cells[0]) == text_of(b.cells[0])


# -- abuse: each gets a clear error and the next submission still runs --------------------------

ABUSE: dict[str, tuple[str, str | tuple[str, ...]]] = {
    "os_exit": ("import os\nos._exit(0)", "the kernel exited (exit code 0) in cell 1"),
    "segfault": ("import ctypes\nctypes.string_at(0)", "the kernel crashed (signal 11) in cell 1"),
    # On a loaded machine the wall clock may run out before 1 s of CPU time: both are right.
    "busy_loop": (
        "while True:\n    pass",
        ("used more than 1 s of CPU time in cell 1", "timed out"),
    ),
    "sleep": ("import time\ntime.sleep(100)", "timed out after 2.5 s in cell 1"),
    "allocate_20_gb": ("x = bytearray(20 * 2**30)", "used more than 1 GiB of memory in cell 1"),
    "torch_20_gb": (
        "import torch\nx = torch.empty(5 * 2**30)",
        "used more than 1 GiB of memory in cell 1",
    ),
    "print_1_gb": ("while True:\n    print('x' * 2**20)", "printed more than 1 MB in cell 1"),
    "close_fds": (
        "import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n"
        "    except OSError:\n        pass\nprint('x')",
        "closed or broke the grader's result channel in cell 1",
    ),
    "garbage_on_fd": (
        "import os\nos.write(3, b'\\x00garbage\\n')",
        "malformed data (a line that is not JSON)",
    ),
    "forged_end": ('import os\nos.write(3, b\'{"t": "end"}\\n\')', "malformed data"),
    "sys_exit": (
        "import sys\nsys.exit(3)",
        "called sys.exit(3) in cell 1; the cells after it did not run",
    ),
    "exit": ("exit()", "called exit() in cell 1"),
}


@pytest.mark.parametrize("case", sorted(ABUSE))
def test_abuse_gives_a_clear_error(case: str, pool: WorkerPool) -> None:
    source, expected = ABUSE[case]
    result = pool.run(cells("a = 1", source, "print('never')"))
    options = expected if isinstance(expected, tuple) else (expected,)
    assert result.error is not None and any(e in result.error for e in options), result.error
    assert [c.index for c in result.cells] == [0, 1]  # later cells left out
    assert result.cells[0].error is None
    assert result.cells[1].error is not None or case == "exit"
    assert_next_runs(pool)


@pytest.mark.parametrize(
    "case", ["os_exit", "segfault", "allocate_20_gb", "print_1_gb", "garbage_on_fd"]
)
def test_abuse_without_sandbox(case: str, plain_pool: WorkerPool) -> None:
    source, expected = ABUSE[case]
    result = plain_pool.run(cells("a = 1", source, "print('never')"))
    assert result.error is not None and expected in result.error, result.error
    assert_next_runs(plain_pool)


def test_fork_bomb_is_contained(pool: WorkerPool) -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = pool.run(cells(bomb))
    assert result.error is not None
    assert "timed out" in result.error or "CPU time" in result.error
    after = pool.run(cells("import os\nprint(sum(p.isdigit() for p in os.listdir('/proc')))"))
    assert after.error is None
    assert int(text_of(after.cells[0])) <= 3  # bwrap's init, the server and this child


def test_killing_the_server_reports_and_restarts(plain_pool: WorkerPool) -> None:
    result = plain_pool.run(cells("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"))
    assert result.error is not None and "worker process died" in result.error
    assert_next_runs(plain_pool)  # the dead server was restarted
    assert sum(info["starts"] for info in plain_pool.server_info()) >= 2


def test_map_runs_in_parallel_and_reports_positions(plain_pool: WorkerPool) -> None:
    subs = [cells(f"print({i} * 2)") for i in range(5)]
    subs[3] = cells("import os\nos._exit(1)")
    seen = dict(plain_pool.map(subs))
    assert sorted(seen) == [0, 1, 2, 3, 4]
    for i in (0, 1, 2, 4):
        assert text_of(seen[i].cells[0]) == f"{i * 2}\n"
    assert seen[3].error is not None and "exit code 1" in seen[3].error
    assert len(plain_pool.server_info()) == 2


def test_empty_submission(pool: WorkerPool) -> None:
    result = pool.run([])
    assert result.error is None and result.cells == []


SCAN_MEMORY = """
import ctypes
needle = bytes(reversed(b"ba15x0_REWSNA_OTOMAKAN"))
count = 0
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split()
        if "rw" not in parts[1] or (len(parts) > 5 and parts[5].startswith("/")):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        for pos in range(lo, hi, 1 << 24):
            count += ctypes.string_at(pos, min(hi - pos, 1 << 24)).count(needle)
print(count)
"""


def test_no_trace_of_the_previous_submission_in_memory(pool: WorkerPool) -> None:
    """A child is a copy of the server's memory: it must hold nothing of earlier students."""
    counts = []
    for secret in ("nothing to see", "NAKAMOTO_ANSWER_0x51ab"):
        before = pool.run(cells(f"x = {secret!r}\nprint(x * 3)\nx"))
        assert before.error is None
        after = pool.run(cells(SCAN_MEMORY))
        assert after.error is None, after.error
        counts.append(int(text_of(after.cells[0])))
    assert counts[0] == counts[1], f"the secret of the previous submission was found: {counts}"


def test_a_run_right_after_warm_waits_for_the_warm_start(stub_package: Path) -> None:
    """warm() starts a server in the background; the first run waits for it, never races it."""
    with WorkerPool(1, sandbox=False, limits=Limits(wall_seconds=20), package_dir=stub_package,
                    preload_matplotlib=False) as p:
        p.warm(1)
        result = p.run(cells("print(6 * 7)"))
        assert result.error is None and text_of(result.cells[0]) == "42\n"
        assert [s["starts"] for s in p.server_info()] == [1]
