"""The 3x3 neighbourhood of every cell of a grid, and its adjoint.

STViT's super-token attention relates each pixel to the nine super tokens
around its own grid cell. The official code gathers those nine with a
convolution by a frozen identity kernel (``unfold``) and adds values back
to the tokens they came from with the transposed convolution (``fold``).
Two formulations of that pair, with the same interface:

* :func:`unfold3x3` / :func:`fold3x3`, the reference: ``F.unfold`` and
  ``F.fold`` with a 3x3 kernel and zero padding (the identity-kernel
  convolutions without their kernel);
* :func:`gather3x3` / :func:`scatter3x3`, the fast one: nine shifted
  windows of the zero-padded channels-last map, read or accumulated whole
  pixels at a time (``F.unfold`` walks the map channel by channel). In
  training, each is the other's backward (:class:`_Gather3x3`,
  :class:`_Scatter3x3`) instead of autograd through nine windows, which
  builds nine zero-filled gradients of the whole map and adds them up.

Shapes: a gather takes a (B, C, h, w) map and returns (B, h*w, 9, C), the
nine neighbours in row-major order (``F.unfold``'s); a scatter takes
(B, h*w, 9, C) and returns the (B, h, w, C) sums, i.e. a channels-last map
viewed as NHWC.
"""
from typing import Callable, Tuple

import torch
import torch.nn.functional as F

__all__ = ['unfold3x3', 'fold3x3', 'gather3x3', 'scatter3x3',
           'neighbourhood_ops', 'pop_identity_kernels']


def unfold3x3(x: torch.Tensor, training: bool = True) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, 9, C) with ``F.unfold`` (reference;
    ``training`` is the fast pair's and changes nothing here)."""
    B, C, h, w = x.shape
    return F.unfold(x, 3, padding=1).reshape(B, C, 9, h * w).permute(
        0, 3, 2, 1)


def fold3x3(x: torch.Tensor, size: Tuple[int, int],
            training: bool = True) -> torch.Tensor:
    """(B, h*w, 9, C) -> (B, h, w, C) with ``F.fold`` (reference)."""
    B, N, _, C = x.shape
    out = F.fold(x.permute(0, 3, 2, 1).reshape(B, C * 9, N), size, 3,
                 padding=1)
    return out.permute(0, 2, 3, 1)


def _windows(x: torch.Tensor) -> torch.Tensor:
    """(B, h, w, C) -> (B, h*w, 9, C): nine shifted windows of the
    zero-padded map."""
    B, h, w, C = x.shape
    padded = F.pad(x, (0, 0, 1, 1, 1, 1))
    return torch.stack([padded[:, i:i + h, j:j + w]
                        for i in range(3) for j in range(3)],
                       3).reshape(B, h * w, 9, C)


def _accumulate(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h*w, 9, C) -> (B, h, w, C): the adjoint of :func:`_windows`."""
    B, _, _, C = x.shape
    x = x.reshape(B, h, w, 9, C)
    # neighbour (i, j) of cell (y, x) is cell (y + i - 1, x + j - 1): each
    # neighbour's values shifted back there (padded on one side, cropped on
    # the other), and summed. Sums of whole maps, not additions into slices
    # of one: an exported graph then holds no scatter per neighbour.
    out = 0
    for k in range(9):
        i, j = divmod(k, 3)
        out = out + F.pad(x[:, :, :, k], (0, 0, j - 1, 1 - j, i - 1, 1 - i))
    return out


class _Gather3x3(torch.autograd.Function):
    """:func:`_windows` whose backward is :func:`_accumulate`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.size = x.shape[1:3]
        return _windows(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _Scatter3x3.apply(grad, *ctx.size)


class _Scatter3x3(torch.autograd.Function):
    """:func:`_accumulate` whose backward is :func:`_windows`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return _accumulate(x, h, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _Gather3x3.apply(grad), None, None


def _own_backward(x: torch.Tensor, training: bool) -> bool:
    # Training only: elsewhere (gradients of an eval model, e.g. for
    # class-activation maps, or an exporter tracing with gradients on)
    # autograd through the windows is right too, and the exporters cannot
    # record an autograd Function.
    return training and torch.is_grad_enabled() and x.requires_grad


def gather3x3(x: torch.Tensor, training: bool = True) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, 9, C) from shifted windows (fast); ``x``
    is best channels-last, whose NHWC view is then free. ``training``: the
    module's mode, which allows the custom backward."""
    x = x.permute(0, 2, 3, 1)
    if _own_backward(x, training):
        return _Gather3x3.apply(x)
    return _windows(x)


def scatter3x3(x: torch.Tensor, size: Tuple[int, int],
               training: bool = True) -> torch.Tensor:
    """(B, h*w, 9, C) -> (B, h, w, C) by accumulating shifted windows
    (fast); ``training`` as for :func:`gather3x3`."""
    if _own_backward(x, training):
        return _Scatter3x3.apply(x, *size)
    return _accumulate(x, *size)


def neighbourhood_ops(fast: bool) -> Tuple[Callable, Callable]:
    """The (gather, scatter) pair of one formulation."""
    return (gather3x3, scatter3x3) if fast else (unfold3x3, fold3x3)


def pop_identity_kernels(state_dict: dict, prefix: str,
                         names: Tuple[str, ...]) -> None:
    """Drop the official STViT's frozen identity kernels
    (``{prefix}{name}.weights``, (9, 1, 3, 3)) from a state dict being
    loaded: they carry no learned information, and the layers here have
    none. Anything but that kernel is refused (not an STViT checkpoint)."""
    eye = torch.eye(9).reshape(9, 1, 3, 3)
    for name in names:
        key = f'{prefix}{name}.weights'
        if key in state_dict:
            value = state_dict.pop(key)
            if value.shape != eye.shape or not torch.equal(
                    value.detach().cpu().float(), eye):
                raise ValueError(
                    f'{key}: expected the frozen 3x3 identity kernel of the '
                    'official STViT, got other values; this is not an STViT '
                    'checkpoint')
