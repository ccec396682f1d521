"""Layers: Linear, Identity, Flatten, activations, Dropout, containers and summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn import nn

ACTIVATIONS = [
    (nn.ReLU(), torch.nn.ReLU()),
    (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU(approximate="tanh")),
    (nn.Softplus(beta=2.0, threshold=5.0), torch.nn.Softplus(beta=2.0, threshold=5.0)),
    (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)),
    (nn.Flatten(), torch.nn.Flatten()),
    (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
    (nn.Identity(), torch.nn.Identity()),
]


def _numeric_grad(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``array`` (changed in place)."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        old = array[i]
        array[i] = old + eps
        up = f()
        array[i] = old - eps
        down = f()
        array[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def _linear_pair(dtype, bias: bool = True, in_f: int = 5, out_f: int = 3):
    ours = nn.Linear(in_f, out_f, bias=bias, rng=np.random.default_rng(0), dtype=dtype)
    ref = torch.nn.Linear(in_f, out_f, bias=bias, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(ours.weight.data))
        if bias:
            ref.bias.copy_(torch.from_numpy(ours.bias.data))
    return ours, ref


# ----------------------------------------------------------------------------- Linear
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (5,)])
def test_linear_matches_torch_forward_and_grads(dtype, tol, bias, shape):
    rng = np.random.default_rng(1)
    ours, ref = _linear_pair(dtype, bias)
    x_np = rng.standard_normal(shape).astype(dtype)
    x = sn.tensor(x_np, dtype=dtype, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    y, yt = ours(x), ref(xt)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=tol, atol=tol)
    r = rng.standard_normal(y.shape).astype(dtype)
    (y * r).sum().backward()
    (yt * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.weight.grad.data, ref.weight.grad.numpy(), rtol=tol,
                               atol=tol)
    if bias:
        np.testing.assert_allclose(ours.bias.grad.data, ref.bias.grad.numpy(), rtol=tol,
                                   atol=tol)


def test_linear_float64_gradcheck():
    rng = np.random.default_rng(2)
    layer = nn.Linear(4, 3, rng=rng, dtype=np.float64)
    x = sn.tensor(rng.standard_normal((2, 4)), dtype=np.float64, requires_grad=True)
    r = rng.standard_normal((2, 3))

    def loss():
        return float((layer(x).data * r).sum())

    (layer(x) * r).sum().backward()
    for tensor in (x, layer.weight, layer.bias):
        numeric = _numeric_grad(loss, tensor.data)
        np.testing.assert_allclose(tensor.grad.data, numeric, rtol=1e-7, atol=1e-8)


def test_linear_layout_init_and_reproducibility():
    layer = nn.Linear(400, 300, rng=np.random.default_rng(3))
    assert layer.weight.shape == (300, 400) and layer.bias.shape == (300,)
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    bound = 1 / math.sqrt(400)
    w = layer.weight.data
    assert np.abs(w).max() <= bound and np.abs(layer.bias.data).max() <= bound
    # U(-b, b) has std b/√3: PyTorch's kaiming_uniform(a=√5) default.
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    again = nn.Linear(400, 300, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(again.weight.data, w)
    assert nn.Linear(2, 3, bias=False).bias is None
    assert nn.Linear(2, 3, dtype=np.float64).weight.dtype == np.float64


def test_linear_errors_name_layer_expected_and_got():
    layer = nn.Linear(3, 4)
    with pytest.raises(ValueError) as info:
        layer(sn.zeros(2, 5))
    msg = str(info.value)
    assert "Linear(in_features=3, out_features=4" in msg and "3" in msg and "(2, 5)" in msg
    with pytest.raises(TypeError, match="float64"):
        layer(sn.tensor(np.zeros((2, 3)), dtype=np.float64))
    with pytest.raises(ValueError, match="out_features"):
        nn.Linear(3, -1)


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize("ours,ref", ACTIVATIONS, ids=lambda m: repr(m))
def test_activation_modules_match_torch(ours, ref):
    rng = np.random.default_rng(4)
    x_np = (rng.standard_normal((3, 4, 2)) * 3).astype(np.float32)
    x = sn.tensor(x_np, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    y, yt = ours(x), ref(xt)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    r = rng.standard_normal(y.shape).astype(np.float32)
    (y * r).sum().backward()
    (yt * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert repr(ours) == repr(ref)


# ----------------------------------------------------------------------------- dropout
def test_dropout_train_zeroes_p_and_rescales():
    p = 0.3
    layer = nn.Dropout(p, rng=np.random.default_rng(5))
    x = sn.ones(1000, 1000)
    y = layer(x).data
    dropped = (y == 0).mean()
    assert abs(dropped - p) < 0.005
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / (1 - p)], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01
    assert y.dtype == np.float32


def test_dropout_eval_and_p0_are_identity():
    x = sn.tensor(np.arange(6.0).reshape(2, 3))
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert nn.functional.dropout(x, 0.9, training=False) is x


def test_dropout_gradient_flows_only_through_kept_units():
    p = 0.5
    x = sn.tensor(np.random.default_rng(6).standard_normal((50, 40)), requires_grad=True)
    y = nn.Dropout(p, rng=np.random.default_rng(7))(x)
    y.sum().backward()
    kept = y.data != 0
    expected = np.where(kept, 1 / (1 - p), 0.0)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-6)
    np.testing.assert_allclose(y.data[kept], x.data[kept] / (1 - p), rtol=1e-6)


def test_dropout_rng_reproducible_and_default_generator():
    x = sn.ones(20, 20)
    a = nn.Dropout(0.5, rng=np.random.default_rng(8))(x).data
    b = nn.Dropout(0.5, rng=np.random.default_rng(8))(x).data
    np.testing.assert_array_equal(a, b)
    sn.manual_seed(11)
    c = nn.Dropout(0.5)(x).data
    sn.manual_seed(11)
    d = nn.Dropout(0.5)(x).data
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5", True])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match=repr(p).replace(".", r"\.")):
        nn.functional.dropout(sn.ones(2), p)


# ----------------------------------------------------------------------------- contracts
@pytest.mark.parametrize(
    "layer,in_shape,out_shape,n_trainable",
    [
        (nn.Linear(5, 3), (4, 5), (4, 3), 5 * 3 + 3),
        (nn.Linear(5, 3, bias=False), (2, 7, 5), (2, 7, 3), 15),
        (nn.Flatten(), (2, 3, 4, 5), (2, 60), 0),
        (nn.Flatten(1, 2), (2, 3, 4, 5), (2, 12, 5), 0),
        (nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)), (3, 4), (3, 2), 58),
    ],
)
def test_layer_contract(layer, in_shape, out_shape, n_trainable):
    y = layer(sn.zeros(*in_shape))
    assert y.shape == out_shape
    assert layer.num_parameters(trainable_only=True) == n_trainable
    assert sum(p.numel() for p in layer.parameters()) == n_trainable


# ----------------------------------------------------------------------------- containers
def test_sequential_indexing_and_editing():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    seq.append(c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [a, b]
    assert head(sn.ones(1, 2)).shape == (1, 3)
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"] and seq[1] is c
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with pytest.raises(IndexError, match="index 5"):
        seq[5]
    x = sn.ones(4, 2)
    np.testing.assert_allclose(seq(x).data, c(a(x)).data)


def test_sequential_from_ordered_dict_keeps_names():
    from collections import OrderedDict

    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in seq.named_parameters()] == ["fc.weight", "fc.bias"]
    assert seq.fc is seq[0]


def test_module_list_and_dict_register_children():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    layers.extend([nn.Linear(2, 3)])
    assert len(layers) == 3 and isinstance(layers[1:], nn.ModuleList)
    assert [n for n, _ in layers.named_parameters()][-2:] == ["2.weight", "2.bias"]
    heads = nn.ModuleDict({"cls": nn.Linear(2, 4), "reg": nn.Linear(2, 1)})
    assert "cls" in heads and list(heads) == ["cls", "reg"] and len(heads) == 2
    assert heads.num_parameters() == 12 + 3
    del heads["reg"]
    assert list(heads.state_dict()) == ["cls.weight", "cls.bias"]


# ----------------------------------------------------------------------------- summary
def test_summary_reports_shapes_and_counts():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    model[0].requires_grad_(False)
    text = nn.summary(model, (2, 4))
    rows = {line.split()[0]: line.split() for line in text.splitlines()[4:8]}
    assert rows["0"][-3:] == ["(2,", "8)", "40"]
    assert rows["3"][-3:] == ["(2,", "3)", "27"]
    assert "Total params: 67" in text
    assert "Trainable params: 27" in text and "Non-trainable params: 40" in text
    assert model.training and model[2].training  # restored after the eval-mode pass
    assert model.summary() == nn.summary(model)
    assert "Output shape" not in model.summary()
