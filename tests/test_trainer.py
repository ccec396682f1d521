"""Trainer, MLP and early stopping: learning, best-model restore, logs, non-finite losses."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from scratchnn import optim
from scratchnn.errors import NonFiniteLossError, NonFiniteLossWarning
from scratchnn.models import MLP, MLPConfig
from scratchnn.training import EarlyStopping, Trainer, TrainerConfig


def blobs(n: int = 240, seed: int = 0, noise: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 4-D: easy for an MLP, hard for nothing."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2, 0, 0, 0], [-2, 2, 0, 0], [0, -2, 2, 0]], dtype=np.float32)
    x = centers[y] + rng.normal(0, noise, (n, 4)).astype(np.float32)
    return x.astype(np.float32), y.astype(np.int64)


def make(cfg: TrainerConfig, *, dropout: float = 0.0, lr: float = 1e-2, seed: int = 0,
         run_dir=None, out: int = 3, opt: str = "adam"):
    model_rng = np.random.default_rng(seed)
    model = MLP(MLPConfig(4, out, (16,), "tanh", dropout, "xavier_uniform"), rng=model_rng)
    if opt == "adam":
        optimizer = optim.Adam(model.parameters(), lr=lr)
    else:
        optimizer = optim.SGD(model.parameters(), lr=lr)
    trainer = Trainer(model, optimizer, cfg, num_classes=out if cfg.task != "regression" else None,
                      run_dir=run_dir, rng=np.random.default_rng(seed + 1),
                      rngs={"model": model_rng})
    return model, trainer


# ----------------------------------------------------------------------------- MLP config
def test_mlp_config_round_trips_and_validates():
    cfg = MLPConfig(4, 3, (32, 16), "relu", 0.1, "kaiming_normal")
    assert MLPConfig.from_dict(json.loads(json.dumps(cfg.asdict()))) == cfg
    with pytest.raises(ValueError, match=r"unknown activation 'swishy'.*relu.*tanh"):
        MLPConfig(4, 3, activation="swishy")
    with pytest.raises(ValueError, match=r"unknown init scheme 'he'.*xavier_uniform"):
        MLPConfig(4, 3, init="he")
    with pytest.raises(ValueError, match=r"hidden_sizes must hold positive integers, got 0"):
        MLPConfig(4, 3, hidden_sizes=(8, 0))
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.5"):
        MLPConfig(4, 3, dropout=1.5)
    with pytest.raises(ValueError, match=r"unknown MLPConfig field\(s\) \['depth'\]"):
        MLPConfig.from_dict({"in_features": 4, "out_features": 3, "depth": 2})


@pytest.mark.parametrize("activation, gain", [("tanh", 5 / 3), ("relu", math.sqrt(2)),
                                              ("sigmoid", 1.0)])
def test_mlp_init_uses_the_activation_gain_and_zero_biases(activation, gain):
    cfg = MLPConfig(400, 300, (500,), activation, init="xavier_normal")
    model = MLP(cfg, rng=np.random.default_rng(0))
    hidden, head = model.net[0], model.net[2]
    expected = gain * math.sqrt(2 / (400 + 500))
    assert np.std(hidden.weight.data) == pytest.approx(expected, rel=0.02)
    # The output layer is followed by no activation: gain 1.
    assert np.std(head.weight.data) == pytest.approx(math.sqrt(2 / (500 + 300)), rel=0.02)
    assert not hidden.bias.data.any() and not head.bias.data.any()


def test_mlp_kaiming_uniform_bound():
    model = MLP(MLPConfig(300, 2, (200,), "relu", init="kaiming_uniform"),
                rng=np.random.default_rng(0))
    w = model.net[0].weight.data
    bound = math.sqrt(2) * math.sqrt(3 / 300)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound


# ----------------------------------------------------------------------------- training
def test_fit_learns_and_keeps_the_best_epoch(tmp_path):
    x, y = blobs(noise=1.0)  # overlapping blobs: the validation loss turns up, then stops
    cfg = TrainerConfig(epochs=60, batch_size=16, patience=5, progress=False)
    model, trainer = make(cfg, lr=0.03, run_dir=tmp_path)
    result = trainer.fit((x[:160], y[:160]), (x[160:200], y[160:200]))
    assert result.stopped_early and result.stop_reason == "early stopping"
    assert len(result.history) == result.best_epoch + 5
    # The model holds the best epoch's weights: its validation loss is that epoch's, exactly.
    best = result.history[result.best_epoch - 1]
    assert best["val_loss"] == min(r["val_loss"] for r in result.history)
    assert trainer.evaluate(x[160:200], y[160:200])["loss"] == best["val_loss"]
    test = trainer.evaluate(x[200:], y[200:])
    assert test["accuracy"] >= 0.85
    assert np.array(test["confusion_matrix"]).sum() == 40

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
    for key in ("step", "train_loss", "val_loss", "val_accuracy", "val_f1", "lr", "time"):
        assert key in records[0]
    assert records[-1]["step"] == len(records) * 10  # 160 rows / 16 per batch
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "model.safetensors").is_file()


def test_mse_loss_for_classification_uses_one_hot_targets():
    x, y = blobs()
    cfg = TrainerConfig(loss="mse", epochs=30, batch_size=16, progress=False)
    _, trainer = make(cfg)
    trainer.fit((x[:200], y[:200]))
    assert trainer.evaluate(x[200:], y[200:])["accuracy"] >= 0.9


def test_regression_metrics_in_original_units():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=300)).astype(np.float32)
    cfg = TrainerConfig(task="regression", loss="mse", epochs=40, progress=False)
    _, trainer = make(cfg, out=1)
    trainer.target_inverse = lambda v: np.asarray(v, dtype=np.float64) * 10 + 5
    trainer.fit((x[:240], y[:240]))
    metrics = trainer.evaluate(x[240:], y[240:])
    assert metrics["r2"] > 0.95
    # MSE is reported in the inverse-transformed units: 100x the model-space loss.
    assert metrics["mse"] == pytest.approx(100 * metrics["loss"], rel=1e-4)


def test_trainer_config_rejects_bad_values():
    with pytest.raises(ValueError, match="loss 'ce'.*classification"):
        TrainerConfig(task="regression", loss="ce")
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        TrainerConfig(on_nonfinite="ignore")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        TrainerConfig(batch_size=0)


# ----------------------------------------------------------------------------- non-finite
def test_nonfinite_loss_raises_naming_the_step():
    x, y = blobs()
    cfg = TrainerConfig(loss="mse", epochs=5, batch_size=16, progress=False)
    _, trainer = make(cfg, lr=1e6, opt="sgd")
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit((x, y))
    msg = str(info.value)
    match = re.search(r"non-finite training loss \((nan|inf)\) at step (\d+) \(epoch (\d+), "
                      r"batch (\d+)/15\)", msg)
    assert match, msg
    step, epoch, batch = (int(g) for g in match.groups()[1:])
    assert step == (epoch - 1) * 15 + batch and step == trainer.step


def test_injected_nan_stops_at_step_one():
    x, y = blobs()
    x[0, 0] = np.nan
    cfg = TrainerConfig(epochs=3, batch_size=len(x), progress=False)
    _, trainer = make(cfg)
    with pytest.raises(NonFiniteLossError, match=r"at step 1 \(epoch 1, batch 1/1\)"):
        trainer.fit((x, y))


def test_nonfinite_warn_mode_stops_and_restores_the_best_model(tmp_path):
    x, y = blobs()
    cfg = TrainerConfig(epochs=20, batch_size=16, on_nonfinite="warn", progress=False)
    model, trainer = make(cfg, lr=0.05, opt="sgd", run_dir=tmp_path)
    original = trainer._train_epoch

    def blow_up_in_epoch_4(loader, epoch):
        if epoch == 4:
            model.net[0].weight.data[...] = np.inf
        return original(loader, epoch)

    trainer._train_epoch = blow_up_in_epoch_4
    with pytest.warns(NonFiniteLossWarning, match=r"at step 31 \(epoch 4, batch 1/10\)"):
        result = trainer.fit((x[:160], y[:160]), (x[160:], y[160:]))
    assert result.stop_reason == "non-finite loss" and len(result.history) == 3
    assert np.isfinite(model.net[0].weight.data).all()  # the best epoch came back
    best = result.history[result.best_epoch - 1]
    assert trainer.evaluate(x[160:], y[160:])["loss"] == best["val_loss"]


# ----------------------------------------------------------------------------- callbacks
def test_early_stopping_modes_and_state():
    stop = EarlyStopping("val_accuracy", patience=2)
    assert stop.mode == "max"
    assert stop.update({"epoch": 1, "val_accuracy": 0.5})
    assert not stop.update({"epoch": 2, "val_accuracy": 0.5})
    saved = stop.state_dict()
    assert not stop.update({"epoch": 3, "val_accuracy": 0.4}) and stop.should_stop
    again = EarlyStopping("val_accuracy", patience=2)
    again.load_state_dict(saved)
    assert (again.best, again.best_epoch, again.wait) == (0.5, 1, 1)
    assert EarlyStopping("val_loss").mode == "min"
    with pytest.raises(ValueError, match=r"monitors 'val_f1', which is not among"):
        EarlyStopping("val_f1").update({"epoch": 1, "val_loss": 1.0})
