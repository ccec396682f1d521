"""Data of ``scratchnn finetune``: read labelled (or unlabelled) examples the way FROM reads
them, and encode them into model inputs.

Tables go through FROM's fitted feature preprocessing; images, word/char texts and numeric
sequences through FROM's input encoder (``inputs.json``); texts for BERT/GPT classifiers
through the model's tokenizer into token ids and an attention mask (cut to ``max_length``
tokens). Labels always go through the run's own label encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.autograd.tensor import Tensor
from scratchnn.data import Preprocessor, Table, load_table
from scratchnn.data.tokenizers import CharTokenizer, Tokenizer
from scratchnn.errors import ScratchnnError, UsageError
from scratchnn.recipes.classify_data import DataSpec, load_samples, load_unlabelled, resolve_data
from scratchnn.recipes.classify_inputs import inputs_from_dict
from scratchnn.recipes.tabular_data import DataSource, resolve_source

__all__ = ["Batch", "Reader", "TokenEncoder", "forward", "with_labels"]


@dataclass
class Batch:
    """Encoded inputs: ``(x,)`` float32 (N, ...) or ``(ids, mask)`` int64 (N, T)."""

    arrays: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.arrays[0])

    def take(self, rows: np.ndarray) -> Batch:
        """The examples at ``rows``."""
        return Batch(tuple(a[rows] for a in self.arrays))


def forward(model: Any, batch: Batch) -> Tensor:
    """The model's logits for ``batch``; token batches are cut to their longest real row."""
    if len(batch.arrays) == 2:
        ids, mask = batch.arrays
        width = max(int(mask.sum(axis=1).max()), 1) if len(mask) else 1
        return model(ids[:, :width], mask[:, :width])  # right-padded: exact
    return model(Tensor(batch.arrays[0]))


def with_labels(features: Preprocessor | None, labels: Preprocessor) -> Preprocessor:
    """A Preprocessor with ``features``' fitted feature columns and ``labels``' target."""
    if features is None:
        return labels
    state = features.to_dict()
    new = labels.to_dict()
    state.update(task="classification", target=new["target"], classes=new["classes"],
                 target_scale=None)
    return Preprocessor.from_dict(state)


class TokenEncoder:
    """Texts → (ids, attention mask) with a tokenizer, cut to ``max_length`` tokens.

    A character tokenizer without an unknown token drops characters outside its vocabulary
    (``dropped`` counts them).
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, int(max_length)
        self.dropped = 0

    def _clean(self, text: str) -> str:
        tok = self.tokenizer
        if isinstance(tok, CharTokenizer) and tok.unk_id is None:
            known = set(tok.chars)
            kept = "".join(c for c in text if c in known)
            self.dropped += len(text) - len(kept)
            return kept
        return text

    def encode(self, texts: Any) -> Batch:
        """(N, T) int64 ids right-padded with the pad id (0 without one) and the mask."""
        seqs = []
        for text in texts:
            text = self._clean("" if text is None else str(text))
            seqs.append(self.tokenizer.encode(text, max_length=self.max_length, truncation=True)
                        if text else [])
        width = max([len(s) for s in seqs] + [1])
        pad = self.tokenizer.pad_id or 0
        ids = np.full((len(seqs), width), pad, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for i, seq in enumerate(seqs):
            if not seq:  # an empty text: one padding token it may attend to
                mask[i, 0] = 1
                continue
            ids[i, :len(seq)] = seq
            mask[i, :len(seq)] = 1
        return Batch((ids, mask))


class Reader:
    """Where the examples come from and how they become model inputs.

    Args:
        kind: 'tabular', 'images', 'text', 'sequence' or 'tokens'.
        spec: a DataSource (tables) or DataSpec (the others; 'tokens' reads like 'text').
        prep: the run's Preprocessor (labels, plus features for tables and sequences).
        inputs: the classify encoder state (``inputs.json``) for images/text/sequence.
        tokens: the tokenizer encoder for 'tokens'.
    """

    def __init__(self, kind: str, spec: DataSource | DataSpec, target: str,
                 prep: Preprocessor | None, inputs: dict[str, Any] | None = None,
                 tokens: TokenEncoder | None = None) -> None:
        self.kind, self.spec, self.target, self.prep = kind, spec, target, prep
        self.inputs, self.tokens = inputs, tokens

    @classmethod
    def resolve(cls, kind: str, data: str, target: str | None, text_column: str | None,
                settings: dict[str, Any] | None) -> Reader:
        """A reader of new data for a model of ``kind`` (``settings``: FROM's data settings)."""
        if target is None and kind != "images":
            raise UsageError("--target COLUMN is required: the column with the labels to "
                             "fine-tune on")
        if kind == "tabular":
            if text_column is not None:
                raise UsageError("--text-column does not apply to a tabular (MLP) model")
            return cls(kind, resolve_source(data), target, None)
        if kind in ("tokens", "text"):
            if text_column is None:
                text_column = (settings or {}).get("text_column")
            if text_column is None:
                raise UsageError("--text-column COLUMN is required for a text model")
            spec = resolve_data(data, "text", target, {"text_column": text_column})
            spec.sha256 = spec.fingerprint()
            return cls(kind, spec, target, None)
        if text_column is not None:
            raise UsageError(f"--text-column does not apply to a {kind} model")
        keep = {k: v for k, v in (settings or {}).items() if k in ("color_mode", "image_size",
                                                                   "seq_len")}
        spec = resolve_data(data, kind, target, keep)
        spec.sha256 = spec.fingerprint()
        return cls(kind, spec, spec.target, None)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``config.json``'s "data")."""
        if isinstance(self.spec, DataSource):
            return {**self.spec.to_dict(), "target": self.target, "task": "classification"}
        return self.spec.to_dict()

    @classmethod
    def from_dict(cls, kind: str, d: dict[str, Any], prep: Preprocessor,
                  inputs: dict[str, Any] | None, tokens: TokenEncoder | None) -> Reader:
        """Rebuild a saved run's reader."""
        spec = DataSource.from_dict(d) if kind == "tabular" else DataSpec.from_dict(d)
        return cls(kind, spec, d["target"], prep, inputs, tokens)

    def check_unchanged(self) -> None:
        """Raise if the run's data changed since it was read."""
        self.spec.check_unchanged()

    # ------------------------------------------------------------------------- reading
    def load(self, path: str | Path | None = None, labelled: bool = True
             ) -> tuple[Any, Table | None, list[str]]:
        """(inputs, labels Table or None, notes) of the run's data or of ``path``."""
        if path is not None and not Path(path).exists():
            raise ScratchnnError(f"data {path} does not exist")
        if isinstance(self.spec, DataSource):
            types = None
            if self.prep is not None:
                types = dict(self.prep.column_types)
                if not labelled:
                    types.pop(self.prep.target, None)
            table = load_table(self.spec.source if path is None else path, column_types=types)
            if labelled:
                table[self.target]  # raises listing the columns that exist
                return table, table.select([self.target]), []
            return table, None, []
        if labelled:
            samples = load_samples(self.spec, path)
            return samples, samples.labels, samples.notes
        samples = load_unlabelled(self.spec, path)
        return samples, None, samples.notes

    def encode(self, inputs: Any) -> Batch:
        """Model inputs of loaded examples (all of them)."""
        if self.kind == "tabular":
            return Batch((self.prep.transform_features(inputs),))
        if self.kind == "tokens":
            return self.tokens.encode(list(inputs.inputs))
        encoder = inputs_from_dict(self.inputs, self.prep)
        return Batch((encoder.encode(inputs),))

    def take(self, inputs: Any, rows: np.ndarray) -> Any:
        """The loaded examples at ``rows``."""
        return inputs.take(rows)
