"""One switch for the faster formulations of layers.

Where a layer has a faster formulation than the reference one (the same
function, the same parameters, outputs equal up to float rounding), both
are kept and this switch picks one. Layers read it once, when they are
built (as timm's ``use_fused_attn``), and keep the choice as an attribute:
the same implementation then runs on every device, under tracing, export
and compilation, and a traced graph is the graph that runs.

The default is the fast formulations; ``SWAT_MM_FAST_LAYERS=0`` in the
environment, or building the model inside ``fast_layers(False)``, gives
the reference ones (the tests compare the two;
``tools/analysis_tools/benchmark.py --generic-paths`` measures them).
"""
import contextlib
import os
from typing import Iterator

__all__ = ['use_fast_layers', 'fast_layers']

_FAST = os.environ.get('SWAT_MM_FAST_LAYERS', '1').strip().lower() not in (
    '0', 'false', 'no', 'off')


def use_fast_layers() -> bool:
    """Whether layers built now take their fast formulation."""
    return _FAST


@contextlib.contextmanager
def fast_layers(enabled: bool) -> Iterator[None]:
    """Build layers with (``True``) or without their fast formulations
    inside the block; layers built before keep their choice."""
    global _FAST
    before, _FAST = _FAST, bool(enabled)
    try:
        yield
    finally:
        _FAST = before
