"""Benchmark: grading on Dask (``--cluster``) against the local pool, the central gradebook's
write rate, and a model of a large class on a real cluster from those figures.

    python benchmarks/dask_bench.py [--n 1000] [--record-n 100] [--assignment channels_pooling]
                                    [--no-postgres] [--no-tcp]

1. Execution (step 3 only, the executor's ``map``; no precheck, judging or recording): the
   same N submissions (the demo class's plans for the assignment, right answers, typical
   mistakes and blanks, repeated until there are N; precheck and sanitising as autograde does
   them) run by

   * the local pool, ``WorkerPool(2)`` (two warm sandboxed servers on this 2-core machine),
   * ``--cluster local:2`` (a LocalCluster: 2 worker processes of one thread),
   * a tcp cluster: a ``dask scheduler`` and two ``dask worker --nthreads 1`` processes on
     127.0.0.1 (what ``--cluster tcp://HOST:8786`` connects to),

   each warmed first (start-up is printed apart); then N trivial submissions (one cell,
   ``x = 1``) give the per-task overhead of each path: the wall time per task beyond the local
   pool's, times the number of slots (the latency a task adds to its worker slot). Every Dask
   result is checked against the local pool's (the same outputs and records).
2. Recording: ``autograde`` of ``--record-n`` of those submissions with the local pool, its
   progress timed per phase: the record phase (judging in this process, nbgrader's Autograde
   converter and SaveAutoGrades) is what the grading process does for every student whatever
   executes the cells; its rate is the central gradebook's write rate, with SQLite and (unless
   ``--no-postgres`` or the server binaries are missing) a throw-away PostgreSQL server
   started like tests/test_postgres.py does.
3. The model: 10,000 submissions on 10 workers of 16 cores, from the figures above (printed
   with the formula), and which part becomes the limit.

A script, not a test: run it by hand; README's "Measured" and docs/SCALING.md quote it.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
VENV_BIN = Path(sys.executable).parent

from autograde_bench import _make_course, _write_class  # noqa: E402

TARGET = (10_000, 10, 16, 120.0)  # submissions, workers, cores per worker, goal in seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGRADE_")}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------
# the class as the executor sees it


def _jobs(course: Path, assignment: str) -> list[list[Any]]:
    """Each submission's cells as autograde hands them to the pool."""
    from grader.engine import gradebook as gbmod
    from grader.engine.autograde import _sanitized_cells, cell_jobs, discover
    from grader.engine.precheck import load_sources, precheck

    specs = {s.notebook_name: s for s in load_sources(course, assignment,
                                                       gbmod.load_config(course))}
    subs = discover([course / "submitted"], assignment, list(specs))
    out = []
    for sub in subs:
        sub.check = precheck(sub.notebook, specs[sub.notebook_name])
        if sub.check.gradable:
            out.append(cell_jobs(_sanitized_cells(sub)))
    return out


def _settings(pool: Any, course: Path, assignment: str, seed: int) -> None:
    """What autograde's _start_pool gives a pool."""
    from grader.engine import settings

    pool.seed = seed
    pool.preload = settings.declared_preload(course)
    pool.preload_probe = settings.has_hidden_checks(course / "source" / assignment)
    pool.preload_matplotlib = any(
        "matplotlib" in nb.read_text(encoding="utf-8", errors="replace")
        for nb in (course / "source" / assignment).glob("*.ipynb"))


class _TcpCluster:
    """``dask scheduler`` and two ``dask worker --nthreads 1`` on 127.0.0.1."""

    def __init__(self, workers: int, log_dir: Path) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        dask = str(VENV_BIN / "dask")
        self._start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], log_dir / "scheduler.log")
        for k in range(workers):
            self._start([dask, "worker", self.address, "--nthreads", "1", "--no-nanny",
                         "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0",
                         "--name", f"w{k}"], log_dir / f"w{k}.log")
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)

    def _start(self, args: list[str], log: Path) -> None:
        with open(log, "wb") as fh:
            self.procs.append(subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT,
                                               env=_env(), start_new_session=True))

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_warm(pool: Any, expected: int, timeout: float = 300.0) -> None:
    """Until ``expected`` servers report ready (local pool or every Dask worker's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = pool.server_info()
        if len([s for s in info if s.get("start_seconds")]) >= expected:
            return
        time.sleep(0.2)
    raise RuntimeError("the servers did not warm up")


def _timed_map(pool: Any, jobs: list[list[Any]]) -> tuple[float, dict[int, Any]]:
    t0 = time.perf_counter()
    results = dict(pool.map(jobs))
    return time.perf_counter() - t0, results


def _noop(i: int) -> int:
    return i


def _noop_rate(client: Any, n: int) -> float:
    """Tasks per second the scheduler and this client pass when the tasks do nothing (the
    dispatch cost alone; two one-thread workers here)."""
    t0 = time.perf_counter()
    futures = client.map(_noop, range(n), pure=False)
    client.gather(futures)
    rate = n / (time.perf_counter() - t0)
    client.cancel(futures)
    return rate


def _same(a: Any, b: Any) -> bool:
    """The same run but for its time."""
    return a.error == b.error and a.cells == b.cells


def _executors(n_jobs: list[list[Any]], course: Path, assignment: str, seed: int,
               tcp: bool, log_dir: Path) -> dict[str, dict[str, float]]:
    from grader.engine.executors import local
    from grader.engine.executors.dask import DaskExecutor

    trivial = [[local.CellJob(0, "x = 1")] for _ in n_jobs]
    figures: dict[str, dict[str, float]] = {}
    reference: dict[int, Any] = {}
    kinds = ["local pool (2 servers)", "dask local:2"] + (["dask tcp, 2 workers"] if tcp else [])
    # the local pool again at the end: the machine is shared, its load drifts
    for kind in [*kinds, "local pool (2 servers), again"]:
        cluster = None
        t0 = time.perf_counter()
        if kind.startswith("local pool"):
            pool: Any = local.WorkerPool(2, limits=local.limits_for(None))
        elif kind == "dask local:2":
            pool = DaskExecutor("local:2", limits=local.limits_for(None))
        else:
            cluster = _TcpCluster(2, log_dir)
            t0 = time.perf_counter()
            pool = DaskExecutor(cluster.address, limits=local.limits_for(None))
        try:
            _settings(pool, course, assignment, seed)
            pool.warm(2)
            if kind.startswith("local pool"):
                pool.start()
            else:
                pool._ready()
            _wait_warm(pool, 2)
            startup = time.perf_counter() - t0
            wall, results = _timed_map(pool, n_jobs)
            if not reference:
                reference = results
            else:
                differ = [i for i in reference if not _same(reference[i], results[i])]
                if differ or len(results) != len(reference):
                    sys.exit(f"{kind}: {len(differ)} runs differ from the local pool's")
            twall, _ = _timed_map(pool, trivial)
            figures[kind] = {"startup": startup, "wall": wall, "trivial": twall,
                             "load": os.getloadavg()[0]}
            if not kind.startswith("local pool"):
                figures[kind]["noop_rate"] = _noop_rate(pool._client, min(5000, 10 * len(n_jobs)))
            print(f"  {kind:<24} start-up {startup:6.1f} s   {len(n_jobs)} submissions "
                  f"{wall:7.1f} s = {len(n_jobs) / wall:6.1f}/s   {len(trivial)} trivial "
                  f"{twall:6.1f} s = {twall / len(trivial) * 1000:6.1f} ms/task   "
                  f"(load {figures[kind]['load']:.1f})", flush=True)
            if "noop_rate" in figures[kind]:
                print(f"  {'':<24} no-op tasks through the scheduler: "
                      f"{figures[kind]['noop_rate']:.0f} tasks/s", flush=True)
        finally:
            pool.close()
            if cluster is not None:
                cluster.close()
    again = figures.pop("local pool (2 servers), again")
    first = figures[kinds[0]]
    base = {key: (first[key] + again[key]) / 2 for key in ("wall", "trivial")}
    figures[kinds[0]] = {**first, **base}
    n = len(n_jobs)
    print(f"  local pool, mean of the two runs: {n / base['wall']:.1f} submissions/s, "
          f"{base['trivial'] / n * 1000:.1f} ms per trivial task", flush=True)
    for kind in kinds[1:]:
        f = figures[kind]
        f["overhead_ms"] = (f["trivial"] - base["trivial"]) / n * 2 * 1000
        print(f"  {kind:<24} per-task overhead over the local pool: "
              f"{f['overhead_ms']:5.1f} ms per task per slot (trivial tasks); real submissions "
              f"{(f['wall'] - base['wall']) / n * 2 * 1000:+6.1f} ms", flush=True)
    return figures


# ---------------------------------------------------------------------------------------------
# the central gradebook


def _pg_bindir() -> Path | None:
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(d)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            with contextlib.suppress(ValueError):
                found.append((int(path.parent.name), path))
    return max(found)[1] if found else None


@contextlib.contextmanager
def _postgres() -> Any:
    """A throw-away PostgreSQL server (as tests/test_postgres.py starts one); its URL."""
    bindir = _pg_bindir()
    if bindir is None:
        yield None
        return
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="convgrade-pg-"))
    sockdir = base / "sock"
    sockdir.mkdir()
    if prefix:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sockdir, "postgres", "postgres")
    port = _free_port()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120,
                              cwd=base, check=False)

    run(str(bindir / "initdb"), "-D", str(base / "data"), "-U", "postgres", "--auth=trust",
        "-E", "UTF8", "--locale=C", "--no-sync")
    # durable settings (fsync on): a gradebook server as it would run
    started = run(str(bindir / "pg_ctl"), "-D", str(base / "data"), "-o",
                  f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1", "-l",
                  str(base / "log"), "-w", "-t", "60", "start")
    try:
        if started.returncode != 0:
            yield None
            return
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE convgrade_bench")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/convgrade_bench"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _record(course: Path, assignment: str, n: int, seed: int, db_url: str | None,
            label: str) -> dict[str, float]:
    """autograde ``n`` submissions (a course copy of its own); the phases' seconds."""
    from grader.checks import judge as real_judge
    from grader.engine.autograde import autograde

    copy = Path(tempfile.mkdtemp(prefix="convgrade-rec-")) / "course"
    shutil.copytree(course, copy, ignore=shutil.ignore_patterns("submitted", "gradebook.db"))
    for sub in sorted((course / "submitted").iterdir())[:n]:
        shutil.copytree(sub, copy / "submitted" / sub.name)
    marks: dict[str, list[float]] = {}
    judged = [0.0]

    def progress(phase: str, done: int, total: int, label_: str) -> None:
        marks.setdefault(phase, []).append(time.perf_counter())

    def judge(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_judge(*args, seed=seed, **kwargs)
        finally:
            judged[0] += time.perf_counter() - t

    old = os.environ.get("CONVGRADE_DB_URL")
    if db_url:
        os.environ["CONVGRADE_DB_URL"] = db_url
    try:
        t0 = time.perf_counter()
        result = autograde([copy / "submitted"], assignment, course=copy, jobs=2, seed=seed,
                           progress=progress, judge=judge)
        total = time.perf_counter() - t0
        writes = _db_writes(db_url or f"sqlite:///{copy / 'gradebook.db'}", assignment,
                            max(20, n))
    finally:
        if old is None:
            os.environ.pop("CONVGRADE_DB_URL", None)
        else:
            os.environ["CONVGRADE_DB_URL"] = old
        shutil.rmtree(copy.parent, ignore_errors=True)
    graded = sum(1 for r in result["results"] if r.get("graded"))
    rec = marks.get("record", [])
    # the record phase: from the first student recorded to the last, per student; the first
    # one waits for nbgrader's set-up, so the rate counts the n - 1 after it
    per = (rec[-1] - rec[0]) / max(1, len(rec) - 1) if len(rec) > 1 else float("nan")
    print(f"  {label:<24} {graded}/{n} graded in {total:6.1f} s; recording "
          f"{per * 1000:6.1f} ms per student = {1 / per:5.1f} students/s (judging in it: "
          f"{judged[0] / max(1, graded) * 1000:5.1f} ms per student)", flush=True)
    print(f"  {'':<24} the gradebook's own writes (nbgrader's API, one submission and its "
          f"grades per commit): {writes * 1000:5.1f} ms per student = {1 / writes:6.1f}/s",
          flush=True)
    return {"per_record": per, "judge": judged[0] / max(1, graded), "total": total,
            "db_write": writes}


def _db_writes(db_url: str, assignment: str, m: int) -> float:
    """Seconds per student of writing what SaveAutoGrades writes, through nbgrader's
    Gradebook API alone: a submission (its grade and comment rows), each grade's auto score
    and each comment's auto comment, one commit per student."""
    import warnings

    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's add_submission: sqlalchemy autoflush chatter
        t0 = time.perf_counter()
        for i in range(m):
            student = f"bench-writer-{i:05d}"
            gb.update_or_create_student(student)
            sub = gb.add_submission(assignment, student)
            for nb in sub.notebooks:
                for grade in nb.grades:
                    grade.auto_score = grade.max_score
                for comment in nb.comments:
                    comment.auto_comment = "ok"
            gb.db.commit()
        return (time.perf_counter() - t0) / m


# ---------------------------------------------------------------------------------------------


def _model(ex: dict[str, dict[str, float]], rec: dict[str, dict[str, float]], n: int) -> None:
    subs, workers, cores, goal = TARGET
    slots = workers * cores
    base = ex["local pool (2 servers)"]
    per_sub_core = base["wall"] / n * 2  # core-seconds of one submission on this machine
    dask_kind = "dask tcp, 2 workers" if "dask tcp, 2 workers" in ex else "dask local:2"
    overhead = max(0.0, ex[dask_kind].get("overhead_ms", 0.0)) / 1000
    # the scheduler and this client handle every task one after the other: the no-op rate
    # (on this loaded 2-core machine, scheduler, client and workers sharing it) is what they
    # passed here
    sched_rate = ex[dask_kind]["noop_rate"]
    execute = subs * (per_sub_core + overhead) / slots
    dispatch = subs / sched_rate
    print(f"\nmodel: {subs} submissions on {workers} workers x {cores} cores = {slots} slots "
          f"(goal {goal:.0f} s); figures measured above on this 2-core machine")
    print(f"  execute   {subs} x ({per_sub_core * 1000:.0f} ms per submission per core + "
          f"{overhead * 1000:.0f} ms Dask overhead) / {slots} slots = {execute:7.1f} s")
    print(f"  dispatch  {subs} tasks / {sched_rate:.0f} tasks/s (no-op tasks through the "
          f"scheduler, measured) = {dispatch:7.1f} s")
    best: tuple[float, str] | None = None
    for db, figure in rec.items():
        central = subs * figure["per_record"]
        judge = subs * figure["judge"]
        print(f"  record    {subs} x {figure['per_record'] * 1000:.0f} ms per student in the one "
              f"grading process ({db}; judging {judge:.0f} s of it, the database's own "
              f"writes {subs * figure['db_write']:.0f} s) = {central:7.1f} s")
        best = min(best or (central, db), (central, db))
    parts = {"execute": execute, "dispatch": dispatch}
    if best is not None:
        parts[f"record (central, {best[1]})"] = best[0]
    limit = max(parts, key=lambda k: parts[k])
    total = max(parts.values())  # the phases overlap: runs are recorded as they arrive
    verdict = "meets" if total <= goal else "misses"
    print(f"  total ~ max(execute, dispatch, record) = {total:.0f} s: {verdict} the goal of "
          f"{goal:.0f} s; the limit is {limit}")
    if best is not None and limit.startswith("record"):
        need = best[0] / goal
        print(f"  recording would have to be {need:.0f}x faster (or run in {need:.0f} "
              "processes writing one gradebook) for the goal; executing alone needs "
              f"{execute:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="submissions executed")
    parser.add_argument("--record-n", type=int, default=100, help="submissions recorded")
    parser.add_argument("--assignment", default="channels_pooling")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-tcp", action="store_true")
    args = parser.parse_args(argv)
    os.environ["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])

    work = Path(tempfile.mkdtemp(prefix="convgrade-dask-bench-"))
    try:
        course = work / "course"
        _make_course(course, args.assignment)
        kinds = _write_class(course, args.assignment, max(args.n, args.record_n))
        jobs = _jobs(course, args.assignment)[:args.n]
        print(f"{len(jobs)} submissions of {args.assignment} ({kinds}); machine: "
              f"{len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.1f}", flush=True)
        print("\nexecution (the executor's map only):")
        ex = _executors(jobs, course, args.assignment, args.seed, not args.no_tcp, work)
        print(f"\nrecording {args.record_n} students (autograde, local pool, the record phase):")
        rec = {"SQLite": _record(course, args.assignment, args.record_n, args.seed, None,
                                 "SQLite")}
        if not args.no_postgres:
            with _postgres() as url:
                if url is None:
                    print("  PostgreSQL: no server binaries under /usr/lib/postgresql: left out")
                else:
                    rec["PostgreSQL"] = _record(course, args.assignment, args.record_n,
                                                args.seed, url, "PostgreSQL")
        _model(ex, rec, len(jobs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
