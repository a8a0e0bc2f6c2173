"""The inputs each function exercise of conv_basics feeds to the student's code.

The same ``(name, seed)`` always gives the same cases, in the student's worker (which only
computes answers) and in the grader's own process (which compares with the reference).
Nothing here knows an expected value. Staged into the worker: torch, the standard library and
:mod:`grader.course.inputs` only.
"""

from __future__ import annotations

from collections.abc import Callable

from grader.course.inputs import gen, randn
from grader.runtime.declare import Case

# The 4x4 image and 2x2 kernel of the manual convolution lab (notes file 000).
LAB_IMAGE = [[1.0, 2.0, 0.0, 0.0], [5.0, 3.0, 0.0, 4.0], [2.0, 1.0, 3.0, 1.0], [0.0, 2.0, 1.0, 2.0]]
LAB_KERNEL = [[1.0, 0.0], [0.0, -1.0]]


def _nhwc_cases(seed: int) -> list[Case]:
    g = gen(seed, 8)
    shapes = [(2, 4, 4, 3), (1, 3, 3, 3), (2, 5, 7, 3), (1, 2, 2, 1), (3, 2, 6, 4)]
    return [
        Case(f"a random tensor of shape {shape} [N, H, W, C] (seed {seed})",
             (randn(g, *shape),))
        for shape in shapes
    ]



CASES: dict[str, Callable[[int], list[Case]]] = {
    "nhwc_to_nchw": _nhwc_cases,
}
