"""The inputs each function exercise of padding_stride feeds to the student's code.

The same ``(name, seed)`` always gives the same cases, in the student's worker (which only
computes answers) and in the grader's own process (which compares with the reference).
Nothing here knows an expected value. Staged into the worker: torch, the standard library and
:mod:`grader.course.inputs` only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from grader.course.inputs import edge_image, gen, randn, t
from grader.runtime.declare import Case


def _conv_output_size_cases(seed: int) -> list[Case]:
    sizes = [
        (6, 3, 1, 2), (8, 3, 1, 1), (8, 3, 0, 1), (8, 5, 2, 1), (7, 3, 0, 2),
        (8, 3, 0, 3), (224, 7, 3, 2), (5, 5, 0, 1), (32, 3, 1, 2), (10, 4, 0, 3),
    ]
    cases = [Case(f"conv_output_size(n={n}, k={k}, p={p}, s={s})", (n, k, p, s))
             for n, k, p, s in sizes]
    cases.append(Case("conv_output_size(n=6, k=3) with default p and s", (6, 3)))
    for n, k, p, s in [(3, 5, 0, 1), (2, 7, 2, 1)]:
        cases.append(Case(f"conv_output_size(n={n}, k={k}, p={p}, s={s}): the kernel does not fit",
                          (n, k, p, s), raises="ValueError"))
    return cases


def _corr2d_pad_stride_cases(seed: int) -> list[Case]:
    g = gen(seed, 7)
    specs = [
        ("the notes' 8x8 X, 3x3 K, padding (1, 1), stride (2, 2)", 8, 8, 3, 3, (1, 1), (2, 2)),
        ("the notes' 8x8 X, 3x5 K, padding (0, 1), stride (3, 4)", 8, 8, 3, 5, (0, 1), (3, 4)),
        ("a random 5x7 X, 2x3 K, padding (0, 0), stride (1, 1)", 5, 7, 2, 3, (0, 0), (1, 1)),
        ("a random 6x5 X, 3x2 K, padding (2, 1), stride (1, 2)", 6, 5, 3, 2, (2, 1), (1, 2)),
        ("a random 7x6 X, 2x2 K, padding (1, 0), stride (3, 1)", 7, 6, 2, 2, (1, 0), (3, 1)),
    ]
    return [
        Case(f"{label} (seed {seed})", (randn(g, h, w), randn(g, kh, kw)),
             {"padding": p, "stride": s})
        for label, h, w, kh, kw, p, s in specs
    ]


def _receptive_field_cases(seed: int) -> list[Case]:
    stacks = [
        [(3, 1)],
        [(3, 1), (3, 1)],
        [(3, 1), (3, 1), (3, 1)],
        [(3, 2), (3, 2)],
        [(5, 1), (2, 2), (3, 1)],
        [(7, 2), (3, 2), (3, 1)],
        [],
    ]
    return [Case(f"receptive_field({layers})", (layers,)) for layers in stacks]


def _conv_params_cases(seed: int) -> list[Case]:
    return [
        Case("conv_params(3, 8, 3)", (3, 8, 3)),
        Case("conv_params(3, 16, 3, bias=False)", (3, 16, 3), {"bias": False}),
        Case("conv_params(64, 128, (3, 5))", (64, 128, (3, 5))),
        Case("conv_params(1, 1, 1)", (1, 1, 1)),
        Case("conv_params(16, 4, 1, bias=True)", (16, 4, 1), {"bias": True}),
    ]


def _fc_params_cases(seed: int) -> list[Case]:
    return [
        Case("fc_params(1024, 512)", (1024, 512)),
        Case("fc_params(150528, 512, bias=False)", (150528, 512), {"bias": False}),
        Case("fc_params(784, 256)", (784, 256)),
        Case("fc_params(3, 1, bias=True)", (3, 1), {"bias": True}),
    ]


def _learn_kernel_cases(seed: int) -> list[Case]:
    cases = []
    for label, X, K in [
        ("d2l's 6x8 edge image and the kernel [[1, -1]]", edge_image(), t([[1.0, -1.0]])),
        ("a 6x8 edge image and the kernel [[-1, 1]]", edge_image(6, 8, 3, 7), t([[-1.0, 1.0]])),
        ("the transposed 8x6 edge image and the kernel [[1], [-1]]", edge_image().t().contiguous(),
         t([[1.0], [-1.0]])),
    ]:
        Y = _valid_corr(X, K)
        cases.append(Case(label, (X, Y, tuple(K.shape)), target=K))
    return cases


def _valid_corr(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Cross-correlation used to make learn_kernel's targets (vectorised, no torch conv)."""
    kh, kw = K.shape
    windows = X.unfold(0, kh, 1).unfold(1, kw, 1)
    return (windows * K).sum(dim=(-2, -1))



CASES: dict[str, Callable[[int], list[Case]]] = {
    "conv_output_size": _conv_output_size_cases,
    "corr2d_pad_stride": _corr2d_pad_stride_cases,
    "receptive_field": _receptive_field_cases,
    "conv_params": _conv_params_cases,
    "fc_params": _fc_params_cases,
    "learn_kernel": _learn_kernel_cases,
}
