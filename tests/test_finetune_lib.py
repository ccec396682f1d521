"""Fine-tuning library: freezing, depth layouts, layer-wise lr decay, gradual unfreezing,
frozen BatchNorm statistics, new heads and the trainability audit."""

from __future__ import annotations

import numpy as np
import pytest

import scratchnn as sn
from scratchnn import finetune as ft
from scratchnn import nn, optim
from scratchnn.models import (
    CNN,
    GPT,
    MLP,
    BertClassifier,
    BertConfig,
    BertModel,
    CNNConfig,
    GPTConfig,
    MLPConfig,
    RNNConfig,
    RNNModel,
)
from scratchnn.nn.functional import cross_entropy

GPT_CFG = GPTConfig(vocab_size=30, block_size=12, n_layer=3, n_head=2, n_embd=16)
BERT_CFG = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=12,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CNN_CFG = CNNConfig(in_channels=1, image_size=(8, 8), num_classes=3, channels=(4, 6))


def _gpt() -> GPT:
    return GPT(GPT_CFG, rng=np.random.default_rng(0))


def _bert(**kwargs) -> BertClassifier:
    return BertClassifier(BERT_CFG, num_labels=2, rng=np.random.default_rng(0), **kwargs)


def _cnn() -> CNN:
    return CNN(CNN_CFG, rng=np.random.default_rng(0))


def _images(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return sn.tensor(rng.normal(size=(n, 1, 8, 8)).astype(np.float32)), rng.integers(0, 3, n)


def _trainable(model) -> list[str]:
    return ft.trainable_parameter_names(model)


# ----------------------------------------------------------------------------- freezing
def test_freeze_and_unfreeze_by_glob_and_module_name():
    model = _gpt()
    frozen = ft.freeze(model, ["wte", "h.0", "*.ln_?.bias"])
    assert "wte.weight" in frozen and "h.0.attn.c_attn.weight" in frozen
    assert "h.2.ln_1.bias" in frozen and "h.2.ln_1.weight" not in frozen
    assert "h.1.attn.c_attn.weight" in _trainable(model)
    assert ft.unfreeze(model, "h.0.attn.*") == ["h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias",
                                                "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias"]
    assert not dict(model.named_parameters())["h.0.mlp.c_fc.weight"].requires_grad


def test_a_pattern_matching_no_parameter_is_an_error_naming_it_and_candidates():
    model = _gpt()
    with pytest.raises(ValueError, match=r"pattern 'h.9' matches no parameter of GPT; "
                                         r"parameters include: wte.weight, wpe.weight"):
        ft.freeze(model, ["h.0", "h.9"])
    assert len(_trainable(model)) == len(list(model.parameters()))  # nothing frozen


def test_freeze_all_but_the_head():
    model = _bert()
    assert ft.freeze_all_but(model, ["classifier"]) == ["classifier.weight", "classifier.bias"]
    assert _trainable(model) == ["classifier.weight", "classifier.bias"]


@pytest.mark.parametrize("build, n, frozen_prefixes, open_prefix", [
    (_gpt, 2, ("wte.", "wpe.", "h.0.", "h.1."), "h.2."),
    (_bert, 1, ("bert.embeddings.", "bert.encoder.layer.0."), "bert.encoder.layer.1."),
    (_cnn, 1, ("features.0.", "features.1."), "features.4."),
])
def test_freeze_first_blocks_by_depth(build, n, frozen_prefixes, open_prefix):
    model = build()
    frozen = ft.freeze_first_blocks(model, n)
    params = dict(model.named_parameters())
    assert frozen == [k for k in params if k.startswith(frozen_prefixes)]
    assert all(not params[k].requires_grad for k in frozen)
    assert all(p.requires_grad for k, p in params.items() if k.startswith(open_prefix))
    with pytest.raises(ValueError, match=r"n must be an int in \[0, \d\]"):
        ft.freeze_first_blocks(model, 99)


def test_layouts_of_the_families():
    rnn = RNNModel(RNNConfig(3, vocab_size=10, num_layers=2, bidirectional=True),
                   rng=np.random.default_rng(0))
    layout = ft.model_layout(rnn)
    assert layout.stem == ["embedding.weight"] and layout.head == ["head.weight", "head.bias"]
    assert "rnn.weight_hh_l1_reverse" in layout.blocks[1]
    mlp = ft.model_layout(MLP(MLPConfig(4, 3, (8, 8))))
    assert mlp.block_names == ["net.0", "net.2"] and mlp.head == ["net.4.weight", "net.4.bias"]
    bert = ft.model_layout(BertModel(BERT_CFG))
    assert bert.top == ["pooler.dense.weight", "pooler.dense.bias"] and bert.head == []
    gpt = ft.model_layout(_gpt())
    assert gpt.top == ["ln_f.weight", "ln_f.bias"] and gpt.head == []  # lm_head is tied to wte
    generic = ft.model_layout(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)))
    assert generic.block_names == ["0"] and generic.head == ["2.weight", "2.bias"]


# ----------------------------------------------------------------------------- optimizers
def _steps(model, opt, n=3, seed=0):
    for i in range(n):
        x, y = _images(seed=seed + i)
        loss = cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
])
def test_frozen_parameters_and_bn_buffers_do_not_move_and_have_no_state(make_opt):
    model = _cnn()
    ft.freeze_first_blocks(model, 1)
    ft.freeze_batchnorm_stats(model, "features.1")
    params = dict(model.named_parameters())
    frozen = {k: p.numpy().copy() for k, p in params.items() if not p.requires_grad}
    buffers = {k: b.numpy().copy() for k, b in model.named_buffers() if k.startswith("features.1")}
    other_bn = model.features[5].running_mean.numpy().copy()
    # Every parameter is handed to the optimizer: it must skip the frozen ones itself.
    opt = make_opt(ft.param_groups(model, base_lr=0.1, include_frozen=True, weight_decay=0.1))
    _steps(model.train(), opt)
    for k, before in frozen.items():
        assert params[k].numpy().tobytes() == before.tobytes(), k
        assert params[k] not in opt.state
    for k, b in model.named_buffers():
        if k in buffers:
            assert b.numpy().tobytes() == buffers[k].tobytes(), k
    assert not np.array_equal(model.features[5].running_mean.numpy(), other_bn)
    assert any(params[k] in opt.state for k in params if k not in frozen)


def test_a_parameter_frozen_after_the_optimizer_was_built_stops_moving():
    model = _cnn()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    _steps(model, opt, n=2)  # momentum built up for every parameter
    ft.freeze(model, "features.0")
    w = model.features[0].weight
    before = w.numpy().copy()
    _steps(model, opt, n=2, seed=5)
    assert w.numpy().tobytes() == before.tobytes()


def test_layer_wise_lr_decay_groups_are_as_documented():
    base, decay, head = 1e-3, 0.5, 1e-2
    model = ft.GPTClassifier(_gpt(), num_labels=2, rng=np.random.default_rng(1))
    groups = ft.param_groups(model, base, head_lr=head, layer_decay=decay, weight_decay=0.1)
    lrs = {g["name"]: g["lr"] for g in groups}
    n = 3
    assert lrs == pytest.approx({
        "embeddings": base * decay ** n, "block.1": base * decay ** 2,
        "block.1.no_decay": base * decay ** 2, "block.2": base * decay,
        "block.2.no_decay": base * decay, "block.3": base, "block.3.no_decay": base,
        "top.no_decay": base, "head": head, "head.no_decay": head,
    })
    assert [g["name"] for g in groups][:2] == ["embeddings", "block.1"]
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["gpt.h.0.attn.c_attn.weight"])]["name"] == "block.1"
    assert by_param[id(named["gpt.h.2.ln_1.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["score.weight"])]["weight_decay"] == 0.1
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_param_groups_leave_frozen_out_and_schedulers_keep_the_ratios():
    model = _bert()
    ft.freeze(model, "bert.embeddings")
    groups = ft.param_groups(model, 1e-3, head_lr=5e-3, layer_decay=0.8,
                             no_decay_for_1d=False)
    names = [g["name"] for g in groups]
    assert "embeddings" not in names and all(g["weight_decay"] == 0.0 for g in groups)
    opt = optim.AdamW(groups)
    sched = optim.lr_scheduler.LinearWarmupCosine(opt, warmup_steps=2, total_steps=10)
    for _ in range(4):
        opt.step()
        sched.step()
    lr = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lr["block.1"] / lr["block.2"] == pytest.approx(0.8)
    assert lr["head"] / lr["block.2"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match=r"layer_decay must be in \(0, 1\], got 1.5"):
        ft.param_groups(model, 1e-3, layer_decay=1.5)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        ft.param_groups(model, 1e-3)


# ----------------------------------------------------------------------------- unfreezing
def test_gradual_unfreezing_opens_stages_on_schedule():
    model = _bert()
    stages = [["classifier"], ["bert.encoder.layer.1"], ["bert.encoder.layer.0"]]
    un = ft.GradualUnfreezer(model, stages, every_n_epochs=2)
    params = dict(model.named_parameters())

    def open_stages():
        return [all(params[n].requires_grad for n in ft.match_parameters(model, s))
                for s in stages]
    assert open_stages() == [True, False, False]
    assert params["bert.embeddings.word_embeddings.weight"].requires_grad  # in no stage
    assert un.step() == [] and open_stages() == [True, False, False]  # epoch 1
    assert un.step()[0].startswith("bert.encoder.layer.1.")  # epoch 2
    assert open_stages() == [True, True, False]
    state = un.state_dict()
    un.step(4)
    assert open_stages() == [True, True, True] and un.num_open == 3
    un.load_state_dict(state)  # resume at epoch 2
    assert open_stages() == [True, True, False] and un.last_epoch == 2

    custom = ft.GradualUnfreezer(_bert(), stages, schedule={0: 0, 1: 3, 2: 3})
    assert custom.num_open == 1
    custom.step(2)
    assert custom.num_open == 1
    custom.step(3)
    assert custom.num_open == 3
    with pytest.raises(ValueError, match="schedule must give an epoch for every stage"):
        ft.GradualUnfreezer(_bert(), stages, schedule={0: 0, 2: 1})


def test_gradual_unfreezing_trains_only_open_stages_with_one_optimizer():
    model = _cnn()
    un = ft.GradualUnfreezer(model, [["head"], ["features.4", "features.5"],
                                     ["features.0", "features.1"]])
    opt = optim.SGD(ft.param_groups(model, 0.1, include_frozen=True), lr=0.1, momentum=0.9)
    first = model.features[0].weight.numpy().copy()
    bn = model.features[1].running_mean.numpy().copy()
    assert model.features[1].frozen_stats and model.features[5].frozen_stats
    _steps(model.train(), opt, n=1)
    un.step()  # epoch 1 opens features.4/5 and their BatchNorm statistics
    assert not model.features[5].frozen_stats and model.features[1].frozen_stats
    _steps(model, opt, n=1)
    assert model.features[0].weight.numpy().tobytes() == first.tobytes()
    assert model.features[1].running_mean.numpy().tobytes() == bn.tobytes()
    un.step()
    _steps(model, opt, n=1)
    assert not np.array_equal(model.features[0].weight.numpy(), first)
    assert not np.array_equal(model.features[1].running_mean.numpy(), bn)


# ----------------------------------------------------------------------------- batch norm
def test_frozen_batchnorm_statistics_stay_fixed_under_train_mode():
    model = _cnn()
    x, y = _images(seed=1)
    _steps(model.train(), optim.SGD(model.parameters(), lr=0.01), n=1)  # non-trivial stats
    assert ft.freeze_batchnorm_stats(model) == ["features.1", "features.5"]
    stats = {k: b.numpy().copy() for k, b in model.named_buffers()}
    model.train()
    _steps(model, optim.SGD(model.parameters(), lr=0.1), n=3)
    for k, b in model.named_buffers():
        assert b.numpy().tobytes() == stats[k].tobytes(), k
    # In train mode a frozen BatchNorm normalises with its running statistics, as in eval.
    bn = model.features[1]
    h = model.features[0](x)
    train_out = bn(h).numpy()
    np.testing.assert_array_equal(train_out, bn.eval()(h).numpy())
    ft.unfreeze_batchnorm_stats(model)
    bn.train()(h)
    assert not np.array_equal(bn.running_mean.numpy(), stats["features.1.running_mean"])


# ----------------------------------------------------------------------------- heads
@pytest.mark.parametrize("build, x, expected_names", [
    (lambda: MLP(MLPConfig(4, 3, (8,)), rng=np.random.default_rng(0)),
     lambda: sn.tensor(np.ones((2, 4), np.float32)), ["net.2.weight", "net.2.bias"]),
    (_cnn, lambda: _images(2)[0], ["head.0.weight", "head.0.bias"]),
    (lambda: RNNModel(RNNConfig(3, vocab_size=10), rng=np.random.default_rng(0)),
     lambda: np.array([[1, 2, 3], [4, 5, 0]]), ["head.weight", "head.bias"]),
    (_bert, lambda: np.array([[1, 2, 3], [4, 5, 6]]), ["classifier.weight", "classifier.bias"]),
    (lambda: ft.GPTClassifier(_gpt(), 2), lambda: np.array([[1, 2, 3], [4, 5, 6]]),
     ["score.weight", "score.bias"]),
])
def test_replace_head_for_each_family(build, x, expected_names):
    model = build()
    model.requires_grad_(False)
    names = ft.replace_head(model, 5, task="regression", init="zeros")
    assert names == expected_names
    assert _trainable(model) == names
    out = model.eval()(x())
    assert out.shape == (2, 5)
    np.testing.assert_array_equal(out.numpy(), 0.0)  # zeros init: weight and bias are zero
    assert model.head_task == "regression"
    for attr in ("num_outputs", "num_classes", "out_features"):
        if hasattr(getattr(model, "config", None), attr):
            assert getattr(model.config, attr) == 5


def test_replace_head_inits_and_errors():
    model = _bert()
    ft.replace_head(model, 3, init="xavier_uniform", rng=np.random.default_rng(0))
    w = model.classifier.weight.numpy()
    bound = np.sqrt(6 / (16 + 3))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound
    assert model.num_labels == 3 and not model.classifier.bias.numpy().any()
    with pytest.raises(TypeError, match="GPTClassifier"):
        ft.replace_head(_gpt(), 2)
    with pytest.raises(ValueError, match="unknown head init 'he'"):
        ft.replace_head(model, 2, init="he")
    with pytest.raises(ValueError, match="task must be one of"):
        ft.replace_head(model, 2, task="ranking")


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_gpt_classifier_pooling_ignores_right_padding(pooling):
    clf = ft.GPTClassifier(_gpt(), num_labels=3, pooling=pooling,
                           rng=np.random.default_rng(1)).eval()
    short = np.array([[3, 4, 5]])
    padded = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 1]])
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    both = clf(padded, attention_mask=mask).numpy()
    np.testing.assert_allclose(both[0], clf(short).numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both[1], clf(padded[1:]).numpy()[0], rtol=1e-5, atol=1e-6)
    assert np.abs(clf(padded).numpy()[0] - both[0]).max() > 1e-6  # the mask matters


# ----------------------------------------------------------------------------- audit
def _bert_batch():
    rng = np.random.default_rng(3)
    return rng.integers(1, 30, (4, 6)), rng.integers(0, 2, 4)


def _bert_step(model, opt, audit=None):
    ids, labels = _bert_batch()
    if audit is not None:
        audit.snapshot()
    loss = cross_entropy(model(ids), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_audit_passes_a_correct_setup_and_reports_counts():
    model = _bert()
    ft.freeze_all_but(model, ["classifier", "bert.encoder.layer.1"])
    opt = optim.AdamW(ft.param_groups(model, 1e-3))
    audit = ft.TrainabilityAudit(model, opt)
    report = audit.report()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (report.trainable, report.total) == (trainable, total)
    assert str(report) == (f"trainable {trainable:,} / total {total:,} parameters "
                           f"({100 * trainable / total:.2f}%)")
    _bert_step(model, opt, audit)
    audit.check_after_step()
    with pytest.raises(RuntimeError, match="call snapshot"):
        ft.TrainabilityAudit(model).check_after_step()


def test_audit_catches_a_frozen_parameter_that_an_update_moves():
    model = _bert()
    ft.freeze(model, "bert.embeddings")
    audit = ft.TrainabilityAudit(model)
    audit.snapshot()
    ids, labels = _bert_batch()
    model.requires_grad_(True)  # e.g. a later "unfreeze everything" by mistake ...
    cross_entropy(model(ids), labels).backward()
    for p in model.parameters():  # ... or a hand-written update that ignores requires_grad
        p.data[...] -= 0.1 * p.grad.numpy()
    model.requires_grad_(False)
    ft.unfreeze(model, ["bert.encoder", "classifier"])
    with pytest.raises(ft.TrainabilityError,
                       match=r"frozen parameters changed: bert.embeddings.word_embeddings"):
        audit.check_after_step()


def test_audit_catches_a_frozen_parameter_sharing_an_array_with_a_trainable_one():
    model = _bert()
    frozen = model.bert.encoder.layer[0].attention.self.query
    trainable = model.bert.encoder.layer[0].attention.self.key
    frozen.weight.data = trainable.weight.data  # aliased by a careless weight loader
    ft.freeze(model, "bert.encoder.layer.0.attention.self.query")
    opt = optim.SGD(ft.param_groups(model, 0.1), lr=0.1)
    audit = ft.TrainabilityAudit(model, opt)
    _bert_step(model, opt, audit)
    with pytest.raises(ft.TrainabilityError, match="attention.self.query.weight"):
        audit.check_after_step()


def test_audit_catches_disconnected_and_unoptimized_trainable_parameters():
    # pooling='cls' never uses the encoder's pooler: its parameters get no gradient.
    model = BertClassifier(num_labels=2, encoder=BertModel(BERT_CFG), pooling="cls")
    opt = optim.SGD(ft.param_groups(model, 0.1), lr=0.1)
    audit = ft.TrainabilityAudit(model, opt)
    _bert_step(model, opt, audit)
    with pytest.raises(ft.TrainabilityError, match=r"got no gradient.*bert.pooler.dense.weight"):
        audit.check_after_step()
    ft.freeze(model, "bert.pooler")
    ft.freeze(model, "bert.encoder")
    opt = optim.SGD(ft.param_groups(model, 0.1), lr=0.1)
    ft.unfreeze(model, "bert.encoder.layer.1")  # after the optimizer was built: not in it
    audit = ft.TrainabilityAudit(model, opt)
    _bert_step(model, opt, audit)
    with pytest.raises(ft.TrainabilityError, match=r"not in any optimizer param group: "
                                                   r"bert.encoder.layer.1"):
        audit.check_after_step()


def test_audit_catches_trainable_parameters_with_an_all_zero_gradient():
    # A dead ReLU layer: zero weights and a negative bias make every activation 0, so the first
    # Linear (through ReLU's zero slope) and the second one's weight (times h = 0) get a
    # gradient that exists but is exactly zero; only the last bias learns.
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].weight.data[...] = 0.0
    model[0].bias.data[...] = -1.0
    opt = optim.SGD(ft.param_groups(model, 0.1), lr=0.1)
    audit = ft.TrainabilityAudit(model, opt)
    audit.snapshot()
    x = sn.tensor(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    cross_entropy(model(x), np.array([0, 1, 0, 1, 1])).backward()
    opt.step()
    assert model[0].weight.grad is not None and not model[0].weight.grad.numpy().any()
    with pytest.raises(ft.TrainabilityError) as info:
        audit.check_after_step()
    message = str(info.value)
    assert message == ("trainability audit failed: trainable parameters got an all-zero "
                       "gradient: 0.weight, 0.bias, 2.weight")
    # Frozen, those parameters are not asked to learn: the audit passes.
    ft.freeze(model, ["0", "2.weight"])
    opt = optim.SGD(ft.param_groups(model, 0.1), lr=0.1)
    audit = ft.TrainabilityAudit(model, opt)
    audit.snapshot()
    opt.zero_grad()
    cross_entropy(model(x), np.array([0, 1, 0, 1, 1])).backward()
    opt.step()
    audit.check_after_step()


def test_audit_accepts_the_zero_gradients_below_a_zero_initialised_head():
    # A zero head passes no gradient back on the first step: exactly zero below it, expected.
    model = _bert()
    ft.replace_head(model, 2, init="zeros")
    opt = optim.SGD(ft.param_groups(model, 0.1), lr=0.1)
    audit = ft.TrainabilityAudit(model, opt)
    _bert_step(model, opt, audit)
    assert not model.bert.encoder.layer[0].attention.self.query.weight.grad.numpy().any()
    assert not model.classifier.bias.grad.numpy().any()  # equal logits, a 2/2 batch
    assert model.classifier.weight.grad.numpy().any()
    audit.check_after_step()
    _bert_step(model, opt)  # the head has moved: the encoder learns from the second step on
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad.numpy().any()
    # Zero gradients are excused, missing ones are not: the unused pooler is still caught.
    model = BertClassifier(num_labels=2, encoder=BertModel(BERT_CFG), pooling="cls")
    ft.replace_head(model, 2, init="zeros")
    opt = optim.SGD(ft.param_groups(model, 0.1), lr=0.1)
    audit = ft.TrainabilityAudit(model, opt)
    _bert_step(model, opt, audit)
    with pytest.raises(ft.TrainabilityError) as info:
        audit.check_after_step()
    assert str(info.value) == ("trainability audit failed: trainable parameters got no "
                               "gradient (disconnected from the loss? freeze them, or call "
                               "check_after_step() before zero_grad()): "
                               "bert.pooler.dense.weight, bert.pooler.dense.bias")


def test_audit_catches_moving_protected_bn_statistics():
    model = _cnn()
    ft.freeze_batchnorm_stats(model)
    audit = ft.TrainabilityAudit(model)
    audit.snapshot()
    ft.unfreeze_batchnorm_stats(model, "features.5")  # a bug: released before the step
    _steps(model.train(), optim.SGD(model.parameters(), lr=0.1), n=1)
    with pytest.raises(ft.TrainabilityError, match=r"protected buffers changed: "
                                                   r"features.5.running_mean"):
        audit.check_after_step()
