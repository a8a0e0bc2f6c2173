"""The bundled demo class: three students' submissions written from the release notebooks.

* ``ada`` answers everything correctly: each solution cell holds the reference solution
  (:func:`grader.reference.solution_source`) and each written answer a short, sound text.
* ``ben`` makes a typical mistake in every exercise: each solution cell holds the first
  mistake of that exercise's first check (:data:`grader.hints.MISTAKES`).
* ``cy`` hands in the blank release notebook.

Each submission starts from ``release/<assignment>/<assignment>.ipynb`` and only the sources
of its solution cells change (metadata, cell ids and every other cell stay as released), and
is written where ``nbgrader collect`` would put it:
``submitted/<student>/<assignment>/<assignment>.ipynb``.

Usage: ``python -m grader.demo [--course DIR] [--students ada ben cy] [--force]``; the course
folder must hold the generated ``release/`` (``nbgrader generate_assignment <assignment>``).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import nbformat

STUDENTS: tuple[str, ...] = ("ada", "ben", "cy")

#: ada's written answers (manually graded markdown cells), by grade_id.
GOOD_ANSWERS: dict[str, str] = {
    "flatten_waste_answer": (
        "A flattened 32 x 32 image has 1024 inputs, so a fully connected layer to 512 units "
        "needs 1024 * 512 = 524,288 weights. One 3 x 3 kernel has 9 weights, and 512 output "
        "channels need 512 * 9 = 4,608. The fully connected layer learns every pattern again "
        "at every position and ignores which pixels are neighbours; a convolution shares one "
        "small kernel across all positions."
    ),
    "receptive_field_answer": (
        "Each unit of the second 3 x 3 layer combines 3 x 3 units of the first layer, whose "
        "windows are shifted by one pixel, so it depends on a 5 x 5 input region; three layers "
        "see 7 x 7. Two 3 x 3 layers with C channels in and out have 18 C^2 weights, one 5 x 5 "
        "layer 25 C^2."
    ),
}

#: ben's written answers: plausible but incomplete, for the manual-grading demo.
WEAK_ANSWERS: dict[str, str] = {
    "flatten_waste_answer": (
        "The layer has 32 * 32 + 512 = 1536 weights. Flattening is fine, it only makes the "
        "vector longer."
    ),
    "receptive_field_answer": "Because there are more layers, so the network is bigger.",
}


def solution_names(source: str) -> list[str]:
    """Top-level names a solution cell defines (defs, classes, assignments), in order.

    Reads an instructor's cell (``### BEGIN/END SOLUTION`` lines ignored); ``[]`` when the
    cell does not parse.
    """
    lines = [ln for ln in source.splitlines() if not ln.strip().startswith("###")]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return names


def _nbgrader_meta(cell: nbformat.NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _first_check_for(name: str) -> str | None:
    """The first check (in :data:`grader.checks.CHECKS` order) that reads the answer ``name``."""
    from grader.checks import CHECKS

    for check, spec in CHECKS.items():
        if spec.answers and spec.answers[0] == name:
            return check
    for check, spec in CHECKS.items():
        if name in spec.answers:
            return check
    return None


def right_source(name: str) -> str:
    """Source of a correct answer defining ``name`` (the reference, as a student writes it)."""
    from grader.reference import solution_source

    return solution_source(name).rstrip() + "\n"


def mistake_source(name: str) -> str:
    """Source of the first typical mistake for the exercise that defines ``name``.

    Raises:
        KeyError: if no check reads ``name`` or its check lists no mistake.
    """
    from grader.hints import MISTAKES

    check = _first_check_for(name)
    if check is None or not MISTAKES.get(check):
        raise KeyError(f"no typical mistake is known for {name!r}")
    return MISTAKES[check][0].source.rstrip() + "\n"


def _fill(nb: nbformat.NotebookNode, student: str) -> nbformat.NotebookNode:
    """Return a copy of the release notebook ``nb`` with ``student``'s answers filled in."""
    nb = nbformat.from_dict(nb)  # deep copy; the caller's notebook stays blank
    if student == "cy":
        return nb
    for cell in nb.cells:
        meta = _nbgrader_meta(cell)
        if not meta.get("solution"):
            continue
        grade_id = str(meta.get("grade_id", ""))
        if cell.cell_type == "markdown":
            answers = GOOD_ANSWERS if student == "ada" else WEAK_ANSWERS
            cell.source = answers.get(grade_id, "I am not sure.")
        elif grade_id.endswith("_solution"):
            name = grade_id[: -len("_solution")]
            cell.source = right_source(name) if student == "ada" else mistake_source(name)
    return nb


def release_notebooks(course_root: Path) -> dict[str, Path]:
    """Map each assignment to its release notebook ``release/<a>/<a>.ipynb``."""
    release = Path(course_root) / "release"
    found: dict[str, Path] = {}
    if release.is_dir():
        for folder in sorted(p for p in release.iterdir() if p.is_dir()):
            notebook = folder / f"{folder.name}.ipynb"
            if notebook.is_file():
                found[folder.name] = notebook
    return found


def make_demo_class(course_root: Path, students: Iterable[str] | None = None,
                    overwrite: bool = False) -> list[str]:
    """Write the demo students' submissions into ``course_root/submitted/``.

    Nothing is lost by accident: an existing submission with other content is left alone
    (FileExistsError) unless ``overwrite`` is true; rewriting identical content is fine, so
    running the demo twice works.

    Args:
        course_root: the course folder (holds ``nbgrader_config.py`` and the generated
            ``release/``).
        students: which of ``ada``, ``ben`` and ``cy`` to write (default: all three).
        overwrite: replace existing submissions of these students that differ.

    Returns:
        The written notebooks, as paths relative to ``course_root`` in POSIX form
        (``submitted/<student>/<assignment>/<assignment>.ipynb``), students in the given order.

    Raises:
        FileNotFoundError: if ``course_root`` has no release notebook.
        ValueError: if a student is not one of the demo students.
        FileExistsError: if a submission exists with other content and not ``overwrite``.
    """
    course_root = Path(course_root)
    chosen = list(STUDENTS if students is None else students)
    unknown = [s for s in chosen if s not in STUDENTS]
    if unknown:
        raise ValueError(f"unknown demo student(s) {unknown}; choose from {list(STUDENTS)}")
    releases = release_notebooks(course_root)
    if not releases:
        raise FileNotFoundError(
            f"no release notebooks under {course_root / 'release'}; run "
            "`nbgrader generate_assignment <assignment>` in the course folder first"
        )
    planned: list[tuple[Path, str]] = []
    for student in chosen:
        for assignment, path in releases.items():
            blank = nbformat.read(str(path), as_version=4)
            target = course_root / "submitted" / student / assignment / f"{assignment}.ipynb"
            planned.append((target, nbformat.writes(_fill(blank, student)) + "\n"))
    clashes = [target for target, text in planned
               if target.exists() and target.read_text(encoding="utf-8") != text]
    if clashes and not overwrite:
        listed = ", ".join(str(t.relative_to(course_root)) for t in clashes)
        raise FileExistsError(f"would overwrite existing submissions ({listed}); "
                              "pass --force (overwrite=True) to replace them")
    written: list[str] = []
    for target, text in planned:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target.relative_to(course_root).as_posix())
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m grader.demo [--course DIR] [--students NAME ...] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="python -m grader.demo",
        description="Write the demo class's submissions (ada: right, ben: typical mistakes, "
        "cy: blank) into <course>/submitted/ from <course>/release/.",
    )
    parser.add_argument("--course", type=Path, default=Path.cwd(),
                        help="course folder with release/ (default: the current folder)")
    parser.add_argument("--students", nargs="+", choices=STUDENTS, default=list(STUDENTS),
                        help="which demo students to write (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="replace existing submissions of the demo students")
    args = parser.parse_args(argv)
    try:
        written = make_demo_class(args.course, args.students, overwrite=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        print(f"grader.demo: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
