"""Known wrong answers of conv_basics and the misconception each one reveals.

Each mistake is student-like code (a wrong ``def`` or a wrong value) and the hint a
student who wrote it needs; the judge recognises a mistake by behaviour. The same corpus
feeds the tests (every mistake scores below full marks) and the demo class.

Never staged into the student's worker.
"""

from __future__ import annotations

from grader.runtime.declare import Mistake, mistake

MISTAKES: dict[str, list[Mistake]] = {
    "my_kernel": [
        mistake("lab_kernel",
                "Choose a kernel different from the lab's [[1, 0], [0, -1]].",
                """
           my_kernel = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
           my_out = torch.tensor([[-2.0, 2.0, -4.0], [4.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
                """),
        mistake("stale_output",
                "my_out is still the lab kernel's output: run the lab's loop again with my_kernel.",
                """
           my_kernel = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
           my_out = torch.tensor([[-2.0, 2.0, -4.0], [4.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
                """),
    ],
    "window_1_0": [
        mistake("notes_window",
                "[[1, 2], [4, 5]] is the window the notes name, and it is wrong: out[1, 0] reads "
                "rows 1-2 and columns 0-1 of the image.",
                """
           window_1_0 = [[1.0, 2.0], [4.0, 5.0]]
                """),
        mistake("rows_columns_swapped",
                "You took the window of out[0, 1]: the first index is the row. out[1, 0] starts at "
                "row 1, column 0.",
                """
           window_1_0 = [[2.0, 0.0], [3.0, 0.0]]
                """),
    ],
    "out_1_0": [
        mistake("notes_value",
                "-4 is the notes' worked answer, which used the wrong window [[1, 2], [4, 5]] (a "
                "flipped kernel gives -4 as well). Use rows 1-2, columns 0-1 and K as it is: "
                "5*1 + 3*0 + 2*0 + 1*(-1).",
                """
           out_1_0 = -4.0
                """),
        mistake("rows_columns_swapped",
                "2 is out[0, 1]: the first index is the row. out[1, 0] uses rows 1-2, columns 0-1.",
                """
           out_1_0 = 2.0
                """),
    ],
    "stride1_output_shape": [
        mistake("unchanged",
                "(1, 2, 3, 3) is the shape with stride 2. With stride 1: floor((6 + 2*1 - 3) / 1) "
                "+ 1 = 6.",
                """
           stride1_output_shape = (1, 2, 3, 3)
                """),
        mistake("spatial_only",
                "Give the whole shape [N, C, H, W], batch and channels included.",
                """
           stride1_output_shape = (6, 6)
                """),
        mistake("padding_forgotten",
                "The layer still pads by 1 on each side: 6 + 2*1 - 3 + 1 = 6.",
                """
           stride1_output_shape = (1, 2, 4, 4)
                """),
    ],
    "channels16_shapes": [
        mistake("weight_order",
                "A Conv2d weight is [out_channels, in_channels, k_h, k_w]: (16, 3, 3, 3).",
                """
           channels16_shapes = {"input": (2, 3, 32, 32), "output": (2, 16, 32, 32),
                                "weight": (3, 16, 3, 3), "bias": (16,)}
                """),
        mistake("input_changed",
                "Changing out_channels does not change the input: it is still (2, 3, 32, 32).",
                """
           channels16_shapes = {"input": (2, 16, 32, 32), "output": (2, 16, 32, 32),
                                "weight": (16, 3, 3, 3), "bias": (16,)}
                """),
        mistake("padding_forgotten",
                "padding=1 with a 3x3 kernel keeps 32x32: 32 + 2*1 - 3 + 1 = 32.",
                """
           channels16_shapes = {"input": (2, 3, 32, 32), "output": (2, 16, 30, 30),
                                "weight": (16, 3, 3, 3), "bias": (16,)}
                """),
    ],
    "nhwc_to_nchw": [
        mistake("reshape",
                "reshape keeps the values in memory order and only relabels the axes, so pixels "
                "and channels get mixed even though the shape looks right. Move the axes with "
                "permute(0, 3, 1, 2).",
                """
           def nhwc_to_nchw(x):
               N, H, W, C = x.shape
               return x.reshape(N, C, H, W)
                """),
        mistake("wrong_permute",
                "permute(0, 3, 2, 1) gives [N, C, W, H]: height and width are swapped (square "
                "images hide it; so does transpose(1, 3)). The new order lists old axes: N=0, "
                "C=3, H=1, W=2.",
                """
           def nhwc_to_nchw(x):
               return x.permute(0, 3, 2, 1)
                """),
    ],
}
