"""FLOP-counting handles for ops mmengine's fvcore-style counter misses.

Counts are multiply-accumulates, the convention of fvcore, mmengine and the
papers' tables.

SVT's DTCWT (pytorch_wavelets) runs as ``torch.autograd.Function`` s that
cannot be jit-traced; while tracing, :mod:`swat_mm.models.layers.spectral`
runs each level-1 transform as one opaque op (``prim::PythonOp.
DTCWTForwardJ1`` / ``prim::PythonOp.DTCWTInverseJ1``), and
:func:`dtcwt_forward_j1_flop_jit` / :func:`dtcwt_inverse_j1_flop_jit` count
them analytically: the separable filtering is depth-wise 1D convolution,
counted as a conv (one MAC per tap and output element). Forward: rows by
``h0o`` and ``h1o``, then columns of both results by both filters, i.e.
3 (L0 + L1) MACs per element of the (even-extended) map; inverse: columns of
the four sub-bands and rows of the two sums, 3 (L0 + L1) with the synthesis
filter lengths (near_sym_b: 13 + 19, so 96 MACs per element each way). The
orientation packing (sums and differences scaled by 1/sqrt 2) is not counted,
like any element-wise op.
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


def _dtcwt_j1_macs(x_shape: List[int], filter_shapes: List[List[int]]) -> int:
    """3 (L0 + L1) MACs per element of the map extended to even sizes."""
    *lead, H, W = x_shape
    n = (H + H % 2) * (W + W % 2)
    for d in lead:
        n *= d
    taps = sum(max(int(s) for s in shape) for shape in filter_shapes)
    return 3 * taps * n


def dtcwt_forward_j1_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``prim::PythonOp.DTCWTForwardJ1``: inputs x (B, C, H, W), h0o, h1o."""
    shapes = [get_shape(t) for t in inputs[:3]]
    if any(s is None for s in shapes):
        raise ValueError('DTCWTForwardJ1 with unknown shapes')
    return _dtcwt_j1_macs(shapes[0], shapes[1:])


def dtcwt_inverse_j1_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``prim::PythonOp.DTCWTInverseJ1``: inputs low (B, C, H, W), high,
    g0o, g1o."""
    shapes = [get_shape(t) for t in inputs[:4]]
    if any(s is None for s in shapes):
        raise ValueError('DTCWTInverseJ1 with unknown shapes')
    return _dtcwt_j1_macs(shapes[0], shapes[2:])


EXTRA_OP_HANDLES.update({
    'prim::PythonOp.DTCWTForwardJ1': dtcwt_forward_j1_flop_jit,
    'prim::PythonOp.DTCWTInverseJ1': dtcwt_inverse_j1_flop_jit,
})
