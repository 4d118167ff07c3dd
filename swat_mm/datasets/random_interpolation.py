"""timm's ``interpolation='random'`` for mmpretrain's crop and RandAugment.

timm's training transforms, which the official SWAT and SVT (token
labelling) runs use with ``train_interpolation='random'``, draw bilinear or
bicubic with equal chance for every crop
(``RandomResizedCropAndInterpolation``) and for every geometric RandAugment
operation (``rand_augment_transform`` without a fixed interpolation).
mmpretrain's transforms take one fixed interpolation. The two transforms
here are mmpretrain's, with the same arguments, that also accept
``'random'``; with a fixed interpolation they are mmpretrain's exactly.
The draw uses NumPy's generator, which mmengine seeds per worker.
"""
from typing import Tuple

import mmcv
import numpy as np
from mmpretrain.datasets.transforms import RandAugment, RandomResizedCrop

from swat_mm.registry import TRANSFORMS

#: what timm's ``'random'`` chooses from
RANDOM_INTERPOLATIONS = ('bilinear', 'bicubic')


def interpolation_choices(interpolation: str) -> Tuple[str, ...]:
    """``RANDOM_INTERPOLATIONS`` for ``'random'``, else the one given."""
    return RANDOM_INTERPOLATIONS if interpolation == 'random' \
        else (interpolation, )


def pick_interpolation(choices: Tuple[str, ...]) -> str:
    """One of ``choices``, uniformly."""
    return choices[np.random.randint(len(choices))] if len(choices) > 1 \
        else choices[0]


@TRANSFORMS.register_module()
class RandomResizedCropAndInterpolation(RandomResizedCrop):
    """mmpretrain's ``RandomResizedCrop`` that accepts
    ``interpolation='random'`` (bilinear or bicubic per image, as timm's
    transform of that name)."""

    def __init__(self, *args, interpolation: str = 'bilinear',
                 **kwargs) -> None:
        self.interpolations = interpolation_choices(interpolation)
        super().__init__(*args, interpolation=self.interpolations[0],
                         **kwargs)

    def crop_and_resize(self, results: dict) -> Tuple[int, int, int, int]:
        """Crop and resize ``results['img']`` in place; returns the crop
        (offset_h, offset_w, height, width) in the input image."""
        img = results['img']
        offset_h, offset_w, target_h, target_w = self.rand_crop_params(img)
        img = mmcv.imcrop(img, bboxes=np.array([
            offset_w, offset_h, offset_w + target_w - 1,
            offset_h + target_h - 1]))
        results['img'] = mmcv.imresize(
            img, tuple(self.scale[::-1]),
            interpolation=pick_interpolation(self.interpolations),
            backend=self.backend)
        results['img_shape'] = results['img'].shape
        return offset_h, offset_w, target_h, target_w

    def transform(self, results: dict) -> dict:
        self.crop_and_resize(results)
        return results


@TRANSFORMS.register_module()
class RandAugmentAndInterpolation(RandAugment):
    """mmpretrain's ``RandAugment`` that accepts
    ``hparams=dict(interpolation='random')``: every operation with an
    interpolation (rotate, shear, translate) draws bilinear or bicubic each
    time it runs, as timm's RandAugment does when no interpolation is
    fixed."""

    def __init__(self, *args, hparams: dict = dict(pad_val=128),
                 **kwargs) -> None:
        hparams = dict(hparams)
        self.interpolations = interpolation_choices(
            hparams.get('interpolation', 'bilinear'))
        hparams['interpolation'] = self.interpolations[0]
        super().__init__(*args, hparams=hparams, **kwargs)

    def prepare(self, op) -> None:
        """Give ``op`` this run's interpolation."""
        if len(self.interpolations) > 1 and hasattr(op, 'interpolation'):
            op.interpolation = pick_interpolation(self.interpolations)

    def transform(self, results: dict) -> dict:
        for i in self.random_policy_indices():
            op = self.transforms[i]
            self.prepare(op)
            results = op(results)
        return results
