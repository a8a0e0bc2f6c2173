"""The docs' recipes "add an exercise" and "add an assignment" (docs/ARCHITECTURE.md), followed
in a temporary copy of the course.

Only the assignment's folder (grader/course/padding_stride/) and its notebook are touched; the
release is regenerated with nbgrader; ``python -m grader autograde`` (the sandboxed engine) then
grades a right and a wrong submission, and the new exercise scores as it should. The registry,
the stage and the judge find the exercise by themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, run_nbgrader

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

ASSIGNMENT = "padding_stride"
NAME = "same_padding"
POINTS = 2

FILES = {
    "reference.py": '''
        def same_padding(k: int) -> int:
            """The padding that keeps the size of a stride-1 convolution, for an odd kernel.

            Args:
                k: the kernel length (odd).

            Returns:
                p = (k - 1) / 2, so that n + 2p - k + 1 = n.
            """
            return (k - 1) // 2
        ''',
    "cases.py": '''
        def _same_padding_cases(seed: int) -> list[Case]:
            return [Case(f"same_padding({k})", (k,)) for k in (1, 3, 5, 7, 11)]


        CASES["same_padding"] = _same_padding_cases
        ''',
    "mistakes.py": '''
        MISTAKES["same_padding"] = [
            mistake("padding_once",
                    "Padding is added on both sides: 2p = k - 1.",
                    """
                    def same_padding(k):
                        return k - 1
                    """),
        ]
        ''',
    "exercises.py": '''
        EXERCISES = (*EXERCISES, exercise("same_padding", "same_padding", "same_padding(k)",
                                          "number"))
        ''',
}


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(root),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("CONVGRADE_DB_URL", None)
    return env


def _add_cells(path: Path, assignment: str = ASSIGNMENT) -> None:
    nb = nbformat.read(str(path), as_version=4)
    solution = nbformat.v4.new_code_cell(
        "def same_padding(k):\n"
        "    ### BEGIN SOLUTION\n"
        f"    from grader.course.{assignment}.reference import same_padding as _reference\n"
        "    return _reference(k)\n"
        "    ### END SOLUTION")
    solution.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False,
                                     "grade_id": f"{NAME}_solution", "schema_version": 3}
    tests = nbformat.v4.new_code_cell(
        "### BEGIN HIDDEN TESTS\n"
        f"from grader import check_{NAME}\n"
        f"check_{NAME}({NAME})\n"
        "### END HIDDEN TESTS\n"
        f"assert {NAME}(3) == 1, 'a 3x3 kernel needs padding 1'")
    tests.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                  "grade_id": f"{NAME}_tests", "points": POINTS,
                                  "schema_version": 3}
    nb.cells += [solution, tests]
    nbformat.write(nb, str(path))


#: Run in the copy: write the right and the wrong submission from the copy's own registry.
WRITE_SUBMISSIONS = """
import sys
from pathlib import Path

import nbformat

from grader import demo

root, assignment, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
release = nbformat.read(str(root / "release" / assignment / f"{assignment}.ipynb"), as_version=4)
for student in ("right", "wrong"):
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            answer = meta["grade_id"].removesuffix("_solution")
            wrong = student == "wrong" and answer == name
            cell.source = demo.mistake_source(answer) if wrong else demo.right_source(answer)
    out = root / "submitted" / student / assignment / f"{assignment}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
"""


def _copy_course(root: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    shutil.copytree(REPO / "grader", root / "grader", ignore=ignore)
    shutil.copytree(REPO / "source", root / "source", ignore=ignore)
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")


def _release_and_grade(root: Path, assignment: str, name: str) -> dict:
    """Generate the release, write a right and a wrong submission, grade them (sandboxed)."""
    run_nbgrader(root, "generate_assignment", assignment, "--force")
    env = _env(root)
    table = subprocess.run([sys.executable, "-m", "grader.registry"], cwd=root, env=env,
                           capture_output=True, text=True, check=True).stdout
    subprocess.run([sys.executable, "-c", WRITE_SUBMISSIONS, str(root), assignment, name],
                   cwd=root, env=env, check=True, timeout=300)
    out = root / f"{assignment}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(root / "submitted"), "--assignment",
         assignment, "--course", str(root), "--json", str(out)],
        cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert out.exists(), proc.stdout + proc.stderr
    results = {r["student"]: r for r in json.loads(out.read_text())["results"]}
    return {"table": table, "results": results, "proc": proc}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("recipe") / "course"
    _copy_course(root)
    folder = root / "grader" / "course" / ASSIGNMENT
    for name, code in FILES.items():  # 1-4: the assignment's folder
        path = folder / name
        path.write_text(path.read_text() + "\n" + textwrap.dedent(code), encoding="utf-8")
    _add_cells(root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")  # 5: the notebook
    return _release_and_grade(root, ASSIGNMENT, NAME)  # 6: the release, then grading


def _test(result: dict, grade_id: str) -> dict:
    return next(t for t in result["tests"] if t["grade_id"] == grade_id)


def test_the_new_exercise_is_in_the_table(graded: dict) -> None:
    assert f"| {ASSIGNMENT} | `{NAME}` | `{NAME}` | {POINTS} |" in graded["table"]


def test_a_right_submission_gets_full_marks(graded: dict) -> None:
    right = graded["results"]["right"]
    assert _test(right, f"{NAME}_tests")["score"] == POINTS, right
    assert right["score"] == right["max_score"], graded["proc"].stdout


def test_a_wrong_submission_loses_the_new_exercise_only(graded: dict) -> None:
    right, wrong = graded["results"]["right"], graded["results"]["wrong"]
    test = _test(wrong, f"{NAME}_tests")
    assert test["score"] == 0 and test["hint"] == "padding_once", test
    assert "Padding is added on both sides" in test["message"]
    assert wrong["score"] == right["score"] - POINTS


# ---------------------------------------------------------------------------------------------
# "add an assignment": one folder and its notebook

NEW = "sizes"


@pytest.fixture(scope="module")
def new_assignment(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("recipe_assignment") / "course"
    _copy_course(root)
    folder = root / "grader" / "course" / NEW
    folder.mkdir()
    (folder / "__init__.py").write_text(f'"""The assignment {NEW}."""\n')
    header = "from __future__ import annotations\n\n"
    imports = {"reference.py": "",
               "cases.py": "from grader.runtime.declare import Case\n\nCASES = {}\n",
               "mistakes.py": "from grader.runtime.declare import mistake\n\nMISTAKES = {}\n",
               "exercises.py": "from grader.runtime.declare import exercise\n\nEXERCISES = ()\n"}
    for name, code in FILES.items():
        (folder / name).write_text(header + imports[name] + "\n" + textwrap.dedent(code))
    source = root / "source" / NEW / f"{NEW}.ipynb"
    source.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# Sizes\n\nThe padding that keeps the size.")]), str(source))
    _add_cells(source, NEW)
    return _release_and_grade(root, NEW, NAME)


def test_a_new_assignment_is_found_and_graded(new_assignment: dict) -> None:
    assert f"| {NEW} | `{NAME}` | `{NAME}` | {POINTS} |" in new_assignment["table"]
    right, wrong = new_assignment["results"]["right"], new_assignment["results"]["wrong"]
    assert right["score"] == right["max_score"] == POINTS, new_assignment["proc"].stdout
    assert wrong["score"] == 0 and _test(wrong, f"{NAME}_tests")["hint"] == "padding_once"
