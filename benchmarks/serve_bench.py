"""Benchmark: grade on submit, from a submission landing in the exchange to its feedback
released (``python -m grader serve``).

    python benchmarks/serve_bench.py [--singles 5] [--bursts 50,200] [--jobs CORES]
                                     [--assignment channels_pooling] [--keep DIR]

It copies the course into a temporary folder with an empty exchange, starts the real service
(``python -m grader serve --course ... --exchange ... --max-per-hour 0``) and, once it has
graded one warm-up submission, writes submissions into the exchange inbound exactly as
``nbgrader submit`` does (tests/exchangekit.py: the notebook, timestamp.txt, the submission
secret; right and wrong answers alternating):

* singles: one submission at a time on an idle service, each after the previous one's
  feedback is out: landing to released, p50 and p95;
* bursts: N submissions from N students written all at once (a deadline rush): landing to
  released p50/p95/max, and the time until the last feedback is out.

Landing and release times come from the service's journal (``<course>/.convgrade/serve.sqlite``:
the submission secret's mtime, the moment the feedback file was moved into place). A script,
not a test: run it by hand; the README's "Measured" section quotes its output.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import exchangekit as ek  # noqa: E402

COURSE_ID = "convgrade"


def _released(db: Path) -> list[tuple[str, float, float]]:
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT id, landed, released FROM submissions WHERE state = "
                           "'released' AND released IS NOT NULL").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _wait(db: Path, n: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while len(_released(db)) < n:
        if proc.poll() is not None:
            sys.exit(f"the service exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {n} released submissions")
        time.sleep(0.1)


def _pct(values: list[float]) -> str:
    ordered = sorted(values)
    if len(ordered) == 1:
        return f"p50 {ordered[0]:.2f} s, p95 {ordered[0]:.2f} s"
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return f"p50 {cuts[49]:.2f} s, p95 {cuts[94]:.2f} s, max {ordered[-1]:.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--singles", type=int, default=5)
    ap.add_argument("--bursts", default="50,200", help="burst sizes, comma-separated ('' none)")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--assignment", default=ek.ASSIGNMENT)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = ap.parse_args()
    bursts = [int(x) for x in args.bursts.split(",") if x.strip()]

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="serve-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    course, exchange = ek.instructor_course(tmp / "run", generate=False,
                                            assignment=args.assignment)
    notebooks = {wrong: ek.student_notebook(course, tmp / f"nb-{int(wrong)}", wrong=wrong,
                                            assignment=args.assignment).parent
                 for wrong in (False, True)}
    cache = tmp / "cache"
    env = ek.clean_env(tmp)
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "grader", "serve", "--course", str(course), "--exchange",
           str(exchange), "-a", args.assignment, "--max-per-hour", "0"]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    log = tmp / "serve.log"
    db = course / ".convgrade" / "serve.sqlite"
    load = os.getloadavg()
    print(f"serve_bench: {args.assignment}, jobs {args.jobs or os.cpu_count()}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at the start")
    with open(log, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    count = 0
    try:
        ek.submit_like_nbgrader(notebooks[False], exchange, COURSE_ID, "warmup",
                                args.assignment, cache)
        count += 1
        _wait(db, count, 600, proc, log)
        print(f"service start to the warm-up submission's feedback: "
              f"{time.monotonic() - t0:.1f} s (pool start, imports, first registration)")
        singles = []
        for i in range(args.singles):
            time.sleep(1.0)  # idle between two
            ek.submit_like_nbgrader(notebooks[bool(i % 2)], exchange, COURSE_ID, f"single{i}",
                                    args.assignment, cache)
            count += 1
            _wait(db, count, 600, proc, log)
            rows = {r[0]: r for r in _released(db)}
            sid = next(k for k in rows if k.startswith(f"single{i}+"))
            singles.append(rows[sid][2] - rows[sid][1])
        if singles:
            print(f"single submission, idle service ({len(singles)}): landing to released "
                  f"{_pct(singles)}")
        for n in bursts:
            time.sleep(1.0)
            before = {r[0] for r in _released(db)}
            start = time.time()
            for i in range(n):
                ek.submit_like_nbgrader(notebooks[bool(i % 2)], exchange, COURSE_ID,
                                        f"b{n}s{i:03d}", args.assignment, cache)
            written = time.time() - start
            count += n
            _wait(db, count, 3600, proc, log)
            rows = [r for r in _released(db) if r[0] not in before]
            lat = [r[2] - r[1] for r in rows]
            drain = max(r[2] for r in rows) - min(r[1] for r in rows)
            print(f"burst of {n} (written in {written:.1f} s): landing to released "
                  f"{_pct(lat)}; all released {drain:.1f} s after the first landed "
                  f"({n / drain:.2f} submissions/s)")
        status = subprocess.run([*cmd[:3], "serve", "--course", str(course), "--status"],
                                env=env, capture_output=True, text=True, check=False)
        print("--status:\n" + status.stdout.rstrip())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} at the end")
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
