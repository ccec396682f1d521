"""What ``scratchnn finetune`` starts from: load FROM (a run or a Hugging Face folder), name
its architecture, and build that architecture again.

A :class:`Source` is the loaded model plus what reads data for it: the fitted preprocessing
and input encoder of a scratchnn run, or the tokenizer of a language model / Hugging Face
folder. ``spec_of(model)`` is the JSON ``{"name", "config"}`` that ``build_architecture``
turns back into the same (untrained) model; fine-tuning runs save it in ``config.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scratchnn import nn
from scratchnn.data import Preprocessor
from scratchnn.data.tokenizers import Tokenizer, load_tokenizer
from scratchnn.errors import CheckpointError, ScratchnnError
from scratchnn.finetune.heads import GPTClassifier
from scratchnn.models import CNN, GPT, MLP, BertClassifier, BertConfig, BertModel, RNNModel
from scratchnn.models.gpt import GPTConfig
from scratchnn.training import checkpoint as ckpt

__all__ = ["KINDS", "Source", "build_architecture", "file_digest", "load_source", "spec_of"]

#: How a model reads its inputs: a table's features, a classify-recipe encoder (images, a
#: word/char vocabulary, numeric sequences), tokenizer ids with an attention mask, or an LM.
KINDS = ("tabular", "images", "text", "sequence", "tokens", "lm")
RECIPE = "finetune"


@dataclass
class Source:
    """FROM, loaded: the model (eval mode) and what it needs to read data.

    Attributes:
        path: the run directory or model folder (absolute).
        origin: 'run' (a scratchnn run), 'finetune' (a fine-tuning run) or 'huggingface'.
        kind: one of :data:`KINDS`; for a GPT or BERT encoder without a head it is 'tokens'
            (BERT) or 'lm' (GPT) until the recipe wraps it in a classifier.
        model: the model with its weights.
        config: the run's ``config.json`` (a Hugging Face ``config.json`` for folders).
        digest: SHA-256 of the weight files, to check a LoRA run's base is unchanged.
        prep: the run's fitted Preprocessor (labels, and features for tables/sequences).
        inputs: the run's ``inputs.json`` (images/text/sequence encoders).
        tokenizer: the tokenizer of token models.
        text: ``{"text_column", "max_length"}`` of a fine-tuned token classifier.
    """

    path: Path
    origin: str
    kind: str
    model: Any
    config: dict[str, Any]
    digest: str
    prep: Preprocessor | None = None
    inputs: dict[str, Any] | None = None
    tokenizer: Tokenizer | None = None
    text: dict[str, Any] = field(default_factory=dict)

    @property
    def describe(self) -> str:
        """E.g. "scratchnn cnn run runs/digits" for messages."""
        what = {"run": "scratchnn run", "finetune": "fine-tuning run",
                "huggingface": "Hugging Face folder"}[self.origin]
        return f"{what} {self.path} ({type(self.model).__name__})"


def file_digest(paths: list[Path]) -> str:
    """SHA-256 over the bytes of ``paths`` in order."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _hf_weight_files(folder: Path) -> list[Path]:
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    return sorted(folder.glob("model-*.safetensors"))


def spec_of(model: Any) -> dict[str, Any]:
    """The JSON architecture of ``model`` (see the module docstring)."""
    if isinstance(model, (MLP, CNN, RNNModel)):
        name = {MLP: "mlp", CNN: "cnn", RNNModel: "rnn"}[type(model)]
        return {"name": name, "config": model.config.asdict()}
    if isinstance(model, BertClassifier):
        return {"name": "bert_classifier", "config": {
            "bert": model.config.to_dict(), "num_labels": model.num_labels,
            "pooling": model.pooling, "dropout": model.dropout.p,
            "pooler": model.bert.pooler is not None}}
    if isinstance(model, GPTClassifier):
        return {"name": "gpt_classifier", "config": {
            "gpt": model.gpt.config.to_dict(), "num_labels": model.num_labels,
            "pooling": model.pooling, "dropout": model.dropout.p}}
    if isinstance(model, GPT):
        return {"name": "gpt", "config": model.config.to_dict()}
    if isinstance(model, BertModel):
        return {"name": "bert", "config": model.config.to_dict()}
    raise ScratchnnError(f"cannot fine-tune a {type(model).__name__}")


def build_architecture(spec: dict[str, Any], rng: np.random.Generator | None = None) -> Any:
    """A freshly initialised model of the architecture ``spec`` (from :func:`spec_of`)."""
    from scratchnn.models import build_model

    name, cfg = spec["name"], spec["config"]
    if name == "bert_classifier":
        bert = BertModel(BertConfig.from_dict(cfg["bert"]), rng,
                         add_pooling_layer=bool(cfg["pooler"]))
        return BertClassifier(num_labels=cfg["num_labels"], pooling=cfg["pooling"],
                              dropout=cfg["dropout"], rng=rng, encoder=bert)
    if name == "gpt_classifier":
        gpt = GPT(GPTConfig.from_dict(cfg["gpt"]), rng=rng)
        return GPTClassifier(gpt, cfg["num_labels"], cfg["pooling"], cfg["dropout"], rng=rng)
    if name == "bert":
        return BertModel(BertConfig.from_dict(cfg), rng)
    return build_model(name, cfg, rng=rng)


def _from_run(path: Path, config: dict[str, Any]) -> Source:
    """A scratchnn run: tabular/classify (load_run), lm (load_lm) or a fine-tuning run."""
    recipe = config.get("recipe")
    if recipe == RECIPE:
        from scratchnn.recipes.finetune_runs import load_finetuned

        run = load_finetuned(path)
        if run.config.get("lora"):
            from scratchnn.finetune import merge_lora

            merge_lora(run.model, replace=True)  # a plain model to start from
        return Source(path, "finetune", run.kind, run.model, config, run.digest, run.prep,
                      run.inputs, run.tokenizer, run.text)
    if recipe == "lm":
        from scratchnn.recipes.lm_predict import load_lm

        lm = load_lm(path)
        return Source(path, "run", "lm", lm.model, config,
                      file_digest([path / ckpt.MODEL_FILE]), tokenizer=lm.tokenizer)
    if recipe not in ("tabular", "classify"):
        raise ScratchnnError(f"{path} is a {recipe!r} run; fine-tuning starts from a "
                             f"tabular, classify, lm or finetune run or a Hugging Face folder")
    run = ckpt.load_run(path)
    digest = file_digest([path / ckpt.MODEL_FILE])
    if recipe == "tabular":
        if run.preprocessor.task != "classification":
            raise ScratchnnError(f"{path} is a regression run; fine-tuning trains classifiers")
        return Source(path, "run", "tabular", run.model, config, digest, run.preprocessor)
    from scratchnn.recipes.classify_inputs import INPUTS_FILE

    inputs = ckpt.read_json(path / INPUTS_FILE)
    return Source(path, "run", inputs["kind"], run.model, config, digest, run.preprocessor,
                  inputs)


def load_source(path: str | Path) -> Source:
    """Load FROM: a scratchnn run directory or a Hugging Face model folder (BERT, GPT-2).

    Raises:
        FileNotFoundError: the folder does not exist.
        CheckpointError, ScratchnnError: it is neither, or cannot be fine-tuned.
    """
    path = Path(path).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"FROM must be a run directory or a Hugging Face model folder; "
                                f"{path} is not a folder")
    config_path = path / ckpt.CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{path} has no {ckpt.CONFIG_FILE}: it is neither a scratchnn "
                              f"run nor a Hugging Face model folder")
    config = ckpt.read_json(config_path)
    if isinstance(config, dict) and "model_type" in config:
        from scratchnn.interop import from_pretrained

        gpt2 = config.get("model_type") == "gpt2"
        pre = from_pretrained(path, pad_token="<|endoftext|>" if gpt2 else None)
        if pre.tokenizer is None:
            raise CheckpointError(f"{path} has no tokenizer.json; fine-tuning a Hugging Face "
                                  f"model needs its tokenizer")
        kind = "lm" if isinstance(pre.model, GPT) else "tokens"
        return Source(path, "huggingface", kind, pre.model, config,
                      file_digest(_hf_weight_files(path)), tokenizer=pre.tokenizer)
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{config_path} is not a scratchnn run config")
    return _from_run(path, config)


def read_tokenizer(path: Path) -> Tokenizer:
    """A run's ``tokenizer.json`` with a CheckpointError naming it when unreadable."""
    try:
        return load_tokenizer(path)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot load tokenizer {path}: {e}") from None


def drop_unused_pooler(model: nn.Module) -> None:
    """A BertClassifier that does not pool with BERT's pooler does not carry it (an unused
    layer would get no gradient and fail the trainability audit)."""
    if isinstance(model, BertClassifier) and model.pooling != "pooler" \
            and model.bert.pooler is not None:
        model.bert.pooler = None
