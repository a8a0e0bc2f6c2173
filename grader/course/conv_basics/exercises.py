"""The exercises of conv_basics, each declared once.

A declaration names the check (``check_<name>``, grade_id ``<name>_tests``), the answers it
reads, its kind and title; its reference is the same-named object in ``reference.py``, its
cases ``CASES[name]`` in ``cases.py``, its mistakes ``MISTAKES[name]`` in ``mistakes.py``. The
registry checks every part exists when the course loads. Staged into the worker (it holds no
answer). Points are in the notebook.
"""

from __future__ import annotations

from grader.runtime.declare import Exercise, exercise

EXERCISES: tuple[Exercise, ...] = (
    exercise("my_kernel", "my_kernel my_out", "my_kernel / my_out", "value"),
    exercise("window_1_0", "window_1_0", "window_1_0", "value"),
    exercise("out_1_0", "out_1_0", "out_1_0", "value"),
    exercise("stride1_output_shape", "stride1_output_shape", "stride1_output_shape", "value"),
    exercise("channels16_shapes", "channels16_shapes", "channels16_shapes", "value"),
    exercise("nhwc_to_nchw", "nhwc_to_nchw", "nhwc_to_nchw(x)", "tensor",
             wrong_shape="The output is [N, C, H, W]: the same four sizes as the input's "
                         "[N, H, W, C], with C moved to position 1."),
)
