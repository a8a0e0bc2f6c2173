"""Inputs shared by several assignments' cases: the notes' examples and seeded random tensors.

Staged into the worker with the cases: torch and the standard library only, no expected value.
"""

from __future__ import annotations

import torch

# d2l's running example: X = 0..8 as a 3x3 matrix and a 2x2 kernel.
NOTES_X = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
NOTES_K = [[0.0, 1.0], [2.0, 3.0]]


def t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def gen(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1000 + salt)


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def edge_image(h: int = 6, w: int = 8, start: int = 2, stop: int = 6) -> torch.Tensor:
    X = torch.ones((h, w))
    X[:, start:stop] = 0
    return X
