"""Helpers for the tests that drive a real nbgrader exchange (test_exchange_e2e, test_serve):
the student's side (fetch, fill in answers, submit) and a clean environment for nbgrader.

The correct student's answers come from grader.registry.solution_source, a wrong one's from
the exercise's known mistakes (``WRONG_CHECK``'s first)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from grader.demo import solution_names

VENV_BIN = Path(sys.executable).parent
ASSIGNMENT = "channels_pooling"
WRONG_CHECK = "corr2d"  # the wrong student makes the first known mistake for this check


def run(args: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    log = f"$ {' '.join(args)}  (in {cwd})\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode in ok, f"exit {proc.returncode}\n{log}"
    return log


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "CONVGRADE_", "NBGRADER"))
    }
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def fill(notebook: Path, source_nb: Path, answers: dict[str, str]) -> int:
    """Write answers into the solution cells of a fetched notebook; returns cells filled.

    ``answers`` maps a name the student defines to the code defining it. The names of a
    solution cell are read from the instructor's version of the same cell (by grade_id).
    Top-level placeholders (``raise NotImplementedError()``) are dropped; the answer code is
    appended so it overrides a placeholder ``def``.
    """
    by_id = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c
        for c in nbformat.read(source_nb, as_version=4).cells
    }
    nb = nbformat.read(notebook, as_version=4)
    filled = 0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        original = by_id.get(meta.get("grade_id"))
        names = solution_names(original.source if original is not None else cell.source)
        code = [answers[n] for n in dict.fromkeys(names) if n in answers]
        if not code:
            continue
        kept = [
            ln
            for ln in cell.source.splitlines()
            if ln.strip() not in ("raise NotImplementedError()", "# YOUR CODE HERE")
            or ln.startswith((" ", "\t"))
        ]
        cell.source = "\n".join(kept + [""] + [c.strip() + "\n" for c in code]).strip() + "\n"
        filled += 1
    nbformat.write(nb, notebook)
    return filled


def answers(wrong: bool) -> dict[str, str]:
    from grader.checks import CHECKS
    from grader.registry import course, solution_source

    answers: dict[str, str] = {}
    for spec in CHECKS.values():
        if spec.assignment != ASSIGNMENT:
            continue
        for name in spec.answers:
            answers.setdefault(name, solution_source(name))
    if wrong:
        mistake = course().mistakes(WRONG_CHECK)[0]
        for name in CHECKS[WRONG_CHECK].answers:
            answers[name] = mistake.source
    return answers


def student_round(
    student: str, wrong: bool, exchange: Path, course: Path, tmp: Path, course_id: str
) -> tuple[Path, Path]:
    """fetch_assignment, fill in, submit: as the student, in the student's own folders
    (returned: the student's HOME and working folder)."""
    home = tmp / f"home-{student}"
    work = home / "work"
    work.mkdir(parents=True)
    env = clean_env(home)
    common = [
        f"--course={course_id}",
        f"--Exchange.root={exchange}",
        f"--Exchange.cache={home / 'nbgrader_cache'}",
    ]
    run(["nbgrader", "fetch_assignment", ASSIGNMENT, *common], work, env)
    fetched = work / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert fetched.is_file(), f"fetch_assignment gave no {fetched}"
    text = fetched.read_text(encoding="utf-8")
    assert "BEGIN HIDDEN TESTS" not in text and "check_" not in text, "hidden tests released"
    source_nb = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert fill(fetched, source_nb, answers(wrong)) > 0, "no solution cell was filled in"
    run(["nbgrader", "submit", ASSIGNMENT, *common, f"--student={student}"], work, env)
    return home, work




REPO = Path(__file__).resolve().parents[1]

# One process for all of them (each `nbgrader` command pays 2-4 s of imports): nbgrader's own
# NbGraderAPI, the same calls formgrader's Generate and Release buttons make.
GENERATE_AND_RELEASE = """
import sys
from nbgrader.apps import NbGrader, NbGraderAPI
from nbgrader.coursedir import CourseDirectory

app = NbGrader()
app.load_config_file()  # nbgrader_config.py in the cwd
api = NbGraderAPI(CourseDirectory(config=app.config), config=app.config)
release, *assignments = sys.argv[1:]
for name in assignments:
    result = api.generate_assignment(name)
    if not result["success"]:
        sys.exit(f"generate_assignment {name} failed:\\n{result.get('error')}")
result = api.release_assignment(release)
if not result["success"]:
    sys.exit(f"release_assignment {release} failed:\\n{result.get('error')}")
"""


def instructor_course(tmp: Path, generate: bool = True,
                      assignment: str = ASSIGNMENT) -> tuple[Path, Path]:
    """A copy of the course (config and source/) and a world-writable exchange in ``tmp``
    with ``assignment`` released to it: with ``generate`` by nbgrader's API (as formgrader's
    buttons do: about 20 s), else by copying the committed release/ where
    ``release_assignment`` puts it."""
    course, exchange = tmp / "course", tmp / "exchange"
    course.mkdir(parents=True)
    shutil.copy2(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(REPO / "source", course / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    exchange.mkdir()
    exchange.chmod(0o777)
    inbound = exchange / "convgrade" / "inbound"
    if not generate:  # what release_assignment writes, from the committed release/
        shutil.copytree(REPO / "release" / assignment,
                        exchange / "convgrade" / "outbound" / assignment)
        inbound.mkdir()
        inbound.chmod(0o733)
    if generate:
        home = tmp / "home-instructor"
        home.mkdir(exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-c", GENERATE_AND_RELEASE, assignment, assignment], cwd=course,
            env=clean_env(home, CONVGRADE_EXCHANGE=str(exchange)), capture_output=True,
            text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"generate/release failed:\n{proc.stdout}\n{proc.stderr}"
    return course, exchange


def submit_like_nbgrader(folder: Path, exchange: Path, course_id: str, student: str,
                         assignment: str, cache: Path) -> str:
    """What ``nbgrader submit`` writes, without its 3 s of start-up (for bursts): the folder
    copied to ``inbound/<student>+<assignment>+<timestamp>+<random>/`` with timestamp.txt and
    submission_secret.txt, modes opened, and the same into the student's cache (where
    ``fetch_feedback`` looks). Returns the timestamp."""
    import base64
    import datetime

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
    rand = base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")
    secret = secrets.token_hex(64)
    inbound = exchange / course_id / "inbound"
    name = f"{student}+{assignment}+{stamp}"
    for dest in (inbound / f"{name}+{rand}", cache / course_id / name):
        shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        (dest / "timestamp.txt").write_text(stamp)
        (dest / "submission_secret.txt").write_text(secret)
    (inbound / f"{name}+{rand}").chmod(0o777)
    return stamp


def student_notebook(course: Path, folder: Path, wrong: bool = False,
                     extra: str | None = None, assignment: str = ASSIGNMENT) -> Path:
    """The released notebook of ``assignment`` filled in as a right (or ``wrong``) student
    would, in ``folder`` (``extra``: code appended to the first solution cell)."""
    folder.mkdir(parents=True, exist_ok=True)
    release = REPO / "release" / assignment / f"{assignment}.ipynb"
    target = folder / f"{assignment}.ipynb"
    shutil.copy2(release, target)
    fill(target, course / "source" / assignment / f"{assignment}.ipynb", answers(wrong))
    if extra:
        nb = nbformat.read(target, as_version=4)
        first = next(c for c in nb.cells
                     if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))
        first.source += "\n" + extra + "\n"
        nbformat.write(nb, target)
    return target


def fetch_feedback(home: Path, work: Path, exchange: Path, course_id: str,
                   student: str, assignment: str = ASSIGNMENT) -> list[Path]:
    """``nbgrader fetch_feedback`` as the student; the feedback pages it fetched."""
    run(["nbgrader", "fetch_feedback", assignment, f"--course={course_id}",
         f"--Exchange.root={exchange}", f"--Exchange.cache={home / 'nbgrader_cache'}",
         f"--student={student}"], work, clean_env(home))
    return sorted((work / assignment / "feedback").glob("*/*.html"))


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):  # noqa: ANN001, ANN201
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
