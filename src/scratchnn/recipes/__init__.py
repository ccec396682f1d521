"""Recipes: complete workflows (load data, build a model, train, evaluate, save) in one call."""

from scratchnn.recipes.tabular import (
    TabularOptions,
    TabularResult,
    resume_tabular,
    train_tabular,
)
from scratchnn.recipes.tabular_predict import evaluate_run, predict_run

__all__ = [
    "TabularOptions",
    "TabularResult",
    "evaluate_run",
    "predict_run",
    "resume_tabular",
    "train_tabular",
]
