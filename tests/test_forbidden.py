"""The from-scratch rule: grader.engine.forbidden.scan, grader.engine.forbidden.tripwires and
the verdicts of grader.checks.judge for answers that use torch's (or numpy's, scipy's)
convolution, pooling or unfold under any name.

Each case runs the way the autograder runs it: the student's code is executed, the hidden
check (``grader.check_<name>``) records the answers through a capturing sink, and
``grader.checks.judge`` gets the record plus the student's source. Every forbidden answer is
otherwise right (its record passes once the forbidden-API findings are removed), so the
``forbidden_api`` verdict is the only thing that stops it.

Bypasses that are not defended yet are ``xfail(strict=True)``: see docs/THREAT_MODEL.md.
"""

from __future__ import annotations

import copy
import inspect
import textwrap
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import grader
from grader import checks
from grader.course import FROM_SCRATCH
from grader.engine import forbidden
from grader.registry import solution_source
from grader.runtime import probe


def scan(source: str, entry: str | None = None) -> list[forbidden.Finding]:
    """grader.engine.forbidden.scan with this course's from-scratch rule."""
    return forbidden.scan(source, entry, rule=FROM_SCRATCH)


CONV = "X[None, None], K[None, None]"  # the argument pattern every conv variant uses


def src(code: str) -> str:
    return textwrap.dedent(code).strip() + "\n"


def record_of(check: str, fn: Any) -> dict:
    """What the hidden cell ``check_<check>(fn)`` records (captured, not judged)."""
    got: list[tuple[str, dict]] = []
    probe.set_sink(lambda name, record: got.append((name, record)))
    try:
        getattr(grader, f"check_{check}")(fn)
    finally:
        probe.set_sink(None)
    assert [name for name, _ in got] == [check]
    return got[0][1]


#: judge(..., tamper_scan=False) where the grader has a tamper scan: these tests are about the
#: from-scratch rule; test_indirect_access_is_also_tampering covers the two together.
_NO_TAMPER = ({"tamper_scan": False}
              if "tamper_scan" in inspect.signature(checks.judge).parameters else {})


def run_student(code: str, check: str = "corr2d", source: bool = True,
                tamper: bool = False) -> checks.Verdict:
    """Execute ``code`` as the student's notebook, run the check, judge it as the parent does."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, "<student>", "exec"), namespace)  # noqa: S102 - test corpus
    name = checks.CHECKS[check].answers[0]
    record = record_of(check, namespace[name])
    return checks.judge(check, record, source=code if source else None,
                        **({} if tamper else _NO_TAMPER))


def clean_record_passes(code: str, check: str = "corr2d") -> bool:
    """Whether the answer is right once the forbidden-API findings are stripped."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, "<student>", "exec"), namespace)  # noqa: S102
    record = copy.deepcopy(record_of(check, namespace[checks.CHECKS[check].answers[0]]))
    for item in record["items"]:
        item["forbidden"] = []
    return checks.judge(check, record).passed


def names(found: list[forbidden.Finding]) -> set[str]:
    return {f.name for f in found}


# ---------------------------------------------------------------------------------------------
# the corpus: each is a full student notebook (cells joined) that gets the right numbers

HONEST = "import torch\n\n" + solution_source("corr2d")

HONEST_WITH_SCRATCH = HONEST + src("""
    # a scratch cell: compare with torch (not used by corr2d)
    import torch.nn.functional as F
    X0, K0 = torch.randn(5, 6), torch.randn(2, 3)
    print(torch.allclose(corr2d(X0, K0), F.conv2d(X0[None, None], K0[None, None])[0, 0]))
    conv = F.conv2d
    pooled = torch.nn.MaxPool2d(2)(X0[None, None])
""")

HONEST_POOL = "import torch\n\n" + solution_source("pool2d")

FORBIDDEN_CORR2D: dict[str, str] = {
    "plain_F_conv2d": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return F.conv2d({CONV})[0, 0]
    """,
    "alias_G": f"""
        import torch.nn.functional as G
        def corr2d(X, K):
            return G.conv2d({CONV})[0, 0]
    """,
    "from_import_as": f"""
        from torch.nn.functional import conv2d as c
        def corr2d(X, K):
            return c({CONV})[0, 0]
    """,
    "module_level_alias": f"""
        import torch.nn.functional as F
        c = F.conv2d
        def corr2d(X, K):
            return c({CONV})[0, 0]
    """,
    "helper_function": f"""
        import torch.nn.functional as F
        def helper(X, K):
            return F.conv2d({CONV})[0, 0]
        def corr2d(X, K):
            return helper(X, K)
    """,
    "helper_of_helper": f"""
        import torch
        def inner(X, K):
            return torch.nn.functional.conv2d({CONV})
        def outer(X, K):
            return inner(X, K)[0, 0]
        def corr2d(X, K):
            return outer(X, K)
    """,
    "torch_conv2d": f"""
        import torch
        def corr2d(X, K):
            return torch.conv2d({CONV})[0, 0]
    """,
    "getattr_literal": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return getattr(F, "conv2d")({CONV})[0, 0]
    """,
    "getattr_computed": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return getattr(F, "con" + "v2d")({CONV})[0, 0]
    """,
    "getattr_computed_module_level": f"""
        import torch.nn.functional as F
        name = "con" + "v2d"
        def corr2d(X, K):
            return getattr(F, name)({CONV})[0, 0]
    """,
    "eval": f"""
        def corr2d(X, K):
            return eval("__import__('torch').nn.functional.con" + "v2d")({CONV})[0, 0]
    """,
    "exec": f"""
        def corr2d(X, K):
            ns = {{}}
            exec("import torch.nn.functional as F; r = F.con" + "v2d", ns)
            return ns["r"]({CONV})[0, 0]
    """,
    "dunder_import": f"""
        def corr2d(X, K):
            F = __import__("torch.nn.functional", fromlist=["x"])
            return getattr(F, "c" + "onv2d")({CONV})[0, 0]
    """,
    "importlib": f"""
        import importlib
        def corr2d(X, K):
            F = importlib.import_module("torch.nn." + "functional")
            return vars(F)["conv" + "2d"]({CONV})[0, 0]
    """,
    "operator_attrgetter": f"""
        import operator
        import torch.nn.functional as F
        def corr2d(X, K):
            return operator.attrgetter("con" + "v2d")(F)({CONV})[0, 0]
    """,
    "default_argument": f"""
        import torch.nn.functional as F
        def corr2d(X, K, c=F.conv2d):
            return c({CONV})[0, 0]
    """,
    "decorator": f"""
        import torch.nn.functional as F
        def wrap(f):
            return lambda X, K: F.conv2d({CONV})[0, 0]
        @wrap
        def corr2d(X, K):
            return None
    """,
    "callable_object": f"""
        import torch.nn.functional as F
        class C:
            def __call__(self, X, K):
                return F.conv2d({CONV})[0, 0]
        corr2d = C()
    """,
    "nn_Conv2d_module": """
        import torch
        def corr2d(X, K):
            layer = torch.nn.Conv2d(1, 1, tuple(K.shape), bias=False)
            with torch.no_grad():
                layer.weight[:] = K
                return layer(X[None, None])[0, 0]
    """,
    "tensor_unfold": """
        def corr2d(X, K):
            h, w = K.shape
            return (X.unfold(0, h, 1).unfold(1, w, 1) * K).sum((-1, -2))
    """,
    "torch_as_strided": """
        import torch
        def corr2d(X, K):
            X = X.contiguous()
            h, w = K.shape
            n_h, n_w = X.shape
            view = torch.as_strided(X, (n_h - h + 1, n_w - w + 1, h, w), (n_w, 1, n_w, 1))
            return (view * K).sum((-1, -2))
    """,
    "tensor_as_strided": """
        def corr2d(X, K):
            X = X.contiguous()
            h, w = K.shape
            n_h, n_w = X.shape
            view = X.as_strided((n_h - h + 1, n_w - w + 1, h, w), (n_w, 1, n_w, 1))
            return (view * K).sum((-1, -2))
    """,
    "F_unfold": """
        import torch.nn.functional as F
        def corr2d(X, K):
            h, w = K.shape
            cols = F.unfold(X[None, None], (h, w))
            return (K.reshape(1, -1) @ cols[0]).reshape(X.shape[0] - h + 1, X.shape[1] - w + 1)
    """,
    "numpy_sliding_window_view": """
        import torch
        from numpy.lib.stride_tricks import sliding_window_view
        def corr2d(X, K):
            windows = sliding_window_view(X.numpy(), tuple(K.shape))
            return torch.tensor((windows * K.numpy()).sum((-1, -2)))
    """,
    "aten_convolution": f"""
        import torch
        def corr2d(X, K):
            return torch.ops.aten.convolution({CONV}, None, [1, 1], [0, 0], [1, 1], False,
                                              [0, 0], 1)[0, 0]
    """,
    "aten_getattr": f"""
        import torch
        def corr2d(X, K):
            op = getattr(torch.ops.aten, "convolution")
            return op({CONV}, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)[0, 0]
    """,
}

#: Each forbidden variant and the name the static scan must report.
EXPECTED_FINDING: dict[str, str] = {
    "plain_F_conv2d": "conv2d",
    "alias_G": "conv2d",
    "from_import_as": "conv2d",
    "module_level_alias": "conv2d",
    "helper_function": "conv2d",
    "helper_of_helper": "conv2d",
    "torch_conv2d": "conv2d",
    "getattr_literal": "conv2d",
    "getattr_computed": "getattr() with a computed name",
    "getattr_computed_module_level": "getattr() with a computed name",
    "eval": "eval()",
    "exec": "exec()",
    "dunder_import": "__import__()",
    "importlib": "import_module()",
    "operator_attrgetter": "attrgetter()",
    "default_argument": "conv2d",
    "decorator": "conv2d",
    "callable_object": "conv2d",
    "nn_Conv2d_module": "Conv2d",
    "tensor_unfold": "unfold",
    "torch_as_strided": "as_strided",
    "tensor_as_strided": "as_strided",
    "F_unfold": "unfold",
    "numpy_sliding_window_view": "sliding_window_view",
    "aten_convolution": "convolution",
    "aten_getattr": "convolution",
}

#: Variants the runtime tripwires see on their own (torch calls through patched attributes).
TRIPWIRE_SEES: dict[str, str] = {
    "plain_F_conv2d": "conv2d",
    "alias_G": "conv2d",
    "helper_function": "conv2d",
    "torch_conv2d": "conv2d",
    "getattr_literal": "conv2d",
    "getattr_computed": "conv2d",
    "eval": "conv2d",
    "exec": "conv2d",
    "dunder_import": "conv2d",
    "importlib": "conv2d",
    "operator_attrgetter": "conv2d",
    "decorator": "conv2d",
    "callable_object": "conv2d",
    "nn_Conv2d_module": "Conv2d",
    "tensor_unfold": "unfold",
    "torch_as_strided": "as_strided",
    "tensor_as_strided": "as_strided",
    "F_unfold": "unfold",
}
# A name bound before the check starts (``c = F.conv2d``, ``from ... import conv2d as c``,
# a default argument) holds the unwrapped function: the tripwires cannot see it. The static
# scan is what catches those, in the grader's own process.


@pytest.mark.parametrize("variant", sorted(FORBIDDEN_CORR2D))
def test_scan_finds_forbidden_use(variant: str) -> None:
    """The static scan, following corr2d into what it uses, reports the forbidden name."""
    found = scan(src(FORBIDDEN_CORR2D[variant]), "corr2d")
    assert EXPECTED_FINDING[variant] in names(found), (variant, found)
    for finding in found:
        assert finding.line >= 1 and finding.text
        assert finding.name in finding.describe()


@pytest.mark.parametrize("variant", sorted(set(FORBIDDEN_CORR2D) - {"numpy_sliding_window_view"}))
def test_forbidden_answer_is_right_but_judged_forbidden(variant: str) -> None:
    """Right numbers, forbidden means: the verdict fails with the forbidden_api hint."""
    code = src(FORBIDDEN_CORR2D[variant])
    assert clean_record_passes(code), f"{variant}: the corpus entry itself is wrong"
    verdict = run_student(code)
    assert not verdict.passed
    assert verdict.hint == "forbidden_api"
    assert "must be written from scratch" in verdict.message


INDIRECT = ("eval", "exec", "dunder_import", "importlib")


@pytest.mark.parametrize("variant", INDIRECT)
def test_indirect_access_is_also_tampering(variant: str) -> None:
    """With the tamper scan on (as in the sandboxed pipeline), indirect access fails as well,
    as tampering or as a forbidden use: never as a pass."""
    verdict = run_student(src(FORBIDDEN_CORR2D[variant]), tamper=True)
    assert not verdict.passed
    assert verdict.hint in ("tampering", "forbidden_api")
    assert "line " in verdict.message


def test_numpy_sliding_window_view_judged_forbidden() -> None:
    """numpy has no tripwire; the static scan alone fails the answer."""
    code = src(FORBIDDEN_CORR2D["numpy_sliding_window_view"])
    verdict = run_student(code)
    assert not verdict.passed and verdict.hint == "forbidden_api"
    assert "sliding_window_view" in verdict.message


@pytest.mark.parametrize("variant", sorted(TRIPWIRE_SEES))
def test_tripwires_alone_catch_runtime_calls(variant: str) -> None:
    """Without the source (as in plain Jupyter), the runtime tripwires still fail the answer."""
    verdict = run_student(src(FORBIDDEN_CORR2D[variant]), source=False)
    assert not verdict.passed, variant
    assert verdict.hint == "forbidden_api"
    assert TRIPWIRE_SEES[variant] in verdict.message
    assert "while running" in verdict.message


def test_scipy_correlate2d_is_found_statically() -> None:
    """scipy is not installed here; the static scan reports it by name all the same."""
    code = src("""
        import scipy.signal
        import torch
        def corr2d(X, K):
            return torch.tensor(scipy.signal.correlate2d(X.numpy(), K.numpy(), mode="valid"))
    """)
    assert "correlate2d" in names(scan(code, "corr2d"))
    alias = src("""
        from scipy import signal as s
        import torch
        def corr2d(X, K):
            return torch.tensor(s.correlate(X.numpy(), K.numpy(), mode="valid"))
    """)
    assert "correlate" in names(scan(alias, "corr2d"))


def test_max_pool_module_and_functional_are_forbidden() -> None:
    """torch.nn.MaxPool2d / AvgPool2d / F.max_pool2d in pool2d fail pool2d_max and _avg."""
    module = src("""
        import torch
        def pool2d(X, pool_size, mode="max"):
            if mode == "max":
                layer = torch.nn.MaxPool2d(pool_size, stride=1)
            elif mode == "avg":
                layer = torch.nn.AvgPool2d(pool_size, stride=1)
            else:
                raise ValueError(mode)
            return layer(X[None, None])[0, 0]
    """)
    functional = src("""
        from torch.nn import functional as P
        def pool2d(X, pool_size, mode="max"):
            if mode not in ("max", "avg"):
                raise ValueError(mode)
            f = P.max_pool2d if mode == "max" else P.avg_pool2d
            return f(X[None, None], pool_size, stride=1)[0, 0]
    """)
    assert {"MaxPool2d", "AvgPool2d"} <= names(scan(module, "pool2d"))
    assert {"max_pool2d", "avg_pool2d"} <= names(scan(functional, "pool2d"))
    for code in (module, functional):
        for check in ("pool2d_max", "pool2d_avg"):
            assert clean_record_passes(code, check)
            verdict = run_student(code, check)
            assert not verdict.passed and verdict.hint == "forbidden_api", (check, verdict)
    # the tripwires see the module's forward and the functional call on their own
    assert run_student(module, "pool2d_max", source=False).hint == "forbidden_api"
    assert run_student(functional, "pool2d_avg", source=False).hint == "forbidden_api"


def test_forbidden_does_not_apply_to_checks_that_allow_torch() -> None:
    """conv_output_size has no from-scratch rule: a scan finding does not fail it."""
    code = src("""
        import torch
        def conv_output_size(n, k, p=0, s=1):
            x = torch.zeros(1, 1, n, n)
            try:
                return torch.nn.functional.conv2d(x, torch.zeros(1, 1, k, k), padding=p,
                                                  stride=s).shape[-1]
            except RuntimeError as exc:
                raise ValueError(str(exc)) from None
    """)
    assert run_student(code, "conv_output_size").passed


# ---------------------------------------------------------------------------------------------
# no false positives


def test_honest_loop_solution_passes() -> None:
    assert scan(HONEST, "corr2d") == []
    verdict = run_student(HONEST)
    assert verdict.passed, verdict.message


def test_honest_solution_with_scratch_cell_passes() -> None:
    """A scratch cell that compares with F.conv2d, not used by corr2d, costs nothing."""
    assert scan(HONEST_WITH_SCRATCH, "corr2d") == []
    assert "conv2d" in names(scan(HONEST_WITH_SCRATCH))  # whole-notebook scan sees it
    verdict = run_student(HONEST_WITH_SCRATCH)
    assert verdict.passed, verdict.message


def test_honest_pool_passes_every_pool_check() -> None:
    for check in ("pool2d_max", "pool2d_avg", "pool2d_mode"):
        verdict = run_student(HONEST_POOL, check)
        assert verdict.passed, (check, verdict.message)


def test_words_in_comments_strings_and_names_are_not_uses() -> None:
    """`unfold` in a comment or docstring, or a variable called `windows`, is fine."""
    code = src('''
        import torch

        def corr2d(X, K):
            """Like torch's conv2d, but by hand (no unfold, no as_strided)."""
            # F.conv2d would do this in one call; we slide the window ourselves
            h, w = K.shape
            windows = [[X[i:i + h, j:j + w] for j in range(X.shape[1] - w + 1)]
                       for i in range(X.shape[0] - h + 1)]
            return torch.stack([torch.stack([(win * K).sum() for win in row])
                                for row in windows])
    ''')
    assert scan(code, "corr2d") == []
    assert run_student(code).passed


def test_magics_and_syntax_errors_do_not_crash_the_scan() -> None:
    code = "%matplotlib inline\n!pip list\n" + HONEST
    assert scan(code, "corr2d") == []
    # A cell that does not parse cannot run in the kernel: nothing of it counts, so the
    # words in it (a docstring saying "convolution") cannot fail the other exercises.
    broken = "def corr2d(X, K)\n    return F.conv2d(X, K)\n"
    assert scan(broken, "corr2d") == []
    both = forbidden.join_cells([broken, "import torch.nn.functional as F\nc = F.conv2d"])
    assert names(scan(both)) == {"conv2d"}


# ---------------------------------------------------------------------------------------------
# the tripwires themselves


def test_tripwires_record_and_restore() -> None:
    """Calls are noted while the block runs; afterwards torch is exactly as before."""
    originals = {
        "F.conv2d": F.conv2d, "torch.conv2d": torch.conv2d,
        "Tensor.unfold": torch.Tensor.unfold, "Tensor.as_strided": torch.Tensor.as_strided,
        "MaxPool2d.forward": torch.nn.MaxPool2d.forward,
        "Conv2d.forward": torch.nn.Conv2d.forward,
    }
    X = torch.arange(16.0).reshape(4, 4)
    with forbidden.tripwires(FROM_SCRATCH) as seen:
        F.conv2d(X[None, None], torch.ones(1, 1, 2, 2))
        X.unfold(0, 2, 1)
        torch.nn.MaxPool2d(2)(X[None, None])
    assert "torch.nn.functional.conv2d" in seen
    assert "Tensor.unfold" in seen
    assert "torch.nn.MaxPool2d" in seen
    now = {
        "F.conv2d": F.conv2d, "torch.conv2d": torch.conv2d,
        "Tensor.unfold": torch.Tensor.unfold, "Tensor.as_strided": torch.Tensor.as_strided,
        "MaxPool2d.forward": torch.nn.MaxPool2d.forward,
        "Conv2d.forward": torch.nn.Conv2d.forward,
    }
    assert now == originals


def test_tripwires_restore_after_an_exception() -> None:
    before = F.conv2d
    with pytest.raises(ZeroDivisionError), forbidden.tripwires(FROM_SCRATCH):
        assert F.conv2d is not before
        1 / 0  # noqa: B018
    assert F.conv2d is before


def test_tripwires_still_compute_the_real_result() -> None:
    X, K = torch.randn(5, 6), torch.randn(2, 3)
    expected = F.conv2d(X[None, None], K[None, None])
    with forbidden.tripwires(FROM_SCRATCH):
        assert torch.equal(F.conv2d(X[None, None], K[None, None]), expected)


def test_probe_leaves_no_tripwire_behind() -> None:
    before = (F.conv2d, torch.Tensor.unfold, torch.nn.MaxPool2d.forward)
    run_student(HONEST)
    run_student(src(FORBIDDEN_CORR2D["tensor_unfold"]))
    assert (F.conv2d, torch.Tensor.unfold, torch.nn.MaxPool2d.forward) == before


# ---------------------------------------------------------------------------------------------
# bypasses found by the attack corpus, now closed: the scan treats __dict__/__getattribute__
# as indirect access, follows walrus and `global` bindings, and scans the whole notebook when
# a name may be rebound behind its back (globals(), setattr, __main__, sys.modules).

BYPASS_STATIC: dict[str, str] = {
    # A computed key into the module's __dict__: no forbidden name, no listed indirect call.
    "dunder_dict_computed": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return F.__dict__["con" + "v2d"]({CONV})[0, 0]
    """,
    # __getattribute__ with a computed name is getattr under another name.
    "getattribute_computed": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return F.__getattribute__("con" + "v2d")({CONV})[0, 0]
    """,
    # Rebinding corr2d with a walrus at module level: the scan does not see the binding.
    "walrus_rebinding": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return None
        (corr2d := lambda X, K: F.conv2d({CONV})[0, 0])
    """,
}


@pytest.mark.parametrize("variant", sorted(BYPASS_STATIC))
def test_scan_bypass_static(variant: str) -> None:
    """The static scan catches these (and the runtime tripwires do too: see below)."""
    assert scan(src(BYPASS_STATIC[variant]), "corr2d") != []


@pytest.mark.parametrize("variant", sorted(BYPASS_STATIC))
def test_tripwires_cover_the_static_gaps(variant: str) -> None:
    """Without tampering, the runtime tripwires catch what the scan missed above."""
    code = src(BYPASS_STATIC[variant])
    assert clean_record_passes(code)
    verdict = run_student(code)
    assert not verdict.passed and verdict.hint == "forbidden_api", verdict


#: A function reference captured before the check runs escapes the tripwires; rebinding the
#: exercise's name in a way the scan does not follow escapes the static scan. Together: full
#: marks with F.conv2d and no tampering with grader at all.
BYPASS_BOTH: dict[str, str] = {
    "globals_subscript": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return None
        _c = F.conv2d
        globals()["corr2d"] = lambda X, K: _c({CONV})[0, 0]
    """,
    "global_in_helper": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return None
        _c = F.conv2d
        def setup():
            global corr2d
            corr2d = lambda X, K: _c({CONV})[0, 0]
        setup()
    """,
    "main_module_attribute": f"""
        import __main__
        import torch.nn.functional as F
        def corr2d(X, K):
            return None
        _c = F.conv2d
        __main__.corr2d = lambda X, K: _c({CONV})[0, 0]
    """,
    "walrus_with_captured": f"""
        import torch.nn.functional as F
        def corr2d(X, K):
            return None
        _c = F.conv2d
        (corr2d := lambda X, K: _c({CONV})[0, 0])
    """,
}


def _run_main(code: str) -> checks.Verdict:
    """Like run_student, but the namespace is a real __main__ module (for `import __main__`)."""
    import sys
    import types

    main = types.ModuleType("__main__")
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = main
    try:
        exec(compile(code, "<student>", "exec"), main.__dict__)  # noqa: S102
        record = record_of("corr2d", main.__dict__["corr2d"])
    finally:
        sys.modules["__main__"] = saved
    return checks.judge("corr2d", record, source=code, **_NO_TAMPER)


@pytest.mark.parametrize("variant", sorted(BYPASS_BOTH))
def test_bypass_both_detectors(variant: str) -> None:
    code = src(BYPASS_BOTH[variant])
    verdict = _run_main(code)
    assert not verdict.passed and verdict.hint == "forbidden_api", verdict


def test_scan_is_cached_per_source_and_entry_and_returns_a_fresh_list() -> None:
    """The judge scans one notebook once per check: the cache must give the same findings for
    each entry, and a caller changing its list must not change the next caller's."""
    from grader.engine import forbidden

    source = forbidden.join_cells([
        "import torch.nn.functional as F",
        "def corr2d(X, K):\n    return F.conv2d(X[None, None], K[None, None])[0, 0]",
        "def pool2d(X):\n    return X.max()",
    ])
    first = scan(source, "corr2d")
    assert [f.name for f in first] == ["conv2d"], first
    first.clear()
    assert [f.name for f in scan(source, "corr2d")] == ["conv2d"]
    assert scan(source, "pool2d") == []
    assert [f.name for f in scan(source)] == ["conv2d"]


# ---------------------------------------------------------------------------------------------
# the rule is the course's: the engine only runs what a declaration says


def test_the_engine_runs_whatever_rule_the_course_declares() -> None:
    """Another course's rule (no relu) is scanned and tripwired the same way; the engine holds
    no list of its own."""
    from grader.runtime.declare import ForbiddenApi, Tripwire

    assert not hasattr(forbidden, "FORBIDDEN_NAMES")
    no_relu = ForbiddenApi(frozenset({"relu"}), (Tripwire("torch.nn.functional"),),
                           "must not use relu", "write max(x, 0) yourself")
    code = src("""
        import torch.nn.functional as F
        def act(x):
            return F.relu(x)
    """)
    assert names(forbidden.scan(code, "act", rule=no_relu)) == {"relu"}
    assert forbidden.scan(code, "act", rule=FROM_SCRATCH) == []
    with forbidden.tripwires(no_relu) as seen:
        F.relu(torch.ones(2))
        F.conv2d(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1))
    assert seen == {"torch.nn.functional.relu"}
    missing = ForbiddenApi(frozenset({"x"}), (Tripwire("no_such_library_here", ("x",)),))
    with forbidden.tripwires(missing) as seen:  # a library that is not installed: no tripwire
        pass
    assert seen == set()


def test_without_a_rule_nothing_is_forbidden() -> None:
    """An exercise declared without a rule records no forbidden calls and gets no
    forbidden_api verdict, whatever it calls."""
    from grader.runtime.declare import Case

    X, K = torch.ones(3, 3), torch.ones(2, 2)
    conv = lambda X, K: F.conv2d(X[None, None], K[None, None])[0, 0]  # noqa: E731
    assert probe.call(conv, Case("x", (X, K)))["forbidden"] == []
    assert probe.call(conv, Case("x", (X, K)), FROM_SCRATCH)["forbidden"] == [
        "torch.nn.functional.conv2d"]
    unruled = [e for e in checks.CHECKS.values() if e.forbidden is None and e.calls_function]
    assert unruled, "the course has exercises without the rule"
    assert all(e.forbidden is FROM_SCRATCH for e in checks.CHECKS.values()
               if e.forbidden is not None)
