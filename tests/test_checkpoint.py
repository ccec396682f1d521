"""Checkpoints: exact reload of a run, bit-exact resume, clear errors for damaged files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchnn import optim
from scratchnn.data import Preprocessor, Table
from scratchnn.errors import CheckpointError
from scratchnn.models import MLP, MLPConfig
from scratchnn.optim.lr_scheduler import CosineAnnealingLR
from scratchnn.serialization import load_tensors, save_json
from scratchnn.training import Trainer, TrainerConfig, load_run
from scratchnn.training import checkpoint as ckpt

MODEL_CFG = MLPConfig(4, 3, (16,), "tanh", 0.2, "xavier_uniform")  # dropout draws from rng


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 200)
    centers = np.array([[2, 0, 0, 0], [-2, 2, 0, 0], [0, -2, 2, 0]], dtype=np.float32)
    return (centers[y] + rng.normal(0, 1.0, (200, 4))).astype(np.float32), y.astype(np.int64)


def make_trainer(run_dir, epochs: int) -> Trainer:
    """A fresh model/optimizer/scheduler/trainer, seeded identically every time."""
    model_rng = np.random.default_rng(1)
    model = MLP(MODEL_CFG, rng=model_rng)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
    cfg = TrainerConfig(epochs=epochs, batch_size=16, patience=50, checkpoint_every=1,
                        progress=False, plot=False)
    return Trainer(model, optimizer, cfg, scheduler=scheduler, num_classes=3, run_dir=run_dir,
                   rng=np.random.default_rng(2), rngs={"model": model_rng},
                   model_metadata={"model": {"name": "mlp", "config": MODEL_CFG.asdict()}})


def fit(trainer: Trainer, resume: bool = False):
    x, y = data()
    return trainer.fit((x[:150], y[:150]), (x[150:], y[150:]), resume=resume)


class Interrupt(Exception):
    """Stands in for a crash or Ctrl-C in the middle of an epoch."""


def test_resume_after_interruption_is_bit_exact(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=4)
    (tmp_path / "a").mkdir()
    fit(straight)

    (tmp_path / "b").mkdir()
    first = make_trainer(tmp_path / "b", epochs=4)
    original = first._train_epoch

    def crash_in_epoch_3(loader, epoch):
        if epoch == 3:
            next(iter(loader))  # half an epoch: the shuffle RNG has moved on
            first.optimizer.step()
            raise Interrupt
        return original(loader, epoch)

    first._train_epoch = crash_in_epoch_3
    with pytest.raises(Interrupt):
        fit(first)
    state = json.loads((tmp_path / "b" / "trainer_state.json").read_text())
    assert state["epoch"] == 2

    resumed = make_trainer(tmp_path / "b", epochs=4)
    result = fit(resumed, resume=True)
    assert result.epochs_run == 2 and resumed.step == straight.step

    for name in ("last.safetensors", "model.safetensors", "optimizer.safetensors"):
        a, meta_a = load_tensors(tmp_path / "a" / name)
        b, meta_b = load_tensors(tmp_path / "b" / name)
        assert a.keys() == b.keys() and meta_a == meta_b, name
        for key in a:
            assert np.array_equal(a[key], b[key]), (name, key)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert np.array_equal(p.data, q.data)
    rows_a = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").open()]
    rows_b = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows_b] == [1, 2, 3, 4]
    assert [(r["train_loss"], r["val_loss"], r["lr"]) for r in rows_a] == \
        [(r["train_loss"], r["val_loss"], r["lr"]) for r in rows_b]


def test_two_plus_two_epochs_equal_four(tmp_path):
    """``fit`` 2 epochs, then ``fit(resume=True)`` up to 4: the same weights as 4 at once."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = make_trainer(tmp_path / "a", epochs=4)
    straight.scheduler = None  # the cosine schedule depends on the total number of epochs
    fit(straight)
    first = make_trainer(tmp_path / "b", epochs=2)
    first.scheduler = None
    fit(first)
    second = make_trainer(tmp_path / "b", epochs=4)
    second.scheduler = None
    fit(second, resume=True)
    a, _ = load_tensors(tmp_path / "a" / "last.safetensors")
    b, _ = load_tensors(tmp_path / "b" / "last.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def write_run(run_dir, trainer: Trainer) -> None:
    """Add what load_run needs besides the weights: config.json and preprocessing.json."""
    x, y = data()
    table = Table({**{f"f{j}": x[:, j] for j in range(4)}, "target": y})
    prep = Preprocessor().fit(table, "target", "classification")
    save_json(run_dir / ckpt.CONFIG_FILE,
              {"model": {"name": "mlp", "config": MODEL_CFG.asdict()}})
    save_json(run_dir / ckpt.PREPROCESSING_FILE, prep.to_dict())


def test_load_run_reproduces_predictions_bit_for_bit(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3)
    fit(trainer)
    write_run(tmp_path, trainer)
    x, _ = data(seed=5)
    expected = trainer.predict(x)
    run = load_run(tmp_path)
    assert not run.model.training
    got = Trainer(run.model, None, TrainerConfig(progress=False), num_classes=3).predict(x)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert run.preprocessor.classes == [0, 1, 2]


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_model_file_names_the_file(tmp_path, cut):
    trainer = make_trainer(tmp_path, epochs=1)
    fit(trainer)
    write_run(tmp_path, trainer)
    path = tmp_path / "model.safetensors"
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(truncated|corrupt)"):
        load_run(tmp_path)


def test_garbage_and_missing_files_name_the_file(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    fit(trainer)
    write_run(tmp_path, trainer)
    (tmp_path / "preprocessing.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"preprocessing\.json is corrupt"):
        load_run(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        load_run(tmp_path)


def test_resume_refuses_mismatched_or_corrupt_checkpoint_files(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2)
    fit(trainer)
    state_path = tmp_path / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state["epoch"] = 1  # as if the save of epoch 2 had been cut short before this file
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"last\.safetensors|optimizer\.safetensors"):
        fit(make_trainer(tmp_path, epochs=3), resume=True)
    state_path.write_text('{"format": "scratchnn.trainer_state", "vers')
    with pytest.raises(CheckpointError, match=r"trainer_state\.json is corrupt"):
        fit(make_trainer(tmp_path, epochs=3), resume=True)


def test_resume_with_another_optimizer_is_refused(tmp_path):
    fit(make_trainer(tmp_path, epochs=1))
    other = make_trainer(tmp_path, epochs=2)
    other.optimizer = optim.SGD(other.model.parameters(), lr=0.1)
    other.scheduler = None
    with pytest.raises(CheckpointError, match=r"holds Adam state, but the optimizer is SGD"):
        fit(other, resume=True)
