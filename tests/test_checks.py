"""The checks pass every right answer form and fail every known wrong answer with its hint."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pytest
import torch
from refs import MISTAKES, R

import grader
from grader.checks import CHECKS, Verdict, judge
from grader.mistakes import mistake_namespace
from grader.runtime import probe


def run_check(records: dict, name: str, answers: dict[str, Any], source: str | None = None
              ) -> Verdict:
    records.clear()
    getattr(grader, f"check_{name}")(*[answers[a] for a in CHECKS[name].answers])
    return judge(name, records[name], source=source)


def define(source: str, **extra: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"torch": torch, "np": np, "corr2d": R.corr2d,
                                 "corr2d_multi_in": R.corr2d_multi_in, **extra}
    exec(textwrap.dedent(source), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_reference_passes(records: dict, name: str) -> None:
    spec = CHECKS[name]
    answers = {a: getattr(R, a) for a in spec.answers}
    source = R.solution_source(spec.answers[0])
    assert run_check(records, name, answers, source) == Verdict(True)


MISTAKE_CASES = [(check, m.id) for check, mistakes in MISTAKES.items() for m in mistakes]


@pytest.mark.parametrize(("check", "mistake_id"), MISTAKE_CASES)
def test_every_known_mistake_fails_with_its_hint(records: dict, check: str, mistake_id: str
                                                 ) -> None:
    namespace = mistake_namespace(check, mistake_id)
    mistake = next(m for m in MISTAKES[check] if m.id == mistake_id)
    verdict = run_check(records, check, namespace, source=mistake.source)
    assert not verdict.passed
    expected_hint = "forbidden_api" if mistake_id.startswith("uses_") else mistake_id
    assert verdict.hint == expected_hint, verdict.message
    assert "Hint:" in verdict.message
    if expected_hint != "forbidden_api" and CHECKS[check].kind != "value":
        assert "Expected" in verdict.message and "Got" in verdict.message


def test_default_sink_raises_assertion_error_with_the_hint() -> None:
    wrong = mistake_namespace("pool2d_avg", "early_return")["pool2d"]
    with pytest.raises(AssertionError, match="indented inside the loop"):
        grader.check_pool2d_avg(wrong)
    assert grader.check_pool2d_avg(R.pool2d) is None


def test_blank_answer_says_not_written(records: dict) -> None:
    def corr2d(X, K):
        raise NotImplementedError()

    verdict = run_check(records, "corr2d", {"corr2d": corr2d})
    assert verdict.hint == "not_written" and "NotImplementedError" in verdict.message


# -- right answers in other forms must pass ----------------------------------------------------

VECTORISED = {
    "corr2d": """
        def corr2d(X, K):
            h, w = K.shape
            rows = X.shape[0] - h + 1
            cols = X.shape[1] - w + 1
            Y = sum(X[a:a + rows, b:b + cols] * K[a, b] for a in range(h) for b in range(w))
            return Y
    """,
    "corr2d_multi_in": """
        def corr2d_multi_in(X, K):
            out = corr2d(X[0], K[0])
            for c in range(1, X.shape[0]):
                out = out + corr2d(X[c], K[c])
            return out
    """,
    "corr2d_multi_in_out": """
        def corr2d_multi_in_out(X, K):
            outs = []
            for o in range(K.shape[0]):
                outs.append(corr2d_multi_in(X, K[o]))
            return torch.stack(outs)
    """,
    "corr2d_multi_in_out_1x1": """
        def corr2d_multi_in_out_1x1(X, K):
            return torch.einsum('oi,ihw->ohw', K[:, :, 0, 0], X)
    """,
    "pool2d_max": """
        def pool2d(X, pool_size, mode='max'):
            if mode not in ('max', 'avg'):
                raise ValueError(mode)
            p_h, p_w = pool_size
            h, w = X.shape[0] - p_h + 1, X.shape[1] - p_w + 1
            windows = torch.stack([X[a:a + h, b:b + w] for a in range(p_h) for b in range(p_w)])
            return windows.max(dim=0).values if mode == 'max' else windows.mean(dim=0)
    """,
    "conv_output_size": """
        import math
        def conv_output_size(n, k, p=0, s=1):
            if k > n + 2 * p:
                raise ValueError('kernel too large')
            return math.floor((n + 2 * p - k) / s) + 1
    """,
    "receptive_field": """
        def receptive_field(layers):
            r = 1
            for k, s in reversed(layers):
                r = (r - 1) * s + k
            return r
    """,
    "learn_kernel": """
        def learn_kernel(X, Y, kernel_shape, steps=10, lr=3e-2):
            conv2d = torch.nn.Conv2d(1, 1, kernel_size=kernel_shape, bias=False)
            torch.manual_seed(0)
            X = X.reshape((1, 1) + tuple(X.shape))
            Y = Y.reshape((1, 1) + tuple(Y.shape))
            for i in range(10 * steps):
                l = (conv2d(X) - Y) ** 2
                conv2d.zero_grad()
                l.sum().backward()
                conv2d.weight.data[:] -= lr * conv2d.weight.grad
            return conv2d.weight.data  # (1, 1, k_h, k_w): the shape d2l leaves it in
    """,
    "nhwc_to_nchw": """
        def nhwc_to_nchw(x):
            return x.transpose(1, 3).transpose(2, 3).contiguous()
    """,
}


@pytest.mark.parametrize("name", sorted(VECTORISED))
def test_alternative_implementations_pass(records: dict, name: str) -> None:
    source = VECTORISED[name]
    namespace = define(source)
    verdict = run_check(records, name, namespace, source=textwrap.dedent(source))
    assert verdict.passed, verdict.message
    if name == "pool2d_max":
        for other in ("pool2d_avg", "pool2d_mode"):
            assert run_check(records, other, namespace, source=source).passed


def test_numpy_and_float64_results_pass(records: dict) -> None:
    def corr2d(X, K):
        return R.corr2d(X, K).double().numpy()

    assert run_check(records, "corr2d", {"corr2d": corr2d}).passed


def test_warnings_and_stderr_do_not_fail_a_check(records: dict, capfd: Any) -> None:
    import sys
    import warnings

    def corr2d(X, K):
        warnings.warn("student warning", stacklevel=1)
        print("debug output", file=sys.stderr)
        return R.corr2d(X, K)

    assert grader.check_corr2d(corr2d) is None
    assert "debug output" not in capfd.readouterr().err


@pytest.mark.parametrize("shape", [(1, 2, 6, 6), [1, 2, 6, 6], torch.Size([1, 2, 6, 6]),
                                   np.array([1, 2, 6, 6])])
def test_shape_forms(records: dict, shape: Any) -> None:
    verdict = run_check(records, "stride1_output_shape", {"stride1_output_shape": shape})
    assert verdict.passed == (not isinstance(shape, np.ndarray)), verdict.message


def test_channels16_shape_forms(records: dict) -> None:
    mixed = {"input": torch.Size([2, 3, 32, 32]), "output": [2, 16, 32, 32],
             "weight": (16, 3, 3, 3), "bias": (16,)}
    assert run_check(records, "channels16_shapes", {"channels16_shapes": mixed}).passed
    missing = {"input": (2, 3, 32, 32), "output": (2, 16, 32, 32)}
    verdict = run_check(records, "channels16_shapes", {"channels16_shapes": missing})
    assert not verdict.passed and "Missing keys: bias, weight" in verdict.message


@pytest.mark.parametrize("value", [4, 4.0, torch.tensor(4.0), np.float32(4.0), torch.tensor([4.0])])
def test_out_1_0_forms(records: dict, value: Any) -> None:
    assert run_check(records, "out_1_0", {"out_1_0": value}).passed


@pytest.mark.parametrize("window", [[[5, 3], [2, 1]], np.array([[5.0, 3.0], [2.0, 1.0]]),
                                    torch.tensor([[5, 3], [2, 1]]), ((5, 3), (2, 1))])
def test_window_forms(records: dict, window: Any) -> None:
    assert run_check(records, "window_1_0", {"window_1_0": window}).passed


@pytest.mark.parametrize(("window", "hint"), [
    ([[5, 2], [3, 1]], "transposed"),
    ([[3, 0], [1, 3]], "other_window"),
    ([[5, 3]], None),
])
def test_window_other_mistakes(records: dict, window: Any, hint: str | None) -> None:
    verdict = run_check(records, "window_1_0", {"window_1_0": window})
    assert not verdict.passed and verdict.hint == hint


def test_out_1_0_other_position(records: dict) -> None:
    verdict = run_check(records, "out_1_0", {"out_1_0": -2})
    assert not verdict.passed and verdict.hint == "other_position"
    assert "out[0, 0]" in verdict.message


def test_my_kernel_any_other_kernel_passes(records: dict) -> None:
    kernel = np.array([[0.5, -1.0], [2.0, 0.0]])
    image = torch.tensor([[1.0, 2, 0, 0], [5, 3, 0, 4], [2, 1, 3, 1], [0, 2, 1, 2]])
    out = R.corr2d(image, torch.tensor(kernel, dtype=torch.float32)).numpy()
    assert run_check(records, "my_kernel", {"my_kernel": kernel, "my_out": out}).passed
    flipped = R.corr2d(image, torch.flip(torch.tensor(kernel, dtype=torch.float32), (0, 1)))
    verdict = run_check(records, "my_kernel", {"my_kernel": kernel, "my_out": flipped})
    assert not verdict.passed and verdict.hint == "flipped_kernel"


def test_nhwc_reshape_fails_even_when_shape_looks_right(records: dict) -> None:
    def nhwc_to_nchw(x):
        return x.reshape(x.shape[0], x.shape[3], x.shape[1], x.shape[2])

    verdict = run_check(records, "nhwc_to_nchw", {"nhwc_to_nchw": nhwc_to_nchw})
    assert not verdict.passed and verdict.hint == "reshape"
    assert "First difference" in verdict.message  # the shape was right, the values not


def test_input_mutation_does_not_leak_between_cases(records: dict) -> None:
    def corr2d(X, K):
        out = R.corr2d(X, K)
        X.zero_()
        return out

    assert run_check(records, "corr2d", {"corr2d": corr2d}).passed


def test_judge_never_raises_on_garbage() -> None:
    for record in [None, {}, {"items": "x"}, {"items": [1, 2]}, {"items": [{"result": 5}]},
                   {"seed": "x", "items": []}, {"seed": 2**40, "items": []}]:
        for name in ("corr2d", "out_1_0", "channels16_shapes", "nosuch"):
            verdict = judge(name, record)  # type: ignore[arg-type]
            assert verdict.passed is False and verdict.message


def test_forged_record_for_wrong_seed_is_judged_on_the_grader_seed(records: dict) -> None:
    """In the pipeline the grader passes its own seed; a record made for another fails."""
    probe.set_sink(lambda name, record: records.__setitem__(name, record), seed=3)
    try:
        grader.check_corr2d(R.corr2d)
    finally:
        probe.set_sink(lambda name, record: records.__setitem__(name, record), seed=0)
    assert judge("corr2d", records["corr2d"]).passed
    assert not judge("corr2d", records["corr2d"], seed=0).passed


#: Code the tamper scan flags for review (tests/test_review.py): the judge does not look at it,
#: so a right answer beside it still passes and the instructor decides in formgrader.
TAMPERING = [
    "import torch\ntorch.allclose = lambda *a, **k: True",
    "import numpy as np\nnp.testing.assert_allclose = lambda *a, **k: None",
    "import sys\nsys.modules['grader.runtime.probe'] = None",
    "get_ipython().input_transformers_cleanup.append(lambda lines: [])",
    "import os\nos.write(3, b'{}')",
    "f = open(3, 'w')",
    "subs = ().__class__.__base__.__subclasses__()",
]


@pytest.mark.parametrize("code", TAMPERING)
def test_tamper_findings_are_no_verdict(records: dict, code: str) -> None:
    """The judge scores the answers; tamper findings go to review (grader.engine.review)."""
    from grader.engine.forbidden import tamper_scan

    source = code + "\n\n" + R.solution_source("corr2d")
    assert tamper_scan(source), code
    verdict = run_check(records, "corr2d", {"corr2d": R.corr2d}, source=source)
    assert verdict.passed, verdict.message
    verdict = run_check(records, "out_1_0", {"out_1_0": 4.0}, source=source)
    assert verdict.passed, verdict.message


HONEST_EXTRAS = [
    "import matplotlib.pyplot as plt\nplt.imshow([[1, 2], [3, 4]])",
    "import re\npattern = re.compile('a+')",
    "with open('notes.txt', 'w') as fh:\n    fh.write('scratch')",
    "import torch.nn.functional as F\n"
    "print(F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2)))",
    "import math, itertools, functools, time, random, collections\nprint(torch.__version__)",
    "%matplotlib inline\n!echo hi",
]


@pytest.mark.parametrize("code", HONEST_EXTRAS)
def test_honest_scratch_code_is_not_tampering(records: dict, code: str) -> None:
    source = code + "\n\n" + R.solution_source("corr2d")
    assert run_check(records, "corr2d", {"corr2d": R.corr2d}, source=source).passed


def test_a_cell_with_a_syntax_error_does_not_hide_or_taint_the_others(records: dict) -> None:
    from grader.engine.forbidden import join_cells

    broken = 'def corr2d_multi_in_out_1x1(X, K):\n    """A 1x1 convolution."""\n    return (\n'
    honest = join_cells([broken, R.solution_source("corr2d")])
    assert run_check(records, "corr2d", {"corr2d": R.corr2d}, source=honest).passed
    cheat = join_cells([broken, "import torch.nn.functional as F\nfiles = !ls\n"
                        "def corr2d(X, K):\n"
                        "    return F.conv2d(X[None, None], K[None, None])[0, 0]"])
    verdict = run_check(records, "corr2d", {"corr2d": R.corr2d}, source=cheat)
    assert not verdict.passed and verdict.hint in ("forbidden_api", "tampering")


@pytest.mark.parametrize("value,expected", [
    (..., "an ellipsis (`...`), the placeholder of the release"),
    ([[1.0, 2.0], [3.0, 4.0]], "a list of shape (2, 2): [[1, 2], [3, 4]]"),
    ({}, "an empty dict"),
    (None, "None"),
    (object(), "an object"),
])
def test_messages_read_as_english(value: Any, expected: str) -> None:
    """Issue 9: "an ellipsis (`...`)", not "a ellipsis object"; no second "tensor of shape"."""
    from grader.checks import describe

    assert describe(probe.encode(value)) == expected
