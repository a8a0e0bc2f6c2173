"""The inputs each check feeds to the student's code.

Every check runs on the worked examples from the lecture notes plus seeded random tensors.
The same ``(name, seed)`` always gives the same cases, in the student's worker (which only
computes answers) and in the grader's own process (which computes the expected values with
:mod:`grader.reference` and compares). Nothing here knows an expected value.

This module is staged into the sandboxed worker: it may import torch and the standard
library only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

# The 4x4 image and 2x2 kernel of the manual convolution lab (notes file 000).
LAB_IMAGE = [[1.0, 2.0, 0.0, 0.0], [5.0, 3.0, 0.0, 4.0], [2.0, 1.0, 3.0, 1.0], [0.0, 2.0, 1.0, 2.0]]
LAB_KERNEL = [[1.0, 0.0], [0.0, -1.0]]

# d2l's running example: X = 0..8 as a 3x3 matrix and a 2x2 kernel.
NOTES_X = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
NOTES_K = [[0.0, 1.0], [2.0, 3.0]]


@dataclass(frozen=True)
class Case:
    """One call of the student's code.

    Attributes:
        label: what the student reads in a failure message ("the notes' 3x3 example").
        args: positional arguments (tensors are cloned before every call).
        kwargs: keyword arguments.
        raises: name of the exception the call must raise, or None.
        target: for checks judged against a known truth rather than the reference
            (``learn_kernel``: the kernel that made Y).
    """

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    raises: str | None = None
    target: Any = None


def _t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def _gen(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1000 + salt)


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def _edge_image(h: int = 6, w: int = 8, start: int = 2, stop: int = 6) -> torch.Tensor:
    X = torch.ones((h, w))
    X[:, start:stop] = 0
    return X


def _corr2d_cases(seed: int) -> list[Case]:
    g = _gen(seed, 1)
    cases = [
        Case("the notes' example X = 0..8 (3x3), K = [[0, 1], [2, 3]]", (_t(NOTES_X), _t(NOTES_K))),
        Case("the 6x8 edge image with K = [[1, -1]]", (_edge_image(), _t([[1.0, -1.0]]))),
    ]
    for h, w, kh, kw in [(5, 7, 2, 3), (6, 5, 3, 2), (4, 4, 4, 4), (5, 6, 1, 1)]:
        cases.append(
            Case(
                f"a random {h}x{w} X and {kh}x{kw} K (seed {seed})",
                (_randn(g, h, w), _randn(g, kh, kw)),
            )
        )
    return cases


def _multi_in_example() -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.stack([_t(NOTES_X), _t(NOTES_X) + 1])
    K = torch.stack([_t(NOTES_K), _t(NOTES_K) + 1])
    return X, K


def _corr2d_multi_in_cases(seed: int) -> list[Case]:
    g = _gen(seed, 2)
    X, K = _multi_in_example()
    cases = [Case("the notes' 2-channel example (X and X + 1, K and K + 1)", (X, K))]
    for c, h, w, kh, kw in [(3, 5, 6, 2, 3), (1, 4, 4, 2, 2), (4, 3, 5, 3, 1)]:
        cases.append(
            Case(
                f"a random X of shape ({c}, {h}, {w}) and K of shape ({c}, {kh}, {kw})"
                f" (seed {seed})",
                (_randn(g, c, h, w), _randn(g, c, kh, kw)),
            )
        )
    return cases


def _corr2d_multi_in_out_cases(seed: int) -> list[Case]:
    g = _gen(seed, 3)
    X, K = _multi_in_example()
    K3 = torch.stack([K, K + 1, K + 2])
    cases = [Case("the notes' example with K stacked as (K, K + 1, K + 2)", (X, K3))]
    for co, ci, h, w, kh, kw in [(4, 2, 5, 5, 3, 2), (1, 3, 4, 6, 2, 2), (2, 1, 4, 4, 1, 3)]:
        cases.append(
            Case(
                f"a random X of shape ({ci}, {h}, {w}) and K of shape ({co}, {ci}, {kh}, {kw})"
                f" (seed {seed})",
                (_randn(g, ci, h, w), _randn(g, co, ci, kh, kw)),
            )
        )
    return cases


def _corr2d_1x1_cases(seed: int) -> list[Case]:
    g = _gen(seed, 4)
    cases = []
    for co, ci, h, w in [(2, 3, 3, 3), (3, 4, 5, 6), (1, 2, 2, 5), (4, 1, 3, 2)]:
        cases.append(
            Case(
                f"a random X of shape ({ci}, {h}, {w}) and K of shape ({co}, {ci}, 1, 1)"
                f" (seed {seed})",
                (_randn(g, ci, h, w), _randn(g, co, ci, 1, 1)),
            )
        )
    return cases


def _pool2d_cases(seed: int, mode: str) -> list[Case]:
    g = _gen(seed, 5 if mode == "max" else 6)
    kw = {"mode": mode}
    cases = [
        Case(f"the notes' example X = 0..8 (3x3), pool_size (2, 2), mode={mode!r}",
             (_t(NOTES_X), (2, 2)), kw),
    ]
    for h, w, ph, pw in [(5, 6, 2, 3), (6, 5, 3, 2), (4, 4, 1, 1), (4, 5, 4, 5)]:
        cases.append(
            Case(
                f"a random {h}x{w} X, pool_size ({ph}, {pw}), mode={mode!r} (seed {seed})",
                (_randn(g, h, w), (ph, pw)),
                kw,
            )
        )
    return cases


def _pool2d_mode_cases(seed: int) -> list[Case]:
    X = _t(NOTES_X)
    return [
        Case(f"pool2d(X, (2, 2), mode={m!r})", (X, (2, 2)), {"mode": m}, raises="ValueError")
        for m in ("min", "sum", "median")
    ]


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
    g = _gen(seed, 7)
    specs = [
        ("the notes' 8x8 X, 3x3 K, padding (1, 1), stride (2, 2)", 8, 8, 3, 3, (1, 1), (2, 2)),
        ("the notes' 8x8 X, 3x5 K, padding (0, 1), stride (3, 4)", 8, 8, 3, 5, (0, 1), (3, 4)),
        ("a random 5x7 X, 2x3 K, padding (0, 0), stride (1, 1)", 5, 7, 2, 3, (0, 0), (1, 1)),
        ("a random 6x5 X, 3x2 K, padding (2, 1), stride (1, 2)", 6, 5, 3, 2, (2, 1), (1, 2)),
        ("a random 7x6 X, 2x2 K, padding (1, 0), stride (3, 1)", 7, 6, 2, 2, (1, 0), (3, 1)),
    ]
    return [
        Case(f"{label} (seed {seed})", (_randn(g, h, w), _randn(g, kh, kw)),
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
        ("d2l's 6x8 edge image and the kernel [[1, -1]]", _edge_image(), _t([[1.0, -1.0]])),
        ("a 6x8 edge image and the kernel [[-1, 1]]", _edge_image(6, 8, 3, 7), _t([[-1.0, 1.0]])),
        ("the transposed 8x6 edge image and the kernel [[1], [-1]]", _edge_image().t().contiguous(),
         _t([[1.0], [-1.0]])),
    ]:
        Y = _valid_corr(X, K)
        cases.append(Case(label, (X, Y, tuple(K.shape)), target=K))
    return cases


def _valid_corr(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Cross-correlation used to make learn_kernel's targets (vectorised, no torch conv)."""
    kh, kw = K.shape
    windows = X.unfold(0, kh, 1).unfold(1, kw, 1)
    return (windows * K).sum(dim=(-2, -1))


def _nhwc_cases(seed: int) -> list[Case]:
    g = _gen(seed, 8)
    shapes = [(2, 4, 4, 3), (1, 3, 3, 3), (2, 5, 7, 3), (1, 2, 2, 1), (3, 2, 6, 4)]
    return [
        Case(f"a random tensor of shape {shape} [N, H, W, C] (seed {seed})",
             (_randn(g, *shape),))
        for shape in shapes
    ]


_BUILDERS: dict[str, Callable[[int], list[Case]]] = {
    "corr2d": _corr2d_cases,
    "corr2d_multi_in": _corr2d_multi_in_cases,
    "corr2d_multi_in_out": _corr2d_multi_in_out_cases,
    "corr2d_multi_in_out_1x1": _corr2d_1x1_cases,
    "pool2d_max": lambda seed: _pool2d_cases(seed, "max"),
    "pool2d_avg": lambda seed: _pool2d_cases(seed, "avg"),
    "pool2d_mode": _pool2d_mode_cases,
    "conv_output_size": _conv_output_size_cases,
    "corr2d_pad_stride": _corr2d_pad_stride_cases,
    "receptive_field": _receptive_field_cases,
    "conv_params": _conv_params_cases,
    "fc_params": _fc_params_cases,
    "learn_kernel": _learn_kernel_cases,
    "nhwc_to_nchw": _nhwc_cases,
}


def cases_for(name: str, seed: int = 0) -> list[Case]:
    """The cases of check ``name`` for ``seed``; [] for checks that read values only."""
    builder = _BUILDERS.get(name)
    return builder(seed) if builder else []
