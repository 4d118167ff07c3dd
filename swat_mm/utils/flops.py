"""FLOP-counting handles for ops mmengine's fvcore-style counter misses.

Counts are multiply-accumulates, the convention of fvcore, mmengine and the
papers' tables.
"""
from typing import Any, List

from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::scaled_dot_product_attention``: q k^T and attn v, as the
    explicit matmuls of an unfused attention would count them."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    if q is None or k is None or v is None:
        raise ValueError('scaled_dot_product_attention with unknown shapes')
    *batch, L, E = q
    S, Ev = k[-2], v[-1]
    n = 1
    for b in batch:
        n *= b
    return n * L * S * (E + Ev)


EXTRA_OP_HANDLES = {
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
}
