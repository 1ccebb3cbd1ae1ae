"""Sparse CPU inference for weight-granularity pruning: linears whose weights are mostly zero run as torch sparse
CSR matrix products.

A weight-granularity run's hardened model stores its zeros densely, and dense kernels gain nothing from them.
:func:`sparsify` swaps every ``nn.Linear`` whose weight has at most ``max_density`` nonzeros for a
:class:`SparseLinear` holding the weight in CSR form (``y = (W x^T)^T + b``, MKL's sparse kernels on x86 CPU builds);
the outputs equal the dense model's up to float rounding. Measured on all-MiniLM-L6-v2 at 10% remaining
(``benchmarks/sparse_inference.py``, 2 threads): 1.52x at batch 1 and length 64, 1.37x at length 128, but 1.13x at
batch 32 and length 64 and 0.90x at length 128, so it pays for single requests, not for batches.
``bermo-prune eval --sparse`` and ``bermo-prune predict --sparse`` load a model this way.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

#: linears with at most this share of nonzero weights become sparse (CSR loses to dense well above 10%)
DEFAULT_MAX_DENSITY = 0.3


class SparseLinear(nn.Module):
    """A linear layer whose weight is a sparse CSR tensor; the same outputs as the dense layer it replaces."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():  # torch calls sparse CSR support "beta" on every conversion
            warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
            self.register_buffer("weight", linear.weight.detach().to_sparse_csr())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = (self.weight @ flat.T).T
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight.values().numel()
        return f"{self.in_features}, {self.out_features}, density={nnz / (self.in_features * self.out_features):.3f}"


def sparsify(model: nn.Module, max_density: float = DEFAULT_MAX_DENSITY) -> int:
    """Replace, in place, every ``nn.Linear`` of ``model`` with at most ``max_density`` nonzero weights by a
    :class:`SparseLinear`; returns how many were replaced. For inference only (the sparse weights take no
    gradient)."""
    swaps = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Linear:
                w = child.weight
                if int(torch.count_nonzero(w)) <= max_density * w.numel():
                    swaps.append((parent, name, child))
    for parent, name, child in swaps:
        setattr(parent, name, SparseLinear(child))
    return len(swaps)
