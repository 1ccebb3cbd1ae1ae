"""Benchmark sweeps and reports comparing BERT and BERMo (statistics first; the sweep runner and report build on it)."""
