"""Reference solutions of conv_basics: the only copy.

The source notebook's solution cells import from here, the judge computes expected values
here, and the demo class's "right" student is written from them. Functions follow d2l's style
(torch tensors in and out, X/K/Y names); each docstring states shapes and the formula.
The values are what the manual labs ask for.

Never staged into the student's worker.
"""

from __future__ import annotations

import torch

from grader.course.channels_pooling.reference import corr2d
from grader.course.conv_basics.cases import LAB_IMAGE, LAB_KERNEL

__all__ = ["corr2d", "nhwc_to_nchw", "my_kernel", "my_out", "window_1_0", "out_1_0",
           "stride1_output_shape", "channels16_shapes"]



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
