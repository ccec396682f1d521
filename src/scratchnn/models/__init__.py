"""Models: plain Modules built from ``nn``, each with a dataclass config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scratchnn.models.bert import BertClassifier, BertConfig, BertModel, mean_pool
from scratchnn.models.cnn import CNN, CNNConfig
from scratchnn.models.generation import generate
from scratchnn.models.gpt import GPT, GPTConfig
from scratchnn.models.mlp import ACTIVATIONS, INIT_SCHEMES, MLP, MLPConfig
from scratchnn.models.rnn import RNNConfig, RNNModel

#: Model name (as saved in a run's config) -> (config class, model class).
MODELS: dict[str, tuple[type, type]] = {"mlp": (MLPConfig, MLP)}
MODELS["bert"] = (BertConfig, BertModel)
MODELS["gpt"] = (GPTConfig, GPT)
MODELS["cnn"] = (CNNConfig, CNN)
MODELS["rnn"] = (RNNConfig, RNNModel)


def build_model(name: str, config: Mapping[str, Any],
                rng: np.random.Generator | None = None) -> Any:
    """Build model ``name`` from its config dict (as written by the config's ``asdict``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models are: {', '.join(MODELS)}")
    config_cls, model_cls = MODELS[name]
    return model_cls(config_cls.from_dict(config), rng=rng)


__all__ = ["ACTIVATIONS", "INIT_SCHEMES", "MLP", "MODELS", "MLPConfig", "build_model"]
__all__ += ["BertClassifier", "BertConfig", "BertModel", "mean_pool"]
__all__ += ["GPT", "GPTConfig", "generate"]
__all__ += ["CNN", "CNNConfig", "RNNConfig", "RNNModel"]
