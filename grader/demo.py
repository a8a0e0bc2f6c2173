"""The bundled demo class: thirty generated students' submissions for every assignment.

The class is drawn once, deterministically (a fixed seed and a fixed roster), and looks like
a class: most students get most exercises right, each in one of a few correct styles
(:data:`ALTERNATIVES`, or the reference itself, :func:`grader.registry.solution_source`),
make a few of the typical mistakes of each exercise's ``mistakes.py`` (the first-listed, most
common ones most often) and leave an exercise or two unfinished; a few are strong, a few
struggle, and some are special:

* ``s01-ada`` answers everything correctly with the reference solutions;
* ``s02-ben`` struggles: a typical mistake in most exercises;
* ``s03-cy`` hands in the blank release notebooks, and ``s26-yara`` did not start the
  ``padding_stride`` assignment;
* ``s09-ivan``'s ``channels_pooling`` notebook is damaged (cut off mid-file: invalid JSON),
  and ``s14-nia`` deleted a test cell of ``conv_basics`` (the grader restores it);
* ``s21-uma`` cheats in ``channels_pooling``: a wrong ``corr2d`` plus a replacement of the
  grader's judge (the ``patch_judge`` attack of ``tests/attacks/corpus.py``): the judge runs
  in the grader's process, so the wrong ``corr2d`` still fails, and the tamper scan flags the
  submission for the instructor's review.

Each submission starts from ``release/<assignment>/<assignment>.ipynb`` and only the sources
of its answer cells change (metadata, cell ids and every other cell stay as released; the
two damaged ones aside), and is written where ``nbgrader collect`` would put it:
``submitted/<student>/<assignment>/<assignment>.ipynb``.

Usage: ``python -m grader.demo [--course DIR] [--students ID ...] [--force]``; the course
folder must hold the generated ``release/`` (``nbgrader generate_assignment <assignment>``).
"""

from __future__ import annotations

import argparse
import ast
import functools
import random
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

#: The roster: realistic but clearly fake ids, in the order the class is drawn.
STUDENTS: tuple[str, ...] = tuple(
    f"s{i:02d}-{name}" for i, name in enumerate((
        "ada", "ben", "cy", "dara", "eli", "fatima", "gus", "hana", "ivan", "jun", "kofi",
        "lena", "mateo", "nia", "omar", "priya", "quinn", "rosa", "sven", "tariq", "uma",
        "viktor", "wen", "xavier", "yusuf", "yara", "zoe", "amir", "bea", "chen"), 1)
)
RIGHT, STRUGGLING, BLANK = STUDENTS[0], STUDENTS[1], STUDENTS[2]
#: (student, assignment) of the special submissions described in the module docstring.
UNSTARTED = ("s26-yara", "padding_stride")
DAMAGED = ("s09-ivan", "channels_pooling")
DELETED_TEST = ("s14-nia", "conv_basics", "out_1_0_tests")
CHEATER = ("s21-uma", "channels_pooling")
SEED = "convgrade demo class"

#: The cheat: the ``patch_judge`` attack of tests/attacks/corpus.py (a test keeps them equal).
PATCH_JUDGE = """\
import grader.checks
from grader.checks import Verdict

grader.checks.judge = lambda *a, **k: Verdict(True)
"""

#: Correct answers in other styles than the reference's, by the name the cell defines. Each
#: must earn full marks (tests/test_notebooks.py grades them).
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "corr2d": ('''
def corr2d(X, K):
    """Shift and add: one slice of X per kernel entry."""
    k_h, k_w = K.shape
    out_h, out_w = X.shape[0] - k_h + 1, X.shape[1] - k_w + 1
    Y = torch.zeros(out_h, out_w)
    for a in range(k_h):
        for b in range(k_w):
            Y += K[a, b] * X[a:a + out_h, b:b + out_w]
    return Y
''',),
    "corr2d_multi_in": ('''
def corr2d_multi_in(X, K):
    per_channel = [corr2d(X[c], K[c]) for c in range(X.shape[0])]
    return torch.stack(per_channel).sum(dim=0)
''',),
    "corr2d_multi_in_out": ('''
def corr2d_multi_in_out(X, K):
    outputs = []
    for k in K:
        outputs.append(corr2d_multi_in(X, k))
    return torch.stack(outputs)
''',),
    "corr2d_multi_in_out_1x1": ('''
def corr2d_multi_in_out_1x1(X, K):
    c_i, h, w = X.shape
    W = K[:, :, 0, 0]  # (c_o, c_i)
    return (W @ X.reshape(c_i, h * w)).reshape(-1, h, w)
''',),
    "pool2d": ('''
def pool2d(X, pool_size, mode="max"):
    if mode == "max":
        reduce = torch.max
    elif mode == "avg":
        reduce = torch.mean
    else:
        raise ValueError(f"unknown pooling mode: {mode}")
    p_h, p_w = pool_size
    n_h, n_w = X.shape
    Y = torch.zeros(n_h - p_h + 1, n_w - p_w + 1)
    for i in range(n_h - p_h + 1):
        for j in range(n_w - p_w + 1):
            Y[i, j] = reduce(X[i:i + p_h, j:j + p_w])
    return Y
''',),
    "conv_output_size": ('''
import math


def conv_output_size(n, k, p=0, s=1):
    padded = n + 2 * p
    if k < 1 or s < 1 or p < 0 or k > padded:
        raise ValueError(f"no output for n={n}, k={k}, p={p}, s={s}")
    return math.floor((padded - k) / s) + 1
''',),
    "corr2d_pad_stride": ('''
def corr2d_pad_stride(X, K, padding=(0, 0), stride=(1, 1)):
    p_h, p_w = padding
    s_h, s_w = stride
    k_h, k_w = K.shape
    n_h, n_w = X.shape
    padded = torch.zeros(n_h + 2 * p_h, n_w + 2 * p_w)
    padded[p_h:p_h + n_h, p_w:p_w + n_w] = X
    rows = range(0, padded.shape[0] - k_h + 1, s_h)
    cols = range(0, padded.shape[1] - k_w + 1, s_w)
    Y = torch.zeros(len(rows), len(cols))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            Y[i, j] = (padded[r:r + k_h, c:c + k_w] * K).sum()
    return Y
''',),
    "receptive_field": ('''
def receptive_field(layers):
    """Walk back from one output unit: each layer widens the field to (r - 1) * s + k."""
    r = 1
    for k, s in reversed(layers):
        r = (r - 1) * s + k
    return r
''',),
    "conv_params": ('''
def conv_params(c_in, c_out, k, bias=True):
    if isinstance(k, int):
        k = (k, k)
    weights = c_out * c_in * k[0] * k[1]
    return weights + c_out if bias else weights
''',),
    "fc_params": ('''
def fc_params(n_in, n_out, bias=True):
    weights = n_in * n_out
    biases = n_out if bias else 0
    return weights + biases
''',),
    "learn_kernel": ('''
def learn_kernel(X, Y, kernel_shape, steps=50, lr=3e-2):
    K = torch.zeros((1, 1, *kernel_shape), requires_grad=True)
    optimizer = torch.optim.SGD([K], lr=lr)
    for _ in range(steps):
        loss = ((torch.nn.functional.conv2d(X[None, None], K) - Y[None, None]) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return K.detach()[0, 0]
''',),
    "nhwc_to_nchw": (
        "def nhwc_to_nchw(x):\n    return torch.movedim(x, 3, 1)\n",
        "def nhwc_to_nchw(x):\n    return x.permute(0, 3, 1, 2).contiguous()\n",
    ),
    "window_1_0": ("window_1_0 = image[1:3, 0:2]\n", "window_1_0 = [[5.0, 3.0], [2.0, 1.0]]\n"),
    "out_1_0": ("out_1_0 = (image[1:3, 0:2] * kernel).sum().item()\n",
                "out_1_0 = 5 * 1 + 3 * 0 + 2 * 0 + 1 * (-1)\n"),
    "my_kernel": ('''
my_kernel = torch.tensor([[1.0, -1.0], [0.0, 0.0]])
my_out = torch.zeros(3, 3)
for row in range(3):
    for col in range(3):
        my_out[row, col] = (image[row:row + 2, col:col + 2] * my_kernel).sum()
''',),
    "stride1_output_shape": ("stride1_output_shape = (1, 2, (6 + 2 * 1 - 3) // 1 + 1, "
                             "(6 + 2 * 1 - 3) // 1 + 1)\n",),
    "channels16_shapes": ('''
conv16 = nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3, padding=1)
channels16_shapes = {"input": tuple(x.shape), "output": tuple(conv16(x).shape),
                     "weight": tuple(conv16.weight.shape), "bias": tuple(conv16.bias.shape)}
''',),
}

#: How much harder than average each exercise is (scales a student's error rate).
DIFFICULTY: dict[str, float] = {
    "corr2d": 0.5, "corr2d_multi_in": 0.6, "corr2d_multi_in_out": 0.7,
    "corr2d_multi_in_out_1x1": 1.3, "pool2d": 1.0, "conv_output_size": 1.0,
    "corr2d_pad_stride": 1.3, "receptive_field": 1.6, "conv_params": 0.9, "fc_params": 0.6,
    "learn_kernel": 1.0, "nhwc_to_nchw": 1.3, "window_1_0": 1.0, "out_1_0": 1.6,
    "my_kernel": 0.6, "stride1_output_shape": 0.9, "channels16_shapes": 1.1,
}

#: Written answers (manually graded markdown cells), by grade_id: sound ones and weak ones.
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
WEAK_ANSWERS: dict[str, str] = {
    "flatten_waste_answer": (
        "The layer has 32 * 32 + 512 = 1536 weights. Flattening is fine, it only makes the "
        "vector longer."
    ),
    "receptive_field_answer": "Because there are more layers, so the network is bigger.",
}


@dataclass
class Plan:
    """What one student hands in for one assignment.

    Attributes:
        answers: per answer name (what a solution cell defines, or a markdown grade_id):
            ``"right"``, ``"style:<n>"`` (:data:`ALTERNATIVES`), ``"mistake:<check>:<id>"``,
            ``"good"``/``"weak"`` (written answers) or ``"blank"``.
        special: ``""``, ``"damaged"``, ``"deleted_test"`` or ``"cheat"``.
    """

    answers: dict[str, str] = field(default_factory=dict)
    special: str = ""


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


def _checks_for(name: str) -> list[str]:
    """The checks (in :data:`grader.checks.CHECKS` order) that read the answer ``name``
    first, else those that read it at all."""
    from grader.checks import CHECKS

    first = [check for check, spec in CHECKS.items() if spec.answers[:1] == (name,)]
    return first or [check for check, spec in CHECKS.items() if name in spec.answers]


def right_source(name: str) -> str:
    """Source of a correct answer defining ``name`` (the reference, as a student writes it)."""
    from grader.registry import solution_source

    return solution_source(name).rstrip() + "\n"


def mistake_source(name: str, mistake_id: str | None = None) -> str:
    """Source of a typical mistake for the exercise that defines ``name``: the one called
    ``mistake_id``, by default the first one of its first check.

    Raises:
        KeyError: if no check reads ``name`` or no such mistake is listed.
    """
    for _check, mistake in _mistakes_for(name):
        if mistake_id is None or mistake.id == mistake_id:
            return mistake.source.rstrip() + "\n"
    raise KeyError(f"no typical mistake {mistake_id or ''!r} is known for {name!r}")


def _mistakes_for(name: str) -> list[tuple[str, object]]:
    """(check, Mistake) for the exercise defining ``name``, first-listed first, without
    repeats of the same code."""
    from grader.registry import course

    seen: set[str] = set()
    found = []
    for check in _checks_for(name):
        for mistake in course().mistakes(check):
            if mistake.source not in seen:
                seen.add(mistake.source)
                found.append((check, mistake))
    return found


def answer_names(nb: nbformat.NotebookNode) -> list[str]:
    """The answer names of a release notebook, in cell order: what each code solution cell
    defines (``<name>_solution``), and the grade_ids of the written answers."""
    names = []
    for cell in nb.cells:
        meta = _nbgrader_meta(cell)
        grade_id = str(meta.get("grade_id", ""))
        if not meta.get("solution"):
            continue
        if cell.cell_type == "markdown":
            names.append(grade_id)
        elif grade_id.endswith("_solution"):
            names.append(grade_id[: -len("_solution")])
    return names


def _draw(rng: random.Random, student: str, error_rate: float, assignment: str,
          names: list[str]) -> Plan:
    """One student's plan for one assignment (see :class:`Plan`)."""
    plan = Plan()
    stops = error_rate > 0.4 and rng.random() < 0.5  # ran out of time before the end
    last = len(names) - rng.randint(1, 2) if stops else len(names)
    for position, name in enumerate(names):
        if name.endswith("_answer"):
            r = rng.random()
            plan.answers[name] = ("blank" if position >= last or r < error_rate / 3 else
                                  "weak" if r < error_rate * 1.5 else "good")
            continue
        if position >= last:
            plan.answers[name] = "blank"
            continue
        mistakes = _mistakes_for(name)
        if mistakes and rng.random() < min(0.9, error_rate * DIFFICULTY.get(name, 1.0)):
            weights = [1.0 / (rank + 1) for rank in range(len(mistakes))]
            check, mistake = rng.choices(mistakes, weights)[0]
            plan.answers[name] = f"mistake:{check}:{mistake.id}"  # type: ignore[attr-defined]
            continue
        styles = len(ALTERNATIVES.get(name, ()))
        pick = rng.randrange(styles + 2) if styles else 0  # the reference twice as likely
        plan.answers[name] = f"style:{pick - 2}" if pick >= 2 else "right"
    return plan


@functools.cache
def class_plans(assignments: tuple[str, ...], names: tuple[tuple[str, ...], ...]
                ) -> dict[tuple[str, str], Plan]:
    """The whole class's plans by (student, assignment), drawn from :data:`SEED`.

    ``assignments`` and ``names`` (each assignment's answer names, :func:`answer_names`)
    come from the release notebooks; the draw always covers the whole roster, so a subset of
    students gets the same submissions as in the whole class.
    """
    rng = random.Random(SEED)
    plans: dict[tuple[str, str], Plan] = {}
    for student in STUDENTS:
        error_rate = 0.0 if student == RIGHT else 0.75 if student == STRUGGLING else (
            0.02 if rng.random() < 0.2 else rng.betavariate(1.6, 6.0))
        for assignment, answer_names in zip(assignments, names, strict=True):
            plan = _draw(rng, student, error_rate, assignment, list(answer_names))
            if student == RIGHT:
                plan.answers = {n: "good" if n.endswith("_answer") else "right"
                                for n in answer_names}
            if student == BLANK or (student, assignment) == UNSTARTED:
                plan.answers = {n: "blank" for n in answer_names}
            if (student, assignment) == DAMAGED:
                plan.special = "damaged"
            elif (student, assignment) == DELETED_TEST[:2]:
                plan.special = "deleted_test"
            elif (student, assignment) == CHEATER:
                plan.special = "cheat"
                plan.answers["corr2d"] = "mistake:corr2d:output_off_by_one"
            plans[student, assignment] = plan
    return plans


def answer_source(name: str, answer: str) -> str | None:
    """The cell source for one answer of a plan; None for "blank" (the release's)."""
    kind, _, rest = answer.partition(":")
    if kind == "right":
        return right_source(name)
    if kind == "style":
        return ALTERNATIVES[name][int(rest)].strip() + "\n"
    if kind == "mistake":
        return mistake_source(name, rest.split(":")[1])
    if kind in ("good", "weak"):
        return (GOOD_ANSWERS if kind == "good" else WEAK_ANSWERS).get(name, "I am not sure.")
    return None


def submission_text(nb: nbformat.NotebookNode, plan: Plan) -> str:
    """The text of ``plan``'s submission, written from a copy of the release notebook."""
    nb = nbformat.from_dict(nb)  # deep copy; the caller's notebook stays blank
    for cell in nb.cells:
        meta = _nbgrader_meta(cell)
        grade_id = str(meta.get("grade_id", ""))
        if not meta.get("solution"):
            continue
        name = grade_id if cell.cell_type == "markdown" else grade_id.removesuffix("_solution")
        source = answer_source(name, plan.answers.get(name, "blank"))
        if source is not None:
            cell.source = source
        if plan.special == "cheat" and name == "corr2d":
            cell.source = cell.source.rstrip() + "\n\n\n" + PATCH_JUDGE
    if plan.special == "deleted_test":
        nb.cells = [c for c in nb.cells
                    if _nbgrader_meta(c).get("grade_id") != DELETED_TEST[2]]
    text = nbformat.writes(nb) + "\n"
    if plan.special == "damaged":
        text = text[: len(text) // 2]  # the laptop died while saving: invalid JSON
    return text


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


def plans_for(releases: dict[str, nbformat.NotebookNode]) -> dict[tuple[str, str], Plan]:
    """The class's plans (:func:`class_plans`) for these release notebooks, by assignment."""
    names = tuple(tuple(answer_names(nb)) for nb in releases.values())
    return class_plans(tuple(releases), names)


def make_demo_class(course_root: Path, students: Iterable[str] | None = None,
                    overwrite: bool = False) -> list[str]:
    """Write the demo students' submissions into ``course_root/submitted/``.

    Nothing is lost by accident: an existing submission with other content is left alone
    (FileExistsError) unless ``overwrite`` is true; rewriting identical content is fine, so
    running the demo twice works.

    Args:
        course_root: the course folder (holds ``nbgrader_config.py`` and the generated
            ``release/``).
        students: which of :data:`STUDENTS` to write (default: the whole class).
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
    paths = release_notebooks(course_root)
    if not paths:
        raise FileNotFoundError(
            f"no release notebooks under {course_root / 'release'}; run "
            "`nbgrader generate_assignment <assignment>` in the course folder first"
        )
    releases = {a: nbformat.read(str(p), as_version=4) for a, p in paths.items()}
    plans = plans_for(releases)
    planned: list[tuple[Path, str]] = []
    for student in chosen:
        for assignment, blank in releases.items():
            target = course_root / "submitted" / student / assignment / f"{assignment}.ipynb"
            planned.append((target, submission_text(blank, plans[student, assignment])))
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


def describe_class(course_root: Path, students: Iterable[str] | None = None) -> str:
    """A few lines saying what the demo class holds (for ``python -m grader.demo``)."""
    releases = {a: nbformat.read(str(p), as_version=4)
                for a, p in release_notebooks(Path(course_root)).items()}
    plans = plans_for(releases)
    chosen = set(STUDENTS if students is None else students)
    kinds: Counter[str] = Counter()
    mistakes: Counter[str] = Counter()
    for (student, _), plan in plans.items():
        if student not in chosen:
            continue
        for name, answer in plan.answers.items():
            if not name.endswith("_answer"):
                kinds[answer.split(":")[0]] += 1
            if answer.startswith("mistake:"):
                mistakes[answer.split(":", 1)[1]] += 1
    specials = [f"{s} {a}: {p.special}" for (s, a), p in plans.items()
                if p.special and s in chosen]
    lines = [
        f"{len(chosen)} students x {len(releases)} assignments; code answers: "
        f"{kinds['right'] + kinds['style']} right ({kinds['style']} in another style than "
        f"the reference), {kinds['mistake']} typical mistakes ({len(mistakes)} different), "
        f"{kinds['blank']} blank",
        "most common mistakes: " + ", ".join(f"{m} x{n}" for m, n in mistakes.most_common(6)),
    ]
    if specials:
        lines.append("special: " + "; ".join(specials))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m grader.demo [--course DIR] [--students ID ...] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="python -m grader.demo",
        description="Write the demo class's submissions (30 generated students: right, "
        "partly right, typical mistakes, blank, one damaged notebook, one cheat) into "
        "<course>/submitted/ from <course>/release/.",
    )
    parser.add_argument("--course", type=Path, default=Path.cwd(),
                        help="course folder with release/ (default: the current folder)")
    parser.add_argument("--students", nargs="+", choices=STUDENTS, default=list(STUDENTS),
                        metavar="ID", help="which demo students to write (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="replace existing submissions of the demo students")
    parser.add_argument("--list", action="store_true",
                        help="print every written path instead of a summary")
    args = parser.parse_args(argv)
    try:
        written = make_demo_class(args.course, args.students, overwrite=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        print(f"grader.demo: error: {exc}", file=sys.stderr)
        return 1
    if args.list:
        print("\n".join(written))
    else:
        print(f"wrote {len(written)} submissions under {args.course / 'submitted'}")
        print(describe_class(args.course, args.students))
    return 0


if __name__ == "__main__":
    sys.exit(main())
