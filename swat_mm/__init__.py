"""swat_mm: STViT, SVT and SWAT backbones for OpenMMLab.

``import swat_mm`` (or ``custom_imports=dict(imports=['swat_mm'])`` in a config)
registers every module in the ``swat_mm`` registry scope, a child of
mmengine's root registries, so mmpretrain, mmdet and mmseg configs build them as
``type='swat_mm.STViT'``. It also installs the checkpoint loader that lets
mmengine resume on torch >= 2.6 without ``weights_only=False``, and makes
mmengine write local files (checkpoints) atomically, and makes mmengine's
non-strict model loads fail when a swat_mm backbone or head does not fit
(``swat_mm.utils.load_guard``). It registers the classification models
by name with mmpretrain's ``ModelHub`` (``mmpretrain.list_models('*stvit*')``,
``mmpretrain.get_model('stvit-small_in1k', pretrained=CKPT)``) and the
``swat_mm::`` config prefix with mmengine (``swat_mm.utils.model_index``),
and makes mmengine format a config's text once rather than at every use
(``swat_mm.utils.config_text``).
"""
from .version import __version__
from .utils.checkpoint import install_safe_checkpoint_loader
from .utils.config_text import install_config_text_cache
from .utils.load_guard import install_strict_part_loading
from .utils.model_index import register_at_import
from . import datasets, engine, models  # noqa: F401  (registers modules)

install_safe_checkpoint_loader()
engine.install_atomic_local_backend()
install_strict_part_loading()
install_config_text_cache()
register_at_import()

__all__ = ['__version__']
