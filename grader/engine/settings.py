"""convgrade's own settings in a course's ``nbgrader_config.py``.

nbgrader reads its configuration with traitlets; convgrade's settings live in the same file,
in the ``ConvGrade`` section::

    c.ConvGrade.preload = ["numpy", "torch"]

``preload`` lists the modules each warm worker server imports once, before it forks a child
per notebook, so that no student pays for them (importing torch costs about 3 s). A course
that declares nothing preloads nothing beyond the standard library and IPython; a module it
does not preload still works, each notebook just imports it itself.

The worker pool is started before nbgrader (and so the course's configuration) has loaded,
to save the seconds a cold server costs; :func:`declared_preload` therefore reads the
setting from the file's text when it is a plain literal, and loads the whole file only when
it is not.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from traitlets import List, Unicode
from traitlets.config import Configurable

__all__ = ["ConvGrade", "course_settings", "declared_preload", "has_hidden_checks"]

class ConvGrade(Configurable):
    """convgrade's settings (``c.ConvGrade.<name>`` in ``nbgrader_config.py``)."""

    preload = List(
        Unicode(),
        default_value=[],
        help="Modules each warm worker imports once before grading (e.g. numpy, torch).",
    ).tag(config=True)


def course_settings(config: Any) -> ConvGrade:
    """The ``ConvGrade`` settings of a loaded traitlets Config."""
    return ConvGrade(config=config)


def _literal_preload(text: str) -> list[str] | None:
    """The value of the last top-level ``c.ConvGrade.preload = [...]`` in ``text`` if it is a
    literal list of strings; None if there is none or it is not a literal."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    value: list[str] | None = None
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        if ast.unparse(node.targets[0]) != "c.ConvGrade.preload":
            continue
        try:
            found = ast.literal_eval(node.value)
        except ValueError:
            return None
        if not isinstance(found, list | tuple) or not all(isinstance(x, str) for x in found):
            return None
        value = list(found)
    return value


def declared_preload(course_root: str | Path) -> list[str]:
    """The modules the course at ``course_root`` preloads (``c.ConvGrade.preload``)."""
    path = Path(course_root) / "nbgrader_config.py"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if "ConvGrade" not in text:
        return list(ConvGrade.class_traits()["preload"].default())
    literal = _literal_preload(text)
    if literal is not None:
        return literal
    from grader.engine.gradebook import load_config

    return list(course_settings(load_config(course_root)).preload)


def has_hidden_checks(source_dir: str | Path) -> bool:
    """Whether any source notebook in ``source_dir`` calls a ``grader`` check in its hidden
    tests (then the worker preloads the checks' runtime, and the judge is needed)."""
    from grader.engine.precheck import hidden_checks

    for path in Path(source_dir).glob("*.ipynb"):
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells") or []
        except (OSError, ValueError, AttributeError):
            continue  # load_sources reports an unreadable source notebook
        for cell in cells:
            source = cell.get("source", "") if isinstance(cell, dict) else ""
            if hidden_checks("".join(source) if isinstance(source, list) else str(source)):
                return True
    return False
