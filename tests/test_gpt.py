"""GPT: config, module layout, tied embeddings, parity with Hugging Face GPT-2, the KV cache
and generation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import scratchnn as sn
from scratchnn import optim
from scratchnn.models import GPT, GPTConfig, build_model, generate
from scratchnn.models.generation import sample_next, top_k_filter, top_p_filter
from scratchnn.serialization import load_tensors, save_tensors

TINY = GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=8)


def _tiny(seed=0, dtype=np.float64, weight_std=None, **overrides) -> GPT:
    """A tiny GPT; ``weight_std`` redraws every parameter (a trained-looking model whose
    logits are far apart, so that greedy decoding has no near-ties)."""
    config = GPTConfig(**{**TINY.to_dict(), **overrides})
    model = GPT(config, rng=np.random.default_rng(seed)).to(dtype)
    if weight_std is not None:
        rng = np.random.default_rng(seed + 1)
        for p in model.parameters():
            p.data[...] = rng.normal(0.0, weight_std, p.shape)
    return model


def _tokens(shape, vocab=TINY.vocab_size, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, shape)


# ----------------------------------------------------------------------------- config
def test_config_json_round_trip_and_registry():
    config = GPTConfig(vocab_size=50, block_size=32, n_layer=3, n_head=2, n_embd=16,
                       dropout=0.1, bias=False, layer_norm_eps=1e-6)
    again = GPTConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert isinstance(build_model("gpt", config.to_dict()), GPT)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_embd": 10, "n_head": 4}, "n_embd must be divisible by n_head"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
    ({"block_size": 2.5}, "block_size must be a positive integer, got 2.5"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
    ({"layer_norm_eps": 0}, "layer_norm_eps must be a number > 0"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown GPTConfig field\(s\) \['n_ctx'\]"):
        GPTConfig.from_dict({"n_ctx": 8})


# ----------------------------------------------------------------------------- layout, init
def test_module_names_and_tied_head():
    model = GPT(TINY, rng=np.random.default_rng(0))
    names = [n for n, _ in model.named_parameters()]
    assert names[:4] == ["wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias"]
    assert "h.1.attn.c_attn.weight" in names and "h.1.mlp.c_proj.bias" in names
    assert "lm_head.weight" not in names  # the tied weight is listed once, as wte.weight
    assert model.lm_head.weight is model.wte.weight
    keys = list(model.state_dict())
    assert keys[-1] == "lm_head.weight" and "wte.weight" in keys  # both keys, as in PyTorch
    d, v, L = TINY.n_embd, TINY.vocab_size, TINY.n_layer
    per_block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    assert model.num_parameters() == v * d + TINY.block_size * d + L * per_block + 2 * d


def test_init_statistics_and_explicit_rng():
    config = GPTConfig(n_layer=8)
    model = GPT(config, rng=np.random.default_rng(0))
    sd = model.state_dict()
    assert abs(sd["h.0.attn.c_attn.weight"].std() - 0.02) < 1e-3
    assert abs(sd["wte.weight"].std() - 0.02) < 2e-3
    assert abs(sd["h.3.mlp.c_proj.weight"].std() - 0.02 / 4) < 3e-4  # 0.02 / √(2·8)
    assert abs(sd["h.3.attn.c_proj.weight"].std() - 0.02 / 4) < 3e-4
    assert not sd["h.0.mlp.c_fc.bias"].any() and (sd["h.0.ln_2.weight"] == 1).all()
    again = GPT(config, rng=np.random.default_rng(0)).state_dict()
    assert all(np.array_equal(sd[k], again[k]) for k in sd)


def test_tied_weight_survives_optimizer_step_and_save_load(tmp_path):
    model = _tiny(dtype=np.float32)
    tied = model.wte.weight
    before = tied.data.copy()
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    idx = _tokens((2, 8))
    _, loss = model(idx, _tokens((2, 8), seed=1))
    loss.backward()
    opt.step()
    assert model.lm_head.weight is tied and model.wte.weight is tied
    assert not np.array_equal(tied.data, before)

    save_tensors(tmp_path / "gpt.safetensors", model.state_dict(),
                 metadata={"config": json.dumps(model.config.to_dict())})
    arrays, meta = load_tensors(tmp_path / "gpt.safetensors")
    other = GPT(GPTConfig.from_dict(json.loads(meta["config"])), rng=np.random.default_rng(9))
    other.load_state_dict(arrays)
    assert other.lm_head.weight is other.wte.weight
    assert len(list(other.parameters())) == len(list(model.parameters()))
    np.testing.assert_array_equal(other.lm_head.weight.data, tied.data)
    np.testing.assert_array_equal(other(idx).data, model(idx).data)


# ----------------------------------------------------------------------------- parity
def _hf_copy(model: GPT):
    """transformers' GPT2LMHeadModel with ``model``'s weights (Conv1D weights transposed)."""
    transformers = pytest.importorskip("transformers")
    c = model.config
    hf_config = transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
        n_layer=c.n_layer, n_head=c.n_head, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=c.layer_norm_eps,
        bos_token_id=0, eos_token_id=0, attn_implementation="eager",
    )
    hf = transformers.GPT2LMHeadModel(hf_config).to(torch.float64).eval()
    conv1d = ("c_attn.weight", "c_proj.weight", "c_fc.weight")
    state = {}
    for name, array in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        value = torch.from_numpy(array.copy())
        state[f"transformer.{name}"] = value.T.contiguous() if name.endswith(conv1d) else value
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("attn.bias") or k == "lm_head.weight"
                                  for k in missing)
    assert hf.lm_head.weight is hf.transformer.wte.weight
    return hf


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_forward_backward_matches_hugging_face_gpt2(dtype, tol):
    model = _tiny(weight_std=0.3)
    hf = _hf_copy(model)
    model.to(dtype)
    hf.to(torch.float64 if dtype == np.float64 else torch.float32)
    idx, targets = _tokens((3, 12)), _tokens((3, 12), seed=1)
    logits, loss = model(idx, targets)
    hf_logits = hf(torch.from_numpy(idx)).logits
    hf_loss = torch.nn.functional.cross_entropy(hf_logits.reshape(-1, TINY.vocab_size),
                                                torch.from_numpy(targets).reshape(-1))
    np.testing.assert_allclose(logits.data, hf_logits.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(loss.item(), hf_loss.item(), rtol=tol)
    loss.backward()
    hf_loss.backward()
    hf_params = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        ref = hf_params[f"transformer.{name}"].grad
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            ref = ref.T
        np.testing.assert_allclose(p.grad.data, ref.numpy(), rtol=tol, atol=tol,
                                   err_msg=f"grad of {name}")


def test_kv_cache_matches_full_forward():
    model = _tiny(weight_std=0.3)
    idx = _tokens((2, 11))
    full = model(idx).data
    logits, cache = model(idx[:, :5], use_cache=True)
    assert len(cache) == TINY.n_layer and cache[0][0].shape == (2, TINY.n_head, 5, 4)
    np.testing.assert_allclose(logits.data, full[:, :5], rtol=1e-12, atol=1e-12)
    logits, cache = model(idx[:, 5:8], past_key_values=cache, use_cache=True)  # 3 new tokens
    np.testing.assert_allclose(logits.data, full[:, 5:8], rtol=1e-12, atol=1e-12)
    for t in range(8, 11):  # one at a time
        logits, cache = model(idx[:, t:t + 1], past_key_values=cache, use_cache=True)
        np.testing.assert_allclose(logits.data, full[:, t:t + 1], rtol=1e-12, atol=1e-12)
    assert cache[0][1].shape == (2, TINY.n_head, 11, 4)


def test_kv_cache_appends_in_place_without_copying_earlier_positions():
    model = _tiny(weight_std=0.3)
    idx = _tokens((2, 9))
    with sn.no_grad():
        _, cache = model(idx[:, :4], use_cache=True)
        first_keys = cache[1][0]  # a view of the buffers: positions 0..3 of layer 1
        kept = first_keys.data.copy()
        assert np.shares_memory(first_keys.data, cache[1][1].data) is False
        for t in range(4, 9):
            _, again = model(idx[:, t:t + 1], past_key_values=cache, use_cache=True)
            assert again is cache and cache.length == t + 1
        # Appending wrote after the first four positions, never over them, and the keys of
        # all nine positions live in the same buffer as the first four.
        np.testing.assert_array_equal(first_keys.data, kept)
        assert np.shares_memory(cache[1][0].data, first_keys.data)
        np.testing.assert_array_equal(cache[1][0].data[:, :, :4], kept)
    assert cache.capacity == TINY.block_size and len(cache) == TINY.n_layer


def test_forward_that_fills_the_cache_backpropagates_like_one_that_does_not():
    idx = _tokens((2, 7))
    grads = []
    for use_cache in (False, True):
        model = _tiny(seed=3)
        out = model(idx, targets=idx, use_cache=use_cache)
        out[1].backward()
        grads.append({n: p.grad.data.copy() for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        np.testing.assert_allclose(grads[1][name], g, rtol=1e-12, atol=1e-14, err_msg=name)
    # With cached positions, the new ones still differentiate through their own keys/values.
    model = _tiny(seed=3)
    _, cache = model(idx[:, :4], use_cache=True)
    logits, _ = model(idx[:, 4:], past_key_values=cache, use_cache=True)
    logits.sum().backward()
    assert np.abs(model.h[0].attn.c_attn.weight.grad.data).sum() > 0


def test_a_cache_that_does_not_fit_the_model_is_refused():
    model = _tiny()
    _, cache = _tiny(n_embd=12, n_head=3)(_tokens((1, 3)), use_cache=True)
    with pytest.raises(ValueError, match=r"does not fit this model.*\(1, 3, 4\)"):
        model(_tokens((1, 1)), past_key_values=cache)
    _, cache = model(_tokens((2, 3)), use_cache=True)
    with pytest.raises(ValueError, match="does not fit this model"):
        model(_tokens((1, 1)), past_key_values=cache)  # batch 2 cached, batch 1 given
    with pytest.raises(TypeError, match="KVCache returned by an earlier call"):
        model(_tokens((1, 1)), past_key_values=((None, None),) * TINY.n_layer)


def test_sequence_longer_than_block_size_is_a_clear_error():
    model = _tiny()
    with pytest.raises(ValueError, match="sequence length 17 exceeds block_size 16"):
        model(_tokens((1, 17)))
    _, cache = model(_tokens((1, 10)), use_cache=True)
    with pytest.raises(ValueError, match=r"10 cached \+ 7 new = 17 exceeds block_size 16"):
        model(_tokens((1, 7)), past_key_values=cache)
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(_tokens((4,)))


# ----------------------------------------------------------------------------- generation
def test_greedy_generation_same_with_and_without_cache_past_block_size():
    model = _tiny(weight_std=0.5)
    prompt = _tokens((2, 3))
    # 3 + 30 tokens > block_size 16: the window slides (twice) too.
    with_cache = generate(model, prompt, 30, temperature=0)
    without = generate(model, prompt, 30, temperature=0, use_cache=False)
    np.testing.assert_array_equal(with_cache.data, without.data)
    assert with_cache.shape == (2, 33) and with_cache.dtype == np.int64
    np.testing.assert_array_equal(with_cache.data[:, :3], prompt)
    # Greedy means argmax of the model's own logits on the context window, token by token;
    # a full window slides forward by half a block.
    seq, start = prompt.copy(), 0
    for _ in range(30):
        if seq.shape[1] - start > TINY.block_size:
            start = seq.shape[1] - TINY.block_size // 2
        nxt = model(seq[:, start:]).data[:, -1].argmax(-1)
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(with_cache.data, seq)


def test_sampling_same_with_and_without_cache_and_restores_mode():
    model = _tiny(weight_std=0.5)
    model.train()
    kw = {"temperature": 0.8, "top_k": 5, "top_p": 0.9}
    a = generate(model, [1, 2], 20, rng=np.random.default_rng(3), **kw)
    b = generate(model, [1, 2], 20, rng=np.random.default_rng(3), use_cache=False, **kw)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.shape == (22,)
    assert all(m.training for m in model.modules())


def test_top_k_and_top_p_filters():
    logits = np.array([[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 5.0, 1.0]])
    np.testing.assert_array_equal(top_k_filter(logits, 2),
                                  [[-np.inf, 3.0, 2.0, -np.inf], [-np.inf, -np.inf, 5.0, 1.0]])
    probs = np.array([[0.1, 0.5, 0.3, 0.1]])
    np.testing.assert_allclose(top_p_filter(probs, 0.7), [[0.0, 0.625, 0.375, 0.0]])
    np.testing.assert_allclose(top_p_filter(probs, 0.5), [[0.0, 1.0, 0.0, 0.0]])
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(sample_next(logits, 1.0, top_k=1, rng=rng), [1, 2])
    np.testing.assert_array_equal(sample_next(logits, 0.0), [1, 2])
    draws = [sample_next(logits[:1], 1.0, top_k=2, rng=rng)[0] for _ in range(400)]
    assert set(draws) == {1, 2} and 0.6 < np.mean(np.array(draws) == 1) < 0.85  # e/(1+e)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": -1}, "max_new_tokens must be an int >= 0"),
    ({"temperature": -0.5}, "temperature must be a finite number >= 0"),
    ({"top_k": 0}, "top_k must be None or an int >= 1"),
    ({"top_p": 1.5}, r"top_p must be None or a number in \(0, 1\]"),
])
def test_generate_validates_arguments(kwargs, message):
    args = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(_tiny(), _tokens((1, 2)), **args)


def test_generate_rejects_float_prompt():
    with pytest.raises(ValueError, match="non-empty integer array"):
        generate(_tiny(), sn.tensor([[0.5, 1.0]]), 2)
