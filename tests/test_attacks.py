"""A student cannot cheat the grader, and a runaway submission cannot hurt the machine.

One ``python -m grader autograde`` run (fast engine, sandbox on) grades the whole corpus of
tests/attacks/corpus.py: honest right and wrong answers, every cheating attempt on top of
a wrong (or right) answer, and runaway submissions. For each student the test asserts the
exact score, and for the batch that it finished, that nothing leaked out of the sandbox
(files, network, processes), that the repository's gradebook.db and source/ are unchanged and
that no feedback message shows hidden test code.

Expected scores:

* an attack on a wrong answer scores what the wrong answer scores alone (11 of 13), an attack on
  a right answer scores full marks (13): the structural defences (judging in the grader's
  process on validated records, the staged worker without reference or judge, pristine state
  before every test cell, restored test cells, the secret seed) make the attack pointless;
* the tamper scan (``grader.engine.forbidden.tamper_scan``) is no verdict: where it finds something
  the test cells after it keep the score the checks gave and are flagged
  ``needs_manual_grade`` for review (the JSON's ``review`` list names the line). The attacks in
  :data:`REVIEWED` must be flagged; no other notebook of the corpus may be;
* a submission that stops itself before the tests (exit, endless loop) scores 0, one that
  runs away after the tests keeps what the tests gave and gets an ``error``.

(Before issue 9 the scan zeroed every check of a flagged notebook, and a second run graded the
attacks with the scan off to show the architecture alone holds; the main run now is that run.)
A second run grades a few attacks through the stock engine (``--engine nbgrader``), which is
not defended: see docs/THREAT_MODEL.md.

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

pytestmark = pytest.mark.e2e


def test_the_release_exists() -> None:
    """The attacks are built on the committed channels_pooling release."""
    assert corpus.RELEASE.exists(), f"{corpus.RELEASE} is missing"


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


def scan_findings(nb: nbformat.NotebookNode) -> list:
    """What the grader's tamper scan finds in this notebook's student code."""
    from grader.engine.review import review_findings

    return review_findings(nb)


#: Attacks the tamper scan must catch (sent to review). Each still scores no more than its
#: honest answers on the structural defences alone.
REVIEWED: frozenset[str] = frozenset({
    "noop_asserts", "noop_asserts_right", "noop_asserts_hidden", "import_reference",
    "import_reference_module", "import_reference_importlib", "patch_judge",
    "patch_judge_visible", "fake_sys_modules", "patch_sink", "forge_via_probe",
    "forge_via_channel", "blank_later_cells",
    "blank_later_cells_manager", "rewrite_hidden_cells", "ast_transformer", "patch_run_cell",
    "patch_import", "settrace",
})


#: Answers whose corr2d breaks the from-scratch rule: corr2d, and so corr2d_multi_in and
#: corr2d_multi_in_out that run it, score 0 (corpus.FORBIDDEN_FAILS; 7 of 13). The right
#: answers with a forbidden corr2d, and import_reference_importlib, whose corr2d is rebound
#: through importlib.import_module() (the scan rejects it; before the visible asserts moved
#: out of the test cells its wrong corr2d failed the three cells anyway, the same 7).
SPECIAL: frozenset[str] = frozenset({
    "forbidden_alias", "forbidden_getattr", "forbidden_rebound", "forbidden_module_alias",
    "forbidden_from_import", "import_reference_importlib",
})


#: Attacks after which corr2d is never defined (the input transformer blanks its solution
#: cell; the test cells run pristine): corr2d and corr2d_multi_in score 0
#: (corpus.UNDEFINED_FAILS; 9 of 13, below the honest 11): no stand-in is lent for a name the
#: notebook does not define (grader.runtime.probe._run_with_standins).
UNDEFINED_CORR2D: frozenset[str] = frozenset({"blank_later_cells", "blank_later_cells_manager"})


#: Attacks whose indirect look-ups (exec/compile of a file, a module's ``__dict__``) make the
#: forbidden-API scan reject every check of a function (grader.engine.forbidden.scan scans the whole
#: notebook then): they score 0, below their honest answers.
INDIRECT: frozenset[str] = frozenset({"noop_asserts_hidden", "search_reference_file"})


def honest_score(attack: Attack) -> float:
    """What the answers under the attack earn on their own."""
    return FULL_SCORE if attack.base == "right" else WRONG_SCORE


def expected_tests(attack: Attack) -> dict[str, float]:
    """The score of each test cell when no tamper verdict applies."""
    if not attack.ran_tests:
        return dict.fromkeys(corpus.POINTS, 0.0)
    if attack.student in INDIRECT:
        return dict.fromkeys(corpus.POINTS, 0.0)
    fails = (corpus.FORBIDDEN_FAILS if attack.student in SPECIAL else
             corpus.UNDEFINED_FAILS if attack.student in UNDEFINED_CORR2D else
             corpus.WRONG_FAILS if attack.base == "wrong" else ())
    return {gid: 0.0 if gid in fails else float(points) for gid, points in corpus.POINTS.items()}


def assert_exact(attack: Attack, result: dict, nb: nbformat.NotebookNode | None) -> None:
    """Every test cell scores exactly what the answers earn; a tamper finding only flags."""
    expected = expected_tests(attack)
    got = {t["grade_id"]: t["score"] for t in result["tests"]}
    assert got == expected, [(t["grade_id"], t["score"], t["message"][:200])
                             for t in result["tests"] if got[t["grade_id"]] != expected.get(
                                 t["grade_id"])]
    assert result["score"] == sum(expected.values())
    assert result["score"] <= honest_score(attack)
    assert all(t["hint"] != "tampering" for t in result["tests"]), "the scan gave a verdict"


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


def test_the_tamper_scan_sends_to_review(batch: Batch) -> None:
    """The attacks of REVIEWED, and no other notebook, carry review findings; the test cells
    after the finding are flagged needs_manual_grade in the JSON and in the gradebook."""
    from nbgrader.api import Gradebook

    flagged = {s for s, r in batch.results.items() if r.get("review")}
    assert flagged == set(REVIEWED), (sorted(flagged - REVIEWED), sorted(REVIEWED - flagged))
    in_gradebook: set[tuple[str, str]] = set()
    with Gradebook(f"sqlite:///{batch.course / 'gradebook.db'}") as gb:
        for student in batch.results:
            try:
                nb = gb.find_submission_notebook(corpus.ASSIGNMENT, corpus.ASSIGNMENT, student)
            except Exception:  # noqa: BLE001 - not recorded (runaway before nbgrader)
                continue
            in_gradebook |= {(student, g.name) for g in nb.grades if g.needs_manual_grade}
    for student, result in batch.results.items():
        expected = {gid for f in result.get("review", []) for gid in f["grade_ids"]}
        marked = {t["grade_id"] for t in result["tests"] if t["needs_manual_grade"]}
        assert marked == expected, student
        assert {g for s, g in in_gradebook if s == student} == expected, student
        if student in REVIEWED:
            assert expected, f"{student}: a finding that flags no test cell"


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


#: The module the attacks import (corr2d's reference); it must not exist in the worker.
REFERENCE_MODULE = "grader.course.channels_pooling.reference"


@pytest.mark.parametrize("student,module", [
    ("import_reference", REFERENCE_MODULE), ("import_reference_module", REFERENCE_MODULE),
    ("import_reference_importlib", REFERENCE_MODULE), ("patch_judge", "grader.checks"),
])
def test_reference_and_judge_do_not_exist_in_the_worker(batch: Batch, student: str,
                                                        module: str) -> None:
    """The import itself fails in the sandbox: the worker's grader has no reference or checks."""
    text = "".join(batch.outputs(student))
    assert f"ModuleNotFoundError: No module named '{module}'" in text, text[-1000:]


def test_big_file_stops_at_the_file_limit(batch: Batch) -> None:
    text = "".join(batch.outputs("write_5gb"))
    assert "too large" in text.lower() or "no space" in text.lower(), text[-500:]


def test_review_findings_are_explained(batch: Batch) -> None:
    """Each review finding names what it saw, the cell and line, and quotes the code."""
    findings = [f for r in batch.results.values() for f in r.get("review", [])]
    assert findings
    for f in findings:
        assert f["finding"] and f["snippet"] and f["line"] >= 1 and f["cell"] >= 0, f


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
    if student == "honest_wrong":
        # the engines agree: the failing visible asserts of the functions that call the wrong
        # corr2d are in ungraded cells, which cost nothing in stock nbgrader either
        assert stock_batch.results[student]["score"] == WRONG_SCORE
    assert stock_batch.after == stock_batch.before


def test_stock_engine_flags_for_review(stock_batch: Batch) -> None:
    """FlagForReview runs in the stock engine too (the same autograde steps): the judge patch
    is flagged in the gradebook, whatever score the undefended engine gave."""
    result = stock_batch.results["patch_judge_visible"]
    assert result["review"], result
    assert {t["grade_id"] for t in result["tests"] if t["needs_manual_grade"]} == \
        set(corpus.POINTS)
    assert not stock_batch.results["honest_wrong"]["review"]
