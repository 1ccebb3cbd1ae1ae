"""Tasks, data sources and batching, one module each:

* :mod:`.tasks`: the task specs (GLUE and ``synthetic``) and their metrics;
* :mod:`.files`: loading from the hub, local files (every bad row reported with file and line) or the generator;
* :mod:`.batching`: tokenised splits, dynamic padding, the length-bucketing sampler;
* :mod:`.corpus`: pretraining text: corpus files, packing into full sequences, BERT's masking;
* :mod:`.wordpiece`: a deterministic WordPiece vocabulary trained on local text.

The names below are the package's API; import them from ``bermo_prune.data``.
"""

from .batching import BucketBatchSampler, Collator, EncodedSplit, padding_stats
from .files import SOURCES, DataConfig, Split, TaskData, load_task_data, read_split, read_text
from .tasks import TASKS, TaskSpec, compute_metrics, get_task
from .wordpiece import train_wordpiece

__all__ = [
    "SOURCES",
    "TASKS",
    "BucketBatchSampler",
    "Collator",
    "DataConfig",
    "EncodedSplit",
    "Split",
    "TaskData",
    "TaskSpec",
    "compute_metrics",
    "get_task",
    "load_task_data",
    "padding_stats",
    "read_split",
    "read_text",
    "train_wordpiece",
]
