"""Tokenizers with one interface: characters, byte-level BPE, Hugging Face ``tokenizer.json``.

Every tokenizer has ``encode``, ``decode``, ``vocab_size``, ``pad_id``, ``token_to_id``,
``id_to_token`` and ``save(path)``; :func:`load_tokenizer` reads back any of them.
``encode("text")`` gives a list of ids; ``encode(["a", "b"], ...)`` gives an :class:`Encoding`
of padded ``(B, T)`` arrays with an attention mask (1 = real token, 0 = padding).

Files: :class:`CharTokenizer` saves a small JSON file of our own, marked by the key
``"scratchnn_tokenizer": "char"``; :class:`BPETokenizer` and :class:`HFTokenizer` save a
standard Hugging Face ``tokenizer.json`` that the ``tokenizers`` library reads too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratchnn.serialization import atomic_write_bytes, load_json, save_json

__all__ = [
    "BPETokenizer", "CharTokenizer", "Encoding", "HFTokenizer", "Tokenizer", "load_tokenizer",
]

#: The key that marks a tokenizer file written in scratchnn's own format.
FORMAT_KEY = "scratchnn_tokenizer"
_PAD_CANDIDATES = ("[PAD]", "<pad>", "<|pad|>")


class Encoding(NamedTuple):
    """A padded batch: ``input_ids`` and ``attention_mask``, both (B, T) int64."""

    input_ids: np.ndarray
    attention_mask: np.ndarray


class Tokenizer:
    """The common interface; subclasses define ``_encode_texts``, ``decode`` and ``save``."""

    pad_id: int | None = None
    #: Default length for ``truncation=True`` when no ``max_length`` is given (None: no limit).
    max_length: int | None = None

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError("abstract: each tokenizer defines vocab_size")

    def token_to_id(self, token: str) -> int | None:
        raise NotImplementedError("abstract: each tokenizer defines token_to_id")

    def id_to_token(self, index: int) -> str | None:
        raise NotImplementedError("abstract: each tokenizer defines id_to_token")

    def _encode_texts(self, texts: list[str], add_special_tokens: bool,
                      max_length: int | None) -> list[list[int]]:
        """Ids of each text, cut to ``max_length`` (None: not cut)."""
        raise NotImplementedError("abstract: each tokenizer defines _encode_texts")

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        raise NotImplementedError("abstract: each tokenizer defines decode")

    def save(self, path: str | os.PathLike) -> None:
        raise NotImplementedError("abstract: each tokenizer defines save")

    def encode(self, texts: str | Sequence[str], max_length: int | None = None,
               truncation: bool = False, padding: bool | str = "longest",
               add_special_tokens: bool = True) -> list[int] | Encoding:
        """Token ids of one text (a list), or a padded :class:`Encoding` of several.

        Args:
            texts: a string, or a sequence of strings.
            max_length: the longest allowed sequence; longer ones raise unless ``truncation``.
            truncation: cut sequences to ``max_length`` (or the tokenizer's own limit).
            padding: for a batch, ``True``/``"longest"`` pads to the longest sequence,
                ``"max_length"`` to ``max_length``, ``False`` requires equal lengths.
            add_special_tokens: add the tokenizer's special tokens (BERT's [CLS] ... [SEP]).

        Shape: a batch of B texts → input_ids and attention_mask (B, T), padded on the right.
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        for i, text in enumerate(batch):
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__} at index {i}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(
                max_length, (int, np.integer)) or max_length < 1):
            raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
        if truncation and max_length is None:
            max_length = self.max_length
            if max_length is None:
                raise ValueError("truncation=True needs max_length (this tokenizer has no "
                                 "default maximum length)")
        seqs = self._encode_texts(batch, add_special_tokens, max_length if truncation else None)
        if max_length is not None:
            for i, seq in enumerate(seqs):
                if len(seq) > max_length:
                    raise ValueError(f"text {i} has {len(seq)} tokens, more than max_length="
                                     f"{max_length}; pass truncation=True to cut it")
        if single:
            return seqs[0]
        return self.pad(seqs, padding, max_length)

    __call__ = encode

    def pad(self, seqs: Sequence[Sequence[int]], padding: bool | str = "longest",
            max_length: int | None = None) -> Encoding:
        """Right-pad id sequences with ``pad_id`` into an :class:`Encoding`."""
        if padding is True:
            padding = "longest"
        if padding not in (False, "longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', "
                             f"got {padding!r}")
        lengths = [len(s) for s in seqs]
        longest = max(lengths, default=0)
        if padding == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length")
            width = max_length
        elif padding in (False, "do_not_pad"):
            if len(set(lengths)) > 1:
                raise ValueError(f"sequences have different lengths {sorted(set(lengths))} "
                                 f"and padding=False; pass padding=True")
            width = longest
        else:
            width = longest
        if self.pad_id is None and any(n < width for n in lengths):
            raise ValueError(f"{type(self).__name__} has no pad token, so a batch of unequal "
                             f"lengths cannot be padded; give one with pad_token=...")
        ids = np.full((len(seqs), width), self.pad_id or 0, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for i, seq in enumerate(seqs):
            ids[i, :len(seq)] = seq
            mask[i, :len(seq)] = 1
        return Encoding(ids, mask)


def _as_id_list(ids) -> list[int]:
    array = np.asarray(ids)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"decode expects a 1-D sequence of int ids, got shape "
                         f"{array.shape} and dtype {array.dtype}")
    return [int(i) for i in array]


class CharTokenizer(Tokenizer):
    """One id per character: the sorted characters of the training text, then the specials.

    Args:
        chars: the vocabulary's characters (each a single character, no repeats).
        unk_token: a token for characters outside the vocabulary (None: such a character
            raises a ValueError naming it).
        pad_token: a padding token (None: batches of unequal length cannot be padded).
    """

    def __init__(self, chars: Sequence[str], unk_token: str | None = None,
                 pad_token: str | None = None) -> None:
        chars = list(chars)
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"chars must be single characters, got {ch!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must not repeat a character")
        specials = [t for t in (unk_token, pad_token) if t is not None]
        for token in specials:
            if not isinstance(token, str) or len(token) < 2 or token in chars:
                raise ValueError(f"special tokens must be strings of 2+ characters not in the "
                                 f"vocabulary, got {token!r}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"unk_token and pad_token must differ, got {specials}")
        self.chars = chars
        self.unk_token, self.pad_token = unk_token, pad_token
        self._itos = chars + specials
        self._stoi = {t: i for i, t in enumerate(self._itos)}
        self.unk_id = None if unk_token is None else self._stoi[unk_token]
        self.pad_id = None if pad_token is None else self._stoi[pad_token]
        # Code points sorted, for a vectorised lookup (searchsorted) of long texts.
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        self._order = np.argsort(codes, kind="stable")
        self._codes = codes[self._order]

    @classmethod
    def from_text(cls, text: str, unk_token: str | None = None,
                  pad_token: str | None = None) -> CharTokenizer:
        """The tokenizer of ``text``'s distinct characters, in sorted order."""
        if not isinstance(text, str) or not text:
            raise ValueError("from_text needs a non-empty string")
        return cls(sorted(set(text)), unk_token=unk_token, pad_token=pad_token)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def token_to_id(self, token: str) -> int | None:
        return self._stoi.get(token)

    def id_to_token(self, index: int) -> str | None:
        return self._itos[index] if 0 <= index < len(self._itos) else None

    def _encode_one(self, text: str) -> list[int]:
        codes = np.array([ord(c) for c in text], dtype=np.int64)
        if not codes.size:
            return []
        pos = np.minimum(np.searchsorted(self._codes, codes), max(len(self._codes) - 1, 0))
        known = (self._codes[pos] == codes) if self._codes.size else np.zeros(codes.shape, bool)
        ids = self._order[pos] if self._codes.size else np.zeros(codes.shape, np.int64)
        if not known.all():
            first = int(np.flatnonzero(~known)[0])
            if self.unk_id is None:
                raise ValueError(f"character {text[first]!r} (at position {first}) is not in "
                                 f"the vocabulary of {len(self.chars)} characters; build the "
                                 f"tokenizer with unk_token='<unk>' to map such characters")
            ids = np.where(known, ids, self.unk_id)
        return ids.tolist()

    def _encode_texts(self, texts, add_special_tokens, max_length):
        return [self._encode_one(t)[:max_length] for t in texts]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """The text of ``ids``; special tokens are dropped (or written out)."""
        n_chars = len(self.chars)
        out = []
        for i in _as_id_list(ids):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is out of range for vocab_size={self.vocab_size}")
            if i < n_chars or not skip_special_tokens:
                out.append(self._itos[i])
        return "".join(out)

    def to_dict(self) -> dict:
        return {FORMAT_KEY: "char", "version": 1, "chars": self.chars,
                "unk_token": self.unk_token, "pad_token": self.pad_token}

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        return cls(data["chars"], unk_token=data.get("unk_token"),
                   pad_token=data.get("pad_token"))

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (scratchnn's own format, see the module doc)."""
        save_json(path, self.to_dict())


class HFTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` (GPT-2 byte-level BPE, BERT WordPiece, ...).

    Truncation and padding configured in the file are switched off: ``encode``'s arguments
    decide them. A truncation length in the file becomes the default ``max_length``.

    Args:
        tokenizer: the ``tokenizers.Tokenizer``.
        pad_token: the padding token (None: the file's padding token, else one of
            [PAD], <pad>, <|pad|> if present, else none).
    """

    def __init__(self, tokenizer, pad_token: str | None = None) -> None:
        self._tok = tokenizer
        file_pad = tokenizer.padding["pad_token"] if tokenizer.padding else None
        if tokenizer.truncation:
            self.max_length = int(tokenizer.truncation["max_length"])
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if pad_token is None:
            candidates = [file_pad, *_PAD_CANDIDATES] if file_pad else _PAD_CANDIDATES
            pad_token = next((t for t in candidates if tokenizer.token_to_id(t) is not None),
                             None)
        elif tokenizer.token_to_id(pad_token) is None:
            raise ValueError(f"pad_token {pad_token!r} is not in the vocabulary")
        self.pad_token = pad_token
        self.pad_id = None if pad_token is None else tokenizer.token_to_id(pad_token)

    @classmethod
    def from_file(cls, path: str | os.PathLike, pad_token: str | None = None) -> HFTokenizer:
        """Load a ``tokenizer.json`` (or the one inside the folder ``path``)."""
        from tokenizers import Tokenizer as _Tokenizer

        path = _tokenizer_file(path)
        try:
            tok = _Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust side raises a bare Exception
            raise ValueError(f"cannot read Hugging Face tokenizer {path}: {e}") from None
        return cls(tok, pad_token=pad_token)

    @property
    def backend(self):
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._tok

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self._tok.id_to_token(index)

    def _encode_texts(self, texts, add_special_tokens, max_length):
        # The library's own truncation keeps the special tokens ([CLS] ... [SEP]) in place.
        if max_length is None:
            self._tok.no_truncation()
        else:
            self._tok.enable_truncation(int(max_length))
        try:
            encodings = self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)
        finally:
            self._tok.no_truncation()
        return [e.ids for e in encodings]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """The text of ``ids`` (special tokens such as [CLS] and [PAD] dropped by default)."""
        ids = _as_id_list(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"id {bad[0]} is out of range for vocab_size={self.vocab_size}")
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def save(self, path: str | os.PathLike) -> None:
        """Write a standard Hugging Face ``tokenizer.json``."""
        atomic_write_bytes(path, self._tok.to_str(pretty=True).encode("utf-8"))


class BPETokenizer(HFTokenizer):
    """Byte-level BPE (GPT-2's scheme) trained on your text with the ``tokenizers`` library."""

    @classmethod
    def train(cls, texts: Iterable[str] | None = None, *, files: Sequence[str] | None = None,
              vocab_size: int = 1000, special_tokens: Sequence[str] = ("<|endoftext|>",),
              min_frequency: int = 2, pad_token: str | None = None) -> BPETokenizer:
        """Learn merges from ``texts`` (strings) or ``files`` (text file paths).

        The vocabulary holds the special tokens, the 256 byte symbols and learned merges, at
        most ``vocab_size`` in all; every string can be encoded (no unknown token).
        """
        from tokenizers import Tokenizer as _Tokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        special_tokens = list(special_tokens)
        if pad_token is not None and pad_token not in special_tokens:
            special_tokens.append(pad_token)
        smallest = 256 + len(special_tokens)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) \
                or vocab_size < smallest:
            raise ValueError(f"vocab_size must be an int >= {smallest} (256 bytes + "
                             f"{len(special_tokens)} special tokens), got {vocab_size!r}")
        if (texts is None) == (files is None):
            raise ValueError("give exactly one of texts or files")
        if isinstance(texts, str):
            texts = [texts]
        tok = _Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
            special_tokens=special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        if files is not None:
            missing = [f for f in files if not Path(f).is_file()]
            if missing:
                raise FileNotFoundError(f"training files not found: {missing}")
            tok.train([str(f) for f in files], trainer=trainer)
        else:
            tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, pad_token=pad_token)


def _tokenizer_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    return path


def load_tokenizer(path: str | os.PathLike, pad_token: str | None = None) -> Tokenizer:
    """Load any tokenizer file (or ``tokenizer.json`` in the folder ``path``).

    scratchnn's own format gives a :class:`CharTokenizer`; a Hugging Face ``tokenizer.json``
    (GPT-2, BERT, or one from :class:`BPETokenizer`) gives an :class:`HFTokenizer`.
    """
    path = _tokenizer_file(path)
    data = load_json(path)
    if isinstance(data, dict) and FORMAT_KEY in data:
        kind = data[FORMAT_KEY]
        if kind != "char":
            raise ValueError(f"{path}: unknown scratchnn tokenizer kind {kind!r} "
                             f"(known: 'char')")
        return CharTokenizer.from_dict(data)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        from tokenizers import Tokenizer as _Tokenizer

        try:
            tok = _Tokenizer.from_str(json.dumps(data))
        except Exception as e:  # the Rust side raises a bare Exception
            raise ValueError(f"cannot read Hugging Face tokenizer {path}: {e}") from None
        return HFTokenizer(tok, pad_token=pad_token)
    raise ValueError(f"{path} is not a tokenizer file: expected scratchnn's format (key "
                     f"{FORMAT_KEY!r}) or a Hugging Face tokenizer.json (key 'model')")
