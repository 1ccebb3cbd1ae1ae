"""bermo-prune: prune BERT-family encoders during fine-tuning, with BERMo as a first-class model."""

from .bermo import (
    BermoConfig,
    BermoDistilBertForSequenceClassification,
    BermoElectraForSequenceClassification,
    BermoForSequenceClassification,
    BermoModel,
    BermoRobertaForSequenceClassification,
    ScalarMix,
    bermo_classifier,
    bermo_config_from,
    mix_weights,
)
from .compact import compact
from .data import TASKS, TaskSpec, get_task, load_task_data, train_wordpiece
from .engine import Pruning, prune
from .errors import DataError, InputError, RecipeError
from .families import Family, available_families, family_of, get_family, register_family
from .models import ModelSpec, build_model, load_classifier, load_compact
from .pretrain import load_pretrain_recipe, run_pretrain
from .pruners import available_pruners, get_pruner, register_pruner
from .recipe import Recipe, load_recipe
from .runner import fine_tune, run_recipe
from .schedule import Constant, Cubic, Linear, OneShot, Scheduler
from .synthetic import generate_synthetic
from .tracking import DivergenceConfig, DivergenceTracker
from .train import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "Constant",
    "Cubic",
    "Linear",
    "OneShot",
    "Pruning",
    "Recipe",
    "DivergenceConfig",
    "DivergenceTracker",
    "Trainer",
    "compact",
    "load_compact",
    "load_recipe",
    "load_pretrain_recipe",
    "run_pretrain",
    "run_recipe",
    "Scheduler",
    "available_pruners",
    "get_pruner",
    "prune",
    "register_pruner",
    "BermoConfig",
    "BermoForSequenceClassification",
    "BermoModel",
    "BermoRobertaForSequenceClassification",
    "BermoElectraForSequenceClassification",
    "BermoDistilBertForSequenceClassification",
    "bermo_classifier",
    "bermo_config_from",
    "Family",
    "available_families",
    "family_of",
    "get_family",
    "register_family",
    "DataError",
    "InputError",
    "ModelSpec",
    "RecipeError",
    "ScalarMix",
    "TASKS",
    "TaskSpec",
    "TrainConfig",
    "build_model",
    "fine_tune",
    "generate_synthetic",
    "get_task",
    "load_classifier",
    "load_task_data",
    "mix_weights",
    "train_wordpiece",
]
