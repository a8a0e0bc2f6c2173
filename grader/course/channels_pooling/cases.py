"""The inputs each function exercise of channels_pooling feeds to the student's code.

The same ``(name, seed)`` always gives the same cases, in the student's worker (which only
computes answers) and in the grader's own process (which compares with the reference).
Nothing here knows an expected value. Staged into the worker: torch, the standard library and
:mod:`grader.course.inputs` only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from grader.course.inputs import NOTES_K, NOTES_X, edge_image, gen, randn, t
from grader.runtime.declare import Case


def _corr2d_cases(seed: int) -> list[Case]:
    g = gen(seed, 1)
    cases = [
        Case("the notes' example X = 0..8 (3x3), K = [[0, 1], [2, 3]]", (t(NOTES_X), t(NOTES_K))),
        Case("the 6x8 edge image with K = [[1, -1]]", (edge_image(), t([[1.0, -1.0]]))),
    ]
    for h, w, kh, kw in [(5, 7, 2, 3), (6, 5, 3, 2), (4, 4, 4, 4), (5, 6, 1, 1)]:
        cases.append(
            Case(
                f"a random {h}x{w} X and {kh}x{kw} K (seed {seed})",
                (randn(g, h, w), randn(g, kh, kw)),
            )
        )
    return cases


def _multi_in_example() -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.stack([t(NOTES_X), t(NOTES_X) + 1])
    K = torch.stack([t(NOTES_K), t(NOTES_K) + 1])
    return X, K


def _corr2d_multi_in_cases(seed: int) -> list[Case]:
    g = gen(seed, 2)
    X, K = _multi_in_example()
    cases = [Case("the notes' 2-channel example (X and X + 1, K and K + 1)", (X, K))]
    for c, h, w, kh, kw in [(3, 5, 6, 2, 3), (1, 4, 4, 2, 2), (4, 3, 5, 3, 1)]:
        cases.append(
            Case(
                f"a random X of shape ({c}, {h}, {w}) and K of shape ({c}, {kh}, {kw})"
                f" (seed {seed})",
                (randn(g, c, h, w), randn(g, c, kh, kw)),
            )
        )
    return cases


def _corr2d_multi_in_out_cases(seed: int) -> list[Case]:
    g = gen(seed, 3)
    X, K = _multi_in_example()
    K3 = torch.stack([K, K + 1, K + 2])
    cases = [Case("the notes' example with K stacked as (K, K + 1, K + 2)", (X, K3))]
    for co, ci, h, w, kh, kw in [(4, 2, 5, 5, 3, 2), (1, 3, 4, 6, 2, 2), (2, 1, 4, 4, 1, 3)]:
        cases.append(
            Case(
                f"a random X of shape ({ci}, {h}, {w}) and K of shape ({co}, {ci}, {kh}, {kw})"
                f" (seed {seed})",
                (randn(g, ci, h, w), randn(g, co, ci, kh, kw)),
            )
        )
    return cases


def _corr2d_1x1_cases(seed: int) -> list[Case]:
    g = gen(seed, 4)
    cases = []
    for co, ci, h, w in [(2, 3, 3, 3), (3, 4, 5, 6), (1, 2, 2, 5), (4, 1, 3, 2)]:
        cases.append(
            Case(
                f"a random X of shape ({ci}, {h}, {w}) and K of shape ({co}, {ci}, 1, 1)"
                f" (seed {seed})",
                (randn(g, ci, h, w), randn(g, co, ci, 1, 1)),
            )
        )
    return cases


def _pool2d_cases(seed: int, mode: str) -> list[Case]:
    g = gen(seed, 5 if mode == "max" else 6)
    kw = {"mode": mode}
    cases = [
        Case(f"the notes' example X = 0..8 (3x3), pool_size (2, 2), mode={mode!r}",
             (t(NOTES_X), (2, 2)), kw),
    ]
    for h, w, ph, pw in [(5, 6, 2, 3), (6, 5, 3, 2), (4, 4, 1, 1), (4, 5, 4, 5)]:
        cases.append(
            Case(
                f"a random {h}x{w} X, pool_size ({ph}, {pw}), mode={mode!r} (seed {seed})",
                (randn(g, h, w), (ph, pw)),
                kw,
            )
        )
    return cases


def _pool2d_mode_cases(seed: int) -> list[Case]:
    X = t(NOTES_X)
    return [
        Case(f"pool2d(X, (2, 2), mode={m!r})", (X, (2, 2)), {"mode": m}, raises="ValueError")
        for m in ("min", "sum", "median")
    ]



CASES: dict[str, Callable[[int], list[Case]]] = {
    "corr2d": _corr2d_cases,
    "corr2d_multi_in": _corr2d_multi_in_cases,
    "corr2d_multi_in_out": _corr2d_multi_in_out_cases,
    "corr2d_multi_in_out_1x1": _corr2d_1x1_cases,
    "pool2d_max": lambda seed: _pool2d_cases(seed, "max"),
    "pool2d_avg": lambda seed: _pool2d_cases(seed, "avg"),
    "pool2d_mode": _pool2d_mode_cases,
}
