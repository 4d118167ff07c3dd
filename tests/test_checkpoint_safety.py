"""Checkpoints: real mmengine training checkpoints load and resume through
swat_mm's safe loader on torch >= 2.6 (``weights_only=True``, no
``weights_only=False`` anywhere), a resumed run ends bit-identical to an
uninterrupted one, and files pickling anything else are refused by name
without running their code.

The training runs are real ``tools/train.py`` processes on a tiny STViT
classifier (``test_tools.write_cls_config``), CPU, seeded and deterministic.
"""
import collections
import json
import os
import os.path as osp
import pickle
import sys
from pathlib import Path
from typing import Dict

import cv2
import pytest
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_tools import (assert_ok, make_images, read_log,  # noqa: E402
                        run_tool, write_cls_config)

import swat_mm  # noqa: E402,F401  (installs the safe loader)
from swat_mm.utils import UnsafeCheckpointError, safe_load  # noqa: E402

MAX_ITERS = 6


@pytest.fixture(scope='module')
def runs(tmp_path_factory) -> Dict[str, object]:
    """One uninterrupted run of 6 iterations, and one stopped after 3
    (checkpoint saved) then resumed in a second process up to 6."""
    root = tmp_path_factory.mktemp('resume')
    images = make_images(root / 'images')
    cfg = write_cls_config(root / 'cfg.py', images, max_iters=MAX_ITERS,
                           checkpoint_interval=MAX_ITERS // 2)
    full, resumed = root / 'full', root / 'resumed'

    proc_full = run_tool('train.py', cfg, '--work-dir', full)
    assert_ok(proc_full)
    # the interrupted run: same config, stopped at half the iterations
    proc_half = run_tool('train.py', cfg, '--work-dir', resumed,
                         '--cfg-options',
                         f'train_cfg.max_iters={MAX_ITERS // 2}')
    assert_ok(proc_half)
    proc_resume = run_tool('train.py', cfg, '--work-dir', resumed,
                           '--resume', resumed / 'iter_3.pth')
    return dict(root=root, cfg=cfg, images=images, full=full,
                resumed=resumed, proc_resume=proc_resume)


def _state(path: Path) -> dict:
    return safe_load(str(path), map_location='cpu')


def test_training_checkpoint_needs_the_allow_list(runs):
    ckpt_path = runs['resumed'] / 'iter_3.pth'
    # what every tool would hit on torch >= 2.6 without the safe loader
    with pytest.raises(pickle.UnpicklingError, match='Weights only load'):
        torch.load(ckpt_path, map_location='cpu')
    ckpt = safe_load(str(ckpt_path), map_location='cpu')
    assert ckpt['meta']['iter'] == 3
    assert ckpt['meta']['seed'] == 0
    hub = ckpt['message_hub']
    loss = hub['log_scalars']['train/loss']
    assert type(loss).__name__ == 'HistoryBuffer'
    assert len(loss.data[0]) == 3  # one loss per iteration so far
    assert set(ckpt) >= {'state_dict', 'optimizer', 'param_schedulers'}


def test_train_tool_resumes_from_a_training_checkpoint(runs):
    proc = runs['proc_resume']
    assert_ok(proc)
    # the second timestamped log of the work dir is the resumed process's
    logs = sorted(runs['resumed'].glob('*/*.log'))
    assert len(logs) == 2
    log = logs[1].read_text()
    assert 'resumed epoch: 0, iter: 3' in log
    for it in (1, 2, 3):
        assert f'Iter(train) [{it}/6]' not in log
    for it in (4, 5, 6):
        assert f'Iter(train) [{it}/6]' in log
    assert _state(runs['resumed'] / 'iter_6.pth')['meta']['iter'] == 6


def test_resumed_run_ends_identical_to_uninterrupted_run(runs):
    assert_ok(runs['proc_resume'])
    full = _state(runs['full'] / 'iter_6.pth')
    resumed = _state(runs['resumed'] / 'iter_6.pth')
    assert full['state_dict'].keys() == resumed['state_dict'].keys()
    assert len(full['state_dict']) > 100
    for key, value in full['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    # the optimizer's momentum and the scheduler position match as well
    for (i, a), (j, b) in zip(full['optimizer']['state'].items(),
                              resumed['optimizer']['state'].items()):
        assert i == j and torch.equal(a['momentum_buffer'],
                                      b['momentum_buffer'])
    assert full['param_schedulers'] == resumed['param_schedulers']
    # and so did the logged losses of iterations 4-6
    loss = {name: [line.split('loss: ')[1].split()[0]
                   for line in read_log(runs[name]).splitlines()
                   if 'Iter(train) [' in line and '/6]' in line]
            for name in ('full', 'resumed')}
    # (the first process logged its iterations as [i/3])
    assert len(loss['full']) == 6 and loss['full'][3:] == loss['resumed']


def test_test_tool_evaluates_a_training_checkpoint(runs, tmp_path):
    """tools/test.py on the full checkpoint; its accuracy equals a direct
    forward pass of the same weights on the 16 images."""
    out = tmp_path / 'metrics.json'
    proc = run_tool('test.py', runs['cfg'], runs['full'] / 'iter_6.pth',
                    '--work-dir', tmp_path / 'work', '--out', out,
                    '--out-item', 'metrics')
    assert_ok(proc)
    tool_acc = json.loads(out.read_text())['accuracy/top1']

    from mmengine.config import Config
    from swat_mm.utils.complexity import build_model
    model, _ = build_model(Config.fromfile(str(runs['cfg'])))
    model.load_state_dict(_state(runs['full'] / 'iter_6.pth')['state_dict'])
    classes = sorted(os.listdir(runs['images']))  # CustomDataset's order
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted(os.listdir(runs['images'] / name)):
            img = cv2.imread(str(runs['images'] / name / file))
            images.append(torch.from_numpy(img).permute(2, 0, 1))
            labels.append(label)
    with torch.no_grad():
        data = model.data_preprocessor({'inputs': images}, False)
        pred = model(data['inputs'], mode='tensor').argmax(1)
    expected = (pred == torch.tensor(labels)).float().mean().item() * 100
    assert len(labels) == 16
    assert tool_acc == pytest.approx(expected, abs=1e-4)


# --------------------------------------------------------------------------
# refused files
# --------------------------------------------------------------------------


class Payload:
    """Any class outside the allow-list."""

    def __init__(self):
        self.note = 'not a tensor'


class StateDict(collections.OrderedDict):
    """An OrderedDict subclass: looks like a state dict, is not allowed."""


class SystemCall:
    """Unpickling runs os.system: the classic malicious checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _qualname(obj) -> str:
    return f'{obj.__module__}.{obj.__qualname__}'


@pytest.mark.parametrize('kind', ['instance', 'ordered_dict_subclass'])
def test_unknown_classes_are_refused_by_name(tmp_path, kind):
    from mmengine.runner import CheckpointLoader
    path = tmp_path / 'ckpt.pth'
    if kind == 'instance':
        obj = {'state_dict': {'w': torch.ones(2)}, 'meta': Payload()}
        name = _qualname(Payload)
    else:
        obj = {'state_dict': StateDict(w=torch.ones(2))}
        name = _qualname(StateDict)
    torch.save(obj, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_load(str(path))
    assert f'({name})' in str(err.value)
    # mmengine's own loading path (Runner.resume, load_checkpoint,
    # Pretrained init) goes through the same loader
    with pytest.raises(UnsafeCheckpointError, match=name):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


def test_system_call_payload_is_refused_without_running(runs, tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': SystemCall(marker)}, path)
    name = f'{os.system.__module__}.system'  # posix.system on Linux
    with pytest.raises(UnsafeCheckpointError, match=f'\\({name}\\)'):
        safe_load(str(path))
    # end to end: tools/test.py refuses the file and nothing ran
    proc = run_tool('test.py', runs['cfg'], path, '--work-dir',
                    tmp_path / 'work')
    assert proc.returncode == 1
    assert 'UnsafeCheckpointError' in proc.stderr
    assert f'({name})' in proc.stderr
    assert not marker.exists()


class HistoryBufferAttribute:
    """Pickles as getattr(HistoryBuffer, '__init__'): the getattr the
    allow-list tolerates for HistoryBuffer's statistics methods must not
    hand out anything else."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {}, 'meta': HistoryBufferAttribute()}, path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_load(str(path))


def test_extra_object_in_a_training_checkpoint_is_named(runs, tmp_path):
    """A real training checkpoint with one foreign object added: refused,
    and the message names that object."""
    ckpt = _state(runs['full'] / 'iter_6.pth')
    ckpt['meta']['extra'] = Payload()
    path = tmp_path / 'tampered.pth'
    torch.save(ckpt, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_load(str(path))
    assert _qualname(Payload) in str(err.value)


def test_official_training_checkpoints_load_for_conversion(tmp_path):
    """The official training scripts save their argparse arguments beside
    the weights (DeiT's main.py: 'model', timm's train.py: 'state_dict' and
    'state_dict_ema'): the converters' loader allows that Namespace as data,
    picks the weights or the EMA weights, and still refuses code."""
    import argparse

    from swat_mm.converters import ConversionError, load_official_state_dict
    args = argparse.Namespace(lr=1e-3, model='svt_s', input_size=224,
                              aa='rand-m9-mstd0.5-inc1', betas=None)
    weights = {'module.w': torch.ones(2)}
    ema = {'w': torch.full((2, ), 3.)}
    deit = tmp_path / 'deit.pth'
    torch.save({'model': weights, 'optimizer': {'state': {}}, 'epoch': 3,
                'args': args}, deit)
    timm_ckpt = tmp_path / 'timm.pth'
    torch.save({'epoch': 3, 'arch': 'swat', 'state_dict': weights,
                'state_dict_ema': ema, 'args': args, 'version': 2},
               timm_ckpt)
    assert torch.equal(load_official_state_dict(str(deit))['w'],
                       torch.ones(2))
    assert torch.equal(load_official_state_dict(str(timm_ckpt))['w'],
                       torch.ones(2))
    assert torch.equal(
        load_official_state_dict(str(timm_ckpt), use_ema=True)['w'], ema['w'])
    with pytest.raises(ConversionError, match='no EMA weights'):
        load_official_state_dict(str(deit), use_ema=True)
    # the Namespace allowance is not a door for other objects
    evil = tmp_path / 'evil.pth'
    torch.save({'model': weights, 'args': args, 'meta': Payload()}, evil)
    with pytest.raises(UnsafeCheckpointError, match=_qualname(Payload)):
        load_official_state_dict(str(evil))
    # and mmengine's own loading path does not allow Namespace at all
    with pytest.raises(UnsafeCheckpointError, match='Namespace'):
        safe_load(str(deit))
