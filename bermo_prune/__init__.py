"""bermo-prune: prune BERT-family encoders during fine-tuning, with BERMo as a first-class model."""

from .bermo import BermoConfig, BermoForSequenceClassification, BermoModel, ScalarMix, mix_weights
from .data import TASKS, TaskSpec, get_task, load_task_data
from .engine import Pruning, prune
from .errors import DataError, InputError, RecipeError
from .models import ModelSpec, build_model, load_classifier, train_wordpiece
from .pruners import available_pruners, get_pruner, register_pruner
from .schedule import Constant, Cubic, Linear, OneShot, Scheduler
from .synthetic import generate_synthetic
from .train import TrainConfig, fine_tune

__version__ = "0.1.0"

__all__ = [
    "Constant",
    "Cubic",
    "Linear",
    "OneShot",
    "Pruning",
    "Scheduler",
    "available_pruners",
    "get_pruner",
    "prune",
    "register_pruner",
    "BermoConfig",
    "BermoForSequenceClassification",
    "BermoModel",
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
