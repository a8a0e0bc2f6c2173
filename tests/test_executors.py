"""The executors' plain parts (no cluster): the ``--cluster`` values, the data that travels to a
Dask worker and back, and the fingerprint of what a worker stages. tests/test_dask.py grades
on real clusters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader.engine.executors import check_cluster, local, pool_factory

REPO = Path(__file__).resolve().parent.parent


def test_no_cluster_is_the_default_pool() -> None:
    assert pool_factory(None) is None


@pytest.mark.parametrize("value", ["tcp://10.0.0.5:8786", "tls://sched:8786", "local", "local:4",
                                   "127.0.0.1:8786"])
def test_good_cluster_values(value: str) -> None:
    check_cluster(value)
    assert callable(pool_factory(value))


@pytest.mark.parametrize("value", ["", "  ", "local:0", "local:two", "local:-1"])
def test_bad_cluster_values(value: str) -> None:
    with pytest.raises(ValueError):
        pool_factory(value)


def test_cells_and_runs_survive_the_wire() -> None:
    import json

    cells = [local.CellJob(0, "x = 1"), local.CellJob(2, "check(x)", True, "x_tests")]
    data = local.cells_to_data(cells)
    assert json.loads(json.dumps(data)) == data
    assert local.cells_from_data(data) == cells
    run = local.RunResult(
        cells=[local.CellResult(0, [{"output_type": "stream", "name": "stdout", "text": "1\n"}]),
               local.CellResult(2, [], {"ename": "AssertionError", "evalue": "no",
                                        "traceback": []},
                                [("x", {"values": [1, {"type": "tensor"}]})])],
        error="cut short", seconds=0.25)
    wire = json.loads(json.dumps(local.run_to_data(run)))
    back = local.run_from_data(wire)
    assert back == run
    assert isinstance(back.cells[1].records[0], tuple)


def test_limits_follow_the_timeout() -> None:
    assert local.limits_for(None) == local.Limits()
    assert local.limits_for(120).wall_seconds == 120.0
    assert local.limits_for(120).cpu_seconds == 121


def test_fingerprint_sees_the_staged_files(tmp_path: Path) -> None:
    package = tmp_path / "grader"
    shutil.copytree(REPO / "grader", package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    same = local.stage_fingerprint(package)
    assert same == local.stage_fingerprint(REPO / "grader") == local.stage_fingerprint()
    reference = package / "course" / "channels_pooling" / "reference.py"
    reference.write_text(reference.read_text() + "\n# not staged\n")
    assert local.stage_fingerprint(package) == same  # the worker never sees references
    cases = package / "course" / "channels_pooling" / "cases.py"
    cases.write_text(cases.read_text() + "\n# another version\n")
    assert local.stage_fingerprint(package) != same
