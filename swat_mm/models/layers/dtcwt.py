"""One level of the 2D dual-tree complex wavelet transform as GEMMs on
channels-last maps.

pytorch_wavelets' ``DTCWTForward(J=1)`` / ``DTCWTInverse`` filter every
channel with separable depth-wise convolutions (after gathering a
symmetrically padded copy of the map), split the three high-pass bands into
quads and interleave them back with strided writes, all on NCHW maps and
inside ``autograd.Function`` s that do numpy arithmetic (so they cannot be
compiled). Here the same linear maps run as matrix products along the rows
and the columns of a (B, H, W, C) map:

* a 1D filter ``h`` (the taps as pytorch_wavelets stores them, reversed)
  with half-sample symmetric padding along an axis of length n is the
  n x n matrix :func:`filter_matrix`; the extension of odd maps (the last
  row/column repeated) is folded into it;
* the analysis matrices stack the low- and high-pass filters with their
  output rows in **parity order** (even positions, then odd), so that the
  quads of the high-pass bands are contiguous blocks and the high-pass
  orientations are sums and differences of blocks (no strided copies);
* the synthesis matrices take the same block layout, so the inverse is one
  matrix product per axis over the stacked bands.

Per input element this is 2W' + 4H' multiply-adds each way (W', H' the
padded width and height) instead of the 96 of the separable filters, but
as large GEMMs it is many times faster on CPU and GPU up to well beyond
dense-prediction sizes (see docs/benchmarks.md). The results equal
pytorch_wavelets' up to fp32 rounding (the tests compare at 1e-5 of the
output scale, float64 to 1e-12); the gradients are those of the same linear
maps, which pytorch_wavelets' hand-written backward also computes (its
symmetric-padded filters are self-adjoint).

Layouts. ``low`` is the full-resolution low-pass (B, H', W', C) with **both
axes in parity order** (see :func:`parity_order`), handed around as its
(B, 2, H'/2, 2, W'/2, C) view; ``high`` is
(B, H'/2, W'/2, 6, 2, C): the six orientations (15, 45, 75, 105, 135, 165
degrees, pytorch_wavelets' order) and real/imaginary parts, for every
position, channels last.
"""
import math
from typing import Any, List, Tuple

import torch

_SQRT_HALF = 1 / math.sqrt(2)


def filter_matrix(h: torch.Tensor, n: Any, n_in: Any) -> torch.Tensor:
    """The (n, n_in) matrix of pytorch_wavelets' ``colfilter`` with the
    stored filter ``h`` (any shape with ``length`` elements) over n = n_in
    or n_in + 1 samples (the map extended by its last sample).

    ``out[j] = sum_t h[t] * x[reflect(j + t - length // 2)]``, with
    half-sample symmetric reflection into [0, n) (pytorch_wavelets'
    ``reflect(i, -0.5, n - 0.5)``) and the samples past ``n_in`` folded onto
    the last one. Built from ``arange`` of the sizes, so that a traced or
    exported graph builds it for the size it is given.
    """
    h = h.reshape(-1)
    length = h.numel()
    j = torch.arange(n, device=h.device)[:, None]
    t = torch.arange(length, device=h.device)[None, :]
    # the period as a tensor: exporters cannot take a symbolic size as the
    # scalar operand of a remainder
    i = torch.remainder(j + t - length // 2, j.new_full((), 2 * n))
    i = torch.where(i >= n, 2 * n - 1 - i, i).clamp(max=n_in - 1)
    hits = i[..., None] == torch.arange(n_in, device=h.device)  # (n, L, n_in)
    return torch.einsum('jtc,t->jc', hits.to(h.dtype), h)


def parity_index(n: Any, device: torch.device) -> torch.Tensor:
    """Positions 0, 2, 4, ..., then 1, 3, 5, ... of an axis of even
    length n (the order of the low-pass axes)."""
    return torch.cat([torch.arange(0, n, 2, device=device),
                      torch.arange(1, n, 2, device=device)])


def _analysis(h0: torch.Tensor, h1: torch.Tensor, n_in: int) -> torch.Tensor:
    """(2n, n_in): the rows of the low- and high-pass filters over the
    padded length n, each in parity order."""
    n = n_in + n_in % 2
    order = parity_index(n, h0.device)
    return torch.cat([filter_matrix(h0, n, n_in)[order],
                      filter_matrix(h1, n, n_in)[order]])


def _synthesis(g0: torch.Tensor, g1: torch.Tensor, n_out: int
               ) -> torch.Tensor:
    """(n_out, 2n): the low- and high-pass synthesis filters taking their
    inputs in parity order, cropped to the first n_out outputs."""
    n = n_out + n_out % 2
    order = parity_index(n, g0.device)
    return torch.cat([filter_matrix(g0, n, n)[:, order],
                      filter_matrix(g1, n, n)[:, order]], dim=1)[:n_out]


def dtcwt_j1_forward(x: torch.Tensor, h0o: torch.Tensor, h1o: torch.Tensor,
                     high_scale: float = _SQRT_HALF
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Level-1 DTCWT of a channels-last map.

    Args:
        x: (B, H, W, C), any H, W >= 1 (odd sizes are extended by their
            last row/column, as pytorch_wavelets does).
        h0o, h1o: the level-1 analysis filters (``DTCWTForward`` buffers).
        high_scale: factor of the high-pass coefficients: 1/sqrt(2) as in
            pytorch_wavelets; a caller that applies a linear map next can
            pass 1 and fold the factor into its weights.

    Returns:
        ``low`` (B, 2, H'/2, 2, W'/2, C): the low-pass (B, H', W', C) in
        parity order (``low.reshape(B, H', W', C)``, a copy), and ``high``
        (B, H'/2, W'/2, 6, 2, C), H' = H + H % 2, W' = W + W % 2.
    """
    B, H, W, C = x.shape
    Hp, Wp = H + H % 2, W + W % 2
    h, w = Hp // 2, Wp // 2
    rows = _analysis(h0o.to(x.dtype), h1o.to(x.dtype), W)    # (2W', W)
    cols = _analysis(h0o.to(x.dtype), h1o.to(x.dtype), H)    # (2H', H)
    # along the width: (B*H, 2W', C), blocks lo-even, lo-odd, hi-even, hi-odd
    y = torch.matmul(rows, x.reshape(B * H, W, C))
    # along the height: (B, 2H', 2W' * C), row blocks 0e, 0o, 1e, 1o
    y = torch.matmul(cols, y.reshape(B, H, 2 * Wp * C))
    y = y.reshape(B, 4, h, 4, w, C)
    low = y[:, :2, :, :2]  # a view: the caller's next op makes it dense

    def quads(r: int, k: int) -> Tuple[torch.Tensor, ...]:
        # a b / c d corners of the band filtered by rows r.., columns k..
        return (y[:, r, :, k], y[:, r, :, k + 1], y[:, r + 1, :, k],
                y[:, r + 1, :, k + 1])

    parts = []
    for r, k in ((2, 0), (2, 2), (0, 2)):  # lh, hh, hl
        a, b, c, d = quads(r, k)
        parts.append(((a - d, b + c), (a + d, b - c)))
    (d15, d165), (d45, d135), (d75, d105) = parts
    high = torch.stack([t for o in (d15, d45, d75, d105, d135, d165)
                        for t in o], dim=3)
    high = high.reshape(B, h, w, 6, 2, C)
    return low, (high * high_scale if high_scale != 1 else high)


def dtcwt_j1_inverse(low: torch.Tensor, high: torch.Tensor, g0o: torch.Tensor,
                     g1o: torch.Tensor, out_size: Tuple[int, int],
                     high_scale: float = _SQRT_HALF) -> torch.Tensor:
    """Inverse of :func:`dtcwt_j1_forward` (pytorch_wavelets'
    ``DTCWTInverse`` at one level), cropped to ``out_size``.

    Args:
        low: (B, H', W', C) in parity order, or (B, 2, H'/2, 2, W'/2, C).
        high: (B, H'/2, W'/2, 6, 2, C).
        g0o, g1o: the level-1 synthesis filters (``DTCWTInverse`` buffers).
        out_size: (H, W) with H' = H + H % 2, W' = W + W % 2.
        high_scale: factor applied to ``high`` (1/sqrt(2) as in
            pytorch_wavelets; 1 when the caller has folded it in).

    Returns:
        (B, H, W, C).
    """
    B, C = low.shape[0], low.shape[-1]
    h, w = high.shape[1:3]
    Hp, Wp = 2 * h, 2 * w
    H, W = out_size
    q = high * high_scale if high_scale != 1 else high
    o = [(q[:, :, :, i, 0], q[:, :, :, i, 1]) for i in range(6)]

    def c2q(w1, w2) -> List[torch.Tensor]:
        (r1, i1), (r2, i2) = w1, w2
        return [r1 + r2, i1 + i2, i1 - i2, r2 - r1]  # a, b, c, d

    lh, hl, hh = c2q(o[0], o[5]), c2q(o[2], o[3]), c2q(o[1], o[4])
    # row blocks: g0 even/odd (ll | hl), g1 even/odd (lh | hh); column
    # blocks: lo even/odd (ll, lh), hi even/odd (hl, hh). Filled in place:
    # one copy of each block (stacking would copy twice).
    u = low.new_empty(B, 4, h, 4, w, C)
    u[:, :2, :, :2] = low.reshape(B, 2, h, 2, w, C)
    for r, band in ((0, hl), (2, lh), (2, hh)):
        k = 0 if band is lh else 2
        u[:, r, :, k] = band[0]
        u[:, r, :, k + 1] = band[1]
        u[:, r + 1, :, k] = band[2]
        u[:, r + 1, :, k + 1] = band[3]
    u = u.reshape(B, 2 * Hp, 2 * Wp * C)
    cols = _synthesis(g0o.to(low.dtype), g1o.to(low.dtype), H)  # (H, 2H')
    rows = _synthesis(g0o.to(low.dtype), g1o.to(low.dtype), W)  # (W, 2W')
    y = torch.matmul(cols, u).reshape(B * H, 2 * Wp, C)
    return torch.matmul(rows, y).reshape(B, H, W, C)
