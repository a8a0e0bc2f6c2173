"""This course's content: one package per assignment, found by the registry (grader.registry).

Each assignment folder ``<assignment>/`` holds

* ``exercises.py``: ``EXERCISES``, each exercise declared once (grader.runtime.declare.Exercise);
* ``reference.py``: the reference solutions, named as students name them;
* ``cases.py``: ``CASES``, the inputs of each function exercise by check name (staged);
* ``mistakes.py``: ``MISTAKES``, the known wrong answers with their hints, by check name;
* ``judges.py`` (only with "value" exercises): ``JUDGES``, how each value exercise is judged;
* ``standins.py`` (only where an exercise ``uses`` other answers): ``STANDINS``, a trusted
  stand-in for each of them, by answer name (staged).

``inputs.py`` holds inputs shared by several assignments' cases (staged with them); this
module declares the course-wide forbidden-API rule (:data:`FROM_SCRATCH`), staged too.
"""

from __future__ import annotations

from grader.runtime.declare import ForbiddenApi, Tripwire

#: The from-scratch rule of the exercises that build convolution and pooling themselves: no
#: torch (or numpy/scipy) convolution, pooling or unfold, under any name. Given to each such
#: exercise in its ``exercises.py`` (``exercise(..., FROM_SCRATCH)``); the engine's static scan
#: rejects these names in the code the exercise's function uses, and the tripwires note calls
#: of them while the check runs it (grader.engine.forbidden).
FROM_SCRATCH = ForbiddenApi(
    names=frozenset(
        {
            # convolution
            "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
            "conv_transpose3d", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
            "ConvTranspose2d", "LazyConv2d", "convolution", "_convolution", "conv_tbc",
            "mkldnn_convolution", "correlate", "correlate2d", "convolve", "convolve2d",
            "fftconvolve", "oaconvolve",
            # pooling
            "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
            "max_pool2d_with_indices", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d",
            "AvgPool2d", "AvgPool3d", "adaptive_max_pool2d", "adaptive_avg_pool2d",
            "AdaptiveMaxPool2d", "AdaptiveAvgPool2d", "lp_pool2d", "LPPool2d",
            "fractional_max_pool2d", "FractionalMaxPool2d", "maximum_filter", "uniform_filter",
            # sliding windows
            "unfold", "Unfold", "fold", "Fold", "im2col", "col2im", "as_strided",
            "sliding_window_view",
        }
    ),
    tripwires=(
        Tripwire("torch.nn.functional"),
        Tripwire("torch"),
        Tripwire("torch.Tensor", ("unfold", "as_strided"), "Tensor.{name}"),
        *(Tripwire(f"torch.nn.{cls}", ("forward",), "{owner}")
          for cls in ("Conv1d", "Conv2d", "Conv3d", "MaxPool2d", "AvgPool2d", "Unfold",
                      "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")),
    ),
    requirement="must be written from scratch",
    hint="torch's own convolution, pooling and unfold (and numpy/scipy equivalents) are not "
         "allowed here, under any name; use loops or slicing with * and sum/max/mean.",
)
