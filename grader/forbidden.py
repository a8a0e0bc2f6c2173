"""The from-scratch rule: no torch (or numpy/scipy) convolution, pooling or unfold.

Two independent detectors:

* :func:`scan` reads the student's source with :mod:`ast` in the grader's own process. It
  follows the exercise's function into the helpers and module-level names it uses, so
  aliases (``import torch.nn.functional as G``; ``c = F.conv2d``), string look-ups
  (``getattr(F, "conv2d")``) and computed look-ups (``getattr(F, "con" + "v2d")``,
  ``eval``, ``__import__``) are all caught.
* :func:`tripwires` wraps the real torch functions while the student's code runs and notes
  each call. It runs inside the student's worker, so it is a second opinion only.

This module is staged into the sandboxed worker: standard library and torch only.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        # convolution
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
        "ConvTranspose2d", "LazyConv2d", "convolution", "_convolution", "conv_tbc",
        "mkldnn_convolution", "correlate", "correlate2d", "convolve", "convolve2d",
        "fftconvolve", "oaconvolve",
        # pooling
        "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
        "max_pool2d_with_indices", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d",
        "AvgPool2d", "AvgPool3d", "adaptive_max_pool2d", "adaptive_avg_pool2d",
        "AdaptiveMaxPool2d", "AdaptiveAvgPool2d", "lp_pool2d", "LPPool2d",
        "fractional_max_pool2d", "FractionalMaxPool2d", "maximum_filter", "uniform_filter",
        # sliding windows
        "unfold", "Unfold", "fold", "Fold", "im2col", "col2im", "as_strided",
        "sliding_window_view",
    }
)

# Built-ins that reach an attribute or module by a computed name.
INDIRECT_CALLS: frozenset[str] = frozenset(
    {"getattr", "eval", "exec", "compile", "__import__", "import_module", "vars", "globals",
     "locals", "attrgetter", "methodcaller"}
)

_FORBIDDEN_RE = re.compile("|".join(sorted(FORBIDDEN_NAMES, key=len, reverse=True)))


@dataclass(frozen=True)
class Finding:
    """One forbidden use: the name and where it stands."""

    name: str
    line: int
    text: str

    def describe(self) -> str:
        """A sentence for the student."""
        return f"line {self.line}: `{self.text}` uses `{self.name}`"


#: Separates the code cells in the ``source`` the grader passes to :func:`scan` and
#: :func:`tamper_scan`. A NUL byte cannot stand in a cell that runs (Python refuses source with
#: one), so a student cannot use it to split a working cell in two.
CELL_SEPARATOR = "\n\x00\n"


def join_cells(cells: Iterable[str]) -> str:
    """The ``source`` argument of the scans for these code cells."""
    return CELL_SEPARATOR.join(cells)


def _strip_magics(source: str) -> str:
    """Blank out IPython magics and shell escapes so that ``ast`` can parse the cells."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!", "?")) else line)
    return "\n".join(lines)


def _as_python(cell: str) -> str:
    """A cell as IPython runs it: magics blanked, other IPython syntax made Python."""
    text = _strip_magics(cell)
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with nbgrader
        return text
    try:
        return TransformerManager().transform_cell(text)
    except Exception:  # noqa: BLE001 - then the cell does not run in the kernel either
        return text


@functools.lru_cache(maxsize=16)
def _parse_cells(source: str) -> tuple[ast.Module, list[str]]:
    """Parse every cell of ``source`` on its own and join them into one module.

    A cell that does not parse is left out: the kernel cannot run any of it either (a
    syntax error in one answer must not hide the rest of the notebook from the scans, nor
    make its words count as code). Line numbers count through the kept cells.
    """
    body: list[ast.stmt] = []
    lines: list[str] = []
    for cell in source.split("\x00"):
        code = _as_python(cell)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            continue
        ast.increment_lineno(tree, len(lines))
        body.extend(tree.body)
        lines.extend(code.splitlines() or [""])
    return ast.Module(body=body, type_ignores=[]), lines


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level (descending into if/try/with/for, not defs)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for field_name in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, field_name, None)
            if isinstance(inner, list):
                nested = [s for s in inner if isinstance(s, ast.stmt)]
                for handler in (s for s in inner if isinstance(s, ast.ExceptHandler)):
                    nested.extend(handler.body)
                yield from _module_statements(nested)


def _top_level(tree: ast.Module) -> dict[str, list[ast.AST]]:
    """Map each name bound at module level to the statements that bind it."""
    bound: dict[str, list[ast.AST]] = {}
    for stmt in _module_statements(tree.body):
        names: list[str] = []
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [stmt.name]
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For | ast.With):
            targets = (stmt.targets if isinstance(stmt, ast.Assign)
                       else [stmt.target] if not isinstance(stmt, ast.With)
                       else [item.optional_vars for item in stmt.items if item.optional_vars])
            names = [sub.id for t in targets for sub in ast.walk(t) if isinstance(sub, ast.Name)]
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names = [(alias.asname or alias.name).split(".")[0] for alias in stmt.names]
        # (name := value) anywhere in the statement binds at module level too.
        names += [sub.target.id for sub in ast.walk(stmt)
                  if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name)]
        for name in names:
            bound.setdefault(name, []).append(stmt)
    # A function that declares `global name` (re)binds that module-level name.
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Global):
                    for name in sub.names:
                        bound.setdefault(name, []).append(node)
    return bound


#: Ways to (re)bind a module-level name that the name-following scan cannot track.
_INDIRECT_BINDERS = frozenset({"globals", "vars", "setattr", "exec", "eval", "__import__"})
_INDIRECT_ATTRS = frozenset({"__dict__", "__getattribute__", "__getattr__", "__setattr__",
                             "modules"})


def _rebinds_indirectly(tree: ast.Module) -> bool:
    """Whether the code could rebind any name behind the scan's back (then scan it all)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _INDIRECT_BINDERS | {"__main__"}:
            return True
        if isinstance(node, ast.Attribute) and node.attr in _INDIRECT_ATTRS:
            return True
        if isinstance(node, ast.alias) and node.name == "__main__":
            return True
    return False


def _names_used(node: ast.AST) -> set[str]:
    """Names a statement reads from module level (a function's own locals excluded)."""
    loaded = {sub.id for sub in ast.walk(node)
              if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        local = {a.arg for a in args.args + args.posonlyargs + args.kwonlyargs}
        local |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        local |= {sub.id for sub in ast.walk(node)
                  if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store)}
        declared = {n for sub in ast.walk(node) if isinstance(sub, ast.Global) for n in sub.names}
        loaded -= local - declared
    return loaded


def _uses(node: ast.AST, lines: list[str]) -> list[Finding]:
    found: list[Finding] = []

    def add(name: str, sub: ast.AST) -> None:
        line = getattr(sub, "lineno", 0)
        text = lines[line - 1].strip() if 0 < line <= len(lines) else name
        found.append(Finding(name, line, text[:120]))

    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in FORBIDDEN_NAMES:
            add(sub.attr, sub)
        elif isinstance(sub, ast.Attribute) and sub.attr in ("__dict__", "__getattribute__",
                                                             "__getattr__"):
            add(f"{sub.attr} (a look-up by computed name)", sub)
        elif isinstance(sub, ast.Name) and sub.id in FORBIDDEN_NAMES:
            add(sub.id, sub)
        elif isinstance(sub, ast.alias) and sub.name.split(".")[-1] in FORBIDDEN_NAMES:
            add(sub.name.split(".")[-1], node)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            match = _FORBIDDEN_RE.search(sub.value)
            if match and sub.value.strip() == match.group(0):
                add(match.group(0), sub)
        elif isinstance(sub, ast.Call):
            func = sub.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else None)
            if name in INDIRECT_CALLS:
                literal = all(isinstance(a, ast.Constant) for a in sub.args[1:2])
                if name != "getattr" or not literal:
                    add(f"{name}() with a computed name" if name == "getattr" else f"{name}()",
                        sub)
    return found


def scan(source: str, entry: str | None = None) -> list[Finding]:
    """Find forbidden torch/numpy/scipy calls in the code ``entry`` depends on.

    Args:
        source: the student's code (all non-test code cells, joined).
        entry: the name of the exercise's function; ``None`` scans everything.

    Returns:
        The findings, in source order; ``[]`` when the code is clean. Cells that do not
        parse are left out (they cannot run).
    """
    tree, lines = _parse_cells(source)
    bound = _top_level(tree)
    if entry is None or entry not in bound or _rebinds_indirectly(tree):
        nodes: list[ast.AST] = [tree]
    else:
        nodes, seen, todo = [], set(), [entry]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for node in bound.get(name, []):
                nodes.append(node)
                todo.extend(_names_used(node) - seen)
    findings: dict[tuple[int, str], Finding] = {}
    for node in nodes:
        for finding in _uses(node, lines):
            findings.setdefault((finding.line, finding.name), finding)
    return sorted(findings.values(), key=lambda f: (f.line, f.name))


# ---------------------------------------------------------------------------------------------
# runtime tripwires (run in the student's process)

def _tripwire_targets() -> list[tuple[Any, str, str]]:
    import torch
    import torch.nn.functional as F

    targets: list[tuple[Any, str, str]] = []
    for module, prefix in ((F, "torch.nn.functional"), (torch, "torch")):
        for name in sorted(FORBIDDEN_NAMES):
            if callable(getattr(module, name, None)) and not isinstance(
                getattr(module, name), type
            ):
                targets.append((module, name, f"{prefix}.{name}"))
    for name in ("unfold", "as_strided"):
        targets.append((torch.Tensor, name, f"Tensor.{name}"))
    for cls in ("Conv1d", "Conv2d", "Conv3d", "MaxPool2d", "AvgPool2d", "Unfold",
                "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        klass = getattr(torch.nn, cls, None)
        if klass is not None:
            targets.append((klass, "forward", f"torch.nn.{cls}"))
    return targets


_MISSING = object()


@contextlib.contextmanager
def tripwires() -> Iterator[set[str]]:
    """Record every forbidden torch call made inside the ``with`` block.

    Yields the set that fills with names such as ``"torch.nn.functional.conv2d"``. The
    real functions still run, so the student's answer is computed as usual.
    """
    seen: set[str] = set()
    patched: list[tuple[Any, str, Any]] = []

    def wrap(original: Any, label: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.add(label)
            return original(*args, **kwargs)

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        return wrapper

    try:
        for owner, name, label in _tripwire_targets():
            current = getattr(owner, name, None)
            if current is None:
                continue
            own = vars(owner).get(name, _MISSING)
            try:
                setattr(owner, name, wrap(current, label))
            except (AttributeError, TypeError):
                continue
            patched.append((owner, name, own))
        yield seen
    finally:
        for owner, name, own in reversed(patched):
            if own is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, own)


# ---------------------------------------------------------------------------------------------
# tampering: reaching into the grader, the worker or Jupyter's machinery

#: Modules a submitted notebook may not import: they reach the grader, the interpreter's
#: internals or the gradebook.
TAMPER_MODULES: frozenset[str] = frozenset(
    {"grader", "ctypes", "gc", "importlib", "builtins", "inspect", "marshal", "types", "runpy",
     "code", "codeop", "IPython", "ipykernel", "traitlets", "sqlite3", "nbgrader", "pickle",
     "dill", "cffi", "_ctypes", "sysconfig", "site", "atexit", "signal", "linecache",
     "__main__", "faulthandler", "tracemalloc", "_thread", "posix"}
)
#: Built-in names that evaluate code or reach attributes by computed names.
TAMPER_BUILTINS: frozenset[str] = frozenset(
    {"get_ipython", "__import__", "eval", "exec", "compile", "globals", "vars", "locals",
     "setattr", "delattr", "__builtins__", "In", "Out", "_ih", "_oh", "_dh", "_i", "_ii",
     "_iii", "breakpoint"}
)
#: Attributes (on anything) that reach frames, the probe's sink or Jupyter's input pipeline.
TAMPER_ATTRS: frozenset[str] = frozenset(
    {"settrace", "setprofile", "_getframe", "f_back", "f_globals", "f_locals", "f_builtins",
     "f_code", "gi_frame", "cr_frame", "tb_frame", "input_transformers_cleanup",
     "input_transformers_post", "ast_transformers", "run_cell", "user_ns", "meta_path",
     "path_hooks", "set_sink", "set_seed", "_sink", "_seed", "_CHANNEL",
     "register_cell_magic", "register_line_magic", "register_magic_function",
     "last_traceback", "last_value", "last_exc", "last_type", "FileIO", "history_manager"}
)
#: Attributes of os/posix/sys that write to raw file descriptors or reach loaded modules.
TAMPER_OS_ATTRS: frozenset[str] = frozenset(
    {"modules", "write", "fdopen", "dup", "dup2", "pwrite", "writev", "sendfile",
     "memfd_create", "fork", "forkpty", "open", "openpty"}
)
#: Dunder attributes a student may use (everything else with __ is off limits).
ALLOWED_DUNDERS: frozenset[str] = frozenset(
    {"__init__", "__name__", "__doc__", "__version__", "__len__", "__getitem__", "__setitem__",
     "__call__", "__repr__", "__str__", "__iter__", "__next__", "__eq__", "__main__",
     "__future__", "__contains__", "__enter__", "__exit__", "__post_init__"}
)
_OS = ("os", "posix", "sys", "nt", "io", "_io")
#: Magics that read the session's history or run code from elsewhere.
_TAMPER_MAGICS = ("hist", "history", "recall", "rerun", "macro", "save", "store", "load",
                  "load_ext", "run", "edit", "pycat", "bookmark", "alias_magic", "writefile")
_INPUT_HISTORY = re.compile(r"_i\d+$")
_TAMPER_STRINGS = ("/proc", "/dev/fd", "gradebook", "grader", "/sys/", "nbgrader")


def tamper_scan(source: str) -> list[Finding]:
    """Find code that reaches into the grader, the worker or Jupyter's machinery.

    Honest answers to these exercises need none of it, and every way of forging a check's
    result in the student's process (replacing modules in ``sys.modules``, swapping the
    probe's sink, input or AST transformers, frame inspection, writing to the worker's
    channel, monkeypatching torch or numpy) goes through something listed here. Any finding
    fails the notebook's checks with the finding's line.
    """
    found: list[Finding] = []
    for number, line in enumerate(source.splitlines(), 1):
        magic = re.match(r"\s*%{1,2}\s*(\w+)", line)
        if magic and magic.group(1) in _TAMPER_MAGICS:
            found.append(Finding(f"%{magic.group(1)}", number, line.strip()[:120]))
    tree, lines = _parse_cells(source)
    os_names = set(_OS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname for a in node.names if a.asname and a.name in _OS}

    def add(name: str, node: ast.AST) -> None:
        line = getattr(node, "lineno", 0)
        snippet = lines[line - 1].strip() if 0 < line <= len(lines) else name
        found.append(Finding(name, line, snippet[:120]))

    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            for module in modules:
                if module.split(".")[0] in TAMPER_MODULES:
                    add(f"import {module}", node)
            for alias in node.names:
                imported.add((alias.asname or alias.name).split(".")[0])
                from_os = isinstance(node, ast.ImportFrom) and (node.module or "") in _OS
                if alias.name in TAMPER_ATTRS or (from_os and alias.name in TAMPER_OS_ATTRS):
                    add(alias.name, node)
        elif isinstance(node, ast.Name) and (node.id in TAMPER_BUILTINS
                                             or _INPUT_HISTORY.match(node.id)):
            add(node.id, node)
        elif isinstance(node, ast.Attribute):
            receiver = node.value.id if isinstance(node.value, ast.Name) else None
            if node.attr in TAMPER_ATTRS or (receiver in os_names
                                             and node.attr in TAMPER_OS_ATTRS):
                add(f".{node.attr}", node)
            elif node.attr.startswith("__") and node.attr not in ALLOWED_DUNDERS:
                add(f".{node.attr}", node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id == "open" and node.args
                and not isinstance(node.args[0], ast.Constant | ast.Name | ast.JoinedStr)):
            add("open() of a computed path or a file descriptor", node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id == "open" and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, int)):
            add("open() of a file descriptor", node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(marker in node.value for marker in _TAMPER_STRINGS):
                add(repr(node.value[:40]), node)
    # Monkeypatching: assigning to an attribute of an imported module (torch.allclose = ...).
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute):
                    root = sub.value
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if isinstance(root, ast.Name) and root.id in imported:
                        add(f"assignment to {root.id}.…{sub.attr}", node)
    unique: dict[tuple[int, str], Finding] = {}
    for finding in found:
        unique.setdefault((finding.line, finding.name), finding)
    return sorted(unique.values(), key=lambda f: (f.line, f.name))
