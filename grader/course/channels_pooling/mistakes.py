"""Known wrong answers of channels_pooling and the misconception each one reveals.

Each mistake is student-like code (a wrong ``def`` or a wrong value) and the hint a
student who wrote it needs; the judge recognises a mistake by behaviour. The same corpus
feeds the tests (every mistake scores below full marks) and the demo class.

Never staged into the student's worker.
"""

from __future__ import annotations

from grader.runtime.declare import Mistake, mistake

MISTAKES: dict[str, list[Mistake]] = {
    "corr2d": [
        mistake("output_off_by_one",
                "The output has n - k + 1 rows and columns, not n - k: a 3x3 input and a 2x2 "
                "kernel give a 2x2 output.",
                """
           def corr2d(X, K):
               h, w = K.shape
               Y = torch.zeros((X.shape[0] - h, X.shape[1] - w))
               for i in range(Y.shape[0]):
                   for j in range(Y.shape[1]):
                       Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
               return Y
                """),
        mistake("flipped_kernel",
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
        mistake("kernel_dims_swapped",
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
        mistake("matrix_product",
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
        mistake("uses_torch_conv",
                "Write the sliding window yourself: torch's own convolution is not allowed here.",
                """
           def corr2d(X, K):
               import torch.nn.functional as G
               return G.conv2d(X[None, None], K[None, None])[0, 0]
                """),
    ],
    "corr2d_multi_in": [
        mistake("no_channel_sum",
                "Sum the per-channel results: the output has one channel, whatever c_i is.",
                """
           def corr2d_multi_in(X, K):
               return torch.stack([corr2d(x, k) for x, k in zip(X, K)])
                """),
        mistake("first_channel_only",
                "Every input channel (通道) contributes: loop over all of them, not just X[0].",
                """
           def corr2d_multi_in(X, K):
               return corr2d(X[0], K[0])
                """),
        mistake("channel_mean",
                "Add the channels up; do not average them.",
                """
           def corr2d_multi_in(X, K):
               return sum(corr2d(x, k) for x, k in zip(X, K)) / X.shape[0]
                """),
    ],
    "corr2d_multi_in_out": [
        mistake("outputs_summed",
                "Each output channel gets its own slice K[o]; stack the results along a new "
                "first axis instead of adding them.",
                """
           def corr2d_multi_in_out(X, K):
               return sum(corr2d_multi_in(X, k) for k in K)
                """),
        mistake("stacked_last",
                "Stack the output channels first: the result is (c_o, h', w').",
                """
           def corr2d_multi_in_out(X, K):
               return torch.stack([corr2d_multi_in(X, k) for k in K], 2)
                """),
        mistake("first_input_channel",
                "Each output channel sums over all input channels: use corr2d_multi_in(X, K[o]).",
                """
           def corr2d_multi_in_out(X, K):
               return torch.stack([corr2d(X[0], k[0]) for k in K], 0)
                """),
    ],
    "corr2d_multi_in_out_1x1": [
        mistake("kernel_reshaped_wrong",
                "K has shape (c_o, c_i, 1, 1): reshape it to (c_o, c_i), not (c_i, c_o).",
                """
           def corr2d_multi_in_out_1x1(X, K):
               c_i, h, w = X.shape
               c_o = K.shape[0]
               Y = K.reshape((c_i, c_o)).T @ X.reshape((c_i, h * w))
               return Y.reshape((c_o, h, w))
                """),
        mistake("pixels_first_reshape",
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
        mistake("returns_none",
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
        mistake("stride_is_window",
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
        mistake("modes_swapped",
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
        mistake("uses_torch_pool",
                "Write the pooling (池化) loop yourself: torch's own pooling is not allowed here.",
                """
           def pool2d(X, pool_size, mode='max'):
               pool = torch.nn.MaxPool2d(pool_size, stride=1)
               return pool(X[None, None])[0, 0]
                """),
    ],
    "pool2d_avg": [
        mistake("early_return",
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
        mistake("window_sum",
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
        mistake("uses_unfold",
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
        mistake("unknown_mode_accepted",
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
        mistake("wrong_exception",
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
}
