"""The NumPy from-scratch example: its hand-written backward against scratchnn's autograd."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

import scratchnn as sn
import scratchnn.nn.functional as F

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "numpy_mlp_from_scratch.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("numpy_mlp_from_scratch", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hand_written_gradients_match_autograd(example):
    rng = np.random.default_rng(3)
    net = example.NeuralNetwork(4, 7, 3, rng)
    X = rng.normal(size=(11, 4))
    labels = rng.integers(0, 3, size=11)
    Y = example.one_hot(labels, 3)

    P = net.forward(X)
    hand = net.backward(Y)

    params = {
        name: sn.tensor(getattr(net, name), dtype=np.float64, requires_grad=True)
        for name in ("W1", "b1", "W2", "b2")
    }
    x = sn.tensor(X, dtype=np.float64)
    hidden = sn.sigmoid(x @ params["W1"] + params["b1"])
    logits = hidden @ params["W2"] + params["b2"]
    loss = F.cross_entropy(logits, sn.tensor(labels))
    loss.backward()

    assert loss.item() == pytest.approx(net.loss(P, Y), rel=1e-12)
    for name, grad in hand.items():
        np.testing.assert_allclose(grad, params[name].grad.data, rtol=1e-10, atol=1e-13)


def test_example_learns_iris(example):
    accuracies = []
    for seed in range(3):
        with contextlib.redirect_stdout(io.StringIO()):
            accuracies.append(example.main(epochs=100, seed=seed))
    assert np.mean(accuracies) >= 0.93, accuracies


def test_loss_refuses_integer_labels(example):
    net = example.NeuralNetwork(4, 5, 3, np.random.default_rng(0))
    P = net.forward(np.zeros((6, 4)))
    with pytest.raises(ValueError, match="one-hot"):
        net.loss(P, np.array([0, 1, 2, 0, 1, 2]))
