"""Judge recorded answers against the reference: a verdict and a hint per check.

:func:`judge` takes what :mod:`grader.probe` recorded in the student's process (plain JSON
data) and compares it with :mod:`grader.reference` on the same cases. It runs in the
grader's own process in the sandboxed pipeline, so nothing the student's code does can
change a comparison. A failed verdict says what was expected, what came back and, when the
answer behaves like a known mistake (:mod:`grader.hints`), the hint for that mistake.

Never staged into the student's worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grader import forbidden, hints, reference
from grader.cases import LAB_IMAGE, Case, cases_for


@dataclass(frozen=True)
class CheckSpec:
    """One graded check.

    Attributes:
        name: the check's name; the test cell's grade_id is ``<name>_tests``.
        answers: the names the student defines that the check reads.
        assignment: the assignment whose notebook holds the check.
        title: how messages name the exercise.
        kind: how results are compared: "tensor", "number", "raises", "kernel" or "value".
        forbid_torch_ops: whether torch's conv/pool/unfold are off limits.
    """

    name: str
    answers: tuple[str, ...]
    assignment: str
    title: str
    kind: str
    forbid_torch_ops: bool = False

    @property
    def grade_id(self) -> str:
        """The grade_id of the test cell that calls this check."""
        return f"{self.name}_tests"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: passed or not, the message and the hint id (or None)."""

    passed: bool
    message: str = ""
    hint: str | None = None


def _spec(name: str, answers: str, assignment: str, title: str, kind: str,
          forbid: bool = False) -> CheckSpec:
    return CheckSpec(name, tuple(answers.split()), assignment, title, kind, forbid)


CHECKS: dict[str, CheckSpec] = {
    spec.name: spec
    for spec in [
        _spec("my_kernel", "my_kernel my_out", "conv_basics", "my_kernel / my_out", "value"),
        _spec("window_1_0", "window_1_0", "conv_basics", "window_1_0", "value"),
        _spec("out_1_0", "out_1_0", "conv_basics", "out_1_0", "value"),
        _spec("stride1_output_shape", "stride1_output_shape", "conv_basics",
              "stride1_output_shape", "value"),
        _spec("channels16_shapes", "channels16_shapes", "conv_basics", "channels16_shapes",
              "value"),
        _spec("nhwc_to_nchw", "nhwc_to_nchw", "conv_basics", "nhwc_to_nchw(x)", "tensor"),
        _spec("corr2d", "corr2d", "channels_pooling", "corr2d(X, K)", "tensor", True),
        _spec("corr2d_multi_in", "corr2d_multi_in", "channels_pooling", "corr2d_multi_in(X, K)",
              "tensor", True),
        _spec("corr2d_multi_in_out", "corr2d_multi_in_out", "channels_pooling",
              "corr2d_multi_in_out(X, K)", "tensor", True),
        _spec("corr2d_multi_in_out_1x1", "corr2d_multi_in_out_1x1", "channels_pooling",
              "corr2d_multi_in_out_1x1(X, K)", "tensor", True),
        _spec("pool2d_max", "pool2d", "channels_pooling", "pool2d(X, pool_size, mode='max')",
              "tensor", True),
        _spec("pool2d_avg", "pool2d", "channels_pooling", "pool2d(X, pool_size, mode='avg')",
              "tensor", True),
        _spec("pool2d_mode", "pool2d", "channels_pooling", "pool2d with an unknown mode",
              "raises", True),
        _spec("conv_output_size", "conv_output_size", "padding_stride",
              "conv_output_size(n, k, p, s)", "number"),
        _spec("corr2d_pad_stride", "corr2d_pad_stride", "padding_stride",
              "corr2d_pad_stride(X, K, padding, stride)", "tensor", True),
        _spec("receptive_field", "receptive_field", "padding_stride", "receptive_field(layers)",
              "number"),
        _spec("conv_params", "conv_params", "padding_stride", "conv_params(c_in, c_out, k, bias)",
              "number"),
        _spec("fc_params", "fc_params", "padding_stride", "fc_params(n_in, n_out, bias)",
              "number"),
        _spec("learn_kernel", "learn_kernel", "padding_stride",
              "learn_kernel(X, Y, kernel_shape)", "kernel"),
    ]
}

#: How close a learned kernel must be to the kernel that made Y (absolute, per weight).
KERNEL_TOLERANCE = 0.1
RTOL, ATOL = 1e-4, 1e-4


# ---------------------------------------------------------------------------------------------
# reading recorded answers


def _finite(x: Any) -> float:
    return float(x)  # also reads the probe's "nan", "inf" and "-inf"


def as_tensor(enc: dict) -> torch.Tensor | None:
    """A float64 tensor from a recorded tensor, array or nested list of numbers, else None."""
    kind = enc.get("type")
    try:
        if kind in ("tensor", "ndarray"):
            if "bool" in str(enc.get("dtype")) or "complex" in str(enc.get("dtype")):
                return None
            data = [_finite(v) for v in enc["data"]]
            return torch.tensor(data, dtype=torch.float64).reshape(enc["shape"])
        if kind in ("list", "tuple"):
            rows = [as_tensor(item) if item.get("type") in ("list", "tuple")
                    else as_number(item) for item in enc["items"]]
            if any(r is None for r in rows) or not rows:
                return None
            if all(isinstance(r, torch.Tensor) for r in rows):
                return torch.stack(rows)  # type: ignore[arg-type]
            if all(isinstance(r, float) for r in rows):
                return torch.tensor(rows, dtype=torch.float64)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
        return None
    return None


def as_number(enc: dict) -> float | None:
    """A float from a recorded int/float or one-element tensor or array, else None."""
    kind = enc.get("type")
    try:
        if kind in ("int", "float"):
            return _finite(enc["value"])
        if kind in ("tensor", "ndarray") and len(enc["data"]) == 1 and "bool" not in enc["dtype"]:
            return _finite(enc["data"][0])
    except (KeyError, TypeError, ValueError):
        return None
    return None


def as_shape(enc: dict) -> tuple[int, ...] | None:
    """A shape from a recorded tuple, list or torch.Size of whole numbers, else None."""
    if enc.get("type") not in ("tuple", "list", "size"):
        return None
    dims = []
    for item in enc.get("items", []):
        value = as_number(item) if item.get("type") in ("int", "float") else None
        if value is None or value != int(value):
            return None
        dims.append(int(value))
    return tuple(dims)


def _fmt_number(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) and abs(x) < 1e15 else f"{x:.4g}"


def _fmt_tensor(t: torch.Tensor) -> str:
    shape = tuple(t.shape)
    if t.numel() <= 36:
        def rows(x: torch.Tensor) -> str:
            if x.dim() == 0:
                return _fmt_number(float(x))
            return "[" + ", ".join(rows(v) for v in x) + "]"
        return f"a tensor of shape {shape}: {rows(t)}"
    return f"a tensor of shape {shape}"


#: How some classes read in a sentence (others are "a <class> object").
_CLASS_WORDS: dict[str, str] = {
    "ellipsis": "an ellipsis (`...`), the placeholder of the release",
    "NoneType": "None",
    "function": "a function",
    "builtin_function_or_method": "a built-in function",
    "method": "a method",
    "module": "a module",
    "type": "a class",
    "generator": "a generator",
    "object": "an object",
}


def _article(word: str) -> str:
    """``word`` with "a" or "an" in front."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _describe_class(name: str) -> str:
    return _CLASS_WORDS.get(name) or f"{_article(name)} object"


def describe(enc: dict) -> str:
    """What came back, in words, for a failure message."""
    kind = enc.get("type")
    if kind == "exception":
        return f"an exception: {enc.get('exc_type')}: {enc.get('message', '')}".rstrip(": ")
    if kind in ("tensor", "ndarray"):
        t = as_tensor(enc)
        label = "a numpy array" if kind == "ndarray" else "a tensor"
        if t is None:
            return f"{label} of dtype {enc.get('dtype')} and shape {tuple(enc.get('shape', []))}"
        return _fmt_tensor(t).replace("a tensor", label, 1)
    if kind == "too_large":
        what = {"ndarray": "numpy array"}.get(str(enc.get("kind")), str(enc.get("kind")))
        return f"a very large {what} of shape {tuple(enc.get('shape', []))}"
    if kind == "none":
        return "None"
    if kind in ("int", "float", "bool", "str"):
        return f"{kind} {enc.get('value')!r}"
    if kind in ("tuple", "list", "size"):
        shape = as_shape(enc)
        if shape is not None:
            return f"{'torch.Size' if kind == 'size' else kind} {shape}"
        t = as_tensor(enc)
        label = "a torch.Size" if kind == "size" else f"a {kind}"
        return _fmt_tensor(t).replace("a tensor", label, 1) if t is not None else label
    if kind == "dict":
        keys = sorted(enc.get("items", {}))
        return "a dict with keys " + ", ".join(keys) if keys else "an empty dict"
    if kind == "not_callable":
        return _describe_class(str(enc.get('class', 'value')))
    return _describe_class(str(enc.get("class", kind)))


# ---------------------------------------------------------------------------------------------
# comparing


def _expected(spec: CheckSpec, case: Case) -> Any:
    fn = getattr(reference, spec.answers[0])
    return fn(*case.args, **case.kwargs)


def _tensor_mismatch(expected: torch.Tensor, enc: dict) -> tuple[str, str | None] | None:
    """None when ``enc`` matches ``expected``; else (detail, generic hint id)."""
    got = as_tensor(enc)
    if got is None:
        if enc.get("type") == "none":
            return "", "returned_none"
        return "", "wrong_type"
    if tuple(got.shape) != tuple(expected.shape):
        return (f"The shape is {tuple(got.shape)}, but it should be "
                f"{tuple(expected.shape)}."), "wrong_shape"
    exp = expected.to(torch.float64)
    close = torch.isclose(got, exp, rtol=RTOL, atol=ATOL)
    if bool(close.all()):
        return None
    index = tuple(int(i) for i in (~close).nonzero()[0])
    return (f"First difference at {list(index)}: expected {_fmt_number(float(exp[index]))}, "
            f"got {_fmt_number(float(got[index]))}."), None


def _number_mismatch(expected: float, enc: dict) -> tuple[str, str | None] | None:
    got = as_number(enc)
    if got is None:
        return "", ("returned_none" if enc.get("type") == "none" else "wrong_type")
    if math.isfinite(got) and abs(got - expected) < 1e-9 * max(1.0, abs(expected)):
        return None
    return "", None


def _raises_mismatch(exc_name: str, enc: dict) -> tuple[str, str | None] | None:
    if enc.get("type") == "exception" and exc_name in enc.get("mro", [enc.get("exc_type")]):
        return None
    return f"It should raise {exc_name}.", None


def _mismatch(spec: CheckSpec, case: Case, enc: dict) -> tuple[str, str, str | None] | None:
    """None when right; else (expected text, detail, generic hint id)."""
    if case.raises:
        found = _raises_mismatch(case.raises, enc)
        return None if found is None else (f"{case.raises} raised", *found)
    if enc.get("type") == "exception":
        return _describe_expected(spec, case), "", "raised"
    if spec.kind == "kernel":
        target = torch.as_tensor(case.target, dtype=torch.float64)
        got = as_tensor(enc)
        if got is not None and got.numel() == target.numel():
            got = got.reshape(target.shape)
            if bool((got - target).abs().max() <= KERNEL_TOLERANCE):
                return None
            return (_fmt_tensor(target) + f" (each weight within {KERNEL_TOLERANCE})",
                    "", None)
        return _fmt_tensor(target), "", "wrong_shape" if got is not None else "wrong_type"
    expected = _expected(spec, case)
    if spec.kind == "number":
        found = _number_mismatch(float(expected), enc)
        return None if found is None else (_fmt_number(float(expected)), *found)
    found = _tensor_mismatch(expected, enc)
    return None if found is None else (_fmt_tensor(expected), *found)


def _describe_expected(spec: CheckSpec, case: Case) -> str:
    if spec.kind == "kernel":
        return _fmt_tensor(torch.as_tensor(case.target))
    expected = _expected(spec, case)
    if isinstance(expected, torch.Tensor):
        return _fmt_tensor(expected)
    return _fmt_number(float(expected))


GENERIC_HINTS: dict[str, str] = {
    "returned_none": "Your function returned None: did you forget `return`?",
    "wrong_type": "Return a torch tensor (or a number, where one is asked for).",
    "wrong_shape": "Check the output size: (n - k + 1) along each axis for stride 1 and "
                   "no padding.",
    "raised": "Your code raised an exception on this input; run it on the same input in "
              "the notebook to see where.",
    "not_written": "Replace `raise NotImplementedError()` with your code.",
}


def _mistake_hint(spec: CheckSpec, case: Case, enc: dict) -> hints.Mistake | None:
    """The known mistake whose output on ``case`` equals the student's, if any."""
    from grader.probe import _call  # the same recording path as the student's

    for mistake in hints.MISTAKES.get(spec.name, []):
        try:
            fn = hints.mistake_namespace(spec.name, mistake.id)[spec.answers[0]]
            wrong = _call(fn, case)["result"]
        except Exception:  # noqa: BLE001 - a broken corpus entry must not break judging
            continue
        if wrong.get("type") == "exception":
            if enc.get("type") == "exception" and enc.get("exc_type") == wrong.get("exc_type"):
                return mistake
            continue
        if spec.kind == "number":
            a, b = as_number(wrong), as_number(enc)
            if a is not None and b is not None and (a == b or (a != a and b != b)):
                return mistake
            continue
        a, b = as_tensor(wrong), as_tensor(enc)
        if wrong.get("type") == "none" and enc.get("type") == "none":
            return mistake
        if a is not None and b is not None and a.shape == b.shape and torch.allclose(
            a, b, rtol=RTOL, atol=ATOL, equal_nan=True
        ):
            return mistake
    return None


def _fail(spec: CheckSpec, lines: list[str], hint_id: str | None, hint: str | None) -> Verdict:
    text = f"{spec.title} is not right yet.\n" + "\n".join(line for line in lines if line)
    if hint:
        text += f"\nHint: {hint}"
    return Verdict(False, text, hint_id)


def _forbidden_verdict(spec: CheckSpec, record: dict, source: str | None) -> Verdict | None:
    if not spec.forbid_torch_ops:
        return None
    uses: list[str] = []
    if source:
        uses += [f.describe() for f in forbidden.scan(source, spec.answers[0])]
    for item in record.get("items", []):
        uses += [f"it called {name} while running" for name in item.get("forbidden", [])]
    if not uses:
        return None
    listed = "; ".join(dict.fromkeys(uses))
    return Verdict(
        False,
        f"{spec.title} must be written from scratch, but {listed}.\nHint: torch's own "
        "convolution, pooling and unfold (and numpy/scipy equivalents) are not allowed here, "
        "under any name; use loops or slicing with * and sum/max/mean.",
        "forbidden_api",
    )


def _judge_function(spec: CheckSpec, record: dict, source: str | None, seed: int) -> Verdict:
    cases = cases_for(spec.name, seed)
    items = record.get("items")
    if not isinstance(items, list) or len(items) != len(cases):
        return Verdict(False, f"{spec.title}: the check's record is incomplete; run the "
                       "whole notebook from the top and try again.", "bad_record")
    found = _forbidden_verdict(spec, record, source)
    if found:
        return found
    for case, item in zip(cases, items, strict=True):
        enc = item.get("result") if isinstance(item, dict) else None
        if not isinstance(enc, dict):
            return Verdict(False, f"{spec.title}: unreadable record.", "bad_record")
        if enc.get("type") == "not_callable":
            return _fail(spec, [f"{spec.answers[0]} should be a function, but it is "
                                f"{describe(enc)}."], "wrong_type", None)
        if enc.get("type") == "exception" and enc.get("exc_type") == "NotImplementedError":
            return _fail(spec, [f"{spec.answers[0]} is not written yet (it raises "
                                "NotImplementedError)."], "not_written",
                         GENERIC_HINTS["not_written"])
        mismatch = _mismatch(spec, case, enc)
        if mismatch is None:
            continue
        expected, detail, generic = mismatch
        mistake = _mistake_hint(spec, case, enc)
        hint_id = mistake.id if mistake else generic
        hint = mistake.hint if mistake else GENERIC_HINTS.get(generic or "")
        return _fail(spec, [f"Input: {case.label}", f"Expected: {expected}",
                            f"Got: {describe(enc)}", detail], hint_id, hint)
    return Verdict(True)


# ---------------------------------------------------------------------------------------------
# value answers (conv_basics)


def _values(record: dict) -> dict[str, dict]:
    return {item["label"]: item["result"] for item in record.get("items", [])
            if isinstance(item, dict) and isinstance(item.get("result"), dict)
            and isinstance(item.get("label"), str)}


def _value_mistake(spec: CheckSpec, same: Callable[[Any, str], bool]) -> hints.Mistake | None:
    for mistake in hints.MISTAKES.get(spec.name, []):
        namespace = hints.mistake_namespace(spec.name, mistake.id)
        if all(same(namespace[name], name) for name in spec.answers):
            return mistake
    return None


def _lab_position(value: torch.Tensor | float, windows: bool) -> tuple[int, int] | None:
    image = torch.tensor(LAB_IMAGE, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            if windows:
                if isinstance(value, torch.Tensor) and value.shape == (2, 2) and torch.equal(
                        value, image[i:i + 2, j:j + 2]):
                    return i, j
            elif float(reference.lab_out[i, j]) == value:
                return i, j
    return None


def _judge_window(spec: CheckSpec, got: dict) -> Verdict:
    expected = reference.window_1_0.to(torch.float64)
    window = as_tensor(got["window_1_0"])
    if window is not None and window.shape == (2, 2) and torch.equal(window, expected):
        return Verdict(True)
    mistake = _value_mistake(spec, lambda v, name: window is not None and torch.equal(
        torch.as_tensor(v, dtype=torch.float64), window))
    hint_id, hint = (mistake.id, mistake.hint) if mistake else (None, None)
    if not mistake and window is not None:
        pos = _lab_position(window, windows=True)
        if pos:
            hint_id, hint = "other_window", f"That is the window of out[{pos[0]}, {pos[1]}]."
        elif window.shape == (2, 2) and torch.equal(window.T, expected):
            hint_id, hint = "transposed", "Your window is transposed: keep the image's rows."
    return _fail(spec, ["window_1_0 should be the 2x2 window of the image that gives out[1, 0]"
                        " (a nested list, array or tensor).",
                        f"Expected: {_fmt_tensor(expected)}",
                        f"Got: {describe(got['window_1_0'])}"], hint_id, hint)


def _judge_out_1_0(spec: CheckSpec, got: dict) -> Verdict:
    value = as_number(got["out_1_0"])
    if value is not None and abs(value - reference.out_1_0) < 1e-6:
        return Verdict(True)
    mistake = _value_mistake(spec, lambda v, name: value is not None and float(v) == value)
    hint_id, hint = (mistake.id, mistake.hint) if mistake else (None, None)
    if not mistake and value is not None:
        pos = _lab_position(value, windows=False)
        if pos:
            hint_id = "other_position"
            hint = (f"{_fmt_number(value)} is out[{pos[0]}, {pos[1]}] (among others): out[1, 0]"
                    " is row 1, column 0.")
    return _fail(spec, ["out_1_0 should be the number at row 1, column 0 of the lab output.",
                        f"Got: {describe(got['out_1_0'])}"], hint_id, hint or
                 "Multiply the 2x2 window at rows 1-2, columns 0-1 by the kernel element by "
                 "element and add the four products.")


def _judge_shape(spec: CheckSpec, got: dict) -> Verdict:
    shape = as_shape(got["stride1_output_shape"])
    expected = reference.stride1_output_shape
    if shape == expected:
        return Verdict(True)
    mistake = _value_mistake(spec, lambda v, name: shape == tuple(v))
    return _fail(spec, [f"Expected: {expected} (a tuple, list or torch.Size)",
                        f"Got: {describe(got['stride1_output_shape'])}"],
                 mistake.id if mistake else None,
                 mistake.hint if mistake else "Use floor((n + 2p - k) / s) + 1 for H and W.")


def _judge_channels16(spec: CheckSpec, got: dict) -> Verdict:
    expected = reference.channels16_shapes
    enc = got["channels16_shapes"]
    if enc.get("type") != "dict":
        return _fail(spec, ["channels16_shapes should be a dict with keys 'input', 'output', "
                            "'weight' and 'bias'.", f"Got: {describe(enc)}"], "wrong_type", None)
    shapes = {key: as_shape(value) for key, value in enc.get("items", {}).items()}
    if shapes == expected:
        return Verdict(True)
    missing = sorted(set(expected) - set(shapes))
    wrong = [f"{key}: expected {expected[key]}, got {describe(enc['items'][key])}"
             for key in expected if key in shapes and shapes[key] != expected[key]]
    mistake = _value_mistake(spec, lambda v, name: {k: tuple(s) for k, s in v.items()} == shapes)
    lines = []
    if missing:
        lines.append("Missing keys: " + ", ".join(missing))
    extra = sorted(set(shapes) - set(expected))
    if extra:
        lines.append("Unexpected keys: " + ", ".join(extra))
    lines += wrong
    return _fail(spec, lines, mistake.id if mistake else None, mistake.hint if mistake else
                 "Shapes are [N, C, H, W] for data and [out_channels, in_channels, k_h, k_w] "
                 "for the weight.")


def _judge_my_kernel(spec: CheckSpec, got: dict) -> Verdict:
    kernel = as_tensor(got["my_kernel"])
    if kernel is None or tuple(kernel.shape) != (2, 2) or not bool(torch.isfinite(kernel).all()):
        return _fail(spec, ["my_kernel should be a 2x2 kernel of finite numbers.",
                            f"Got: {describe(got['my_kernel'])}"], "wrong_shape", None)
    lab = reference.lab_kernel.to(torch.float64)
    if torch.equal(kernel, lab):
        mistake = hints.mistake_by_id("my_kernel", "lab_kernel")
        return _fail(spec, ["my_kernel is the lab's kernel."], "lab_kernel",
                     mistake.hint if mistake else None)
    image = torch.tensor(LAB_IMAGE, dtype=torch.float64)
    expected = reference.corr2d(image, kernel).to(torch.float64)
    out = as_tensor(got["my_out"])
    if out is not None and out.shape == expected.shape and torch.allclose(out, expected,
                                                                         atol=1e-4):
        return Verdict(True)
    hint_id, hint = None, "my_out is the lab image cross-correlated with my_kernel (3x3)."
    if out is not None and out.shape == (3, 3):
        if torch.allclose(out, reference.lab_out.to(torch.float64)):
            mistake = hints.mistake_by_id("my_kernel", "stale_output")
            hint_id, hint = "stale_output", mistake.hint if mistake else hint
        elif torch.allclose(out, reference.corr2d(image, torch.flip(kernel, (0, 1))).double()):
            hint_id = "flipped_kernel"
            hint = hints.mistake_by_id("corr2d", "flipped_kernel").hint  # type: ignore[union-attr]
    return _fail(spec, [f"For your my_kernel {_fmt_tensor(kernel)[2:]}:",
                        f"Expected my_out: {_fmt_tensor(expected)}",
                        f"Got: {describe(got['my_out'])}"], hint_id, hint)


_VALUE_JUDGES: dict[str, Callable[[CheckSpec, dict], Verdict]] = {
    "window_1_0": _judge_window,
    "out_1_0": _judge_out_1_0,
    "stride1_output_shape": _judge_shape,
    "channels16_shapes": _judge_channels16,
    "my_kernel": _judge_my_kernel,
}


def judge(name: str, record: dict, source: str | None = None,
          seed: int | None = None) -> Verdict:
    """Judge the record of check ``name``.

    Args:
        name: the check's name (a key of :data:`CHECKS`).
        record: what :mod:`grader.probe` recorded in the student's process.
        source: the student's code; when given, the static forbidden-API scan runs on it.
            (The tamper scan is no verdict: its findings go to review, grader.review.)
        seed: the cases' seed; ``None`` takes the one in the record (in-process judging).

    Returns:
        The verdict. A record that cannot be read is a failed verdict, never an exception.
    """
    spec = CHECKS.get(name)
    if spec is None:
        return Verdict(False, f"unknown check {name!r}", "bad_record")
    if not isinstance(record, dict):
        return Verdict(False, f"{spec.title}: unreadable record.", "bad_record")
    try:
        if spec.kind == "value":
            got = _values(record)
            if set(got) != set(spec.answers):
                return Verdict(False, f"{spec.title}: the check's record is incomplete.",
                               "bad_record")
            return _VALUE_JUDGES[name](spec, got)
        use_seed = seed if seed is not None else record.get("seed", 0)
        if not isinstance(use_seed, int) or not 0 <= use_seed < 2**31:
            return Verdict(False, f"{spec.title}: the check's record is damaged.", "bad_record")
        return _judge_function(spec, record, source, use_seed)
    except Exception as exc:  # noqa: BLE001 - never crash on a student's record
        return Verdict(False, f"{spec.title}: the answer could not be judged ({type(exc).__name__}:"
                       f" {exc}).", "bad_record")
