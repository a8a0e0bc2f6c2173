"""Reference solutions: the only copy.

The source notebooks' solution cells delegate here, the checks compute expected values
here, and the demo class's "right" student is written from :func:`solution_source`.
Functions follow d2l's style (torch tensors in and out, X/K/Y names); each docstring
states shapes and the formula. The from-scratch functions (``corr2d``...``pool2d``,
``corr2d_pad_stride``) use no torch convolution, pooling or unfold, as students must not.

Never staged into the student's worker.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

import torch

from grader.cases import LAB_IMAGE, LAB_KERNEL

# ---------------------------------------------------------------------------------------------
# channels_pooling


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


# ---------------------------------------------------------------------------------------------
# padding_stride


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


# ---------------------------------------------------------------------------------------------
# conv_basics

def nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    """Reorder an image batch from [N, H, W, C] (image libraries) to [N, C, H, W] (PyTorch).

    Args:
        x: shape (N, H, W, C).

    Returns:
        shape (N, C, H, W) with out[n, c, h, w] = x[n, h, w, c].
    """
    return x.permute(0, 3, 1, 2)


#: A 2x2 kernel different from the lab's: it compares each pixel with its lower-left one.
my_kernel = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
#: The lab image cross-correlated with my_kernel (3x3).
my_out = corr2d(torch.tensor(LAB_IMAGE), my_kernel)
#: The lab's kernel and output, used by the checks' hints.
lab_kernel = torch.tensor(LAB_KERNEL)
lab_out = corr2d(torch.tensor(LAB_IMAGE), lab_kernel)
#: The input window that gives out[1, 0]: rows 1-2, columns 0-1 of the lab image.
window_1_0 = torch.tensor(LAB_IMAGE)[1:3, 0:2]
#: out[1, 0] = 5*1 + 3*0 + 2*0 + 1*(-1) = 4 (the notes' worked answer is wrong).
out_1_0 = float((window_1_0 * lab_kernel).sum())
#: The size lab with stride 1: floor((6 + 2*1 - 3) / 1) + 1 = 6.
stride1_output_shape = (1, 2, 6, 6)
#: The channel lab with out_channels=16 (padding 1 keeps 32x32).
channels16_shapes = {
    "input": (2, 3, 32, 32),
    "output": (2, 16, 32, 32),
    "weight": (16, 3, 3, 3),
    "bias": (16,),
}

VALUE_NAMES = ("my_kernel", "my_out", "window_1_0", "out_1_0", "stride1_output_shape",
               "channels16_shapes")


def _literal(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"torch.tensor({value.tolist()!r})"
    return repr(value)


def solution_source(name: str) -> str:
    """Python source that defines ``name`` the way a student would in the notebook.

    Functions come back as their ``def`` (docstring included); values as assignments.
    ``my_kernel`` defines ``my_kernel`` and ``my_out`` together.
    """
    if name == "my_kernel":
        return "\n".join(f"{n} = {_literal(globals()[n])}" for n in ("my_kernel", "my_out"))
    if name in VALUE_NAMES:
        return f"{name} = {_literal(globals()[name])}"
    obj = globals().get(name)
    if not inspect.isfunction(obj):
        raise KeyError(f"no reference solution named {name!r}")
    return textwrap.dedent(inspect.getsource(obj))
