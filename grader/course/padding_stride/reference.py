"""Reference solutions of padding_stride: the only copy.

The source notebook's solution cells import from here, the judge computes expected values
here, and the demo class's "right" student is written from them. Functions follow d2l's style
(torch tensors in and out, X/K/Y names); each docstring states shapes and the formula.

Never staged into the student's worker.
"""

from __future__ import annotations

import torch


def conv_output_size(n: int, k: int, p: int = 0, s: int = 1) -> int:
    """Output length of a convolution along one dimension.

    Args:
        n: input length; k: kernel length; p: padding (填充) added on each side;
        s: stride (步幅).

    Returns:
        floor((n + 2p - k) / s) + 1.

    Raises:
        ValueError: when the kernel does not fit in the padded input (n + 2p < k), or k or s
        is not positive.
    """
    if k < 1 or s < 1 or p < 0:
        raise ValueError(f"need k >= 1, s >= 1 and p >= 0, got k={k}, s={s}, p={p}")
    if n + 2 * p < k:
        raise ValueError(f"a kernel of {k} does not fit in {n} + 2*{p} = {n + 2 * p}")
    return (n + 2 * p - k) // s + 1


def corr2d_pad_stride(
    X: torch.Tensor,
    K: torch.Tensor,
    padding: tuple[int, int] = (0, 0),
    stride: tuple[int, int] = (1, 1),
) -> torch.Tensor:
    """2-D cross-correlation with zero padding and a stride.

    Args:
        X: input, shape (n_h, n_w).
        K: kernel, shape (k_h, k_w).
        padding: (p_h, p_w) rows/columns of zeros added on each side.
        stride: (s_h, s_w) step of the window down and across.

    Returns:
        Y of shape (floor((n_h + 2p_h - k_h) / s_h) + 1, floor((n_w + 2p_w - k_w) / s_w) + 1)
        with Y[i, j] = sum_{a, b} Xp[i * s_h + a, j * s_w + b] * K[a, b], Xp the padded X.
    """
    (p_h, p_w), (s_h, s_w) = padding, stride
    k_h, k_w = K.shape
    Xp = torch.zeros((X.shape[0] + 2 * p_h, X.shape[1] + 2 * p_w))
    Xp[p_h:p_h + X.shape[0], p_w:p_w + X.shape[1]] = X
    Y = torch.zeros(((Xp.shape[0] - k_h) // s_h + 1, (Xp.shape[1] - k_w) // s_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (Xp[i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w] * K).sum()
    return Y


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Receptive field (感受野) of one output unit of the last layer, in input pixels.

    Args:
        layers: (kernel_size, stride) of each layer, first layer first.

    Returns:
        r_L where r_0 = 1, j_0 = 1 and, layer by layer, r += (k - 1) * j, then j *= s
        (j is the distance in input pixels between neighbouring units of the layer).
    """
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


def conv_params(c_in: int, c_out: int, k: int | tuple[int, int], bias: bool = True) -> int:
    """Number of learnable parameters of a Conv2d layer.

    Args:
        c_in, c_out: input and output channels; k: kernel size (int or (k_h, k_w));
        bias: whether the layer has one bias per output channel.

    Returns:
        c_out * c_in * k_h * k_w (+ c_out with bias).
    """
    k_h, k_w = (k, k) if isinstance(k, int) else k
    return c_out * c_in * k_h * k_w + (c_out if bias else 0)


def fc_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Number of learnable parameters of a fully connected (Linear) layer.

    Returns:
        n_in * n_out (+ n_out with bias).
    """
    return n_in * n_out + (n_out if bias else 0)


def learn_kernel(
    X: torch.Tensor,
    Y: torch.Tensor,
    kernel_shape: tuple[int, int],
    steps: int = 50,
    lr: float = 3e-2,
) -> torch.Tensor:
    """Learn the kernel K with corr2d(X, K) = Y by gradient descent (d2l 6.2.4).

    Args:
        X: input, shape (n_h, n_w); Y: target, shape (n_h - k_h + 1, n_w - k_w + 1).
        kernel_shape: (k_h, k_w); steps: gradient steps; lr: learning rate.

    Returns:
        The learned kernel, shape kernel_shape, minimising sum((corr2d(X, K) - Y) ** 2).
    """
    conv = torch.nn.Conv2d(1, 1, kernel_size=kernel_shape, bias=False)
    torch.nn.init.zeros_(conv.weight)
    X4, Y4 = X.reshape((1, 1) + X.shape), Y.reshape((1, 1) + Y.shape)
    for _ in range(steps):
        loss = ((conv(X4) - Y4) ** 2).sum()
        conv.zero_grad()
        loss.backward()
        with torch.no_grad():
            conv.weight -= lr * conv.weight.grad
    return conv.weight.detach().reshape(kernel_shape)
