"""Module: registration, naming against PyTorch, state_dict, modes, dtype, repr."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn import nn


# The same structure in both frameworks, built by one function taking the framework's nn.
def _block_class(lib, tensor_of):
    class Block(lib.Module):
        def __init__(self):
            super().__init__()
            self.proj = lib.Linear(3, 4)
            self.scale = lib.Parameter(tensor_of(np.ones(4)))
            self.register_buffer("running", tensor_of(np.zeros(4)))
            self.register_buffer("scratch", tensor_of(np.zeros(2)), persistent=False)
            self.act = lib.Tanh()

        def forward(self, x):
            return self.act(self.proj(x)) * self.scale

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.Linear(2, 3, bias=False)
            self.blocks = lib.ModuleList([Block(), Block()])
            self.head = lib.Sequential(lib.Linear(4, 4), lib.ReLU(), lib.Linear(4, 1))

        def forward(self, x):
            x = self.embed(x)
            for block in self.blocks:
                x = block(x)[..., :3]
            return x

    return Net


OurNet = _block_class(nn, lambda a: sn.tensor(a.astype(np.float32)))
TorchNet = _block_class(torch.nn, lambda a: torch.tensor(a, dtype=torch.float32))


def _mlp_pair():
    ref = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return ours, ref


# ----------------------------------------------------------------------------- naming
def test_named_parameters_buffers_and_state_dict_keys_match_torch():
    ours, ref = OurNet(), TorchNet()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in ref.named_modules()]
    assert [n for n, _ in ours.named_children()] == ["embed", "blocks", "head"]
    assert [type(m).__name__ for m in ours.children()] == ["Linear", "ModuleList", "Sequential"]
    assert ours.num_parameters() == sum(p.numel() for p in ref.parameters())
    prefixed = [n for n, _ in ours.blocks[0].named_parameters(prefix="b")]
    assert prefixed == [n for n, _ in ref.blocks[0].named_parameters(prefix="b")]
    assert prefixed == ["b.scale", "b.proj.weight", "b.proj.bias"]
    assert [n for n, _ in ours.blocks[0].named_parameters(recurse=False)] == ["scale"]


def test_repr_matches_torch():
    ours, ref = _mlp_pair()
    assert repr(ours) == repr(ref)
    nested = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(2, 2), nn.GELU()))
    nested_ref = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.GELU()))
    assert repr(nested) == repr(nested_ref)


def test_shared_parameter_yielded_once():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight  # tied, as embeddings and output heads are
    model = nn.Sequential(a, b)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.bias"]
    assert model.num_parameters() == 9 + 3 + 3
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    shared = nn.Sequential(a, a)
    assert len(list(shared.parameters())) == 2 and len(list(shared.modules())) == 2


def test_attribute_registration_rules():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="'weight'"):
        m.weight = sn.zeros(2, 2)
    m.weight = nn.Parameter(np.ones((2, 2)))
    assert m.weight is m._parameters["weight"] and "weight" not in m.__dict__
    del m.bias
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    m.register_buffer("count", np.array(3))
    m.count = np.array(5.0)  # an array assigned to a buffer keeps the buffer's dtype
    assert isinstance(m.count, sn.Tensor) and m.count.dtype == np.int64 and m.count.item() == 5
    m.note = "plain"
    assert m.note == "plain" and "note" not in m.state_dict()
    with pytest.raises(AttributeError, match="nothing"):
        _ = m.nothing

    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Broken()


# ----------------------------------------------------------------------------- state dict
def test_state_dict_round_trip_gives_identical_outputs():
    src = OurNet()
    with sn.no_grad():
        src.blocks[1].running.copy_(np.arange(4.0))
    dst = OurNet()
    x = sn.tensor(np.random.default_rng(0).standard_normal((5, 2)))
    assert not np.array_equal(src(x).data, dst(x).data)
    missing, unexpected = dst.load_state_dict(src.state_dict())
    assert missing == [] and unexpected == []
    np.testing.assert_array_equal(src(x).data, dst(x).data)
    np.testing.assert_array_equal(dst.blocks[1].running.data, np.arange(4.0))
    assert "blocks.0.scratch" not in src.state_dict()  # non-persistent buffer


def test_load_copies_in_place_casts_and_accepts_tensors():
    model = nn.Linear(2, 3)
    weight = model.weight.data
    version = model.weight._version
    sd = {"weight": np.ones((3, 2), dtype=np.float64), "bias": sn.tensor([1.0, 2.0, 3.0])}
    model.load_state_dict(sd)
    assert model.weight.data is weight and model.weight.dtype == np.float32
    assert model.weight._version > version
    np.testing.assert_array_equal(model.bias.data, [1, 2, 3])
    sd["weight"][0, 0] = 7.0  # a copy was taken, not a reference
    assert model.weight.data[0, 0] == 1.0


def test_strict_mismatch_names_missing_and_unexpected_keys():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    sd = dict(model.state_dict())
    before = {k: v.copy() for k, v in sd.items()}
    del sd["2.bias"]
    sd["2.gain"] = np.zeros(1)
    sd["0.weight"] = np.full((3, 2), 9.0)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(sd)
    assert "missing keys: ['2.bias']" in str(info.value)
    assert "unexpected keys: ['2.gain']" in str(info.value)
    np.testing.assert_array_equal(model[0].weight.data, before["0.weight"])  # all or nothing
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert (missing, unexpected) == (["2.bias"], ["2.gain"])
    np.testing.assert_array_equal(model[0].weight.data, np.full((3, 2), 9.0))


@pytest.mark.parametrize("strict", [True, False])
def test_shape_mismatch_names_key_and_both_shapes(strict):
    model = nn.Sequential(nn.Linear(2, 3))
    sd = {"0.weight": np.zeros((4, 2)), "0.bias": np.zeros(3)}
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(sd, strict=strict)
    msg = str(info.value)
    assert "'0.weight'" in msg and "(4, 2)" in msg and "(3, 2)" in msg


def test_load_torch_state_dict_gives_torch_outputs():
    ours, ref = _mlp_pair()
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    expected = ref(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(sn.tensor(x)).data, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- modes, grads
def test_train_eval_propagate():
    model = OurNet()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.blocks.train()
    assert model.blocks[1].act.training and not model.head.training and not model.training
    model.train()
    assert all(m.training for m in model.modules())


def test_requires_grad_false_freezes_and_zero_grad():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    model[0].requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == 4
    assert model.num_parameters() == 13
    model(sn.ones(4, 2)).sum().backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[2].weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_()
    assert model.num_parameters(trainable_only=True) == 13


def test_double_converts_params_and_float_buffers_and_passes_gradcheck():
    model = OurNet()
    model.register_buffer("steps", np.array(0))
    assert model.double() is model
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.blocks[0].running.dtype == np.float64
    assert model.blocks[0].scratch.dtype == np.float64
    assert model.steps.dtype == np.int64
    rng = np.random.default_rng(2)
    x = sn.tensor(rng.standard_normal((3, 2)), dtype=np.float64)
    r = rng.standard_normal((3, 3))
    (model(x) * r).sum().backward()
    w = model.blocks[1].proj.weight
    eps, numeric = 1e-6, np.zeros_like(w.data)
    for i in np.ndindex(w.shape):
        old = w.data[i]
        w.data[i] = old + eps
        up = float((model(x).data * r).sum())
        w.data[i] = old - eps
        down = float((model(x).data * r).sum())
        w.data[i] = old
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(w.grad.data, numeric, rtol=1e-6, atol=1e-9)
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert w.grad.dtype == np.float32
    with pytest.raises(ValueError, match="int64"):
        model.to(np.int64)


def test_apply_hooks_get_submodule_and_deepcopy():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    order = []
    model.apply(lambda m: order.append(type(m).__name__))
    assert order == ["Linear", "ReLU", "Sequential", "Sequential"]
    assert model.get_submodule("1.0") is model[1][0]
    seen = []
    handle = model[0].register_forward_hook(lambda m, inp, out: seen.append(out.shape))
    model(sn.ones(5, 2))
    handle.remove()
    model(sn.ones(5, 2))
    assert seen == [(5, 2)]
    clone = copy.deepcopy(model)
    with sn.no_grad():
        clone[0].weight.fill_(0.0)
    assert clone[0].weight is not model[0].weight and model[0].weight.data.any()
