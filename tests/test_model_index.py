"""Models by name (README "Models by name"): the model index covers every
shipped config once, every entry resolves to what it states, and after
``import swat_mm`` mmpretrain lists the classification models and builds
them by name with a checkpoint the shipped converter made from official
weights."""
import glob
import importlib.util
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import load
from mmengine.registry import init_default_scope
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

import swat_mm  # noqa: F401  (registers the index)
from swat_mm.utils.model_index import (config_path, metafiles, mim_root,
                                       register_model_index)
from tests.golden.cases import assert_official_logits, load_fixture
from tests.test_configs import toolbox_models

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the toy configs and the fine-tuning templates (for the user's own data:
# no model of ours to list) are not models of the index
NOT_MODELS = ('toy', osp.join('cls', 'finetune'))
SHIPPED = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in p.split(osp.sep)
    and not any(p.startswith(osp.join(ROOT, 'configs', d) + osp.sep)
                for d in NOT_MODELS))
INDEX = load(osp.join(ROOT, 'model-index.yml'))
ENTRIES = [(meta, model) for meta in INDEX['Import']
           for model in load(osp.join(ROOT, meta))['Models']]
CLS = [m for meta, m in ENTRIES if meta.startswith('configs/cls/')]
CONVERTERS = {'stvit': 'tools/model_converters/stvit_to_mmpretrain.py',
              'svt': 'tools/model_converters/svt_to_mmpretrain.py',
              'swat': 'tools/model_converters/swat_to_mmpretrain.py'}


class _MetaBuild(TorchFunctionMode):
    """Allocate a model's tensors on the meta device (no memory, no init
    cost) but keep ``torch.linspace`` on the CPU: the backbones turn the
    stochastic depth schedule into Python floats while they are built."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _device_constructors() and func is not torch.linspace \
                and kwargs.get('device') is None:
            kwargs['device'] = 'meta'
        return func(*args, **kwargs)


def _family(config: str) -> str:
    return config.split('/')[2] if config.startswith('configs/cls/') \
        else re.match(r'.*?(stvit|svt|swat)', osp.basename(config)).group(1)


def test_index_imports_every_metafile_once():
    on_disk = sorted(osp.relpath(p, ROOT) for p in glob.glob(
        osp.join(ROOT, 'configs', '**', 'metafile.yml'), recursive=True))
    assert sorted(INDEX['Import']) == on_disk
    assert len(set(INDEX['Import'])) == len(INDEX['Import'])
    assert metafiles(ROOT) == INDEX['Import']


def test_every_shipped_config_is_in_exactly_one_entry():
    configs = [m['Config'] for _, m in ENTRIES]
    assert sorted(configs) == SHIPPED, (
        'not in the index: %s; in the index but not shipped: %s' %
        (sorted(set(SHIPPED) - set(configs)),
         sorted(set(configs) - set(SHIPPED))))
    assert len(configs) == len(set(configs))
    names = [m['Name'] for _, m in ENTRIES]
    assert len(names) == len(set(names))


def test_modelindex_loads_the_index_without_errors():
    """The index as OpenMMLab's tools read it (modelindex, used by mim and
    by mmpretrain's ModelHub): every model in a collection it defines."""
    from modelindex.load_model_index import load as load_index
    index = load_index(osp.join(ROOT, 'model-index.yml'))
    index.build_models_with_collections()
    assert len(index.models) == len(ENTRIES)
    collections = {c.name for c in index.collections}
    assert {m['In Collection'] for _, m in ENTRIES} <= collections


@pytest.mark.parametrize('meta, entry', ENTRIES,
                         ids=[m['Name'] for _, m in ENTRIES])
def test_entry_resolves(meta, entry):
    """The entry's config is in its metafile's folder, parses, builds a
    model of the stated parameter count (exactly), trains for the stated
    epochs (or iterations) and batch, and names an existing converter and,
    for det/seg, the ImageNet model whose converted backbone its init_cfg
    loads; the results are the task's metrics."""
    config = entry['Config']
    assert osp.dirname(config) == osp.dirname(meta) or \
        meta == 'configs/seg/metafile.yml'
    assert osp.isfile(osp.join(ROOT, config))
    assert config_path(config) == osp.join(mim_root(), config)
    cfg = Config.fromfile(osp.join(ROOT, config))
    family = _family(config)
    stated = entry['Metadata']

    init_default_scope(cfg.default_scope)
    with _MetaBuild():
        model = toolbox_models(cfg.default_scope).build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == \
        stated['Parameters']
    assert stated['FLOPs'] > 0

    train_cfg = cfg.train_cfg
    if 'Iterations' in stated:
        assert stated['Iterations'] == train_cfg.max_iters
    else:
        assert stated['Epochs'] == train_cfg.max_epochs
    gpus = 8
    assert stated['Batch Size'] == gpus * cfg.train_dataloader.batch_size

    results = entry.get('Results', [])
    if meta.startswith('configs/cls/'):
        # mmpretrain's names: the config name without its GPUs x batch
        stem = osp.basename(config)[:-3]
        assert entry['Name'] == re.sub(r'_\d+xb\d+_', '_', stem)
        m = re.search(r'_(\d+)xb(\d+)_', stem)
        assert (int(m.group(1)), int(m.group(2))) == \
            (gpus, cfg.train_dataloader.batch_size)
        source = entry['Converted From']
        assert source['Converter'] == CONVERTERS[family]
        assert source['Code'].startswith('https://github.com/')
        assert source['Weights'].startswith('https://') or \
            source['Weights'].startswith('none released')
        tasks = {('Image Classification', 'ImageNet-1k')}
    else:
        assert entry['Name'] == osp.basename(config)[:-3]
        pre = entry['Pretrained Backbone']
        assert pre['Model'] in {m['Name'] for m in CLS}
        assert pre['Model'].split('-')[0] == family
        assert pre['Converter'] == CONVERTERS[family] + ' --backbone-only'
        assert cfg.model.backbone.init_cfg.checkpoint == pre['Checkpoint']
        tasks = {('Object Detection', 'COCO'),
                 ('Instance Segmentation', 'COCO')} \
            if cfg.default_scope == 'mmdet' else \
            {('Semantic Segmentation', 'ADE20K')}
    assert results or entry.get('Note'), 'no result and no note why'
    for result in results:
        assert (result['Task'], result['Dataset']) in tasks
        assert all(0 < v < 100 for v in result['Metrics'].values())


def test_list_models_lists_every_classification_entry():
    import mmpretrain
    names = sorted(m['Name'] for m in CLS)
    assert mmpretrain.list_models('*stvit*') == \
        sorted(n for n in names if 'stvit' in n)
    listed = set(mmpretrain.list_models())
    assert set(names) <= listed
    # mmpretrain's own models are still there, and no det/seg entry is
    assert 'resnet50_8xb32_in1k' in listed
    assert not {m['Name'] for _, m in ENTRIES if m not in CLS} & listed
    # a second registration (another import path) adds nothing, fails not
    assert sorted(register_model_index()) == names


def _convert(tool: str, args, monkeypatch) -> None:
    path = osp.join(ROOT, tool)
    spec = importlib.util.spec_from_file_location('converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, 'argv', [path, *args])
    assert module.main() in (0, None)


@pytest.mark.parametrize('case, name', [
    ('stvit_small', 'stvit-small_in1k'),
    ('svt_h_small', 'svt-h-small_in1k-tl'),
    ('swat_deit_tiny', 'swat-deit-tiny_in1k')])
def test_get_model_by_name_with_converted_official_weights(
        case, name, tmp_path, monkeypatch):
    """Official weights (golden fixtures written by the official code),
    converted by the converter the entry names, loaded by
    ``mmpretrain.get_model(name, pretrained=FILE)``: the official logits."""
    import mmpretrain
    fixture = load_fixture(case)
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'c.pth')
    torch.save({'model': fixture['state_dict']}, src)
    entry = next(m for m in CLS if m['Name'] == name)
    _convert(entry['Converted From']['Converter'], [src, dst], monkeypatch)

    model = mmpretrain.get_model(name, pretrained=dst)
    assert not model.training
    assert model._metainfo.name == name
    assert model._metainfo.config.filename == config_path(entry['Config'])
    assert_official_logits(model, fixture)


def test_get_model_refuses_a_checkpoint_of_another_model(tmp_path,
                                                         monkeypatch):
    """The name picks the config: the token-labelled SVT checkpoint does
    not load silently into the plain model of the same size."""
    import mmpretrain
    from swat_mm.utils import CheckpointMismatchError
    fixture = load_fixture('svt_h_small')
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'c.pth')
    torch.save({'model': fixture['state_dict']}, src)
    _convert(CONVERTERS['svt'], [src, dst], monkeypatch)
    with pytest.raises(CheckpointMismatchError, match='-tl'):
        mmpretrain.get_model('svt-h-small_in1k', pretrained=dst)


def test_unknown_config_name_is_refused_with_the_naming_rule():
    with pytest.raises(FileNotFoundError, match='paths under configs/'):
        config_path('cls/stvit/stvit-tiny_8xb128_in1k.py')
    assert config_path('cls/stvit/stvit-small_8xb128_in1k') == \
        osp.join(mim_root(), 'configs/cls/stvit/stvit-small_8xb128_in1k.py')


def test_registration_without_mmpretrain_or_index(monkeypatch, tmp_path):
    """Without mmpretrain there is no hub: nothing is registered and
    nothing fails. Without an index (swat_mm copied without its data),
    ``import swat_mm`` warns, naming both places it looked; asked for
    directly, the index is a FileNotFoundError."""
    from swat_mm.utils import model_index
    monkeypatch.setattr(model_index, '_registered', None)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, 'mmpretrain.apis.model', None)
        assert model_index.register_model_index() == []

    monkeypatch.setattr(model_index, '_PACKAGE_DIR',
                        str(tmp_path / 'swat_mm'))
    with pytest.warns(UserWarning, match='model-index.yml and configs/ are '
                      'neither in .*swat_mm/.mim .* nor in'):
        model_index.register_at_import()
    with pytest.raises(FileNotFoundError, match='reinstall swat_mm'):
        config_path('cls/stvit/stvit-small_8xb128_in1k.py')


# configs whose bases come from each toolbox through ``package::`` paths
EXTERNAL = ['configs/det/stvit/cascade-mask-rcnn_stvit-base_fpn_ms-3x_coco.py',
            'configs/seg/swat-swin-tiny_upernet_ade20k.py',
            'configs/toy/mask-rcnn_svt-h-small_toy-coco.py',
            'configs/cls/stvit/stvit-small_8xb128_in1k.py']
PLAIN_PARSE = '''
import sys
from mmengine.config import Config
for path in sys.argv[1:]:
    print(Config.fromfile(path, import_custom_modules=False).pretty_text)
    print('=' * 20)
'''


def test_external_bases_resolve_as_mmengine_resolves_them():
    """``import swat_mm`` remembers mmengine's ``package::`` lookups and
    reads each toolbox's metafiles once (``register_mim_package``): the
    configs come out as plain mmengine, in a process without swat_mm,
    parses them."""
    import subprocess
    plain = subprocess.run([sys.executable, '-c', PLAIN_PARSE, *EXTERNAL],
                           cwd=ROOT, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr[-3000:]
    ours = ''.join(Config.fromfile(osp.join(ROOT, p),
                                   import_custom_modules=False).pretty_text
                   + '\n' + '=' * 20 + '\n' for p in EXTERNAL)
    assert ours == plain.stdout


def test_cached_metainfo_answers_as_mmengine():
    from mmengine.config import utils
    from mmengine.utils import get_installed_path
    from swat_mm.utils.model_index import _cached_cfg_metainfo
    assert utils._get_cfg_metainfo is _cached_cfg_metainfo
    original = _cached_cfg_metainfo.__wrapped__
    mmdet = get_installed_path('mmdet')
    name = 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'  # a key of its table
    assert _cached_cfg_metainfo(mmdet, name) == original(mmdet, name)
    # not a model's config: mmengine then takes it for a _base_ file
    for fn in (original, _cached_cfg_metainfo):
        with pytest.raises(ValueError, match='but got _base_/models/x'):
            fn(mmdet, '_base_/models/x')
