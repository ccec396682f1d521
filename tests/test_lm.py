"""Language models end to end: text windows, ``scratchnn lm pretrain`` (loss goes down, exact
resume), ``lm generate`` (runs and Hugging Face GPT-2 folders), ``lm evaluate`` (matches the
training's own validation loss) and one-line errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli, one_error_line
from scratchnn.data.lm import (
    encode_ids,
    eval_starts,
    read_text,
    sample_batch,
    sequential_windows,
    split_ids,
)
from scratchnn.recipes.lm import LMOptions, pretrain
from scratchnn.recipes.lm_predict import load_lm
from scratchnn.serialization import load_tensors

TINY = ("--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
        "--batch-size", "8", "--eval-batches", "4", "--lr", "3e-3", "--no-progress")
WORDS = ("the", "king", "queen", "lord", "speak", "now", "and", "my", "good", "sir", "you")


def make_text(n_words: int = 1500, seed: int = 0) -> str:
    """Seeded sentences of a few words: easy to learn, so the loss must fall fast."""
    rng = np.random.default_rng(seed)
    lines = []
    while n_words > 0:
        k = int(rng.integers(3, 8))
        lines.append(" ".join(rng.choice(WORDS, k)).capitalize() + ".")
        n_words -= k
    return "\n".join(lines) + "\n"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(make_text())
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, text_file) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rc, stdout, err = cli("lm", "pretrain", "--text", text_file, *TINY, "--steps", "40",
                          "--eval-interval", "10", "--sample-interval", "20", "--out", out)
    assert rc == 0, err
    return out, stdout


# --------------------------------------------------------------------------- data
def test_windows_are_shifted_by_one_and_drawn_from_the_rng():
    ids = encode_ids(np.arange(50) % 7, vocab_size=7)
    assert ids.dtype == np.uint16
    x, y = sample_batch(ids, 4, 8, np.random.default_rng(1))
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    starts = np.random.default_rng(1).integers(0, 50 - 8, size=4)
    np.testing.assert_array_equal(x, np.stack([ids[s:s + 8] for s in starts]))
    assert encode_ids([0, 70000], vocab_size=70001).dtype == np.int32


def test_split_and_sequential_windows_cover_every_token_once():
    ids = encode_ids(np.arange(103) % 11, vocab_size=11)
    train, val = split_ids(ids, 0.1)
    assert (len(train), len(val)) == (93, 10)
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)
    targets = np.concatenate([y.ravel() for _, y in sequential_windows(ids, 16, 3)])
    np.testing.assert_array_equal(targets, ids[1:])
    a = eval_starts(40, 3, 2, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(a, eval_starts(40, 3, 2, 8, np.random.default_rng(0)))


def test_a_folder_reads_its_txt_files_in_order(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "skip.md").write_text("not text")
    assert read_text(tmp_path).text == "first\nsecond"


# --------------------------------------------------------------------------- pretrain
def test_pretrain_lowers_the_validation_loss_and_writes_the_run(run):
    out, stdout = run
    records = [r for r in metrics(out) if "val_loss" in r]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    first, last = records[0]["val_loss"], records[-1]["val_loss"]
    vocab = json.loads((out / "config.json").read_text())["tokenizer"]["vocab_size"]
    assert first < math.log(vocab) + 0.1  # evaluation at step 10, after some learning
    assert last < first - 0.4, records
    assert last < math.log(vocab) - 0.8, records  # well below a uniform guess
    assert math.isclose(records[-1]["val_perplexity"], math.exp(last), rel_tol=1e-9)
    assert f"validation loss: {last:.4f}" in stdout
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "tokenizer.json", "model.safetensors", "last.safetensors",
            "optimizer.safetensors", "trainer_state.json", "metrics.jsonl",
            "curves.png"} <= files
    samples = [r["sample"] for r in metrics(out) if "sample" in r]
    assert len(samples) == 2 and all(len(s) == 201 for s in samples)


def test_resume_is_bit_exact(tmp_path, text_file):
    common = ("--text", text_file, *TINY, "--steps", "8", "--eval-interval", "4",
              "--sample-interval", "4", "--dropout", "0.1")
    rc, _, err = cli("lm", "pretrain", *common, "--out", tmp_path / "straight")
    assert rc == 0, err
    opts = LMOptions(text=str(text_file), n_layer=1, n_head=2, n_embd=32, block_size=16,
                     batch_size=8, eval_batches=4, lr=3e-3, steps=8, eval_interval=4,
                     sample_interval=4, dropout=0.1, out=str(tmp_path / "resumed"),
                     progress=False)
    partial = pretrain(opts, stop_after=3)  # not at an evaluation: mid-interval state
    assert partial.steps == 3 and "resumable" in partial.stop_reason
    rc, _, err = cli("lm", "pretrain", "--resume", tmp_path / "resumed", "--no-progress")
    assert rc == 0, err
    for name in ("model.safetensors", "last.safetensors", "optimizer.safetensors"):
        a, meta_a = load_tensors(tmp_path / "straight" / name)
        b, meta_b = load_tensors(tmp_path / "resumed" / name)
        assert a.keys() == b.keys() and meta_a == meta_b
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")

    def strip(records):
        return [{k: v for k, v in r.items() if k != "time"} for r in records]

    assert strip(metrics(tmp_path / "straight")) == strip(metrics(tmp_path / "resumed"))


def test_bpe_tokenizer_run_trains_and_evaluates(tmp_path, text_file):
    out = tmp_path / "bpe"
    rc, _, err = cli("lm", "pretrain", "--text", text_file, "--tokenizer", "bpe",
                     "--vocab-size", "300", *TINY, "--steps", "4", "--eval-interval", "2",
                     "--sample-interval", "0", "--out", out)
    assert rc == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer"]["kind"] == "bpe" and config["tokenizer"]["vocab_size"] <= 300
    rc, stdout, err = cli("lm", "evaluate", out, "--text", text_file, "--json")
    assert rc == 0, err
    assert json.loads(stdout)["loss"] < math.log(300)


# --------------------------------------------------------------------------- generate
def test_generate_from_a_run_is_seeded_and_cache_does_not_change_it(run):
    out, _ = run
    args = ("lm", "generate", out, "--prompt", "The king", "--max-new-tokens", "30", "--json")
    rc, stdout, err = cli(*args, "--seed", "3")
    assert rc == 0, err
    result = json.loads(stdout)
    assert result["text"].startswith("The king") and len(result["text"]) == 8 + 30
    assert json.loads(cli(*args, "--seed", "3")[1])["text"] == result["text"]
    greedy = [json.loads(cli(*args, "--temperature", "0", *flag)[1])["text"]
              for flag in ((), ("--no-cache",))]
    assert greedy[0] == greedy[1]
    rc, stdout, err = cli("lm", "generate", out, "--prompt", "The", "--max-new-tokens", "5")
    assert rc == 0 and stdout.startswith("The") and "tokens/s" in err


def test_generate_from_a_hugging_face_gpt2_folder_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from scratchnn.data import BPETokenizer

    tok = BPETokenizer.train([make_text(300)], vocab_size=300)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=tok.vocab_size,
                                  n_positions=32)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    tok.save(tmp_path / "tokenizer.json")
    rc, stdout, err = cli("lm", "generate", tmp_path, "--prompt", "the king",
                          "--max-new-tokens", "6", "--temperature", "0", "--json")
    assert rc == 0, err
    ids = torch.tensor([tok.encode("the king", add_special_tokens=False)])
    with torch.no_grad():
        ref = hf.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert json.loads(stdout)["text"] == "the king" + tok.decode(ref[0, ids.shape[1]:].tolist())


# --------------------------------------------------------------------------- evaluate
def test_evaluate_matches_the_training_validation_loss(tmp_path):
    # 170 characters: the last 10% (17) is exactly one window of 16 inputs + 1, so every
    # seeded validation window is that window and evaluate scores the same 16 targets.
    text = make_text(60)[:170]
    (tmp_path / "t.txt").write_text(text)
    (tmp_path / "val.txt").write_text(text[-17:])
    out = tmp_path / "run"
    rc, _, err = cli("lm", "pretrain", "--text", tmp_path / "t.txt", *TINY, "--steps", "5",
                     "--eval-interval", "5", "--sample-interval", "0", "--out", out)
    assert rc == 0, err
    val_loss = metrics(out)[-1]["val_loss"]
    rc, stdout, err = cli("lm", "evaluate", out, "--text", tmp_path / "val.txt", "--json")
    assert rc == 0, err
    result = json.loads(stdout)
    assert result["n_tokens"] == 16 and result["n_windows"] == 1
    assert result["loss"] == pytest.approx(val_loss, rel=1e-6)
    rc, stdout, _ = cli("lm", "evaluate", out, "--text", tmp_path / "val.txt")
    assert f"loss: {val_loss:.4f} nats/token  perplexity: {math.exp(val_loss):.3f}" in stdout


def test_evaluate_scores_every_token_once_in_non_overlapping_windows(run, tmp_path):
    out, _ = run
    text = make_text(40, seed=5)
    (tmp_path / "t.txt").write_text(text)
    rc, stdout, err = cli("lm", "evaluate", out, "--text", tmp_path / "t.txt", "--json",
                          "--block-size", "5", "--batch-size", "7")
    assert rc == 0, err
    result = json.loads(stdout)
    assert result["n_tokens"] == len(text) - 1 and result["n_windows"] == -(-result[
        "n_tokens"] // 5)
    # The same number by hand: each window alone, float64 log-softmax, every target once.
    lm = load_lm(out)
    ids = np.array(lm.tokenizer.encode(text))
    nll = []
    for s in range(0, len(ids) - 1, 5):
        x, y = ids[s:s + 5][:len(ids) - 1 - s], ids[s + 1:s + 6]
        logits = lm.model(x[None]).numpy()[0].astype(np.float64)  # (t, V)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll.extend(-logp[np.arange(len(y)), y])
    assert len(nll) == len(text) - 1
    assert result["loss"] == pytest.approx(np.mean(nll), rel=1e-5)


# --------------------------------------------------------------------------- errors
def test_bad_inputs_give_one_line_errors(run, tmp_path):
    out, _ = run
    rc, _, err = cli("lm", "pretrain", "--text", tmp_path / "missing.txt")
    assert rc == 1 and "text file or folder not found" in one_error_line(err)
    (tmp_path / "empty.txt").write_text("  \n")
    rc, _, err = cli("lm", "pretrain", "--text", tmp_path / "empty.txt")
    assert rc == 1 and "is empty" in one_error_line(err)
    (tmp_path / "short.txt").write_text("just a few characters")
    rc, _, err = cli("lm", "pretrain", "--text", tmp_path / "short.txt", "--out",
                     tmp_path / "never")
    assert rc == 1 and "--block-size 128 need at least 129" in one_error_line(err)
    assert not (tmp_path / "never").exists()
    rc, _, err = cli("lm", "generate", out, "--prompt", "Thé kïng")
    line = one_error_line(err)
    assert rc == 1 and "'é', 'ï'" in line and "outside the tokenizer's vocabulary" in line
    rc, _, err = cli("lm", "evaluate", out, "--text", tmp_path / "short.txt",
                     "--block-size", "17")
    assert rc == 1 and "larger than the model's context of 16 tokens" in one_error_line(err)
    rc, _, err = cli("lm", "generate", tmp_path, "--prompt", "x")
    assert rc == 1 and "no config.json" in one_error_line(err)


def test_table_commands_on_a_language_model_run_name_the_lm_command(run, tmp_path):
    out, _ = run
    rc, stdout, err = cli("evaluate", out)
    assert rc == 1 and stdout == ""
    assert one_error_line(err) == (f"error: {out} is a language-model run, which 'scratchnn "
                                   f"evaluate' does not take; use 'scratchnn lm evaluate {out} "
                                   f"--text FILE'")
    (tmp_path / "x.csv").write_text("a\n1\n")
    rc, stdout, err = cli("predict", out, "--input", tmp_path / "x.csv", "--output",
                          tmp_path / "y.csv")
    assert rc == 1 and stdout == "" and not (tmp_path / "y.csv").exists()
    assert one_error_line(err) == (f"error: {out} is a language-model run, which 'scratchnn "
                                   f"predict' does not take; use 'scratchnn lm generate {out} "
                                   f"--prompt TEXT'")


@pytest.mark.parametrize("flag, value", [
    ("--top-p", "2"), ("--top-p", "0"), ("--top-p", "nan"), ("--top-k", "0"),
    ("--temperature", "-1"), ("--temperature", "inf"), ("--temperature", "nan"),
    ("--max-new-tokens", "-1"), ("--max-new-tokens", "1.5")])
def test_generate_checks_its_sampling_flags_when_parsing(run, flag, value):
    out, _ = run
    rc, stdout, err = cli("lm", "generate", out, "--prompt", "the", flag, value)
    line = one_error_line(err)
    assert rc == 2 and stdout == "" and line.startswith(f"error: argument {flag}: expected ")
    assert line.endswith(f"got {value!r} (see 'scratchnn lm generate --help')")


def test_generate_accepts_the_ends_of_the_sampling_ranges(run):
    out, _ = run
    rc, _, err = cli("lm", "generate", out, "--prompt", "the", "--max-new-tokens", "2",
                     "--top-p", "1", "--top-k", "1", "--temperature", "0")
    assert rc == 0, err
    rc, stdout, err = cli("lm", "generate", out, "--prompt", "the", "--max-new-tokens", "0")
    assert rc == 0 and stdout == "the\n", err


def test_resuming_a_finished_run_says_there_is_nothing_to_do(run):
    out, stdout = run
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rc, again, err = cli("lm", "pretrain", "--resume", out)  # with the progress bar on
    assert rc == 0, err
    assert err.splitlines() == [f"note: nothing to do: {out} already trained all its 40 steps "
                                "(--resume continues an interrupted run); to train longer, "
                                "start a new run with a larger --steps, or fine-tune this one "
                                "with 'scratchnn finetune'"]
    assert "40 steps (completed)" in again
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    rc, again, err = cli("lm", "pretrain", "--resume", out, "--json")
    assert rc == 0 and json.loads(again)["notes"][0].startswith("nothing to do: ")


def test_usage_errors_exit_2(run, text_file):
    out, _ = run
    rc, _, err = cli("lm", "pretrain", "--text", text_file, "--vocab-size", "500")
    assert rc == 2 and "--tokenizer bpe only" in one_error_line(err)
    rc, _, err = cli("lm", "pretrain", "--resume", out, "--steps", "50")
    assert rc == 2 and "cannot be combined with --steps" in one_error_line(err)
    rc, _, err = cli("lm", "pretrain", "--text", text_file, "--warmup-steps", "10",
                     "--steps", "10")
    assert rc == 2 and "--warmup-steps" in one_error_line(err)
    rc, _, err = cli("lm", "pretrain", "--text", text_file, "--out", out)
    assert rc == 1 and "already exists" in one_error_line(err)
