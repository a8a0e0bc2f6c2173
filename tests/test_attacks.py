"""A student cannot cheat the grader, and a runaway submission cannot hurt the machine.

One ``python -m grader autograde`` run (fast engine, sandbox on) grades the whole corpus of
tests/attacks/corpus.py: honest right and wrong answers, every cheating attempt on top of
a wrong (or right) answer, and runaway submissions. For each student the test asserts the
exact score, and for the batch that it finished, that nothing leaked out of the sandbox
(files, network, processes), that the repository's gradebook.db and source/ are unchanged and
that no feedback message shows hidden test code.

Expected scores:

* an attack on a wrong answer scores what the wrong answer scores alone (7 of 13), an attack on
  a right answer scores full marks (13), unless
* the notebook reaches into the grader or the interpreter (``grader.forbidden.tamper_scan``
  finds something): then a test cell the grader fails with the ``tampering`` verdict scores
  0 (never on a notebook the scan finds clean);
* a submission that stops itself before the tests (exit, endless loop) scores 0, one that
  runs away after the tests keeps what the tests gave and gets an ``error``.

A second, smaller run does the same through the Python API with the tamper verdict switched
off, so each attack is shown to fail on the architecture alone (staged worker, restored state
before every test cell, judging in the grader's process). A third runs a few of them through
the stock engine (``--engine nbgrader``), which is not defended: see docs/THREAT_MODEL.md.

Attacks that are not defended are ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from attacks import corpus
from attacks.corpus import ATTACKS, BY_STUDENT, FULL_SCORE, WRONG_SCORE, Attack

REPO = corpus.REPO
PYTHON = sys.executable
TIMEOUT = 6  # seconds per submission: the honest ones need well under one

pytestmark = [
    pytest.mark.skipif(not corpus.RELEASE.exists(), reason="no channels_pooling release yet"),
]


# ---------------------------------------------------------------------------------------------
# expectations


def student_source(nb: nbformat.NotebookNode) -> str:
    """The student's code as the grader judges it: every code cell that is not a test cell."""
    parts = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and not (meta.get("grade") and not meta.get("solution")):
            parts.append(cell.source)
    return "\n\n".join(parts)


def tampered(nb: nbformat.NotebookNode) -> bool:
    """Whether the grader's tamper scan (if it has one) fails this notebook outright."""
    from grader import forbidden

    scan = getattr(forbidden, "tamper_scan", None)
    return bool(scan(student_source(nb))) if scan is not None else False


#: Right answers whose corr2d breaks the from-scratch rule: corr2d, and so corr2d_multi_in and
#: corr2d_multi_in_out that use it, score 0 (WRONG_SCORE in all).
SPECIAL: frozenset[str] = frozenset({
    "forbidden_alias", "forbidden_getattr", "forbidden_rebound", "forbidden_module_alias",
    "forbidden_from_import",
})


def honest_score(attack: Attack) -> float:
    """What the answers under the attack earn on their own."""
    return FULL_SCORE if attack.base == "right" else WRONG_SCORE


def expected_tests(attack: Attack) -> dict[str, float]:
    """The score of each test cell when no tamper verdict applies."""
    if not attack.ran_tests:
        return dict.fromkeys(corpus.POINTS, 0.0)
    wrong = attack.base == "wrong" or attack.student in SPECIAL
    return {gid: 0.0 if wrong and gid in corpus.WRONG_FAILS else float(points)
            for gid, points in corpus.POINTS.items()}


def tamper_failed(result: dict) -> set[str]:
    """The test cells the grader failed with the tampering verdict."""
    return {t["grade_id"] for t in result["tests"] if t["hint"] == "tampering"}


def assert_exact(attack: Attack, result: dict, nb: nbformat.NotebookNode | None) -> None:
    """Every test cell scores exactly what the answers earn (0 where tampering was found)."""
    expected = expected_tests(attack)
    flagged = tamper_failed(result)
    if flagged:
        assert nb is not None and tampered(nb), f"tampering verdict on a clean notebook: {result}"
    for gid in flagged:
        expected[gid] = 0.0
    got = {t["grade_id"]: t["score"] for t in result["tests"]}
    assert got == expected, [(t["grade_id"], t["score"], t["message"][:200])
                             for t in result["tests"] if got[t["grade_id"]] != expected.get(
                                 t["grade_id"])]
    assert result["score"] == sum(expected.values())
    assert result["score"] <= honest_score(attack)


def with_xfail(attacks: list[Attack]) -> list[Any]:
    return [pytest.param(a.student, id=a.student,
                         marks=[pytest.mark.xfail(strict=True, reason=a.xfail)] if a.xfail else [])
            for a in attacks]


# ---------------------------------------------------------------------------------------------
# the machine around the run


def tree_hash(path: Path) -> str:
    """A hash of every file's path and bytes under ``path`` (or of the file itself)."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    if not path.exists():
        return "missing"
    for item in sorted(path.rglob("*")):
        if item.is_file() and "__pycache__" not in item.parts:
            digest.update(str(item.relative_to(path)).encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()


def pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8",
                                                                                     "replace")
    except OSError:
        return ""


def ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def leftovers(before: set[int], marker: str) -> list[str]:
    """Processes our run left behind: the marker's, or orphaned sandbox workers."""
    found = []
    for pid in sorted(pids() - before):
        line = cmdline(pid)
        if marker in line:
            found.append(f"{pid}: {line}")
        elif ("convgrade_worker" in line or line.startswith("bwrap")) and ppid(pid) == 1:
            found.append(f"{pid} (orphan): {line}")
    return found


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@dataclass
class Batch:
    results: dict[str, dict]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    notebooks: dict[str, nbformat.NotebookNode]
    course: Path
    subs: Path
    before: dict[str, str]
    after: dict[str, str]
    leftovers: list[str]
    accepted: int
    duplicates: list[str] = field(default_factory=list)

    def outputs(self, student: str) -> list[str]:
        """Every output text of the student's autograded notebook (sources excluded)."""
        path = self.course / "autograded" / student / corpus.ASSIGNMENT / \
            f"{corpus.ASSIGNMENT}.ipynb"
        if not path.exists():
            return []
        nb = nbformat.read(str(path), as_version=4)
        texts = []
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                texts.append(str(out.get("text", "")) + str(out.get("ename", "")) + ": "
                             + str(out.get("evalue", ""))
                             + json.dumps(out.get("data", {})))
        return texts


def protected() -> dict[str, str]:
    return {
        "gradebook.db": tree_hash(REPO / "gradebook.db"),
        "source": tree_hash(REPO / "source"),
        "release": tree_hash(REPO / "release"),
    }


def build_corpus(root: Path, attacks: list[Attack], port: int, marker: str) -> tuple[
        Path, Path, dict[str, nbformat.NotebookNode]]:
    subs, course = root / "subs", root / "course"
    subs.mkdir(parents=True)
    ctx = {"REPO": str(REPO), "WORKDIR": str(course), "SUBMITTED": str(subs),
           "PORT": str(port), "MARKER": marker}
    notebooks = {}
    for attack in attacks:
        nb = corpus.build(attack, ctx)
        nbformat.write(nb, str(subs / f"{attack.student}.ipynb"))
        notebooks[attack.student] = nb
    return subs, course, notebooks


def run_cli(root: Path, attacks: list[Attack], *extra: str, timeout: int = 400) -> Batch:
    listener = Listener()
    marker = f"cgmarker-{uuid.uuid4().hex}"
    try:
        subs, course, notebooks = build_corpus(root, attacks, listener.port, marker)
        before = protected()
        subs_before = tree_hash(subs)
        pids_before = pids()
        out = root / "out.json"
        env = dict(os.environ, PATH=os.path.dirname(PYTHON) + os.pathsep + os.environ["PATH"])
        started = time.monotonic()
        proc = subprocess.run(
            [PYTHON, "-m", "grader", "autograde", str(subs), "--assignment", corpus.ASSIGNMENT,
             "--course", str(REPO), "--json", str(out), "--workdir", str(course),
             "--timeout", str(TIMEOUT), *extra],
            cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
        )
        seconds = time.monotonic() - started
        time.sleep(0.5)
        after = protected()
        after["subs"], before["subs"] = tree_hash(subs), subs_before
        left = leftovers(pids_before, marker)
        data = json.loads(out.read_text()) if out.exists() else {"results": []}
        names = [r["student"] for r in data["results"]]
        return Batch({r["student"]: r for r in data["results"]}, proc.returncode, proc.stdout,
                     proc.stderr, seconds, notebooks, course, subs, before, after, left,
                     listener.accepted, sorted({n for n in names if names.count(n) > 1}))
    finally:
        listener.close()


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """The whole corpus in one fast, sandboxed autograde run."""
    return run_cli(tmp_path_factory.mktemp("attacks"), ATTACKS, "--jobs", "2")


# ---------------------------------------------------------------------------------------------
# the batch as a whole


def test_batch_finished(batch: Batch) -> None:
    """Every student is in the results exactly once and was graded; the run exits 0."""
    assert batch.returncode == 0, batch.stderr[-3000:]
    assert sorted(batch.results) == sorted(BY_STUDENT), batch.stderr[-3000:]
    assert batch.duplicates == []
    for student, result in batch.results.items():
        assert result["graded"], (student, result["error"])
        assert result["max_score"] == FULL_SCORE, student
        assert {t["grade_id"] for t in result["tests"]} == set(corpus.POINTS), student


def test_batch_is_quick(batch: Batch) -> None:
    """Runaways cost their own timeout, not the batch's: the run stays well bounded."""
    print(f"{len(batch.results)} submissions in {batch.seconds:.1f} s")
    assert batch.seconds < 240, batch.seconds


def test_repository_and_submissions_untouched(batch: Batch) -> None:
    """gradebook.db, source/, release/ and the students' files are byte-identical."""
    assert batch.after == batch.before


def test_nothing_left_running(batch: Batch) -> None:
    """No background process of a student and no orphaned sandbox outlives the run."""
    assert batch.leftovers == []


def test_network_is_unreachable(batch: Batch) -> None:
    """No connection reached the test's listener on 127.0.0.1; everything else was blocked."""
    assert batch.accepted == 0
    text = "".join(batch.outputs("network"))
    assert text.count("blocked") == 6, text


def test_nothing_leaks_out_of_the_sandbox(batch: Batch) -> None:
    """No attack could read, list, write or connect to anything outside its sandbox."""
    leaks = {s: [t for t in batch.outputs(s) if "LEAK" in t] for s in batch.results}
    assert {s: t for s, t in leaks.items() if t} == {}
    # the probes really ran (a probe that crashed early would find nothing to leak either)
    assert "blocked" in "".join(batch.outputs("read_files"))
    assert "walked" in "".join(batch.outputs("walk_root"))
    assert "blocked" in "".join(batch.outputs("write_files"))
    assert "".join(batch.outputs("write_gradebook")).count("blocked") == 4
    assert "".join(batch.outputs("aa_tmp_drop")).count("blocked") == 6
    assert "peeked" in "".join(batch.outputs("zz_tmp_peek"))


def test_gradebook_holds_only_earned_scores(batch: Batch) -> None:
    """The grading gradebook has no score above its maximum and no manual score."""
    import sqlite3

    con = sqlite3.connect(str(batch.course / "gradebook.db"))
    try:
        rows = con.execute("SELECT auto_score, manual_score, max_score FROM grade "
                           "JOIN grade_cells ON grade.cell_id = grade_cells.id").fetchall()
    except sqlite3.OperationalError:
        rows = con.execute("SELECT auto_score, manual_score, 13 FROM grade").fetchall()
    finally:
        con.close()
    assert rows
    for auto, manual, max_score in rows:
        assert manual is None
        assert auto is None or 0 <= auto <= max_score


def test_feedback_never_shows_hidden_tests(batch: Batch) -> None:
    """Messages and hints name what was expected and what came back, not the hidden code."""
    for student, result in batch.results.items():
        for test in result["tests"]:
            text = f"{test['message']} {test['hint']}"
            assert "BEGIN HIDDEN TESTS" not in text, student
            assert "from grader import" not in text, student
            assert "check_corr2d(corr2d)" not in text, student


# ---------------------------------------------------------------------------------------------
# one student at a time


@pytest.mark.parametrize("student", with_xfail(ATTACKS))
def test_exact_score(batch: Batch, student: str) -> None:
    """Each attack scores exactly what the rules say, never more than the honest answers."""
    assert_exact(BY_STUDENT[student], batch.results[student], batch.notebooks[student])


def test_tamper_scan_sees_the_whole_notebook(batch: Batch) -> None:
    """Every notebook the tamper scan flags gets the tampering verdict on every test that ran."""
    from grader import forbidden

    if not hasattr(forbidden, "tamper_scan"):
        pytest.skip("the grader has no tamper scan")
    should = {s for s, nb in batch.notebooks.items()
              if tampered(nb) and BY_STUDENT[s].ran_tests}
    got = {s for s, r in batch.results.items() if tamper_failed(r)}
    assert got == should


@pytest.mark.parametrize("student", [a.student for a in ATTACKS if a.resource])
def test_runaway_gets_a_clear_error(batch: Batch, student: str) -> None:
    attack = BY_STUDENT[student]
    error = batch.results[student]["error"] or ""
    assert error, f"{student} ran away but has no error"
    assert any(word in error.lower() for word in attack.error_words), error
    assert "Traceback" not in error


@pytest.mark.parametrize("student", [a.student for a in ATTACKS if not a.resource])
def test_others_are_not_cut_short(batch: Batch, student: str) -> None:
    """Students next to the runaways ran to the end (their only errors are precheck notes)."""
    error = batch.results[student]["error"] or ""
    assert "stopped early" not in error, error


def test_hidden_test_source_does_not_reach_the_outputs(batch: Batch) -> None:
    """No cell output (which feedback shows) carries the hidden tests' code."""
    for student in batch.results:
        text = "".join(batch.outputs(student))
        assert "BEGIN HIDDEN TESTS" not in text, student
        assert "check_corr2d(corr2d)" not in text, student


@pytest.mark.parametrize("student,module", [
    ("import_reference", "grader.reference"), ("import_reference_module", "grader.reference"),
    ("import_reference_importlib", "grader.reference"), ("patch_judge", "grader.checks"),
])
def test_reference_and_judge_do_not_exist_in_the_worker(batch: Batch, student: str,
                                                        module: str) -> None:
    """The import itself fails in the sandbox: the worker's grader has no reference or checks."""
    text = "".join(batch.outputs(student))
    assert f"ModuleNotFoundError: No module named '{module}'" in text, text[-1000:]


def test_big_file_stops_at_the_file_limit(batch: Batch) -> None:
    text = "".join(batch.outputs("write_5gb"))
    assert "too large" in text.lower() or "no space" in text.lower(), text[-500:]


def test_tampering_is_explained(batch: Batch) -> None:
    """A notebook failed for tampering is told which line did it."""
    from grader import forbidden

    if not hasattr(forbidden, "tamper_scan"):
        pytest.skip("the grader has no tamper scan")
    flagged = [t for r in batch.results.values() for t in r["tests"] if t["hint"] == "tampering"]
    assert flagged, "no notebook of the corpus got the tampering verdict"
    for test in flagged:
        assert "line " in test["message"], test["message"]


# ---------------------------------------------------------------------------------------------
# the architecture alone: the same attacks with the tamper verdict switched off

ARCHITECTURE = [a for a in ATTACKS if not a.resource and a.student not in (
    "read_files", "walk_root", "write_files", "network", "write_gradebook", "kill_parent",
    "write_5gb", "background_process")]


@pytest.fixture(scope="module")
def architecture_batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The cheating attacks graded through grader.autograde.autograde with a judge that
    ignores tamper findings (it judges records as if the notebook looked clean)."""
    from grader import checks
    from grader.autograde import autograde

    root = tmp_path_factory.mktemp("architecture")
    listener = Listener()
    try:
        subs, course, _ = build_corpus(root, ARCHITECTURE, listener.port, "unused")
    finally:
        listener.close()
    original = getattr(checks, "_tamper_verdict", None)

    def judge(name: str, record: dict, source: str | None = None, **kw: Any) -> Any:
        return checks.judge(name, record, source=source, **kw)

    try:
        if original is not None:
            checks._tamper_verdict = lambda *a, **k: None  # type: ignore[attr-defined]
        data = autograde([subs], corpus.ASSIGNMENT, course=REPO, jobs=2, sandbox=True,
                         timeout=TIMEOUT, workdir=course, judge=judge)
    finally:
        if original is not None:
            checks._tamper_verdict = original  # type: ignore[attr-defined]
    return {r["student"]: r for r in data["results"]}


@pytest.mark.parametrize("student", with_xfail(ARCHITECTURE))
def test_attack_fails_without_the_tamper_scan(architecture_batch: dict[str, dict],
                                              student: str) -> None:
    """No test cell scores more than the honest answers earn. Cells may score less: the
    forbidden-API scan also rejects the indirect look-ups (exec, __dict__) such attacks use."""
    attack = BY_STUDENT[student]
    expected = expected_tests(attack)
    got = {t["grade_id"]: t["score"] for t in architecture_batch[student]["tests"]}
    assert set(got) == set(expected)
    over = {gid: (got[gid], expected[gid]) for gid in got if got[gid] > expected[gid]}
    assert not over, over
    assert architecture_batch[student]["score"] <= honest_score(attack)


# ---------------------------------------------------------------------------------------------
# the stock engine, for comparison (not defended: hidden tests run in the student's kernel)

STOCK = ["honest_wrong", "patch_judge_visible", "blank_later_cells"]
_STOCK_REASON = ("--engine nbgrader runs the hidden tests and the judge in the student's own "
                 "kernel, without the sandbox: not defended (docs/THREAT_MODEL.md)")
STOCK_UNDEFENDED = {"patch_judge_visible", "blank_later_cells"}


@pytest.fixture(scope="module")
def stock_batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    attacks = [BY_STUDENT[s] for s in STOCK]
    return run_cli(tmp_path_factory.mktemp("stock"), attacks, "--engine", "nbgrader",
                   timeout=600)


@pytest.mark.parametrize("student", [
    pytest.param(s, id=s, marks=[pytest.mark.xfail(strict=True, reason=_STOCK_REASON)]
                 if s in STOCK_UNDEFENDED else []) for s in STOCK])
def test_stock_engine(stock_batch: Batch, student: str) -> None:
    assert sorted(stock_batch.results) == sorted(STOCK), stock_batch.stderr[-2000:]
    attack = BY_STUDENT[student]
    assert stock_batch.results[student]["score"] <= honest_score(attack)
    assert stock_batch.after == stock_batch.before
