"""The source notebooks follow the contract in docs/ARCHITECTURE.md.

Static checks only (nothing is executed here; test_release.py runs ``nbgrader validate``):
cell kinds and grade_ids, the exercise table (names, checks, points), the hidden-cell contract
(one import, one call of the check the grade_id names), solution cells that delegate to the
single reference, code that compiles and the Chinese terms beside the English ones.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from refs import ASSIGNMENTS

from grader.checks import CHECKS
from grader.registry import exercise_rows, exercise_table

REPO = Path(__file__).resolve().parent.parent
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"

#: Chinese terms each notebook must introduce (beside the English term).
TERMS: dict[str, set[str]] = {
    "conv_basics": {"互相关", "卷积核", "特征图", "填充", "步幅", "通道", "感受野"},
    "channels_pooling": {"互相关", "卷积核", "通道", "池化", "特征图"},
    "padding_stride": {"填充", "步幅", "感受野", "互相关", "卷积核"},
}
ALL_TERMS = {"互相关", "卷积核", "填充", "步幅", "通道", "池化", "感受野", "特征图"}

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)\n### END HIDDEN TESTS", re.S)
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION", re.S)


def _notebook(folder: str, assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(str(REPO / folder / assignment / f"{assignment}.ipynb"), as_version=4)


def _meta(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def _docs_table() -> str:
    """The exercise table of docs/ARCHITECTURE.md, as written there."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("## The exercises", 1)[1]
    return "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"


def _table() -> list[dict]:
    """The graded cells, from the registry and the source notebooks (manual ones: "_answer")."""
    return [{**row, "defines": row["defines"] or ["written answer (manual)"]}
            for row in exercise_rows()]


TABLE = _table()


def _kind(cell: nbformat.NotebookNode) -> str | None:
    """Which kind of nbgrader cell this is, or None for a plain cell."""
    meta = _meta(cell)
    if not meta:
        return None
    if meta.get("grade") and not meta.get("solution"):
        return "tests"
    if meta.get("grade") and meta.get("solution"):
        return "answer"
    if meta.get("solution"):
        return "solution"
    if meta.get("locked"):
        return "context"
    return "other"


# ---------------------------------------------------------------------------------------------


def test_the_table_is_read() -> None:
    assert {row["stem"] for row in TABLE if not row["stem"].endswith("_answer")} == set(CHECKS)
    assert {row["assignment"] for row in TABLE} == set(ASSIGNMENTS)


def test_the_docs_table_is_the_registry_s() -> None:
    """docs/ARCHITECTURE.md's exercise table is generated: `python -m grader.registry`."""
    assert _docs_table() == exercise_table(), "regenerate it with python -m grader.registry"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grade_ids_are_unique_and_well_named(assignment: str) -> None:
    for folder in ("source", "release"):
        nb = _notebook(folder, assignment)
        ids = [_meta(c)["grade_id"] for c in nb.cells if _meta(c)]
        duplicated = [g for g, n in Counter(ids).items() if n > 1]
        assert not duplicated, f"{folder}/{assignment}: duplicated grade_ids {duplicated}"
        cell_ids = [c.get("id") for c in nb.cells]
        assert len(set(cell_ids)) == len(cell_ids), f"{folder}/{assignment}: duplicated cell ids"
        for cell in nb.cells:
            kind, grade_id = _kind(cell), _meta(cell).get("grade_id", "")
            expected = {"tests": r"[a-z0-9_]+_tests", "solution": r"[a-z0-9_]+_solution",
                        "answer": r"[a-z0-9_]+_answer", "context": r"[a-z0-9_]+_context"}
            if kind is not None:
                assert kind in expected, f"{assignment}: {grade_id} is neither graded nor locked"
                assert re.fullmatch(expected[kind], grade_id), f"{kind} cell named {grade_id!r}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_cell_metadata(assignment: str) -> None:
    for cell in _notebook("source", assignment).cells:
        meta, kind = _meta(cell), _kind(cell)
        if meta:
            assert meta["schema_version"] == 3
        if kind == "tests":
            assert cell.cell_type == "code" and meta["locked"] and meta["points"] > 0
        elif kind == "answer":
            assert cell.cell_type == "markdown" and not meta["locked"] and meta["points"] > 0
        elif kind == "solution":
            assert cell.cell_type == "code" and not meta["locked"]
        elif kind == "context":
            assert cell.cell_type == "code" and not meta["grade"] and not meta["solution"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_points_match_the_table(assignment: str) -> None:
    nb = _notebook("source", assignment)
    graded = {}
    for cell in nb.cells:
        if _kind(cell) in ("tests", "answer"):
            grade_id = _meta(cell)["grade_id"]
            graded[grade_id.removesuffix("_tests")] = _meta(cell)["points"]
    table = {row["stem"]: row["points"] for row in TABLE if row["assignment"] == assignment}
    assert graded == table


def test_every_check_is_called_by_exactly_one_hidden_cell() -> None:
    calls: Counter[str] = Counter()
    for assignment in ASSIGNMENTS:
        for cell in _notebook("source", assignment).cells:
            hidden = HIDDEN.findall(cell.source)
            if _kind(cell) != "tests":
                assert not hidden, f"{assignment}: hidden tests outside a test cell"
                continue
            grade_id = _meta(cell)["grade_id"]
            if not hidden:
                continue
            assert len(hidden) == 1, f"{grade_id}: more than one hidden region"
            stem = grade_id.removesuffix("_tests")
            assert stem in CHECKS, f"{grade_id}: no check named {stem}"
            spec = CHECKS[stem]
            assert spec.assignment == assignment, f"{grade_id} belongs to {spec.assignment}"
            assert hidden[0].splitlines() == [
                f"from grader import check_{stem}",
                f"check_{stem}({', '.join(spec.answers)})",
            ], f"{grade_id}: the hidden part must be one import and one call of check_{stem}"
            calls[stem] += 1
    assert dict(calls) == {name: 1 for name in CHECKS}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_has_visible_asserts_and_a_hidden_check(assignment: str) -> None:
    """Visible asserts after the hidden check, except for an exercise that uses other answers
    (``Exercise.uses``): its visible asserts run the student's own dependencies, so they live in
    an ordinary ungraded code cell right before the test cell, whose visible part is only a
    comment saying what the graded cell checks (docs/ARCHITECTURE.md, "Answers that build on
    others")."""
    cells = _notebook("source", assignment).cells
    for index, cell in enumerate(cells):
        if _kind(cell) != "tests":
            continue
        grade_id = _meta(cell)["grade_id"]
        assert HIDDEN.search(cell.source), f"{grade_id}: no hidden check"
        visible = HIDDEN.sub("", cell.source)
        spec = CHECKS.get(grade_id.removesuffix("_tests"))
        if spec is None or not spec.uses:
            assert "assert" in visible.lower(), f"{grade_id}: no visible assert"
            continue
        assert ast.parse(visible).body == [], (
            f"{grade_id} uses {spec.uses}: its visible code belongs in the ungraded cell before"
        )
        first = cell.source.splitlines()[0]
        assert first.startswith("# ") and spec.answers[0] in first, (
            f"{grade_id}: the graded cell's first line says what it checks"
        )
        before = cells[index - 1]
        assert before.cell_type == "code" and not _meta(before), (
            f"{grade_id}: the cell before it must be an ordinary (ungraded) code cell"
        )
        assert "assert" in before.source and f"{spec.answers[0]}(" in before.source, (
            f"{grade_id}: the cell before it runs {spec.answers[0]} under visible asserts"
        )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_test_cell_ends_in_a_value(assignment: str) -> None:
    # nbgrader takes a number left as a test cell's last value as a partial score.
    for folder in ("source", "release"):
        for cell in _notebook(folder, assignment).cells:
            if _kind(cell) == "tests":
                body = ast.parse(cell.source).body
                if not body:  # a comment only: the release of a hidden-only cell (uses=)
                    assert folder == "release", f"{_meta(cell)['grade_id']} runs nothing"
                    continue
                last = body[-1]
                if isinstance(last, ast.Expr):
                    assert folder == "source" and isinstance(last.value, ast.Call), (
                        f"{folder}/{_meta(cell)['grade_id']} ends in an expression"
                    )
                    assert ast.unparse(last.value.func).startswith("check_")


def test_table_names_match_the_checks() -> None:
    for row in TABLE:
        if row["stem"].endswith("_answer"):
            continue
        assert row["stem"] in CHECKS, row
        assert list(CHECKS[row["stem"]].answers) == row["defines"], row
        assert CHECKS[row["stem"]].assignment == row["assignment"], row


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_delegate_to_the_reference(assignment: str) -> None:
    source = {_meta(c)["grade_id"]: c for c in _notebook("source", assignment).cells
              if _kind(c) == "solution"}
    release = {_meta(c)["grade_id"]: c for c in _notebook("release", assignment).cells
               if _kind(c) == "solution"}
    assert source.keys() == release.keys()
    defined = {name for row in TABLE if row["assignment"] == assignment
               for name in row["defines"] if not row["stem"].endswith("_answer")}
    expected_ids = {f"{row['defines'][0]}_solution" for row in TABLE
                    if row["assignment"] == assignment and not row["stem"].endswith("_answer")}
    assert set(source) == expected_ids
    for grade_id, cell in source.items():
        regions = SOLUTION.findall(cell.source)
        assert len(regions) == 1, f"{grade_id}: one solution region"
        lines = [line.strip() for line in regions[0].splitlines() if line.strip()]
        module = f"from grader.course.{assignment}.reference import"
        assert lines and lines[0].startswith(module), grade_id
        assert all(line.startswith((module, "return _reference("))
                   for line in lines), f"{grade_id}: the solution must only call the reference"
        # The release still shows what the student defines.
        shown = release[grade_id].source
        names = [n for n in defined if re.search(rf"^(def {n}\(|{n} = )", cell.source, re.M)]
        assert names, f"{grade_id}: defines none of {sorted(defined)}"
        for name in names:
            assert re.search(rf"^(def {name}\(|{name} = )", shown, re.M), (
                f"{grade_id}: the release no longer shows {name}"
            )
    shown_names = {n for c in source.values() for n in defined
                   if re.search(rf"^(def {n}\(|{n} = )", c.source, re.M)}
    assert shown_names == defined


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_functions_have_docstrings_with_shapes(assignment: str) -> None:
    for cell in _notebook("source", assignment).cells:
        if _kind(cell) != "solution":
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef):
                doc = ast.get_docstring(node) or ""
                assert "Args:" in doc and "Returns:" in doc, f"{node.name}: docstring sections"


@pytest.mark.parametrize("folder", ["source", "release"])
def test_code_cells_compile(folder: str) -> None:
    for assignment in ASSIGNMENTS:
        for index, cell in enumerate(_notebook(folder, assignment).cells):
            if cell.cell_type == "code":
                compile(cell.source, f"{folder}/{assignment} cell {index}", "exec")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_chinese_terms_appear(assignment: str) -> None:
    text = "\n".join(c.source for c in _notebook("release", assignment).cells
                     if c.cell_type == "markdown")
    missing = {term for term in TERMS[assignment] if term not in text}
    assert not missing, f"{assignment} never names {sorted(missing)}"
    for term in TERMS[assignment]:
        # The Chinese term stands beside an English one: "(互相关)" or a table row "| 互相关 |".
        assert re.search(rf"\({term}\)|\| {term} \|", text), f"{term} is not beside its English"


def test_every_term_is_taught_somewhere() -> None:
    assert set().union(*TERMS.values()) == ALL_TERMS
