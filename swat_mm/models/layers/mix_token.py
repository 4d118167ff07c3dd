"""MixToken (Jiang et al., "All Tokens Matter: Token Labeling for Training
Better Vision Transformers", NeurIPS 2021), as the official SVT model
(``badripatro/svt``, ``svt.py``: ``SVT.forward`` and ``rand_bbox`` with
``token_label=True``) and its loss (``loss/cross_entropy.py``:
``TokenLabelCrossEntropy``) apply it in training:

1. a box is drawn on the **last stage's** token grid (h x w): the kept
   fraction ``lam ~ Beta(beta, beta)``, the box's sides
   ``int(h * sqrt(1 - lam))`` and ``int(w * sqrt(1 - lam))``, its centre
   uniform over the grid, the box clipped to it (see
   :func:`sample_mix_box`);
2. the stem's tokens (the first stage's grid, ``scale`` = 8 times finer in
   SVT) inside the box scaled by ``scale`` are replaced by those of the
   batch in reverse order (:func:`mix_tokens`);
3. the auxiliary head's token outputs inside the box are swapped back the
   same way (the operation is its own inverse), so that every token output
   is trained on the dense label of the image its stem token came from;
4. the class target becomes ``lam' * t + (1 - lam') * t.flip(0)`` with
   ``lam' = 1 - box area / (h * w)``, the kept fraction after clipping
   (:func:`mix_class_target`); the dense targets stay as they are.

Boxes are ``(top, bottom, left, right)`` with exclusive ends, in tokens. The
official code names them ``(bbx1, bby1, bbx2, bby2)`` with ``bbx`` indexing
rows (its ``W`` is the map's first spatial size) and ``bby`` columns.
"""
import math
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch


class MixBox(NamedTuple):
    """A box on a token grid: rows ``top:bottom``, columns ``left:right``
    (exclusive ends)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    def scaled(self, scale: int) -> 'MixBox':
        """The same box on a grid ``scale`` times finer."""
        return MixBox(*(v * scale for v in self))


def sample_mix_box(grid: Tuple[int, int], beta: float = 1.0,
                   lam: Optional[float] = None) -> MixBox:
    """Draw MixToken's box on an (h, w) token grid with NumPy's global
    generator, in the official order (``lam``, then the centre's row, then
    its column), so that the official model seeded alike draws the same box.

    Args:
        grid: (h, w), the last stage's token grid.
        beta: the Beta(beta, beta) of the kept fraction (1.0 officially).
        lam: the kept fraction instead of drawing it.

    Returns:
        The box, clipped to the grid (possibly empty).
    """
    h, w = grid
    if lam is None:
        lam = np.random.beta(beta, beta)
    cut = math.sqrt(1. - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = np.random.randint(h), np.random.randint(w)
    return MixBox(int(np.clip(cy - cut_h // 2, 0, h)),
                  int(np.clip(cy + cut_h // 2, 0, h)),
                  int(np.clip(cx - cut_w // 2, 0, w)),
                  int(np.clip(cx + cut_w // 2, 0, w)))


def mix_tokens(x: torch.Tensor, box: MixBox) -> torch.Tensor:
    """Tokens inside ``box`` taken from the batch in reverse order.

    Args:
        x: (B, H, W, C) tokens as a map.
        box: on the (H, W) grid.

    Returns:
        (B, H, W, C), a new tensor; applying it twice gives ``x`` back.
    """
    if x.dim() != 4:
        raise ValueError(f'mix_tokens expects (B, H, W, C), got '
                         f'{tuple(x.shape)}')
    H, W = x.shape[1:3]
    rows = torch.arange(H, device=x.device)
    cols = torch.arange(W, device=x.device)
    inside = ((rows >= box.top) & (rows < box.bottom))[:, None] & \
        ((cols >= box.left) & (cols < box.right))[None, :]
    return torch.where(inside[None, :, :, None], x.flip(0), x)


def unmix_token_outputs(out: torch.Tensor, box: MixBox,
                        grid: Tuple[int, int]) -> torch.Tensor:
    """Undo MixToken on per-token outputs: (B, h*w, K) in row-major token
    order -> (B, h*w, K), the outputs inside ``box`` swapped back with the
    reversed batch."""
    B, N, K = out.shape
    if N != grid[0] * grid[1]:
        raise ValueError(f'{N} token outputs do not fill the {grid} grid')
    return mix_tokens(out.reshape(B, grid[0], grid[1], K), box).reshape(
        B, N, K)


def mix_class_target(target: torch.Tensor, box: MixBox,
                     num_tokens: int) -> torch.Tensor:
    """The class target of a MixToken batch: (B, K) soft targets ->
    ``lam * t + (1 - lam) * t.flip(0)``, ``lam = 1 - area / num_tokens``
    (unchanged for an empty box)."""
    lam = 1. - box.area / num_tokens
    if lam >= 1.:
        return target
    return lam * target + (1. - lam) * target.flip(0)
