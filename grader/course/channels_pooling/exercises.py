"""The exercises of channels_pooling, each declared once.

A declaration names the check (``check_<name>``, grade_id ``<name>_tests``), the answers it
reads, its kind and title; its reference is the same-named object in ``reference.py``, its
cases ``CASES[name]`` in ``cases.py``, its mistakes ``MISTAKES[name]`` in ``mistakes.py``, the
stand-ins of the answers it ``uses`` ``STANDINS[name]`` in ``standins.py``. The registry checks
every part exists when the course loads. Staged into the worker (it holds no
answer). Points are in the notebook.
"""

from __future__ import annotations

from grader.course import FROM_SCRATCH
from grader.runtime.declare import Exercise, exercise

_VALID = ("Check the output size: n - k + 1 along each axis (stride 1, no padding): a 3x3 "
          "input and a 2x2 kernel give 2x2.")
_CHANNELS = ("Check the output size: one output channel per kernel in K (c_o), each of "
             "(n - k + 1) x (n - k + 1); the input channels (c_i) are summed away.")
_POOL = ("Check the output size: n - p + 1 along each axis for a window p (stride 1, no "
         "padding): a 3x3 input and a 2x2 window give 2x2.")

EXERCISES: tuple[Exercise, ...] = (
    exercise("corr2d", "corr2d", "corr2d(X, K)", "tensor", FROM_SCRATCH, wrong_shape=_VALID),
    exercise("corr2d_multi_in", "corr2d_multi_in", "corr2d_multi_in(X, K)", "tensor", FROM_SCRATCH,
             uses="corr2d",
             wrong_shape="Check the output size: the channels are summed, so the output is "
                         "2-D, (n - k + 1) x (n - k + 1)."),
    exercise("corr2d_multi_in_out", "corr2d_multi_in_out", "corr2d_multi_in_out(X, K)", "tensor",
             FROM_SCRATCH, uses="corr2d_multi_in corr2d", wrong_shape=_CHANNELS),
    exercise("corr2d_multi_in_out_1x1", "corr2d_multi_in_out_1x1",
             "corr2d_multi_in_out_1x1(X, K)", "tensor", FROM_SCRATCH,
             wrong_shape="Check the output size: a 1x1 kernel keeps height and width, "
                         "(c_o, n_h, n_w)."),
    exercise("pool2d_max", "pool2d", "pool2d(X, pool_size, mode='max')", "tensor", FROM_SCRATCH,
             wrong_shape=_POOL),
    exercise("pool2d_avg", "pool2d", "pool2d(X, pool_size, mode='avg')", "tensor", FROM_SCRATCH,
             wrong_shape=_POOL),
    exercise("pool2d_mode", "pool2d", "pool2d with an unknown mode", "raises", FROM_SCRATCH),
)
