"""Known wrong answers of padding_stride and the misconception each one reveals.

Each mistake is student-like code (a wrong ``def`` or a wrong value) and the hint a
student who wrote it needs; the judge recognises a mistake by behaviour. The same corpus
feeds the tests (every mistake scores below full marks) and the demo class.

Never staged into the student's worker.
"""

from __future__ import annotations

from grader.runtime.declare import Mistake, mistake

MISTAKES: dict[str, list[Mistake]] = {
    "conv_output_size": [
        mistake("no_floor",
                "Round down: floor((n + 2p - k) / s) + 1. Use integer division `//`.",
                """
           def conv_output_size(n, k, p=0, s=1):
               if n + 2 * p < k:
                   raise ValueError('the kernel does not fit')
               return (n + 2 * p - k) / s + 1
                """),
        mistake("padding_once",
                "Padding (填充) p is added on both sides, so the padded length is n + 2p.",
                """
           def conv_output_size(n, k, p=0, s=1):
               if n + p < k:
                   raise ValueError('the kernel does not fit')
               return (n + p - k) // s + 1
                """),
        mistake("plus_one_inside",
                "Add 1 after dividing by the stride (步幅): floor((n + 2p - k) / s) + 1, not "
                "floor((n + 2p - k + 1) / s).",
                """
           def conv_output_size(n, k, p=0, s=1):
               if n + 2 * p < k:
                   raise ValueError('the kernel does not fit')
               return (n + 2 * p - k + 1) // s
                """),
        mistake("no_fit_check",
                "When the kernel is larger than the padded input there is no output at all: raise "
                "ValueError instead of returning a number.",
                """
           def conv_output_size(n, k, p=0, s=1):
               return (n + 2 * p - k) // s + 1
                """),
    ],
    "corr2d_pad_stride": [
        mistake("stride_ignored_in_window",
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
        mistake("padding_one_side",
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
        mistake("stride_swapped",
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
        mistake("stride_ignored",
                "A stride of 2 spreads the next layer's inputs 2 pixels apart: each layer adds "
                "(k - 1) times the product of the strides before it.",
                """
           def receptive_field(layers):
               return 1 + sum(k - 1 for k, s in layers)
                """),
        mistake("own_stride_counted",
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
        mistake("kernel_product",
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
        mistake("input_channels_missing",
                "Each output channel has one k_h x k_w kernel per input channel: c_out * c_in * "
                "k_h * k_w weights.",
                """
           def conv_params(c_in, c_out, k, bias=True):
               k_h, k_w = (k, k) if isinstance(k, int) else k
               return c_out * k_h * k_w + (c_out if bias else 0)
                """),
        mistake("bias_always",
                "With bias=False the layer has no bias at all.",
                """
           def conv_params(c_in, c_out, k, bias=True):
               k_h, k_w = (k, k) if isinstance(k, int) else k
               return c_out * c_in * k_h * k_w + c_out
                """),
        mistake("bias_per_weight",
                "A Conv2d layer has one bias per output channel, not one per weight.",
                """
           def conv_params(c_in, c_out, k, bias=True):
               k_h, k_w = (k, k) if isinstance(k, int) else k
               weights = c_out * c_in * k_h * k_w
               return weights * 2 if bias else weights
                """),
    ],
    "fc_params": [
        mistake("bias_forgotten",
                "A Linear layer with bias has one bias per output unit: n_in * n_out + n_out.",
                """
           def fc_params(n_in, n_out, bias=True):
               return n_in * n_out
                """),
        mistake("bias_per_input",
                "The bias belongs to the outputs: add n_out, not n_in.",
                """
           def fc_params(n_in, n_out, bias=True):
               return n_in * n_out + (n_in if bias else 0)
                """),
    ],
    "learn_kernel": [
        mistake("gradient_ascent",
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
        mistake("grad_not_zeroed",
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
        mistake("too_few_steps",
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
}
