"""The committed release/ is exactly what nbgrader generates from source/, and it is clean.

One module-scoped fixture copies ``source/`` and ``nbgrader_config.py`` into a temporary course
and runs ``nbgrader generate_assignment`` there once per assignment, so no gradebook, release or
validation output is ever written into the repository. ``nbgrader validate`` then runs twice in
that copy: once over every source notebook (the solutions must pass every test, hidden ones
included) and once over every release notebook (the blank student version must fail every
graded cell).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from refs import ASSIGNMENTS as REGISTERED
from traitlets.config.loader import PyFileConfigLoader

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: Files nbgrader_config.py tells nbgrader to skip; a stray one in the checkout is not an error.
IGNORED = {".ipynb_checkpoints", "__pycache__"}
#: Text that must never reach a student.
LEAKS = ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "grader.reference", "grader.course",
         "check_", "from grader")


def _assignments() -> list[str]:
    source = REPO / "source"
    if not source.is_dir():
        return []
    return sorted(d.name for d in source.iterdir() if (d / f"{d.name}.ipynb").is_file())


ASSIGNMENTS = _assignments()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])  # alembic from PATH
    env["PYTHONUNBUFFERED"] = "1"  # keep stdout (results) and stderr (log) in order
    env.pop("CONVGRADE_DB_URL", None)  # always the temporary course's own sqlite gradebook
    return env


def _nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "nbgrader"), *args],
        cwd=root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary copy of the course with every assignment generated into its release/."""
    root = tmp_path_factory.mktemp("release") / "course"
    shutil.copytree(REPO / "source", root / "source",
                    ignore=shutil.ignore_patterns(*IGNORED))
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    # One call for every assignment: nbgrader globs the assignment id, and each nbgrader start
    # costs seconds (imports, gradebook migration).
    proc = _nbgrader(root, "generate_assignment", "*", "--force")
    assert proc.returncode == 0, f"generate_assignment failed:\n{proc.stdout}"
    for assignment in ASSIGNMENTS:
        notebook = root / "release" / assignment / f"{assignment}.ipynb"
        assert notebook.is_file(), f"generate_assignment wrote no {notebook}:\n{proc.stdout}"
    return root


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not IGNORED.intersection(p.relative_to(folder).parts)
    )


def _parse_validate(output: str, notebooks: list[Path]) -> dict[str, str]:
    """Map each notebook name to its part of ``nbgrader validate``'s output."""
    parts = re.split(r"\[ValidateApp \| INFO\] Validating '([^']+)'", output)
    results = {Path(parts[i]).name: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    assert sorted(results) == sorted(nb.name for nb in notebooks), output
    return results


@pytest.fixture(scope="module")
def validated(course: Path) -> dict[str, dict[str, str]]:
    """``nbgrader validate`` over all source notebooks and over all release notebooks.

    The two runs start together (one process each, every notebook in one call) because each
    notebook's kernel start and torch import dominate the time.
    """
    runs = {folder: [course / folder / a / f"{a}.ipynb" for a in ASSIGNMENTS]
            for folder in ("source", "release")}
    procs = {
        folder: subprocess.Popen(
            [str(VENV_BIN / "nbgrader"), "validate", *[str(nb) for nb in notebooks]],
            cwd=course, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for folder, notebooks in runs.items()
    }
    results = {}
    for folder, proc in procs.items():
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output
        results[folder] = _parse_validate(output, runs[folder])
    return results


def _grade_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")]


# ---------------------------------------------------------------------------------------------


def test_the_course_has_its_assignments() -> None:
    """source/ holds one notebook per assignment folder of the course (grader/course/<a>/)."""
    assert ASSIGNMENTS == REGISTERED and ASSIGNMENTS
    release = sorted(d.name for d in (REPO / "release").iterdir()
                     if d.is_dir() and d.name not in IGNORED)
    assert release == ASSIGNMENTS, "release/ must hold exactly the generated assignments"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_folder_holds_only_the_notebook(assignment: str) -> None:
    # nbgrader copies every file of source/<a>/ into the release and every autograde folder.
    assert _files(REPO / "source" / assignment) == [f"{assignment}.ipynb"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_release_is_what_generation_produces(course: Path, assignment: str) -> None:
    generated = course / "release" / assignment
    committed = REPO / "release" / assignment
    assert _files(committed) == _files(generated), "release/ holds other files than generated"
    for name in _files(generated):
        assert _load_json(committed / name) == _load_json(generated / name), (
            f"release/{assignment}/{name} is stale: run `nbgrader generate_assignment "
            f"{assignment} --force` and commit the result"
        )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_leaks_nothing(assignment: str) -> None:
    path = REPO / "release" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        for leak in LEAKS:
            assert leak not in cell.source, f"{cell.metadata.get('nbgrader')}: holds {leak!r}"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            assert "raise NotImplementedError()" in cell.source, meta["grade_id"]
        if meta.get("solution") and cell.cell_type == "markdown":
            assert cell.source.strip() == "YOUR ANSWER HERE", meta["grade_id"]


@pytest.mark.parametrize("folder", ["source", "release"])
def test_notebooks_are_stored_without_outputs(folder: str) -> None:
    for assignment in ASSIGNMENTS:
        path = REPO / folder / assignment / f"{assignment}.ipynb"
        nb = nbformat.read(str(path), as_version=4)
        assert nb.nbformat == 4
        assert nb.metadata["kernelspec"]["name"] == "python3"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path}: a code cell has outputs"
                assert cell.execution_count is None, f"{path}: a code cell has a count"


def test_no_absolute_paths() -> None:
    for folder in ("source", "release"):
        for path in (REPO / folder).rglob("*.ipynb"):
            text = path.read_text(encoding="utf-8")
            for prefix in ("/work/", "/tmp/", "/home/", "/root/", "/srv/", "C:\\\\"):
                assert prefix not in text, f"{path} mentions {prefix}"
    # In nbgrader_config.py only comments and the docstring may name an absolute path.
    tree = ast.parse((REPO / "nbgrader_config.py").read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree, clean=False)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value != docstring:
                assert not node.value.startswith(("/", "~")), node.value


def _load_config(directory: Path) -> object:
    shutil.copy2(REPO / "nbgrader_config.py", directory / "nbgrader_config.py")
    return PyFileConfigLoader("nbgrader_config.py", path=str(directory)).load_config()


def test_config_paths_follow_the_config_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVGRADE_EXCHANGE", raising=False)
    monkeypatch.delenv("CONVGRADE_DB_URL", raising=False)
    config = _load_config(tmp_path)
    assert config.CourseDirectory.course_id == "convgrade"
    assert Path(config.CourseDirectory.root) == tmp_path.resolve()
    assert Path(config.Exchange.root) == tmp_path.resolve() / "exchange"
    assert "db_url" not in config.CourseDirectory, "default: nbgrader's gradebook.db in root"
    assert config.Execute.timeout >= 30


def test_config_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVGRADE_EXCHANGE", "/srv/nbgrader/exchange")
    monkeypatch.setenv("CONVGRADE_DB_URL", "postgresql://grader@db/convgrade")
    config = _load_config(tmp_path)
    assert config.Exchange.root == "/srv/nbgrader/exchange"
    assert config.CourseDirectory.db_url == "postgresql://grader@db/convgrade"


def test_config_loads_without_importing_its_steps() -> None:
    """nbgrader_config.py names every step by import string: loading it (as the grader does
    for each run) imports none of nbgrader's preprocessors, nbconvert or SQLAlchemy."""
    code = ("import sys\nfrom grader.engine.gradebook import load_config\n"
            f"load_config({str(REPO)!r})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('nbconvert', 'sqlalchemy') or m.startswith('nbgrader.preprocessors')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout


def test_every_configured_step_imports(tmp_path: Path) -> None:
    """Each import string of the course's autograde and feedback steps names a preprocessor,
    and the fast engine finds nbgrader's Execute among them to swap for the worker's runs."""
    from nbconvert.exporters import HTMLExporter
    from nbconvert.preprocessors import Preprocessor
    from nbgrader.preprocessors import Execute
    from traitlets.utils.importstring import import_item

    from grader.engine.autograde import autograde_preprocessors

    config = _load_config(tmp_path)
    steps = autograde_preprocessors(config)
    assert Execute in steps and all(issubclass(pp, Preprocessor) for pp in steps)
    feedback = [import_item(pp) for pp in config.GenerateFeedback.preprocessors]
    assert all(issubclass(pp, Preprocessor) for pp in feedback)
    assert issubclass(import_item(config.GenerateFeedback.exporter_class), HTMLExporter)


def test_no_configured_step_warns_under_the_feedback_exporter(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """generate_feedback's HTMLExporter configures ``display_data_priority`` for every
    preprocessor; none of the course's steps may answer with traitlets' "Config option ...
    not recognized" warning (it showed once per assignment in the demo's output)."""
    import logging

    from traitlets.config import Config
    from traitlets.utils.importstring import import_item

    from grader.engine import steps as convgrade_steps

    config = _load_config(tmp_path)
    exporter = import_item(config.GenerateFeedback.exporter_class)
    merged = Config(exporter().default_config)
    merged.merge(config)
    steps = [import_item(pp) if isinstance(pp, str) else pp
             for pp in config.GenerateFeedback.preprocessors]
    steps += [getattr(convgrade_steps, name) for name in convgrade_steps.__all__]
    with caplog.at_level(logging.WARNING):
        for step in steps:
            step(config=merged)
    assert not [r.getMessage() for r in caplog.records if "not recognized" in r.getMessage()]


def test_feedback_hides_hidden_tests_and_their_traceback_lines(tmp_path: Path) -> None:
    from traitlets.utils.importstring import import_item

    config = _load_config(tmp_path)
    steps = [import_item(pp) if isinstance(pp, str) else pp
             for pp in config.GenerateFeedback.preprocessors]
    names = [pp.__name__ for pp in steps]
    assert names[0] == "GetGrades" and "CSSHTMLHeaderPreprocessor" in names
    (clear,) = [pp for pp in steps if pp.__name__.startswith("ClearHiddenTests")]
    source = ('assert f(1) == 2, "f(1) should be 2"\n### BEGIN HIDDEN TESTS\n'
              "from grader import check_f\ncheck_f(f)\n### END HIDDEN TESTS")
    frame = ("\x1b[0;31mAssertionError\x1b[0m   Traceback\n"
             "\x1b[0;32m----> 1\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m f(1) ...\n"
             "\x1b[0;32m      2\x1b[0m \x1b[38;5;66;03m### BEGIN HIDDEN TESTS\x1b[39;00m\n"
             "\x1b[0;32m      3\x1b[0m \x1b[38;5;28;01mfrom\x1b[39;00m grader import check_f\n"
             "      4 check_f(f)")
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "f_tests",
                                 "points": 1, "locked": True, "schema_version": 3}
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError",
                                           evalue="f(1) should be 2", traceback=[frame])]
    cell, _ = clear().preprocess_cell(cell, {}, 0)
    shown = cell.source + "\n".join(cell.outputs[0].traceback)
    assert "HIDDEN TESTS" not in shown and "check_" not in shown
    assert 'assert f(1) == 2, "f(1) should be 2"' in cell.source
    assert "----> 1" in shown and "Traceback" in shown


def test_source_notebooks_validate(validated: dict[str, dict[str, str]]) -> None:
    for name, verdict in validated["source"].items():
        assert "Success! Your notebook passes all the tests." in verdict, f"{name}:\n{verdict}"


def _runs_nothing(cell: nbformat.NotebookNode) -> bool:
    """A graded code cell whose release text is only a comment: the test cell of an exercise
    that uses other answers (its visible asserts are in the ungraded cell before it, which
    ``nbgrader validate`` does not count; its hidden check is not in the release)."""
    meta = cell.metadata.get("nbgrader", {})
    return (cell.cell_type == "code" and meta.get("grade") and not meta.get("solution")
            and not ast.parse(cell.source).body)


def test_release_notebooks_fail_validation(course: Path,
                                           validated: dict[str, dict[str, str]]) -> None:
    results = validated["release"]
    for path in [course / "release" / a / f"{a}.ipynb" for a in ASSIGNMENTS]:
        nb = nbformat.read(str(path), as_version=4)
        silent = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if _runs_nothing(c)]
        graded = [g for g in _grade_cells(nb) if g not in silent]
        verdict = results[path.name]
        match = re.search(r"VALIDATION FAILED ON (\d+) CELL\(S\)", verdict)
        assert match, f"{path.name} should fail validation while blank:\n{verdict}"
        assert int(match.group(1)) == len(graded), (
            f"{path.name}: every graded cell with visible code ({len(graded)}) should fail "
            f"while blank:\n{verdict}"
        )
