"""Where step 3 (execute) runs: the local warm pool (the default) or a Dask cluster.

An executor is anything with the pool protocol of :class:`grader.engine.worker.WorkerPool`:
``map(list_of_cell_job_lists)`` yields ``(position, RunResult)`` as runs finish, ``run``,
``warm``, ``server_info``, ``close``, and the run's settings as attributes (``seed``,
``preload``, ``preload_probe``, ``preload_matplotlib``). The same data goes in and the same
data comes out wherever it runs, so scores never depend on the executor.

* :mod:`grader.engine.executors.local`: this machine's :class:`WorkerPool`;
* :mod:`grader.engine.executors.dask`: :class:`DaskExecutor`, one warm pool per Dask worker
  (``--cluster tcp://HOST:8786`` or ``--cluster local:N``). Importing it needs ``distributed``
  (``pip install convgrade[dask]``); nothing else imports it, so without ``--cluster`` Dask is
  neither needed nor loaded.

:func:`pool_factory` turns a ``--cluster`` value into the ``pool_factory`` that
:func:`grader.engine.autograde.autograde` takes (``python -m grader autograde`` and any other
command that grades use it the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["PoolFactory", "check_cluster", "pool_factory"]

PoolFactory = Callable[[int | None, bool, float | None], Any]
"""``factory(jobs, sandbox, timeout) -> pool``, as :func:`autograde` calls it."""


def check_cluster(cluster: str) -> None:
    """Raise ValueError for a ``--cluster`` value that is no scheduler address nor ``local:N``
    (before anything is started)."""
    if not cluster or not cluster.strip():
        raise ValueError("--cluster needs a scheduler address (tcp://HOST:8786) or local:N")
    if cluster == "local" or cluster.startswith("local:"):
        rest = cluster[len("local:"):] if cluster != "local" else "1"
        if not rest.isdigit() or int(rest) < 1:
            raise ValueError(f"--cluster {cluster}: expected local:N with N a number of "
                             "workers, at least 1")


def pool_factory(cluster: str | None) -> PoolFactory | None:
    """The pool factory for ``--cluster cluster``; None (the local pool, autograde's default)
    when no cluster is given.

    ``cluster`` is a Dask scheduler address (``tcp://HOST:8786``, ``tls://HOST:8786``) or
    ``local:N`` (a :class:`distributed.LocalCluster` of N one-thread worker processes, for
    trying it on one machine). The factory connects when the run starts; an unreachable
    scheduler raises :class:`grader.engine.executors.dask.ClusterUnavailable` (an
    :class:`~grader.engine.autograde.AutogradeError`) before anything is graded. The run's
    ``jobs`` does not apply: each worker runs one sandboxed server per Dask thread.
    """
    if cluster is None:
        return None
    check_cluster(cluster)

    def factory(jobs: int | None, sandbox: bool, timeout: float | None) -> Any:
        from grader.engine.autograde import AutogradeError
        from grader.engine.executors.local import limits_for

        try:
            from grader.engine.executors.dask import DaskExecutor
        except ImportError as exc:
            raise AutogradeError(
                f"--cluster needs Dask distributed ({exc}); install it with "
                "`pip install convgrade[dask]` (or `pip install distributed`)") from exc
        return DaskExecutor(cluster, sandbox=sandbox, limits=limits_for(timeout))

    return factory
