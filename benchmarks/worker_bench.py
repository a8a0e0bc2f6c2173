"""How fast does grader.engine.execute run a submission? Prints figures; asserts nothing.

    .venv/bin/python benchmarks/worker_bench.py [--repeat 20] [--jobs 2]

Measures, with and without bubblewrap:

* start-up of one warm fork server (imports numpy, torch, IPython and grader.probe once);
* ms per submission for a trivial notebook (three small cells);
* ms per submission for a torch-heavy one: the instructor's channels_pooling notebook (every
  solution plus every visible and hidden test, i.e. the probe runs all seven checks), or a
  synthetic loop-heavy notebook when the source notebook is not there;
* throughput of ``WorkerPool(jobs).map`` over ``repeat`` torch-heavy submissions;

and, for comparison, the cost of ``python -c "import torch"`` (what every stock nbgrader kernel
pays before running a single cell).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grader.engine.execute.pool import CellJob, Limits, SandboxUnavailable, WorkerPool  # noqa: E402

TRIVIAL = [
    CellJob(0, "x = 6 * 7"),
    CellJob(1, "print('the answer is', x)"),
    CellJob(2, "x + 1"),
]

SYNTHETIC = [
    CellJob(0, "import torch"),
    CellJob(
        1,
        "def corr2d(X, K):\n"
        "    h, w = K.shape\n"
        "    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))\n"
        "    for i in range(Y.shape[0]):\n"
        "        for j in range(Y.shape[1]):\n"
        "            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()\n"
        "    return Y",
    ),
    CellJob(2, "X = torch.randn(32, 32)\nK = torch.randn(3, 3)\ncorr2d(X, K).sum()", True, "t"),
]


def torch_heavy() -> tuple[str, list[CellJob]]:
    """The channels_pooling instructor notebook as one (fully correct) submission."""
    path = REPO / "source" / "channels_pooling" / "channels_pooling.ipynb"
    try:
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
    except Exception:  # noqa: BLE001 - fall back to the synthetic notebook
        return "synthetic corr2d notebook", SYNTHETIC
    jobs = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id") or ""
        is_test = bool(meta.get("grade")) and not meta.get("solution")
        source = cell.source
        if meta.get("solution") and grade_id.endswith("_solution"):
            # The instructor's cell calls grader.reference, which the worker cannot see;
            # a student's right answer is the reference's own source (as in the demo class).
            try:
                from grader.demo import right_source

                source = right_source(grade_id[: -len("_solution")])
            except Exception:  # noqa: BLE001 - keep the instructor's cell
                pass
        jobs.append(CellJob(index, source, is_test, grade_id or None))
    label = f"{path.relative_to(REPO)} with right answers ({len(jobs)} code cells, hidden checks)"
    return label, jobs


def time_import_torch(repeat: int = 3) -> float:
    """Seconds for a fresh interpreter to import torch (median)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_submission(
    pool: WorkerPool, cells: list[CellJob], repeat: int
) -> tuple[float, float, float]:
    """Median and best wall ms per submission, and median CPU ms of the child (after a warm-up).

    The CPU figure (user + system time of the child and anything it started, as the server
    measured it) hardly depends on what else the machine is doing; the wall figure does.
    """
    first = pool.run(cells)
    if first.error or any(c.error for c in first.cells):
        bad = [(c.index, c.error["evalue"][:80]) for c in first.cells if c.error]
        print(f"    note: the notebook reported errors: {first.error or bad}")
    times, cpu = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pool.run(cells)
        times.append((time.perf_counter() - t0) * 1000)
        status = pool._servers[0].last_status  # benchmark-only peek at the server's report
        cpu.append(float(status.get("cpu_seconds", 0.0)) * 1000)
    return statistics.median(times), min(times), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    label, heavy = torch_heavy()
    print(f"torch-heavy notebook: {label}")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    cold = time_import_torch() * 1000
    print(f"python -c 'import torch': {cold:7.0f} ms (every stock nbgrader kernel pays this)")
    limits = Limits(wall_seconds=60)
    for sandbox in (False, True):
        name = "bwrap sandbox" if sandbox else "no sandbox   "
        try:
            pool = WorkerPool(1, sandbox=sandbox, limits=limits)
        except SandboxUnavailable as exc:
            print(f"{name}: skipped ({exc})")
            continue
        with pool:
            start = pool.start()
            info = pool.server_info()[0]
            print(
                f"{name}: server start {start * 1000:6.0f} ms "
                f"(warm imports {info.get('warm_seconds', 0) * 1000:.0f} ms, "
                f"RSS {info.get('rss_bytes', 0) / 2**20:.0f} MiB)"
            )
            for what, cells in (("trivial notebook    ", TRIVIAL), ("torch-heavy notebook", heavy)):
                med, best, cpu = per_submission(pool, cells, args.repeat)
                print(
                    f"{name}: {what} {med:7.1f} ms/submission wall "
                    f"(best {best:.1f}), child CPU {cpu:.1f} ms"
                )
        with WorkerPool(args.jobs, sandbox=sandbox, limits=limits) as pool:
            t0 = time.perf_counter()
            start = pool.start()
            t1 = time.perf_counter()
            results = list(pool.map([heavy] * args.repeat))
            t2 = time.perf_counter()
            errors = sum(1 for _, r in results if r.error)
            print(
                f"{name}: --jobs {args.jobs}: {args.jobs} servers started in parallel in "
                f"{start:.1f} s; {args.repeat} torch-heavy submissions in {t2 - t1:.2f} s "
                f"({(t2 - t1) * 1000 / args.repeat:.0f} ms each, {errors} errors); "
                f"total with start-up {t2 - t0:.1f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
