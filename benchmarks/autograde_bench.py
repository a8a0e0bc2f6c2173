"""Benchmark: the grader's phases for classes of N submissions, and stock ``nbgrader autograde``.

    python benchmarks/autograde_bench.py [--sizes 30,200,1000] [--no-stock] [--stock-n 30]
                                         [--assignment channels_pooling] [--jobs CORES]
                                         [--keep DIR]

For each N it builds a temporary copy of the course (its own gradebook), generates the
assignment and writes N submissions from the demo class (:mod:`grader.demo`): the class's
plans for the assignment (right answers in several styles, typical mistakes, blanks; the
damaged notebook and the cheat left out) repeated until there are N. Then one grader process
per N, started like ``python -m grader autograde submitted/ --jobs J`` with the reports the
CLI writes (JSON, Markdown, JUnit), measures

* start-up: from starting the process to the first precheck (interpreter, imports, the pool's
  first warm server, nbgrader's config and the assignment's source),
* precheck, run (the sandboxed workers; it overlaps with nbgrader's set-up), record (nbgrader's
  Autograde converter and SaveAutoGrades per student, the judge included), judge (the time
  spent in :func:`grader.checks.judge`, inside record), collect (reading the scores back),
  reports; the phase boundaries are the engine's progress callback
  (``grader.engine.autograde.autograde(..., progress=...)``) and the judge is timed by wrapping it;
* the peak memory: the resident set (RSS) of the grader process, and the proportional set
  (PSS, which counts pages the forked workers share with their server once) of the grader
  and all its workers together, sampled every 0.2 s;
* CPU seconds of the grader process and (sampled, a lower bound) of its workers.

It prints one row per N, the cost of each extra submission between consecutive Ns, stock
``nbgrader autograde`` on ``--stock-n`` of the same submissions (its own course copy) with the
ratio, the per-student scores of both compared, and the latency of one submission through the
CLI beside ``python -c "import torch"``. A script, not a test: run it by hand; the README's
"Measured" section quotes its output.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PHASES = ("startup", "precheck", "run", "record", "judge", "collect", "reports")


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


def _best_of(runs: int, args: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    return min(_run(args, cwd, ok) for _ in range(runs))


# ---------------------------------------------------------------------------------------------
# the class


def _make_course(dest: Path, assignment: str) -> None:
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "source" / assignment, dest / "source" / assignment)
    shutil.copy2(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    _run(["nbgrader", "generate_assignment", assignment, "--log-level=ERROR"], dest)


def _class_texts(course: Path, assignment: str) -> list[tuple[str, str, str]]:
    """(name, kind, notebook text) of the demo class's submissions for ``assignment``, without
    the damaged notebook and the cheat; kind is right, wrong or blank (its worst answer)."""
    import nbformat

    from grader import demo

    release = {a: nbformat.read(str(p), as_version=4)
               for a, p in demo.release_notebooks(course).items()}
    plans = demo.plans_for(release)
    out = []
    for student in demo.STUDENTS:
        plan = plans[student, assignment]
        if plan.special:
            continue
        answers = [a.split(":")[0] for n, a in plan.answers.items() if not n.endswith("_answer")]
        kind = ("blank" if "blank" in answers else "wrong" if "mistake" in answers else "right")
        text = demo.submission_text(release[assignment], plan)
        out.append((student.split("-", 1)[1], kind, text))
    return out


def _write_class(course: Path, assignment: str, n: int) -> dict[str, int]:
    """Write n submissions cycling through the demo class; return the count of each kind."""
    texts = _class_texts(course, assignment)
    kinds = {"right": 0, "wrong": 0, "blank": 0}
    for i in range(n):
        name, kind, text = texts[i % len(texts)]
        dest = course / "submitted" / f"b{i:04d}-{name}" / assignment / f"{assignment}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        kinds[kind] += 1
    return kinds


# ---------------------------------------------------------------------------------------------
# memory of a process tree (Linux /proc)


def _stats() -> dict[int, tuple[int, float, float]]:
    """pid -> (parent pid, own CPU seconds, CPU seconds of its reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
        found[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick,
                             (int(fields[13]) + int(fields[14])) / tick)
    return found


def _tree(root: int, stats: dict[int, tuple[int, float, float]]) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _kib(pid: int, path: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class MemorySampler(threading.Thread):
    """Samples this process and its descendants: peak RSS of this process, peak RSS and PSS
    of the whole tree (MiB), the most processes at once, and the workers' CPU seconds."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(name="bench-memory", daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.peak_rss = self.peak_tree_pss = self.peak_tree_rss = 0.0
        self.peak_processes = 0
        # pid -> [parent, own CPU, reaped children's CPU, index of the last sample seen in]
        self.seen: dict[int, list[Any]] = {}
        self.samples = 0

    def run(self) -> None:
        """Sample until :attr:`stop` is set."""
        me = os.getpid()
        while not self.stop.is_set():
            stats = _stats()
            pids = _tree(me, stats)
            self.samples += 1
            for pid in pids:
                ppid, own, kids = stats[pid]
                self.seen[pid] = [ppid, own, kids, self.samples]
            self.peak_rss = max(self.peak_rss, _kib(me, "status", "VmRSS:") / 1024)
            self.peak_tree_rss = max(self.peak_tree_rss,
                                     sum(_kib(p, "status", "VmRSS:") for p in pids) / 1024)
            self.peak_tree_pss = max(self.peak_tree_pss,
                                     sum(_kib(p, "smaps_rollup", "Pss:") for p in pids) / 1024)
            self.peak_processes = max(self.peak_processes, len(pids))
            self.stop.wait(self.interval)

    def workers_cpu(self) -> float:
        """CPU seconds of the descendants (not this process): a process that ended while its
        parent lived on is counted in the parent's reaped-children time, the others (the
        servers, killed with their parents when the pool closes) by their own last sample.
        Children that lived and died between two samples count once their parent reaps
        them; what the servers reaped after the last sample is missed (a lower bound)."""
        me = os.getpid()
        total = 0.0
        for pid, (ppid, own, kids, last) in self.seen.items():
            if pid == me:
                continue
            total += kids
            parent = self.seen.get(ppid)
            reaped = parent is not None and ppid != me and parent[3] > last
            if not reaped:
                total += own
        return total


# ---------------------------------------------------------------------------------------------
# one grader process (the child)


def child(course: Path, assignment: str, jobs: int, out: Path, spawned: float) -> int:
    """Grade ``course/submitted/`` as the CLI does, and write the phases' figures to ``out``."""
    sampler = MemorySampler()
    sampler.start()
    from grader.cli import _skip_unused_imports

    _skip_unused_imports()  # as `python -m grader` does
    from grader.checks import judge
    from grader.engine import reports
    from grader.engine.autograde import autograde

    marks: dict[str, list[float]] = {}
    judging = [0.0]

    def progress(phase: str, done: int, total: int, label: str) -> None:
        marks.setdefault(phase, []).append(time.time())

    def timed_judge(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return judge(*args, **kwargs)
        finally:
            judging[0] += time.perf_counter() - t0

    os.chdir(course)
    seed = 12345
    called = time.time()
    result = autograde(["submitted/"], assignment, jobs=jobs, progress=progress,
                       judge=functools.partial(timed_judge, seed=seed), seed=seed)
    returned = time.time()
    reports.write_json(result, course / "result.json")
    reports.write_markdown(result, course / "result.md")
    reports.write_junit(result, course / "result.xml")
    done = time.time()
    sampler.stop.set()
    sampler.join()
    me = resource.getrusage(resource.RUSAGE_SELF)
    first_check, last_check = marks["check"][0], marks["check"][-1]
    last_run = marks.get("run", [last_check])[-1]
    last_record = marks.get("record", [last_run])[-1]
    figures = {
        "n": len(result["results"]),
        "imports": called - spawned,
        "startup": first_check - spawned,
        "precheck": last_check - first_check,
        "run": last_run - last_check,
        "record": last_record - last_run,
        "judge": judging[0],
        "collect": returned - last_record,
        "reports": done - returned,
        "total": done - spawned,
        "peak_rss_mib": sampler.peak_rss,
        "peak_tree_rss_mib": sampler.peak_tree_rss,
        "peak_tree_pss_mib": sampler.peak_tree_pss,
        "max_processes": sampler.peak_processes,
        "end_rss_mib": _kib(os.getpid(), "status", "VmRSS:") / 1024,
        "cpu_self": me.ru_utime + me.ru_stime,
        "cpu_workers": sampler.workers_cpu(),
        "scores": {r["student"]: float(r["score"] or 0) for r in result["results"]},
    }
    out.write_text(json.dumps(figures), encoding="utf-8")
    sys.stdout.flush()
    os._exit(0)  # as the CLI does: no interpreter teardown


def _grade(course: Path, assignment: str, jobs: int) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter; return its figures plus the wall time."""
    out = course / "bench.json"
    spawned = time.time()
    args = [sys.executable, str(Path(__file__).resolve()), "--child", str(course),
            "--assignment", assignment, "--jobs", str(jobs), "--spawned", repr(spawned)]
    proc = subprocess.run(args, cwd=course, env=_env(), capture_output=True, text=True,
                          check=False)
    wall = time.time() - spawned
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"the grader exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    figures = json.loads(out.read_text(encoding="utf-8"))
    figures["wall"] = wall
    return figures


def _stock_scores(course: Path, assignment: str) -> dict[str, float]:
    out = course / "grades.csv"
    _run(["nbgrader", "export", "--to", str(out), "--log-level=ERROR"], course)
    with out.open(newline="", encoding="utf-8") as handle:
        return {
            r["student_id"]: float(r["raw_score"] or 0)
            for r in csv.DictReader(handle)
            if r["assignment"] == assignment
        }


# ---------------------------------------------------------------------------------------------
# the parent


def _row(f: dict[str, Any]) -> str:
    phases = "".join(f"{f[p]:>9.1f}" for p in PHASES)
    return (f"{f['n']:>6}{f['wall']:>8.1f}{phases}{f['peak_rss_mib']:>9.0f}"
            f"{f['peak_tree_pss_mib']:>9.0f}{f['max_processes']:>6}"
            f"{f['cpu_self']:>8.1f}{f['cpu_workers']:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="30,200,1000",
                        help="comma-separated class sizes N (default 30,200,1000)")
    parser.add_argument("--no-stock", action="store_true", help="skip stock nbgrader")
    parser.add_argument("--stock-n", type=int, default=30,
                        help="submissions for stock nbgrader (default 30)")
    parser.add_argument("--assignment", default="channels_pooling")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="grader workers")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.assignment, args.jobs, args.child / "bench.json",
                     args.spawned or time.time())

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    base = args.keep or Path(tempfile.mkdtemp(prefix="convgrade-bench-"))
    if args.keep:
        base.mkdir(parents=True, exist_ok=False)
    print(f"[bench] {args.assignment}, sizes {sizes}, --jobs {args.jobs}, {os.cpu_count()} "
          f"cores; work folder {base}", flush=True)
    rows: list[dict[str, Any]] = []
    for n in sizes:
        course = base / f"fast{n}"
        _make_course(course, args.assignment)
        kinds = _write_class(course, args.assignment, n)
        print(f"[bench] N={n} {kinds} ...", flush=True)
        rows.append(_grade(course, args.assignment, args.jobs) | {"kinds": kinds})

    stock: dict[str, Any] | None = None
    if not args.no_stock:
        course = base / "stock"
        _make_course(course, args.assignment)
        _write_class(course, args.assignment, args.stock_n)
        print(f"[bench] stock nbgrader autograde on {args.stock_n} ...", flush=True)
        wall = _run(["nbgrader", "autograde", args.assignment, "--log-level=ERROR"], course,
                    ok=(0, 1))
        stock = {"n": args.stock_n, "wall": wall,
                 "scores": _stock_scores(course, args.assignment)}

    first = base / f"fast{sizes[0]}"
    single = base / "single.ipynb"
    shutil.copy2(next((first / "submitted").iterdir()) / args.assignment /
                 f"{args.assignment}.ipynb", single)
    one = [sys.executable, "-m", "grader", "autograde", str(single), "--assignment",
           args.assignment, "--course", str(first), "--json", str(base / "single.json")]
    t_one = _best_of(3, one, base, ok=(0, 1))
    t_torch = _best_of(3, [sys.executable, "-c", "import torch"], base)

    print()
    print("seconds per phase (judge is part of record); memory in MiB; CPU in seconds")
    print(f"{'N':>6}{'wall':>8}" + "".join(f"{p:>9}" for p in PHASES)
          + f"{'peakRSS':>9}{'treePSS':>9}{'procs':>6}{'cpu':>8}{'cpuWork':>8}")
    for f in rows:
        print(_row(f))
    for a, b in zip(rows, rows[1:], strict=False):
        extra = (b["wall"] - a["wall"]) / (b["n"] - a["n"])
        record = (b["record"] - a["record"]) / (b["n"] - a["n"])
        memory = (b["peak_rss_mib"] - a["peak_rss_mib"]) / (b["n"] - a["n"]) * 1024
        print(f"N {a['n']} -> {b['n']}: {extra:.3f} s per extra submission "
              f"(record {record:.3f} s), grader RSS +{memory:.0f} KiB per submission")
    print(f"one submission, grader CLI (best of 3): {t_one:6.2f} s")
    print(f'python -c "import torch" (best of 3):   {t_torch:6.2f} s   '
          f"(ratio {t_one / t_torch:.2f}x)")
    code = 0
    if stock is not None:
        ours = next((f for f in rows if f["n"] == stock["n"]), None)
        print(f"stock nbgrader autograde, {stock['n']} submissions: {stock['wall']:8.1f} s "
              f"({stock['wall'] / stock['n']:.2f} s each)")
        if ours is not None:
            ratio = stock["wall"] / ours["wall"]
            print(f"speed-up on {stock['n']} (stock / grader): {ratio:8.1f} x")
            theirs = stock["scores"]
            disagree = {s: (theirs.get(s), ours["scores"].get(s))
                        for s in sorted(set(theirs) | set(ours["scores"]))
                        if theirs.get(s) != ours["scores"].get(s)}
            if disagree:
                print(f"SCORES DISAGREE for {len(disagree)} submission(s) (stock, grader):")
                for student, pair in disagree.items():
                    print(f"  {student}: {pair}")
                code = 1
            else:
                print(f"scores agree for all {len(theirs)} submissions")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
