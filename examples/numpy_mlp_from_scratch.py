"""The classic from-scratch tutorial network, made right.

A two-layer network written in plain NumPy — ``forward``, ``loss``, ``backward``, ``fit`` — with a
sigmoid hidden layer, trained on standardised iris. The usual version of this code ships with
three bugs; each is fixed here and marked ``# FIX``:

1. the hidden activations are not kept, so ``backward`` recomputes or misuses them;
2. the sigmoid derivative is applied to the wrong value (to the activation's input through
   ``s * (1 - s)`` with ``s`` = the input, instead of to the sigmoid's *output*);
3. integer labels are fed to a squared-error loss against 3 outputs, which broadcasts a (N,)
   target against (N, 3) predictions instead of comparing each row with its class.

Here the targets are one-hot and the loss matches the output layer: softmax + cross-entropy,
whose gradient with respect to the logits is simply ``(P - Y) / N``. ``tests/test_examples.py``
checks these hand-written gradients against scratchnn's autograd on the same weights.

Run: ``python examples/numpy_mlp_from_scratch.py``
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_iris


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)  # shift: exp never overflows
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], num_classes))
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


class NeuralNetwork:
    """Input → Linear → sigmoid → Linear → softmax, trained with cross-entropy."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> None:
        # Xavier/Glorot initialisation suits the sigmoid hidden layer.
        self.W1 = rng.normal(0.0, np.sqrt(2.0 / (n_in + n_hidden)), (n_in, n_hidden))
        self.b1 = np.zeros(n_hidden)
        self.W2 = rng.normal(0.0, np.sqrt(2.0 / (n_hidden + n_out)), (n_hidden, n_out))
        self.b2 = np.zeros(n_out)

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (N, n_out); keeps what backward needs."""
        self.X = X
        self.A1 = sigmoid(X @ self.W1 + self.b1)  # FIX 1: keep the hidden activations
        self.P = softmax(self.A1 @ self.W2 + self.b2)
        return self.P

    def loss(self, P: np.ndarray, Y: np.ndarray) -> float:
        """Mean cross-entropy of probabilities P against one-hot targets Y (FIX 3)."""
        if P.shape != Y.shape:
            raise ValueError(f"predictions {P.shape} and one-hot targets {Y.shape} differ")
        return float(-(Y * np.log(np.clip(P, 1e-12, 1.0))).sum(axis=1).mean())

    def backward(self, Y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the mean loss of the last forward pass."""
        n = Y.shape[0]
        dZ2 = (self.P - Y) / n  # softmax + cross-entropy: the Jacobians collapse to this
        dA1 = dZ2 @ self.W2.T
        dZ1 = dA1 * self.A1 * (1.0 - self.A1)  # FIX 2: sigmoid' from its *output*
        return {
            "W1": self.X.T @ dZ1,
            "b1": dZ1.sum(axis=0),
            "W2": self.A1.T @ dZ2,
            "b2": dZ2.sum(axis=0),
        }

    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        epochs: int = 100,
        lr: float = 0.5,
        batch_size: int = 16,
        rng: np.random.Generator | None = None,
    ) -> list[float]:
        """Mini-batch gradient descent; returns the training loss after each epoch."""
        rng = rng or np.random.default_rng(0)
        history = []
        for _ in range(epochs):
            order = rng.permutation(X.shape[0])
            for start in range(0, X.shape[0], batch_size):
                idx = order[start : start + batch_size]
                self.forward(X[idx])
                for name, grad in self.backward(Y[idx]).items():
                    setattr(self, name, getattr(self, name) - lr * grad)
            history.append(self.loss(self.forward(X), Y))
        return history

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.forward(X).argmax(axis=1)


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    """Train and test indices with each class split in the same proportion."""
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * idx.size))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return np.array(sorted(train)), np.array(sorted(test))


def main(epochs: int = 100, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    X, y = load_iris(return_X_y=True)
    train, test = stratified_split(y, 0.2, rng)
    # Standardise with statistics of the training rows only: the test rows stay unseen.
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    X = (X - mean) / np.where(std > 0, std, 1.0)
    Y = one_hot(y, 3)

    net = NeuralNetwork(4, 16, 3, rng)
    history = net.fit(X[train], Y[train], epochs=epochs, rng=rng)
    accuracy = float((net.predict(X[test]) == y[test]).mean())
    print(f"final training loss {history[-1]:.4f}")
    print(f"test accuracy {accuracy:.3f} on {test.size} held-out rows")
    return accuracy


if __name__ == "__main__":
    main()
