"""Trusted stand-ins for the answers other exercises of channels_pooling build on.

``corr2d_multi_in`` calls the student's ``corr2d``, and ``corr2d_multi_in_out`` calls their
``corr2d_multi_in`` (``uses=`` in ``exercises.py``). The check also runs such a function with
those names replaced by the stand-ins below (grader.runtime.probe), so that a right
``corr2d_multi_in`` is not zeroed by a wrong ``corr2d``.

Staged into the worker, where the student's code can read this file and call these
functions, so they are made to be useless to a cheater:

* they are torch's own convolution (``F.conv2d``), which this course forbids students to use
  (grader.course.FROM_SCRATCH): reading them teaches nothing that earns a point, and they
  are not the reference solutions (never staged);
* they look ``F.conv2d`` up when called, so the forbidden-API tripwires see every call a
  student's code makes to them (a student who calls one gets the forbidden verdict); only
  the probe's own stand-in run, which installs them, leaves their calls out of its record;
* they are strict: a plain torch tensor of exactly the dimensions the reference takes, else
  an error, so a wrong use (``corr2d`` on a whole 3-D input) fails as it would with any right
  ``corr2d``, and no student code (a tensor subclass, a torch function or dispatch mode)
  runs inside them.

Each returns a new float32 tensor, as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812 - looked up at each call: the tripwires see it


def _plain(name: str, value: object, dims: int) -> torch.Tensor:
    """``value`` if it is a plain torch tensor with ``dims`` dimensions, else an error."""
    if type(value) is not torch.Tensor:
        raise TypeError(f"{name} must be a torch tensor, not {type(value).__name__}")
    if value.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimensions, not {value.dim()}")
    return value


def _correlate(X: object, K: object, dims: int) -> torch.Tensor:
    """``F.conv2d`` of X with the kernel K, both of ``dims`` dimensions (2: one channel, 3: a
    channel axis first, summed): the (h', w') result in float32.

    Everything runs with torch function handling off and refuses to run under a dispatch
    mode, so no code of the caller's runs inside.
    """
    if torch._C._len_torch_dispatch_stack():
        raise RuntimeError("the stand-in does not run under a torch dispatch mode")
    with torch._C.DisableTorchFunction():
        X, K = _plain("X", X, dims), _plain("K", K, dims)
        if dims == 2:
            X, K = X[None], K[None]
        if X.shape[0] != K.shape[0]:
            raise ValueError(f"X has {X.shape[0]} channels but K has {K.shape[0]}")
        if K.shape[1] > X.shape[1] or K.shape[2] > X.shape[2]:
            raise RuntimeError(f"the kernel {tuple(K.shape[1:])} is larger than the input "
                               f"{tuple(X.shape[1:])}")
        Y = F.conv2d(X[None].to(torch.float64), K[None].to(torch.float64))
        return Y[0, 0].to(torch.float32)


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A right ``corr2d``: X (n_h, n_w), K (k_h, k_w) -> (n_h - k_h + 1, n_w - k_w + 1)."""
    return _correlate(X, K, 2)


def corr2d_multi_in(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A right ``corr2d_multi_in``: X (c_i, n_h, n_w), K (c_i, k_h, k_w) -> (h', w')."""
    return _correlate(X, K, 3)


#: The stand-in of each answer an exercise of this assignment ``uses``, by name.
STANDINS: dict[str, Callable[..., torch.Tensor]] = {
    "corr2d": corr2d,
    "corr2d_multi_in": corr2d_multi_in,
}
