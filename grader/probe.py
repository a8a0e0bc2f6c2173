"""What a hidden test cell calls: run the student's answer, record what comes back.

``check_<name>(answer...)`` feeds the inputs of :func:`grader.cases.cases_for` to the
student's code and records the results as plain JSON data (no pickles, no live objects),
then hands ``(name, record)`` to the current sink:

* the default sink judges in this process (:func:`grader.checks.judge`) and raises
  ``AssertionError`` with the verdict's message: what students see in Jupyter, and what stock
  ``nbgrader autograde``/``validate`` score;
* the sandboxed worker installs a sink (:func:`set_sink`) that only sends the record to the
  grader's own process, which judges it there, out of the student's reach.

A check returns ``None``: nbgrader would take a returned number as a partial score.
Output on stderr and warnings from the student's code are swallowed while it runs, because
stock nbgrader gives 0 points to a test cell that writes to stderr.

This module is staged into the worker together with :data:`WORKER_MODULES` only.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from grader import forbidden
from grader.cases import Case, cases_for

#: The files of the grader package that the sandboxed worker may see.
WORKER_MODULES: tuple[str, ...] = ("__init__.py", "probe.py", "cases.py", "forbidden.py")

#: Largest tensor (elements) and text recorded; anything bigger is recorded as too large.
MAX_ELEMENTS = 100_000
MAX_TEXT = 500

Sink = Callable[[str, dict], None]


def _judge_here(name: str, record: dict) -> None:
    """The default sink: judge in this process and raise AssertionError on a failure."""
    from grader.checks import judge

    verdict = judge(name, record, source=record.get("source"))
    if not verdict.passed:
        raise AssertionError(verdict.message)


_sink: Sink = _judge_here
_seed: int = 0


def set_sink(sink: Sink | None, seed: int | None = None) -> None:
    """Send records to ``sink`` from now on (``None`` restores in-process judging)."""
    global _sink, _seed
    _sink = sink or _judge_here
    if seed is not None:
        _seed = seed


def set_seed(seed: int) -> None:
    """Draw the random cases from ``seed`` from now on."""
    global _seed
    _seed = int(seed)


# ---------------------------------------------------------------------------------------------
# encoding answers as plain data


def _number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    return x


def _array(kind: str, dtype: str, shape: list[int], flat: list[Any]) -> dict:
    if len(flat) > MAX_ELEMENTS:
        return {"type": "too_large", "kind": kind, "shape": shape}
    return {"type": kind, "dtype": dtype, "shape": shape, "data": [_number(v) for v in flat]}


def encode(value: Any, depth: int = 0) -> dict:
    """Describe ``value`` as JSON-safe data (tensors, arrays, numbers, containers).

    Non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"``.
    """
    if depth > 4:
        return {"type": "object", "class": type(value).__name__, "repr": "(nested too deep)"}
    if isinstance(value, torch.Size):
        return {"type": "size", "items": [encode(v, depth + 1) for v in value]}
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.is_complex() or t.layout != torch.strided:
            return {"type": "object", "class": "Tensor", "repr": f"{t.dtype} {t.layout} tensor"}
        flat = t.reshape(-1).tolist() if t.numel() <= MAX_ELEMENTS else [0] * (MAX_ELEMENTS + 1)
        return _array("tensor", str(t.dtype), list(t.shape), flat)
    if type(value).__module__ == "numpy":
        if hasattr(value, "shape") and hasattr(value, "tolist") and getattr(value, "ndim", 0):
            flat = value.reshape(-1).tolist() if value.size <= MAX_ELEMENTS else []
            return _array("ndarray", str(value.dtype), list(value.shape),
                          flat or [0] * (MAX_ELEMENTS + 1))
        if hasattr(value, "item"):
            value = value.item()
    if value is None:
        return {"type": "none", "value": None}
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int | float):
        return {"type": type(value).__name__, "value": _number(value)}
    if isinstance(value, str):
        return {"type": "str", "value": value[:MAX_TEXT]}
    if isinstance(value, list | tuple):
        items = [encode(v, depth + 1) for v in list(value)[:1000]]
        return {"type": type(value).__name__ if type(value) in (list, tuple) else "tuple",
                "items": items}
    if isinstance(value, dict):
        return {"type": "dict",
                "items": {str(k)[:100]: encode(v, depth + 1) for k, v in list(value.items())[:100]}}
    try:
        text = repr(value)[:MAX_TEXT]
    except Exception:  # noqa: BLE001 - a student's __repr__ may raise anything
        text = "(repr failed)"
    return {"type": "object", "class": type(value).__name__, "repr": text}


def _exception(exc: BaseException) -> dict:
    try:
        message = str(exc)[:MAX_TEXT]
    except Exception:  # noqa: BLE001
        message = "(str failed)"
    return {"type": "exception", "exc_type": type(exc).__name__,
            "mro": [c.__name__ for c in type(exc).__mro__], "message": message}


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def _quiet():
    """Swallow stdout, stderr and warnings of the student's code while a check runs it."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _call(fn: Any, case: Case) -> dict:
    """Call the student's function on one case and record the outcome."""
    if not callable(fn):
        return {"label": case.label, "result": {"type": "not_callable", **encode(fn)},
                "forbidden": []}
    with _quiet(), forbidden.tripwires() as seen:
        try:
            result = encode(fn(*_clone(case.args), **_clone(case.kwargs)))
        except Exception as exc:  # noqa: BLE001 - every student error is data here
            result = _exception(exc)
    return {"label": case.label, "result": result, "forbidden": sorted(seen)}


def _source_of(fn: Any) -> str | None:
    try:
        return inspect.getsource(fn)
    except (TypeError, OSError):
        return None


def _emit(name: str, record: dict) -> None:
    record.setdefault("check", name)
    record.setdefault("seed", _seed)
    _sink(name, record)


def _probe_function(name: str, fn: Any) -> None:
    items = [_call(fn, case) for case in cases_for(name, _seed)]
    _emit(name, {"items": items, "source": _source_of(fn)})


def _probe_values(name: str, **values: Any) -> None:
    items = [{"label": key, "result": encode(value), "forbidden": []}
             for key, value in values.items()]
    _emit(name, {"items": items})


# ---------------------------------------------------------------------------------------------
# the checks hidden cells call (one per test cell; see docs/ARCHITECTURE.md)


def check_corr2d(corr2d: Any) -> None:
    """Check ``corr2d(X, K)``: 2-D cross-correlation, against the notes and torch."""
    _probe_function("corr2d", corr2d)


def check_corr2d_multi_in(corr2d_multi_in: Any) -> None:
    """Check ``corr2d_multi_in(X, K)``: X (c_i, h, w), K (c_i, k_h, k_w), summed over c_i."""
    _probe_function("corr2d_multi_in", corr2d_multi_in)


def check_corr2d_multi_in_out(corr2d_multi_in_out: Any) -> None:
    """Check ``corr2d_multi_in_out(X, K)``: K (c_o, c_i, k_h, k_w) gives (c_o, h', w')."""
    _probe_function("corr2d_multi_in_out", corr2d_multi_in_out)


def check_corr2d_multi_in_out_1x1(corr2d_multi_in_out_1x1: Any) -> None:
    """Check the 1x1 convolution written as a matrix multiplication."""
    _probe_function("corr2d_multi_in_out_1x1", corr2d_multi_in_out_1x1)


def check_pool2d_max(pool2d: Any) -> None:
    """Check ``pool2d(X, pool_size, mode='max')`` (stride 1, no padding)."""
    _probe_function("pool2d_max", pool2d)


def check_pool2d_avg(pool2d: Any) -> None:
    """Check ``pool2d(X, pool_size, mode='avg')`` (stride 1, no padding)."""
    _probe_function("pool2d_avg", pool2d)


def check_pool2d_mode(pool2d: Any) -> None:
    """Check that ``pool2d`` raises ValueError for a mode other than 'max' and 'avg'."""
    _probe_function("pool2d_mode", pool2d)


def check_conv_output_size(conv_output_size: Any) -> None:
    """Check ``conv_output_size(n, k, p=0, s=1)`` = floor((n + 2p - k) / s) + 1."""
    _probe_function("conv_output_size", conv_output_size)


def check_corr2d_pad_stride(corr2d_pad_stride: Any) -> None:
    """Check ``corr2d_pad_stride(X, K, padding, stride)`` against torch's conv2d."""
    _probe_function("corr2d_pad_stride", corr2d_pad_stride)


def check_receptive_field(receptive_field: Any) -> None:
    """Check ``receptive_field(layers)`` for stacks of (kernel_size, stride) layers."""
    _probe_function("receptive_field", receptive_field)


def check_conv_params(conv_params: Any) -> None:
    """Check ``conv_params(c_in, c_out, k, bias=True)``."""
    _probe_function("conv_params", conv_params)


def check_fc_params(fc_params: Any) -> None:
    """Check ``fc_params(n_in, n_out, bias=True)``."""
    _probe_function("fc_params", fc_params)


def check_learn_kernel(learn_kernel: Any) -> None:
    """Check that ``learn_kernel(X, Y, kernel_shape)`` recovers the kernel that made Y."""
    _probe_function("learn_kernel", learn_kernel)


def check_nhwc_to_nchw(nhwc_to_nchw: Any) -> None:
    """Check ``nhwc_to_nchw(x)``: [N, H, W, C] to [N, C, H, W], every value in place."""
    _probe_function("nhwc_to_nchw", nhwc_to_nchw)


def check_my_kernel(my_kernel: Any, my_out: Any) -> None:
    """Check the student's own 2x2 kernel and the lab output it gives."""
    _probe_values("my_kernel", my_kernel=my_kernel, my_out=my_out)


def check_window_1_0(window_1_0: Any) -> None:
    """Check the 2x2 input window that gives out[1, 0] of the manual lab."""
    _probe_values("window_1_0", window_1_0=window_1_0)


def check_out_1_0(out_1_0: Any) -> None:
    """Check the hand-computed value of out[1, 0] of the manual lab."""
    _probe_values("out_1_0", out_1_0=out_1_0)


def check_stride1_output_shape(stride1_output_shape: Any) -> None:
    """Check the output shape of the size lab with stride=1."""
    _probe_values("stride1_output_shape", stride1_output_shape=stride1_output_shape)


def check_channels16_shapes(channels16_shapes: Any) -> None:
    """Check the four shapes of the channel lab with out_channels=16."""
    _probe_values("channels16_shapes", channels16_shapes=channels16_shapes)
