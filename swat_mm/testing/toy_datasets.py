"""The dataset types of the toy configs: the toolboxes' own ImageNet and COCO
readers, with the toy classes as their ``METAINFO``.

A toy config names them as ``type='swat_mm.ToyImageNet'`` /
``type='swat_mm.ToyCocoDataset'``; the ``swat_mm`` dataset registry imports
this package when a config first asks for one, so the classes come from
:mod:`.toy_data`, the generator that writes the data, and no config repeats
them. The toy ADE20K needs no type of its own: its label values are ADE20K's,
read by mmseg's ``ADE20KDataset`` unchanged.
"""
from mmdet.datasets import CocoDataset
from mmpretrain.datasets import ImageNet

from swat_mm.registry import DATASETS

from .toy_data import COCO_CLASSES, IMAGENET_CLASSES


@DATASETS.register_module()
class ToyImageNet(ImageNet):
    """mmpretrain's ``ImageNet`` on the toy ImageNet (``split``, ``meta/``
    and folder layout as the real one) with its five classes."""

    METAINFO = dict(classes=IMAGENET_CLASSES)


@DATASETS.register_module()
class ToyCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` on the toy COCO with its four classes, drawn
    in the colours COCO's first four classes get."""

    METAINFO = dict(
        classes=COCO_CLASSES,
        palette=CocoDataset.METAINFO['palette'][:len(COCO_CLASSES)])
