"""Text for language models: read a file or a folder of ``.txt`` files, encode it into a
compact token-id array, split it, and cut it into (input, target) context windows.

Token ids are stored as ``uint16`` when the vocabulary fits (65,536 ids), else ``int32``, so
a corpus costs two bytes per token. Batches come out as ``int64``. The split is by position:
the first ``1 - val_fraction`` of the tokens train, the last ``val_fraction`` validate, so no
validation window overlaps a training one. Windows are ``block_size`` tokens with targets
shifted by one: ``x = ids[s:s+T]``, ``y = ids[s+1:s+T+1]``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scratchnn.data.tokenizers import CharTokenizer, HFTokenizer, Tokenizer

__all__ = [
    "TextSource", "encode_ids", "encode_text", "eval_starts", "random_starts", "read_text",
    "sample_batch", "sequential_windows", "split_ids", "windows_at",
]


@dataclass
class TextSource:
    """A text read from a file or folder: its content, the files and their fingerprint."""

    path: Path
    text: str
    files: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The file or folder name (for run directory names and messages)."""
        return self.path.name

    def fingerprint(self) -> str:
        """sha256 of the text (UTF-8), to detect a changed corpus on resume."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def read_text(path: str | os.PathLike) -> TextSource:
    """Read a UTF-8 text file, or every ``*.txt`` file of a folder (sorted by path, recursive,
    joined with a newline).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: a folder without ``.txt`` files, a file that is not UTF-8, or an empty text.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(f"folder {path} has no .txt files")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"text file or folder not found: {path}")
    parts = []
    for f in files:
        try:
            parts.append(f.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{f} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    text = "\n".join(parts)
    if not text.strip():
        what = "text file" if path.is_file() else "the .txt files of folder"
        raise ValueError(f"{what} {path} is empty (no text to train or evaluate on)")
    return TextSource(path=path, text=text, files=files)


def encode_text(tokenizer: Tokenizer, text: str, what: str) -> list[int]:
    """Token ids of ``text``; characters outside a character vocabulary raise, listed."""
    if isinstance(tokenizer, CharTokenizer) and tokenizer.unk_id is None:
        unknown = sorted(set(text) - set(tokenizer.chars))
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise ValueError(f"{what} has {len(unknown)} character(s) outside the tokenizer's "
                             f"vocabulary of {len(tokenizer.chars)} characters: {shown}{more}")
    if isinstance(tokenizer, HFTokenizer):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)


def encode_ids(ids: list[int] | np.ndarray, vocab_size: int) -> np.ndarray:
    """Token ids as a compact 1-D array: uint16 if ``vocab_size`` <= 65536, else int32."""
    dtype = np.uint16 if vocab_size <= 1 << 16 else np.int32
    array = np.asarray(ids)
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got range "
                         f"[{array.min()}, {array.max()}]")
    return array.astype(dtype).reshape(-1)  # (N,)


def split_ids(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(first ``1 - val_fraction`` of the tokens, the rest) as views of ``ids``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n_train = len(ids) - int(round(len(ids) * val_fraction))
    return ids[:n_train], ids[n_train:]


def _check_length(ids: np.ndarray, block_size: int, what: str) -> None:
    if len(ids) < block_size + 1:
        raise ValueError(f"the {what} has {len(ids)} tokens; windows of block_size="
                         f"{block_size} need at least {block_size + 1} (a longer text or a "
                         f"smaller block size)")


def windows_at(ids: np.ndarray, starts: np.ndarray, block_size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The windows starting at ``starts``: inputs and next-token targets, (B, T) int64."""
    offsets = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(block_size + 1)
    chunk = ids[offsets].astype(np.int64)  # (B, T + 1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T), (B, T)


def random_starts(n_tokens: int, batch_size: int, block_size: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``batch_size`` window starts drawn uniformly from [0, n_tokens - block_size)."""
    return rng.integers(0, n_tokens - block_size, size=batch_size)


def sample_batch(ids: np.ndarray, batch_size: int, block_size: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch of random windows (inputs, targets), each (B, T) int64, drawn with ``rng``."""
    _check_length(ids, block_size, "training split")
    return windows_at(ids, random_starts(len(ids), batch_size, block_size, rng), block_size)


def eval_starts(n_tokens: int, n_batches: int, batch_size: int, block_size: int,
                rng: np.random.Generator) -> np.ndarray:
    """A fixed set of evaluation window starts, (n_batches, batch_size), drawn once."""
    if n_tokens < block_size + 1:
        raise ValueError(f"the validation split has {n_tokens} tokens; windows of block_size="
                         f"{block_size} need at least {block_size + 1} (a longer text, a "
                         f"larger validation fraction or a smaller block size)")
    return np.stack([random_starts(n_tokens, batch_size, block_size, rng)
                     for _ in range(n_batches)])  # (n_batches, B)


def sequential_windows(ids: np.ndarray, block_size: int, batch_size: int
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every token of ``ids`` (but the first) as a target once: non-overlapping windows of
    ``block_size`` inputs, in batches of up to ``batch_size``; the last window may be shorter
    and comes alone.

    Yields:
        (inputs, targets), each (b, t) int64.
    """
    if len(ids) < 2:
        raise ValueError(f"the text has {len(ids)} token(s); at least 2 are needed to score "
                         f"a next-token prediction")
    n_full = (len(ids) - 1) // block_size
    for first in range(0, n_full, batch_size):
        starts = np.arange(first, min(first + batch_size, n_full)) * block_size
        yield windows_at(ids, starts, block_size)
    rest = len(ids) - 1 - n_full * block_size
    if rest:
        tail = ids[n_full * block_size:].astype(np.int64)  # (rest + 1,)
        yield tail[None, :-1], tail[None, 1:]  # (1, rest), (1, rest)
