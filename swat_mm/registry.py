"""The ``swat_mm`` registry scope.

``MODELS`` is a child of mmengine's root ``MODELS`` (and ``TRANSFORMS`` of
its root ``TRANSFORMS``: the token-labelling pipeline steps; ``DATASETS`` of
its root ``DATASETS``: the toy configs' dataset types). mmpretrain's,
mmdet's and mmseg's registries are children of that root too, so any of
them resolves ``type='swat_mm.STViT'`` by walking to the root and down into
this scope, and ``locations`` lets mmengine import this package on its own
when it meets the scope in a config.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='swat_mm',
    locations=['swat_mm.models'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='swat_mm',
    locations=['swat_mm.datasets'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='swat_mm',
    locations=['swat_mm.engine'])
# the toy datasets are test fixtures: imported when a config first names one,
# never by ``import swat_mm``
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='swat_mm',
    locations=['swat_mm.testing'])
