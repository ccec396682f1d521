"""BERT: config, module layout, activations, mean pooling, the classifier, training."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from scratchnn import no_grad, optim
from scratchnn.interop import from_pretrained
from scratchnn.models import BertClassifier, BertConfig, BertModel, build_model, mean_pool
from scratchnn.nn import functional as F

os.environ["HF_HUB_OFFLINE"] = "1"

TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=24)


def _tiny(**overrides) -> BertConfig:
    return BertConfig(**{**TINY, **overrides})


def _hf_config(**overrides):
    transformers = pytest.importorskip("transformers")
    return transformers.BertConfig(**{**TINY, **overrides})


# ----------------------------------------------------------------------------- config
def test_config_round_trip_and_registry():
    config = _tiny(hidden_act="gelu_new", pad_token_id=None)
    assert BertConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    model = build_model("bert", config.to_dict(), rng=np.random.default_rng(0))
    assert isinstance(model, BertModel) and model.embeddings.word_embeddings.padding_idx is None


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden_size": 10, "num_attention_heads": 4}, r"hidden_size \(10\) must be divisible"),
    ({"hidden_act": "swish"}, "hidden_act must be one of .* got 'swish'"),
    ({"hidden_dropout_prob": 1.0}, r"hidden_dropout_prob must be in \[0, 1\), got 1.0"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be an int >= 1, got 0"),
    ({"pad_token_id": 40}, r"pad_token_id must be < vocab_size \(40\), got 40"),
    ({"layer_norm_eps": 0.0}, "layer_norm_eps must be a number > 0"),
])
def test_config_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _tiny(**kwargs)


def test_config_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown BertConfig fields \['n_layer'\]"):
        BertConfig.from_dict({"n_layer": 2})


# ----------------------------------------------------------------------------- layout
def test_state_dict_names_and_shapes_are_transformers_bertmodel():
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel(_hf_config())
    want = {k: tuple(v.shape) for k, v in hf.state_dict().items()
            if k not in ("embeddings.position_ids", "embeddings.token_type_ids")}
    model = BertModel(_tiny(), rng=np.random.default_rng(0))
    assert {k: v.shape for k, v in model.state_dict().items()} == want
    assert model.num_parameters() == sum(p.numel() for p in hf.parameters())
    no_pool = BertModel(_tiny(), add_pooling_layer=False)
    assert not any(k.startswith("pooler") for k in no_pool.state_dict())


def test_initialisation_follows_bert():
    model = BertModel(_tiny(vocab_size=400, hidden_size=64, intermediate_size=64),
                      rng=np.random.default_rng(0))
    q = model.encoder.layer[0].attention.self.query
    assert abs(q.weight.numpy().std() - 0.02) < 0.002 and not q.bias.numpy().any()
    word = model.embeddings.word_embeddings.weight.numpy()
    assert not word[0].any() and abs(word[1:].std() - 0.02) < 0.002  # [PAD] row zero
    ln = model.embeddings.LayerNorm
    assert (ln.weight.numpy() == 1).all() and not ln.bias.numpy().any()


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"])
def test_activations_match_transformers(tmp_path, act):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertModel(_hf_config(hidden_act=act, initializer_range=0.3)).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = from_pretrained(tmp_path).model
    ids = np.random.default_rng(0).integers(0, 40, (2, 9))
    with torch.no_grad():
        want = hf(torch.tensor(ids)).last_hidden_state.numpy()
    assert np.abs(model(ids).last_hidden_state.numpy() - want).max() <= 1e-4


def test_input_checks():
    model = BertModel(_tiny())
    with pytest.raises(ValueError, match="sequence length 25 is longer than "
                                         "max_position_embeddings=24"):
        model(np.zeros((1, 25), np.int64))
    with pytest.raises(ValueError, match=r"input_ids must be a \(B, T\) array of integers"):
        model(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids"):
        model(np.zeros((2, 3), np.int64), attention_mask=np.ones((2, 4), np.int64))


def test_dropout_only_in_training_mode():
    model = BertModel(_tiny(), rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 40, (2, 6))
    a, b = (model(ids).last_hidden_state.numpy() for _ in range(2))
    assert not np.allclose(a, b)
    model.eval()
    a, b = (model(ids).last_hidden_state.numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- mean_pool
def test_mean_pool_averages_real_tokens_only_and_routes_gradient_there():
    import scratchnn as sn

    rng = np.random.default_rng(0)
    hidden = sn.tensor(rng.standard_normal((2, 4, 3)), dtype=np.float32, requires_grad=True)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    h = hidden.numpy()
    np.testing.assert_allclose(pooled.numpy(), [h[0, :2].mean(0), h[1].mean(0)], rtol=1e-6)
    pooled.sum().backward()
    np.testing.assert_allclose(hidden.grad.numpy()[0], [[0.5] * 3] * 2 + [[0] * 3] * 2)
    np.testing.assert_allclose(mean_pool(hidden).numpy(), h.mean(1), rtol=1e-6)
    assert np.isfinite(mean_pool(hidden, np.zeros((2, 4), np.int64)).numpy()).all()


# ----------------------------------------------------------------------------- classifier
def test_classifier_pooler_matches_transformers_sequence_classification(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertForSequenceClassification(
        _hf_config(num_labels=3, initializer_range=0.2)).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    pre = from_pretrained(tmp_path)
    clf = BertClassifier(num_labels=3, pooling="pooler", encoder=pre.model).eval()
    clf.classifier.load_state_dict({k: v.numpy() for k, v in hf.classifier.state_dict().items()})
    ids = np.random.default_rng(0).integers(1, 40, (3, 8))
    mask = np.ones_like(ids)
    mask[0, 5:] = 0
    with torch.no_grad():
        want = hf(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    assert np.abs(clf(ids, mask).numpy() - want).max() <= 1e-4
    assert {k for k in clf.state_dict()} == set(hf.state_dict()) - {
        "bert.embeddings.position_ids", "bert.embeddings.token_type_ids"}


def test_classifier_options():
    config = _tiny()
    for pooling in ("cls", "mean", "pooler"):
        clf = BertClassifier(config, num_labels=4, pooling=pooling, rng=np.random.default_rng(0))
        assert clf(np.ones((3, 5), np.int64)).shape == (3, 4)
        assert (clf.bert.pooler is not None) == (pooling == "pooler")
    with pytest.raises(ValueError, match="pooling must be 'cls', 'mean' or 'pooler', got 'max'"):
        BertClassifier(config, pooling="max")
    with pytest.raises(ValueError, match="needs an encoder with a pooler"):
        BertClassifier(num_labels=2, pooling="pooler",
                       encoder=BertModel(config, add_pooling_layer=False))
    with pytest.raises(ValueError, match="needs a config or an encoder"):
        BertClassifier(num_labels=2)


def test_cls_pooling_is_the_head_on_the_first_hidden_vector():
    """pooling='cls' is ``classifier(hidden[:, 0])``: no pooler dense/tanh (the encoder is built
    without one), padding ignored, and not the same as mean pooling."""
    config = _tiny(hidden_dropout_prob=0.3)
    cls = BertClassifier(config, num_labels=3, pooling="cls", rng=np.random.default_rng(0))
    assert cls.bert.pooler is None
    cls.classifier.bias.data[...] = np.random.default_rng(2).standard_normal(3)  # not zero
    ids = np.random.default_rng(1).integers(1, 40, (3, 7))
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    ids[mask == 0] = 0
    cls.eval()
    with no_grad():
        logits = cls(ids, mask).numpy()
        hidden = cls.bert(ids, mask).last_hidden_state.numpy()
        alone = cls(ids[1:2, :4]).numpy()  # row 1 without its padding
    w, b = cls.classifier.weight.numpy(), cls.classifier.bias.numpy()
    np.testing.assert_allclose(logits, hidden[:, 0] @ w.T + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits[1], alone[0], rtol=1e-5, atol=1e-6)
    mean = BertClassifier(config, num_labels=3, pooling="mean", rng=np.random.default_rng(0))
    mean.load_state_dict(cls.state_dict())  # the very same weights
    with no_grad():
        mean_logits = mean.eval()(ids, mask).numpy()
    np.testing.assert_allclose(mean_logits, mean_pool(cls.bert(ids, mask).last_hidden_state,
                                                      mask).numpy() @ w.T + b, rtol=1e-5,
                               atol=1e-6)
    assert np.abs(mean_logits - logits).max() > 1e-3
    cls.train()  # dropout (p=0.3) before the head acts in training mode only
    assert not np.allclose(cls(ids, mask).numpy(), logits)


def test_classifier_learns_a_token_detection_task():
    """Label = does token 7 occur in the (padded) sequence; held-out accuracy must be high."""
    rng = np.random.default_rng(0)
    n, T = 256, 8
    ids = rng.integers(8, 40, (n, T))
    lengths = rng.integers(3, T + 1, n)
    labels = rng.integers(0, 2, n)
    for i in range(n):
        if labels[i]:
            ids[i, rng.integers(0, lengths[i])] = 7
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = 0
    config = _tiny(num_hidden_layers=1, hidden_dropout_prob=0.0,
                   attention_probs_dropout_prob=0.0)
    clf = BertClassifier(config, num_labels=2, pooling="mean", rng=np.random.default_rng(1))
    opt = optim.AdamW(clf.parameters(), lr=3e-3, weight_decay=0.0)
    train, test = slice(0, 192), slice(192, n)
    for _ in range(60):
        batch = rng.choice(192, 32, replace=False)
        loss = F.cross_entropy(clf(ids[batch], mask[batch]), labels[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    with no_grad():
        pred = clf(ids[test], mask[test]).numpy().argmax(-1)
        train_loss = F.cross_entropy(clf(ids[train], mask[train]), labels[train]).item()
    assert train_loss < 0.3
    assert (pred == labels[test]).mean() >= 0.9
