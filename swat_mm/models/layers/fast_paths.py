"""One switch for the CPU-only fast paths.

Several code paths run on CPU only: oneDNN's fused linear layers and
convolutions (:mod:`.onednn`), the batch norm folded into the next linear
layer (:mod:`.bn_linear`), stochastic depth that skips the dropped samples
(:mod:`.drop_path`), and STViT's chunked and banded inference. They give
the same results as the plain operators up to fp32 rounding (the tests
compare), but they keep different tensors alive. Everywhere else (CUDA,
autocast, tracing, compilation) the plain operators run.

:func:`cpu_fast_paths` turns them off, so that a CPU run takes the code
path a GPU takes: ``tools/analysis_tools/benchmark.py --generic-paths``
uses it to estimate a GPU's tensor memory on a machine without one, and it
helps to tell a fast path's effect from the rest in an A/B.
"""
import contextlib
from typing import Iterator

import torch

_ENABLED = True


def cpu_fast_path(x: torch.Tensor) -> bool:
    """Whether ``x`` may take a CPU-only fast path: it is on the CPU and the
    fast paths are on (see :func:`cpu_fast_paths`)."""
    return _ENABLED and x.device.type == 'cpu'


@contextlib.contextmanager
def cpu_fast_paths(enabled: bool) -> Iterator[None]:
    """Turn the CPU-only fast paths on or off inside the block (process
    wide, not per thread)."""
    global _ENABLED
    before, _ENABLED = _ENABLED, bool(enabled)
    try:
        yield
    finally:
        _ENABLED = before
