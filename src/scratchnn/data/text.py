"""Text for sequence classifiers: tokenise, build a vocabulary on training texts, encode ids.

The vocabulary is a plain list of tokens saved as JSON: id 0 is ``<pad>``, id 1 is ``<unk>``
(every token not kept: unseen in the training texts, rarer than ``min_freq`` or beyond
``max_size``), then the kept tokens by decreasing training frequency (ties alphabetically).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["LEVELS", "PAD", "UNK", "Vocabulary", "tokenize"]

PAD, UNK = "<pad>", "<unk>"
#: Tokenisation levels: characters, or words (runs of letters or of digits).
LEVELS: tuple[str, ...] = ("char", "word")
_WORD = re.compile(r"[^\W\d_]+|\d+")  # letters of any script, or digits
_FORMAT = "scratchnn.vocabulary"


def tokenize(text: str | None, level: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into characters or words (a missing text has no tokens).

    Words are maximal runs of letters or of digits; everything else (spaces, punctuation)
    separates them. Characters keep spaces and punctuation.
    """
    if level not in LEVELS:
        raise ValueError(f"tokenizer level must be one of {', '.join(LEVELS)}, got {level!r}")
    if text is None:
        return []
    if lowercase:
        text = text.lower()
    return list(text) if level == "char" else _WORD.findall(text)


def _positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Vocabulary:
    """Token <-> id mapping plus the tokenisation settings used to build it.

    Args:
        tokens: the kept tokens, in id order, without ``<pad>`` and ``<unk>``.
        level: 'char' or 'word'.
        max_length: encoded sequences are cut to this many tokens (None: no limit).
        lowercase: lowercase texts before tokenising.
    """

    def __init__(self, tokens: Sequence[str], level: str = "word",
                 max_length: int | None = None, lowercase: bool = True) -> None:
        if level not in LEVELS:
            raise ValueError(f"tokenizer level must be one of {', '.join(LEVELS)}, "
                             f"got {level!r}")
        _positive("max_length", max_length, allow_none=True)
        self.level, self.max_length, self.lowercase = level, max_length, bool(lowercase)
        self.itos: list[str] = [PAD, UNK]
        for tok in tokens:
            if not isinstance(tok, str) or tok in (PAD, UNK):
                raise ValueError(f"vocabulary tokens must be strings other than {PAD} and "
                                 f"{UNK}, got {tok!r}")
            self.itos.append(tok)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary tokens must be distinct")

    pad_id, unk_id = 0, 1

    @classmethod
    def build(cls, texts: Iterable[str | None], level: str = "word", min_freq: int = 1,
              max_size: int | None = None, max_length: int | None = None,
              lowercase: bool = True) -> Vocabulary:
        """Count the tokens of ``texts`` (the training texts only) and keep the frequent ones.

        Args:
            min_freq: keep tokens seen at least this often.
            max_size: keep at most this many tokens (besides ``<pad>`` and ``<unk>``).
        """
        _positive("min_freq", min_freq)
        _positive("max_size", max_size, allow_none=True)
        counts = Counter(tok for text in texts for tok in tokenize(text, level, lowercase))
        kept = sorted((t for t, c in counts.items() if c >= min_freq),
                      key=lambda t: (-counts[t], t))
        return cls(kept[:max_size], level, max_length, lowercase)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Ids (N, T) int64 right-padded with 0 and lengths (N,), T the longest (cut) text.

        Unknown tokens map to ``<unk>``; an empty text becomes one ``<unk>`` so that every
        sequence has at least one step.
        """
        seqs = []
        for text in texts:
            ids = [self.stoi.get(tok, self.unk_id)
                   for tok in tokenize(text, self.level, self.lowercase)]
            seqs.append(ids[:self.max_length] or [self.unk_id])
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        out = np.zeros((len(seqs), int(lengths.max()) if seqs else 0), dtype=np.int64)
        for i, ids in enumerate(seqs):
            out[i, :len(ids)] = ids
        return out, lengths

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (padding dropped)."""
        return [self.itos[i] for i in ids if i != self.pad_id]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; :meth:`from_dict` rebuilds an identical vocabulary."""
        return {"format": _FORMAT, "version": 1, "level": self.level,
                "lowercase": self.lowercase, "max_length": self.max_length,
                "tokens": self.itos[2:]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vocabulary:
        """Rebuild from :meth:`to_dict` output."""
        if d.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} state (format={d.get('format')!r})")
        try:
            return cls(d["tokens"], d["level"], d["max_length"], d["lowercase"])
        except KeyError as e:
            raise ValueError(f"vocabulary state has no {e.args[0]!r}") from None

    def __repr__(self) -> str:
        return (f"Vocabulary({len(self)} tokens, level={self.level!r}, "
                f"max_length={self.max_length})")
