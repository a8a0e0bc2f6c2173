"""Benchmark: stock ``nbgrader autograde`` against ``python -m grader autograde --jobs N``.

    .venv/bin/python benchmarks/autograde_bench.py [--n 30] [--assignment channels_pooling]
                                                   [--jobs CORES] [--keep DIR]

Builds a temporary copy of the course, generates the assignment, and writes N submissions
cycling through three kinds:

- right:  every answer from grader.reference.solution_source;
- wrong:  one answer replaced by a known mistake from grader.hints.MISTAKES (rotating over
          the assignment's checks and their mistakes);
- broken: one answer with a syntax error, or one answer left as the release placeholder
          (``raise NotImplementedError()``).

The same submissions are graded twice, each in its own copy of the course (its own
gradebook): once by stock ``nbgrader autograde`` and once by the grader's CLI with
``--jobs``. The script checks the per-student scores agree, then prints the seconds of each,
their ratio, and the latency of one submission through the CLI beside ``python -c "import
torch"`` (the floor of any process that has to import torch). A script, not a test: run it
by hand; the README's "Measured" section quotes its output.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

from grader.demo import solution_names

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PLACEHOLDERS = ("raise NotImplementedError()", "# YOUR CODE HERE")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGRADE_")}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(args: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    """Run a command; return its wall time in seconds; stop with its log when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def _make_course(dest: Path, assignment: str) -> None:
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "source" / assignment, dest / "source" / assignment)
    shutil.copy2(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    _run(["nbgrader", "generate_assignment", assignment, "--log-level=ERROR"], dest)


def _plans(n: int, assignment: str) -> list[tuple[str, str, dict[str, str]]]:
    """(student id, kind, answers) for n submissions: right, wrong, broken in turn."""
    from grader import reference
    from grader.checks import CHECKS
    from grader.hints import MISTAKES

    checks = [s for s in CHECKS.values() if s.assignment == assignment]
    right = {name: reference.solution_source(name) for s in checks for name in s.answers}
    mistakes = [(s, m) for s in checks for m in MISTAKES.get(s.name, [])]
    plans = []
    for i in range(n):
        answers = dict(right)
        kind = ("right", "wrong", "broken")[i % 3]
        if kind == "wrong" and mistakes:
            spec, mistake = mistakes[(i // 3) % len(mistakes)]
            for name in spec.answers:
                answers[name] = mistake.source
        elif kind == "broken":
            name = sorted(right)[(i // 3) % len(right)]
            if (i // 3) % 2:
                answers[name] = right[name].replace(":", "", 1)  # a SyntaxError
            else:
                del answers[name]  # left as the release placeholder
        plans.append((f"s{i:03d}_{kind}", kind, answers))
    return plans


def _write_submission(course: Path, assignment: str, student: str, answers: dict[str, str]) -> Path:
    """The release notebook with ``answers`` in its solution cells, as a submission."""
    name = f"{assignment}.ipynb"
    source = nbformat.read(course / "source" / assignment / name, as_version=4)
    names_by_id = {
        c.metadata.get("nbgrader", {}).get("grade_id"): solution_names(c.source)
        for c in source.cells
    }
    nb = nbformat.read(course / "release" / assignment / name, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        code = [answers[n] for n in names_by_id.get(meta.get("grade_id"), []) if n in answers]
        if code:
            kept = [
                ln
                for ln in cell.source.splitlines()
                if ln.strip() not in PLACEHOLDERS or ln.startswith((" ", "\t"))
            ]
            cell.source = "\n".join(kept + [c.strip() + "\n" for c in code]).strip() + "\n"
    dest = course / "submitted" / student / assignment / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def _stock_scores(course: Path, assignment: str) -> dict[str, float]:
    out = course / "grades.csv"
    _run(["nbgrader", "export", "--to", str(out), "--log-level=ERROR"], course)
    with out.open(newline="", encoding="utf-8") as handle:
        return {
            r["student_id"]: float(r["raw_score"] or 0)
            for r in csv.DictReader(handle)
            if r["assignment"] == assignment
        }


def _best_of(runs: int, args: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    return min(_run(args, cwd, ok) for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30, help="number of submissions (30)")
    parser.add_argument("--assignment", default="channels_pooling")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="grader workers")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it")
    args = parser.parse_args(argv)

    base = args.keep or Path(tempfile.mkdtemp(prefix="convgrade-bench-"))
    if args.keep:
        base.mkdir(parents=True, exist_ok=False)
    stock, fast = base / "stock", base / "fast"
    print(f"[bench] {args.n} submissions of {args.assignment}; work folder {base}")
    _make_course(stock, args.assignment)
    _make_course(fast, args.assignment)
    plans = _plans(args.n, args.assignment)
    for student, _kind, answers in plans:
        for course in (stock, fast):
            _write_submission(course, args.assignment, student, answers)
    kinds = {k: sum(1 for _, kk, _ in plans if kk == k) for k in ("right", "wrong", "broken")}
    print(f"[bench] kinds: {kinds}")

    print("[bench] stock nbgrader autograde ...", flush=True)
    t_stock = _run(
        ["nbgrader", "autograde", args.assignment, "--log-level=ERROR"], stock, ok=(0, 1)
    )
    print(f"[bench] grader autograde --jobs {args.jobs} ...", flush=True)
    result_json = base / "fast.json"
    t_fast = _run(
        [sys.executable, "-m", "grader", "autograde", "submitted/", "--assignment",
         args.assignment, "--jobs", str(args.jobs), "--json", str(result_json)],
        fast, ok=(0, 1, 2),
    )  # fmt: skip
    fast_result: dict[str, Any] = json.loads(result_json.read_text(encoding="utf-8"))
    fast_scores = {s["student"]: float(s["score"] or 0) for s in fast_result["results"]}
    stock_scores = _stock_scores(stock, args.assignment)

    disagree = {
        s: (stock_scores.get(s), fast_scores.get(s))
        for s in sorted(set(stock_scores) | set(fast_scores))
        if stock_scores.get(s) != fast_scores.get(s)
    }

    single = fast / "single.ipynb"
    shutil.copy2(fast / "submitted" / plans[0][0] / args.assignment / f"{args.assignment}.ipynb",
                 single)  # fmt: skip
    one = [sys.executable, "-m", "grader", "autograde", str(single), "--assignment",
           args.assignment, "--json", str(base / "single.json")]  # fmt: skip
    t_one = _best_of(3, one, fast, ok=(0, 1))
    t_torch = _best_of(3, [sys.executable, "-c", "import torch"], base)

    print()
    print(f"submissions:                         {args.n} ({kinds})")
    print(f"stock nbgrader autograde:            {t_stock:8.1f} s  ({t_stock / args.n:.2f} s each)")
    print(f"grader autograde --jobs {args.jobs:<2}:          {t_fast:8.1f} s  "
          f"({t_fast / args.n:.2f} s each)")  # fmt: skip
    print(f"speed-up (stock / grader):           {t_stock / t_fast:8.1f} x")
    print(f"one submission, grader CLI (best 3): {t_one:8.2f} s")
    print(f'python -c "import torch" (best 3):   {t_torch:8.2f} s')
    mean = statistics.mean(fast_scores.values()) if fast_scores else 0.0
    print(f"mean score (grader):                 {mean:8.2f}")
    if disagree:
        print(f"\nSCORES DISAGREE for {len(disagree)} submission(s) (stock, grader):")
        for student, pair in disagree.items():
            print(f"  {student}: {pair}")
        return 1
    print(f"scores agree for all {len(fast_scores)} submissions")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
