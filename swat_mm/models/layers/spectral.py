"""SVT's spectral (scattering) token mixing with the dual-tree complex
wavelet transform.

:class:`SpectralChannelMixing` is the mixing of the released SVT code
(``SVT_channel_mixing`` in ``badripatro/svt``'s ``svt.py``), with the same
parameter and buffer names:

1. one level of the 2D DTCWT (pytorch_wavelets, ``J=1``, biorthogonal
   ``near_sym_b`` and q-shift ``qshift_b`` filters): a full-resolution
   low-pass ``xl`` (B, C, H, W) and six complex high-pass orientations
   ``xh`` (B, C, 6, H/2, W/2, 2 = real/imag);
2. ``xl`` times a learned (C, h, w) filter, element-wise
   (``complex_weight_ll``);
3. the high-pass coefficients, at every position and orientation, through a
   two-layer complex linear map that is block-diagonal over channels
   (``num_blocks`` blocks; ``complex_weight_lh_1``/``_2``: (2 = real/imag,
   blocks, block size, block size), biases ``complex_weight_lh_b1``/``_b2``:
   (2, blocks, block size)) with ReLU on the real and imaginary parts in
   between;
4. the inverse DTCWT.

Looking inside. The high-pass coefficients before and after the complex
mixing pass through the layer's ``highpass_tap`` (an identity,
``tap(before, after)`` returns ``after``), so a forward hook there sees
them at no cost to a model without hooks;
:meth:`SpectralChannelMixing.highpass_coefficients` turns what the hook saw
into pytorch_wavelets' layout and scale, the same in both formulations, and
:func:`collect_spectra` gathers them for every spectral layer of a model.
The learned low-pass filter at any size is
:meth:`SpectralChannelMixing.lowpass_filter`.

Sizes. The low-pass filter is a parameter allocated for the low-pass size at
the training resolution (``filter_size``; 56 x 56 for SVT's first stage at
224 input), so the checkpoints of the official code load unchanged. At any
other size the filter is resized to the actual low-pass map by **bilinear
interpolation** (``F.interpolate``, ``align_corners=False``, no
anti-aliasing) of the learned (C, h, w) filter, the way position embeddings
are resized; at the training size nothing is resized and the result is the
official one.

Odd sizes. ``DTCWTForward`` itself extends a map with an odd number of rows
(columns) by repeating its last row (column), so both the low-pass and the
inverse transform have the even size H + H % 2, W + W % 2; the filter is
resized to that even size and the inverse transform's output is cropped back
to (H, W). (The official code, with its fixed filter, fails there.)

Formulations (one switch, :mod:`swat_mm.models.layers.config`, read when
the layer is built). The fast one (the default) runs the transforms as
matrix products on channels-last maps (:mod:`swat_mm.models.layers.dtcwt`)
and each complex block-diagonal layer as one dense GEMM on [real; imag]
rows (the zero off-diagonal blocks cost MACs but save the per-block
einsums' permute copies), with the transforms' 1/sqrt(2) folded into the
complex maps' weights. The reference one (``fast_layers(False)``) is the
official formulation: pytorch_wavelets' transforms and per-block einsums on
NCHW maps. They agree up to fp32 rounding (tested: outputs and all
gradients to 1e-5 of their scale); only the fast one compiles with
``torch.compile``. Under autocast the transforms run in fp32 and the
complex maps in the autocast dtype; a float64 model runs the fast path in
float64 throughout (the official code casts to fp32 whatever the model's
dtype).

FLOPs. pytorch_wavelets' transforms are ``torch.autograd.Function`` s whose
Python code cannot be jit-traced (it does numpy arithmetic on sizes, which
tracing turns into tensors). The reference formulation therefore calls them
through :class:`DTCWTForwardJ1` / :class:`DTCWTInverseJ1`, which run them
with tracing paused, so that a trace holds one
``prim::PythonOp.DTCWTForwardJ1`` / ``...InverseJ1`` node each, counted
analytically by :mod:`swat_mm.utils.flops`; the model-zoo FLOPs are those
of the reference formulation (:func:`swat_mm.utils.complexity.build_model`
builds it).
"""
import contextlib
import math
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_wavelets import DTCWTForward, DTCWTInverse

from .config import use_fast_layers
from .dtcwt import dtcwt_j1_forward, dtcwt_j1_inverse, parity_index

__all__ = ['SpectralChannelMixing', 'HighpassTap', 'collect_spectra',
           'orientation_energy', 'ORIENTATIONS']

#: the six high-pass orientations of the DTCWT, in degrees, in the order of
#: the coefficients' orientation axis (pytorch_wavelets')
ORIENTATIONS = (15, 45, 75, 105, 135, 165)


def _pair(v: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = tuple(int(s) for s in v)
    if len(v) != 2:
        raise ValueError(f'expected an int or an (h, w) pair, got {v}')
    return v  # type: ignore[return-value]


def _block_diag(blocks: torch.Tensor) -> torch.Tensor:
    """(n, d, d) -> the (n*d, n*d) block-diagonal matrix (``torch.block_diag``
    written with an identity, which ONNX exports)."""
    n, d, _ = blocks.shape
    eye = torch.eye(n, dtype=blocks.dtype, device=blocks.device)
    return torch.einsum('ij,iab->iajb', eye, blocks).reshape(n * d, n * d)


def _block_mm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(..., blocks, d) x (blocks, d, k) -> (..., blocks, k), block by
    block (the official ``multiply``)."""
    return torch.einsum('...bd,bdk->...bk', x, weight)


class _Untraced:
    """Pause jit tracing: the pytorch_wavelets code needs plain int sizes."""

    def __enter__(self) -> None:
        self.state = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)

    def __exit__(self, *args) -> None:
        torch._C._set_tracing_state(self.state)


def _recompute_grads(fn, inputs: Tuple[torch.Tensor, ...],
                     grads: Tuple[torch.Tensor, ...]) -> Tuple:
    """Gradients of ``fn(*inputs)`` for the output gradients ``grads``, by
    running ``fn`` again under autograd (the transforms are linear and
    cheap next to the rest of the block)."""
    with torch.enable_grad(), _Untraced():
        leaves = [t.detach().requires_grad_(t.requires_grad)
                  for t in inputs]
        outs = fn(*leaves)
        need = [t for t in leaves if t.requires_grad]
        got = iter(torch.autograd.grad(
            outs, need, grads, allow_unused=True) if need else ())
    return tuple(next(got) if t.requires_grad else None for t in leaves)


class DTCWTForwardJ1(torch.autograd.Function):
    """``xfm(x)`` (pytorch_wavelets, one level) as one op, so that a jit
    trace records it as one node (FLOP counting).

    Inputs: x (B, C, H, W) and the filters ``h0o``, ``h1o`` (so the counter
    sees their lengths). Returns the low-pass (B, C, H', W') and the
    high-pass (B, C, 6, H'/2, W'/2, 2), H' = H + H % 2. The backward runs
    the transform again under autograd.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0o: torch.Tensor, h1o: torch.Tensor,
                xfm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
        ctx.xfm = xfm
        ctx.save_for_backward(x)
        with _Untraced(), torch.no_grad():
            low, highs = xfm(x)
        return low, highs[0]

    @staticmethod
    def backward(ctx, grad_low, grad_high):
        x, = ctx.saved_tensors

        def fn(x):
            low, highs = ctx.xfm(x)
            return low, highs[0]
        return _recompute_grads(fn, (x, ), (grad_low, grad_high)) + (
            None, None, None)


class DTCWTInverseJ1(torch.autograd.Function):
    """``ifm((low, [high]))`` as one op (see :class:`DTCWTForwardJ1`);
    inputs low, high, ``g0o``, ``g1o``; returns (B, C, H', W')."""

    @staticmethod
    def forward(ctx, low: torch.Tensor, high: torch.Tensor, g0o: torch.Tensor,
                g1o: torch.Tensor, ifm: nn.Module) -> torch.Tensor:
        ctx.ifm = ifm
        ctx.save_for_backward(low, high)
        with _Untraced(), torch.no_grad():
            return ifm((low, [high]))

    @staticmethod
    def backward(ctx, grad_out):
        low, high = ctx.saved_tensors
        grads = _recompute_grads(lambda lo, hi: ctx.ifm((lo, [hi])),
                                 (low, high), (grad_out, ))
        return grads + (None, None, None)


class HighpassTap(nn.Module):
    """Identity on a spectral layer's high-pass coefficients, for forward
    hooks: ``forward(before, after)`` returns ``after`` unchanged.

    ``before`` / ``after``: the coefficients before and after the learned
    complex mixing, in the layer's own layout and scale (see
    :meth:`SpectralChannelMixing.highpass_coefficients`)."""

    def forward(self, before: torch.Tensor,
                after: torch.Tensor) -> torch.Tensor:
        return after


def orientation_energy(high: torch.Tensor) -> torch.Tensor:
    """(B, C, 6, h, w, 2) complex high-pass coefficients -> (B, 6, h, w),
    their energy ``|z|^2`` summed over the channels, per orientation
    (:data:`ORIENTATIONS`) and position."""
    return high.pow(2).sum((1, 5))


@contextlib.contextmanager
def collect_spectra(model: nn.Module) -> Iterator[List[dict]]:
    """Inside the block, every :class:`SpectralChannelMixing` of ``model``
    appends, per forward, ``dict(name=..., before=..., after=...)`` to the
    yielded list: the high-pass coefficients before and after its complex
    mixing as (B, C, 6, h, w, 2) (orientations :data:`ORIENTATIONS`,
    real/imaginary last; pytorch_wavelets' layout and scale, detached),
    the same whichever formulation the layer has. The hooks are removed on
    exit."""
    found: List[dict] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SpectralChannelMixing):
            def hook(tap, inputs, output, name=name, layer=module):
                before, after = layer.highpass_coefficients(
                    inputs[0].detach(), output.detach())
                found.append(dict(name=name, before=before, after=after))
            handles.append(module.highpass_tap.register_forward_hook(hook))
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


class SpectralChannelMixing(nn.Module):
    """DTCWT spectral mixing (see the module docstring) on an NCHW map, a
    channels-last map (:meth:`forward_nhwc`) or (B, N, C) tokens given
    their (H, W) grid.

    Parameters (the official names and shapes; C = ``dim``, (h, w) =
    ``filter_size``, d = C / ``num_blocks``):
    ``complex_weight_ll`` (C, h, w), the low-pass filter;
    ``complex_weight_lh_1`` / ``_2`` (2, num_blocks, d, d) and
    ``complex_weight_lh_b1`` / ``_b2`` (2, num_blocks, d), the real and
    imaginary parts of the two block-diagonal complex high-pass maps.

    The high-pass coefficients before and after mixing reach forward hooks
    on ``highpass_tap`` (see :func:`collect_spectra`).

    Args:
        dim: C; must be divisible by ``num_blocks``.
        filter_size: (h, w) of the learned low-pass filter, i.e. the
            low-pass size at the training resolution (the feature size,
            rounded up to even).
        num_blocks: diagonal blocks of the high-pass complex linear maps
            (4 in every official model).
        biort: level-1 biorthogonal filters of the DTCWT.
        qshift: q-shift filters (unused at one level, but their buffers are
            part of the official state dict).

    The formulation (fast or reference, see the module docstring) is the
    switch's (:func:`~swat_mm.models.layers.config.use_fast_layers`) when
    the layer is built; ``self.fast`` holds it.
    """

    def __init__(self, dim: int, filter_size: Union[int, Sequence[int]],
                 num_blocks: int = 4, biort: str = 'near_sym_b',
                 qshift: str = 'qshift_b') -> None:
        super().__init__()
        self.fast = use_fast_layers()
        if num_blocks < 1 or dim % num_blocks:
            raise ValueError(f'SpectralChannelMixing: dim {dim} is not '
                             f'divisible by num_blocks {num_blocks}')
        h, w = _pair(filter_size)
        if h < 1 or w < 1:
            raise ValueError(f'filter_size must be positive, got {(h, w)}')
        self.hidden_size = dim
        self.num_blocks = num_blocks
        self.block_size = dim // num_blocks
        self.filter_size = (h, w)
        bs, nb = self.block_size, num_blocks
        self.complex_weight_ll = nn.Parameter(torch.randn(dim, h, w) * 0.02)
        self.complex_weight_lh_1 = nn.Parameter(
            torch.randn(2, nb, bs, bs) * 0.02)
        self.complex_weight_lh_2 = nn.Parameter(
            torch.randn(2, nb, bs, bs) * 0.02)
        self.complex_weight_lh_b1 = nn.Parameter(torch.randn(2, nb, bs) * 0.02)
        self.complex_weight_lh_b2 = nn.Parameter(torch.randn(2, nb, bs) * 0.02)
        self.xfm = DTCWTForward(J=1, biort=biort, qshift=qshift)
        self.ifm = DTCWTInverse(biort=biort, qshift=qshift)
        self.highpass_tap = HighpassTap()

    def lowpass_filter(self, size: Tuple[int, int]) -> torch.Tensor:
        """The learned filter at ``size`` (h, w), bilinearly resized (exactly
        itself at the training size). Returns (C, h, w)."""
        # interpolated always: at the training size bilinear interpolation
        # is the identity, exactly, and a traced or exported graph then
        # resizes for every input size
        return F.interpolate(self.complex_weight_ll.unsqueeze(0),
                             size=tuple(size), mode='bilinear',
                             align_corners=False)[0]

    def highpass_coefficients(self, before: torch.Tensor,
                              after: torch.Tensor
                              ) -> Tuple[torch.Tensor, torch.Tensor]:
        """What ``highpass_tap`` saw -> the high-pass coefficients before
        and after the complex mixing, each (B, C, 6, h, w, 2) in
        pytorch_wavelets' layout and scale (h, w: half the even-extended
        map). The fast formulation keeps them as (B, h, w, 6, 2, C) with
        the transforms' 1/sqrt(2) folded into the mixing; this undoes that
        (views times a scalar), so both formulations give the same."""
        if not self.fast:
            return before, after
        to_ref = (0, 5, 3, 1, 2, 4)
        half = 0.5 ** 0.5
        return (before.permute(*to_ref) * half,
                after.permute(*to_ref) * math.sqrt(2.))

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), any H and W (>= 1); or tokens
        (B, H*W, C) -> (B, H*W, C) given ``hw_shape`` = (H, W) (the same
        computation on the map the tokens form, row by row)."""
        if x.dim() == 3:
            if hw_shape is None:
                raise ValueError('SpectralChannelMixing on (B, N, C) tokens '
                                 'needs hw_shape=(H, W) with H * W = N')
            B, N, C = x.shape
            H, W = hw_shape
            if H * W != N:
                raise ValueError(f'{N} tokens do not form a {H}x{W} map')
            return self.forward_nhwc(x.reshape(B, H, W, C)).reshape(B, N, C)
        if x.dim() != 4:
            raise ValueError('SpectralChannelMixing takes (B, C, H, W) maps '
                             f'or (B, N, C) tokens, got {tuple(x.shape)}')
        return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C), any H and W (>= 1)."""
        if not self.fast:
            return self._forward_reference(
                x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        B, H, W, C = x.shape
        dtype = x.dtype
        # The transforms run in fp32 (as officially), also under autocast;
        # a float64 model keeps float64. The 1/sqrt(2) of both transforms'
        # high-pass is folded into the complex maps (linear in between).
        wide = torch.float64 if dtype == torch.float64 else torch.float32
        Hp, Wp = H + H % 2, W + W % 2
        with torch.autocast(x.device.type, enabled=False):
            low, high = dtcwt_j1_forward(x.to(wide), self.xfm.h0o,
                                         self.xfm.h1o, high_scale=1.)
            weight = self.lowpass_filter((Hp, Wp))
            weight = weight[:, parity_index(Hp, x.device)][
                :, :, parity_index(Wp, x.device)]
            low = low * weight.permute(1, 2, 0).reshape(
                2, Hp // 2, 2, Wp // 2, C)
        mixed = self._mix_high(high.reshape(-1, 2 * C))
        with torch.autocast(x.device.type, enabled=False):
            mixed = mixed.to(wide).reshape(B, Hp // 2, Wp // 2, 6, 2, C)
            high = self.highpass_tap(high, mixed)
            out = dtcwt_j1_inverse(low, high, self.ifm.g0o, self.ifm.g1o,
                                   (H, W), high_scale=1.)
        return out.to(dtype)

    def _complex_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """(2, blocks, d, d) real/imag blocks -> the (2C, 2C) real matrix of
        the block-diagonal complex map on [real; imag] rows."""
        real, imag = _block_diag(weight[0]), _block_diag(weight[1])
        return torch.cat([torch.cat([real, imag], dim=1),
                          torch.cat([-imag, real], dim=1)])

    def _mix_high(self, z: torch.Tensor) -> torch.Tensor:
        """The two-layer complex block-diagonal map on (M, 2C) rows
        [real; imag] as two dense GEMMs (the off-diagonal blocks are zeros,
        so the sums are the official ones up to their order), taking and
        returning sqrt(2) x the high-pass coefficients."""
        half = 0.5 ** 0.5
        w1 = self._complex_weight(self.complex_weight_lh_1) * half
        w2 = self._complex_weight(self.complex_weight_lh_2) * half
        b2 = self.complex_weight_lh_b2.reshape(-1) * half
        z = torch.addmm(self.complex_weight_lh_b1.reshape(-1), z, w1).relu_()
        return torch.addmm(b2, z, w2)

    def _forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The official formulation on (B, C, H, W): pytorch_wavelets'
        transforms and per-block einsums."""
        B, C, H, W = x.shape
        dtype = x.dtype
        # The transforms run in fp32 (as officially), also under autocast.
        xl, high = DTCWTForwardJ1.apply(x.float(), self.xfm.h0o,
                                        self.xfm.h1o, self.xfm)
        xl = xl * self.lowpass_filter(xl.shape[-2:])

        h, w = high.shape[3:5]
        coeffs = high.permute(5, 0, 2, 3, 4, 1).reshape(
            2, B, 6, h, w, self.num_blocks, self.block_size)
        real, imag = coeffs[0], coeffs[1]
        w1, w2 = self.complex_weight_lh_1, self.complex_weight_lh_2
        b1, b2 = self.complex_weight_lh_b1, self.complex_weight_lh_b2
        real1 = F.relu(_block_mm(real, w1[0]) - _block_mm(imag, w1[1]) + b1[0])
        imag1 = F.relu(_block_mm(real, w1[1]) + _block_mm(imag, w1[0]) + b1[1])
        real2 = _block_mm(real1, w2[0]) - _block_mm(imag1, w2[1]) + b2[0]
        imag2 = _block_mm(real1, w2[1]) + _block_mm(imag1, w2[0]) + b2[1]
        mixed = torch.stack([real2, imag2], dim=-1).reshape(B, 6, h, w, C, 2)
        mixed = mixed.permute(0, 4, 1, 2, 3, 5)  # (B, C, 6, h, w, 2)
        high = self.highpass_tap(high, mixed)

        out = DTCWTInverseJ1.apply(xl, high, self.ifm.g0o, self.ifm.g1o,
                                   self.ifm)
        if out.shape[-2:] != (H, W):  # odd sizes were extended by xfm
            out = out[:, :, :H, :W]
        return out.to(dtype)
