"""End-to-end tests of ``scratchnn finetune`` and ``scratchnn lora merge`` on tiny models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli
from scratchnn.data import load_builtin, read_csv, write_csv
from scratchnn.data.table import Table
from scratchnn.serialization import load_tensors

POSITIVE = ["good", "great", "nice", "fine", "love"]
NEGATIVE = ["bad", "awful", "poor", "hate", "terrible"]
FILLER = ["the", "movie", "food", "was", "is", "really", "very", "it", "a", "place"]


def ok(*args: object) -> str:
    rc, out, err = cli(*args)
    assert rc == 0, err
    return out


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


# --------------------------------------------------------------------------- tables (MLP)
@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """An MLP trained on iris, and a CSV of the iris features with a new label set."""
    folder = tmp_path_factory.mktemp("iris")
    ok("train", "--data", "iris", "--epochs", "40", "--out", folder / "src", "--no-progress")
    table = load_builtin("iris")
    columns = {c: table[c] for c in table.columns if c != "target"}
    columns["size"] = np.where(table["target"] == 2, "large", "small").astype(object)
    write_csv(Table(columns), folder / "new.csv")
    return folder


def test_new_head_on_a_new_label_set(iris_run):
    run = iris_run / "ft"
    out = ok("finetune", iris_run / "src", "--data", iris_run / "new.csv", "--target", "size",
             "--new-head", "--epochs", "30", "--lr", "0.01", "--out", run, "--no-progress")
    assert "trained 450 of 450 parameters (100.00%)" in out  # 4·64+64 + 64·2+2
    res = results(run)
    assert res["classes"] == ["large", "small"]
    assert res["metrics"]["accuracy"] >= 0.9
    rc, out, err = cli("evaluate", run, "--json")
    assert rc == 0, err
    assert json.loads(out)["metrics"]["accuracy"] == res["metrics"]["accuracy"]


def test_a_used_out_is_refused_before_from_is_loaded(iris_run, tmp_path, monkeypatch):
    import scratchnn.recipes.finetune as recipe

    def no_loading(path):
        raise AssertionError("FROM was loaded before --out was checked")

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    monkeypatch.setattr(recipe, "load_source", no_loading)
    rc, out, err = cli("finetune", iris_run / "src", "--data", iris_run / "new.csv",
                       "--target", "size", "--new-head", "--out", tmp_path / "taken")
    assert rc == 1 and out == ""
    assert err.splitlines() == [f"error: run directory {tmp_path / 'taken'} already exists "
                                "and is not empty; choose another --out or pass --overwrite"]
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_old_labels_need_new_head(iris_run):
    rc, _, err = cli("finetune", iris_run / "src", "--data", iris_run / "new.csv", "--target",
                     "size", "--out", iris_run / "bad", "--no-progress")
    assert rc == 2 and "pass --new-head" in err and len(err.strip().splitlines()) == 1
    assert not (iris_run / "bad").exists()


def test_lora_run_evaluates_predicts_and_merges(iris_run):
    run = iris_run / "lora"
    out = ok("finetune", iris_run / "src", "--data", iris_run / "new.csv", "--target", "size",
             "--new-head", "--lora-rank", "2", "--lora-targets", "net.0", "--epochs", "20",
             "--lr", "0.01", "--out", run, "--no-progress")
    assert "trained 266 of 586 parameters" in out  # A 2·4 + B 64·2 + head 130
    names = {p.name for p in run.iterdir()}
    assert {"adapter.safetensors", "adapter_config.json"} <= names
    assert "model.safetensors" not in names  # adapters alone; the base is referenced
    tensors, _ = load_tensors(run / "adapter.safetensors")
    assert sorted(tensors) == ["net.0.lora_A", "net.0.lora_B", "net.2.bias", "net.2.weight"]
    config = json.loads((run / "config.json").read_text())
    assert config["source"]["path"] == str((iris_run / "src").resolve())
    rc, out, err = cli("evaluate", run, "--json")
    assert rc == 0, err
    assert json.loads(out)["metrics"] == results(run)["metrics"]
    ok("predict", run, "--input", iris_run / "new.csv", "--output", iris_run / "p_lora.csv")
    out = ok("lora", "merge", run)
    merged = Path(str(run) + "-merged")
    assert "model.safetensors" in {p.name for p in merged.iterdir()}
    ok("predict", merged, "--input", iris_run / "new.csv", "--output", iris_run / "p_m.csv")
    a, b = read_csv(iris_run / "p_lora.csv"), read_csv(iris_run / "p_m.csv")
    assert list(a["prediction"]) == list(b["prediction"])
    for col in ("prob_large", "prob_small"):
        assert np.abs(a[col] - b[col]).max() <= 1e-5


def test_lora_target_matching_nothing(iris_run):
    rc, out, err = cli("finetune", iris_run / "src", "--data", iris_run / "new.csv",
                       "--target", "size", "--new-head", "--lora-rank", "2", "--lora-targets",
                       "*.attn", "--out", iris_run / "none", "--no-progress")
    assert rc != 0 and out == ""
    line = err.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("error: LoRA target pattern '*.attn' "
                                                 "matches no Linear module")
    assert "net.0, net.2" in line[0]  # the candidates
    assert not (iris_run / "none").exists()


# --------------------------------------------------------------------------- flags (MLP)
@pytest.fixture(scope="module")
def deep_run(iris_run):
    """An iris MLP with two hidden blocks (net.0, net.2) and a head (net.4)."""
    ok("train", "--data", "iris", "--hidden", "16,16", "--epochs", "20", "--out",
       iris_run / "deep", "--no-progress")
    return iris_run / "deep"


def _finetune_deep(deep_run, run, *flags):
    return ok("finetune", deep_run, "--data", deep_run.parent / "new.csv", "--target", "size",
              "--new-head", "--lr", "0.01", "--out", run, "--no-progress", *flags)


@pytest.fixture
def step0(monkeypatch):
    """The weights each finetune run starts its first step from (the recipe's fit, spied)."""
    from scratchnn.recipes import finetune as recipe

    starts = []
    fit = recipe.fit

    def spy(model, *args, **kwargs):
        starts.append({k: v.copy() for k, v in model.state_dict().items()})
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(recipe, "fit", spy)
    return starts


@pytest.mark.parametrize("n, trained", [(1, 306), (2, 34)])
def test_freeze_first_keeps_the_first_blocks_bit_identical(deep_run, tmp_path, n, trained):
    run = tmp_path / "ff"
    out = _finetune_deep(deep_run, run, "--freeze-first", n, "--epochs", "5")
    # net.0: 4·16+16 = 80, net.2: 16·16+16 = 272, new head net.4: 16·2+2 = 34
    assert f"trained {trained} of 386 parameters" in out
    before, _ = load_tensors(deep_run / "model.safetensors")
    after, _ = load_tensors(run / "model.safetensors")
    frozen = ("net.0.", "net.2.")[:n]
    for key in ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"):
        same = after[key].tobytes() == before[key].tobytes()
        assert same == key.startswith(frozen), key
    assert after["net.4.weight"].shape == (2, 16)
    assert json.loads((run / "config.json").read_text())["finetune"]["freeze_first"] == n


def test_head_lr_and_layer_decay_set_the_group_lrs(deep_run, tmp_path, monkeypatch):
    from scratchnn.recipes import finetune as recipe

    made = []
    make = recipe.make_optimizer

    def spy(model, *args, **kwargs):
        opt = make(model, *args, **kwargs)
        made.append((model, opt))
        return opt

    monkeypatch.setattr(recipe, "make_optimizer", spy)
    run = tmp_path / "lrs"
    _finetune_deep(deep_run, run, "--head-lr", "0.05", "--layer-decay", "0.5", "--epochs", "2")
    ((model, opt),) = made
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}  # after training: no schedule
    assert lrs == pytest.approx({"block.1": 0.005, "block.1.no_decay": 0.005, "block.2": 0.01,
                                 "block.2.no_decay": 0.01, "head": 0.05,
                                 "head.no_decay": 0.05})
    group = {id(p): g["name"] for g in opt.param_groups for p in g["params"]}
    assert {n: group[id(p)] for n, p in model.named_parameters()} == {
        "net.0.weight": "block.1", "net.0.bias": "block.1.no_decay", "net.2.weight": "block.2",
        "net.2.bias": "block.2.no_decay", "net.4.weight": "head", "net.4.bias": "head.no_decay"}
    config = json.loads((run / "config.json").read_text())
    assert (config["finetune"]["head_lr"], config["finetune"]["layer_decay"]) == (0.05, 0.5)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == pytest.approx([0.05, 0.05])  # the head's group


def test_from_scratch_starts_from_new_weights(deep_run, tmp_path, step0):
    src, _ = load_tensors(deep_run / "model.safetensors")
    _finetune_deep(deep_run, tmp_path / "warm", "--epochs", "2")
    _finetune_deep(deep_run, tmp_path / "cold", "--from-scratch", "--epochs", "2")
    warm, cold = step0
    body = ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias")
    for key in body:
        assert warm[key].tobytes() == src[key].tobytes(), key
        assert not np.allclose(cold[key], src[key]), key
    assert cold["net.0.weight"].std() > 0.1  # a real initialisation, not zeros
    config = json.loads((tmp_path / "cold" / "config.json").read_text())
    assert config["source"]["from_scratch"] is True
    assert any(n.startswith("--from-scratch") for n in results(tmp_path / "cold")["notes"])
    a, _ = load_tensors(tmp_path / "warm" / "model.safetensors")
    b, _ = load_tensors(tmp_path / "cold" / "model.safetensors")
    assert not np.allclose(a["net.2.weight"], b["net.2.weight"])


def test_head_init_sets_the_new_head(deep_run, tmp_path, step0):
    for init in ("zeros", "xavier_uniform", "default"):
        _finetune_deep(deep_run, tmp_path / init, "--head-init", init, "--epochs", "1")
        config = json.loads((tmp_path / init / "config.json").read_text())
        assert config["finetune"]["head_init"] == init
    zeros, xavier, default = step0
    assert not zeros["net.4.weight"].any() and not zeros["net.4.bias"].any()
    bound = np.sqrt(6 / (16 + 2))
    w = xavier["net.4.weight"]
    assert w.shape == (2, 16) and 0.5 * bound < np.abs(w).max() <= bound
    assert not xavier["net.4.bias"].any()
    assert default["net.4.bias"].any()  # Linear's own init: a uniform bias
    assert np.abs(default["net.4.weight"]).max() <= 1 / np.sqrt(16)
    for start in step0:  # the body is FROM's in every run
        assert start["net.2.weight"].tobytes() == step0[0]["net.2.weight"].tobytes()


# --------------------------------------------------------------------------- images (CNN)
def _image_folder(root: Path, classes: dict[str, np.ndarray], n: int, seed: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, pattern in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(pattern + rng.normal(0, 30, pattern.shape), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), "L").save(root / name / f"{i}.png")
    return root


def test_cnn_freeze_keeps_frozen_weights_bit_identical(tmp_path):
    stripes = np.tile([[40.0], [220.0]], (4, 8))  # (8, 8) horizontal stripes
    src_data = _image_folder(tmp_path / "a", {"dark": np.full((8, 8), 60.0),
                                              "light": np.full((8, 8), 200.0)}, 12, 0)
    new_data = _image_folder(tmp_path / "b", {"h": stripes, "v": stripes.T,
                                              "flat": np.full((8, 8), 130.0)}, 12, 1)
    ok("train", "--data", src_data, "--model", "cnn", "--channels", "4,8", "--image-size", "8",
       "--epochs", "2", "--batch-size", "8", "--out", tmp_path / "src", "--no-progress")
    run = tmp_path / "ft"
    out = ok("finetune", tmp_path / "src", "--data", new_data, "--new-head", "--freeze",
             "features", "--freeze-bn-stats", "--epochs", "3", "--lr", "0.01", "--out", run,
             "--no-progress")
    assert "trained 27 of" in out  # only the new head: 8·3 + 3
    before, _ = load_tensors(tmp_path / "src" / "model.safetensors")
    after, _ = load_tensors(run / "model.safetensors")
    frozen = [k for k in before if k.startswith("features.")]
    assert any(k.endswith("running_mean") for k in frozen)
    for key in frozen:  # conv weights, BN affine parameters and BN running statistics
        assert after[key].tobytes() == before[key].tobytes(), key
    assert after["head.1.weight"].shape == (3, 8)
    rc, _, err = cli("evaluate", run)
    assert rc == 0, err


# --------------------------------------------------------------------------- sequences (LSTM)
def test_lstm_run_finetunes_with_a_new_head_on_a_subset(tmp_path):
    ok("train", "--data", "digits", "--model", "lstm", "--hidden-size", "16", "--epochs", "1",
       "--out", tmp_path / "src", "--no-progress")
    table = load_builtin("digits")
    rows = np.flatnonzero(table["target"] >= 5)[:150]  # digits 5-9 only, a new label set
    columns = {c: table[c][rows] for c in table.columns if c != "target"}
    columns["parity"] = np.where(table["target"][rows] % 2, "odd", "even").astype(object)
    write_csv(Table(columns), tmp_path / "sub.csv")
    run = tmp_path / "ft"
    out = ok("finetune", tmp_path / "src", "--data", tmp_path / "sub.csv", "--target",
             "parity", "--new-head", "--epochs", "2", "--out", run, "--no-progress")
    # LSTM 4·16·(8+16) + 2·4·16 = 1,664, new head 16·2 + 2 = 34
    assert "trained 1,698 of 1,698 parameters (100.00%)" in out
    assert "(97 train, 23 validation, 30 test rows)" in out
    res = results(run)
    assert res["classes"] == ["even", "odd"]
    before, _ = load_tensors(tmp_path / "src" / "model.safetensors")
    after, _ = load_tensors(run / "model.safetensors")
    assert before.keys() == after.keys()
    assert before["head.weight"].shape == (10, 16) and after["head.weight"].shape == (2, 16)
    rnn = [k for k in before if k.startswith("rnn.")]
    assert rnn and all(after[k].shape == before[k].shape for k in rnn)
    assert all(not np.array_equal(after[k], before[k]) for k in rnn)  # fine-tuned, not frozen
    rc, out, err = cli("evaluate", run, "--json")
    assert rc == 0, err
    assert json.loads(out)["metrics"] == res["metrics"]
    ok("predict", run, "--input", tmp_path / "sub.csv", "--output", tmp_path / "p.csv")
    pred = read_csv(tmp_path / "p.csv")
    assert len(pred) == 150 and set(pred["prediction"]) <= {"even", "odd"}


# --------------------------------------------------------------------------- Hugging Face BERT
def _sentences(n: int, seed: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        word = rng.choice(POSITIVE if label else NEGATIVE)
        words = list(rng.choice(FILLER, size=int(rng.integers(2, 6))))
        words.insert(int(rng.integers(len(words) + 1)), word)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny BERT saved by transformers, with a WordPiece tokenizer.json."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    folder = tmp_path_factory.mktemp("tiny_bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *POSITIVE, *NEGATIVE, *FILLER]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(folder, safe_serialization=True)
    for name, rows in (("train.csv", _sentences(80, 0)), ("test.csv", _sentences(40, 1))):
        with open(folder / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    return folder


def test_hf_bert_folder_finetunes_on_text(tiny_bert, tmp_path):
    run = tmp_path / "bert"
    out = ok("finetune", tiny_bert, "--data", tiny_bert / "train.csv", "--text-column",
             "text", "--target", "label", "--test-data", tiny_bert / "test.csv", "--epochs",
             "8", "--lr", "3e-3", "--batch-size", "16", "--max-length", "12", "--val-fraction",
             "0", "--out", run, "--no-progress")
    assert "(80 train, 0 validation, 40 test rows)" in out
    res = results(run)
    assert res["metrics"]["accuracy"] >= 0.9  # one keyword decides the label
    assert (run / "tokenizer.json").is_file()
    rc, out, err = cli("evaluate", run, "--json")
    assert rc == 0, err
    assert json.loads(out)["metrics"]["accuracy"] == res["metrics"]["accuracy"]
    ok("predict", run, "--input", tiny_bert / "test.csv", "--output", tmp_path / "p.csv")
    pred = read_csv(tmp_path / "p.csv")
    truth = read_csv(tiny_bert / "test.csv")["label"]
    assert np.mean(pred["prediction"] == truth) == res["metrics"]["accuracy"]


def test_hf_bert_lora_merge_matches(tiny_bert, tmp_path):
    run = tmp_path / "lora"
    out = ok("finetune", tiny_bert, "--data", tiny_bert / "train.csv", "--text-column",
             "text", "--target", "label", "--test-fraction", "0.25", "--lora-rank", "2",
             "--epochs", "2", "--lr", "3e-3", "--out", run, "--no-progress")
    assert "trained 834 of" in out  # 2 layers × 3 × (2·32 + 32·2) + head 66
    ok("lora", "merge", run, "--out", tmp_path / "merged")
    for r, name in ((run, "a.csv"), (tmp_path / "merged", "b.csv")):
        ok("predict", r, "--input", tiny_bert / "test.csv", "--output", tmp_path / name)
    a, b = read_csv(tmp_path / "a.csv"), read_csv(tmp_path / "b.csv")
    assert np.abs(a["prob_1"] - b["prob_1"]).max() <= 1e-5


def _long_sentences(n: int, seed: int) -> list[tuple[str, int]]:
    """Sentences of 30 to 40 words (32+ tokens with [CLS]/[SEP]), the keyword first."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        words = [str(rng.choice(POSITIVE if label else NEGATIVE))]
        words += list(rng.choice(FILLER, size=int(rng.integers(29, 40))))
        rows.append((" ".join(words), label))
    return rows


def test_hf_bert_cli_truncates_texts_to_max_length(tiny_bert, tmp_path, monkeypatch):
    from scratchnn import no_grad
    from scratchnn.recipes import finetune_train
    from scratchnn.recipes.finetune_runs import load_finetuned

    for name, rows in (("long.csv", _long_sentences(24, 2)), ("long_test.csv",
                                                              _long_sentences(10, 3))):
        with open(tmp_path / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    seen = []  # every batch of ids the run feeds the model (training and evaluation)
    forward = finetune_train.forward

    def spy(model, batch):
        seen.append(batch.arrays)
        return forward(model, batch)

    monkeypatch.setattr(finetune_train, "forward", spy)
    run = tmp_path / "trunc"
    ok("finetune", tiny_bert, "--data", tmp_path / "long.csv", "--text-column", "text",
       "--target", "label", "--test-data", tmp_path / "long_test.csv", "--max-length", "8",
       "--epochs", "2", "--batch-size", "8", "--lr", "3e-3", "--val-fraction", "0", "--out",
       run, "--no-progress")
    assert len(seen) == 3 * 2 + 1  # 24 rows / 8, two epochs, then one test batch
    for ids, mask in seen:
        assert ids.shape[1] == 8 and (mask.sum(axis=1) == 8).all()
        assert (ids[:, 0] == 2).all() and (ids[:, 7] == 3).all()  # [CLS] ... [SEP] kept
    assert json.loads((run / "config.json").read_text())["inputs"]["max_length"] == 8

    # The library path (truncation=True, max_length=8) gives the run's test loss and the
    # probabilities 'predict' writes; cutting at another length does not.
    monkeypatch.undo()
    loaded = load_finetuned(run)
    texts = [t for t, _ in _long_sentences(10, 3)]
    labels = np.array([y for _, y in _long_sentences(10, 3)])

    def logits(max_length):
        enc = loaded.tokenizer.encode(texts, max_length=max_length, truncation=True)
        with no_grad():
            return loaded.model(enc.input_ids, enc.attention_mask).numpy()

    z = logits(8)
    assert z.shape == (10, 2)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(10), labels]).mean()
    assert abs(results(run)["metrics"]["loss"] - loss) <= 1e-5
    ok("predict", run, "--input", tmp_path / "long_test.csv", "--output", tmp_path / "p.csv")
    pred = read_csv(tmp_path / "p.csv")
    assert np.abs(pred["prob_1"] - p[:, 1]).max() <= 1e-5
    assert np.abs(logits(12) - z).max() > 1e-4


def test_hf_bert_cls_pooling_run(tiny_bert, tmp_path):
    run = tmp_path / "cls"
    ok("finetune", tiny_bert, "--data", tiny_bert / "train.csv", "--text-column", "text",
       "--target", "label", "--pooling", "cls", "--epochs", "2", "--lr", "3e-3",
       "--max-length", "12", "--out", run, "--no-progress")
    config = json.loads((run / "config.json").read_text())
    assert config["finetune"]["pooling"] == "cls"
    assert config["model"]["name"] == "bert_classifier"
    assert config["model"]["config"]["pooling"] == "cls"
    assert config["model"]["config"]["pooler"] is False  # the unused pooler is dropped
    tensors, _ = load_tensors(run / "model.safetensors")
    assert not any(k.startswith("bert.pooler") for k in tensors)
    assert "classifier.weight" in tensors
    rc, out, err = cli("evaluate", run, "--json")
    assert rc == 0, err
    assert json.loads(out)["metrics"] == results(run)["metrics"]


def test_audit_failure_stops_with_one_line(iris_run, monkeypatch):
    from scratchnn import optim

    step = optim.AdamW.step

    def leaky_step(self):  # also nudges a frozen weight: the audit must notice
        step(self)
        for group in self.param_groups:
            for p in group["params"]:
                if not p.requires_grad:
                    p._data[0, 0] += 1.0
                    return

    monkeypatch.setattr(optim.AdamW, "step", leaky_step)
    rc, _, err = cli("finetune", iris_run / "src", "--data", iris_run / "new.csv", "--target",
                     "size", "--new-head", "--unfreeze-schedule", "2:net.0", "--out",
                     iris_run / "leak", "--no-progress")
    assert rc == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: trainability audit failed: frozen parameters changed: "
                           "net.0.weight")
    assert not (iris_run / "leak").exists()


# --------------------------------------------------------------------------- language models
def test_lm_finetune_is_an_lm_run(tmp_path):
    """Smoke test: a tiny char GPT fine-tuned on other text; 'lm evaluate' reads the run."""
    text = "To be, or not to be, that is the question.\n" * 40
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "b.txt").write_text("so then, to be in, is that one question!\n" * 40)
    ok("lm", "pretrain", "--text", tmp_path / "a.txt", "--n-layer", "1", "--n-head", "2",
       "--n-embd", "16", "--block-size", "16", "--steps", "10", "--batch-size", "4",
       "--eval-interval", "10", "--eval-batches", "2", "--sample-interval", "0", "--out",
       tmp_path / "lm", "--no-progress")
    run = tmp_path / "ft"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    rc, out, err = cli("finetune", tmp_path / "lm", "--data", tmp_path / "b.txt", "--steps",
                       "10", "--out", run)
    assert rc == 1 and out == "" and len(err.splitlines()) == 1  # no status line first
    assert err.startswith(f"error: run directory {run} already exists and is not empty")
    (run / "keep.txt").unlink()
    out = ok("finetune", tmp_path / "lm", "--data", tmp_path / "b.txt", "--steps", "10",
             "--eval-interval", "5", "--batch-size", "4", "--out", run, "--no-progress")
    assert "validation loss:" in out
    res = results(run)
    assert res["val_loss"] < res["initial_val_loss"]
    assert any("dropped 40 character(s)" in n for n in res["notes"])  # '!' is not in a.txt
    ok("lm", "evaluate", run, "--text", tmp_path / "a.txt")


def test_hf_gpt2_folder_finetunes_as_a_language_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from scratchnn.data import BPETokenizer

    folder = tmp_path / "gpt2"
    tok = BPETokenizer.train(["the cat sat on the mat. the dog sat on the log.\n" * 30],
                             vocab_size=300)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=tok.vocab_size,
                                  n_positions=32)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save(folder / "tokenizer.json")
    (tmp_path / "new.txt").write_text("a bird sat on the cat. the cat ran to the dog.\n" * 30)
    run = tmp_path / "ft"
    out = ok("finetune", folder, "--data", tmp_path / "new.txt", "--steps", "10",
             "--eval-interval", "5", "--batch-size", "4", "--block-size", "16", "--lr", "3e-3",
             "--out", run, "--no-progress")
    assert "validation loss:" in out
    res = results(run)
    assert res["task"] == "language_model" and res["steps"] == 10
    assert res["val_loss"] < res["initial_val_loss"] - 0.1
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "lm" and config["finetune"]["origin"] == "huggingface"
    assert (run / "tokenizer.json").is_file()

    def lm_loss(model_dir):
        rc, out, err = cli("lm", "evaluate", model_dir, "--text", tmp_path / "new.txt",
                           "--block-size", "16", "--json")
        assert rc == 0, err
        return json.loads(out)["loss"]

    assert lm_loss(run) < lm_loss(folder) - 0.1  # the fine-tuned model fits the new text
