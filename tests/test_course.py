"""The course's registry: every assignment folder found, every exercise whole, no cycles.

A declared exercise missing a part (its reference, its cases, its mistakes, its judge, its test
cell) fails loudly when the course loads; a blank answer never passes any check; the grader's
modules import each other without a cycle.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from refs import ASSIGNMENTS

import grader
from grader import checks, registry
from grader.runtime.declare import FUNCTION_KINDS

REPO = Path(__file__).resolve().parent.parent
COURSE = REPO / "grader" / "course"
_ids = itertools.count()


def test_assignments_are_the_course_folders() -> None:
    folders = sorted(p.name for p in COURSE.iterdir() if (p / "exercises.py").is_file())
    assert ASSIGNMENTS == folders == sorted(registry.course().assignments)
    assert sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir()) == folders


def test_every_exercise_is_whole() -> None:
    c = registry.course()
    for name, ex in c.exercises.items():
        assert ex.assignment in c.assignments, name
        if ex.kind in FUNCTION_KINDS:
            assert callable(c.reference(name)) and c.cases(name, 0) and c.mistakes(name), name
        else:
            assert c.judge_of(name), name


# ---------------------------------------------------------------------------------------------
# a course missing a part fails when it loads


def _copy(tmp_path: Path) -> tuple[str, Path]:
    """A copy of the course as a fresh package (and of source/), importable from tmp_path."""
    package = f"course_copy_{next(_ids)}"
    shutil.copytree(COURSE, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "source", tmp_path / "source")
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    return package, tmp_path / "source"


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n" + code + "\n", encoding="utf-8")


BROKEN = {
    "no reference": ("padding_stride/reference.py", "del conv_params",
                     "no reference solution 'conv_params'"),
    "no cases": ("padding_stride/cases.py", 'del CASES["conv_params"]', "no cases"),
    "empty cases": ("padding_stride/cases.py", 'CASES["conv_params"] = lambda seed: []',
                    "its cases are empty"),
    "no mistakes": ("padding_stride/mistakes.py", 'del MISTAKES["conv_params"]',
                    "no list of known mistakes"),
    "no mistake of a function": ("padding_stride/mistakes.py", 'MISTAKES["conv_params"] = []',
                                 "needs at least one known mistake"),
    "no judge": ("conv_basics/judges.py", 'del JUDGES["out_1_0"]', "needs a judge"),
    "undeclared cases": ("padding_stride/cases.py", 'CASES["nope"] = CASES["conv_params"]',
                         "cases of undeclared exercise(s) ['nope']"),
    "unknown kind": ("padding_stride/exercises.py",
                     'EXERCISES = (exercise("conv_params", "conv_params", "t", "matrix"),'
                     ' *EXERCISES[:3], *EXERCISES[4:])', "unknown kind 'matrix'"),
    "no test cell": ("padding_stride/exercises.py",
                     'EXERCISES = (*EXERCISES, exercise("fc_params2", "fc_params", "t", "number"))'
                     '\nfrom %s.padding_stride import cases, mistakes\n'
                     'cases.CASES["fc_params2"] = cases.CASES["fc_params"]\n'
                     'mistakes.MISTAKES["fc_params2"] = mistakes.MISTAKES["fc_params"]',
                     "no test cell 'fc_params2_tests'"),
    "no comparison": ("compare.py", 'del COMPARISONS["kernel"]',
                      "the kind 'kernel' needs the course's comparison"),
    "declared twice": ("padding_stride/exercises.py",
                       'EXERCISES = (*EXERCISES, exercise("corr2d", "corr2d", "t", "tensor"))',
                       "declared by both"),
}


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_a_missing_part_fails_loudly(what: str, tmp_path: Path) -> None:
    package, source = _copy(tmp_path)
    path, code, message = BROKEN[what]
    _append(tmp_path / package / path, code.replace("%s", package))
    if what == "declared twice":
        _append(tmp_path / package / "padding_stride/cases.py",
                'from grader.course.channels_pooling.cases import CASES as _C\n'
                'CASES["corr2d"] = _C["corr2d"]')
        _append(tmp_path / package / "padding_stride/mistakes.py",
                'MISTAKES["corr2d"] = MISTAKES["conv_params"]')
        _append(tmp_path / package / "padding_stride/reference.py",
                "from grader.course.channels_pooling.reference import corr2d  # noqa: E402")
    with pytest.raises(registry.CourseError, match=re.escape(message)):
        registry.load(package, source)


def test_an_intact_copy_loads(tmp_path: Path) -> None:
    package, source = _copy(tmp_path)
    assert sorted(registry.load(package, source).exercises) == sorted(checks.CHECKS)


def test_a_test_cell_calling_an_undeclared_check_fails_loudly(tmp_path: Path) -> None:
    package, source = _copy(tmp_path)
    path = source / "padding_stride" / "padding_stride.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "code", "execution_count": None, "outputs": [],
                        "metadata": {"nbgrader": {"grade": True, "solution": False,
                                                  "grade_id": "mystery_tests", "points": 1}},
                        "source": "from grader import check_mystery\ncheck_mystery(f)\n"})
    path.write_text(json.dumps(nb), encoding="utf-8")
    with pytest.raises(registry.CourseError, match="undeclared check.*check_mystery"):
        registry.load(package, source)


def test_a_check_without_cases_never_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if a course slipped past the registry: no cases is a failed verdict."""
    record = {"items": [], "seed": 0}
    assert checks.judge("conv_params", dict(record, items=[{}] * 5)).hint == "bad_record"
    monkeypatch.setattr(registry.Course, "cases", lambda self, name, seed=0: [])
    verdict = checks.judge("conv_params", record)
    assert not verdict.passed and verdict.hint == "bad_record"


# ---------------------------------------------------------------------------------------------
# a blank answer never passes


def _blank_function(*args: object, **kwargs: object) -> object:
    raise NotImplementedError()


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_a_blank_answer_never_passes(name: str) -> None:
    ex = checks.CHECKS[name]
    check = getattr(grader, f"check_{name}")
    blanks: list[tuple] = ([(_blank_function,), (None,), (...,)] if ex.calls_function else
                           [(None,) * len(ex.answers), (...,) * len(ex.answers)])
    for blank in blanks:
        with pytest.raises(AssertionError, match="not right yet|not written|unreadable|incomplete"):
            check(*blank)


# ---------------------------------------------------------------------------------------------
# no import cycles


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The grader modules ``path`` imports anywhere in it (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def test_no_import_cycles() -> None:
    paths = {_module_name(p): p for p in (REPO / "grader").rglob("*.py")
             if "__pycache__" not in p.parts}
    modules = set(paths)
    graph = {m: {d for d in _imports(p, modules) if not m.startswith(d + ".") and d != m}
             for m, p in paths.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert "grader.runtime.probe" in graph and "grader.checks" not in graph["grader.runtime.probe"]


def test_the_runtime_imports_no_reference_mistake_or_judge() -> None:
    """What is staged (runtime, declarations, cases) imports only staged modules."""
    from grader.runtime.staging import staged_files

    staged = {_module_name(REPO / "grader" / f) for f in staged_files(REPO / "grader")}
    paths = {_module_name(p): p for p in (REPO / "grader").rglob("*.py")
             if "__pycache__" not in p.parts}
    for module in staged:
        outside = _imports(paths[module], set(paths)) - staged
        if module == "grader":  # the in-process sink imports the judge lazily, outside the worker
            outside -= {"grader.checks"}
        assert not outside, f"{module} imports {sorted(outside)}, which is not staged"


def test_hints_fit_the_exercise() -> None:
    """A corr2d_pad_stride that ignores padding is not told about "no padding"."""
    from grader.course.padding_stride import reference as P

    def corr2d_pad_stride(X, K, padding=(0, 0), stride=(1, 1)):  # noqa: ANN001, ANN202
        return P.corr2d_pad_stride(X, K, (0, 0), stride)

    with pytest.raises(AssertionError) as info:
        grader.check_corr2d_pad_stride(corr2d_pad_stride)
    message = str(info.value)
    assert "Hint:" in message and "no padding" not in message and "stride 1" not in message
    for name, ex in checks.CHECKS.items():
        if ex.assignment == "padding_stride":
            assert "no padding" not in (checks.hint_for(ex, "wrong_shape") or ""), name
