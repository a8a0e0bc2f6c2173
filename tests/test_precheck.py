"""grader.engine.precheck: reading submitted notebooks and repairing their graded cells."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, real_assignments, tiny_release, tiny_submission, write_nb

from grader.engine.precheck import hidden_checks, load_source, precheck, precheck_notebook


@pytest.fixture(scope="module")
def spec(tiny_course: Path):
    return load_source(tiny_course, "tiny")


def _ids(nb: nbformat.NotebookNode) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if "nbgrader" in c.metadata and c.metadata["nbgrader"].get("grade_id")]


def _codes(result) -> list[str]:
    return [p.code for p in result.problems]


def test_source_spec(spec) -> None:
    assert [c.grade_id for c in spec.tests] == ["add_tests", "mul_tests"]
    assert spec.by_id["add_tests"].checks == ["add"]
    assert spec.max_score == 3.0 and spec.manual_max_score == 1.0
    assert "return a + b" not in spec.by_id["add_solution"].source  # stored as the stub


def test_hidden_checks_ignores_imports() -> None:
    src = ("x = 1\n### BEGIN HIDDEN TESTS\nfrom grader import check_a\ncheck_a(f)\n"
           "### END HIDDEN TESTS")
    assert hidden_checks(src) == ["a"]
    assert hidden_checks("check_visible(f)") == []


def test_one_check_finder_for_the_engine_and_the_registry() -> None:
    """checks_called: hidden sections only (the engine), or the whole cell (the registry)."""
    from grader import registry
    from grader.engine.precheck import checks_called

    src = ("check_b(g)\n### BEGIN HIDDEN TESTS\nfrom grader import check_a\ncheck_a(f)\n"
           "check_a (f)\n### END HIDDEN TESTS\nassert check_c(f) is None")
    assert checks_called(src) == checks_called(src, "hidden") == hidden_checks(src) == ["a"]
    assert checks_called(src, "cell") == ["b", "a", "c"]
    with pytest.raises(ValueError, match="scope"):
        checks_called(src, "visible")
    assert not hasattr(registry, "_CHECK_CALL")  # the registry has no regex of its own


def test_clean_submission_has_no_problems(tiny_course: Path, spec) -> None:
    result = precheck_notebook(tiny_submission(tiny_course), spec)
    assert result.problems == []
    tests = {_id: c for c in result.notebook.cells
             if (_id := c.metadata.get("nbgrader", {}).get("grade_id"))}
    assert "check_add(add)" in tests["add_tests"].source  # hidden tests restored
    assert "return a + b" in tests["add_solution"].source  # the student's answer kept


def test_deleted_test_cell_is_restored(tiny_course: Path, spec) -> None:
    nb = tiny_submission(tiny_course)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                != "add_tests"]
    result = precheck_notebook(nb, spec)
    assert "deleted_test_cell" in _codes(result)
    assert result.error_text() and "add_tests" in result.error_text()
    ids = _ids(result.notebook)
    assert ids.index("add_tests") == ids.index("add_solution") + 1
    assert "check_add(add)" in result.notebook.cells[
        [i for i, c in enumerate(result.notebook.cells)
         if c.metadata.get("nbgrader", {}).get("grade_id") == "add_tests"][0]].source


def test_duplicates_keep_the_first(tiny_course: Path, spec) -> None:
    nb = tiny_submission(tiny_course)
    pos = [k for k, c in enumerate(nb.cells)
           if c.metadata.get("nbgrader", {}).get("grade_id") == "mul_solution"][0]
    copy = nbformat.from_dict(json.loads(json.dumps(nb.cells[pos])))
    copy.source = "def mul(a, b):\n    return 0"
    nb.cells.insert(pos + 1, copy)
    result = precheck_notebook(nb, spec)
    assert "duplicate_grade_id" in _codes(result)
    assert _ids(result.notebook).count("mul_solution") == 1
    kept = [c for c in result.notebook.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") == "mul_solution"][0]
    assert "a * b" in kept.source
    assert any("return 0" in c.source for c in result.notebook.cells)  # still runs


def test_renamed_grade_id_is_restored(tiny_course: Path, spec) -> None:
    nb = tiny_submission(tiny_course)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "mul_tests":
            c.metadata["nbgrader"]["grade_id"] = "my_tests"
    result = precheck_notebook(nb, spec)
    assert "renamed_grade_id" in _codes(result)
    assert "mul_tests" in _ids(result.notebook) and "my_tests" not in _ids(result.notebook)


def test_schema_version_type_and_edits_are_repaired(tiny_course: Path, spec) -> None:
    nb = tiny_submission(tiny_course)
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "add_tests":
            c.metadata["nbgrader"]["schema_version"] = 1
            c.source = "pass  # tests removed"
        if gid == "setup":
            c.metadata["nbgrader"]["points"] = 99
    md = nbformat.v4.new_markdown_cell("def mul(a, b):\n    return a * b",
                                       metadata=nb.cells[4].metadata)
    nb.cells[4] = md  # mul_solution turned into markdown
    result = precheck_notebook(nb, spec)
    codes = _codes(result)
    assert {"schema_version", "locked_cell_edited", "cell_type_changed"} <= set(codes)
    assert result.error_text() is None  # all repaired, warnings only
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in result.notebook.cells
             if "nbgrader" in c.metadata}
    assert cells["add_tests"].metadata["nbgrader"]["schema_version"] == 3
    assert "check_add(add)" in cells["add_tests"].source
    assert cells["mul_solution"].cell_type == "code"


def test_moved_cell_is_reported(tiny_course: Path, spec) -> None:
    nb = tiny_submission(tiny_course)
    last = nb.cells.pop(-1)  # why_answer
    nb.cells.insert(1, last)
    result = precheck_notebook(nb, spec)
    assert any(p.code == "moved_cell" for p in result.problems)


def test_deleted_written_answer_comes_back_empty(tiny_course: Path, spec) -> None:
    nb = tiny_release(tiny_course)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                != "why_answer"]
    result = precheck_notebook(nb, spec)
    assert "deleted_cell" in _codes(result)
    assert "why_answer" in _ids(result.notebook)


@pytest.mark.parametrize("content,expected", [
    ("{not json", "not valid JSON"),
    ('{"hello": 1}', "not a Jupyter notebook"),
    ('{"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
     "notebook format"),
])
def test_unreadable_notebooks(tmp_path: Path, spec, content: str, expected: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_text(content)
    result = precheck(path, spec)
    assert not result.gradable
    assert result.problems[0].severity == "fatal"
    assert result.error_text().startswith("could not read the notebook")
    assert expected in result.error_text()


def test_missing_file(tmp_path: Path, spec) -> None:
    result = precheck(tmp_path / "nope.ipynb", spec)
    assert not result.gradable and "no such file" in result.error_text()


def test_original_file_untouched(tmp_path: Path, tiny_course: Path, spec) -> None:
    nb = tiny_submission(tiny_course)
    nb.cells.pop(3)
    path = write_nb(nb, tmp_path / "s.ipynb")
    before = path.read_bytes()
    precheck(path, spec)
    assert path.read_bytes() == before


@pytest.mark.parametrize("assignment", real_assignments())
def test_real_release_matches_source(assignment: str) -> None:
    spec = load_source(REPO, assignment)
    assert spec.tests, "every assignment has autograded tests"
    for cell in spec.tests:
        assert cell.checks == [cell.grade_id[: -len("_tests")]], cell.grade_id
    release = nbformat.read(str(REPO / "release" / assignment / f"{assignment}.ipynb"), 4)
    result = precheck_notebook(release, spec)
    assert [p.message for p in result.problems] == []


def test_deleted_answer_cell_comes_back_as_the_stub(tiny_course: Path, spec) -> None:
    nb = tiny_submission(tiny_course)
    pos = [i for i, c in enumerate(nb.cells)
           if c.metadata.get("nbgrader", {}).get("grade_id") == "add_solution"][0]
    del nb.cells[pos]
    result = precheck_notebook(nb, spec)
    assert "add_solution" in result.error_text()
    cells = result.notebook.cells
    stub = [i for i, c in enumerate(cells)
            if c.metadata.get("nbgrader", {}).get("grade_id") == "add_solution"][0]
    assert "NotImplementedError" in cells[stub].source


def test_a_recreated_answer_cell_is_matched_by_what_it_defines(tiny_course: Path, spec) -> None:
    """Issue 9: an answer cell that lost its metadata (re-created, or saved by a front-end
    that drops it) is the student's answer, not a deleted cell."""
    nb = tiny_submission(tiny_course)
    pos = [i for i, c in enumerate(nb.cells)
           if c.metadata.get("nbgrader", {}).get("grade_id") == "add_solution"][0]
    nb.cells[pos] = nbformat.v4.new_code_cell("def add(a, b):\n    return a + b")  # re-created
    nb.cells.insert(pos + 2, nbformat.v4.new_code_cell("def add(a, b):\n    return b + a"))
    result = precheck_notebook(nb, spec)
    assert result.error_text() is None
    matched = [p for p in result.problems if p.code == "matched_by_content"]
    assert [(p.grade_id, p.severity) for p in matched] == [("add_solution", "warning")]
    assert "what it defines (add)" in matched[0].message
    cell = result.notebook.cells[pos]
    assert cell.metadata["nbgrader"]["grade_id"] == "add_solution"
    assert cell.source == "def add(a, b):\n    return a + b"  # the one in place, not the later


def test_a_notebook_stripped_of_all_metadata_is_matched_by_content(tiny_course: Path,
                                                                   spec) -> None:
    """A hosted service that drops every cell's metadata and ids (nbformat 4.0)."""
    clean = precheck_notebook(tiny_submission(tiny_course), spec).notebook
    nb = tiny_submission(tiny_course)
    nb.nbformat_minor = 0
    for cell in nb.cells:
        cell.metadata = {"id": "colab-cell"}
        cell.pop("id", None)
    nb.cells.insert(2, nbformat.v4.new_code_cell("help(math)"))
    nb.cells[2].pop("id", None)
    result = precheck_notebook(nb, spec)
    assert result.error_text() is None, result.error_text()
    codes = _codes(result)
    assert codes.count("matched_by_content") == len(spec.cells) and "nbformat_upgraded" in codes
    by_gid = {c.metadata["nbgrader"]["grade_id"]: c for c in result.notebook.cells
              if c.metadata.get("nbgrader", {}).get("grade_id")}
    for cell in clean.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid:
            assert by_gid[gid].source == cell.source, gid
            restored = dict(by_gid[gid].metadata["nbgrader"])
            assert restored == {k: v for k, v in cell.metadata["nbgrader"].items()
                                if k != "checksum"}, gid
    assert result.notebook.nbformat_minor == 5
    assert all(c.get("id") for c in result.notebook.cells)
    nbformat.validate(result.notebook)


def test_repaired_notebooks_pass_nbgraders_validation(tiny_course: Path, spec) -> None:
    from nbgrader.nbgraderformat import MetadataValidator

    nb = tiny_submission(tiny_course)
    nb.cells[0].metadata["nbgrader"] = {}  # empty metadata (schema 0 for nbgrader)
    nb.cells[2].metadata["nbgrader"]["schema_version"] = 4  # too new
    extra = nbformat.v4.new_code_cell("x = 1")
    extra.metadata["nbgrader"] = "junk"
    nb.cells.append(extra)
    dup = nbformat.from_dict(json.loads(json.dumps(nb.cells[3])))
    dup["id"] = "dup"
    nb.cells.append(dup)
    result = precheck_notebook(nb, spec)
    MetadataValidator().validate_nb(result.notebook)  # raises on anything nbgrader rejects
    assert "bad_metadata" in _codes(result) and "duplicate_grade_id" in _codes(result)
