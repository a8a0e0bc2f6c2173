"""How the value exercises of conv_basics are judged (the manual labs' answers).

Each judge takes the declaration and the recorded answers by name and returns a verdict with
the hint that fits: the window of another output position, a transposed window, the lab's own
kernel, a stale output... Runs in the grader's own process only; never staged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from grader.course.compare import as_tensor, fmt_tensor
from grader.course.conv_basics import reference as R
from grader.course.conv_basics.cases import LAB_IMAGE
from grader.mistakes import value_mistake
from grader.records import Verdict, as_number, as_shape, describe, fail, fmt_number
from grader.registry import course
from grader.runtime.declare import Exercise


def _lab_position(value: torch.Tensor | float, windows: bool) -> tuple[int, int] | None:
    image = torch.tensor(LAB_IMAGE, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            if windows:
                if isinstance(value, torch.Tensor) and value.shape == (2, 2) and torch.equal(
                        value, image[i:i + 2, j:j + 2]):
                    return i, j
            elif float(R.lab_out[i, j]) == value:
                return i, j
    return None


def _judge_window(spec: Exercise, got: dict) -> Verdict:
    expected = R.window_1_0.to(torch.float64)
    window = as_tensor(got["window_1_0"])
    if window is not None and window.shape == (2, 2) and torch.equal(window, expected):
        return Verdict(True)
    mistake = value_mistake(spec, lambda v, name: window is not None and torch.equal(
        torch.as_tensor(v, dtype=torch.float64), window))
    hint_id, hint = (mistake.id, mistake.hint) if mistake else (None, None)
    if not mistake and window is not None:
        pos = _lab_position(window, windows=True)
        if pos:
            hint_id, hint = "other_window", f"That is the window of out[{pos[0]}, {pos[1]}]."
        elif window.shape == (2, 2) and torch.equal(window.T, expected):
            hint_id, hint = "transposed", "Your window is transposed: keep the image's rows."
    return fail(spec, ["window_1_0 should be the 2x2 window of the image that gives out[1, 0]"
                        " (a nested list, array or tensor).",
                        f"Expected: {fmt_tensor(expected)}",
                        f"Got: {describe(got['window_1_0'])}"], hint_id, hint)


def _judge_out_1_0(spec: Exercise, got: dict) -> Verdict:
    value = as_number(got["out_1_0"])
    if value is not None and abs(value - R.out_1_0) < 1e-6:
        return Verdict(True)
    mistake = value_mistake(spec, lambda v, name: value is not None and float(v) == value)
    hint_id, hint = (mistake.id, mistake.hint) if mistake else (None, None)
    if not mistake and value is not None:
        pos = _lab_position(value, windows=False)
        if pos:
            hint_id = "other_position"
            hint = (f"{fmt_number(value)} is out[{pos[0]}, {pos[1]}] (among others): out[1, 0]"
                    " is row 1, column 0.")
    return fail(spec, ["out_1_0 should be the number at row 1, column 0 of the lab output.",
                        f"Got: {describe(got['out_1_0'])}"], hint_id, hint or
                 "Multiply the 2x2 window at rows 1-2, columns 0-1 by the kernel element by "
                 "element and add the four products.")


def _judge_shape(spec: Exercise, got: dict) -> Verdict:
    shape = as_shape(got["stride1_output_shape"])
    expected = R.stride1_output_shape
    if shape == expected:
        return Verdict(True)
    mistake = value_mistake(spec, lambda v, name: shape == tuple(v))
    return fail(spec, [f"Expected: {expected} (a tuple, list or torch.Size)",
                        f"Got: {describe(got['stride1_output_shape'])}"],
                 mistake.id if mistake else None,
                 mistake.hint if mistake else "Use floor((n + 2p - k) / s) + 1 for H and W.")


def _judge_channels16(spec: Exercise, got: dict) -> Verdict:
    expected = R.channels16_shapes
    enc = got["channels16_shapes"]
    if enc.get("type") != "dict":
        return fail(spec, ["channels16_shapes should be a dict with keys 'input', 'output', "
                            "'weight' and 'bias'.", f"Got: {describe(enc)}"], "wrong_type", None)
    shapes = {key: as_shape(value) for key, value in enc.get("items", {}).items()}
    if shapes == expected:
        return Verdict(True)
    missing = sorted(set(expected) - set(shapes))
    wrong = [f"{key}: expected {expected[key]}, got {describe(enc['items'][key])}"
             for key in expected if key in shapes and shapes[key] != expected[key]]
    mistake = value_mistake(spec, lambda v, name: {k: tuple(s) for k, s in v.items()} == shapes)
    lines = []
    if missing:
        lines.append("Missing keys: " + ", ".join(missing))
    extra = sorted(set(shapes) - set(expected))
    if extra:
        lines.append("Unexpected keys: " + ", ".join(extra))
    lines += wrong
    return fail(spec, lines, mistake.id if mistake else None, mistake.hint if mistake else
                 "Shapes are [N, C, H, W] for data and [out_channels, in_channels, k_h, k_w] "
                 "for the weight.")


def _judge_my_kernel(spec: Exercise, got: dict) -> Verdict:
    kernel = as_tensor(got["my_kernel"])
    if kernel is None or tuple(kernel.shape) != (2, 2) or not bool(torch.isfinite(kernel).all()):
        return fail(spec, ["my_kernel should be a 2x2 kernel of finite numbers.",
                            f"Got: {describe(got['my_kernel'])}"], "wrong_shape", None)
    lab = R.lab_kernel.to(torch.float64)
    if torch.equal(kernel, lab):
        mistake = course().mistake("my_kernel", "lab_kernel")
        return fail(spec, ["my_kernel is the lab's kernel."], "lab_kernel",
                     mistake.hint if mistake else None)
    image = torch.tensor(LAB_IMAGE, dtype=torch.float64)
    expected = R.corr2d(image, kernel).to(torch.float64)
    out = as_tensor(got["my_out"])
    if out is not None and out.shape == expected.shape and torch.allclose(out, expected,
                                                                         atol=1e-4):
        return Verdict(True)
    hint_id, hint = None, "my_out is the lab image cross-correlated with my_kernel (3x3)."
    if out is not None and out.shape == (3, 3):
        if torch.allclose(out, R.lab_out.to(torch.float64)):
            mistake = course().mistake("my_kernel", "stale_output")
            hint_id, hint = "stale_output", mistake.hint if mistake else hint
        elif torch.allclose(out, R.corr2d(image, torch.flip(kernel, (0, 1))).double()):
            hint_id = "flipped_kernel"
            hint = course().mistake("corr2d", "flipped_kernel").hint  # type: ignore[union-attr]
    return fail(spec, [f"For your my_kernel {fmt_tensor(kernel)[2:]}:",
                        f"Expected my_out: {fmt_tensor(expected)}",
                        f"Got: {describe(got['my_out'])}"], hint_id, hint)


JUDGES: dict[str, Callable[[Exercise, dict], Verdict]] = {
    "window_1_0": _judge_window,
    "out_1_0": _judge_out_1_0,
    "stride1_output_shape": _judge_shape,
    "channels16_shapes": _judge_channels16,
    "my_kernel": _judge_my_kernel,
}

