"""The reference solutions agree with torch and with the notes' worked examples."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from refs import R

from grader.course.conv_basics.cases import LAB_IMAGE, LAB_KERNEL
from grader.course.inputs import NOTES_K, NOTES_X
from grader.runtime.probe import cases_for

SEEDS = [0, 1, 7]


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-5)


def test_notes_examples() -> None:
    X, K = torch.tensor(NOTES_X), torch.tensor(NOTES_K)
    assert R.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]
    assert R.pool2d(X, (2, 2)).tolist() == [[4.0, 5.0], [7.0, 8.0]]
    assert R.pool2d(X, (2, 2), "avg").tolist() == [[2.0, 3.0], [5.0, 6.0]]
    X2, K2 = torch.stack([X, X + 1]), torch.stack([K, K + 1])
    assert R.corr2d_multi_in(X2, K2).tolist() == [[56.0, 72.0], [104.0, 120.0]]
    assert R.corr2d_multi_in_out(X2, torch.stack([K2, K2 + 1, K2 + 2])).shape == (3, 2, 2)


def test_edge_detection_example() -> None:
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    Y = R.corr2d(X, torch.tensor([[1.0, -1.0]]))
    assert Y[0].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
    assert R.corr2d(X.t(), torch.tensor([[1.0, -1.0]])).abs().sum() == 0


def test_manual_lab_values_against_torch() -> None:
    image, kernel = torch.tensor(LAB_IMAGE), torch.tensor(LAB_KERNEL)
    torch_out = F.conv2d(image[None, None], kernel[None, None])[0, 0]
    assert close(R.lab_out, torch_out)
    assert R.lab_out.tolist() == [[-2.0, 2.0, -4.0], [4.0, 0.0, -1.0], [0.0, 0.0, 1.0]]
    # The notes' worked answer names the window [[1, 2], [4, 5]]; the real one is below.
    assert R.window_1_0.tolist() == [[5.0, 3.0], [2.0, 1.0]]
    assert R.out_1_0 == float(torch_out[1, 0]) == 4.0
    assert not torch.equal(R.my_kernel, kernel)
    assert close(R.my_out, F.conv2d(image[None, None], R.my_kernel[None, None])[0, 0])


def test_size_and_channel_labs_against_torch() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, kernel_size=3, stride=1, padding=1)
    assert tuple(conv(torch.randn(1, 1, 6, 6)).shape) == R.stride1_output_shape
    conv16 = torch.nn.Conv2d(3, 16, kernel_size=3, padding=1)
    x = torch.randn(2, 3, 32, 32)
    assert R.channels16_shapes == {
        "input": tuple(x.shape),
        "output": tuple(conv16(x).shape),
        "weight": tuple(conv16.weight.shape),
        "bias": tuple(conv16.bias.shape),
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_correlations_against_conv2d(seed: int) -> None:
    for case in cases_for("corr2d", seed):
        X, K = case.args
        assert close(R.corr2d(X, K), F.conv2d(X[None, None], K[None, None])[0, 0]), case.label
    for case in cases_for("corr2d_multi_in", seed):
        X, K = case.args
        assert close(R.corr2d_multi_in(X, K), F.conv2d(X[None], K[None])[0, 0]), case.label
    for name in ("corr2d_multi_in_out", "corr2d_multi_in_out_1x1"):
        for case in cases_for(name, seed):
            X, K = case.args
            assert close(getattr(R, name)(X, K), F.conv2d(X[None], K)[0]), case.label


@pytest.mark.parametrize("seed", SEEDS)
def test_pooling_against_torch(seed: int) -> None:
    for mode, torch_pool in (("max", F.max_pool2d), ("avg", F.avg_pool2d)):
        for case in cases_for(f"pool2d_{mode}", seed):
            X, size = case.args
            expected = torch_pool(X[None, None], size, stride=1)[0, 0]
            assert close(R.pool2d(X, size, **case.kwargs), expected), case.label
    with pytest.raises(ValueError):
        R.pool2d(torch.zeros(3, 3), (2, 2), "min")


@pytest.mark.parametrize("seed", SEEDS)
def test_pad_stride_against_conv2d(seed: int) -> None:
    for case in cases_for("corr2d_pad_stride", seed):
        X, K = case.args
        p, s = case.kwargs["padding"], case.kwargs["stride"]
        expected = F.conv2d(X[None, None], K[None, None], padding=p, stride=s)[0, 0]
        assert close(R.corr2d_pad_stride(X, K, padding=p, stride=s), expected), case.label


def test_conv_output_size_matches_torch() -> None:
    for case in cases_for("conv_output_size"):
        if case.raises:
            with pytest.raises(ValueError):
                R.conv_output_size(*case.args)
            continue
        n, k, p, s = (list(case.args) + [0, 1])[:4]
        conv = torch.nn.Conv2d(1, 1, kernel_size=k, padding=p, stride=s)
        assert R.conv_output_size(*case.args) == conv(torch.zeros(1, 1, n, n)).shape[-1]


def test_receptive_field_by_gradient() -> None:
    """The receptive field is the number of input pixels that reach one output unit."""
    for case in cases_for("receptive_field"):
        (layers,) = case.args
        x = torch.zeros(1, 1, 64, requires_grad=True)
        y = x
        for k, s in layers:
            y = F.conv1d(y, torch.ones(1, 1, k), stride=s)
        y[0, 0, y.shape[-1] // 2].backward()
        assert int((x.grad != 0).sum()) == R.receptive_field(layers), case.label


def test_parameter_counts_against_torch() -> None:
    for case in cases_for("conv_params"):
        c_in, c_out, k = case.args
        layer = torch.nn.Conv2d(c_in, c_out, k, bias=case.kwargs.get("bias", True))
        expected = sum(p.numel() for p in layer.parameters())
        assert R.conv_params(*case.args, **case.kwargs) == expected
    for case in cases_for("fc_params"):
        layer = torch.nn.Linear(*case.args, bias=case.kwargs.get("bias", True))
        assert R.fc_params(*case.args, **case.kwargs) == sum(p.numel() for p in layer.parameters())


def test_learn_kernel_recovers_the_kernel() -> None:
    for case in cases_for("learn_kernel"):
        learned = R.learn_kernel(*case.args)
        assert (learned - case.target).abs().max() < 0.01, case.label


@pytest.mark.parametrize("seed", SEEDS)
def test_nhwc_to_nchw_moves_every_value(seed: int) -> None:
    for case in cases_for("nhwc_to_nchw", seed):
        (x,) = case.args
        y = R.nhwc_to_nchw(x)
        n, h, w, c = x.shape
        assert y.shape == (n, c, h, w)
        assert all(y[0, ci, hi, wi] == x[0, hi, wi, ci]
                   for ci in range(c) for hi in range(h) for wi in range(w))


def test_solution_sources_define_their_names() -> None:
    from grader.checks import CHECKS

    for spec in CHECKS.values():
        namespace: dict = {"torch": torch, "corr2d": R.corr2d, "corr2d_multi_in": R.corr2d_multi_in}
        exec(R.solution_source(spec.answers[0]), namespace)  # noqa: S102
        for name in spec.answers:
            assert name in namespace, (spec.name, name)
