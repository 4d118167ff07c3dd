"""Checkpoints fit the model or the run stops, naming the problem.

``swat_mm.CheckpointFitHook`` (added by tools/train.py and tools/test.py)
checks a checkpoint against the model before mmengine loads it: exact for
``--resume`` and for evaluation, heads-only mismatches for fine-tuning with
``load_from``. Files that are no checkpoint at all are told apart from
unsafe ones, and the converters neither write into a directory nor leave a
``.tmp`` behind.

Real parts only: tiny STViT and SWAT-ViT classifiers on 32x32 images, real
training checkpoints from ``tools/train.py`` and mmengine's ``Runner``, the
tools as subprocesses where the claim is about the tool.
"""
import argparse
import os.path as osp
import pickle
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_tools import (REPO, assert_ok, make_images,  # noqa: E402
                        read_log, run_tool, write_cls_config)

import swat_mm  # noqa: E402,F401  (installs the safe loader, the hooks)
from swat_mm.engine.hooks.checkpoint_fit import (  # noqa: E402
    CheckpointFitHook, CheckpointMismatchError)
from swat_mm.utils import (NotACheckpointError,  # noqa: E402
                           UnsafeCheckpointError, safe_load)

SWAT_VIT_TINY = dict(embed_dims=32, num_layers=2, num_heads=2,
                     token_channels=2, sub_patch=4, stem_channels=16,
                     pos_map_size=4, mlp_ratio=2., mlp_kernel=3)

#: A SWAT-ViT classifier in place of write_cls_config's STViT: the
#: checkpoint of "another family".
SWAT_MODEL = f'''
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=2, mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=True),
    backbone=dict(type='swat_mm.SWATViT', arch={SWAT_VIT_TINY!r},
                  img_size=32, out_type='avg_featmap'),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=2, in_channels=32,
              loss=dict(type='CrossEntropyLoss')))
'''


def _load(path: Path) -> dict:
    return safe_load(str(path), map_location='cpu')


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory) -> Dict[str, Path]:
    """A 2-iteration STViT run by tools/train.py and a 1-iteration SWAT-ViT
    run by an in-process Runner: real training checkpoints of two
    families."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    root = tmp_path_factory.mktemp('fit')
    images = make_images(root / 'images', per_class=4)
    stvit_cfg = write_cls_config(root / 'stvit.py', images, max_iters=2,
                                 checkpoint_interval=2, norm='BN')
    swat_cfg = write_cls_config(root / 'swat.py', images, max_iters=1,
                                checkpoint_interval=1, extra=SWAT_MODEL)
    proc = run_tool('train.py', stvit_cfg, '--work-dir', root / 'stvit')
    assert_ok(proc)

    cfg = Config.fromfile(str(swat_cfg))
    cfg.work_dir = str(root / 'swat')
    Runner.from_cfg(cfg).train()
    return dict(root=root, images=images, stvit_cfg=stvit_cfg,
                swat_cfg=swat_cfg, stvit=root / 'stvit' / 'iter_2.pth',
                swat=root / 'swat' / 'iter_1.pth',
                stvit_dir=root / 'stvit')


def _runner(ckpts, tmp_path: Path, load_from: Path, name: str = 'stvit_cfg',
            hook: Optional[dict] = None, **options: object):
    """An in-process Runner of a config with the fit hook, as the tools
    build it."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(ckpts[name]))
    cfg.merge_from_dict(options)
    cfg.work_dir = str(tmp_path / 'work')
    # one logger (and log file) per runner, however fast they follow
    cfg.experiment_name = f'fit_{tmp_path.name}'
    cfg.load_from = str(load_from)
    cfg.custom_hooks = [hook or dict(type='swat_mm.CheckpointFitHook')]
    return Runner.from_cfg(cfg)


def _counts(message: str) -> tuple:
    m = re.search(r'(\d+) missing, (\d+) unexpected, (\d+) '
                  r'shape-mismatched keys', message)
    assert m, message
    return tuple(int(x) for x in m.groups())


def _expected_counts(ckpt: Path, cfg: Path) -> tuple:
    """Missing / unexpected / shape-mismatched, counted independently."""
    from mmengine.config import Config
    from swat_mm.utils.complexity import build_model
    model, _ = build_model(Config.fromfile(str(cfg)))
    mine = {k: v.shape for k, v in model.state_dict().items()}
    theirs = {k: v.shape for k, v in _load(ckpt)['state_dict'].items()}
    missing = [k for k in mine if k not in theirs
               and 'num_batches_tracked' not in k]
    unexpected = [k for k in theirs if k not in mine]
    shapes = [k for k in mine if k in theirs and mine[k] != theirs[k]]
    return len(missing), len(unexpected), len(shapes)


# --------------------------------------------------------------------------
# the tools
# --------------------------------------------------------------------------


def test_test_tool_refuses_another_familys_checkpoint(ckpts, tmp_path):
    proc = run_tool('test.py', ckpts['stvit_cfg'], ckpts['swat'],
                    '--work-dir', tmp_path / 'work')
    assert proc.returncode == 1
    assert 'CheckpointMismatchError' in proc.stderr
    assert f'checkpoint {ckpts["swat"]} does not fit the model' \
        in proc.stderr
    assert _counts(proc.stderr) == _expected_counts(ckpts['swat'],
                                                    ckpts['stvit_cfg'])
    # the cause: the checkpoint's own config says what it is
    assert ('Likely cause: a checkpoint of another model: it holds a '
            'swat_mm.SWATViT model (from its meta), the model is '
            'swat_mm.STViT') in proc.stderr
    assert 'accuracy/top1' not in proc.stdout + proc.stderr


def test_train_tool_load_from_another_family_fails(ckpts, tmp_path):
    proc = run_tool('train.py', ckpts['stvit_cfg'], '--work-dir',
                    tmp_path / 'work', '--cfg-options',
                    f'load_from={ckpts["swat"]}')
    assert proc.returncode == 1
    assert 'CheckpointMismatchError' in proc.stderr
    assert 'fine-tuning (load_from) may only replace heads' in proc.stderr
    assert 'another model' in proc.stderr
    assert 'Iter(train)' not in proc.stdout + proc.stderr
    assert not list((tmp_path / 'work').glob('iter_*.pth'))


def test_fine_tuning_with_another_head_is_allowed(ckpts, tmp_path):
    """load_from with 3 classes instead of 2: the head is skipped (and
    named), everything else loads."""
    work = tmp_path / 'work'
    proc = run_tool('train.py', ckpts['stvit_cfg'], '--work-dir', work,
                    '--cfg-options', f'load_from={ckpts["stvit"]}',
                    'model.head.num_classes=3',
                    'model.data_preprocessor.num_classes=3',
                    'train_cfg.max_iters=1', 'optim_wrapper.optimizer.lr=0')
    assert_ok(proc)
    log = read_log(work)
    line = next(x for x in log.splitlines()
                if '[swat_mm] CheckpointFitHook' in x)
    assert 'WARNING' in line
    assert ('without these head weights that do not fit the model (they '
            'keep their initialisation): 0 missing: ; 0 unexpected: ; 2 '
            'shape-mismatched: head.fc.weight, head.fc.bias') in line
    # with lr 0 the step changed no parameter: every one outside the head
    # is the checkpoint's, the head is new
    before = _load(ckpts['stvit'])['state_dict']
    after = _load(work / 'iter_1.pth')['state_dict']
    from mmengine.config import Config
    from swat_mm.utils.complexity import build_model
    model, _ = build_model(Config.fromfile(str(ckpts['stvit_cfg'])))
    params = [k for k, _ in model.named_parameters()]
    assert len(params) > 50
    for k in params:
        if not k.startswith('head.'):
            assert torch.equal(after[k], before[k]), k
    assert after['head.fc.weight'].shape == (3, 32)


def test_resume_from_another_models_work_dir_fails_first(ckpts, tmp_path):
    """--resume in the STViT work dir with the SWAT-ViT config: the fit
    error, not the optimizer's parameter-group ValueError."""
    import shutil
    work = tmp_path / 'work'
    shutil.copytree(ckpts['stvit_dir'], work)
    proc = run_tool('train.py', ckpts['swat_cfg'], '--work-dir', work,
                    '--resume')
    assert proc.returncode == 1
    assert 'CheckpointMismatchError' in proc.stderr
    # the latest checkpoint of the work dir, wherever the copy points
    assert re.search(r'checkpoint \S+/iter_2\.pth does not fit the model '
                     r'\(resuming must load every weight exactly\)',
                     proc.stderr), proc.stderr[-3000:]
    assert 'parameter groups' not in proc.stderr
    assert 'a swat_mm.STViT model (from its meta)' in proc.stderr
    assert 'allow_partial_load' not in proc.stderr  # not for resuming


# --------------------------------------------------------------------------
# causes, in-process Runner
# --------------------------------------------------------------------------


def _mismatch(runner) -> str:
    with pytest.raises(CheckpointMismatchError) as err:
        runner.test()
    return str(err.value)


def test_backbone_only_file_is_recognised(ckpts, tmp_path):
    state = _load(ckpts['stvit'])['state_dict']
    backbone = OrderedDict((k[len('backbone.'):], v) for k, v in
                           state.items() if k.startswith('backbone.'))
    path = tmp_path / 'backbone.pth'
    torch.save({'state_dict': backbone}, path)
    message = _mismatch(_runner(ckpts, tmp_path, path))
    n_model = len([k for k in state if 'num_batches_tracked' not in k])
    assert _counts(message) == (n_model, len(backbone), 0)
    assert (f'Likely cause: a backbone-only checkpoint: its {len(backbone)}'
            " keys are the model's backbone.* keys without the 'backbone.' "
            'prefix') in message
    assert 'convert the official checkpoint without --backbone-only' \
        in message
    # for training: the Pretrained init that takes such a file
    with pytest.raises(CheckpointMismatchError) as err:
        _runner(ckpts, tmp_path, path).train()
    assert ("model.backbone.init_cfg=dict(type='Pretrained', "
            f"checkpoint='{path}')") in str(err.value)


def test_extra_backbone_prefix_is_recognised(ckpts, tmp_path):
    state = _load(ckpts['stvit'])['state_dict']
    path = tmp_path / 'prefixed.pth'
    torch.save({'state_dict': OrderedDict(
        ('backbone.' + k, v) for k, v in state.items())}, path)
    message = _mismatch(_runner(ckpts, tmp_path, path))
    assert ("Likely cause: the checkpoint's keys carry an extra 'backbone.' "
            'prefix') in message
    assert "prefix='backbone.'" in message


def test_missing_backbone_prefix_is_recognised(ckpts, tmp_path):
    """Backbone keys without their prefix beside the neck's and head's."""
    state = _load(ckpts['stvit'])['state_dict']
    path = tmp_path / 'unprefixed.pth'
    torch.save({'state_dict': OrderedDict(
        (k[len('backbone.'):] if k.startswith('backbone.') else k, v)
        for k, v in state.items())}, path)
    message = _mismatch(_runner(ckpts, tmp_path, path))
    n_backbone = sum(1 for k in state if k.startswith('backbone.'))
    n_missing = sum(1 for k in state if k.startswith('backbone.')
                    and 'num_batches_tracked' not in k)
    assert _counts(message) == (n_missing, n_backbone, 0)
    assert ("Likely cause: the checkpoint's keys lack the 'backbone.' "
            f'prefix the model has ({n_backbone} of them match once it is '
            'added') in message


def test_unconverted_official_checkpoint_points_to_converter(ckpts,
                                                             tmp_path):
    """The official STViT layout (backbone names at the top, proj/norm/head
    beside them, the frozen unfold kernels) is sent to its converter."""
    state = _load(ckpts['stvit'])['state_dict']
    official = OrderedDict()
    for k, v in state.items():
        for old, new in (('backbone.', ''), ('neck.', ''),
                         ('head.fc.', 'head.')):
            if k.startswith(old):
                official[new + k[len(old):]] = v
                break
    path = tmp_path / 'official.pth'
    torch.save({'model': official}, path)  # DeiT's main.py layout
    message = _mismatch(_runner(ckpts, tmp_path, path))
    assert ('an official STViT (hhb072/STViT) training checkpoint (weights '
            "under 'model')") in message
    assert (f'python tools/model_converters/stvit_to_mmpretrain.py {path} '
            'OUT.pth') in message
    bare = tmp_path / 'official_bare.pth'
    torch.save(official, bare)
    message = _mismatch(_runner(ckpts, tmp_path, bare))
    assert 'an official STViT (hhb072/STViT) checkpoint, not converted' \
        in message
    assert 'stvit_to_mmpretrain.py' in message


def test_evaluation_needs_the_same_head(ckpts, tmp_path):
    runner = _runner(ckpts, tmp_path, ckpts['stvit'],
                     **{'model.head.num_classes': 3})
    message = _mismatch(runner)
    assert _counts(message) == (0, 0, 2)
    assert ('head.fc.weight [2, 32] vs model [3, 32], head.fc.bias [2] vs '
            'model [3]') in message
    assert ('Likely cause: only the heads differ (2 outputs in the '
            'checkpoint, 3 in the model: another number of classes?)') \
        in message
    assert '--cfg-options allow_partial_load=True' in message


@pytest.mark.parametrize('how', ['config_key', 'hook_option'])
def test_allow_partial_loads_what_fits_and_reports(ckpts, tmp_path, how):
    if how == 'config_key':
        runner = _runner(ckpts, tmp_path, ckpts['stvit'],
                         **{'model.head.num_classes': 3,
                            'allow_partial_load': True})
    else:
        runner = _runner(ckpts, tmp_path, ckpts['stvit'],
                         hook=dict(type='swat_mm.CheckpointFitHook',
                                   allow_partial=True),
                         **{'model.head.num_classes': 3})
    runner.test()
    log = read_log(tmp_path / 'work')
    assert ('without these weights (allow_partial_load) that do not fit the '
            'model') in log
    assert '2 shape-mismatched: head.fc.weight, head.fc.bias' in log
    state = _load(ckpts['stvit'])['state_dict']
    loaded = runner.model.state_dict()
    for k in ('backbone.layers.0.blocks.0.attn.stoken_refine.qkv.weight',
              'neck.proj.weight'):
        k = k if k in state else next(x for x in state
                                      if x.startswith(k.split('.')[0]))
        assert torch.equal(loaded[k], state[k]), k


def test_allow_partial_refuses_when_nothing_fits(ckpts, tmp_path):
    runner = _runner(ckpts, tmp_path, ckpts['swat'],
                     **{'allow_partial_load': True})
    message = _mismatch(runner)
    state = _load(ckpts['swat'])['state_dict']
    assert _counts(message) == _expected_counts(ckpts['swat'],
                                                ckpts['stvit_cfg'])
    assert 'even partial loading needs some backbone/neck weights to fit' \
        in message
    # the two families share only the classifier's names and shapes
    shared = [k for k, v in state.items() if not k.startswith('head.')]
    assert _counts(message)[1] == len(shared)


def test_hook_option_is_checked():
    with pytest.raises(TypeError, match='allow_partial'):
        CheckpointFitHook(allow_partial='yes')


# --------------------------------------------------------------------------
# files that are no checkpoint
# --------------------------------------------------------------------------


def test_files_that_are_not_checkpoints(ckpts, tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('epoch 3: top-1 81.2\n')
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    data = ckpts['stvit'].read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    readme = REPO / 'README.md'
    cases = {
        text: "a text file, 20 bytes, starting 'epoch 3: top-1 81.2'",
        readme: 'a text file, ',
        empty: 'an empty file',
        truncated: 'a truncated or corrupt zip archive',
    }
    for path, why in cases.items():
        with pytest.raises(NotACheckpointError) as err:
            safe_load(str(path))
        assert str(err.value).startswith(
            f'not a PyTorch checkpoint: {path} ({why}'), str(err.value)
        assert 'weights_only' not in str(err.value)
    # mmengine's loading path (load_from, resume) gives the same error
    with pytest.raises(NotACheckpointError,
                       match='not a PyTorch checkpoint: .*README.md'):
        _runner(ckpts, tmp_path, readme).test()


def test_unsafe_pickle_is_still_unsafe(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': argparse.Namespace(a=1)}, path)
    with pytest.raises(UnsafeCheckpointError, match='argparse.Namespace'):
        safe_load(str(path))
    # and a plain pickle (not torch.save) is no checkpoint
    plain = tmp_path / 'plain.pkl'
    plain.write_bytes(pickle.dumps({'w': [1, 2]}, protocol=2))
    with pytest.raises(NotACheckpointError, match='magic number'):
        safe_load(str(plain))


# --------------------------------------------------------------------------
# converters
# --------------------------------------------------------------------------


def test_converter_refuses_a_directory_output(ckpts, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    proc = run_tool('model_converters/stvit_to_mmpretrain.py',
                    REPO / 'README.md', out)
    assert proc.returncode == 1
    # refused before the source is even read
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: the output path {out} is an existing directory; give a '
        f'file name, e.g. {out / "converted.pth"}')
    assert list(tmp_path.iterdir()) == [out]
    assert list(out.iterdir()) == []


class _Interrupt:
    """Stops torch.save half way, as Ctrl-C would."""

    def __reduce__(self):
        raise KeyboardInterrupt


class _Unpicklable:
    def __reduce__(self):
        raise TypeError('cannot pickle this')


@pytest.mark.parametrize('payload,exc', [(_Interrupt, KeyboardInterrupt),
                                         (_Unpicklable, TypeError)])
def test_converter_leaves_no_tmp_on_failure(tmp_path, payload, exc):
    from swat_mm.converters.common import save_converted
    dst = tmp_path / 'model.pth'
    converted = OrderedDict([('w', torch.zeros(1000, 100)),
                             ('z', payload())])
    with pytest.raises(exc):
        save_converted(str(dst), converted, dict(type='X'), 'src.pth')
    assert list(tmp_path.iterdir()) == []
    # and a successful write leaves only the file
    save_converted(str(dst), OrderedDict(w=torch.zeros(2)), dict(type='X'),
                   'src.pth')
    assert list(tmp_path.iterdir()) == [dst]
    assert torch.equal(_load(dst)['state_dict']['w'], torch.zeros(2))


# --------------------------------------------------------------------------
# the dry run follows each family's own loading rules
# --------------------------------------------------------------------------


def test_dry_run_load_of_every_family():
    """Each backbone family's own state dict fits exactly through the dry
    run (its _load_from_state_dict checks run on the copy), nothing of the
    model changes, and a SWAT-ViT position embedding of another grid is
    resized by the model, so it is no mismatch."""
    from tiny_archs import FAMILY_CASES

    from swat_mm.engine.hooks.checkpoint_fit import _dry_run_load
    from swat_mm.models import backbones
    for name, (cls, kwargs, _) in FAMILY_CASES.items():
        model = getattr(backbones, cls)(**kwargs)
        state = OrderedDict((k, v.clone()) for k, v in
                            model.state_dict().items())
        state[next(iter(state))].add_(1.0)
        report = _dry_run_load(model, state)
        assert report.exact, (name, report)
        first = next(iter(state))
        assert not torch.equal(model.state_dict()[first], state[first])
    model = getattr(backbones, 'SWATViT')(**FAMILY_CASES['swat_vit'][1])
    state = model.state_dict()
    side = int(state['pos_embed'].shape[1] ** 0.5)
    big = torch.zeros(1, (2 * side)**2, state['pos_embed'].shape[2])
    report = _dry_run_load(model, OrderedDict(state, pos_embed=big))
    assert report.exact
    wrong = OrderedDict(state, pos_embed=torch.zeros(1, 3, 5))
    report = _dry_run_load(model, wrong)
    assert [k for k, _, _ in report.shapes] == ['pos_embed']
