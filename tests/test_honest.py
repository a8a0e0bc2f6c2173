"""No false zeros: honest, right notebooks written as students write them get full marks.

tests/honest/corpus.py holds the corpus (ordinary habits in scratch cells, other right ways of
writing the answers, answers that warn or write to stderr, and notebooks saved by other
front-ends). Each assignment's notebooks are graded in one ``python -m grader autograde`` run
(fast engine, sandbox on, like tests/test_attacks.py); every notebook must score full marks,
with no error, no review finding and no grade flagged for manual grading. A second, small run
through the stock engine shows that it agrees on answers that warn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from honest import corpus
from honest.corpus import ASSIGNMENTS, BY_STUDENT, CORPUS, FULL
from refs import ASSIGNMENTS as REGISTERED

REPO = corpus.REPO
PYTHON = sys.executable

pytestmark = pytest.mark.e2e


def test_the_releases_exist() -> None:
    """The corpus is built on the committed release notebooks."""
    missing = [a for a in ASSIGNMENTS if not (REPO / "release" / a / f"{a}.ipynb").exists()]
    assert not missing, f"no release notebook for {missing}: run nbgrader generate_assignment"


@dataclass
class Run:
    results: dict[str, dict]
    course: Path
    stderr: str


def grade(root: Path, assignment: str, students: list[str], *extra: str) -> Run:
    """Grade ``students`` of ``assignment`` in one CLI run."""
    subs, course = root / "subs", root / "course"
    subs.mkdir(parents=True)
    for student in students:
        corpus.write(corpus.build(BY_STUDENT[student]), subs / f"{student}.ipynb")
    out = root / "out.json"
    env = dict(os.environ, PATH=os.path.dirname(PYTHON) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(
        [PYTHON, "-m", "grader", "autograde", str(subs), "--assignment", assignment,
         "--course", str(REPO), "--json", str(out), "--workdir", str(course), *extra],
        cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert out.exists(), proc.stderr[-3000:]
    data = json.loads(out.read_text())
    return Run({r["student"]: r for r in data["results"]}, course, proc.stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Each assignment's honest corpus, graded in one batch."""
    return {a: grade(tmp_path_factory.mktemp(a), a,
                     [h.student for h in CORPUS if h.assignment == a], "--jobs", "2")
            for a in ASSIGNMENTS}


def test_the_corpus_is_large_and_covers_every_assignment() -> None:
    assert len(CORPUS) >= 40
    assert {h.assignment for h in CORPUS} == set(ASSIGNMENTS) == set(REGISTERED)
    assert len(BY_STUDENT) == len(CORPUS)
    fronts = {h.frontend.__name__ for h in CORPUS if h.frontend}
    assert fronts == {"jupyterlab4", "notebook6", "vscode", "hosted", "jupytext_round_trip"}


@pytest.mark.parametrize("student", [h.student for h in CORPUS])
def test_full_marks_and_no_review(runs: dict[str, Run], student: str) -> None:
    honest = BY_STUDENT[student]
    result = runs[honest.assignment].results[student]
    wrong = [(t["grade_id"], t["message"][:300]) for t in result["tests"] if not t["passed"]]
    assert result["score"] == FULL[honest.assignment], (honest.what, wrong, result["error"])
    assert result["error"] is None, result["error"]
    assert result["review"] == [], result["review"]
    assert not any(t["needs_manual_grade"] for t in result["tests"])


def test_a_round_trip_says_what_was_matched(runs: dict[str, Run]) -> None:
    """A notebook whose metadata was stripped is matched by content, and the precheck says so."""
    problems = runs["channels_pooling"].results["cp_hosted"]["problems"]
    matched = [p for p in problems if p["code"] == "matched_by_content"]
    assert matched, problems
    assert {p["grade_id"] for p in matched} >= {"corr2d_solution", "corr2d_tests",
                                               "pool2d_solution", "pool2d_mode_tests"}
    assert all(p["severity"] == "warning" for p in matched)


def _outputs(run: Run, assignment: str, student: str, grade_id: str) -> list[dict]:
    path = run.course / "autograded" / student / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)
    return cell.outputs


def test_stderr_stays_visible_in_the_autograded_notebook(runs: dict[str, Run]) -> None:
    outputs = _outputs(runs["channels_pooling"], "channels_pooling", "cp_pool_warns",
                       "pool2d_max_tests")
    texts = [o.get("data", {}).get("text/plain", "") for o in outputs
             if o["output_type"] == "display_data"]
    assert any("pool2d uses Python loops" in t for t in texts), outputs
    assert not any(o["output_type"] == "stream" and o.get("name") == "stderr" for o in outputs)


STOCK = ["cp_pool_warns", "cp_corr2d_stderr", "cp_display"]


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return grade(tmp_path_factory.mktemp("stock"), "channels_pooling", STOCK,
                 "--engine", "nbgrader")


@pytest.mark.parametrize("student", STOCK)
def test_the_stock_engine_agrees_on_noisy_answers(stock: Run, student: str) -> None:
    result = stock.results[student]
    wrong = [(t["grade_id"], t["message"][:300]) for t in result["tests"] if not t["passed"]]
    assert result["score"] == FULL["channels_pooling"], wrong


def test_stderr_stays_visible_in_the_feedback(runs: dict[str, Run]) -> None:
    """nbgrader's own generate_feedback on the graded course shows the warning's text."""
    course = runs["channels_pooling"].course
    env = dict(os.environ, PATH=os.path.dirname(PYTHON) + os.pathsep + os.environ["PATH"])
    env.pop("CONVGRADE_DB_URL", None)
    proc = subprocess.run(
        [os.path.join(os.path.dirname(PYTHON), "nbgrader"), "generate_feedback",
         "channels_pooling", "--student", "cp_pool_warns", "--force"],
        cwd=course, env=env, capture_output=True, text=True, timeout=600)
    html = course / "feedback" / "cp_pool_warns" / "channels_pooling" / "channels_pooling.html"
    assert html.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "pool2d uses Python loops" in html.read_text(encoding="utf-8")
