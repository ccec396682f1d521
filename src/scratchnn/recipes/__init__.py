"""Recipes: complete workflows (load data, build a model, train, evaluate, save) in one call."""

from scratchnn.recipes.classify import (
    ClassifyOptions,
    default_model,
    resume_classifier,
    train_classifier,
)
from scratchnn.recipes.classify_predict import (
    evaluate_classifier,
    predict_classifier,
    run_recipe,
)
from scratchnn.recipes.tabular import (
    TabularOptions,
    TabularResult,
    resume_tabular,
    train_tabular,
)
from scratchnn.recipes.tabular_predict import evaluate_run, predict_run

__all__ = [
    "ClassifyOptions",
    "default_model",
    "evaluate_classifier",
    "predict_classifier",
    "resume_classifier",
    "run_recipe",
    "train_classifier",
    "TabularOptions",
    "TabularResult",
    "evaluate_run",
    "predict_run",
    "resume_tabular",
    "train_tabular",
]
