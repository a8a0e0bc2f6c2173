"""The exercises of padding_stride, each declared once.

A declaration names the check (``check_<name>``, grade_id ``<name>_tests``), the answers it
reads, its kind and title; its reference is the same-named object in ``reference.py``, its
cases ``CASES[name]`` in ``cases.py``, its mistakes ``MISTAKES[name]`` in ``mistakes.py``. The
registry checks every part exists when the course loads. Staged into the worker (it holds no
answer). Points are in the notebook.
"""

from __future__ import annotations

from grader.course import FROM_SCRATCH
from grader.runtime.declare import Exercise, exercise

EXERCISES: tuple[Exercise, ...] = (
    exercise("conv_output_size", "conv_output_size", "conv_output_size(n, k, p, s)", "number"),
    exercise("corr2d_pad_stride", "corr2d_pad_stride", "corr2d_pad_stride(X, K, padding, stride)",
             "tensor", FROM_SCRATCH,
             wrong_shape="Check the output size: floor((n + 2p - k) / s) + 1 along each axis, "
                         "with the padding p added on both sides and the stride s of that axis."),
    exercise("receptive_field", "receptive_field", "receptive_field(layers)", "number"),
    exercise("conv_params", "conv_params", "conv_params(c_in, c_out, k, bias)", "number"),
    exercise("fc_params", "fc_params", "fc_params(n_in, n_out, bias)", "number"),
    exercise("learn_kernel", "learn_kernel", "learn_kernel(X, Y, kernel_shape)", "kernel",
             wrong_shape="Return the learned kernel itself, of shape kernel_shape."),
)
