"""Conv and pooling layers: module contracts, PyTorch parity, init, errors and a LeNet stack."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn import nn

F32_TOL = dict(rtol=1e-4, atol=1e-5)
F64_TOL = dict(rtol=1e-10, atol=1e-12)


def _copy_to_torch(ours: nn.Module, ref: torch.nn.Module) -> None:
    """Copy every parameter of ``ours`` into the same-named parameter of ``ref``."""
    with torch.no_grad():
        theirs = dict(ref.named_parameters())
        for name, p in ours.named_parameters():
            theirs[name].copy_(torch.from_numpy(p.data))


def _assert_forward_backward_match(ours, ref, x_np, tol) -> None:
    """Same output, input gradient and parameter gradients under a random projection."""
    x = sn.tensor(x_np, dtype=x_np.dtype, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    y, yt = ours(x), ref(xt)
    assert y.dtype == x_np.dtype
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **tol)
    r = np.random.default_rng(99).standard_normal(y.shape).astype(x_np.dtype)
    (y * r).sum().backward()
    (yt * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), **tol)
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None and p.grad.dtype == x_np.dtype, name
        np.testing.assert_allclose(p.grad.data, theirs[name].grad.numpy(), err_msg=name, **tol)


# ----------------------------------------------------------------------------- contracts
CONTRACTS = [
    # (layer, torch layer, input shape, expected output shape)
    (nn.Conv2d(3, 8, 3), torch.nn.Conv2d(3, 8, 3), (2, 3, 10, 9), (2, 8, 8, 7)),
    (nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(3, 8, 3, padding=1), (2, 3, 10, 9),
     (2, 8, 10, 9)),
    (nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
     torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
     (2, 4, 9, 8), (2, 6, 5, 6)),
    (nn.Conv2d(4, 4, 4, padding="same", groups=4, bias=False),
     torch.nn.Conv2d(4, 4, 4, padding="same", groups=4, bias=False), (1, 4, 5, 6),
     (1, 4, 5, 6)),
    (nn.Conv2d(3, 5, 3, stride=2), torch.nn.Conv2d(3, 5, 3, stride=2), (3, 9, 7), (5, 4, 3)),
    (nn.Conv1d(3, 6, 5, stride=2, padding=2), torch.nn.Conv1d(3, 6, 5, stride=2, padding=2),
     (2, 3, 11), (2, 6, 6)),
    (nn.Conv1d(4, 8, 2, padding="same", dilation=3, groups=4),
     torch.nn.Conv1d(4, 8, 2, padding="same", dilation=3, groups=4), (4, 7), (8, 7)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("ours,ref,in_shape,out_shape", CONTRACTS,
                         ids=[repr(c[0]) for c in CONTRACTS])
def test_conv_contract_shape_params_repr_and_torch_parity(ours, ref, in_shape, out_shape):
    n_params = sum(p.numel() for p in ref.parameters())
    assert ours.num_parameters() == n_params
    assert [(k, tuple(p.shape)) for k, p in ours.named_parameters()] == [
        (k, tuple(p.shape)) for k, p in ref.named_parameters()]
    assert repr(ours) == repr(ref)
    ref = ref.double()
    ours = ours.to(np.float64)
    _copy_to_torch(ours, ref)
    x_np = np.random.default_rng(0).standard_normal(in_shape)
    assert ours(sn.tensor(x_np, dtype=np.float64)).shape == out_shape
    _assert_forward_backward_match(ours, ref, x_np, F64_TOL)


def test_conv_float32_matches_torch_and_keeps_float32():
    ours = nn.Conv2d(3, 4, 3, padding=1, rng=np.random.default_rng(1))
    ref = torch.nn.Conv2d(3, 4, 3, padding=1)
    _copy_to_torch(ours, ref)
    x_np = np.random.default_rng(2).standard_normal((2, 3, 6, 5)).astype(np.float32)
    _assert_forward_backward_match(ours, ref, x_np, F32_TOL)


def test_conv_state_dict_round_trip():
    a = nn.Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(3))
    b = nn.Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(4))
    sd = a.state_dict()
    assert list(sd) == ["weight", "bias"]
    assert not np.array_equal(np.asarray(sd["weight"]), b.weight.data)
    b.load_state_dict(sd)
    x = sn.tensor(np.random.default_rng(5).standard_normal((1, 2, 5, 5)).astype(np.float32))
    np.testing.assert_array_equal(a(x).data, b(x).data)
    with pytest.raises(Exception, match="weight"):
        nn.Conv2d(2, 3, 5).load_state_dict(sd)


def test_loading_a_torch_conv2d_state_dict_gives_torch_output():
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(3, 6, (3, 2), stride=(1, 2), padding=1, groups=3)
    ours = nn.Conv2d(3, 6, (3, 2), stride=(1, 2), padding=1, groups=3)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x_np = np.random.default_rng(6).standard_normal((2, 3, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(sn.tensor(x_np)).data,
                               ref(torch.from_numpy(x_np)).detach().numpy(), **F32_TOL)


def test_conv_train_and_eval_give_identical_outputs():
    layer = nn.Conv1d(2, 3, 3, rng=np.random.default_rng(7))
    x = sn.tensor(np.random.default_rng(8).standard_normal((2, 2, 6)).astype(np.float32))
    train_out = layer.train()(x).data
    np.testing.assert_array_equal(layer.eval()(x).data, train_out)


def test_unbatched_input_equals_batch_of_one():
    layer = nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=np.random.default_rng(9))
    x_np = np.random.default_rng(10).standard_normal((2, 7, 6)).astype(np.float32)
    np.testing.assert_array_equal(layer(sn.tensor(x_np)).data,
                                  layer(sn.tensor(x_np[None])).data[0])


@pytest.mark.parametrize("layer,shape", [(nn.Conv1d(2, 3, 3), (1, 2, 5)),
                                         (nn.Conv2d(2, 3, 3), (1, 2, 5, 5))])
def test_in_place_weight_change_before_backward_raises(layer, shape):
    out = layer(sn.ones(*shape)).sum()
    with sn.no_grad():
        layer.weight.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.backward()


# ----------------------------------------------------------------------------- init
def test_conv_default_init_is_pytorch_kaiming_uniform_a_sqrt5():
    layer = nn.Conv2d(16, 64, 3, groups=2, rng=np.random.default_rng(11))
    fan_in = 8 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=√5): √(6 / ((1 + 5) fan_in))
    w, b = layer.weight.data, layer.bias.data
    assert w.shape == (64, 8, 3, 3) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound  # U(-b, b): std b/√3
    again = nn.Conv2d(16, 64, 3, groups=2, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(again.weight.data, w)
    np.testing.assert_array_equal(again.bias.data, b)
    assert nn.Conv1d(2, 3, 3, dtype=np.float64).weight.dtype == np.float64


# ----------------------------------------------------------------------------- errors
def test_channel_mismatch_names_layer_expected_and_got():
    layer = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError) as info:
        layer(sn.zeros(2, 4, 8, 8))
    msg = str(info.value)
    assert "Conv2d(3, 8, kernel_size=(3, 3)" in msg and "C = 3" in msg and "(2, 4, 8, 8)" in msg
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        layer(sn.zeros(8, 8))
    with pytest.raises(ValueError, match="C = 2"):
        nn.Conv1d(2, 4, 3)(sn.zeros(1, 3, 9))
    with pytest.raises(TypeError, match="float64"):
        layer(sn.tensor(np.zeros((1, 3, 8, 8)), dtype=np.float64))


@pytest.mark.parametrize("kwargs,match", [
    (dict(padding="same", stride=2), "stride 1"),
    (dict(padding="full"), "padding"),
    (dict(groups=2), "divisible by groups"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(padding=-1), "padding"),
    (dict(padding_mode="reflect"), "padding_mode"),
])
def test_conv_rejects_bad_arguments(kwargs, match):
    args = dict(in_channels=3, out_channels=4, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=match):
        nn.Conv2d(**args)


def test_functional_errors():
    x = sn.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        nn.functional.conv2d(x, sn.zeros(3, 2, 3, 3), dilation=2)
    with pytest.raises(ValueError, match="expected input with 4 channels"):
        nn.functional.conv2d(x, sn.zeros(2, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="at most half the kernel"):
        nn.functional.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="too small"):
        nn.functional.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.MaxPool2d((2, 0))


# ----------------------------------------------------------------------------- pooling
POOLS = [
    (nn.MaxPool2d(2), torch.nn.MaxPool2d(2), (2, 3, 6, 5)),
    (nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True),
     (2, 3, 8, 7)),
    (nn.MaxPool1d(3, 1, 1), torch.nn.MaxPool1d(3, 1, 1), (2, 3, 9)),
    (nn.AvgPool2d(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1), (2, 3, 7, 6)),
    (nn.AvgPool1d(2), torch.nn.AvgPool1d(2), (3, 9)),
    (nn.AdaptiveAvgPool2d((3, 2)), torch.nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1), (2, 3, 4, 4)),
]


@pytest.mark.parametrize("ours,ref,in_shape", POOLS, ids=[repr(c[0]) for c in POOLS])
def test_pool_modules_match_torch(ours, ref, in_shape):
    assert repr(ours) == repr(ref) and ours.num_parameters() == 0
    x_np = np.random.default_rng(12).permutation(math.prod(in_shape)).reshape(in_shape)
    _assert_forward_backward_match(ours, ref, x_np.astype(np.float32) * 0.1, F32_TOL)


def test_max_pool_routes_overlapping_window_gradients_to_each_argmax():
    # Windows [0:3], [1:4], [2:5] of a 1-d signal: the 9 is the max of all three windows.
    x = sn.tensor(np.array([[1.0, 2.0, 9.0, 3.0, 4.0]], dtype=np.float32), requires_grad=True)
    out = nn.functional.max_pool1d(x, 3, stride=1)
    np.testing.assert_array_equal(out.data, [[9.0, 9.0, 9.0]])
    (out * sn.tensor(np.array([[1.0, 10.0, 100.0]], dtype=np.float32))).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0.0, 0.0, 111.0, 0.0, 0.0]])


def test_max_pool_nan_wins_and_takes_the_gradient_as_in_torch():
    x_np = np.array([[[1.0, np.nan, 3.0, np.nan, 5.0, 2.0],
                      [5.0, 6.0, np.nan, 8.0, 1.0, 0.0]]])
    x = sn.tensor(x_np, dtype=np.float64, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    y = nn.functional.max_pool1d(x, 3, stride=1)
    yt = torch.nn.functional.max_pool1d(xt, 3, stride=1)
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    r = np.arange(1.0, 9.0).reshape(1, 2, 4)
    y.backward(r)
    yt.backward(torch.from_numpy(r))
    np.testing.assert_array_equal(x.grad.data, xt.grad.numpy())


def test_global_avg_pool_equals_adaptive_pool_to_one():
    x = sn.tensor(np.random.default_rng(13).standard_normal((2, 3, 5, 4)).astype(np.float32))
    g = nn.GlobalAvgPool2d()(x)
    assert g.shape == (2, 3)
    a = nn.AdaptiveAvgPool2d(1)(x)
    np.testing.assert_allclose(g.data, a.data[:, :, 0, 0], rtol=1e-6)
    assert nn.GlobalAvgPool2d(keepdims=True)(x).shape == (2, 3, 1, 1)


# ----------------------------------------------------------------------------- LeNet
def _lenet_pair(dtype):
    tdtype = getattr(torch, np.dtype(dtype).name)
    ours = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, rng=np.random.default_rng(14), dtype=dtype), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, rng=np.random.default_rng(15), dtype=dtype), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 5, rng=np.random.default_rng(16), dtype=dtype),
    )
    ref = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(8 * 2 * 2, 5),
    ).to(tdtype)
    _copy_to_torch(ours, ref)
    return ours, ref


@pytest.mark.parametrize("dtype,tol", [(np.float32, F32_TOL), (np.float64, F64_TOL)])
def test_lenet_stack_matches_torch_forward_and_all_grads(dtype, tol):
    ours, ref = _lenet_pair(dtype)
    x_np = np.random.default_rng(17).standard_normal((3, 1, 12, 12)).astype(dtype)
    y_np = np.array([0, 3, 4])
    x, xt = sn.tensor(x_np, dtype=dtype), torch.from_numpy(x_np)
    logits, logits_t = ours(x), ref(xt)
    np.testing.assert_allclose(logits.data, logits_t.detach().numpy(), **tol)
    loss = nn.functional.cross_entropy(logits, sn.tensor(y_np))
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.from_numpy(y_np))
    np.testing.assert_allclose(loss.item(), loss_t.item(), **tol)
    loss.backward()
    loss_t.backward()
    theirs = dict(ref.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert names == list(theirs) and len(names) == 6
    for name, p in ours.named_parameters():
        assert p.grad.dtype == dtype, name
        np.testing.assert_allclose(p.grad.data, theirs[name].grad.numpy(), err_msg=name, **tol)


def test_lenet_summary_smoke():
    """Smoke test: the summary traces output shapes through conv and pooling layers."""
    ours, _ = _lenet_pair(np.float32)
    text = ours.summary(input_shape=(1, 1, 12, 12))
    assert "Conv2d" in text and "MaxPool2d" in text and "(1, 8, 2, 2)" in text
