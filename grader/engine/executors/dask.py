"""The Dask executor: the same pool protocol as :class:`WorkerPool`, on a Dask cluster.

:class:`DaskExecutor` connects to a running scheduler (``tcp://HOST:8786``, ``tls://...``) or
starts a :class:`distributed.LocalCluster` (``local:N``: N worker processes of one thread).
When the run's settings are known (``seed``, ``preload``, ``preload_probe``,
``preload_matplotlib``, set by :func:`grader.engine.autograde._start_pool`, then ``warm``) it
registers :class:`PoolPlugin`, a Dask *worker plugin*: on every worker, present or joining
later, it starts that worker's own warm sandboxed :class:`WorkerPool` (one server per worker
thread) with those settings and the run's limits, and closes it on teardown (when the run
ends, or the worker does).

:meth:`DaskExecutor.map` submits one task per submission. A task's input is the submission's
cells as plain data (:func:`grader.engine.executors.local.cells_to_data`); it runs them in the
worker's pool exactly as the local pool would and returns the :class:`RunResult` as plain data.
Precheck, judging and recording stay in the grading process, so scores never depend on where
a submission ran. Results are yielded ``(position, RunResult)`` as tasks complete; a worker
lost mid-run has its tasks rescheduled by the scheduler onto the others (up to
``distributed.scheduler.allowed-failures`` times; a task that raised is retried ``RETRIES``
times), and only the first result per position is ever yielded, so each submission is
recorded once. A task whose workers kept dying becomes that submission's run error, the
others go on.

A worker must have the grading machine's course package (the same files staged into the
sandbox: :func:`grader.engine.executors.local.stage_fingerprint`, checked when the plugin
starts), Python, torch and bubblewrap: see docs/SCALING.md.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from grader.engine.autograde import AutogradeError
from grader.engine.executors import local

__all__ = ["ClusterUnavailable", "DaskExecutor", "PoolPlugin", "run_submission"]

#: How often a task that raised is retried (on any worker). Tasks whose worker died are
#: rescheduled by the scheduler itself (``distributed.scheduler.allowed-failures``).
RETRIES = 2
#: Seconds to wait for the scheduler to answer.
CONNECT_TIMEOUT = float(os.environ.get("CONVGRADE_DASK_CONNECT_TIMEOUT", "10"))
#: Seconds to wait for a first worker to join a scheduler that has none (an autoscaled
#: cluster starts empty).
WORKER_TIMEOUT = float(os.environ.get("CONVGRADE_DASK_WORKER_TIMEOUT", "120"))


class ClusterUnavailable(AutogradeError):
    """The Dask cluster cannot be reached or cannot run convgrade's pool: nothing is graded."""


# -- on the workers -------------------------------------------------------------------------------


class PoolPlugin(WorkerPlugin):
    """A Dask worker plugin: the worker's own warm sandboxed :class:`WorkerPool`.

    ``settings`` are the pool's keyword arguments as plain data (``sandbox``, ``seed``,
    ``preload``, ``preload_probe``, ``preload_matplotlib``, ``limits`` as a dict);
    ``fingerprint`` is the grading machine's :func:`local.stage_fingerprint`.
    """

    def __init__(self, settings: dict[str, Any], fingerprint: str) -> None:
        self.settings = dict(settings)
        self.fingerprint = fingerprint
        self.pool: Any = None

    def setup(self, worker: Any) -> None:
        """Start the pool (one server per worker thread, all warming in the background)."""
        mine = local.stage_fingerprint()
        if mine != self.fingerprint:
            raise RuntimeError(
                f"worker {worker.address} has another version of the course or its runtime "
                f"(fingerprint {mine}, the grading machine's is {self.fingerprint}): install "
                "the same course package, Python, torch and numpy on every worker")
        settings = dict(self.settings)
        limits = local.Limits(**settings.pop("limits"))
        jobs = int(getattr(getattr(worker, "state", worker), "nthreads", 1) or 1)
        self.pool = local.WorkerPool(jobs, limits=limits, **settings)
        self.pool.warm(jobs)

    def teardown(self, worker: Any) -> None:
        """Stop the pool's servers and remove its stage."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def run_submission(cells: list[dict[str, Any]], plugin: str) -> dict[str, Any]:
    """The task: run one submission's cells in this worker's pool; its RunResult as data."""
    worker = get_worker()
    mine = worker.plugins.get(plugin)
    if mine is None or getattr(mine, "pool", None) is None:
        raise RuntimeError(f"convgrade's pool is not running on worker {worker.address}")
    return local.run_to_data(mine.pool.run(local.cells_from_data(cells)))


def _pool_info(plugin: str, dask_worker: Any = None) -> list[dict[str, Any]]:
    """What the worker's pool says of its servers (``Client.run`` passes ``dask_worker``)."""
    mine = (dask_worker or get_worker()).plugins.get(plugin)
    pool = getattr(mine, "pool", None)
    return pool.server_info() if pool is not None else []


# -- in the grading process -----------------------------------------------------------------------


def parse_local(address: str) -> int | None:
    """N for ``local:N`` (``local``: the number of usable CPUs); None for a scheduler
    address. Raises ValueError for a malformed ``local:...``."""
    if address == "local":
        return len(os.sched_getaffinity(0))
    if not address.startswith("local:"):
        return None
    try:
        n = int(address[len("local:"):])
    except ValueError:
        raise ValueError(f"--cluster {address}: expected local:N with N a number") from None
    if n < 1:
        raise ValueError(f"--cluster {address}: a local cluster needs at least one worker")
    return n


class DaskExecutor:
    """Run submissions on a Dask cluster; the protocol of :class:`WorkerPool` (``map``,
    ``run``, ``warm``, ``server_info``, ``close`` and the run's settings as attributes)."""

    def __init__(self, address: str, *, sandbox: bool = True, limits: Any = None,
                 connect_timeout: float | None = None,
                 worker_timeout: float | None = None) -> None:
        connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        self.address = address
        self.sandbox = sandbox
        self.limits = limits if limits is not None else local.Limits()
        self.seed = 0
        self.preload: Sequence[str] = ("numpy", "torch")
        self.preload_probe = True
        self.preload_matplotlib = True
        self.worker_timeout = WORKER_TIMEOUT if worker_timeout is None else worker_timeout
        self._plugin = f"convgrade-pool-{uuid.uuid4().hex[:12]}"
        self._registering: threading.Thread | None = None
        self._registered = False
        self._register_error: BaseException | None = None
        self._lock = threading.Lock()
        self._cluster: LocalCluster | None = None
        n = parse_local(address)
        if n is not None:
            try:
                self._cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True,
                    dashboard_address=":0", silence_logs=logging.ERROR)
            except Exception as exc:
                raise ClusterUnavailable(
                    f"could not start a local Dask cluster of {n} workers "
                    f"({type(exc).__name__}: {exc})") from exc
            address = self._cluster.scheduler_address
        try:
            self._client = Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise ClusterUnavailable(
                f"cannot reach the Dask scheduler at {self.address} within "
                f"{connect_timeout:g} s ({type(exc).__name__}: {exc}); start one with "
                "`dask scheduler` and `dask worker ADDRESS`, or try `--cluster local:N`"
            ) from exc

    # -- the run's pool on every worker ---------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {"sandbox": bool(self.sandbox), "seed": int(self.seed),
                "preload": list(self.preload), "preload_probe": bool(self.preload_probe),
                "preload_matplotlib": bool(self.preload_matplotlib),
                "limits": asdict(self.limits)}

    def _register(self) -> None:
        try:
            if not self._client.scheduler_info(n_workers=-1).get("workers"):
                try:
                    self._client.wait_for_workers(1, timeout=self.worker_timeout)
                except TimeoutError as exc:
                    raise ClusterUnavailable(
                        f"no Dask worker joined the scheduler at {self.address} within "
                        f"{self.worker_timeout:g} s") from exc
            plugin = PoolPlugin(self._settings(), local.stage_fingerprint())
            try:
                self._client.register_plugin(plugin, name=self._plugin)
            except Exception as exc:
                raise ClusterUnavailable(
                    f"the Dask workers at {self.address} could not start convgrade's pool: "
                    f"{type(exc).__name__}: {exc}") from exc
        except BaseException as exc:
            self._register_error = exc
        else:
            self._registered = True

    def warm(self, count: int = 1) -> None:
        """Start every worker's pool with the run's settings, in the background (``count`` is
        the local pool's; a worker warms one server per thread)."""
        with self._lock:
            if self._registering is None:
                self._registering = threading.Thread(target=self._register, daemon=True,
                                                     name="convgrade-dask-register")
                self._registering.start()

    def _ready(self) -> None:
        self.warm()
        assert self._registering is not None
        self._registering.join()
        if self._register_error is not None:
            raise self._register_error

    # -- the pool protocol ----------------------------------------------------------------------
    def map(self, submissions: list[list[Any]]) -> Iterator[tuple[int, Any]]:
        """Run the submissions on the cluster; yield ``(position, RunResult)`` as each
        completes, once per position."""
        if not submissions:
            return
        self._ready()
        run = uuid.uuid4().hex[:8]
        keys = [f"convgrade-{run}-{i}" for i in range(len(submissions))]
        futures = self._client.map(run_submission,
                                   [local.cells_to_data(cells) for cells in submissions],
                                   plugin=self._plugin, key=keys, retries=RETRIES, pure=False)
        position = {key: i for i, key in enumerate(keys)}
        done: set[int] = set()
        try:
            for future in as_completed(futures, loop=self._client.loop):
                i = position[future.key]
                if i in done:  # never record a submission twice
                    future.release()
                    continue
                done.add(i)
                yield i, self._result(future)
                future.release()
        finally:
            for future in futures:  # a run stopped early: cancel what is left
                if not future.done():
                    future.cancel()

    def _result(self, future: Any) -> Any:
        from distributed import KilledWorker

        try:
            return local.run_from_data(future.result())
        except KilledWorker as exc:
            return local.RunResult(
                [], f"the Dask workers running this submission were lost repeatedly ({exc})",
                0.0)

    def run(self, cells: list[Any]) -> Any:
        """Run one submission on the cluster."""
        for _, result in self.map([cells]):
            return result
        raise RuntimeError("the cluster returned no result")

    def server_info(self) -> list[dict[str, Any]]:
        """Per warm server of every worker: what :meth:`WorkerPool.server_info` says, with the
        worker's address."""
        if not self._registered:
            return []
        per_worker = self._client.run(_pool_info, self._plugin)
        return [{**info, "worker": address} for address, infos in sorted(per_worker.items())
                for info in infos]

    def close(self) -> None:
        """Stop every worker's pool (the plugin's teardown), disconnect, and stop a local
        cluster."""
        try:
            if self._registering is not None:
                self._registering.join()
            if self._registered:
                try:
                    self._client.unregister_worker_plugin(self._plugin)
                except Exception:  # a worker that is gone has nothing left to stop
                    logging.getLogger(__name__).debug("unregistering the pool failed",
                                                      exc_info=True)
            self._client.close(timeout=10)
        finally:
            if self._cluster is not None:
                self._cluster.close(timeout=10)
                self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
