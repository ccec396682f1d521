"""LoRA: the wrapper's math and gradients (against PyTorch), merge/unmerge, apply_lora's
matching and errors, adapter files, and LoRA fine-tuning of a tiny GPT and BERT."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn import finetune as ft
from scratchnn import nn, optim
from scratchnn.models import GPT, BertClassifier, BertConfig, GPTConfig

GPT_CFG = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)
BERT_CFG = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=16,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _gpt(seed: int = 0) -> GPT:
    return GPT(GPT_CFG, rng=np.random.default_rng(seed))


def _x(*shape, seed=1, dtype=np.float32):
    return sn.tensor(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def _randomize_b(model: nn.Module, seed: int = 5, std: float = 0.5) -> None:
    rng = np.random.default_rng(seed)
    for m in ft.lora_modules(model).values():
        m.lora_B.data[...] = rng.normal(0, std, m.lora_B.shape)


# ----------------------------------------------------------------------------- the wrapper
def test_b_is_zero_so_the_output_equals_the_base_at_step_0():
    base = nn.Linear(6, 4, rng=np.random.default_rng(0))
    x = _x(3, 6)
    expected = base(x).numpy().copy()
    lora = nn.LoRALinear(base, rank=2, alpha=8, rng=np.random.default_rng(1))
    assert not lora.lora_B.numpy().any()
    np.testing.assert_array_equal(lora(x).numpy(), expected)
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert lora.lora_A.requires_grad and lora.lora_B.requires_grad


def test_a_is_kaiming_uniform_with_a_sqrt5_like_peft():
    lora = nn.LoRALinear(nn.Linear(400, 3), rank=64, rng=np.random.default_rng(0))
    a = lora.lora_A.numpy()
    bound = 1 / math.sqrt(400)  # gain √(2/(1+5)) · √3 / √fan_in
    assert a.shape == (64, 400)
    assert np.abs(a).max() <= bound
    assert np.abs(a).max() > 0.99 * bound
    assert abs(a.std() - bound / math.sqrt(3)) < 0.02 * bound


def test_forward_and_gradients_match_pytorch():
    rng = np.random.default_rng(0)
    base = nn.Linear(5, 3, rng=rng).double()
    lora = nn.LoRALinear(base, rank=2, alpha=6.0, rng=rng)
    lora.lora_B.data[...] = rng.normal(size=(3, 2))
    x = sn.tensor(rng.normal(size=(4, 7, 5)), dtype=np.float64, requires_grad=True)
    r = rng.normal(size=(4, 7, 3))
    (lora(x) * sn.tensor(r, dtype=np.float64)).sum().backward()

    t = {k: torch.tensor(v, requires_grad=True) for k, v in (
        ("x", x.numpy()), ("A", lora.lora_A.numpy()), ("B", lora.lora_B.numpy()))}
    w, b = torch.tensor(base.weight.numpy()), torch.tensor(base.bias.numpy())
    y = t["x"] @ w.T + b + (t["x"] @ t["A"].T @ t["B"].T) * (6.0 / 2)
    (y * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(lora(x).numpy(), y.detach().numpy(), rtol=1e-12, atol=1e-12)
    for name, ours in (("x", x), ("A", lora.lora_A), ("B", lora.lora_B)):
        np.testing.assert_allclose(ours.grad.numpy(), t[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-12)
    assert base.weight.grad is None and base.bias.grad is None


def test_merged_and_unmerged_outputs_agree():
    model = _gpt()
    ft.apply_lora(model, ["*.attn.c_attn", "*.mlp.c_fc"], rank=4, alpha=8,
                  rng=np.random.default_rng(1))
    _randomize_b(model, std=0.2)
    idx = np.random.default_rng(2).integers(0, 50, (2, 12))
    unmerged = model(idx).numpy().copy()
    assert ft.merge_lora(model, replace=False) == [
        "h.0.attn.c_attn", "h.0.mlp.c_fc", "h.1.attn.c_attn", "h.1.mlp.c_fc"]
    merged = model(idx).numpy()
    np.testing.assert_allclose(merged, unmerged, atol=1e-5, rtol=0)
    # The adapters matter: without them the output is different.
    ft.unmerge_lora(model)
    for m in ft.lora_modules(model).values():
        m.lora_B.data[...] = 0
    assert np.abs(model(idx).numpy() - unmerged).max() > 1e-3


def test_unmerge_restores_the_base_weight_bit_for_bit():
    rng = np.random.default_rng(0)
    base = nn.Linear(64, 48, rng=rng)
    original = base.weight.numpy().copy()
    lora = nn.LoRALinear(base, rank=8, alpha=16, rng=rng)
    lora.lora_B.data[...] = rng.normal(0, 3.0, (48, 8))
    delta = lora.delta_weight()
    # Precondition: subtracting the update again would not give the original bits back.
    assert not np.array_equal((original + delta) - delta, original)
    lora.merge()
    np.testing.assert_allclose(base.weight.numpy(), original + delta, rtol=1e-6)
    lora.unmerge()
    assert base.weight.numpy().tobytes() == original.tobytes()
    assert not lora.merged


def test_merging_twice_is_refused_and_unmerge_needs_a_merge():
    lora = nn.LoRALinear(nn.Linear(4, 4), rank=2)
    with pytest.raises(RuntimeError, match="not merged"):
        lora.unmerge()
    lora.merge()
    with pytest.raises(RuntimeError, match="already merged"):
        lora.merge()


def test_merge_lora_replaces_wrappers_by_plain_linears_with_merged_weights():
    model = _gpt()
    plain_keys = list(model.state_dict())
    ft.apply_lora(model, ["*.attn.c_attn"], rank=4, alpha=8, rng=np.random.default_rng(1))
    _randomize_b(model, std=0.2)
    idx = np.random.default_rng(2).integers(0, 50, (2, 10))
    before = model(idx).numpy().copy()
    ft.merge_lora(model)
    assert not ft.lora_modules(model)
    assert type(model.h[0].attn.c_attn) is nn.Linear
    assert list(model.state_dict()) == plain_keys  # exports like the base architecture
    np.testing.assert_allclose(model(idx).numpy(), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"rank": 0}, "rank must be a positive int, got 0"),
    ({"alpha": -1.0}, "alpha must be a number > 0"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
])
def test_lora_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nn.LoRALinear(nn.Linear(3, 3), **{"rank": 2, **kwargs})


# ----------------------------------------------------------------------------- apply_lora
def test_apply_lora_on_gpt_and_bert_attention_projections():
    gpt = _gpt()
    names = ft.apply_lora(gpt, ["*.attn.c_attn"], rank=2, alpha=4)
    assert names == ["h.0.attn.c_attn", "h.1.attn.c_attn"]
    assert isinstance(gpt.get_submodule("h.1.attn.c_attn"), nn.LoRALinear)
    bert = BertClassifier(BERT_CFG, num_labels=2, rng=np.random.default_rng(0))
    names = ft.apply_lora(bert, ["bert.encoder.layer.*.attention.self.query",
                                 "*.attention.self.value"], rank=2, alpha=4)
    assert names == ["bert.encoder.layer.0.attention.self.query",
                     "bert.encoder.layer.0.attention.self.value",
                     "bert.encoder.layer.1.attention.self.query",
                     "bert.encoder.layer.1.attention.self.value"]
    assert bert.lora_config[-1]["modules"] == names


def test_apply_lora_prints_the_matched_modules(capsys):
    ft.apply_lora(_gpt(), ["h.0.attn.c_proj"], rank=2, verbose=True)
    assert "LoRA (rank=2, alpha=16) on 1 modules:\n  h.0.attn.c_proj\n" in capsys.readouterr().out


def test_a_pattern_matching_nothing_is_an_error_listing_candidates_and_changes_nothing():
    model = _gpt()
    keys = list(model.state_dict())
    with pytest.raises(ValueError) as err:
        ft.apply_lora(model, ["*.attn.c_attn", "*.attn.q_proj"], rank=2)
    message = str(err.value)
    assert "'*.attn.q_proj' matches no Linear module" in message
    assert "h.0.attn.c_attn" in message and "h.0.mlp.c_fc" in message
    assert list(model.state_dict()) == keys  # the first pattern was not applied either
    with pytest.raises(ValueError, match=r"matches non-Linear modules \['h.0.attn', 'h.1.attn'\]"):
        ft.apply_lora(model, ["*.attn"], rank=2)


def test_tied_weights_and_double_wrapping_are_refused():
    model = _gpt()
    with pytest.raises(ValueError, match=r"'lm_head'.*tied to \['wte.weight'\]"):
        ft.apply_lora(model, ["lm_head"], rank=2)
    ft.apply_lora(model, ["h.0.attn.c_attn"], rank=2)
    with pytest.raises(ValueError, match="already have LoRA"):
        ft.apply_lora(model, ["h.0.attn.c_attn"], rank=2)


def test_multihead_attention_out_proj_can_be_adapted():
    mha = nn.MultiheadAttention(8, 2, batch_first=True, rng=np.random.default_rng(0))
    x = _x(2, 5, 8)
    before = mha(x, x, x)[0].numpy().copy()
    assert ft.apply_lora(mha, ["out_proj"], rank=2) == ["out_proj"]
    np.testing.assert_array_equal(mha(x, x, x)[0].numpy(), before)
    _randomize_b(mha)
    out = mha(x, x, x)[0]
    assert np.abs(out.numpy() - before).max() > 1e-3
    out.sum().backward()
    assert mha.out_proj.lora_B.grad is not None and mha.out_proj.base.weight.grad is None


# ----------------------------------------------------------------------------- adapter files
def _train_lora_gpt(model: GPT, steps: int = 5) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optim.AdamW(params, lr=1e-2)
    idx = np.random.default_rng(3).integers(0, 50, (4, 12))
    for _ in range(steps):
        _, loss = model(idx[:, :-1], targets=idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_adapters_saved_alone_load_onto_a_fresh_base(tmp_path):
    model = _gpt(seed=7)
    ft.apply_lora(model, ["*.attn.c_attn", "*.attn.c_proj"], rank=4, alpha=8, dropout=0.1,
                  rng=np.random.default_rng(1))
    ft.freeze_all_but(model, ["*.lora_A", "*.lora_B"])
    _train_lora_gpt(model)
    model.eval()
    idx = np.random.default_rng(4).integers(0, 50, (2, 10))
    expected = model(idx).numpy()
    ft.save_lora(model, tmp_path / "adapter")

    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["targets"] == ["*.attn.c_attn", "*.attn.c_proj"]
    assert (config["rank"], config["alpha"], config["dropout"]) == (4, 8.0, 0.1)
    assert config["modules"] == ["h.0.attn.c_attn", "h.0.attn.c_proj", "h.1.attn.c_attn",
                                 "h.1.attn.c_proj"]
    tensors, _ = sn.serialization.load_tensors(tmp_path / "adapter" / "adapter.safetensors")
    assert sorted(tensors) == sorted(f"{m}.{k}" for m in config["modules"]
                                     for k in ("lora_A", "lora_B"))

    fresh = _gpt(seed=7)
    assert ft.load_lora(fresh, tmp_path / "adapter") == config["modules"]
    fresh.eval()
    np.testing.assert_array_equal(fresh(idx).numpy(), expected)
    assert fresh.lora_config[-1]["targets"] == config["targets"]
    # A differently seeded base gives different outputs: the adapter alone is not the model.
    other = _gpt(seed=8)
    ft.load_lora(other, tmp_path / "adapter")
    assert np.abs(other.eval()(idx).numpy() - expected).max() > 1e-3


def test_include_saves_a_new_head_with_the_adapters(tmp_path):
    def build():
        clf = BertClassifier(BERT_CFG, num_labels=3, rng=np.random.default_rng(0))
        return clf
    clf = build()
    ft.apply_lora(clf, ["*.attention.self.query"], rank=2, rng=np.random.default_rng(1))
    _randomize_b(clf)
    clf.classifier.weight.data[...] += 1.0
    ft.save_lora(clf, tmp_path, include=["classifier"])
    fresh = build()
    ft.load_lora(fresh, tmp_path)
    ids = np.random.default_rng(2).integers(0, 50, (2, 6))
    np.testing.assert_array_equal(fresh.eval()(ids).numpy(), clf.eval()(ids).numpy())


def test_load_lora_mismatches_are_clear_errors_and_change_nothing(tmp_path):
    model = _gpt()
    ft.apply_lora(model, ["*.attn.c_attn"], rank=2)
    ft.save_lora(model, tmp_path)
    wider = GPT(GPTConfig(**{**GPT_CFG.to_dict(), "n_embd": 16}), rng=np.random.default_rng(0))
    keys = list(wider.state_dict())
    with pytest.raises(ValueError, match=r"shape mismatches.*h.0.attn.c_attn.lora_A: file "
                                         r"\(2, 32\), model \(2, 16\)"):
        ft.load_lora(wider, tmp_path)
    assert list(wider.state_dict()) == keys and not ft.lora_modules(wider)
    shallow = GPT(GPTConfig(**{**GPT_CFG.to_dict(), "n_layer": 1}))
    with pytest.raises(ValueError, match=r"no Linear for: \['h.1.attn.c_attn'\]"):
        ft.load_lora(shallow, tmp_path)
    other_rank = _gpt()
    ft.apply_lora(other_rank, ["*.attn.c_attn"], rank=3)
    with pytest.raises(ValueError, match="does not match the adapter"):
        ft.load_lora(other_rank, tmp_path)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        ft.load_lora(_gpt(), tmp_path / "missing")
    with pytest.raises(ValueError, match="no LoRA modules to save"):
        ft.save_lora(_gpt(), tmp_path / "none")


# ----------------------------------------------------------------------------- fine-tuning
def _shifted_sequences(shift: int, seed: int) -> np.ndarray:
    """Rows ``s, s+shift, s+2·shift, ...`` (mod the vocabulary): a rule a GPT can learn."""
    start = np.random.default_rng(seed).integers(0, 50, (8, 1))
    return (start + shift * np.arange(16)) % 50  # (8, 16)


@pytest.fixture(scope="module")
def pretrained_gpt_state() -> dict:
    """A tiny GPT fully trained on the "+1" rule (the "pretrained" base)."""
    model = _gpt()
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    seqs = _shifted_sequences(1, seed=0)
    for _ in range(60):
        _, loss = model(seqs[:, :-1], targets=seqs[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_lora_on_a_tiny_gpt_trains_few_parameters_and_lowers_the_loss(pretrained_gpt_state):
    model = _gpt(seed=1)
    model.load_state_dict(pretrained_gpt_state)
    ft.apply_lora(model, ["*.attn.c_attn"], rank=2, alpha=4, rng=np.random.default_rng(1))
    ft.freeze_all_but(model, ["*.lora_A", "*.lora_B"])
    report = ft.TrainabilityAudit(model).report()
    assert report.trainable == 2 * (2 * 32 + 96 * 2)
    assert report.fraction < 0.02
    opt = optim.AdamW(ft.param_groups(model, base_lr=3e-2, weight_decay=0.01))
    audit = ft.TrainabilityAudit(model, opt)
    audit.snapshot()
    seqs = _shifted_sequences(2, seed=1)  # fine-tune to the "+2" rule
    losses = []
    for step in range(40):
        _, loss = model(seqs[:, :-1], targets=seqs[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            audit.check_after_step()  # lora_A's zero first gradient (B = 0) is expected
        losses.append(loss.item())
    assert losses[0] > 3.0  # the base has not learned "+2"
    assert losses[-1] < 0.25 * losses[0]
    audit.check_after_step()  # after 40 steps the frozen base is still bit-identical
    adapted = model(seqs).numpy().copy()
    ft.merge_lora(model)  # export: plain Linear layers, same function
    np.testing.assert_allclose(model(seqs).numpy(), adapted, atol=1e-4, rtol=1e-5)


def test_lora_on_a_tiny_bert_classifier_trains_few_parameters_and_lowers_the_loss():
    rng = np.random.default_rng(0)
    clf = BertClassifier(BERT_CFG, num_labels=2, rng=rng)
    ft.apply_lora(clf, ["*.attention.self.query", "*.attention.self.value"], rank=2, alpha=4,
                  rng=rng)
    ft.freeze_all_but(clf, ["*.lora_A", "*.lora_B", "classifier"])
    report = ft.TrainabilityAudit(clf).report()
    assert report.trainable == 4 * (2 * 32 + 32 * 2) + 32 * 2 + 2
    assert report.fraction < 0.05
    assert str(report).startswith(f"trainable {report.trainable:,} / total {report.total:,}")
    ids = rng.integers(1, 50, (16, 8))
    labels = (ids[:, 1] % 2).astype(np.int64)  # a label the encoder must read off a token
    opt = optim.AdamW(ft.param_groups(clf, base_lr=1e-2, head_lr=1e-2))
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(clf(ids), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
