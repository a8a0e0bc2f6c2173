"""The engine's shape (issue 11): a generic engine without torch, the course's content apart.

* every ``grader.engine`` module imports in a fresh interpreter without importing torch, and
  none of them has an ``import torch`` line;
* the generic judge (``grader.checks``, ``grader.records``, ``grader.mistakes``) imports
  without torch too: the tensor comparison is the course's (``grader/course/compare.py``);
* torch is this course's extra (``convgrade[course]``), not a dependency of the engine.
"""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grader.engine

REPO = Path(__file__).resolve().parents[1]
ENGINE_MODULES = sorted(m.name for m in pkgutil.walk_packages(grader.engine.__path__,
                                                                "grader.engine."))


def _imports_without_torch(*modules: str) -> None:
    code = ("import importlib, sys\n"
            f"for name in {list(modules)!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'torch' not in sys.modules, f'{name} imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_engine_modules_are_found() -> None:
    assert {"grader.engine.autograde", "grader.engine.precheck", "grader.engine.execute.pool",
            "grader.engine.execute.server", "grader.engine.forbidden"} <= set(ENGINE_MODULES)


def test_every_engine_module_imports_without_torch() -> None:
    """In a fresh interpreter, one after the other: torch is checked after each import."""
    _imports_without_torch(*ENGINE_MODULES)


def test_no_engine_file_imports_torch() -> None:
    pattern = re.compile(r"import torch|from torch")
    found = [f"{path.relative_to(REPO)}:{n}" for path in (REPO / "grader" / "engine").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_the_generic_judge_imports_without_torch() -> None:
    """The judge's dispatch, verdicts, hints and the registry's code need no torch; the course's
    comparisons (grader.course.compare) and references bring it when the course loads."""
    _imports_without_torch("grader", "grader.checks", "grader.records", "grader.mistakes",
                           "grader.registry", "grader.runtime.declare", "grader.runtime.discover")


def test_torch_is_the_course_extra_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("torch")]
    assert "torch==2.13.0" in project["optional-dependencies"]["course"]
    assert "'.[dev,course]'" in (REPO / "scripts" / "setup.sh").read_text()
    assert '"./.course[course]"' in (REPO / ".github" / "workflows" / "autograde.yml").read_text()


def test_records_read_tensors_as_the_course_comparison_does() -> None:
    """grader.records describes recorded tensors without torch: the same numbers and shape,
    the same words, as the course's torch reader (grader.course.compare) for every record."""
    import numpy as np
    import torch

    from grader.course.compare import as_tensor, fmt_tensor
    from grader.records import as_array, fmt_array
    from grader.runtime.probe import encode

    values = [
        torch.arange(6.0).reshape(2, 3), torch.tensor(3.5), torch.zeros(0, 3), torch.zeros(3, 0),
        torch.arange(24).reshape(2, 3, 4), torch.randn(7, 7), torch.tensor([float("nan"), 1.0,
                                                                           float("inf")]),
        torch.tensor([True, False]), torch.tensor([1 + 2j]), np.arange(4.0).reshape(2, 2),
        [[1.0, 2.0], [3.0, 4.0]], [[1.0], [2.0, 3.0]], [1, 2.5, 3], [], [[]], (1.0, "x"),
        [torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])], [torch.tensor(1.0), 2.0],
        torch.Size([2, 3]), [[[1.0, 2.0]], [[3.0, 4.0]]], 3.0, None, "text",
    ]
    forged = [{"type": "tensor", "dtype": "torch.float32", "shape": [2, 2], "data": [1, 2, 3]},
              {"type": "tensor", "dtype": "torch.float32", "shape": [2], "data": ["nan", "x"]},
              {"type": "list", "items": [{"type": "int"}]}]
    for enc in [encode(v) for v in values] + forged:
        array, tensor = as_array(enc), as_tensor(enc)
        assert (array is None) == (tensor is None), enc
        if array is not None:
            assert array.shape == tuple(tensor.shape), enc
            assert fmt_array(array) == fmt_tensor(tensor), enc
