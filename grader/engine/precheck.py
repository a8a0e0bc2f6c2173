"""Step 1 and 2 of autograding: read a submitted notebook and compare it with the source.

Stock nbgrader trusts the submitted notebook's structure. A student who deletes a test cell
silently skips its points check, a duplicated ``grade_id`` stops the whole ``nbgrader
autograde`` batch, and a changed ``schema_version`` does the same. :func:`precheck` finds
these problems, describes each one in a sentence, and returns a repaired copy of the notebook
where the repair cannot give the student anything they did not earn:

* a deleted test or read-only cell comes back from the source (hidden tests included);
* a deleted written-answer cell comes back as the empty stub (it scores 0);
* a deleted code answer cell comes back as the empty stub where it was (its tests score 0
  unless a later cell, e.g. one the student re-created, defines the answer again);
* of several cells with the same ``grade_id`` the first keeps it, the others become
  ordinary cells;
* a renamed ``grade_id`` is renamed back when the cell can be matched unambiguously;
* a cell whose nbgrader metadata another front-end dropped (a hosted notebook service, an
  editor that keeps no unknown metadata) is matched back to its source cell by content: test
  and read-only cells by their text, code answers by the names they define, written answers
  by their place between the matched cells; order breaks ties, and the problems list says
  what was matched;
* an nbformat 4.0-4.4 notebook (no cell ids) is read as 4.5;
* nbgrader metadata (``schema_version``, points, flags) comes back from the source;
* test and read-only cells get the source text back (with the hidden tests), as nbgrader's
  own ``OverwriteCells`` would do.

Moved cells are reported but left where they are. The student's file is never modified.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

__all__ = [
    "GradedCell",
    "Problem",
    "PrecheckResult",
    "SourceSpec",
    "load_source",
    "load_sources",
    "precheck",
    "precheck_notebook",
    "checks_called",
    "hidden_checks",
    "defined_names",
    "is_test_cell",
]

SCHEMA_VERSION = 3
_HIDDEN_RE = re.compile(
    r"### BEGIN HIDDEN TESTS(.*?)(?:### END HIDDEN TESTS|\Z)", re.DOTALL
)
_CHECK_CALL_RE = re.compile(r"\bcheck_(\w+)\s*\(")
_DEFAULT_CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
_DEFAULT_TEXT_STUB = "YOUR ANSWER HERE"


def checks_called(cell_source: str, scope: str = "hidden") -> list[str]:
    """Names of the checks (without ``check_``) a test cell calls, in order, each once.

    ``scope`` says where to look: ``"hidden"``, in the cell's hidden test sections only (what
    runs in the autograder); ``"cell"``, anywhere in the cell (the registry's view of a
    source notebook). The one ``check_<name>(`` finder of the engine and the registry.
    """
    if scope == "hidden":
        sections = _HIDDEN_RE.findall(cell_source)
    elif scope == "cell":
        sections = [cell_source]
    else:
        raise ValueError(f"scope must be 'hidden' or 'cell', not {scope!r}")
    names: list[str] = []
    for section in sections:
        for name in _CHECK_CALL_RE.findall(section):
            if name not in names:
                names.append(name)
    return names


def hidden_checks(cell_source: str) -> list[str]:
    """Names of the checks (without ``check_``) called in a cell's hidden test sections."""
    return checks_called(cell_source, "hidden")


@dataclass
class GradedCell:
    """A cell of the source notebook that carries nbgrader metadata with a ``grade_id``."""

    grade_id: str
    index: int
    cell_type: str
    grade: bool
    solution: bool
    locked: bool
    task: bool
    points: float
    source: str
    """The source text as nbgrader's gradebook stores it (solutions replaced by stubs)."""
    metadata: dict[str, Any]
    """The cell's ``nbgrader`` metadata in the source notebook."""
    checks: list[str] = field(default_factory=list)
    """Checks called in the hidden test section (test cells only)."""

    @property
    def is_test(self) -> bool:
        """An autograded test cell: graded, not an answer cell."""
        return self.grade and not self.solution and self.cell_type == "code"

    @property
    def is_manual(self) -> bool:
        """A manually graded answer cell (graded and an answer cell)."""
        return self.grade and self.solution

    @property
    def is_locked(self) -> bool:
        """nbgrader overwrites the submitted text of this cell with the source text."""
        return not self.solution and (self.grade or self.locked)

    def stub_cell(self) -> NotebookNode:
        """The cell as it appears in the released (student) notebook, with hidden tests."""
        meta = {"nbgrader": copy.deepcopy(self.metadata)}
        if self.is_locked:
            meta.update({"deletable": False, "editable": False})
        if self.cell_type == "code":
            return nbformat.v4.new_code_cell(self.source, metadata=meta)
        return nbformat.v4.new_markdown_cell(self.source, metadata=meta)


@dataclass
class SourceSpec:
    """What one notebook of an assignment's submission must contain, read from its source
    notebook ``source/<a>/<notebook_name>.ipynb``."""

    assignment: str
    notebook_name: str
    path: Path
    cells: list[GradedCell]
    context: tuple[str, ...] = ()
    """The normalised text of the source's other cells (instructions), to tell a written
    answer from the text around it when a front-end lost the metadata."""
    markdown: frozenset[str] = frozenset()
    """The exact text of the source's markdown cells: the instructor's own words."""

    @property
    def by_id(self) -> dict[str, GradedCell]:
        """Graded cells by ``grade_id``."""
        return {c.grade_id: c for c in self.cells}

    @property
    def tests(self) -> list[GradedCell]:
        """The autograded test cells, in notebook order."""
        return [c for c in self.cells if c.is_test]

    @property
    def max_score(self) -> float:
        """Autograded points of the assignment."""
        return float(sum(c.points for c in self.tests))

    @property
    def manual_max_score(self) -> float:
        """Manually graded points of the assignment."""
        return float(sum(c.points for c in self.cells if c.is_manual))


@dataclass
class Problem:
    """One thing wrong with a submitted notebook."""

    code: str
    """Short machine-readable kind: unreadable, deleted_test_cell, duplicate_grade_id, ..."""
    message: str
    """A sentence for the student and the instructor."""
    severity: str = "error"
    """``fatal`` (cannot be graded), ``error`` (graded, but reported) or ``warning``."""
    grade_id: str | None = None
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "code": self.code,
            "message": self.message,
            "severity": self.severity,
            "grade_id": self.grade_id,
            "repaired": self.repaired,
        }


@dataclass
class PrecheckResult:
    """The outcome of :func:`precheck` for one notebook."""

    path: Path | None
    notebook: NotebookNode | None
    """The repaired notebook, or None when the file cannot be graded at all."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def gradable(self) -> bool:
        """True when a (possibly repaired) notebook is available."""
        return self.notebook is not None

    @property
    def errors(self) -> list[Problem]:
        """Problems that must appear in the student's error entry."""
        return [p for p in self.problems if p.severity in ("fatal", "error")]

    def error_text(self) -> str | None:
        """All error sentences joined, or None."""
        errs = self.errors
        return " ".join(p.message for p in errs) if errs else None


def _stubs(config: Any | None) -> tuple[str, str]:
    code_stub, text_stub = _DEFAULT_CODE_STUB, _DEFAULT_TEXT_STUB
    if config is not None:
        cs = config.get("ClearSolutions", {})
        if "code_stub" in cs and isinstance(cs["code_stub"], dict):
            code_stub = cs["code_stub"].get("python", code_stub)
        if "text_stub" in cs:
            text_stub = cs["text_stub"]
    return code_stub, text_stub


def _clear_solution(source: str, cell_type: str, code_stub: str, text_stub: str) -> str:
    """Replace solution regions the way nbgrader's ClearSolutions does (python only)."""
    lines = source.split("\n")
    out: list[str] = []
    in_solution = False
    replaced = False
    for line in lines:
        if "### BEGIN SOLUTION" in line or "BEGIN SOLUTION" == line.strip():
            in_solution = True
            replaced = True
            indent = re.match(r"\s*", line).group(0)  # type: ignore[union-attr]
            stub = code_stub if cell_type == "code" else text_stub
            out.extend(indent + s for s in stub.split("\n"))
        elif in_solution and ("### END SOLUTION" in line or "END SOLUTION" == line.strip()):
            in_solution = False
        elif not in_solution:
            out.append(line)
    if not replaced:
        return code_stub if cell_type == "code" else text_stub
    return "\n".join(out)


def source_notebooks(course_root: str | Path, assignment: str) -> list[Path]:
    """The assignment's source notebooks, ``source/<assignment>/*.ipynb``, sorted by name.

    Raises FileNotFoundError when there is none.
    """
    folder = Path(course_root) / "source" / assignment
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith(".")) \
        if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(
            f"no source notebook for assignment {assignment!r}: expected notebooks in {folder}"
        )
    return found


def load_sources(course_root: str | Path, assignment: str,
                 config: Any | None = None) -> list[SourceSpec]:
    """Describe every notebook of the assignment (one :class:`SourceSpec` each, by name).

    An nbgrader assignment may have several notebooks (``ps1/problem1.ipynb``,
    ``ps1/problem2.ipynb``); each is graded on its own, as stock nbgrader does.
    Raises FileNotFoundError when the assignment has no source notebook.
    """
    return [_spec(path, assignment, config)
            for path in source_notebooks(course_root, assignment)]


def load_source(course_root: str | Path, assignment: str, config: Any | None = None) -> SourceSpec:
    """Read the assignment's one source notebook (``source/<a>/<a>.ipynb``, or the only
    notebook there) and describe its graded cells.

    ``config`` is the course's traitlets Config (for ClearSolutions stubs), if loaded.
    Raises FileNotFoundError when the assignment has no source notebook, or several and none
    named after the assignment (use :func:`load_sources` for those).
    """
    path = Path(course_root) / "source" / assignment / f"{assignment}.ipynb"
    if not path.exists():
        found = source_notebooks(course_root, assignment)
        if len(found) != 1:
            raise FileNotFoundError(
                f"assignment {assignment!r} has {len(found)} notebooks "
                f"({', '.join(p.name for p in found)}): expected one, {path}"
            )
        path = found[0]
    return _spec(path, assignment, config)


def _spec(path: Path, assignment: str, config: Any | None) -> SourceSpec:
    """The :class:`SourceSpec` of one source notebook."""
    nb = nbformat.read(str(path), as_version=4)
    code_stub, text_stub = _stubs(config)
    cells: list[GradedCell] = []
    context: list[str] = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta or not meta.get("grade_id"):
            context.append(_norm(cell.source))
            continue
        grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
        locked, task = bool(meta.get("locked")), bool(meta.get("task"))
        if not (grade or solution or locked or task):
            context.append(_norm(cell.source))
            continue
        text = cell.source
        if solution:
            text = _clear_solution(text, cell.cell_type, code_stub, text_stub)
        stored_meta = dict(meta)
        stored_meta.pop("checksum", None)
        cells.append(
            GradedCell(
                grade_id=meta["grade_id"],
                index=index,
                cell_type=cell.cell_type,
                grade=grade,
                solution=solution,
                locked=locked,
                task=task,
                points=float(meta.get("points", 0) or 0),
                source=text,
                metadata=stored_meta,
                checks=hidden_checks(cell.source) if grade and not solution else [],
            )
        )
    return SourceSpec(assignment=assignment, notebook_name=path.stem, path=path, cells=cells,
                      context=tuple(context),
                      markdown=frozenset(c.source for c in nb.cells if c.cell_type == "markdown"))


def _read(path: Path) -> tuple[NotebookNode | None, Problem | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, Problem("missing", f"could not read the notebook: no such file {path}.",
                             "fatal")
    except (OSError, UnicodeDecodeError) as exc:
        return None, Problem("unreadable", f"could not read the notebook: {exc}.", "fatal")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, Problem(
            "unreadable", f"could not read the notebook: it is not valid JSON ({exc}).", "fatal"
        )
    if not isinstance(raw, dict) or "cells" not in raw:
        return None, Problem(
            "unreadable",
            "could not read the notebook: the file is JSON but not a Jupyter notebook "
            "(no 'cells' list).",
            "fatal",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate cell ids are corrected silently
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several types for bad notebooks
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, Problem(
            "unreadable",
            f"could not read the notebook: it does not follow the notebook format ({msg}).",
            "fatal",
        )
    return nb, None


def precheck(path: str | Path, spec: SourceSpec) -> PrecheckResult:
    """Read the notebook at ``path``, compare it with ``spec`` and repair what is safe.

    Never raises for a bad notebook: an unreadable one gives a result with ``notebook=None``
    and a ``fatal`` problem. The file itself is not modified.
    """
    p = Path(path)
    nb, problem = _read(p)
    if nb is None:
        return PrecheckResult(p, None, [problem] if problem else [])
    result = precheck_notebook(nb, spec)
    result.path = p
    return result


def _nbmeta(cell: NotebookNode) -> dict[str, Any] | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else None


def is_test_cell(cell: NotebookNode) -> bool:
    """Whether ``cell`` is an autograded test cell (a code cell with ``grade`` and no
    ``solution`` in its nbgrader metadata)."""
    meta = _nbmeta(cell) or {}
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _flags(meta: dict[str, Any]) -> tuple[bool, bool, bool]:
    return bool(meta.get("grade")), bool(meta.get("solution")), bool(meta.get("locked"))


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def _same_text(a: str, b: str) -> bool:
    return _norm(_strip_hidden(a)) == _norm(_strip_hidden(b))


def _set_type(cell: NotebookNode, cell_type: str) -> NotebookNode:
    if cell.cell_type == cell_type:
        return cell
    meta = copy.deepcopy(cell.metadata)
    if cell_type == "code":
        return nbformat.v4.new_code_cell(cell.source, metadata=meta)
    return nbformat.v4.new_markdown_cell(cell.source, metadata=meta)


def precheck_notebook(nb: NotebookNode, spec: SourceSpec) -> PrecheckResult:
    """Compare an already parsed notebook with ``spec``; return problems and a repaired copy.

    The steps, one function each, in this order: unreadable nbgrader metadata, duplicate
    grade_ids, unknown grade_ids, cells a front-end stripped of their metadata (matched by
    content), the known cells' metadata and read-only text, deleted cells, moved cells, and
    an old nbformat minor version.
    """
    nb = copy.deepcopy(nb)
    problems: list[Problem] = []
    _drop_unreadable_metadata(nb, problems)
    _drop_duplicates(nb, problems)
    _rename_unknown(nb, spec, problems)
    _match_by_content(nb, spec, problems)
    _restore_known(nb, spec, problems)
    _restore_deleted(nb, spec, problems)
    _report_moved(nb, spec, problems)
    _upgrade_format(nb, problems)
    return PrecheckResult(None, nb, problems)


def _drop_unreadable_metadata(nb: NotebookNode, problems: list[Problem]) -> None:
    """nbgrader metadata that is not even a dict would stop nbgrader: drop it."""
    for cell in nb.cells:
        if "nbgrader" in cell.get("metadata", {}) and _nbmeta(cell) is None:
            del cell.metadata["nbgrader"]
            problems.append(Problem(
                "bad_metadata", "A cell had unreadable nbgrader metadata; it was run as an "
                "ordinary cell.", "warning", None, True,
            ))


def _drop_duplicates(nb: NotebookNode, problems: list[Problem]) -> None:
    """Of several cells with one grade_id the first keeps it; the others become ordinary."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        meta = _nbmeta(cell)
        if meta is None or not meta.get("grade_id"):
            continue
        gid = meta["grade_id"]
        seen[gid] = seen.get(gid, 0) + 1
        if seen[gid] > 1:
            del cell.metadata["nbgrader"]
    for gid, count in seen.items():
        if count > 1:
            problems.append(Problem(
                "duplicate_grade_id",
                f"The cell {gid!r} appears {count} times; the first copy was graded and the "
                "others were run as ordinary cells.",
                "error", gid, True,
            ))


def _rename_unknown(nb: NotebookNode, spec: SourceSpec, problems: list[Problem]) -> None:
    """Unknown grade_ids: renamed back when unambiguous, else the cell becomes ordinary."""
    by_id = spec.by_id
    present = {m["grade_id"] for c in nb.cells if (m := _nbmeta(c)) and m.get("grade_id")}
    missing = [c for c in spec.cells if c.grade_id not in present]
    for cell in nb.cells:
        meta = _nbmeta(cell)
        if meta is None:
            continue
        gid = meta.get("grade_id")
        if not gid:
            # ordinary cells may carry all-false metadata; anything else would fail
            # nbgrader's validation (and stop the run), so it goes
            if any(_flags(meta)) or meta.get("task") or \
                    meta.get("schema_version") != SCHEMA_VERSION:
                del cell.metadata["nbgrader"]
            continue
        if gid in by_id:
            continue
        flags = _flags(meta)
        candidates = [
            c for c in missing if (c.grade, c.solution, c.locked) == flags or
            (c.is_locked and _same_text(c.source, cell.source))
        ]
        same_text = [c for c in candidates if _same_text(c.source, cell.source)]
        match = same_text[0] if len(same_text) == 1 else (
            candidates[0] if len(candidates) == 1 else None)
        if match is not None:
            meta["grade_id"] = match.grade_id
            missing.remove(match)
            problems.append(Problem(
                "renamed_grade_id",
                f"The cell {match.grade_id!r} had been renamed to {gid!r}; its name was "
                "restored.",
                "warning", match.grade_id, True,
            ))
        else:
            del cell.metadata["nbgrader"]
            problems.append(Problem(
                "unknown_grade_id",
                f"The cell {gid!r} does not exist in the assignment; it was run as an ordinary "
                "cell.",
                "warning", gid, True,
            ))


def defined_names(source: str) -> set[str]:
    """Names a cell binds at its top level (defs, classes, assignments, imports); an empty
    set when it does not parse."""
    lines = [ln for ln in source.splitlines()
             if not ln.lstrip().startswith(("%", "!", "###"))]
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _content_match(src: GradedCell, cell: NotebookNode, spec: SourceSpec) -> str | None:
    """How ``cell`` (which has no nbgrader metadata) is the source cell ``src``, or None."""
    if src.is_locked:
        return "its text" if _same_text(src.source, cell.source) else None
    if src.cell_type == "code":
        wanted = defined_names(src.source)
        if cell.cell_type == "code" and wanted and wanted <= defined_names(cell.source):
            return f"what it defines ({', '.join(sorted(wanted))})"
        return None
    if cell.cell_type == src.cell_type and _norm(cell.source) not in spec.context and not \
            any(_same_text(c.source, cell.source) for c in spec.cells if c.is_locked):
        return "its place in the notebook"
    return None


def _match_by_content(nb: NotebookNode, spec: SourceSpec, problems: list[Problem]) -> None:
    """Give cells that lost their nbgrader metadata (another front-end saved the notebook)
    their source cell back: test and read-only cells by their text, code answers by the
    names they define, written answers by their place; order breaks ties."""
    position = {m["grade_id"]: k for k, c in enumerate(nb.cells)
                if (m := _nbmeta(c)) and m.get("grade_id")}
    if len(position) == len(spec.cells):
        return
    order = [c.grade_id for c in spec.cells]
    for number, src in enumerate(spec.cells):
        if src.grade_id in position:
            continue
        after = max((position[g] for g in order[:number] if g in position), default=-1)
        before = min((position[g] for g in order[number + 1:] if g in position),
                     default=len(nb.cells))
        free = [k for k, c in enumerate(nb.cells)
                if not (_nbmeta(c) or {}).get("grade_id")]
        found = [(k, how) for k in free if (how := _content_match(src, nb.cells[k], spec))]
        if src.is_manual:
            found = [(k, how) for k, how in found if after < k < before]
        if not found:
            continue
        k, how = min(found, key=lambda item: (not after < item[0] < before, item[0]))
        nb.cells[k].metadata["nbgrader"] = copy.deepcopy(src.metadata)
        position[src.grade_id] = k
        problems.append(Problem(
            "matched_by_content",
            f"The cell {src.grade_id!r} had lost its nbgrader metadata (the notebook was saved "
            f"by another front-end); it was recognised by {how}.",
            "warning", src.grade_id, True,
        ))


def _restore_known(nb: NotebookNode, spec: SourceSpec, problems: list[Problem]) -> None:
    """Known cells: metadata, type and read-only text come back from the source."""
    by_id = spec.by_id
    for i, cell in enumerate(nb.cells):
        meta = _nbmeta(cell)
        if meta is None or meta.get("grade_id") not in by_id:
            continue
        src = by_id[meta["grade_id"]]
        gid = src.grade_id
        version = meta.get("schema_version")
        if version != src.metadata.get("schema_version", SCHEMA_VERSION):
            problems.append(Problem(
                "schema_version",
                f"The nbgrader schema_version of cell {gid!r} was changed to {version!r}; the "
                "source metadata was restored.",
                "warning", gid, True,
            ))
        elif _flags(meta) != (src.grade, src.solution, src.locked) or float(
                meta.get("points", 0) or 0) != src.points:
            problems.append(Problem(
                "metadata_changed",
                f"The nbgrader metadata of cell {gid!r} was changed; the source metadata was "
                "restored.",
                "warning", gid, True,
            ))
        checksum = meta.get("checksum")
        new_meta = copy.deepcopy(src.metadata)
        if checksum is not None:
            new_meta["checksum"] = checksum
        cell.metadata["nbgrader"] = new_meta
        if cell.cell_type != src.cell_type:
            problems.append(Problem(
                "cell_type_changed",
                f"The cell {gid!r} was changed from {src.cell_type} to {cell.cell_type}; it "
                f"was changed back to {src.cell_type}.",
                "warning", gid, True,
            ))
            cell = _set_type(cell, src.cell_type)
            nb.cells[i] = cell
        if src.is_locked:
            if _norm(_strip_hidden(cell.source)) != _norm(_strip_hidden(src.source)):
                problems.append(Problem(
                    "locked_cell_edited",
                    f"The read-only cell {gid!r} was edited; the original was restored.",
                    "warning", gid, True,
                ))
            cell.source = src.source
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None


def _restore_deleted(nb: NotebookNode, spec: SourceSpec, problems: list[Problem]) -> None:
    """Deleted cells: test / read-only / written-answer cells come back from the source."""
    by_id = spec.by_id
    order = {c.grade_id: i for i, c in enumerate(spec.cells)}

    def positions() -> dict[str, int]:
        return {m["grade_id"]: k for k, c in enumerate(nb.cells)
                if (m := _nbmeta(c)) and m.get("grade_id") in by_id}

    for src in spec.cells:
        if src.grade_id in positions():
            continue
        gid = src.grade_id
        pos = positions()
        insert_at = 0
        for prev in reversed(spec.cells[: order[gid]]):
            if prev.grade_id in pos:
                insert_at = pos[prev.grade_id] + 1
                break
        nb.cells.insert(insert_at, src.stub_cell())
        if src.is_test:
            what, tail = "test cell", "it was restored from the assignment and graded."
        elif src.solution and src.cell_type == "code":
            what, tail = "answer cell", ("it was restored empty, so its tests pass only if a "
                                         "later cell defines the answer again.")
        elif src.is_manual:
            what, tail = "written-answer cell", "it was restored empty and scores 0."
        else:
            what, tail = "read-only cell", "it was restored from the assignment."
        problems.append(Problem(
            "deleted_test_cell" if src.is_test else "deleted_cell",
            f"The {what} {gid!r} was deleted; {tail}",
            "error" if (src.grade or src.solution) else "warning", gid, True,
        ))


def _report_moved(nb: NotebookNode, spec: SourceSpec, problems: list[Problem]) -> None:
    """Report graded cells that come before one that precedes them in the source."""
    by_id = spec.by_id
    order = {c.grade_id: i for i, c in enumerate(spec.cells)}
    seq = [m["grade_id"] for c in nb.cells if (m := _nbmeta(c)) and m.get("grade_id") in by_id]
    highest: str | None = None
    for gid in seq:
        if highest is not None and order[gid] < order[highest]:
            problems.append(Problem(
                "moved_cell",
                f"The cell {gid!r} was moved: it now comes after {highest!r}.",
                "warning", gid, False,
            ))
        elif highest is None or order[gid] > order[highest]:
            highest = gid


def _upgrade_format(nb: NotebookNode, problems: list[Problem]) -> None:
    """Bring an nbformat 4.0-4.4 notebook (no cell ids) to 4.5, as nbgrader's cells expect."""
    if nb.get("nbformat") != 4 or nb.get("nbformat_minor", 5) >= 5:
        return
    problems.append(Problem(
        "nbformat_upgraded",
        f"The notebook was saved as nbformat 4.{nb.get('nbformat_minor')} (an older or other "
        "front-end); it was read as 4.5.", "warning", None, True,
    ))
    nb.nbformat_minor = 5
    for cell in nb.cells:
        if not cell.get("id"):
            cell["id"] = uuid.uuid4().hex[:8]


def _strip_hidden(text: str) -> str:
    return _HIDDEN_RE.sub("", text)
