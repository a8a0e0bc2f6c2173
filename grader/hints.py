"""Known wrong answers and the misconception each one reveals.

Each :class:`Mistake` is a piece of student-like code (a wrong ``def`` or a wrong value) and
the hint a student who wrote it needs. The checks recognise a mistake by behaviour: when the
student's answer gives the same result as the mistake on a case, the mistake's hint is shown.
The same corpus feeds the tests (every mistake must score below full marks) and the demo
class's "typical mistakes" student.

Never staged into the student's worker.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer.

    Attributes:
        id: short stable name, used in reports ("flipped_kernel").
        hint: what the student is told when their answer behaves like this one.
        source: Python code defining the exercise's name(s) the wrong way.
    """

    id: str
    hint: str
    source: str


def _m(id: str, hint: str, source: str) -> Mistake:
    return Mistake(id, hint, textwrap.dedent(source).strip() + "\n")


MISTAKES: dict[str, list[Mistake]] = {
    "corr2d": [
        _m("output_off_by_one",
           "The output has n - k + 1 rows and columns, not n - k: a 3x3 input and a 2x2 kernel "
           "give a 2x2 output.",
           """
           def corr2d(X, K):
               h, w = K.shape
               Y = torch.zeros((X.shape[0] - h, X.shape[1] - w))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
               return Y
           """),
        _m("flipped_kernel",
           "You flipped the kernel: that is the textbook convolution. A convolutional layer "
           "computes cross-correlation (互相关): multiply the window by K as it is.",
           """
           def corr2d(X, K):
               h, w = K.shape
               Kf = torch.flip(K, (0, 1))
               Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (X[i:i + h, j:j + w] * Kf).sum()
               return Y
           """),
        _m("kernel_dims_swapped",
           "Height and width of the kernel are swapped: K.shape is (k_h, k_w), rows first. "
           "Square kernels hide this mistake; a 2x3 kernel does not.",
           """
           def corr2d(X, K):
               w, h = K.shape
               Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
               return Y
           """),
        _m("matrix_product",
           "Multiply the window and the kernel element by element (`*`) and sum; `@` is a "
           "matrix product.",
           """
           def corr2d(X, K):
               h, w = K.shape
               Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (X[i:i + h, j:j + w] @ K.T).sum()
               return Y
           """),
        _m("uses_torch_conv",
           "Write the sliding window yourself: torch's own convolution is not allowed here.",
           """
           def corr2d(X, K):
               import torch.nn.functional as G
               return G.conv2d(X[None, None], K[None, None])[0, 0]
           """),
    ],
    "corr2d_multi_in": [
        _m("no_channel_sum",
           "Sum the per-channel results: the output has one channel, whatever c_i is.",
           """
           def corr2d_multi_in(X, K):
               return torch.stack([corr2d(x, k) for x, k in zip(X, K)])
           """),
        _m("first_channel_only",
           "Every input channel (通道) contributes: loop over all of them, not just X[0].",
           """
           def corr2d_multi_in(X, K):
               return corr2d(X[0], K[0])
           """),
        _m("channel_mean",
           "Add the channels up; do not average them.",
           """
           def corr2d_multi_in(X, K):
               return sum(corr2d(x, k) for x, k in zip(X, K)) / X.shape[0]
           """),
    ],
    "corr2d_multi_in_out": [
        _m("outputs_summed",
           "Each output channel gets its own slice K[o]; stack the results along a new "
           "first axis instead of adding them.",
           """
           def corr2d_multi_in_out(X, K):
               return sum(corr2d_multi_in(X, k) for k in K)
           """),
        _m("stacked_last",
           "Stack the output channels first: the result is (c_o, h', w').",
           """
           def corr2d_multi_in_out(X, K):
               return torch.stack([corr2d_multi_in(X, k) for k in K], 2)
           """),
        _m("first_input_channel",
           "Each output channel sums over all input channels: use corr2d_multi_in(X, K[o]).",
           """
           def corr2d_multi_in_out(X, K):
               return torch.stack([corr2d(X[0], k[0]) for k in K], 0)
           """),
    ],
    "corr2d_multi_in_out_1x1": [
        _m("kernel_reshaped_wrong",
           "K has shape (c_o, c_i, 1, 1): reshape it to (c_o, c_i), not (c_i, c_o).",
           """
           def corr2d_multi_in_out_1x1(X, K):
               c_i, h, w = X.shape
               c_o = K.shape[0]
               Y = K.reshape((c_i, c_o)).T @ X.reshape((c_i, h * w))
               return Y.reshape((c_o, h, w))
           """),
        _m("pixels_first_reshape",
           "A (h*w, c_o) result must be transposed before it is reshaped to (c_o, h, w); "
           "reshape alone scrambles the pixels.",
           """
           def corr2d_multi_in_out_1x1(X, K):
               c_i, h, w = X.shape
               c_o = K.shape[0]
               Y = X.reshape((c_i, h * w)).T @ K.reshape((c_o, c_i)).T
               return Y.reshape((c_o, h, w))
           """),
    ],
    "pool2d_max": [
        _m("returns_none",
           "Your function returned None: make sure `return Y` runs after both loops, for "
           "every mode.",
           """
           def pool2d(X, pool_size, mode='max'):
               p_h, p_w = pool_size
               Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       if mode == 'max':
                           Y[i, j] = X[i:i + p_h, j:j + p_w].max()
                       elif mode == 'avg':
                           Y[i, j] = X[i:i + p_h, j:j + p_w].mean()
                           return Y
           """),
        _m("stride_is_window",
           "This pool2d moves the window one step at a time (stride 1), so windows overlap; "
           "the output is (n_h - p_h + 1) x (n_w - p_w + 1).",
           """
           def pool2d(X, pool_size, mode='max'):
               p_h, p_w = pool_size
               Y = torch.zeros((X.shape[0] // p_h, X.shape[1] // p_w))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       window = X[i * p_h:(i + 1) * p_h, j * p_w:(j + 1) * p_w]
                       Y[i, j] = window.max() if mode == 'max' else window.mean()
               return Y
           """),
        _m("modes_swapped",
           "mode='max' takes the largest value of each window and mode='avg' the mean; yours "
           "are the other way round.",
           """
           def pool2d(X, pool_size, mode='max'):
               p_h, p_w = pool_size
               Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       window = X[i:i + p_h, j:j + p_w]
                       Y[i, j] = window.mean() if mode == 'max' else window.max()
               return Y
           """),
        _m("uses_torch_pool",
           "Write the pooling (池化) loop yourself: torch's own pooling is not allowed here.",
           """
           def pool2d(X, pool_size, mode='max'):
               pool = torch.nn.MaxPool2d(pool_size, stride=1)
               return pool(X[None, None])[0, 0]
           """),
    ],
    "pool2d_avg": [
        _m("early_return",
           "Only the first window was filled in: `return Y` is indented inside the loop, so "
           "the function returns after one window.",
           """
           def pool2d(X, pool_size, mode='max'):
               p_h, p_w = pool_size
               Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       if mode == 'max':
                           Y[i, j] = X[i:i + p_h, j:j + p_w].max()
                       elif mode == 'avg':
                           Y[i, j] = X[i:i + p_h, j:j + p_w].mean()
                           return Y
           """),
        _m("window_sum",
           "Average pooling takes the mean of the window: divide the sum by p_h * p_w.",
           """
           def pool2d(X, pool_size, mode='max'):
               p_h, p_w = pool_size
               Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       window = X[i:i + p_h, j:j + p_w]
                       Y[i, j] = window.max() if mode == 'max' else window.sum()
               return Y
           """),
        _m("uses_unfold",
           "Build the windows with slicing: unfold is not allowed in this exercise.",
           """
           def pool2d(X, pool_size, mode='max'):
               p_h, p_w = pool_size
               windows = X.unfold(0, p_h, 1).unfold(1, p_w, 1)
               if mode == 'max':
                   return windows.amax(dim=(-2, -1))
               return windows.mean(dim=(-2, -1))
           """),
    ],
    "pool2d_mode": [
        _m("unknown_mode_accepted",
           "An unknown mode must not pass silently: raise ValueError (e.g. "
           "`raise ValueError(f'unknown mode {mode!r}')`).",
           """
           def pool2d(X, pool_size, mode='max'):
               p_h, p_w = pool_size
               Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       window = X[i:i + p_h, j:j + p_w]
                       if mode == 'max':
                           Y[i, j] = window.max()
                       elif mode == 'avg':
                           Y[i, j] = window.mean()
               return Y
           """),
        _m("wrong_exception",
           "Raise ValueError for a bad mode: it is the exception Python uses for an argument "
           "of the right type with a wrong value.",
           """
           def pool2d(X, pool_size, mode='max'):
               if mode not in ('max', 'avg'):
                   raise KeyError(mode)
               p_h, p_w = pool_size
               Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       window = X[i:i + p_h, j:j + p_w]
                       Y[i, j] = window.max() if mode == 'max' else window.mean()
               return Y
           """),
    ],
    "conv_output_size": [
        _m("no_floor",
           "Round down: floor((n + 2p - k) / s) + 1. Use integer division `//`.",
           """
           def conv_output_size(n, k, p=0, s=1):
               if n + 2 * p < k:
                   raise ValueError('the kernel does not fit')
               return (n + 2 * p - k) / s + 1
           """),
        _m("padding_once",
           "Padding (填充) p is added on both sides, so the padded length is n + 2p.",
           """
           def conv_output_size(n, k, p=0, s=1):
               if n + p < k:
                   raise ValueError('the kernel does not fit')
               return (n + p - k) // s + 1
           """),
        _m("plus_one_inside",
           "Add 1 after dividing by the stride (步幅): floor((n + 2p - k) / s) + 1, not "
           "floor((n + 2p - k + 1) / s).",
           """
           def conv_output_size(n, k, p=0, s=1):
               if n + 2 * p < k:
                   raise ValueError('the kernel does not fit')
               return (n + 2 * p - k + 1) // s
           """),
        _m("no_fit_check",
           "When the kernel is larger than the padded input there is no output at all: raise "
           "ValueError instead of returning a number.",
           """
           def conv_output_size(n, k, p=0, s=1):
               return (n + 2 * p - k) // s + 1
           """),
    ],
    "corr2d_pad_stride": [
        _m("stride_ignored_in_window",
           "The window of Y[i, j] starts at row i * s_h and column j * s_w: multiply by the "
           "stride when you slice.",
           """
           def corr2d_pad_stride(X, K, padding=(0, 0), stride=(1, 1)):
               (p_h, p_w), (s_h, s_w) = padding, stride
               k_h, k_w = K.shape
               Xp = torch.zeros((X.shape[0] + 2 * p_h, X.shape[1] + 2 * p_w))
               Xp[p_h:p_h + X.shape[0], p_w:p_w + X.shape[1]] = X
               Y = torch.zeros(((Xp.shape[0] - k_h) // s_h + 1, (Xp.shape[1] - k_w) // s_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (Xp[i:i + k_h, j:j + k_w] * K).sum()
               return Y
           """),
        _m("padding_one_side",
           "Pad both sides: p_h rows on top and p_h at the bottom, p_w columns on the left "
           "and p_w on the right.",
           """
           def corr2d_pad_stride(X, K, padding=(0, 0), stride=(1, 1)):
               (p_h, p_w), (s_h, s_w) = padding, stride
               k_h, k_w = K.shape
               Xp = torch.zeros((X.shape[0] + 2 * p_h, X.shape[1] + 2 * p_w))
               Xp[:X.shape[0], :X.shape[1]] = X
               Y = torch.zeros(((Xp.shape[0] - k_h) // s_h + 1, (Xp.shape[1] - k_w) // s_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (Xp[i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w] * K).sum()
               return Y
           """),
        _m("stride_swapped",
           "stride is (s_h, s_w): the first number moves the window down the rows.",
           """
           def corr2d_pad_stride(X, K, padding=(0, 0), stride=(1, 1)):
               (p_h, p_w), (s_w, s_h) = padding, stride
               k_h, k_w = K.shape
               Xp = torch.zeros((X.shape[0] + 2 * p_h, X.shape[1] + 2 * p_w))
               Xp[p_h:p_h + X.shape[0], p_w:p_w + X.shape[1]] = X
               Y = torch.zeros(((Xp.shape[0] - k_h) // s_h + 1, (Xp.shape[1] - k_w) // s_w + 1))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (Xp[i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w] * K).sum()
               return Y
           """),
    ],
    "receptive_field": [
        _m("stride_ignored",
           "A stride of 2 spreads the next layer's inputs 2 pixels apart: each layer adds "
           "(k - 1) times the product of the strides before it.",
           """
           def receptive_field(layers):
               return 1 + sum(k - 1 for k, s in layers)
           """),
        _m("own_stride_counted",
           "A layer's own stride does not widen what that layer sees; only the strides of "
           "the layers before it do. Update the jump after adding (k - 1) * jump.",
           """
           def receptive_field(layers):
               r, jump = 1, 1
               for k, s in layers:
                   jump *= s
                   r += (k - 1) * jump
               return r
           """),
        _m("kernel_product",
           "Receptive fields grow by addition, not multiplication: two 3x3 layers see 5x5.",
           """
           def receptive_field(layers):
               r = 1
               for k, s in layers:
                   r *= k
               return r
           """),
    ],
    "conv_params": [
        _m("input_channels_missing",
           "Each output channel has one k_h x k_w kernel per input channel: c_out * c_in * "
           "k_h * k_w weights.",
           """
           def conv_params(c_in, c_out, k, bias=True):
               k_h, k_w = (k, k) if isinstance(k, int) else k
               return c_out * k_h * k_w + (c_out if bias else 0)
           """),
        _m("bias_always",
           "With bias=False the layer has no bias at all.",
           """
           def conv_params(c_in, c_out, k, bias=True):
               k_h, k_w = (k, k) if isinstance(k, int) else k
               return c_out * c_in * k_h * k_w + c_out
           """),
        _m("bias_per_weight",
           "A Conv2d layer has one bias per output channel, not one per weight.",
           """
           def conv_params(c_in, c_out, k, bias=True):
               k_h, k_w = (k, k) if isinstance(k, int) else k
               weights = c_out * c_in * k_h * k_w
               return weights * 2 if bias else weights
           """),
    ],
    "fc_params": [
        _m("bias_forgotten",
           "A Linear layer with bias has one bias per output unit: n_in * n_out + n_out.",
           """
           def fc_params(n_in, n_out, bias=True):
               return n_in * n_out
           """),
        _m("bias_per_input",
           "The bias belongs to the outputs: add n_out, not n_in.",
           """
           def fc_params(n_in, n_out, bias=True):
               return n_in * n_out + (n_in if bias else 0)
           """),
    ],
    "learn_kernel": [
        _m("gradient_ascent",
           "Step against the gradient: K -= lr * grad. Adding it makes the loss grow.",
           """
           def learn_kernel(X, Y, kernel_shape, steps=50, lr=3e-2):
               K = torch.zeros(kernel_shape, requires_grad=True)
               for _ in range(steps):
                   h, w = kernel_shape
                   Y_hat = torch.stack([torch.stack([(X[i:i + h, j:j + w] * K).sum()
                                                     for j in range(Y.shape[1])])
                                        for i in range(Y.shape[0])])
                   loss = ((Y_hat - Y) ** 2).sum()
                   loss.backward()
                   with torch.no_grad():
                       K += lr * K.grad
                       K.grad.zero_()
               return K.detach()
           """),
        _m("grad_not_zeroed",
           "Zero the gradient after every step: backward() adds to .grad, so old gradients "
           "pile up and the steps overshoot.",
           """
           def learn_kernel(X, Y, kernel_shape, steps=50, lr=3e-2):
               K = torch.zeros(kernel_shape, requires_grad=True)
               for _ in range(steps):
                   h, w = kernel_shape
                   Y_hat = torch.stack([torch.stack([(X[i:i + h, j:j + w] * K).sum()
                                                     for j in range(Y.shape[1])])
                                        for i in range(Y.shape[0])])
                   loss = ((Y_hat - Y) ** 2).sum()
                   loss.backward()
                   with torch.no_grad():
                       K -= lr * K.grad
               return K.detach()
           """),
        _m("too_few_steps",
           "Two steps are not enough: run gradient descent until the loss is small "
           "(d2l needs about ten steps with lr=3e-2).",
           """
           def learn_kernel(X, Y, kernel_shape, steps=2, lr=3e-2):
               K = torch.zeros(kernel_shape, requires_grad=True)
               for _ in range(steps):
                   h, w = kernel_shape
                   Y_hat = torch.stack([torch.stack([(X[i:i + h, j:j + w] * K).sum()
                                                     for j in range(Y.shape[1])])
                                        for i in range(Y.shape[0])])
                   loss = ((Y_hat - Y) ** 2).sum()
                   loss.backward()
                   with torch.no_grad():
                       K -= lr * K.grad
                       K.grad.zero_()
               return K.detach()
           """),
    ],
    "nhwc_to_nchw": [
        _m("reshape",
           "reshape keeps the values in memory order and only relabels the axes, so pixels "
           "and channels get mixed even though the shape looks right. Move the axes with "
           "permute(0, 3, 1, 2).",
           """
           def nhwc_to_nchw(x):
               N, H, W, C = x.shape
               return x.reshape(N, C, H, W)
           """),
        _m("wrong_permute",
           "permute(0, 3, 2, 1) gives [N, C, W, H]: height and width are swapped (square "
           "images hide it; so does transpose(1, 3)). The new order lists old axes: N=0, C=3, H=1, "
           "W=2.",
           """
           def nhwc_to_nchw(x):
               return x.permute(0, 3, 2, 1)
           """),
    ],
    "my_kernel": [
        _m("lab_kernel",
           "Choose a kernel different from the lab's [[1, 0], [0, -1]].",
           """
           my_kernel = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
           my_out = torch.tensor([[-2.0, 2.0, -4.0], [4.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
           """),
        _m("stale_output",
           "my_out is still the lab kernel's output: run the lab's loop again with my_kernel.",
           """
           my_kernel = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
           my_out = torch.tensor([[-2.0, 2.0, -4.0], [4.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
           """),
    ],
    "window_1_0": [
        _m("notes_window",
           "[[1, 2], [4, 5]] is the window the notes name, and it is wrong: out[1, 0] reads "
           "rows 1-2 and columns 0-1 of the image.",
           """
           window_1_0 = [[1.0, 2.0], [4.0, 5.0]]
           """),
        _m("rows_columns_swapped",
           "You took the window of out[0, 1]: the first index is the row. out[1, 0] starts at "
           "row 1, column 0.",
           """
           window_1_0 = [[2.0, 0.0], [3.0, 0.0]]
           """),
    ],
    "out_1_0": [
        _m("notes_value",
           "-4 is the notes' worked answer, which used the wrong window [[1, 2], [4, 5]] (a "
           "flipped kernel gives -4 as well). Use rows 1-2, columns 0-1 and K as it is: "
           "5*1 + 3*0 + 2*0 + 1*(-1).",
           """
           out_1_0 = -4.0
           """),
        _m("rows_columns_swapped",
           "2 is out[0, 1]: the first index is the row. out[1, 0] uses rows 1-2, columns 0-1.",
           """
           out_1_0 = 2.0
           """),
    ],
    "stride1_output_shape": [
        _m("unchanged",
           "(1, 2, 3, 3) is the shape with stride 2. With stride 1: floor((6 + 2*1 - 3) / 1) "
           "+ 1 = 6.",
           """
           stride1_output_shape = (1, 2, 3, 3)
           """),
        _m("spatial_only",
           "Give the whole shape [N, C, H, W], batch and channels included.",
           """
           stride1_output_shape = (6, 6)
           """),
        _m("padding_forgotten",
           "The layer still pads by 1 on each side: 6 + 2*1 - 3 + 1 = 6.",
           """
           stride1_output_shape = (1, 2, 4, 4)
           """),
    ],
    "channels16_shapes": [
        _m("weight_order",
           "A Conv2d weight is [out_channels, in_channels, k_h, k_w]: (16, 3, 3, 3).",
           """
           channels16_shapes = {"input": (2, 3, 32, 32), "output": (2, 16, 32, 32),
                                "weight": (3, 16, 3, 3), "bias": (16,)}
           """),
        _m("input_changed",
           "Changing out_channels does not change the input: it is still (2, 3, 32, 32).",
           """
           channels16_shapes = {"input": (2, 16, 32, 32), "output": (2, 16, 32, 32),
                                "weight": (16, 3, 3, 3), "bias": (16,)}
           """),
        _m("padding_forgotten",
           "padding=1 with a 3x3 kernel keeps 32x32: 32 + 2*1 - 3 + 1 = 32.",
           """
           channels16_shapes = {"input": (2, 3, 32, 32), "output": (2, 16, 30, 30),
                                "weight": (16, 3, 3, 3), "bias": (16,)}
           """),
    ],
}


@functools.cache
def mistake_namespace(check: str, mistake_id: str) -> dict[str, Any]:
    """Run a mistake's source (with the reference helpers it builds on) and return its names."""
    from grader import reference

    namespace: dict[str, Any] = {
        "torch": torch,
        "corr2d": reference.corr2d,
        "corr2d_multi_in": reference.corr2d_multi_in,
    }
    mistake = next(m for m in MISTAKES[check] if m.id == mistake_id)
    exec(compile(mistake.source, f"<mistake {check}.{mistake_id}>", "exec"), namespace)  # noqa: S102
    return namespace


def mistake_by_id(check: str, mistake_id: str) -> Mistake | None:
    """The mistake of ``check`` called ``mistake_id``, or None."""
    return next((m for m in MISTAKES.get(check, []) if m.id == mistake_id), None)
