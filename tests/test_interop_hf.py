"""from_pretrained: Hugging Face GPT-2 and BERT folders give the same outputs and gradients."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn.data import BPETokenizer, HFTokenizer
from scratchnn.errors import CheckpointError
from scratchnn.interop import UnsupportedModelError, from_pretrained
from scratchnn.models import GPT, BertModel
from scratchnn.nn import functional as F
from scratchnn.serialization import load_tensors, save_tensors

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")

ATOL = 1e-4  # float32 outputs: max abs difference allowed
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _spread(model: torch.nn.Module, seed: int, std: float = 0.1) -> None:
    """Add noise to every weight so that outputs are far from the near-zero initial ones."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)


def _save(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    _spread(hf, 1)
    return hf, _save(hf, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=64)
    hf = transformers.BertModel(cfg).eval()
    _spread(hf, 2)
    return hf, _save(hf, tmp_path_factory.mktemp("bert"))


def _ids(shape, vocab=100, seed=0, low=1):
    return np.random.default_rng(seed).integers(low, vocab, shape)


def _edited(folder, tmp_path, **changes):
    """A copy of ``folder`` with ``config.json`` fields changed."""
    dst = shutil.copytree(folder, tmp_path / "edited")
    config = json.loads((dst / "config.json").read_text())
    config.update(changes)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


# ----------------------------------------------------------------------------- GPT-2
def test_gpt2_logits_match_transformers(gpt2):
    hf, folder = gpt2
    pre = from_pretrained(folder)
    assert isinstance(pre.model, GPT) and pre.tokenizer is None and not pre.model.training
    assert pre.config.n_layer == 2 and pre.config.block_size == 64
    assert pre.model.lm_head.weight is pre.model.wte.weight
    ids = _ids((3, 20), low=0)
    with torch.no_grad():
        want = hf(torch.tensor(ids)).logits.numpy()
    got = pre.model(ids).numpy()
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= ATOL
    assert np.abs(want).max() > 1  # the comparison is not between near-zero numbers


def test_gpt2_right_padding_matches_transformers_with_attention_mask(gpt2):
    hf, folder = gpt2
    model = from_pretrained(folder).model
    ids = _ids((3, 12), low=0, seed=3)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    with torch.no_grad():
        want = hf(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    got = model(ids).numpy()  # causal: right padding never reaches the real tokens
    real = mask.astype(bool)
    assert np.abs(got[real] - want[real]).max() <= ATOL


def test_gpt2_training_step_gradients_match_transformers(gpt2):
    hf, folder = gpt2
    model = from_pretrained(folder).model
    ids, targets = _ids((2, 16), low=0, seed=4), _ids((2, 16), low=0, seed=5)
    hf.zero_grad()
    logits = hf(torch.tensor(ids)).logits
    want_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 100),
                                                  torch.tensor(targets).reshape(-1))
    want_loss.backward()
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, 100), targets.reshape(-1))
    loss.backward()
    assert abs(loss.item() - want_loss.item()) <= ATOL
    hf_params = dict(hf.named_parameters())
    ours = dict(model.named_parameters())
    assert {f"transformer.{k}" for k in ours} == set(hf_params)  # every parameter compared
    worst = 0.0
    for name, p in ours.items():
        want = hf_params[f"transformer.{name}"].grad.numpy()
        if name.endswith(CONV1D):
            want = want.T  # Conv1D (in, out) → Linear (out, in)
        worst = max(worst, float(np.abs(p.grad.numpy() - want).max()))
    assert worst <= ATOL


def test_gpt2_base_model_without_prefix_and_old_buffers(gpt2, tmp_path):
    hf, folder = gpt2
    tensors, _ = load_tensors(folder / "model.safetensors")
    base = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    base["h.0.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), np.float32))  # old causal buffer
    base["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    base["lm_head.weight"] = base["wte.weight"]  # an old file that stored the tied head
    dst = tmp_path / "base"
    dst.mkdir()
    shutil.copy(folder / "config.json", dst / "config.json")
    save_tensors(dst / "model.safetensors", base)
    pre = from_pretrained(dst)
    assert sorted(pre.skipped) == ["h.0.attn.bias", "h.0.attn.masked_bias"]
    ids = _ids((1, 9), low=0)
    with torch.no_grad():
        want = hf(torch.tensor(ids)).logits.numpy()
    assert np.abs(pre.model(ids).numpy() - want).max() <= ATOL


def test_gpt2_with_trained_tokenizer_returns_it(tmp_path):
    tok = BPETokenizer.train(["hello world, hello scratchnn " * 30], vocab_size=300)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=tok.vocab_size,
                                  n_positions=32)
    torch.manual_seed(1)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    folder = _save(hf, tmp_path / "gpt")
    tok.save(folder / "tokenizer.json")
    model, tokenizer, config, hf_config, _ = sn.from_pretrained(folder)
    assert isinstance(tokenizer, HFTokenizer) and hf_config["model_type"] == "gpt2"
    ids = np.array([tokenizer.encode("hello scratchnn world")])
    with torch.no_grad():
        want = hf(torch.tensor(ids)).logits.numpy()
    assert np.abs(model(ids).numpy() - want).max() <= ATOL


# ----------------------------------------------------------------------------- BERT
def _padded_ids():
    ids = _ids((3, 10), seed=6)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0  # [PAD] is id 0
    return ids, mask


@pytest.mark.parametrize("padded", [False, True])
def test_bert_hidden_states_match_transformers(bert, padded):
    hf, folder = bert
    pre = from_pretrained(folder)
    assert isinstance(pre.model, BertModel) and pre.model.pooler is not None
    ids, mask = _padded_ids()
    types = np.zeros_like(ids)
    types[:, 5:] = 1
    if not padded:
        mask = None
    with torch.no_grad():
        want = hf(torch.tensor(ids), token_type_ids=torch.tensor(types),
                  attention_mask=None if mask is None else torch.tensor(mask))
    got = pre.model(ids, attention_mask=mask, token_type_ids=types)
    assert np.abs(got.last_hidden_state.numpy() - want.last_hidden_state.numpy()).max() <= ATOL
    assert np.abs(got.pooler_output.numpy() - want.pooler_output.numpy()).max() <= ATOL


def test_bert_gradients_match_transformers(bert):
    hf, folder = bert
    model = from_pretrained(folder).model
    ids, mask = _padded_ids()
    rng = np.random.default_rng(7)
    r_hidden = rng.standard_normal((3, 10, 32)).astype(np.float32)
    r_pooled = rng.standard_normal((3, 32)).astype(np.float32)
    hf.zero_grad()
    out = hf(torch.tensor(ids), attention_mask=torch.tensor(mask))
    want_loss = (out.last_hidden_state * torch.tensor(r_hidden)).sum() \
        + (out.pooler_output * torch.tensor(r_pooled)).sum()
    want_loss.backward()
    out = model(ids, attention_mask=mask)
    loss = (out.last_hidden_state * r_hidden).sum() + (out.pooler_output * r_pooled).sum()
    loss.backward()
    assert abs(loss.item() - want_loss.item()) <= ATOL * max(1.0, abs(want_loss.item()))
    hf_params = dict(hf.named_parameters())
    ours = dict(model.named_parameters())
    assert set(ours) == set(hf_params)  # the names are HF's: an identity mapping
    for name, p in ours.items():
        want = hf_params[name].grad.numpy()
        scale = max(1.0, float(np.abs(want).max()))
        assert np.abs(p.grad.numpy() - want).max() <= ATOL * scale, name
    assert not ours["embeddings.word_embeddings.weight"].grad.numpy()[0].any()  # [PAD] row


def test_bert_task_checkpoint_prefix_heads_and_no_pooler(tmp_path):
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, num_labels=3)
    torch.manual_seed(3)
    clf = transformers.BertForSequenceClassification(cfg).eval()
    pre = from_pretrained(_save(clf, tmp_path / "clf"))
    assert sorted(pre.skipped) == ["classifier.bias", "classifier.weight"]
    ids = _ids((2, 7), vocab=50)
    with torch.no_grad():
        want = clf.bert(torch.tensor(ids)).last_hidden_state.numpy()
    assert np.abs(pre.model(ids).last_hidden_state.numpy() - want).max() <= ATOL
    base = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    pre = from_pretrained(_save(base, tmp_path / "nopool"))
    assert pre.model.pooler is None and pre.model(ids).pooler_output is None


def test_bert_old_gamma_beta_names(bert, tmp_path):
    hf, folder = bert
    tensors, _ = load_tensors(folder / "model.safetensors")
    old = {"bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma")
           .replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in tensors.items()}
    assert any(k.endswith("gamma") for k in old)
    dst = tmp_path / "old"
    dst.mkdir()
    shutil.copy(folder / "config.json", dst / "config.json")
    save_tensors(dst / "model.safetensors", old)
    ids = _ids((2, 6))
    with torch.no_grad():
        want = hf(torch.tensor(ids)).last_hidden_state.numpy()
    assert np.abs(from_pretrained(dst).model(ids).last_hidden_state.numpy() - want).max() <= ATOL


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("which, changes, message", [
    ("bert", {"model_type": "t5"}, "'model_type' = 't5' is not supported"),
    ("bert", {"position_embedding_type": "relative_key"},
     "'position_embedding_type' = 'relative_key' is not supported"),
    ("bert", {"is_decoder": True}, "'is_decoder' = True is not supported"),
    ("bert", {"add_cross_attention": True}, "'add_cross_attention' = True is not supported"),
    ("bert", {"hidden_act": "silu"}, "'hidden_act' = 'silu' is not supported"),
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True},
     "'scale_attn_by_inverse_layer_idx' = True is not supported"),
    ("gpt2", {"reorder_and_upcast_attn": True}, "'reorder_and_upcast_attn' = True"),
    ("gpt2", {"activation_function": "relu"}, "'activation_function' = 'relu' is not"),
    ("gpt2", {"add_cross_attention": True}, "'add_cross_attention' = True"),
    ("gpt2", {"n_inner": 17}, "'n_inner' = 17 is not supported"),
    ("gpt2", {"tie_word_embeddings": False}, "'tie_word_embeddings' = False"),
])
def test_unsupported_configs_are_refused_naming_field_and_value(request, tmp_path, which,
                                                                 changes, message):
    folder = request.getfixturevalue(which)[1]
    with pytest.raises(UnsupportedModelError, match=message):
        from_pretrained(_edited(folder, tmp_path, **changes))


def test_missing_and_unexpected_weights_are_listed(bert, tmp_path):
    _, folder = bert
    tensors, _ = load_tensors(folder / "model.safetensors")
    del tensors["encoder.layer.1.output.dense.bias"]
    tensors["encoder.layer.0.adapter.weight"] = np.zeros((2, 2), np.float32)
    dst = tmp_path / "broken"
    dst.mkdir()
    shutil.copy(folder / "config.json", dst / "config.json")
    save_tensors(dst / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"missing \['encoder.layer.1.output.dense.bias'\]"
                       r"; unexpected \['encoder.layer.0.adapter.weight'\]"):
        from_pretrained(dst)


def test_wrong_shape_and_missing_files(bert, tmp_path):
    _, folder = bert
    dst = _edited(folder, tmp_path, intermediate_size=48)
    with pytest.raises(CheckpointError, match="size mismatch for 'encoder.layer.0"):
        from_pretrained(dst)
    (dst / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="pickle files such as pytorch_model.bin"):
        from_pretrained(dst)
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        from_pretrained(tmp_path / "nowhere")
