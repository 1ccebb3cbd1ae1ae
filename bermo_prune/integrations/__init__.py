"""Adapters to other training loops: :mod:`.transformers` prunes inside a plain ``transformers.Trainer``."""
