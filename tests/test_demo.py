"""The demo class (grader.demo): thirty generated students that look like a class.

* the written submissions: every student and assignment, release cells kept as released;
* the plans: deterministic, the typical mistakes spread over the class (several times each),
  every mistake a student makes caught by its check, and plans without mistakes all green
  (run in process, test cells restored from the source, like the autograder);
* the alternative right answers (:data:`grader.demo.ALTERNATIVES`), the cheat, the damaged
  and the repaired notebook, graded by the real engine;
* the demo never overwrites a differing submission.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from refs import ASSIGNMENTS

from grader import demo

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

REPO = Path(__file__).resolve().parent.parent


def _release(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(str(REPO / "release" / assignment / f"{assignment}.ipynb"), as_version=4)


def _source(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(str(REPO / "source" / assignment / f"{assignment}.ipynb"), as_version=4)


def _meta(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def _plans() -> dict[tuple[str, str], demo.Plan]:
    return demo.plans_for({a: _release(a) for a in ASSIGNMENTS})


@pytest.fixture(scope="module")
def demo_class(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A course folder holding only the committed release/, with the demo class written."""
    root = tmp_path_factory.mktemp("demo") / "course"
    shutil.copytree(REPO / "release", root / "release")
    return root, demo.make_demo_class(root)


def _run_with_source_tests(submission: nbformat.NotebookNode, assignment: str) -> dict[str, str]:
    """Run a submission's code like the autograder: test cells come back from the source.

    Returns the outcome of each test cell by grade_id: "ok" or the exception's type name.
    """
    tests = {_meta(c)["grade_id"]: c.source for c in _source(assignment).cells
             if _meta(c).get("grade") and c.cell_type == "code"}
    namespace: dict[str, object] = {"__name__": "__main__"}
    outcomes: dict[str, str] = {}
    for index, cell in enumerate(submission.cells):
        if cell.cell_type != "code":
            continue
        grade_id = _meta(cell).get("grade_id", "")
        source = tests.get(grade_id, cell.source)
        try:
            exec(compile(source, f"<{assignment} cell {index}>", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # noqa: BLE001 - a failing cell is an outcome, like a kernel
            if grade_id in tests:
                outcomes[grade_id] = type(exc).__name__
            continue
        if grade_id in tests:
            outcomes[grade_id] = "ok"
    return outcomes


def test_writes_every_student_and_assignment(demo_class: tuple[Path, list[str]]) -> None:
    root, written = demo_class
    assert len(demo.STUDENTS) == 30 and len(set(demo.STUDENTS)) == 30
    assert written == [f"submitted/{s}/{a}/{a}.ipynb" for s in demo.STUDENTS for a in ASSIGNMENTS]
    plans = _plans()
    for assignment in ASSIGNMENTS:
        release = _release(assignment)
        for student in demo.STUDENTS:
            path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
            plan = plans[student, assignment]
            if plan.special == "damaged":
                with pytest.raises(Exception):  # noqa: B017 - any JSON error
                    nbformat.read(str(path), as_version=4)
                continue
            nb = nbformat.read(str(path), as_version=4)
            if student == demo.BLANK:
                assert nb == release, f"{student} hands in the blank release notebook"
            cells = release.cells
            if plan.special == "deleted_test":
                cells = [c for c in cells if _meta(c).get("grade_id") != demo.DELETED_TEST[2]]
                assert len(nb.cells) == len(release.cells) - 1
            assert len(nb.cells) == len(cells), f"{student} {assignment}: cells added or lost"
            for mine, blank_cell in zip(nb.cells, cells, strict=True):
                assert mine.metadata == blank_cell.metadata, f"{student}: metadata changed"
                assert mine.get("id") == blank_cell.get("id")
                assert mine.cell_type == blank_cell.cell_type
                if not _meta(mine).get("solution"):
                    assert mine.source == blank_cell.source, f"{student} changed a fixed cell"
                elif student == demo.RIGHT:
                    assert mine.source != blank_cell.source, f"{student}: unanswered cell"


def test_class_is_deterministic_and_looks_like_a_class(tmp_path: Path) -> None:
    plans = _plans()
    shutil.copytree(REPO / "release", tmp_path / "release")
    one = demo.make_demo_class(tmp_path, [demo.STUDENTS[5]])
    text = (tmp_path / one[0]).read_text(encoding="utf-8")
    demo.class_plans.cache_clear()
    assert _plans() == plans, "the class is drawn from a fixed seed"
    shutil.rmtree(tmp_path / "submitted")
    assert demo.make_demo_class(tmp_path, [demo.STUDENTS[5]]) == one
    assert (tmp_path / one[0]).read_text(encoding="utf-8") == text

    mistakes = Counter(a for p in plans.values() for a in p.answers.values()
                       if a.startswith("mistake:"))
    common = [m for m, n in mistakes.items() if n >= 3]
    assert len(common) >= 8, f"only {len(common)} mistakes appear 3+ times: {mistakes}"
    for assignment in ASSIGNMENTS:
        per_student = {s: sum(a.startswith("mistake:")
                                  for a in plans[s, assignment].answers.values())
                       for s in demo.STUDENTS}
        assert per_student[demo.STRUGGLING] >= 2, f"{demo.STRUGGLING} struggles in {assignment}"
        clean = [s for s, n in per_student.items() if n == 0]
        assert 8 <= len(clean) <= 22, f"{assignment}: {len(clean)} students without mistakes"
        styles = sum(a.startswith("style:") for s in demo.STUDENTS
                     for a in plans[s, assignment].answers.values())
        assert styles >= 10, f"{assignment}: only {styles} answers in another style"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mistakes_fail_their_check_and_clean_plans_pass(demo_class: tuple[Path, list[str]],
                                                        assignment: str) -> None:
    """In process (the cheat and the damaged notebook are left to the engine test)."""
    from grader.checks import CHECKS

    root, _ = demo_class
    graded = {_meta(c)["grade_id"] for c in _source(assignment).cells
              if _meta(c).get("grade") and c.cell_type == "code"}
    for student in demo.STUDENTS:
        plan = _plans()[student, assignment]
        if plan.special in ("damaged", "cheat"):
            continue
        path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
        outcomes = _run_with_source_tests(nbformat.read(str(path), as_version=4), assignment)
        deleted = {demo.DELETED_TEST[2]} if plan.special == "deleted_test" else set()
        assert set(outcomes) == graded - deleted, f"{student}: not every test cell ran"
        for answer in plan.answers.values():
            check = answer.split(":")[1] if answer.startswith("mistake:") else None
            if check is not None and f"{check}_tests" not in deleted:
                assert outcomes[f"{check}_tests"] != "ok", (
                    f"{student}'s {answer} should fail {check}_tests, but it passed")
        if not deleted and all(a.split(":")[0] in ("right", "style", "good", "weak")
               for a in plan.answers.values()):
            assert all(v == "ok" for v in outcomes.values()), f"{student}: {outcomes}"
        for check, spec in CHECKS.items():
            if spec.assignment == assignment and student == demo.RIGHT:
                assert outcomes[f"{check}_tests"] == "ok"


def test_alternatives_cheat_and_damage_through_the_engine(demo_class: tuple[Path, list[str]],
                                                          course_copy: Path,
                                                          tmp_path: Path) -> None:
    """Every alternative right answer earns full marks with the real engine (forbidden-API
    and tamper scans included); the cheat gains nothing (its wrong corr2d still fails) and is
    flagged for review; the damaged
    notebook is an error entry; the deleted test cell is restored and graded."""
    from grader.engine.autograde import autograde
    from grader.registry import solution_source

    assert set(demo.ALTERNATIVES) <= set(demo.DIFFICULTY), "every exercise has a difficulty"
    root, _ = demo_class
    widest = max(len(v) for v in demo.ALTERNATIVES.values())
    for assignment in ASSIGNMENTS:
        folder = tmp_path / f"loose-{assignment}"
        folder.mkdir()
        names = demo.answer_names(_release(assignment))
        for k in range(widest):
            plan = demo.Plan({n: "good" if n.endswith("_answer") else
                              f"style:{k}" if len(demo.ALTERNATIVES.get(n, ())) > k else "right"
                              for n in names})
            text = demo.submission_text(_release(assignment), plan)
            (folder / f"style{k}.ipynb").write_text(text, encoding="utf-8")
        for student in (demo.CHEATER, demo.DAMAGED, demo.DELETED_TEST):
            if student[1] == assignment:
                shutil.copy2(root / "submitted" / student[0] / assignment / f"{assignment}.ipynb",
                             folder / f"{student[0]}.ipynb")
        result = autograde([folder], assignment, course=course_copy, seed=0)
        by = {r["student"]: r for r in result["results"]}
        for k in range(widest):
            entry = by[f"style{k}"]
            assert entry["score"] == entry["max_score"] > 0, (
                f"{assignment} style {k}: expected full marks, got {entry['score']}: "
                f"{[t['message'] for t in entry['tests'] if not t['passed']]}")
        if assignment == demo.CHEATER[1]:
            cheat = by[demo.CHEATER[0]]
            tests = {t["grade_id"]: t for t in cheat["tests"]}
            assert not tests["corr2d_tests"]["passed"], cheat
            assert cheat["score"] < cheat["max_score"]
            assert cheat["review"] and all(t["needs_manual_grade"] for t in cheat["tests"]), cheat
            damaged = by[demo.DAMAGED[0]]
            assert not damaged["graded"] and "JSON" in damaged["error"], damaged
        if assignment == demo.DELETED_TEST[1]:
            repaired = by[demo.DELETED_TEST[0]]
            assert repaired["graded"] and demo.DELETED_TEST[2] in repaired["error"], repaired
            assert demo.DELETED_TEST[2] in {t["grade_id"] for t in repaired["tests"]}
    assert solution_source("corr2d")  # the reference the "right" answers come from


def test_a_right_answer_on_a_wrong_one_it_calls_through_the_engine(course_copy: Path,
                                                                   tmp_path: Path) -> None:
    """s02-ben's case with the real engine: a wrong corr2d under right functions that call it
    costs corr2d's points only, and the cell says why; a mistake of corr2d_multi_in keeps its
    own hint on that wrong corr2d; a forbidden corr2d keeps its forbidden verdict.

    That holds also for a wrong corr2d that shows on the notes' example (off by one): the
    visible asserts of corr2d_multi_in and corr2d_multi_in_out, which run the student's own
    corr2d, are in an ungraded cell before each graded cell (it shows the failure and costs
    nothing), so offby1 loses corr2d's 2 points only, not 6; and on that corr2d each known
    mistake of corr2d_multi_in and corr2d_multi_in_out still fails its own cell with its own
    hint."""
    from grader.engine.autograde import autograde
    from grader.registry import course

    assignment = "channels_pooling"
    names = demo.answer_names(_release(assignment))
    students = {
        "ben": {"corr2d": "mistake:corr2d:kernel_dims_swapped"},
        "nosum": {"corr2d": "mistake:corr2d:kernel_dims_swapped",
                  "corr2d_multi_in": "mistake:corr2d_multi_in:no_channel_sum"},
        "conv": {"corr2d": "mistake:corr2d:uses_torch_conv"},
        "offby1": {"corr2d": "mistake:corr2d:output_off_by_one"},
    }
    own = {}  # offby1's corr2d under each known mistake of a function that calls it
    for check in ("corr2d_multi_in", "corr2d_multi_in_out"):
        for m in course().mistakes(check):
            own[f"offby1-{m.id}"] = (check, m.id)
            students[f"offby1-{m.id}"] = {"corr2d": "mistake:corr2d:output_off_by_one",
                                          check: f"mistake:{check}:{m.id}"}
    folder = tmp_path / "in"
    folder.mkdir()
    for student, answers in students.items():
        plan = demo.Plan({n: answers.get(n, "good" if n.endswith("_answer") else "right")
                          for n in names})
        text = demo.submission_text(_release(assignment), plan)
        (folder / f"{student}.ipynb").write_text(text, encoding="utf-8")
    work = tmp_path / "work"
    result = autograde([folder], assignment, course=course_copy, seed=0, workdir=work)
    by = {r["student"]: {t["grade_id"]: t for t in r["tests"]} for r in result["results"]}
    ben = by["ben"]
    assert [g for g, t in ben.items() if not t["passed"]] == ["corr2d_tests"], ben
    assert ben["corr2d_tests"]["hint"] == "kernel_dims_swapped"
    printed = _printed(work, "ben", "corr2d_multi_in_tests")
    assert "corr2d_multi_in is right; it only failed because it calls your corr2d" in printed
    nosum = by["nosum"]
    assert not nosum["corr2d_multi_in_tests"]["passed"]
    assert nosum["corr2d_multi_in_tests"]["hint"] == "no_channel_sum"
    assert "corr2d_multi_in_out is right" in _printed(work, "nosum", "corr2d_multi_in_out_tests")
    conv = by["conv"]
    assert conv["corr2d_tests"]["hint"] == "forbidden_api"
    assert conv["corr2d_multi_in_tests"]["hint"] == "forbidden_api"
    assert conv["corr2d_multi_in_out_tests"]["hint"] == "forbidden_api"
    offby1 = by["offby1"]
    assert [g for g, t in offby1.items() if not t["passed"]] == ["corr2d_tests"], offby1
    assert offby1["corr2d_tests"]["hint"] == "output_off_by_one"
    entry = next(r for r in result["results"] if r["student"] == "offby1")
    assert entry["max_score"] - entry["score"] == offby1["corr2d_tests"]["max_score"] == 2
    assert "corr2d_multi_in is right" in _printed(work, "offby1", "corr2d_multi_in_tests")
    assert "corr2d_multi_in_out is right" in _printed(work, "offby1",
                                                     "corr2d_multi_in_out_tests")
    for student, (check, mistake_id) in own.items():  # a wrong function keeps its own hint
        failed = {g: t["hint"] for g, t in by[student].items() if not t["passed"]}
        assert failed == {"corr2d_tests": "output_off_by_one", f"{check}_tests": mistake_id}, (
            student, failed)
    # the visible asserts still run, ungraded, and show the student what goes wrong
    assert "expected shape (2, 2), got (1, 1)" in _error_before(work, "offby1",
                                                                "corr2d_multi_in_tests")
    assert "expected shape (3, 2, 2)" in _error_before(work, "offby1",
                                                       "corr2d_multi_in_out_tests")


def _autograded_cells(work: Path, student: str) -> list[nbformat.NotebookNode]:
    path = work / "autograded" / student / "channels_pooling" / "channels_pooling.ipynb"
    return nbformat.read(str(path), as_version=4).cells


def _printed(work: Path, student: str, grade_id: str) -> str:
    """What the autograded test cell ``grade_id`` of ``student`` printed (its stdout)."""
    cell = next(c for c in _autograded_cells(work, student)
                if _meta(c).get("grade_id") == grade_id)
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _error_before(work: Path, student: str, grade_id: str) -> str:
    """The error of the ungraded code cell right before the test cell ``grade_id``."""
    cells = _autograded_cells(work, student)
    index = next(i for i, c in enumerate(cells) if _meta(c).get("grade_id") == grade_id)
    before = cells[index - 1]
    assert before.cell_type == "code" and not _meta(before), "an ungraded cell before it"
    return "".join(f"{o.ename}: {o.evalue}" for o in before.outputs if o.output_type == "error")


def test_cheat_is_the_corpus_attack() -> None:
    from attacks import corpus
    assert demo.PATCH_JUDGE == corpus.PATCH_JUDGE


def test_never_overwrites_a_differing_submission(tmp_path: Path) -> None:
    shutil.copytree(REPO / "release", tmp_path / "release")
    first = demo.make_demo_class(tmp_path, [demo.BLANK])
    assert demo.make_demo_class(tmp_path, [demo.BLANK]) == first, "identical content is fine"
    mine = tmp_path / first[0]
    mine.write_text(mine.read_text(encoding="utf-8") + " ", encoding="utf-8")
    with pytest.raises(FileExistsError):
        demo.make_demo_class(tmp_path, [demo.BLANK])
    assert mine.read_text(encoding="utf-8").endswith(" "), "the student's file was kept"
    assert demo.main(["--course", str(tmp_path), "--students", demo.BLANK]) == 1
    assert demo.main(["--course", str(tmp_path), "--students", demo.BLANK, "--force"]) == 0
    assert not mine.read_text(encoding="utf-8").endswith(" ")
    with pytest.raises(ValueError):
        demo.make_demo_class(tmp_path, ["ada"])
    assert demo.main(["--course", str(tmp_path / "nowhere")]) == 1


def test_helpers_kept_for_other_tests() -> None:
    from refs import MISTAKES

    assert demo.mistake_source("corr2d") == MISTAKES["corr2d"][0].source
    assert demo.mistake_source("pool2d", "window_sum") == demo.answer_source(
        "pool2d", "mistake:pool2d_avg:window_sum")
    assert "def corr2d" in demo.right_source("corr2d")
    assert demo.solution_names("def f():\n    pass\nx = 1") == ["f", "x"]
