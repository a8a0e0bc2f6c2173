"""Reference solutions of channels_pooling: the only copy.

The source notebook's solution cells import from here, the judge computes expected values
here, and the demo class's "right" student is written from them. Functions follow d2l's style
(torch tensors in and out, X/K/Y names); each docstring states shapes and the formula.
The from-scratch functions use no torch convolution, pooling or unfold, as students must not.

Never staged into the student's worker.
"""

from __future__ import annotations

import torch


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation (互相关) of X with the kernel K.

    Args:
        X: input, shape (n_h, n_w).
        K: kernel, shape (k_h, k_w).

    Returns:
        Y of shape (n_h - k_h + 1, n_w - k_w + 1) with
        Y[i, j] = sum_{a, b} X[i + a, j + b] * K[a, b].
    """
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


def corr2d_multi_in(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Cross-correlation over several input channels (通道), summed.

    Args:
        X: input, shape (c_i, n_h, n_w).
        K: kernel, shape (c_i, k_h, k_w).

    Returns:
        Y of shape (n_h - k_h + 1, n_w - k_w + 1): sum over c of corr2d(X[c], K[c]).
    """
    return sum(corr2d(x, k) for x, k in zip(X, K, strict=True))


def corr2d_multi_in_out(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Several output channels: one multi-input cross-correlation per output channel.

    Args:
        X: input, shape (c_i, n_h, n_w).
        K: kernel, shape (c_o, c_i, k_h, k_w).

    Returns:
        Y of shape (c_o, n_h - k_h + 1, n_w - k_w + 1) with Y[o] = corr2d_multi_in(X, K[o]).
    """
    return torch.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_multi_in_out_1x1(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution written as one matrix multiplication.

    Args:
        X: input, shape (c_i, n_h, n_w).
        K: kernel, shape (c_o, c_i, 1, 1).

    Returns:
        Y of shape (c_o, n_h, n_w) with Y[:, i, j] = K[:, :, 0, 0] @ X[:, i, j].
    """
    c_i, h, w = X.shape
    c_o = K.shape[0]
    Y = K.reshape((c_o, c_i)) @ X.reshape((c_i, h * w))
    return Y.reshape((c_o, h, w))


def pool2d(X: torch.Tensor, pool_size: tuple[int, int], mode: str = "max") -> torch.Tensor:
    """2-D max or average pooling (池化) with stride 1 and no padding.

    Args:
        X: input, shape (n_h, n_w).
        pool_size: window (p_h, p_w).
        mode: "max" or "avg"; anything else raises ValueError.

    Returns:
        Y of shape (n_h - p_h + 1, n_w - p_w + 1), the max or the mean of each window
        X[i:i + p_h, j:j + p_w].
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', not {mode!r}")
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i:i + p_h, j:j + p_w]
            Y[i, j] = window.max() if mode == "max" else window.mean()
    return Y
