"""Test fixtures of swat_mm (as ``mmdet.testing`` is mmdet's): the toy
datasets.

* :mod:`.toy_data` writes small ImageNet / COCO / ADE20K datasets in the
  real on-disk formats and defines their classes (``tools/make_toy_data.py``
  loads it by path, without this package's imports);
* :mod:`.toy_datasets` registers the dataset types the toy configs name,
  ``swat_mm.ToyImageNet`` and ``swat_mm.ToyCocoDataset``.

``import swat_mm`` does not import this package: the ``swat_mm`` dataset
registry does, the first time a config asks it for a type.
"""
from .toy_data import (ADE_CLASSES, COCO_CLASSES, IMAGENET_CLASSES,
                       make_toy_data)
from .toy_datasets import ToyCocoDataset, ToyImageNet

__all__ = ['ADE_CLASSES', 'COCO_CLASSES', 'IMAGENET_CLASSES',
           'ToyCocoDataset', 'ToyImageNet', 'make_toy_data']
