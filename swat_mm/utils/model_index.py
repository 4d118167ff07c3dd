"""Models by name: swat_mm's model index, its shipped configs, and their
registration with mmpretrain and mmengine.

The model index (``model-index.yml``, importing one ``metafile.yml`` per
family and task, in the format of OpenMMLab's model indexes) and the
``configs/`` and ``tools/`` it refers to live in one of two places:

* ``swat_mm/.mim/`` in an installed wheel (``setup.py`` copies them there,
  as mmpretrain, mmdet and mmseg do), or the links an editable install makes
  there;
* the root of a source checkout, one level above the ``swat_mm`` package
  (a checkout on ``PYTHONPATH`` with nothing installed).

``import swat_mm`` calls :func:`register_model_index`, which registers the
classification models with mmpretrain's ``ModelHub`` (so
``mmpretrain.list_models('*stvit*')`` lists them and
``mmpretrain.get_model('stvit-small_in1k', pretrained=CKPT)`` builds one),
and :func:`register_mim_package`, which lets mmengine resolve
``swat_mm::cls/stvit/stvit-small_8xb128_in1k.py`` in
``mmengine.hub.get_config`` and in a config's ``_base_`` when swat_mm is
installed from a wheel. The detection and segmentation metafiles are in the
index (for ``swat_mm::`` lookups and model-index tools) but not registered
with mmpretrain, whose ``get_model`` builds classifiers only.
"""
import functools
import os.path as osp
import warnings
from typing import List, Optional

#: where the index and the configs are, relative to the package directory
MIM_DIR = '.mim'
MODEL_INDEX = 'model-index.yml'
#: metafiles under this prefix hold mmpretrain classification models
CLS_PREFIX = 'configs/cls/'
#: mmengine's ``package::path`` prefix for swat_mm's configs
PREFIX = 'swat_mm::'

_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
_registered: Optional[List[str]] = None


def mim_root() -> str:
    """The directory holding ``model-index.yml``, ``configs/`` and
    ``tools/``: ``swat_mm/.mim`` when it has them (a wheel, an editable
    install), else the source checkout around the package.

    Raises:
        FileNotFoundError: neither exists (swat_mm installed by some other
            means than its wheel or a checkout), naming both places.
    """
    candidates = [osp.join(_PACKAGE_DIR, MIM_DIR), osp.dirname(_PACKAGE_DIR)]
    for root in candidates:
        if osp.isfile(osp.join(root, MODEL_INDEX)) and \
                osp.isdir(osp.join(root, 'configs')):
            return root
    raise FileNotFoundError(
        f'swat_mm\'s {MODEL_INDEX} and configs/ are neither in '
        f'{candidates[0]} (a wheel built by `pip wheel` from the swat_mm '
        f'repository puts them there) nor in {candidates[1]} (a source '
        'checkout); reinstall swat_mm from its repository or its wheel')


def config_path(name: str) -> str:
    """The absolute path of a shipped config.

    Args:
        name: its path under ``configs/``, e.g.
            ``'cls/stvit/stvit-small_8xb128_in1k.py'`` (a leading
            ``configs/`` or a missing ``.py`` are accepted).

    Raises:
        FileNotFoundError: no such config, naming the configs directory.
    """
    rel = name[len('configs/'):] if name.startswith('configs/') else name
    if not rel.endswith('.py'):
        rel += '.py'
    configs = osp.join(mim_root(), 'configs')
    path = osp.join(configs, rel)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'swat_mm ships no config {rel!r} (looked in {configs}); the '
            'names are paths under configs/, e.g. '
            "'cls/stvit/stvit-small_8xb128_in1k.py'")
    return path


def metafiles(root: Optional[str] = None) -> List[str]:
    """The metafiles ``model-index.yml`` imports, as paths relative to
    ``root`` (default :func:`mim_root`), in its order."""
    from mmengine.fileio import load
    root = mim_root() if root is None else root
    return list(load(osp.join(root, MODEL_INDEX))['Import'])


def register_model_index() -> List[str]:
    """Register swat_mm's classification models with mmpretrain's
    ``ModelHub``, once per process.

    Every metafile under ``configs/cls/`` in ``model-index.yml`` is
    registered with its config paths resolved against :func:`mim_root`.

    Returns:
        The names registered (lower case, as ``ModelHub`` keeps them); an
        empty list when mmpretrain is not installed, since there is then no
        hub to list models in (swat_mm's mmdet and mmseg use do not need
        it).
    """
    global _registered
    if _registered is not None:
        return list(_registered)
    try:
        from mmpretrain.apis.model import ModelHub
    except ImportError:
        return []
    from mmengine.fileio import load
    root = mim_root()
    names = []
    for meta in metafiles(root):
        if not meta.startswith(CLS_PREFIX):
            continue
        path = osp.join(root, meta)
        ModelHub.register_model_index(path, config_prefix=root)
        names += [m['Name'].lower() for m in load(path)['Models']]
    _registered = names
    return list(names)


def register_at_import() -> None:
    """What ``import swat_mm`` runs: :func:`register_model_index` and
    :func:`register_mim_package`. A missing index does not stop the import
    (the backbones work without it); it is reported as a warning naming
    where it was looked for."""
    try:
        register_model_index()
    except FileNotFoundError as e:
        warnings.warn(f'{e}. mmpretrain.list_models will not list swat_mm '
                      'models.')
    register_mim_package()


def register_mim_package() -> None:
    """Let mmengine resolve ``swat_mm::<path under configs/>``, once per
    process.

    * ``mmengine.hub.get_config('swat_mm::cls/stvit/...py')``: mmengine
      accepts ``package::`` only for the packages in its ``MODULE2PACKAGE``
      table and finds the file in the installed package's ``.mim/``; this
      adds swat_mm to the table. mmengine locates the package through its
      installed distribution, so this works for a wheel install, not for a
      PEP 660 editable one (mmengine looks in site-packages; use
      :func:`config_path` there).
    * ``_base_ = 'swat_mm::cls/stvit/...py'`` in a config parsed after
      ``import swat_mm``: mmengine would build every inherited dict in the
      registry scope ``swat_mm``, where the toolboxes' own types
      (``ImageClassifier``, ``ImageNet``, ...) are not, so it could not build
      anything the config inherits. Our configs name their toolbox in
      ``default_scope``, so a ``swat_mm::`` base is resolved by
      :func:`config_path` (wheel, editable install or checkout alike) and
      inherited like a local file: with its ``default_scope``, no
      ``_scope_``. Other ``package::`` prefixes keep mmengine's handling,
      remembered for the process: mmengine reads every metafile of the
      package (mmdet's, mmseg's, mmpretrain's: hundreds of YAML files) and
      reloads ``pkg_resources`` for each ``package::`` base it meets: our 53
      configs parsed in 18.0-21.1 s, 2.5-2.8 s with the cache (3 runs each,
      one core, 2026-12-07; the same configs, ``tests/test_model_index.py``).
    """
    from mmengine.config import Config, utils
    utils.MODULE2PACKAGE.setdefault('swat_mm', 'swat_mm')
    original = Config._get_cfg_path
    if getattr(original, 'swat_mm_prefix', False):
        return
    _cached_cfg_metainfo.__wrapped__ = utils._get_cfg_metainfo
    utils._get_cfg_metainfo = _cached_cfg_metainfo

    @functools.lru_cache(maxsize=None)
    def external(cfg_path: str):
        # the file being parsed only matters for a path without ``::``
        return original(cfg_path, '')

    def _get_cfg_path(cfg_path: str, filename: str):
        if cfg_path.startswith(PREFIX):
            return config_path(cfg_path[len(PREFIX):]), None
        if '::' in cfg_path:
            return external(cfg_path)
        return original(cfg_path, filename)

    _get_cfg_path.swat_mm_prefix = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)


@functools.lru_cache(maxsize=None)
def _package_configs(package_path: str) -> dict:
    """mmengine's ``_get_cfg_metainfo`` table of an installed package, read
    once: config name (its path under ``configs/``, as the metafiles give
    it) -> its first entry in the package's metafiles."""
    from mmengine.fileio import load
    mim = osp.join(package_path, MIM_DIR)
    table: dict = {}
    for meta_path in load(osp.join(mim, MODEL_INDEX))['Import']:
        for model in load(osp.join(mim, meta_path))['Models']:
            if 'Config' not in model:
                warnings.warn(f'There is not `Config` define in {model}')
                continue
            table.setdefault(model['Config'].partition('/')[-1], model)
    return table


def _cached_cfg_metainfo(package_path: str, cfg_path: str) -> dict:
    """``mmengine.config.utils._get_cfg_metainfo`` on a table read once per
    package; the same answers and the same ValueError (which tells
    mmengine that ``cfg_path`` is a ``_base_`` file, not a model's)."""
    table = _package_configs(package_path)
    if cfg_path not in table:
        raise ValueError(f'Expected configs: {table.keys()}, but got '
                         f'{cfg_path}')
    return table[cfg_path]
