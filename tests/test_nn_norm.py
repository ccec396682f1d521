"""Normalisation layers (LayerNorm, BatchNorm1d/2d, GroupNorm) and Embedding as modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn import nn, optim
from scratchnn.ops.embedding import _scatter_add_rows

TOL = {np.float32: 1e-5, np.float64: 1e-10}


def _copy_params(ours: nn.Module, ref: torch.nn.Module, rng: np.random.Generator) -> None:
    """Random values for every parameter, the same on both sides (ones/zeros hide bugs)."""
    for (name, p), (tname, tp) in zip(ours.named_parameters(), ref.named_parameters()):
        assert name == tname
        values = rng.standard_normal(p.shape).astype(p.dtype)
        p.data[...] = values
        with torch.no_grad():
            tp.copy_(torch.from_numpy(values))


def _check_step(ours, ref, x_np, rng, tol, what=""):
    """One forward + backward of ``(out * r).sum()`` on both sides; compare outputs, grads."""
    x = sn.tensor(x_np, dtype=x_np.dtype, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    y, yt = ours(x), ref(xt)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=tol, atol=tol,
                               err_msg=f"{what} output")
    r = rng.standard_normal(y.shape).astype(x_np.dtype)
    (y * r).sum().backward()
    (yt * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=tol, atol=tol,
                               err_msg=f"{what} input grad")
    for (name, p), tp in zip(ours.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=f"{what} grad of {name}")
    return y.data


def _check_buffers(ours, ref, tol):
    theirs = dict(ref.named_buffers())
    for name, b in ours.named_buffers():
        expected = theirs[name].numpy()
        assert b.dtype == expected.dtype, name
        np.testing.assert_allclose(b.data, expected, rtol=tol, atol=tol, err_msg=name)


# ----------------------------------------------------------------------------- BatchNorm
BN_CASES = [
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3)),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5)),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (2, 3, 4, 3)),
]


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls,tcls,shape", BN_CASES, ids=["1d_NC", "1d_NCL", "2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_running_stats_and_both_modes_match_torch(cls, tcls, shape, momentum, dtype):
    rng = np.random.default_rng(0)
    tol = TOL[dtype]
    ours = cls(3, momentum=momentum, dtype=dtype)
    ref = tcls(3, momentum=momentum, dtype=getattr(torch, np.dtype(dtype).name))
    _copy_params(ours, ref, rng)
    for step in range(4):  # training: batch statistics, running statistics updated
        ours.zero_grad()
        ref.zero_grad()
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        train_out = _check_step(ours, ref, x, rng, tol, f"train step {step}")
        _check_buffers(ours, ref, tol)
    assert int(ours.num_batches_tracked.item()) == 4
    ours.eval()
    ref.eval()
    ours.zero_grad()
    ref.zero_grad()
    eval_out = _check_step(ours, ref, x, rng, tol, "eval")
    _check_buffers(ours, ref, tol)
    # The same batch normalised by running statistics, not by its own.
    assert not np.allclose(train_out, eval_out, atol=1e-3)


def test_batchnorm_eval_uses_running_stats_and_leaves_them_alone():
    bn = nn.BatchNorm1d(2)
    bn.running_mean.data[...] = [1.0, -2.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.weight.data[...] = [2.0, 1.0]
    bn.bias.data[...] = [0.5, 0.0]
    bn.eval()
    x = np.array([[3.0, -1.0], [1.0, -2.0], [-1.0, 0.0]], dtype=np.float32)
    y = bn(x).data
    expected = (x - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5) * [2.0, 1.0] + [0.5, 0]
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_array_equal(bn.running_mean.data, [1.0, -2.0])
    np.testing.assert_array_equal(bn.running_var.data, [4.0, 0.25])
    assert int(bn.num_batches_tracked.item()) == 0
    # Batch size 1 is fine in evaluation.
    np.testing.assert_allclose(bn(x[:1]).data, expected[:1], rtol=1e-6)


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.5),
], ids=["sgd", "adamw"])
def test_optimizer_steps_never_touch_batchnorm_buffers(make_opt):
    rng = np.random.default_rng(1)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    bn = model[1]
    assert {id(b) for b in model.buffers()}.isdisjoint(id(p) for p in model.parameters())
    opt = make_opt(model.parameters())
    for _ in range(3):
        opt.zero_grad()
        out = model(rng.standard_normal((8, 4)).astype(np.float32))
        (out * out).sum().backward()
        before = {k: v.copy() for k, v in model.state_dict().items() if "running" in k}
        weight_before = bn.weight.data.copy()
        opt.step()
        for k, v in before.items():
            np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)
        assert not np.array_equal(bn.weight.data, weight_before)  # the parameters did move
    assert all(b.grad is None for b in model.buffers())
    assert int(bn.num_batches_tracked.item()) == 3


@pytest.mark.parametrize("momentum", [0.1, None])
def test_torch_batchnorm_state_dict_loads_and_continues_identically(momentum):
    rng = np.random.default_rng(2)
    ref = torch.nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(3))
        ref.bias.copy_(torch.randn(3))
    for _ in range(3):
        ref(torch.randn(4, 3, 2, 2) * 2 + 1)
    ours = nn.BatchNorm2d(3, momentum=momentum)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    assert list(state) == list(ours.state_dict())
    assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.shape == ()
    missing, unexpected = ours.load_state_dict(state)
    assert missing == [] and unexpected == []
    assert int(ours.num_batches_tracked.item()) == 3
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    ours.eval()
    ref.eval()
    np.testing.assert_allclose(ours(x).data, ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    # One more training step: with momentum=None the factor 1/4 comes from the loaded count.
    ours.train()
    ref.train()
    np.testing.assert_allclose(ours(x).data, ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    _check_buffers(ours, ref, 1e-6)


def test_batchnorm_without_running_stats_always_uses_batch_stats():
    rng = np.random.default_rng(3)
    ours = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    ref = torch.nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert ours.running_mean is None and ours.num_parameters() == 0
    assert list(ours.state_dict()) == list(ref.state_dict()) == []
    ours.eval()
    ref.eval()
    _check_step(ours, ref, rng.standard_normal((5, 3, 2)).astype(np.float32), rng, 1e-5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ours(np.zeros((1, 3), dtype=np.float32))


def test_batchnorm_errors_name_layer_expected_and_got():
    bn = nn.BatchNorm1d(4)
    with pytest.raises(ValueError) as info:
        bn(sn.zeros(2, 5))
    msg = str(info.value)
    assert "BatchNorm1d(4," in msg and "4 channels" in msg and "(2, 5)" in msg
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4.*4D input, got shape \(2, 4\)"):
        nn.BatchNorm2d(4)(sn.zeros(2, 4))
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \(1, 4\)"):
        bn(sn.zeros(1, 4))
    assert int(bn.num_batches_tracked.item()) == 0  # a rejected batch is not counted
    with pytest.raises(TypeError, match="float64"):
        bn(sn.tensor(np.zeros((2, 4)), dtype=np.float64))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(4, momentum=1.5)


def test_functional_batch_norm_updates_tensor_buffers_in_place():
    x = sn.tensor(np.arange(12.0).reshape(4, 3))
    rm, rv = sn.zeros(3), sn.ones(3)
    version = rm._version
    nn.functional.batch_norm(x, rm, rv, training=True, momentum=0.5)
    np.testing.assert_allclose(rm.data, 0.5 * x.data.mean(0))
    np.testing.assert_allclose(rv.data, 0.5 + 0.5 * x.data.var(0, ddof=1))
    assert rm._version > version
    with pytest.raises(ValueError, match="running_mean and running_var"):
        nn.functional.batch_norm(x, None, None, training=False)


# ----------------------------------------------------------------------------- Layer/GroupNorm
NORM_PAIRS = [
    (lambda d: nn.LayerNorm(5, dtype=d), lambda d: torch.nn.LayerNorm(5, dtype=d), (3, 5)),
    (lambda d: nn.LayerNorm((3, 4), dtype=d), lambda d: torch.nn.LayerNorm((3, 4), dtype=d),
     (2, 3, 4)),
    (lambda d: nn.LayerNorm(4, bias=False, dtype=d),
     lambda d: torch.nn.LayerNorm(4, bias=False, dtype=d), (2, 2, 4)),
    (lambda d: nn.LayerNorm(4, elementwise_affine=False, dtype=d),
     lambda d: torch.nn.LayerNorm(4, elementwise_affine=False, dtype=d), (3, 4)),
    (lambda d: nn.GroupNorm(2, 6, dtype=d), lambda d: torch.nn.GroupNorm(2, 6, dtype=d),
     (3, 6, 4)),
    (lambda d: nn.GroupNorm(3, 6, dtype=d), lambda d: torch.nn.GroupNorm(3, 6, dtype=d),
     (2, 6, 2, 3)),
    (lambda d: nn.GroupNorm(2, 4, affine=False, dtype=d),
     lambda d: torch.nn.GroupNorm(2, 4, affine=False, dtype=d), (2, 4, 5)),
]


@pytest.mark.parametrize("make,tmake,shape", NORM_PAIRS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_and_group_norm_modules_match_torch(make, tmake, shape, dtype):
    rng = np.random.default_rng(4)
    ours, ref = make(dtype), tmake(getattr(torch, np.dtype(dtype).name))
    assert repr(ours) == repr(ref)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for p, tp in zip(ours.parameters(), ref.parameters()):  # default init: ones and zeros
        np.testing.assert_array_equal(p.data, tp.detach().numpy())
    _copy_params(ours, ref, rng)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    _check_step(ours, ref, x, rng, TOL[dtype])
    ours.eval()  # no running statistics: the same in both modes
    y = ours(sn.tensor(x, dtype=dtype)).data
    np.testing.assert_allclose(y, ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=TOL[dtype], atol=TOL[dtype])


def test_norm_state_dicts_load_from_torch():
    rng = np.random.default_rng(5)
    for ours, ref, shape in [(nn.LayerNorm((2, 3)), torch.nn.LayerNorm((2, 3)), (4, 2, 3)),
                             (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4), (2, 4, 3))]:
        with torch.no_grad():
            for tp in ref.parameters():
                tp.copy_(torch.randn(tp.shape))
        ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(ours(x).data, ref(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_layer_and_group_norm_errors():
    with pytest.raises(ValueError, match=r"LayerNorm\(\(4,\).*\(4,\), got shape \(2, 5\)"):
        nn.LayerNorm(4)(sn.zeros(2, 5))
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4.*\(N, 4, \.\.\.\), got shape \(2, 3\)"):
        nn.GroupNorm(2, 4)(sn.zeros(2, 3))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="num_groups"):
        nn.functional.group_norm(sn.zeros(2, 4), 3)


@pytest.mark.parametrize("layer,n_params", [
    (nn.LayerNorm((3, 4)), 24), (nn.LayerNorm(4, bias=False), 4),
    (nn.LayerNorm(4, elementwise_affine=False), 0), (nn.BatchNorm2d(5), 10),
    (nn.BatchNorm1d(5, affine=False), 0), (nn.GroupNorm(2, 6), 12), (nn.Embedding(7, 3), 21),
])
def test_parameter_counts(layer, n_params):
    assert layer.num_parameters() == n_params


# ----------------------------------------------------------------------------- Embedding
def test_embedding_init_padding_row_and_torch_parity():
    layer = nn.Embedding(1000, 64, padding_idx=3, rng=np.random.default_rng(6))
    w = layer.weight.data
    assert w.dtype == np.float32 and w.shape == (1000, 64)
    assert not w[3].any()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01  # N(0, 1)
    ref = torch.nn.Embedding(1000, 64, padding_idx=3)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
    assert repr(layer) == repr(ref)
    idx = np.random.default_rng(7).integers(0, 10, (4, 6))
    idx[0, :3] = 3
    rng = np.random.default_rng(8)
    y, yt = layer(idx), ref(torch.from_numpy(idx))
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    r = rng.standard_normal(y.shape).astype(np.float32)
    (y * r).sum().backward()
    (yt * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.data, ref.weight.grad.numpy(), rtol=1e-5,
                               atol=1e-6)
    assert not layer.weight.grad.data[3].any()


def test_embedding_padding_row_stays_zero_through_training():
    rng = np.random.default_rng(9)
    model = nn.Sequential(nn.Embedding(6, 4, padding_idx=0, rng=rng), nn.Linear(4, 2, rng=rng))
    opt = optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(5):
        opt.zero_grad()
        idx = rng.integers(0, 6, (3, 5))
        idx[:, -1] = 0
        ((model(idx) - 1.0) ** 2).mean().backward()
        assert not model[0].weight.grad.data[0].any()
        opt.step()
    assert not model[0].weight.data[0].any()
    assert model[0].weight.data[1:].any()


def test_embedding_errors_name_index_and_size():
    layer = nn.Embedding(10, 3)
    with pytest.raises(IndexError, match=r"index 12 .*num_embeddings=10"):
        layer(np.array([[1, 12], [3, 4]]))
    with pytest.raises(IndexError, match=r"index -1 .*num_embeddings=10"):
        layer(np.array([-1]))
    with pytest.raises(TypeError, match="integer indices"):
        layer(np.array([1.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(10, 3, padding_idx=10)
    assert nn.Embedding(10, 3, padding_idx=-1).padding_idx == 9


def test_embedding_from_pretrained():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    layer = nn.Embedding.from_pretrained(table)
    assert layer.num_embeddings == 4 and layer.embedding_dim == 3 and layer.padding_idx is None
    assert not layer.weight.requires_grad and layer.num_parameters(trainable_only=True) == 0
    np.testing.assert_array_equal(layer(np.array([2, 0])).data, table[[2, 0]])
    assert not layer(np.array([1])).requires_grad
    tuned = nn.Embedding.from_pretrained(table, freeze=False, padding_idx=1)
    out = tuned(np.array([1, 2, 1]))
    out.sum().backward()
    np.testing.assert_array_equal(tuned.weight.grad.data[:, 0], [0, 0, 1, 0])
    assert nn.Embedding.from_pretrained(table.astype(np.float64),
                                        dtype=np.float64).weight.dtype == np.float64
    with pytest.raises(ValueError, match="2-D"):
        nn.Embedding.from_pretrained(np.zeros(3))


@pytest.mark.parametrize("num_rows,size", [(10_000, 2048), (40, 2048), (1000, 300), (5, 1)])
def test_scatter_add_rows_matches_add_at(num_rows, size):
    rng = np.random.default_rng(num_rows)
    index = rng.integers(0, num_rows, size)
    index[: size // 10] = 1  # one very frequent index (the reduceat path)
    rows = rng.standard_normal((size, 8)).astype(np.float32)
    expected = np.zeros((num_rows, 8), np.float32)
    np.add.at(expected, index, rows)
    np.testing.assert_allclose(_scatter_add_rows(index, rows, num_rows), expected, rtol=1e-5,
                               atol=1e-5)
