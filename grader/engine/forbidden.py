"""The forbidden-API rule's mechanism, and the tamper scan.

What is forbidden is the course's to say: a :class:`grader.runtime.declare.ForbiddenApi`
given to the exercises it applies to (this course: no torch, numpy or scipy convolution,
pooling or unfold, ``grader.course.FROM_SCRATCH``). A course without one has no such rule.
Two independent detectors run a rule:

* :func:`scan` reads the student's source with :mod:`ast` in the grader's own process. It
  follows the exercise's function into the helpers and module-level names it uses, so
  aliases (``torch.nn.functional`` imported as ``G``; ``c = F.conv2d``), string look-ups
  (``getattr(F, "conv2d")``) and computed look-ups (``getattr(F, "con" + "v2d")``,
  ``eval``, ``__import__``) are all caught.
* :func:`tripwires` wraps the rule's library functions while the student's code runs and notes
  each call. It runs inside the student's worker, so it is a second opinion only.

:func:`tamper_scan` is no verdict: it lists what could forge a record, skip a graded cell or
hide a forbidden call, for review (grader.engine.review).

This module is staged into the sandboxed worker: standard library only (the tripwires find the
libraries they wrap by name).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grader.runtime.declare import ForbiddenApi

# Built-ins that reach an attribute or module by a computed name.
INDIRECT_CALLS: frozenset[str] = frozenset(
    {"getattr", "eval", "exec", "compile", "__import__", "import_module", "vars", "globals",
     "locals", "attrgetter", "methodcaller"}
)



@functools.lru_cache(maxsize=8)
def _names_re(names: frozenset[str]) -> re.Pattern[str] | None:
    """A pattern matching any of ``names`` (longest first), or None for no names."""
    if not names:
        return None
    return re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))


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
def _parse_cells(source: str) -> tuple[ast.Module, list[str], tuple[tuple[int, int], ...]]:
    """Parse every cell of ``source`` on its own and join them into one module.

    A cell that does not parse is left out: the kernel cannot run any of it either (a
    syntax error in one answer must not hide the rest of the notebook from the scans, nor
    make its words count as code). Line numbers count through the kept cells; the third
    item maps each kept cell to its first line: ``(first line - 1, cell number)``.
    """
    body: list[ast.stmt] = []
    lines: list[str] = []
    starts: list[tuple[int, int]] = []
    for number, cell in enumerate(source.split("\x00")):
        code = _as_python(cell)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            continue
        starts.append((len(lines), number))
        ast.increment_lineno(tree, len(lines))
        body.extend(tree.body)
        lines.extend(code.splitlines() or [""])
    return ast.Module(body=body, type_ignores=[]), lines, tuple(starts)


def locate(source: str, line: int) -> tuple[int, int]:
    """Where line ``line`` of a finding on ``source`` stands: (cell number, line in that cell).

    Cells are numbered in the order they were joined (:func:`join_cells`), from 0.
    """
    _, _, starts = _parse_cells(source)
    cell, first = 0, 0
    for offset, number in starts:
        if offset < line:
            cell, first = number, offset
    return cell, line - first


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
_INDIRECT_BINDERS = frozenset({"exec", "eval", "__import__"})
_INDIRECT_ATTRS = frozenset({"__dict__", "__getattribute__", "__getattr__", "__setattr__",
                             "modules"})
#: Calls that return a namespace dictionary.
_NAMESPACE_CALLS = frozenset({"globals", "vars", "locals"})
#: Methods that write into a dictionary.
_MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear", "__setitem__",
                       "__delitem__"})
#: Calls that only read what they are given (``print(globals())`` writes nothing).
_READERS = frozenset({"print", "len", "sorted", "list", "set", "dict", "repr", "str", "display",
                      "pprint", "type", "id", "any", "all", "sum", "min", "max", "enumerate",
                      "iter", "filter", "map", "tuple", "frozenset", "reversed", "isinstance"})


@dataclass
class _Context:
    """What the scans need to know about a notebook besides one statement."""

    objects: frozenset[str]
    """Names that hold the student's own objects: ``self``, ``cls`` and module-level names
    only ever bound to the result of an ordinary call (``cfg = SimpleNamespace()``). Anything
    else (a parameter, an import, an alias of one) may be a module."""
    risky: frozenset[int]
    """``id()`` of the globals()/vars()/locals() calls whose namespace may be written."""
    inert: frozenset[int] = frozenset()
    """``id()`` of the eval/exec calls (and of their ``func`` names) that run a literal
    expression without calls, attributes or bindings (``eval("1 + 2")``)."""


def _context(tree: ast.Module) -> _Context:
    made: set[str] = set()
    other: set[str] = set(_imported_roots(tree))
    for stmt, names in _bindings(tree):
        value = stmt.value if isinstance(stmt, ast.Assign) else None
        func = value.func if isinstance(value, ast.Call) else None
        fname = func.id if isinstance(func, ast.Name) else (
            func.attr if isinstance(func, ast.Attribute) else None)
        if fname is not None and fname not in INDIRECT_CALLS | {"import_module", "reload"}:
            made |= names
        else:
            other |= names
    objects = frozenset({"self", "cls"} | (made - other))
    parents = {id(child): node for node in ast.walk(tree)
               for child in ast.iter_child_nodes(node)}
    risky: set[int] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _NAMESPACE_CALLS):
            continue
        if node.func.id == "vars" and node.args and not _module_like(node.args[0], objects):
            continue  # the __dict__ of the student's own object
        parent = parents.get(id(node))
        if isinstance(parent, ast.Subscript) and not isinstance(parent.ctx, ast.Load) or \
                isinstance(parent, ast.Attribute) and parent.attr in _MUTATORS or \
                isinstance(parent, ast.Assign | ast.NamedExpr | ast.keyword | ast.Return) or \
                isinstance(parent, ast.Call) and parent.func is not node and not (
                    isinstance(parent.func, ast.Name) and parent.func.id in _READERS):
            risky.add(id(node))
    inert: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("eval", "exec") and _inert_literal(node):
            inert |= {id(node), id(node.func)}
    return _Context(objects, frozenset(risky), frozenset(inert))


#: What a literal may hold for ``eval``/``exec`` of it to be harmless: values and operators.
_INERT_NODES = (ast.Module, ast.Expression, ast.Expr, ast.Constant, ast.BinOp, ast.UnaryOp,
                ast.BoolOp, ast.Compare, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.operator,
                ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)


def _inert_literal(call: ast.Call) -> bool:
    """Whether ``eval``/``exec`` here runs only a literal expression of plain values."""
    if len(call.args) != 1 or call.keywords or not (
            isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
        return False
    try:
        inner = ast.parse(call.args[0].value)
    except (SyntaxError, ValueError):
        return True  # it raises before doing anything
    return all(isinstance(n, _INERT_NODES) for n in ast.walk(inner))


def _bindings(tree: ast.Module) -> Iterator[tuple[ast.stmt, set[str]]]:
    """Each statement anywhere in ``tree`` that binds names, with the names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            yield node, {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.For | ast.With | ast.FunctionDef | ast.AsyncFunctionDef):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Store)} if not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef) else {
                a.arg for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs}
            yield node, names


def _module_like(node: ast.AST, objects: frozenset[str]) -> bool:
    """Whether ``node`` may be a module: anything but the student's own objects."""
    root = node
    while isinstance(root, ast.Attribute):
        root = root.value
    if isinstance(root, ast.Name):
        return root.id not in objects
    return not isinstance(root, ast.Constant)


def _rebinds_indirectly(tree: ast.Module, ctx: _Context) -> bool:
    """Whether the code could rebind any name behind the scan's back (then scan it all)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _INDIRECT_BINDERS | {"__main__"} and \
                id(node) not in ctx.inert:
            return True
        if isinstance(node, ast.Call) and id(node) in ctx.risky:
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("setattr", "delattr") and node.args and \
                _module_like(node.args[0], ctx.objects):
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


def _uses(node: ast.AST, lines: list[str], ctx: _Context, names: frozenset[str]
          ) -> list[Finding]:
    found: list[Finding] = []
    names_re = _names_re(names)

    def add(name: str, sub: ast.AST) -> None:
        line = getattr(sub, "lineno", 0)
        text = lines[line - 1].strip() if 0 < line <= len(lines) else name
        found.append(Finding(name, line, text[:120]))

    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in names:
            add(sub.attr, sub)
        elif isinstance(sub, ast.Attribute) and sub.attr in ("__dict__", "__getattribute__",
                                                             "__getattr__"):
            add(f"{sub.attr} (a look-up by computed name)", sub)
        elif isinstance(sub, ast.Name) and sub.id in names:
            add(sub.id, sub)
        elif isinstance(sub, ast.alias) and sub.name.split(".")[-1] in names:
            add(sub.name.split(".")[-1], node)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            if names_re is None:
                continue
            match = names_re.search(sub.value)
            if match and sub.value.strip() == match.group(0):
                add(match.group(0), sub)
        elif isinstance(sub, ast.Call):
            func = sub.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else None)
            if name in _NAMESPACE_CALLS and id(sub) not in ctx.risky or id(sub) in ctx.inert:
                continue  # reading a namespace or evaluating "1 + 2" rebinds nothing
            if name == "getattr" and sub.args and not _module_like(sub.args[0], ctx.objects):
                continue  # an attribute of the student's own object
            if name in INDIRECT_CALLS:
                literal = all(isinstance(a, ast.Constant) for a in sub.args[1:2])
                if name != "getattr" or not literal:
                    add(f"{name}() with a computed name" if name == "getattr" else f"{name}()",
                        sub)
    return found


def scan(source: str, entry: str | None = None, *, rule: ForbiddenApi) -> list[Finding]:
    """Find uses of ``rule``'s forbidden names in the code ``entry`` depends on.

    Args:
        source: the student's code (all non-test code cells, joined).
        entry: the name of the exercise's function; ``None`` scans everything.
        rule: the course's forbidden-API rule for the exercise (its ``names``).

    Returns:
        The findings, in source order; ``[]`` when the code is clean. Cells that do not
        parse are left out (they cannot run).
    """
    return list(_scan(source, entry, frozenset(rule.names)))


@functools.lru_cache(maxsize=16)
def _analysis(source: str) -> tuple[ast.Module, list[str], dict[str, list[ast.AST]], _Context,
                                    bool]:
    """What every scan of ``source`` needs, whatever its entry: the parsed cells, the lines,
    the module-level bindings, the context and whether names are rebound indirectly. One
    tuple, so the context's node ids always refer to the tree beside them."""
    tree, lines, _ = _parse_cells(source)
    ctx = _context(tree)
    return tree, lines, _top_level(tree), ctx, _rebinds_indirectly(tree, ctx)


@functools.lru_cache(maxsize=64)
def _scan(source: str, entry: str | None, names: frozenset[str]) -> tuple[Finding, ...]:
    """:func:`scan`, once per (source, entry, names): the judge scans the same notebook for
    each of its checks."""
    tree, lines, bound, ctx, indirect = _analysis(source)
    if entry is None or entry not in bound or indirect:
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
        for finding in _uses(node, lines, ctx, names):
            findings.setdefault((finding.line, finding.name), finding)
    return tuple(sorted(findings.values(), key=lambda f: (f.line, f.name)))


# ---------------------------------------------------------------------------------------------
# runtime tripwires (run in the student's process)

def _resolve(path: str) -> Any:
    """The module or class at dotted ``path`` ("torch.nn.Conv2d"), or None if it is not there.

    Starts from the longest prefix already imported, else imports the top-level package."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        obj = sys.modules.get(".".join(parts[:i]))
        if obj is not None:
            break
    else:
        try:
            obj, i = importlib.import_module(parts[0]), 1
        except ImportError:
            return None
    for part in parts[i:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _tripwire_targets(rule: ForbiddenApi) -> list[tuple[Any, str, str]]:
    """``(owner, attribute, label)`` of every call ``rule``'s tripwires wrap, in order."""
    targets: list[tuple[Any, str, str]] = []
    for wire in rule.tripwires:
        owner = _resolve(wire.owner)
        if owner is None:
            continue
        if wire.names is None:
            for name in sorted(rule.names):
                if callable(getattr(owner, name, None)) and not isinstance(
                    getattr(owner, name), type
                ):
                    targets.append((owner, name, wire.label.format(owner=wire.owner, name=name)))
        else:
            targets += [(owner, name, wire.label.format(owner=wire.owner, name=name))
                        for name in wire.names]
    return targets


_MISSING = object()


@contextlib.contextmanager
def tripwires(rule: ForbiddenApi) -> Iterator[set[str]]:
    """Record every call ``rule``'s tripwires watch made inside the ``with`` block.

    Yields the set that fills with the tripwires' labels, such as
    ``"torch.nn.functional.conv2d"``. The real functions still run, so the student's answer
    is computed as usual; everything is put back when the block ends.
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
        for owner, name, label in _tripwire_targets(rule):
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
# tamper scan: code that could forge a record, skip a graded cell or hide a forbidden call
#
# The grader does not rely on this scan: judging happens in the grader's process, records are
# validated, the staged runtime holds no reference or judge, and the interpreter is restored
# before every test cell. What is left for code in the student's process is listed here, and
# only that: a finding sends the notebook to review (needs_manual_grade), it never zeroes it.

#: The probe's and the worker's internals: touching them can only mean forging a record.
PROBE_INTERNALS: frozenset[str] = frozenset(
    {"_sink", "set_sink", "_emit", "_CHANNEL", "set_seed", "_seed", "_judge_here",
     "_Pristine", "_Assembler"}
)
#: Attributes that reach a running frame, its variables, or tracing: the probe's own state
#: while it calls the student's function.
FRAME_ATTRS: frozenset[str] = frozenset(
    {"settrace", "setprofile", "_getframe", "_current_frames", "f_back", "f_globals",
     "f_locals", "f_builtins", "tb_frame", "gi_frame", "cr_frame", "ag_frame",
     "__globals__", "__code__", "__closure__", "__defaults__", "__kwdefaults__",
     "__builtins__", "__subclasses__", "get_objects", "get_referrers", "get_referents"}
)
#: ``inspect`` functions that return live frames (``inspect.signature`` and the like are fine).
INSPECT_FRAMES: frozenset[str] = frozenset(
    {"currentframe", "stack", "getouterframes", "getinnerframes", "trace"}
)
#: IPython's input pipeline and cell execution: what could rewrite or skip a hidden cell.
PIPELINE_ATTRS: frozenset[str] = frozenset(
    {"input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
     "ast_transformers", "register_cell_magic", "register_line_magic",
     "register_magic_function", "register_magics", "set_custom_exc", "run_cell",
     "run_ast_nodes", "run_code", "transform_cell"}
)
#: os/posix functions that write to a raw file descriptor (the worker's channel is one).
RAW_FD_CALLS: frozenset[str] = frozenset(
    {"write", "writev", "pwrite", "pwritev", "fdopen", "dup", "dup2", "sendfile", "splice"}
)
#: Modules whose functions the probe, the tripwires or the worker's record encoding use:
#: assigning to their attributes (monkeypatching) could change a record or hide a call.
GUARDED_MODULES: frozenset[str] = frozenset(
    {"torch", "numpy", "scipy", "grader", "builtins", "sys", "os", "posix", "io", "_io",
     "json", "math", "inspect", "contextlib", "IPython", "ipykernel", "traitlets"}
)
#: Attribute paths under a guarded module that are settings, not functions (assigning them is
#: an ordinary habit: ``torch.backends.cudnn.deterministic = True``, ``sys.stdout = ...``).
SETTING_ATTRS: frozenset[str] = frozenset(
    {"backends", "stdout", "stderr", "stdin", "path", "ps1", "ps2", "displayhook",
     "excepthook", "dont_write_bytecode", "tracebacklimit", "environ"}
)
#: Modules that change arbitrary memory.
MEMORY_MODULES: frozenset[str] = frozenset({"ctypes", "_ctypes", "cffi"})
#: Magics that run code the scans cannot read, or rename magics.
CODE_MAGICS: frozenset[str] = frozenset(
    {"run", "load", "macro", "rerun", "recall", "edit", "alias_magic"}
)
#: IPython extensions students load (anything else is looked at).
KNOWN_EXTENSIONS: frozenset[str] = frozenset(
    {"autoreload", "line_profiler", "memory_profiler", "watermark", "tensorboard",
     "lab_black", "nb_black", "jupyter_black", "rpy2.ipython", "sql", "cython",
     "google.colab.data_table", "pyinstrument", "snakeviz", "ipython_autotime", "autotime"}
)
_RAW_FD_PATH = re.compile(r"/proc/[^/\s]+/(?:fd|mem)\b|/dev/fd\b")
_MAGIC_RE = re.compile(r"\s*(%{1,2})\s*(\w+)\s*(.*)")


def _magic_findings(source: str) -> list[tuple[int, int, str, str]]:
    """(cell, line in cell, finding, text) for each magic that runs unseen code."""
    found = []
    for number, cell in enumerate(source.split("\x00")):
        for line_no, line in enumerate(cell.strip("\n").splitlines(), 1):
            magic = _MAGIC_RE.match(line)
            if not magic:
                continue
            name, arg = magic.group(2), magic.group(3).strip()
            what = None
            if name in CODE_MAGICS:
                what = f"%{name} runs code the grader cannot read"
            elif name == "writefile" and arg.split()[-1:] and arg.split()[-1].endswith(".py"):
                what = "%%writefile writes a Python module the grader cannot read"
            elif name == "load_ext" and arg and arg.split()[0] not in KNOWN_EXTENSIONS:
                what = f"%load_ext of an unknown extension ({arg.split()[0]})"
            if what:
                found.append((number, line_no, what, line.strip()[:120]))
    return found


def _imported_roots(tree: ast.Module) -> dict[str, str]:
    """Each name bound by an import, mapped to the top-level module it comes from."""
    roots: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                roots[(alias.asname or alias.name).split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                roots[alias.asname or alias.name] = node.module.split(".")[0]
    return roots


def _chain(node: ast.AST) -> tuple[str | None, list[str]]:
    """``a.b.c`` as ("a", ["b", "c"]); the root is None when it is not a plain name."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.insert(0, node.attr)
        node = node.value
    while isinstance(node, ast.Subscript):  # torch.__dict__["x"], sys.modules["grader"]
        node = node.value
        while isinstance(node, ast.Attribute):
            attrs.insert(0, node.attr)
            node = node.value
    return (node.id if isinstance(node, ast.Name) else None), attrs


class _TamperVisitor(ast.NodeVisitor):
    """Collects (node, finding) pairs for :func:`tamper_scan`."""

    def __init__(self, roots: dict[str, str]) -> None:
        self.roots = roots
        self.found: list[tuple[ast.AST, str]] = []
        self.guarded_aliases: set[str] = set()

    def add(self, node: ast.AST, what: str) -> None:
        self.found.append((node, what))

    def guarded(self, root: str | None) -> bool:
        return root is not None and (self.roots.get(root) in GUARDED_MODULES
                                     or root in self.guarded_aliases)

    def root_module(self, root: str | None) -> str | None:
        return self.roots.get(root or "")

    # imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module(node, alias.name, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            self.check_module(node, module, alias.name)

    def check_module(self, node: ast.AST, module: str, name: str | None) -> None:
        top = module.split(".")[0]
        if top in MEMORY_MODULES:
            self.add(node, f"import {module} (it can change the grader's memory)")
        elif top == "grader" and (module != "grader" or (
                name is not None and not name.startswith("check_"))):
            self.add(node, f"import of the grader's internals ({module}"
                     f"{'.' + name if name else ''})")
        elif name is not None and top in ("os", "posix") and name in RAW_FD_CALLS:
            self.add(node, f"{module}.{name} writes to a raw file descriptor")
        elif name is not None and top in ("io", "_io") and name == "FileIO":
            self.add(node, "io.FileIO opens a raw file descriptor")
        elif name is not None and top == "sys" and name in ("settrace", "setprofile",
                                                             "_getframe", "modules"):
            self.add(node, f"sys.{name} (frames, tracing or loaded modules)")
        elif name is not None and (name in FRAME_ATTRS or name in PROBE_INTERNALS or (
                top == "inspect" and name in INSPECT_FRAMES)):
            self.add(node, f"{module}.{name} reaches frames or the grader's state")

    # attributes and names
    def visit_Attribute(self, node: ast.Attribute) -> None:
        root, attrs = _chain(node)
        module = self.root_module(root)
        attr = node.attr
        if attr in PROBE_INTERNALS:
            self.add(node, f".{attr} belongs to the grader's probe")
        elif attr in FRAME_ATTRS:
            self.add(node, f".{attr} reaches frames, tracing or live objects")
        elif attr in PIPELINE_ATTRS:
            self.add(node, f".{attr} changes how IPython runs cells")
        elif module == "inspect" and attr in INSPECT_FRAMES:
            self.add(node, f"inspect.{attr} returns live frames")
        elif module in ("os", "posix") and attr in RAW_FD_CALLS:
            self.add(node, f"os.{attr} writes to a raw file descriptor")
        elif module in ("io", "_io") and attr == "FileIO":
            self.add(node, "io.FileIO opens a raw file descriptor")
        elif module == "sys" and attr == "monitoring":
            self.add(node, "sys.monitoring traces running code")
        elif module == "socket" and attr == "fromfd":
            self.add(node, "socket.fromfd opens a raw file descriptor")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self.add(node, "__builtins__ (the interpreter's own functions)")
        elif node.id in ("FileIO",) and self.roots.get("FileIO") in ("io", "_io"):
            self.add(node, "io.FileIO opens a raw file descriptor")

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _RAW_FD_PATH.search(node.value):
            self.add(node, f"the path {node.value[:40]!r} reaches raw file descriptors or memory")
        elif isinstance(node.value, str) and re.fullmatch(r"grader(\.\w+)+", node.value):
            self.add(node, f"the name {node.value!r} of a grader module")

    # calls
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if name in ("setattr", "delattr") and node.args:
            root, attrs = _chain(node.args[0])
            if self.guarded(root) and not (set(attrs) & SETTING_ATTRS):
                self.add(node, f"{name}() on {self.root_module(root) or root}: it replaces a "
                         "function the grader relies on")
        if name == "open" and node.args and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, int):
            self.add(node, "open() of a raw file descriptor")
        if name == "open" and any(k.arg == "closefd" for k in node.keywords):
            self.add(node, "open(..., closefd=...) of a raw file descriptor")
        if name == "socket" or (isinstance(func, ast.Attribute) and func.attr == "socket"):
            if any(k.arg == "fileno" for k in node.keywords):
                self.add(node, "socket(fileno=...) opens a raw file descriptor")
        if isinstance(func, ast.Attribute) and func.attr in (
                "update", "pop", "setdefault", "clear", "popitem", "__setitem__",
                "__delitem__", "insert", "append", "extend", "remove"):
            root, attrs = _chain(func.value)
            if self.root_module(root) == "sys" and attrs[-1:] in (["modules"], ["meta_path"],
                                                                   ["path_hooks"]):
                self.add(node, f"sys.{attrs[-1]}.{func.attr}() changes how modules load")
            elif self.guarded(root) and attrs[-1:] == ["__dict__"]:
                self.add(node, f"{root}.__dict__.{func.attr}() replaces a module's functions")
        self.generic_visit(node)

    # assignments (monkeypatching)
    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.check_target(node, target)
        if isinstance(node.value, ast.Attribute | ast.Name):
            root, _ = _chain(node.value)
            if self.guarded(root):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.guarded_aliases.add(target.id)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.check_target(node, node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.check_target(node, node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.check_target(node, target)
        self.generic_visit(node)

    def check_target(self, node: ast.AST, target: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for item in target.elts:
                self.check_target(node, item)
            return
        if not isinstance(target, ast.Attribute | ast.Subscript):
            return
        root, attrs = _chain(target)
        if root is None and isinstance(target, ast.Subscript):
            call = target.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and \
                    call.func.id in ("vars", "globals") and call.args:
                root, attrs = _chain(call.args[0])
                attrs = [*attrs, "__dict__"]
        if not self.guarded(root):
            return
        module = self.root_module(root) or root
        if module == "sys" and attrs[:1] == ["modules"]:
            self.add(node, "an entry of sys.modules is replaced")
        elif isinstance(target, ast.Subscript) and "__dict__" not in attrs and \
                attrs[-1:] != ["modules"]:
            return  # an item of a module-level container (os.environ[...], rcParams[...])
        elif attrs and not (set(attrs) & SETTING_ATTRS):
            self.add(node, f"{root}.{'.'.join(attrs)} is replaced (monkeypatching "
                     f"{module}, which the grader relies on)")


def tamper_scan(source: str) -> list[Finding]:
    """Find code that could forge a check's record, skip a graded cell or hide a forbidden
    call, given the grader's structural defences (docs/THREAT_MODEL.md, "Tamper scan").

    That is: writing to raw file descriptors (the worker's channel), the probe's internals,
    frames, tracing and live-object walks, IPython's input pipeline, monkeypatching the
    modules the probe and the worker rely on (torch, numpy, json, builtins, sys.modules...),
    ctypes, and magics that run code the grader cannot read. Everything else a notebook
    does (imports of the standard library, IPython.display, help, magics, plotting, strings
    that mention anything) is not a finding. Findings are a reason to review, not a verdict.

    Args:
        source: the student's code cells joined with :func:`join_cells`, as the grader read
            them from the submission.

    Returns:
        The findings in source order; ``line`` counts through the joined cells (see
        :func:`locate` for the cell and its own line).
    """
    tree, lines, starts = _parse_cells(source)
    visitor = _TamperVisitor(_imported_roots(tree))
    visitor.visit(tree)
    found: list[Finding] = []
    for node, what in visitor.found:
        line = getattr(node, "lineno", 0)
        snippet = lines[line - 1].strip() if 0 < line <= len(lines) else what
        found.append(Finding(what, line, snippet[:120]))
    first_line = {number: offset for offset, number in starts}
    for number, line_no, what, text in _magic_findings(source):
        if number in first_line:
            found.append(Finding(what, first_line[number] + line_no, text))
    unique: dict[tuple[int, str], Finding] = {}
    for finding in found:
        unique.setdefault((finding.line, finding.name), finding)
    return sorted(unique.values(), key=lambda f: (f.line, f.name))
