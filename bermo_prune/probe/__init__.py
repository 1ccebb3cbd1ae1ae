"""Probing (SentEval-style): which linguistic information each layer of BERT and BERMo holds, before and after
pruning. ``tasks`` reads SentEval files and generates tasks from local text, ``semantic`` builds SentEval's parsed
tasks (Tense, SubjNum, ObjNum, SOMO, dependency-tree depth; the ``probe`` extra), ``probing`` extracts per-layer
features and fits the probe, ``report`` writes the per-layer plot and tables."""

from .probing import fit_probe, layer_features, probe_task
from .report import write_probe_report
from .semantic import SPACY_TASKS, generate_semantic
from .tasks import GENERATED, ProbeTask, generate, read_senteval, sentences_from_file, write_senteval

__all__ = [
    "GENERATED",
    "SPACY_TASKS",
    "ProbeTask",
    "fit_probe",
    "generate",
    "generate_semantic",
    "layer_features",
    "probe_task",
    "read_senteval",
    "sentences_from_file",
    "write_probe_report",
    "write_senteval",
]
