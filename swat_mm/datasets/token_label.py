"""Token labelling (Jiang et al., "All Tokens Matter", NeurIPS 2021) for
training SVT with dense teacher labels, as the official SVT training does
(``--token-label``, ``badripatro/svt``'s ``loss/`` and the token-labelling
repository ``zihangJiang/TokenLabeling``).

Dense label format (the token-labelling repository's, e.g. its NFNet-F6
ImageNet labels): one file per training image,
``<label_root>/<image path relative to img_root, extension replaced by
.pt>`` (without ``img_root``: ``<label_root>/<class folder>/<image stem>.pt``,
the last two components of the image path, as that repository names them),
each a ``torch.save``'d tensor of shape **(2, k, h, w)**, any float dtype
(float16 in the released files):

* ``[0]``: the teacher's top-k scores (logits) at every position of an
  h x w grid covering the **whole** image;
* ``[1]``: their class indices (integers stored as floats).

Files are loaded with ``torch.load(weights_only=True)``.

Pipeline (types in the ``swat_mm`` scope), the official token-labelling
training's (``badripatro/svt`` ``main.py`` ``build_token_label`` and the
token-labelling repository's ``tlt/data/label_transforms_factory.py``)::

    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='swat_mm.LoadTokenLabel',
             label_root='data/imagenet/label_top5_train_nfnet',
             img_root='data/imagenet/train'),
        dict(type='swat_mm.TokenLabelRandAugment', policies='timm_increasing',
             num_policies=2, total_level=10, magnitude_level=9,
             magnitude_std=0.5,
             hparams=dict(pad_val=[104, 116, 124], interpolation='random')),
        dict(type='swat_mm.TokenLabelRandomResizedCrop', scale=224,
             backend='pillow', interpolation='random'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='swat_mm.MakeTokenLabel', num_classes=1000, label_size=7),
        dict(type='RandomErasing', erase_prob=0.25, mode='rand', ...),
        dict(type='PackInputs', algorithm_keys=['token_label']),
    ]

:class:`TokenLabelRandAugment` is mmpretrain's RandAugment on the whole
image (before the crop, as officially) that moves the label map with every
geometric operation it applies (rotate, shear, translate), nearest-neighbour
with zero scores outside, as the official ``random_augment_label.py``.
:class:`TokenLabelRandomResizedCrop` records its crop box, and
:class:`MakeTokenLabel` follows flips made after the crop. Colour operations
(RandAugment's, random erasing) need nothing. The official pipeline flips
first; a flip after the crop draws the same (image, label) pairs, since the
crop's and RandAugment's parameter distributions are mirror-symmetric.
:class:`MakeTokenLabel` turns the map, box and flip into
``token_label``: a float tensor (num_classes, 1 + S*S) whose column 0 is the
soft target of the class prediction (the label map averaged over the crop box
by a 1x1 RoIAlign) and whose columns 1.. are the targets of the S x S tokens
(RoIAlign of the crop box to S x S, row-major), each passed through a softmax
over classes and label smoothing ``t * (1 - s + s / K) + s / K``, exactly as
the token-labelling code does. S must equal the last stage's grid (7 at 224).
:class:`~swat_mm.models.heads.SVTClsHead` with ``with_aux=True`` uses it.
Mixup/CutMix batch augments cannot carry dense targets: leave them out (the
official token-labelling training switches them off too and mixes tokens
inside the model instead, see
:class:`~swat_mm.models.heads.svt_head.SVTTokenLabelClassifier`).
"""
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_random_params
from mmpretrain.datasets.transforms import Rotate, Shear, Translate

from swat_mm.registry import TRANSFORMS
from swat_mm.utils.checkpoint import safe_load
from .random_interpolation import (RandAugmentAndInterpolation,
                                   RandomResizedCropAndInterpolation)


def dense_label_target(topk: torch.Tensor, box: Sequence[float],
                       num_classes: int, label_size: int,
                       smoothing: float = 0.1,
                       flip_direction: Optional[str] = None) -> torch.Tensor:
    """Token-labelling targets of one crop.

    Args:
        topk: (2, k, h, w) scores and class indices over the whole image.
        box: the crop (x1, y1, x2, y2), normalised to the whole image.
        num_classes: K.
        label_size: S, the token grid.
        smoothing: label smoothing s.
        flip_direction: the flip applied after cropping ('horizontal',
            'vertical', 'diagonal' or None).

    Returns:
        (K, 1 + S*S): the class target, then the S x S token targets.
    """
    from torchvision.ops import roi_align
    if topk.dim() != 4 or topk.shape[0] != 2:
        raise ValueError(f'token label map must be (2, k, h, w), got '
                         f'{tuple(topk.shape)}')
    _, k, h, w = topk.shape
    scores = topk[0].float()
    index = topk[1].round().long()
    if index.min() < 0 or index.max() >= num_classes:
        raise ValueError(f'token label map has class indices in '
                         f'[{int(index.min())}, {int(index.max())}], outside '
                         f'[0, {num_classes})')
    dense = torch.zeros(num_classes, h, w).scatter_add_(0, index, scores)
    x1, y1, x2, y2 = (float(v) for v in box)
    boxes = torch.tensor([[0., x1 * w, y1 * h, x2 * w, y2 * h]])
    tokens = roi_align(dense[None], boxes, (label_size, label_size))[0]
    cls = roi_align(dense[None], boxes, (1, 1))[0]
    if flip_direction in ('horizontal', 'diagonal'):
        tokens = tokens.flip(-1)
    if flip_direction in ('vertical', 'diagonal'):
        tokens = tokens.flip(-2)
    target = torch.cat([cls.reshape(num_classes, 1),
                        tokens.reshape(num_classes, -1)], dim=1)
    target = F.softmax(target, dim=0)
    off = smoothing / num_classes
    return target * (1. - smoothing + off) + off


@TRANSFORMS.register_module()
class LoadTokenLabel(BaseTransform):
    """Load an image's dense label file (see the module docstring).

    Adds ``token_label_topk`` (2, k, h, w) and ``token_label_box``
    [0, 0, 1, 1] (the whole image). Put it right after the image loading.

    Args:
        label_root: folder of the label files.
        img_root: the images' root; the label file mirrors the image's path
            relative to it. Without it: ``<class folder>/<stem>.pt``.
        suffix: label file extension.
    """

    def __init__(self, label_root: str, img_root: Optional[str] = None,
                 suffix: str = '.pt') -> None:
        self.label_root = label_root
        self.img_root = img_root
        self.suffix = suffix

    def label_path(self, img_path: str) -> str:
        if self.img_root is not None:
            rel = osp.relpath(img_path, self.img_root)
        else:
            rel = osp.join(*osp.normpath(img_path).split(os.sep)[-2:])
        return osp.join(self.label_root, osp.splitext(rel)[0] + self.suffix)

    def transform(self, results: dict) -> dict:
        path = self.label_path(results['img_path'])
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'no token label file {path} for {results["img_path"]}')
        topk = safe_load(path, map_location='cpu')
        if not isinstance(topk, torch.Tensor) or topk.dim() != 4 or \
                topk.shape[0] != 2:
            raise ValueError(f'{path}: expected a (2, k, h, w) tensor of '
                             'top-k scores and class indices')
        results['token_label_topk'] = topk
        results['token_label_box'] = np.array([0., 0., 1., 1.])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(label_root={self.label_root!r}, '
                f'img_root={self.img_root!r})')


def _label_box_is_whole(results: dict) -> bool:
    box = results.get('token_label_box')
    return box is not None and np.allclose(box, [0., 0., 1., 1.])


@TRANSFORMS.register_module()
class TokenLabelRandomResizedCrop(RandomResizedCropAndInterpolation):
    """mmpretrain's ``RandomResizedCrop`` that also narrows
    ``token_label_box`` to the crop (same arguments), and accepts
    ``interpolation='random'``: bilinear or bicubic with equal chance per
    image, as timm's ``RandomResizedCropAndInterpolation`` that the official
    token-labelling training uses (``main.py`` sets
    ``train_interpolation = 'random'`` there)."""

    def transform(self, results: dict) -> dict:
        img_h, img_w = results['img'].shape[:2]
        offset_h, offset_w, target_h, target_w = \
            self.crop_and_resize(results)
        if 'token_label_box' in results:
            x1, y1, x2, y2 = results['token_label_box']
            bw, bh = x2 - x1, y2 - y1
            results['token_label_box'] = np.array([
                x1 + bw * offset_w / img_w, y1 + bh * offset_h / img_h,
                x1 + bw * (offset_w + target_w) / img_w,
                y1 + bh * (offset_h + target_h) / img_h
            ])
        return results


def image_affine(op: BaseTransform, img_hw: Tuple[int, int]
                 ) -> Optional[np.ndarray]:
    """The 2 x 3 pixel-coordinate matrix (source -> output, cv2's
    convention) that mmpretrain's geometric RandAugment operation ``op``
    has just applied to an (H, W) image, read from its cached random draws
    (call it inside ``cache_random_params(op)``, after ``op``); None when
    the operation was skipped. Built as mmcv's ``imrotate``, ``imshear``
    and ``imtranslate`` build theirs."""
    if op.random_disable():
        return None
    fixed = op.angle if isinstance(op, Rotate) else op.magnitude
    value = op.random_negative(fixed if fixed is not None else
                               op.random_magnitude())
    h, w = img_hw
    if isinstance(op, Rotate):
        center = op.center if op.center is not None else \
            ((w - 1) * 0.5, (h - 1) * 0.5)
        return cv2.getRotationMatrix2D(center, -value, op.scale)
    if isinstance(op, Shear):
        return np.array([[1., value, 0.], [0., 1., 0.]]) \
            if op.direction == 'horizontal' else \
            np.array([[1., 0., 0.], [value, 1., 0.]])
    if op.direction == 'horizontal':  # Translate, offset relative
        return np.array([[1., 0., value * w], [0., 1., 0.]])
    return np.array([[1., 0., 0.], [0., 1., value * h]])


def warp_label_map(topk: torch.Tensor, matrix: np.ndarray,
                   img_hw: Tuple[int, int]) -> torch.Tensor:
    """Move a (2, k, h, w) label map covering an (H, W) image with the
    image's affine ``matrix`` (2 x 3, pixel coordinates, source -> output).

    The matrix is conjugated to the label grid (cell centres sit at image
    pixel ``(j + 0.5) * W / w - 0.5``), so the map follows the image whatever
    the two aspect ratios; each cell takes the nearest source cell, cells
    from outside the map get zero scores (the official ``affine_label``:
    order 0, constant 0 for scores).
    """
    _, k, h, w = topk.shape
    H, W = img_hw
    to_img = np.array([[W / w, 0., 0.5 * W / w - 0.5],
                       [0., H / h, 0.5 * H / h - 0.5], [0., 0., 1.]])
    forward = np.vstack([matrix, [0., 0., 1.]])
    inverse = np.linalg.inv(to_img) @ np.linalg.inv(forward) @ to_img
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    pts = np.stack([cols.ravel(), rows.ravel(), np.ones(h * w)])
    src = inverse @ pts  # source (x, y) of every output cell
    sx = np.floor(src[0] + 0.5).astype(np.int64)
    sy = np.floor(src[1] + 0.5).astype(np.int64)
    inside = torch.from_numpy((sx >= 0) & (sx < w) & (sy >= 0) & (sy < h))
    flat = torch.from_numpy(np.clip(sy, 0, h - 1) * w + np.clip(sx, 0, w - 1))
    out = topk.reshape(2, k, h * w)[:, :, flat].clone()
    out[0][:, ~inside] = 0
    return out.reshape(2, k, h, w)


@TRANSFORMS.register_module()
class TokenLabelRandAugment(RandAugmentAndInterpolation):
    """mmpretrain's ``RandAugment`` (same arguments) whose geometric
    operations (``Rotate``, ``Shear``, ``Translate``) also move the dense
    label map, as the official token-labelling RandAugment
    (``tlt/data/random_augment_label.py``) does; colour operations leave it.

    Put it after :class:`LoadTokenLabel` and before the crop and flip (the
    official order): the map must still cover the whole image.
    ``hparams=dict(interpolation='random')`` draws bilinear or bicubic per
    operation, as the official operations do when the training
    interpolation is ``'random'`` (the token-labelling path).

    Deviation from the official: its label operations apply the image's
    parameters in label-grid units (a 30 degree rotation of the 15 x 15 map
    for any image), which moves the map off the image when the image is not
    square; here the image's matrix is conjugated to the grid, so the map
    stays on the image (see :func:`warp_label_map`).
    """

    def transform(self, results: dict) -> dict:
        if 'token_label_topk' not in results:
            raise KeyError('TokenLabelRandAugment needs swat_mm.'
                           'LoadTokenLabel before it')
        if not _label_box_is_whole(results) or results.get('flip', False):
            raise ValueError(
                'TokenLabelRandAugment must come before the crop and the '
                'flip (the official order): the label map has to cover the '
                'whole image')
        for i in self.random_policy_indices():
            op = self.transforms[i]
            self.prepare(op)
            if not isinstance(op, (Rotate, Shear, Translate)):
                results = op(results)
                continue
            img_hw = results['img'].shape[:2]
            with cache_random_params(op):
                results = op(results)
                matrix = image_affine(op, img_hw)
            if matrix is not None:
                results['token_label_topk'] = warp_label_map(
                    results['token_label_topk'], matrix, img_hw)
        return results


@TRANSFORMS.register_module()
class MakeTokenLabel(BaseTransform):
    """``token_label_topk``, ``token_label_box`` and the flip -> the
    (num_classes, 1 + S*S) ``token_label`` (see
    :func:`dense_label_target`); put it after the crops and flips, and pack
    it with ``PackInputs(algorithm_keys=['token_label'])``.

    Args:
        num_classes: K.
        label_size: S, the last stage's token grid (7 at 224).
        smoothing: label smoothing (0.1 in the official recipe).
    """

    def __init__(self, num_classes: int, label_size: int = 7,
                 smoothing: float = 0.1) -> None:
        if label_size < 1:
            raise ValueError(f'label_size must be >= 1, got {label_size}')
        self.num_classes = num_classes
        self.label_size = label_size
        self.smoothing = smoothing

    def transform(self, results: dict) -> dict:
        direction = results.get('flip_direction') if results.get(
            'flip', False) else None
        results['token_label'] = dense_label_target(
            results.pop('token_label_topk'), results.pop('token_label_box'),
            self.num_classes, self.label_size, self.smoothing, direction)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'label_size={self.label_size}, '
                f'smoothing={self.smoothing})')
