"""timm's ``interpolation='random'`` (the official SWAT and SVT token-
labelling runs): swat_mm's crop and RandAugment draw bilinear or bicubic
per image / per operation, and with a fixed interpolation they are
mmpretrain's transforms exactly."""
import numpy as np
from mmengine.registry import DefaultScope
from mmpretrain.registry import TRANSFORMS

import swat_mm  # noqa: F401  (registers the transforms)

IMG = np.random.RandomState(0).randint(0, 255, (50, 70, 3)).astype(np.uint8)


def _build(cfg: dict):
    # whatever default scope an earlier test left (e.g. mmseg's)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return TRANSFORMS.build(cfg)


def _run(cfg: dict, seed: int) -> np.ndarray:
    transform = _build(cfg)
    np.random.seed(seed)
    return transform(dict(img=IMG.copy()))['img']


def test_fixed_interpolation_is_mmpretrains_crop():
    for name in ('bilinear', 'bicubic'):
        for seed in range(3):
            ours = _run(dict(type='swat_mm.RandomResizedCropAndInterpolation',
                             scale=32, backend='pillow', interpolation=name),
                        seed)
            theirs = _run(dict(type='RandomResizedCrop', scale=32,
                               backend='pillow', interpolation=name), seed)
            assert np.array_equal(ours, theirs)


def test_random_crop_interpolation_draws_both():
    used = set()
    for seed in range(12):
        random = _run(dict(type='swat_mm.RandomResizedCropAndInterpolation',
                           scale=32, backend='pillow',
                           interpolation='random'), seed)
        match = [name for name in ('bilinear', 'bicubic') if np.array_equal(
            random, _run(dict(type='RandomResizedCrop', scale=32,
                              backend='pillow', interpolation=name), seed))]
        assert len(match) == 1
        used.add(match[0])
    assert used == {'bilinear', 'bicubic'}


def test_random_randaugment_interpolation_draws_both():
    aug = _build(dict(
        type='swat_mm.RandAugmentAndInterpolation',
        policies=[dict(type='Rotate', magnitude_range=(0, 30))],
        num_policies=1, magnitude_level=9, total_level=10,
        hparams=dict(pad_val=0, interpolation='random')))
    rotate = aug.transforms[0]
    seen = set()
    for seed in range(16):
        np.random.seed(seed)
        aug(dict(img=IMG.copy()))
        seen.add(rotate.interpolation)
    assert seen == {'bilinear', 'bicubic'}
    fixed = _build(dict(
        type='swat_mm.RandAugmentAndInterpolation',
        policies=[dict(type='Rotate', magnitude_range=(0, 30))],
        num_policies=1, magnitude_level=9, total_level=10,
        hparams=dict(pad_val=0, interpolation='bicubic')))
    plain = _build(dict(
        type='RandAugment',
        policies=[dict(type='Rotate', magnitude_range=(0, 30))],
        num_policies=1, magnitude_level=9, total_level=10,
        hparams=dict(pad_val=0, interpolation='bicubic')))
    for seed in range(3):
        np.random.seed(seed)
        a = fixed(dict(img=IMG.copy()))['img']
        np.random.seed(seed)
        b = plain(dict(img=IMG.copy()))['img']
        assert np.array_equal(a, b)
