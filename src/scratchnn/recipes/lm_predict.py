"""Use a language model: load an ``lm`` run (or a Hugging Face GPT-2 folder), generate text
from a prompt, and score a text file (loss in nats/token and perplexity)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn.data.lm import encode_ids, encode_text, read_text, sequential_windows
from scratchnn.data.tokenizers import Tokenizer, load_tokenizer
from scratchnn.errors import CheckpointError
from scratchnn.models.generation import generate
from scratchnn.models.gpt import GPT, GPTConfig
from scratchnn.recipes.lm import RECIPE, TOKENIZER_FILE, evaluate_loss, perplexity
from scratchnn.training import checkpoint as ckpt

__all__ = ["EvalResult", "GenerateResult", "LoadedLM", "evaluate_text", "generate_text",
           "load_lm"]


@dataclass
class LoadedLM:
    """A language model with its tokenizer; ``kind`` is 'run' or 'huggingface'."""

    model: GPT
    tokenizer: Tokenizer
    kind: str
    path: Path


def load_lm(path: str | Path) -> LoadedLM:
    """Load an ``lm pretrain`` run directory or a Hugging Face GPT-2 folder (eval mode).

    Raises:
        FileNotFoundError: the folder does not exist.
        CheckpointError: it is neither kind of folder, or a file in it is missing or corrupt.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory or model folder not found: {path}")
    config_path = path / ckpt.CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{path} is neither an 'lm pretrain' run nor a Hugging Face "
                              f"model folder (it has no {ckpt.CONFIG_FILE})")
    config = ckpt.read_json(config_path)
    if isinstance(config, dict) and config.get("recipe") == RECIPE:
        try:
            model = GPT(GPTConfig.from_dict(config["model"]["config"]),
                        rng=np.random.default_rng(0))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{config_path}: invalid model section: {e}") from None
        ckpt.load_model_weights(model, path / ckpt.MODEL_FILE)
        try:
            tokenizer = load_tokenizer(path / TOKENIZER_FILE)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot load the run's tokenizer: {e}") from None
        model.eval()
        return LoadedLM(model, tokenizer, "run", path)
    if isinstance(config, dict) and "model_type" in config:
        from scratchnn.interop import from_pretrained

        pre = from_pretrained(path)
        if not isinstance(pre.model, GPT):
            raise CheckpointError(f"{path} holds a {config['model_type']!r} model; a language "
                                  f"model must be GPT-2 (model_type 'gpt2')")
        if pre.tokenizer is None:
            raise CheckpointError(f"{path} has no tokenizer.json to encode the prompt with")
        return LoadedLM(pre.model, pre.tokenizer, "huggingface", path)
    recipe = config.get("recipe") if isinstance(config, dict) else None
    what = f"a scratchnn {recipe!r} run" if recipe else "not a scratchnn run"
    raise CheckpointError(f"{path} is {what}; expected a language-model run ('scratchnn lm "
                          f"pretrain') or a Hugging Face GPT-2 folder")


@dataclass
class GenerateResult:
    """A generated text: ``text`` is the prompt followed by ``completion``."""

    prompt: str
    completion: str
    text: str
    new_tokens: int
    seconds: float
    use_cache: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def generate_text(lm: LoadedLM, prompt: str, max_new_tokens: int = 200,
                  temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, seed: int = 0,
                  use_cache: bool = True) -> GenerateResult:
    """Continue ``prompt`` by ``max_new_tokens`` sampled tokens (seeded: same seed, same text).

    Raises:
        ValueError: an empty prompt, characters outside a character vocabulary (listed), or a
            bad sampling setting.
    """
    if not prompt:
        raise ValueError("the prompt is empty; give at least one character with --prompt")
    ids = encode_text(lm.tokenizer, prompt, "the prompt")
    if not ids:
        raise ValueError(f"the prompt {prompt!r} encodes to no tokens")
    start = time.perf_counter()
    out = generate(lm.model, np.asarray(ids, dtype=np.int64), max_new_tokens,
                   temperature=temperature, top_k=top_k, top_p=top_p,
                   rng=np.random.default_rng(seed), use_cache=use_cache).numpy()
    seconds = time.perf_counter() - start
    text = lm.tokenizer.decode(out)
    prefix = lm.tokenizer.decode(out[:len(ids)])
    completion = text[len(prefix):] if text.startswith(prefix) else \
        lm.tokenizer.decode(out[len(ids):])
    return GenerateResult(prompt=prompt, completion=completion, text=prompt + completion,
                          new_tokens=max_new_tokens, seconds=seconds, use_cache=use_cache)


@dataclass
class EvalResult:
    """The loss of a model on a whole text, in non-overlapping windows."""

    text: str
    loss: float
    perplexity: float
    n_tokens: int
    n_windows: int
    block_size: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def evaluate_text(lm: LoadedLM, text: str | Path, batch_size: int = 16,
                  block_size: int | None = None) -> EvalResult:
    """Mean next-token loss over every token of ``text`` (a file or folder of .txt files),
    in non-overlapping windows of ``block_size`` (default: the model's) tokens.

    Raises:
        FileNotFoundError, ValueError: a missing or empty text, characters outside a character
            vocabulary, or a block size larger than the model's.
    """
    context = lm.model.config.block_size
    block_size = context if block_size is None else block_size
    if not 1 <= block_size <= context:
        raise ValueError(f"block size {block_size} is larger than the model's context of "
                         f"{context} tokens; use --block-size {context} or less")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    source = read_text(text)
    ids = encode_ids(encode_text(lm.tokenizer, source.text, f"the text {source.path}"),
                     lm.tokenizer.vocab_size)
    windows = list(sequential_windows(ids, block_size, batch_size))
    loss, count = evaluate_loss(lm.model, windows)
    lm.model.eval()
    n_windows = sum(len(x) for x, _ in windows)
    if not math.isfinite(loss):
        raise ValueError(f"the loss on {source.path} is not finite ({loss})")
    return EvalResult(text=str(source.path), loss=loss, perplexity=perplexity(loss),
                      n_tokens=count, n_windows=n_windows, block_size=block_size)
