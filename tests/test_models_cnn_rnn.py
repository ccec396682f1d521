"""CNN and RNN model builders: configs (round trip, validation), PyTorch parity of whole models,
padding that never leaks, augmentation, and bit-exact reloading through ``load_run``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import scratchnn as sn
from scratchnn import optim
from scratchnn.data import Table
from scratchnn.data.text import Vocabulary, tokenize
from scratchnn.models import CNN, MODELS, CNNConfig, RNNConfig, RNNModel, build_model
from scratchnn.models.cnn import RandomShiftFlip
from scratchnn.recipes.classify_inputs import fit_labels
from scratchnn.serialization import save_json
from scratchnn.training import load_run
from scratchnn.training.trainer import Trainer, TrainerConfig


def _torch_state(model) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- configs
def test_configs_round_trip_and_registry():
    cnn = CNNConfig(3, (16, 12), 5, channels=(8, 16, 32), kernel_size=5, pool="avg",
                    global_pool=False, dropout=0.2, hidden=(32,), activation="gelu",
                    augment_padding=2, augment_flip=True)
    rnn = RNNConfig(4, cell="gru", vocab_size=100, embedding_dim=16, hidden_size=8,
                    num_layers=2, bidirectional=True, dropout=0.1, pooling="mean")
    for cfg, name in ((cnn, "cnn"), (rnn, "rnn")):
        d = cfg.to_dict()
        assert type(cfg).from_dict(d) == cfg
        assert MODELS[name][0] is type(cfg)
        model = build_model(name, d, rng=np.random.default_rng(0))
        assert model.config == cfg
    assert CNNConfig(1, 8, 2).image_size == (8, 8)
    assert RNNConfig(2, vocab_size=10).embedding_dim == 64  # a token model needs one


@pytest.mark.parametrize("kwargs, message", [
    ({"pool": "median"}, "pool must be one of max, avg, none, got 'median'"),
    ({"channels": ()}, "channels must not be empty"),
    ({"channels": (8, 0)}, "channels must hold positive integers, got 0"),
    ({"channels": (8, 8, 8, 8)}, "image_size (8, 8) is too small for 4 blocks"),
    ({"activation": "swish"}, "unknown activation 'swish'"),
    ({"dropout": 1.0}, "dropout must be a number in [0, 1), got 1.0"),
    ({"augment_padding": -1}, "augment_padding must be an integer >= 0, got -1"),
])
def test_cnn_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError) as e:
        CNNConfig(1, (8, 8), 10, **kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give exactly one of input_size (numeric steps) and vocab_size"),
    ({"input_size": 3, "vocab_size": 10}, "give exactly one of input_size"),
    ({"input_size": 3, "cell": "transformer"}, "cell must be one of lstm, gru, rnn, got "
                                               "'transformer'"),
    ({"input_size": 3, "pooling": "max"}, "pooling must be one of last, mean, got 'max'"),
    ({"input_size": 0}, "input_size must be a positive integer, got 0"),
    ({"vocab_size": 10, "padding_idx": 10}, "padding_idx must be in [0, 10), got 10"),
])
def test_rnn_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError) as e:
        RNNConfig(2, **kwargs)
    assert message in str(e.value)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown CNNConfig field\(s\) \['colour'\]"):
        CNNConfig.from_dict({"in_channels": 1, "image_size": [8, 8], "num_classes": 2,
                             "colour": 1})
    with pytest.raises(ValueError, match=r"unknown RNNConfig field\(s\) \['cells'\]"):
        RNNConfig.from_dict({"num_outputs": 2, "input_size": 1, "cells": "lstm"})


# --------------------------------------------------------------------------- CNN
class TorchCNN(torch.nn.Module):
    """The same architecture in PyTorch, with the same state_dict names."""

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        layers, width = [], cfg.in_channels
        for out in cfg.channels:
            layers += [torch.nn.Conv2d(width, out, cfg.kernel_size, padding="same", bias=False),
                       torch.nn.BatchNorm2d(out), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
            width = out
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Sequential(torch.nn.Linear(width, cfg.num_classes))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("training", [False, True])
def test_cnn_matches_torch(training):
    cfg = CNNConfig(3, (8, 10), 4, channels=(6, 5))
    ours = CNN(cfg, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for name, buf in ours.named_buffers():  # non-trivial running statistics
        if "running" in name:
            buf.data[...] = rng.uniform(0.5, 1.5, buf.shape).astype(np.float32)
    theirs = TorchCNN(cfg)
    theirs.load_state_dict(_torch_state(ours))
    ours.train(training)
    theirs.train(training)
    x = rng.standard_normal((4, 3, 8, 10)).astype(np.float32)
    got = ours(sn.tensor(x))
    want = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    # Flat rows (as the Trainer feeds them) give the same logits.
    ours.eval()
    with sn.no_grad():
        np.testing.assert_array_equal(ours(sn.tensor(x.reshape(4, -1))).numpy(),
                                      ours(sn.tensor(x)).numpy())


def test_cnn_rejects_wrong_input_shape():
    model = CNN(CNNConfig(1, (8, 8), 3), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"CNN expects input of shape \(N, 1, 8, 8\) or "
                                         r"\(N, 64\), got \(2, 63\)"):
        model(sn.tensor(np.zeros((2, 63), np.float32)))


def test_augmentation_crops_and_flips_in_training_only():
    x = np.arange(2 * 1 * 4 * 5, dtype=np.float32).reshape(2, 1, 4, 5)
    aug = RandomShiftFlip(padding=0, flip=True, rng=np.random.default_rng(0))
    for _ in range(5):
        out = aug(sn.tensor(x)).numpy()
        for i in range(2):  # each image is itself or its mirror image
            assert np.array_equal(out[i], x[i]) or np.array_equal(out[i], x[i, :, :, ::-1])
    shift = RandomShiftFlip(padding=1, rng=np.random.default_rng(0))
    out = shift(sn.tensor(x)).numpy()
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for i in range(2):  # a 4x5 window of the zero-padded image
        assert any(np.array_equal(out[i], padded[i, :, dy:dy + 4, dx:dx + 5])
                   for dy in range(3) for dx in range(3))
    shift.eval()
    np.testing.assert_array_equal(shift(sn.tensor(x)).numpy(), x)


# --------------------------------------------------------------------------- RNN
class TorchRNNModel(torch.nn.Module):
    """Embedding -> packed LSTM/GRU -> pooling -> Linear, in PyTorch."""

    def __init__(self, cfg: RNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = torch.nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=0)
        cell = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg.cell]
        self.rnn = cell(cfg.embedding_dim, cfg.hidden_size, num_layers=cfg.num_layers,
                        batch_first=True, bidirectional=cfg.bidirectional)
        self.head = torch.nn.Linear(cfg.hidden_size * (1 + cfg.bidirectional), cfg.num_outputs)

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        out, h = self.rnn(packed)
        h = h[0] if self.cfg.cell == "lstm" else h
        if self.cfg.pooling == "last":
            pooled = torch.cat([h[-2], h[-1]], 1) if self.cfg.bidirectional else h[-1]
        else:
            out, _ = pad_packed_sequence(out, batch_first=True)
            pooled = out.sum(1) / lengths[:, None].to(out.dtype)
        return self.head(pooled)


@pytest.mark.parametrize("cell, bidirectional, pooling, layers", [
    ("lstm", True, "last", 2), ("lstm", False, "mean", 1), ("gru", True, "mean", 1),
    ("rnn", False, "last", 1)])
def test_token_rnn_matches_torch_packed_sequences(cell, bidirectional, pooling, layers):
    cfg = RNNConfig(3, cell=cell, vocab_size=20, embedding_dim=6, hidden_size=5,
                    num_layers=layers, bidirectional=bidirectional, pooling=pooling)
    ours = RNNModel(cfg, rng=np.random.default_rng(0))
    theirs = TorchRNNModel(cfg)
    theirs.load_state_dict(_torch_state(ours))
    rng = np.random.default_rng(2)
    lengths = np.array([4, 7, 1, 5])
    ids = np.zeros((4, 9), np.int64)  # right-padded with 0, two steps beyond the longest
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, 20, n)
    got = ours(sn.tensor(ids.astype(np.float32))).numpy()  # lengths read off the padding
    want = theirs(torch.from_numpy(ids), torch.from_numpy(lengths)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_padding_never_leaks_into_the_prediction():
    cfg = RNNConfig(2, cell="lstm", vocab_size=30, embedding_dim=8, hidden_size=6,
                    bidirectional=True, pooling="mean")
    model = RNNModel(cfg, rng=np.random.default_rng(0)).eval()
    seq = np.array([[5, 9, 2, 7]])
    alone = model(seq).numpy()
    padded = np.array([[5, 9, 2, 7, 0, 0, 0], [3, 4, 5, 6, 7, 8, 9]])
    np.testing.assert_allclose(model(padded).numpy()[:1], alone, rtol=1e-5, atol=1e-6)


def test_numeric_sequences_flat_or_shaped():
    cfg = RNNConfig(3, cell="gru", input_size=4, embedding_dim=5, hidden_size=6)
    model = RNNModel(cfg, rng=np.random.default_rng(0)).eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(sn.tensor(x.reshape(2, 12))).numpy(),
                                  model(sn.tensor(x)).numpy())
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 3\], got values in \[0, 3\]"):
        model(sn.tensor(x), lengths=np.array([0, 3]))
    tokens = RNNModel(RNNConfig(2, vocab_size=5), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"token id 5 out of range \[0, 5\)"):
        tokens(np.array([[1, 5]]))


# --------------------------------------------------------------------------- text
def test_vocabulary_is_built_on_the_given_texts_only():
    vocab = Vocabulary.build(["the film was great", "the plot was thin"], "word",
                             max_length=4)
    assert vocab.itos[:3] == ["<pad>", "<unk>", "the"]  # then by frequency
    ids, lengths = vocab.encode(["The FILM was unseen!", ""])
    assert vocab.decode(ids[0]) == ["the", "film", "was", "<unk>"]
    assert ids[1].tolist() == [vocab.unk_id, 0, 0, 0] and lengths.tolist() == [4, 1]
    assert Vocabulary.from_dict(vocab.to_dict()).itos == vocab.itos
    rare = Vocabulary.build(["a a b", "a c"], min_freq=2)
    assert rare.itos == ["<pad>", "<unk>", "a"]
    assert tokenize("Don't stop-2 me", "word") == ["don", "t", "stop", "2", "me"]
    assert tokenize("Hi!", "char") == ["h", "i", "!"]


# --------------------------------------------------------------------------- load_run
def _train_and_reload(tmp_path, name, cfg, x, y):
    model = build_model(name, cfg.to_dict(), rng=np.random.default_rng(0))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    trainer = Trainer(model, opt, TrainerConfig(epochs=2, batch_size=8, progress=False,
                                                plot=False),
                      num_classes=2, run_dir=tmp_path, rng=np.random.default_rng(1))
    trainer.fit((x, y), (x, y))
    save_json(tmp_path / "config.json", {"model": {"name": name, "config": cfg.to_dict()}})
    labels = fit_labels(Table({"y": y}), "y")
    save_json(tmp_path / "preprocessing.json", labels.to_dict())
    run = load_run(tmp_path)
    again = Trainer(run.model, None, TrainerConfig(progress=False), num_classes=2)
    return trainer.predict(x), again.predict(x)


def test_load_run_reproduces_cnn_predictions_bit_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 2 * 8 * 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    cfg = CNNConfig(2, (8, 8), 2, channels=(4, 6), dropout=0.2, hidden=(8,),
                    augment_padding=1, augment_flip=True)
    before, after = _train_and_reload(tmp_path, "cnn", cfg, x, y)
    np.testing.assert_array_equal(before, after)


def test_load_run_reproduces_lstm_predictions_bit_exactly(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 15, (24, 6))
    ids[::3, 4:] = 0  # some padded sequences
    y = (ids[:, 0] > 7).astype(np.int64)
    cfg = RNNConfig(2, cell="lstm", vocab_size=15, embedding_dim=4, hidden_size=5,
                    bidirectional=True, dropout=0.1, pooling="mean")
    before, after = _train_and_reload(tmp_path, "rnn", cfg, ids.astype(np.float32), y)
    np.testing.assert_array_equal(before, after)


# --------------------------------------------------------------------------- torch -> scratchnn
def _numpy_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_torch_cnn_weights_load_into_scratchnn_and_match_in_eval():
    # Augmentation is on in the config: evaluation must ignore it, as it ignores dropout.
    cfg = CNNConfig(3, (8, 10), 4, channels=(6, 5), augment_padding=1, augment_flip=True)
    torch.manual_seed(0)
    theirs = TorchCNN(cfg)
    with torch.no_grad():  # running statistics and affine terms far from their defaults
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1.0, 1.0)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    theirs.eval()
    state = _numpy_state(theirs)
    ours = CNN(cfg, rng=np.random.default_rng(0))
    assert set(state) == set(ours.state_dict())
    ours.load_state_dict(state, strict=True)
    for name, value in ours.state_dict().items():  # loaded as is, dtypes kept
        np.testing.assert_array_equal(np.asarray(value), state[name])
        assert np.asarray(value).dtype == state[name].dtype, name
    ours.eval()
    x = np.random.default_rng(1).standard_normal((5, 3, 8, 10)).astype(np.float32)
    with sn.no_grad():
        got = ours(sn.tensor(x)).numpy()
        flat = ours(sn.tensor(x.reshape(5, -1))).numpy()
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(flat, got)
    # Evaluation never moves the loaded running statistics.
    np.testing.assert_array_equal(np.asarray(ours.state_dict()["features.1.running_mean"]),
                                  state["features.1.running_mean"])


@pytest.mark.parametrize("cell, bidirectional, pooling, layers", [
    ("lstm", False, "last", 1), ("lstm", True, "mean", 2),
    ("gru", False, "mean", 1), ("gru", True, "last", 2)])
def test_torch_rnn_weights_load_into_scratchnn_and_match_in_eval(cell, bidirectional, pooling,
                                                                  layers):
    # Dropout is on in the config: evaluation must switch it off.
    cfg = RNNConfig(3, cell=cell, vocab_size=20, embedding_dim=6, hidden_size=5,
                    num_layers=layers, bidirectional=bidirectional, pooling=pooling,
                    dropout=0.3)
    torch.manual_seed(1)
    theirs = TorchRNNModel(cfg).eval()
    state = _numpy_state(theirs)
    ours = RNNModel(cfg, rng=np.random.default_rng(0))
    assert set(state) == set(ours.state_dict())
    ours.load_state_dict(state, strict=True)
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(np.asarray(value), state[name])
    ours.eval()
    rng = np.random.default_rng(3)
    lengths = np.array([4, 7, 1, 5, 7])
    ids = np.zeros((5, 8), np.int64)  # right-padded with 0
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, 20, n)
    with sn.no_grad():
        got = ours(ids).numpy()
    with torch.no_grad():
        want = theirs(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
