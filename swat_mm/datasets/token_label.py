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

Pipeline (types in the ``swat_mm`` scope)::

    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='swat_mm.LoadTokenLabel', label_root='data/imagenet/label_top5_train_nfnet',
             img_root='data/imagenet/train'),
        dict(type='swat_mm.TokenLabelRandomResizedCrop', scale=224),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='swat_mm.MakeTokenLabel', num_classes=1000, label_size=7),
        dict(type='PackInputs', algorithm_keys=['token_label']),
    ]

:class:`TokenLabelRandomResizedCrop` records its crop box (and only crops
and flips are followed: colour augmentations may be added anywhere,
geometric ones such as RandAugment's shear/translate/rotate are not applied
to the label map). :class:`MakeTokenLabel` turns the map, box and flip into
``token_label``: a float tensor (num_classes, 1 + S*S) whose column 0 is the
soft target of the class prediction (the label map averaged over the crop box
by a 1x1 RoIAlign) and whose columns 1.. are the targets of the S x S tokens
(RoIAlign of the crop box to S x S, row-major), each passed through a softmax
over classes and label smoothing ``t * (1 - s + s / K) + s / K``, exactly as
the token-labelling code does. S must equal the last stage's grid (7 at 224).
:class:`~swat_mm.models.heads.SVTClsHead` with ``with_aux=True`` uses it.
Mixup/CutMix batch augments cannot carry dense targets: leave them out (the
official token-labelling training switches them off too).
"""
import os
import os.path as osp
from typing import Optional, Sequence

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import RandomResizedCrop

from swat_mm.registry import TRANSFORMS
from swat_mm.utils.checkpoint import safe_load


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


@TRANSFORMS.register_module()
class TokenLabelRandomResizedCrop(RandomResizedCrop):
    """mmpretrain's ``RandomResizedCrop`` that also narrows
    ``token_label_box`` to the crop (same arguments)."""

    def transform(self, results: dict) -> dict:
        img = results['img']
        img_h, img_w = img.shape[:2]
        offset_h, offset_w, target_h, target_w = self.rand_crop_params(img)
        img = mmcv.imcrop(
            img,
            bboxes=np.array([
                offset_w, offset_h, offset_w + target_w - 1,
                offset_h + target_h - 1
            ]))
        results['img'] = mmcv.imresize(
            img, tuple(self.scale[::-1]), interpolation=self.interpolation,
            backend=self.backend)
        results['img_shape'] = results['img'].shape
        if 'token_label_box' in results:
            x1, y1, x2, y2 = results['token_label_box']
            bw, bh = x2 - x1, y2 - y1
            results['token_label_box'] = np.array([
                x1 + bw * offset_w / img_w, y1 + bh * offset_h / img_h,
                x1 + bw * (offset_w + target_w) / img_w,
                y1 + bh * (offset_h + target_h) / img_h
            ])
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
