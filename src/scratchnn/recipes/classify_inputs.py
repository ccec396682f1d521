"""Input encoders of the CNN/RNN classifiers: fitted on the training examples only, saved as
JSON (``inputs.json``), applied again by evaluate and predict.

Each encoder turns :class:`Samples` into the flat float32 rows the Trainer takes: normalised
images (N, C·H·W), token ids right-padded with 0 (N, T), or standardised sequence steps
(N, T·F). The labels always go through a ``Preprocessor`` (``preprocessing.json``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnn.data import Preprocessor, Table
from scratchnn.data.images import ImageNormalizer
from scratchnn.data.text import Vocabulary
from scratchnn.errors import ScratchnnError
from scratchnn.recipes.classify_data import BUILTIN_IMAGES, DataSpec, Samples

__all__ = ["INPUTS_FILE", "ImageInputs", "SequenceInputs", "TextInputs", "fit_inputs",
           "fit_labels", "inputs_from_dict"]

INPUTS_FILE = "inputs.json"
#: Largest pixel value of 8-bit image files.
_BYTE_SCALE = 255.0


def fit_labels(labels: Table, target: str) -> Preprocessor:
    """A Preprocessor that only label-encodes ``target`` (classes sorted as for tables)."""
    placeholder = labels.with_column(f"{target}__input", np.zeros(len(labels)))
    state = Preprocessor().fit(placeholder, target, "classification").to_dict()
    state["features"] = []  # the inputs have their own encoder
    return Preprocessor.from_dict(state)


class ImageInputs:
    """Images -> pixel values scaled to [0, 1] and standardised per channel."""

    kind = "images"

    def __init__(self, normalizer: ImageNormalizer) -> None:
        self.normalizer = normalizer

    @classmethod
    def fit(cls, spec: DataSpec, train: Samples) -> ImageInputs:
        """Channel statistics of the training images."""
        channels = 1 if spec.settings["color_mode"] == "L" else 3
        scale = BUILTIN_IMAGES[spec.source][3] if spec.origin == "builtin" else _BYTE_SCALE
        size = spec.settings["image_size"]
        return cls(ImageNormalizer(channels, size, scale).fit(train.inputs))

    def encode(self, samples: Samples) -> np.ndarray:
        """(N, C·H·W) float32."""
        return self.normalizer.transform(samples.inputs)

    def model_fields(self) -> dict[str, Any]:
        """The input dimensions of the model config."""
        return {"in_channels": self.normalizer.channels,
                "image_size": list(self.normalizer.size)}

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "normalizer": self.normalizer.to_dict()}


class TextInputs:
    """Texts -> token ids of a vocabulary built on the training texts (0 pads)."""

    kind = "text"

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    @classmethod
    def fit(cls, spec: DataSpec, train: Samples) -> TextInputs:
        """Build the vocabulary from the training texts only."""
        s = spec.settings
        vocab = Vocabulary.build(list(train.inputs), s["tokenizer"], min_freq=s["min_freq"],
                                 max_size=s["max_vocab"], max_length=s["max_length"])
        return cls(vocab)

    def encode(self, samples: Samples) -> np.ndarray:
        """(N, T) token ids as float32 (exact: ids stay far below 2**24)."""
        ids, _ = self.vocabulary.encode(list(samples.inputs))
        return ids.astype(np.float32)

    def model_fields(self) -> dict[str, Any]:
        """The input dimensions of the model config."""
        return {"vocab_size": len(self.vocabulary), "padding_idx": Vocabulary.pad_id}

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "vocabulary": self.vocabulary.to_dict()}


class SequenceInputs:
    """Table rows -> ``seq_len`` steps of the standardised feature columns, step-major."""

    kind = "sequence"

    def __init__(self, prep: Preprocessor, seq_len: int) -> None:
        self.prep, self.seq_len = prep, int(seq_len)
        n = prep.n_features
        if self.seq_len < 1 or n % self.seq_len:
            raise ScratchnnError(f"the {n} feature columns do not split into --seq-len "
                                 f"{seq_len} steps of equal width; choose a divisor of {n}")

    @classmethod
    def fit(cls, spec: DataSpec, train: Samples) -> SequenceInputs:
        """Standardise every feature column with training statistics."""
        prep = Preprocessor().fit(train.inputs, spec.target, "classification")
        return cls(prep, spec.settings.get("seq_len") or prep.n_features)

    def encode(self, samples: Samples) -> np.ndarray:
        """(N, T·F) float32; the model reads it as (N, T, F)."""
        return self.prep.transform_features(samples.inputs)

    def model_fields(self) -> dict[str, Any]:
        """The input dimensions of the model config."""
        return {"input_size": self.prep.n_features // self.seq_len}

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the column statistics live in ``preprocessing.json``)."""
        return {"kind": self.kind, "seq_len": self.seq_len,
                "input_size": self.prep.n_features // self.seq_len,
                "columns": self.prep.input_features}


Encoder = ImageInputs | TextInputs | SequenceInputs


def fit_inputs(spec: DataSpec, train: Samples) -> tuple[Encoder, Preprocessor]:
    """(input encoder, label Preprocessor) fitted on the training examples."""
    if spec.kind == "sequence":
        encoder = SequenceInputs.fit(spec, train)
        return encoder, encoder.prep
    cls = ImageInputs if spec.kind == "images" else TextInputs
    return cls.fit(spec, train), fit_labels(train.labels, spec.target)


def inputs_from_dict(d: dict[str, Any], prep: Preprocessor) -> Encoder:
    """Rebuild an encoder from its JSON form (``prep``: the run's Preprocessor)."""
    kind = d.get("kind")
    if kind == "images":
        return ImageInputs(ImageNormalizer.from_dict(d["normalizer"]))
    if kind == "text":
        return TextInputs(Vocabulary.from_dict(d["vocabulary"]))
    if kind == "sequence":
        return SequenceInputs(prep, d["seq_len"])
    raise ValueError(f"unknown input kind {kind!r}")
