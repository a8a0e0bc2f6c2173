"""The course's registry: the assignments found by discovery, each exercise checked on load.

:func:`course` loads every assignment folder of :data:`grader.runtime.discover.COURSE_PACKAGE`
(``grader/course/<assignment>/``) and validates it: a declared exercise without a reference,
without cases (or with empty ones), without a list of mistakes, a "value" exercise without a
judge, cases or mistakes of an undeclared exercise, a declared check with no test cell in the
source notebook or a test cell calling an undeclared check all raise :class:`CourseError`
naming the exercise and the missing part. Nothing lists assignments by hand.

Runs in the grader's own process only (it imports the references and the mistakes).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from grader.engine.precheck import checks_called
from grader.records import Comparison
from grader.runtime.declare import KINDS, Case, Exercise, Mistake
from grader.runtime.discover import COURSE_PACKAGE, assignment_modules

#: The repository's source/ folder (validated against when it exists).
SOURCE_DIR = Path(__file__).resolve().parents[1] / "source"



class CourseError(Exception):
    """A course that cannot be graded safely: an exercise misses a part, or a notebook's test
    cells and the declarations disagree."""


@dataclass(frozen=True)
class Assignment:
    """One assignment folder, loaded.

    Attributes:
        name: the folder's name (= the nbgrader assignment's name).
        exercises: its exercises by check name, in declaration order.
        reference: its ``reference.py`` module.
        cases: its case builders by check name.
        mistakes: its known mistakes by check name.
        judges: the judges of its "value" exercises by check name.
        standins: the trusted stand-ins of the answers its exercises ``use``, by answer name
            (``STANDINS`` of its optional ``standins.py``).
    """

    name: str
    exercises: dict[str, Exercise]
    reference: ModuleType
    cases: dict[str, Callable[[int], list[Case]]]
    mistakes: dict[str, list[Mistake]]
    judges: dict[str, Callable[..., Any]]
    standins: dict[str, Callable[..., Any]] = field(default_factory=dict)


#: Kinds the engine's judge compares itself; every other function kind needs the course's
#: comparison (``COMPARISONS[kind]`` in the course package's ``compare.py``).
JUDGED_KINDS = ("number", "value")
#: The course package's optional module of comparisons, by kind.
COMPARE_MODULE = "compare"


@dataclass(frozen=True)
class Course:
    """The loaded, validated course.

    Attributes:
        assignments: each assignment folder, loaded, by name.
        comparisons: how the course compares each kind of answer the engine does not
            (``COMPARISONS`` of its ``compare.py``; none without one).
    """

    assignments: dict[str, Assignment]
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @functools.cached_property
    def exercises(self) -> dict[str, Exercise]:
        """Every exercise by check name, assignment by assignment."""
        return {name: ex for a in self.assignments.values() for name, ex in a.exercises.items()}

    def assignment_of(self, name: str) -> Assignment:
        """The assignment declaring check ``name`` (KeyError if none)."""
        return self.assignments[self.exercises[name].assignment]

    def reference(self, name: str, answer: str | None = None) -> Any:
        """The reference of ``answer`` (default: the first answer) of check ``name``."""
        ex = self.exercises[name]
        return getattr(self.assignment_of(name).reference, answer or ex.answers[0])

    def mistakes(self, name: str) -> list[Mistake]:
        """The known mistakes of check ``name``."""
        return self.assignment_of(name).mistakes[name]

    def mistake(self, name: str, mistake_id: str) -> Mistake | None:
        """The mistake of check ``name`` called ``mistake_id``, or None."""
        return next((m for m in self.mistakes(name) if m.id == mistake_id), None)

    def cases(self, name: str, seed: int = 0) -> list[Case]:
        """The cases of check ``name`` for ``seed`` ([] for value exercises)."""
        builder = self.assignment_of(name).cases.get(name)
        return builder(seed) if builder else []

    def judge_of(self, name: str) -> Callable[..., Any]:
        """The judge of the value exercise ``name``."""
        return self.assignment_of(name).judges[name]

    def comparison(self, kind: str) -> Comparison:
        """How answers of ``kind`` are compared (KeyError if the course declares none)."""
        return self.comparisons[kind]


def _part(package: str, assignment: str, part: str, required: bool = True) -> ModuleType | None:
    try:
        return importlib.import_module(f"{package}.{assignment}.{part}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.{assignment}.{part}":
            raise
        if required:
            raise CourseError(f"assignment {assignment!r}: no {part}.py in its folder") from None
        return None


def load_assignment(package: str, name: str, declarations: ModuleType) -> Assignment:
    """Load and validate the assignment ``name`` of ``package`` (its folder's parts)."""
    reference = _part(package, name, "reference")
    cases = getattr(_part(package, name, "cases"), "CASES", None)
    mistakes = getattr(_part(package, name, "mistakes"), "MISTAKES", None)
    judges_module = _part(package, name, "judges", required=False)
    judges = getattr(judges_module, "JUDGES", {}) if judges_module else {}
    standins_module = _part(package, name, "standins", required=False)
    standins = getattr(standins_module, "STANDINS", {}) if standins_module else {}
    where = f"assignment {name!r}"
    if not isinstance(cases, dict):
        raise CourseError(f"{where}: cases.py defines no CASES dict")
    if not isinstance(mistakes, dict):
        raise CourseError(f"{where}: mistakes.py defines no MISTAKES dict")
    exercises: dict[str, Exercise] = {}
    for ex in getattr(declarations, "EXERCISES", None) or ():
        ex = replace(ex, assignment=name)
        if ex.name in exercises:
            raise CourseError(f"{where}: exercise {ex.name!r} is declared twice")
        exercises[ex.name] = ex
    if not exercises:
        raise CourseError(f"{where}: exercises.py declares no EXERCISES")
    for ex in exercises.values():
        _validate(ex, reference, cases, mistakes, judges)  # type: ignore[arg-type]
        _validate_uses(ex, reference, standins)
    for part, table in (("cases", cases), ("mistakes", mistakes), ("judges", judges)):
        orphans = sorted(set(table) - set(exercises))
        if orphans:
            raise CourseError(f"{where}: {part} of undeclared exercise(s) {orphans}")
    return Assignment(name, exercises, reference, cases, mistakes, judges,  # type: ignore[arg-type]
                      standins)


def _validate_uses(ex: Exercise, reference: ModuleType, standins: Any) -> None:
    """Each answer ``ex`` uses is one of the assignment's references and has a stand-in."""
    what = f"exercise {ex.name!r} of {ex.assignment!r}"
    if ex.uses and not ex.calls_function:
        raise CourseError(f"{what}: only a function exercise can use other answers")
    for name in ex.uses:
        if name in ex.answers or not callable(getattr(reference, name, None)):
            raise CourseError(f"{what}: it uses {name!r}, which is no other reference function "
                              "in reference.py")
        if not isinstance(standins, dict) or not callable(standins.get(name)):
            raise CourseError(f"{what}: it uses {name!r} but has no stand-in for it "
                              f"(STANDINS[{name!r}] in standins.py)")


def _validate(ex: Exercise, reference: ModuleType, cases: dict, mistakes: dict,
              judges: dict) -> None:
    what = f"exercise {ex.name!r} of {ex.assignment!r}"
    if ex.kind not in KINDS:
        raise CourseError(f"{what}: unknown kind {ex.kind!r} (one of {', '.join(KINDS)})")
    if not ex.answers or not ex.title:
        raise CourseError(f"{what}: declare the answers it reads and a title")
    for answer in ex.answers if not ex.calls_function else ex.answers[:1]:
        if not hasattr(reference, answer):
            raise CourseError(f"{what}: no reference solution {answer!r} in reference.py")
    if ex.calls_function:
        if not callable(getattr(reference, ex.answers[0])):
            raise CourseError(f"{what}: the reference {ex.answers[0]!r} is not a function")
        if ex.name not in cases:
            raise CourseError(f"{what}: no cases (CASES[{ex.name!r}] in cases.py)")
        built = cases[ex.name](0)
        if not built or not all(isinstance(c, Case) for c in built):
            raise CourseError(f"{what}: its cases are empty (CASES[{ex.name!r}](0) gave "
                              f"{built!r}); a check without cases would pass any answer")
    elif ex.name not in judges:
        raise CourseError(f"{what}: a value exercise needs a judge (JUDGES[{ex.name!r}] in "
                          "judges.py)")
    listed = mistakes.get(ex.name)
    if not isinstance(listed, list) or not all(isinstance(m, Mistake) for m in listed):
        raise CourseError(f"{what}: no list of known mistakes (MISTAKES[{ex.name!r}] in "
                          "mistakes.py)")
    if ex.calls_function and not listed:
        raise CourseError(f"{what}: a function exercise needs at least one known mistake "
                          "(the tests show it scores below full marks)")


def notebook_checks(path: Path) -> dict[str, set[str]]:
    """``{check name: grade_ids of the test cells calling it}`` in the notebook at ``path``."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade") or meta.get("solution") or cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        for name in checks_called(source, "cell"):
            found.setdefault(name, set()).add(str(meta.get("grade_id")))
    return found


def validate_notebooks(assignment: Assignment, source_dir: Path) -> None:
    """Check the assignment's source notebooks and its declarations agree.

    Every declared check has a test cell ``<name>_tests`` calling it; every check a test cell
    calls is declared. An assignment without a source folder is not checked.
    """
    folder = Path(source_dir) / assignment.name
    notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if not notebooks:
        return
    called: dict[str, set[str]] = {}
    for path in notebooks:
        for name, ids in notebook_checks(path).items():
            called.setdefault(name, set()).update(ids)
    where = f"assignment {assignment.name!r}"
    for name, ex in assignment.exercises.items():
        if ex.grade_id not in called.get(name, set()):
            raise CourseError(f"{where}: exercise {name!r} has no test cell {ex.grade_id!r} "
                              f"calling check_{name} in {folder}")
    undeclared = sorted(set(called) - set(assignment.exercises))
    if undeclared:
        raise CourseError(f"{where}: test cells call undeclared check(s) "
                          + ", ".join(f"check_{n}" for n in undeclared))


def load_comparisons(package: str) -> dict[str, Comparison]:
    """``COMPARISONS`` of the course package's ``compare.py`` ({} without one)."""
    try:
        module = importlib.import_module(f"{package}.{COMPARE_MODULE}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.{COMPARE_MODULE}":
            raise
        return {}
    comparisons = getattr(module, "COMPARISONS", None)
    if not isinstance(comparisons, dict) or not all(
            isinstance(c, Comparison) for c in comparisons.values()):
        raise CourseError(f"{package}.{COMPARE_MODULE} defines no COMPARISONS dict of "
                          "grader.records.Comparison by kind")
    return comparisons


def load(package: str = COURSE_PACKAGE, source_dir: Path | None = SOURCE_DIR) -> Course:
    """Load and validate the course in ``package`` (notebooks too, if ``source_dir`` exists)."""
    assignments: dict[str, Assignment] = {}
    comparisons = load_comparisons(package)
    seen: dict[str, str] = {}
    for name, declarations in assignment_modules("exercises", package).items():
        assignment = load_assignment(package, name, declarations)
        for check in assignment.exercises:
            if check in seen:
                raise CourseError(f"exercise {check!r} is declared by both {seen[check]!r} and "
                                  f"{name!r}: a check name is unique in a course")
            seen[check] = name
        for ex in assignment.exercises.values():
            if ex.kind not in JUDGED_KINDS and ex.kind not in comparisons:
                raise CourseError(
                    f"exercise {ex.name!r} of {name!r}: the kind {ex.kind!r} needs the course's "
                    f"comparison (COMPARISONS[{ex.kind!r}] in {package}.{COMPARE_MODULE})")
        if source_dir is not None:
            validate_notebooks(assignment, source_dir)
        assignments[name] = assignment
    return Course(assignments, comparisons)


_course_lock = threading.RLock()


def course() -> Course:
    """This course, loaded and validated once: a second thread asking while the first loads
    waits for it (two threads importing the course's modules at once can deadlock in
    Python's import locks, which then hands one of them an error)."""
    with _course_lock:
        return _loaded()


@functools.cache
def _loaded() -> Course:
    return load()


def _literal(value: Any) -> str:
    if hasattr(value, "tolist") and type(value).__name__ == "Tensor":
        return f"torch.tensor({value.tolist()!r})"
    return repr(value)


def solution_source(name: str) -> str:
    """Python source that defines the answer ``name`` the way a student would in the notebook.

    ``name`` is an answer (``corr2d``, ``pool2d``, ``window_1_0``) or a value check's name
    (``my_kernel`` defines ``my_kernel`` and ``my_out`` together). Functions come back as their
    ``def`` (docstring included); values as assignments.
    """
    c = course()
    ex = c.exercises.get(name)
    if ex is not None and not ex.calls_function:
        ref = c.assignment_of(name).reference
        return "\n".join(f"{n} = {_literal(getattr(ref, n))}" for n in ex.answers)
    for ex in c.exercises.values():
        if name in ex.answers:
            obj = getattr(c.assignment_of(ex.name).reference, name)
            if inspect.isfunction(obj):
                return textwrap.dedent(inspect.getsource(obj))
            return f"{name} = {_literal(obj)}"
    raise KeyError(f"no reference solution named {name!r}")


def exercise_rows(c: Course | None = None, source_dir: Path = SOURCE_DIR) -> list[dict[str, Any]]:
    """The graded cells of each assignment's source notebooks, in notebook order.

    One row per graded cell: ``assignment``, ``defines`` (the answers the check reads, or
    ``None`` for a manually graded answer), ``stem`` (the grade_id without ``_tests``) and
    ``points`` (from the notebook: points live there).
    """
    c = c or course()
    rows = []
    for name, assignment in c.assignments.items():
        for path in sorted((Path(source_dir) / name).glob("*.ipynb")):
            nb = json.loads(path.read_text(encoding="utf-8"))
            for cell in nb.get("cells", []):
                meta = cell.get("metadata", {}).get("nbgrader", {})
                if not meta.get("grade"):
                    continue
                stem = str(meta["grade_id"]).removesuffix("_tests")
                ex = assignment.exercises.get(stem)
                rows.append({"assignment": name, "stem": stem, "points": meta.get("points", 0),
                             "defines": list(ex.answers) if ex else None})
    return rows


def exercise_table(c: Course | None = None, source_dir: Path = SOURCE_DIR) -> str:
    """The exercise table of docs/ARCHITECTURE.md, generated from the registry and notebooks."""
    lines = ["| assignment | student defines | check / grade_id stem | points |",
             "| --- | --- | --- | --- |"]
    for row in exercise_rows(c, source_dir):
        defines = (", ".join(f"`{n}`" for n in row["defines"]) if row["defines"]
                   else "written answer (manual)")
        lines.append(f"| {row['assignment']} | {defines} | `{row['stem']}` | {row['points']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m grader.registry: validate, print the docs' table
    print(exercise_table(), end="")
