"""Nothing lost: shipped toy recipes killed with SIGKILL and resumed end
bit-identical to an uninterrupted run, checkpoints are written whole or
not at all, and a work directory never mixes two runs.

The recipes are the toy versions of the shipped ones with every random
part on (classification: RandAugment, random erasing, repeated
augmentation, Mixup/CutMix, EMA, stochastic depth; UperNet: random
resize/crop/flip, photometric distortion, decode-head dropout, stochastic
depth), shrunk to a tiny STViT so that each run takes seconds. Each run is a
real ``tools/train.py`` (or ``tools/dist_train.sh``) process; the
interrupted one is a fresh interpreter, killed (SIGKILL to its process
group, workers included) in the middle of the epoch or interval after a
checkpoint, then resumed with ``--resume``. The single-process full and
resumed runs are forks of the tests' tool server
(``tests/forked_tools.py``): the resumed run then continues, in another
kind of process, the state a fresh one left, and must still end
bit-identical.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import torch
from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_tools import (NO_CUDA, PYTHON, REPO, assert_ok,  # noqa: E402
                        free_port, read_log, run_tool)

import swat_mm  # noqa: E402,F401  (safe loader, atomic backend)
from swat_mm.engine import AtomicLocalBackend, atomic_write  # noqa: E402
from swat_mm.engine import runner_utils as ru  # noqa: E402
from swat_mm.utils import safe_load  # noqa: E402

TINY_STVIT = '''
    backbone=dict(arch=dict(_delete_=True, embed_dims=[16, 32, 48, 64],
                            depths=[1, 1, 2, 1], num_heads=[1, 2, 3, 4]),
                  stoken_size=(4, 2, 1, 1), drop_path_rate=0.1),'''

CLS_CONFIG = f'''
_base_ = [{str(REPO / 'configs/toy/stvit-small_toy-in1k.py')!r}]
model = dict({TINY_STVIT}
    neck=dict(in_channels=64, out_channels=64),
    head=dict(in_channels=64))
train_cfg = dict(max_epochs=3, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3),
                     logger=dict(interval=1))
randomness = dict(seed=0, deterministic=True)
'''

SEG_CONFIG = f'''
_base_ = [{str(REPO / 'configs/toy/stvit-small_upernet_toy-ade20k.py')!r}]
model = dict({TINY_STVIT}
    decode_head=dict(in_channels=[16, 32, 48, 64], channels=16),
    auxiliary_head=dict(in_channels=48, channels=16))
train_cfg = dict(max_iters=12, val_interval=6)
default_hooks = dict(checkpoint=dict(interval=6), logger=dict(interval=1))
randomness = dict(seed=0, deterministic=True)
'''


def _train_cmd(cfg: Path, work_dir: Path, *args: str,
               procs: int = 1) -> List[str]:
    if procs == 1:
        return [PYTHON, str(REPO / 'tools' / 'train.py'), str(cfg),
                '--work-dir', str(work_dir), *args]
    return ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(cfg),
            str(procs), '--work-dir', str(work_dir), *args]


def _env(toy_root: str, procs: int) -> Dict[str, str]:
    env = dict(os.environ, SWAT_MM_TOY_DATA=toy_root)
    if procs > 1:
        env.update(PORT=str(free_port()), PYTHON=PYTHON)
    return env


def _train(cfg: Path, work_dir: Path, toy_root: str, *args: str,
           procs: int = 1) -> subprocess.CompletedProcess:
    if procs == 1:  # a fork of the tool server
        proc = run_tool('train.py', str(cfg), '--work-dir', str(work_dir),
                        *args, env=dict(SWAT_MM_TOY_DATA=toy_root))
    else:
        proc = subprocess.run(_train_cmd(cfg, work_dir, *args, procs=procs),
                              cwd=REPO, env=_env(toy_root, procs),
                              capture_output=True, text=True, timeout=300)
    assert_ok(proc)
    return proc


def _train_and_kill(cfg: Path, work_dir: Path, toy_root: str, marker: str,
                    procs: int = 1) -> None:
    """Start a training and SIGKILL its whole process group (launcher,
    ranks, data workers) as soon as the log shows ``marker``."""
    proc = subprocess.Popen(_train_cmd(cfg, work_dir, procs=procs), cwd=REPO,
                            env=_env(toy_root, procs),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            logs = list(work_dir.glob('*/*.log'))
            if logs and marker in logs[0].read_text():
                break
            assert proc.poll() is None, \
                f'the run ended (exit {proc.returncode}) before {marker!r}'
            time.sleep(0.02)
        else:
            pytest.fail(f'{marker!r} did not appear in the log')
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _tensors(node, prefix: str = '') -> Iterator[Tuple[str, torch.Tensor]]:
    if isinstance(node, torch.Tensor):
        yield prefix, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _tensors(value, f'{prefix}.{key}' if prefix else key)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _tensors(value, f'{prefix}[{i}]')


def assert_checkpoints_equal(a_path: Path, b_path: Path) -> int:
    """Every tensor of two checkpoints bit-equal (weights, EMA, buffers,
    optimizer state, random state); returns how many were compared."""
    a, b = safe_load(str(a_path)), safe_load(str(b_path))
    assert a['meta']['epoch'] == b['meta']['epoch']
    assert a['meta']['iter'] == b['meta']['iter']
    ta, tb = dict(_tensors(a)), dict(_tensors(b))
    assert ta.keys() == tb.keys()
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f'{len(differ)} of {len(ta)} tensors differ: ' \
        f'{differ[:5]}'
    return len(ta)


def _resume_case(tmp_path: Path, toy_root: str, config: str, marker: str,
                 before: str, after: str, final: str,
                 procs: int = 1) -> Tuple[Path, Path]:
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(config)
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    _train(cfg, full, toy_root, procs=procs)
    _train_and_kill(cfg, resumed, toy_root, marker, procs=procs)
    # killed after the checkpoint, in the middle of the next stretch
    assert (resumed / before).is_file() and not (resumed / after).exists()
    _train(cfg, resumed, toy_root, '--resume', procs=procs)
    assert 'resumed epoch:' in read_log(resumed)
    n = assert_checkpoints_equal(full / final, resumed / final)
    assert n > 200
    return full, resumed


@pytest.mark.skipif(not NO_CUDA, reason='CPU bit-exactness')
def test_classification_recipe_resumes_bit_exact_after_kill(tmp_path,
                                                            toy_root):
    full, resumed = _resume_case(
        tmp_path, toy_root, CLS_CONFIG, 'Epoch(train) [2][ 3/13]',
        before='epoch_1.pth', after='epoch_2.pth', final='epoch_3.pth')
    state = safe_load(str(resumed / 'epoch_3.pth'))
    saved = state['random_state']
    assert saved['world_size'] == 1 and len(saved['ranks']) == 1
    assert set(saved['ranks'][0]) >= {'python', 'numpy', 'torch'}
    assert 'ema_state_dict' in state  # the EMA weights were compared too
    log = read_log(resumed)
    assert 'resumed epoch: 1, iter: 13' in log


@pytest.mark.skipif(not NO_CUDA, reason='CPU bit-exactness')
def test_upernet_recipe_resumes_bit_exact_after_kill(tmp_path, toy_root):
    cfg = Config.fromstring(SEG_CONFIG, file_format='.py')
    assert cfg.model.decode_head.dropout_ratio > 0  # dropout is on
    _resume_case(tmp_path, toy_root, SEG_CONFIG, 'Iter(train) [ 8/12]',
                 before='iter_6.pth', after='iter_12.pth',
                 final='iter_12.pth')


@pytest.mark.skipif(not NO_CUDA, reason='CPU (gloo) launch')
def test_two_process_run_resumes_bit_exact_after_kill(tmp_path, toy_root):
    config = CLS_CONFIG.replace('max_epochs=3', 'max_epochs=2')
    # 200 images, 2 ranks x 16: 7 iterations per epoch
    full, resumed = _resume_case(
        tmp_path, toy_root, config, 'Epoch(train) [2][2/7]',
        before='epoch_1.pth', after='epoch_2.pth', final='epoch_2.pth',
        procs=2)
    saved = safe_load(str(resumed / 'epoch_2.pth'))['random_state']
    assert saved['world_size'] == 2 and len(saved['ranks']) == 2
    for rank in saved['ranks']:
        assert set(rank) >= {'python', 'numpy', 'torch'}


# ---------------------------------------------------------------------------
# atomic checkpoints
# ---------------------------------------------------------------------------

WRITER = '''
import sys
sys.path.insert(0, {repo!r})
from swat_mm.engine import atomic_write
atomic_write(b'n' * (1 << 30), {path!r})
'''


def test_a_kill_during_a_save_leaves_the_old_file(tmp_path):
    target = tmp_path / 'epoch_2.pth'
    target.write_bytes(b'old checkpoint')
    proc = subprocess.Popen(
        [PYTHON, '-c', WRITER.format(repo=str(REPO), path=str(target))])
    tmp = tmp_path / f'.epoch_2.pth.tmp-{proc.pid}'
    deadline = time.time() + 120
    while not (tmp.exists() and tmp.stat().st_size > 0):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    assert target.read_bytes() == b'old checkpoint'
    assert 0 < tmp.stat().st_size < (1 << 30)  # the write was cut short
    # the next save of that name clears the leftover
    atomic_write(b'new checkpoint', target)
    assert target.read_bytes() == b'new checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_2.pth']


def test_last_checkpoint_is_written_atomically(tmp_path):
    from mmengine.hooks import checkpoint_hook
    target = tmp_path / 'last_checkpoint'
    target.write_text('epoch_1.pth')
    # the call CheckpointHook makes, in its module
    with checkpoint_hook.open(str(target), 'w') as f:
        f.write('epoch_2')
        assert target.read_text() == 'epoch_1.pth'  # nothing written yet
        f.write('.pth')
    assert target.read_text() == 'epoch_2.pth'
    with pytest.raises(KeyboardInterrupt):
        with checkpoint_hook.open(str(target), 'w') as f:
            f.write('epoch_3')
            raise KeyboardInterrupt
    assert target.read_text() == 'epoch_2.pth'  # an interrupted write: none
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint']
    with checkpoint_hook.open(str(target)) as f:  # reading is the builtin's
        assert f.read() == 'epoch_2.pth'


def test_mmengine_saves_checkpoints_atomically(tmp_path):
    from mmengine.fileio import get_file_backend
    from mmengine.runner import save_checkpoint
    assert isinstance(get_file_backend(str(tmp_path / 'a.pth')),
                      AtomicLocalBackend)
    save_checkpoint({'state_dict': {'w': torch.ones(3)}},
                    str(tmp_path / 'a.pth'))
    assert [p.name for p in tmp_path.iterdir()] == ['a.pth']
    assert torch.equal(safe_load(str(tmp_path / 'a.pth'))['state_dict']['w'],
                       torch.ones(3))
    with pytest.raises(IsADirectoryError, match='is a directory'):
        atomic_write(b'x', tmp_path)


# ---------------------------------------------------------------------------
# which checkpoint --resume takes; work directories never mixed
# ---------------------------------------------------------------------------


def _save(path: Path, step: int) -> None:
    torch.save({'meta': {'iter': step}}, path)


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    assert ru.find_resume_checkpoint(str(tmp_path)) is None
    _save(tmp_path / 'iter_4.pth', 4)
    _save(tmp_path / 'iter_8.pth', 8)
    _save(tmp_path / 'best_acc_iter_8.pth', 8)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_8.pth'))
    assert ru.find_resume_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'iter_8.pth')
    # a save cut short (a file from before atomic saves, or another tool's)
    data = (tmp_path / 'iter_8.pth').read_bytes()
    (tmp_path / 'iter_12.pth').write_bytes(data[:len(data) // 2])
    assert not ru.is_complete_checkpoint(str(tmp_path / 'iter_12.pth'))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_12.pth'))
    assert ru.find_resume_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'iter_8.pth')
    # mmengine writes last_checkpoint in place: a kill can leave it empty
    (tmp_path / 'last_checkpoint').write_text('')
    assert ru.find_resume_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'iter_8.pth')


def test_a_work_dir_with_another_run_is_refused(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    _save(work / 'epoch_1.pth', 1)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(CLS_CONFIG)
    proc = run_tool('train.py', cfg, '--work-dir', work)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'already holds checkpoints of a run (epoch_1.pth, ' \
        'last_checkpoint)' in err
    for choice in ('--resume', '--work-dir', '--overwrite-checkpoints'):
        assert choice in err
    assert sorted(p.name for p in work.iterdir()) == \
        ['epoch_1.pth', 'last_checkpoint']  # untouched

    config = Config.fromstring(CLS_CONFIG, file_format='.py')
    config.work_dir = str(work)
    ru.check_work_dir(config, 'auto')  # resuming is fine
    ru.check_work_dir(config, None, overwrite=True)
    assert list(work.iterdir()) == []
    ru.check_work_dir(config, None)  # nothing left to mix with


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    config = Config.fromstring(CLS_CONFIG, file_format='.py')
    config.work_dir = str(tmp_path / 'empty')
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('test_resume_nothing')
    with _capture(logger) as lines:
        ru.apply_resume(config, 'auto')
    assert config.resume is False
    assert any('holds no complete checkpoint to resume from; training '
               'starts from scratch' in line for line in lines)
    with pytest.raises(FileNotFoundError, match='no such checkpoint file'):
        ru.apply_resume(config, str(tmp_path / 'missing.pth'))


class _capture:
    """Collect the records mmengine's current logger emits."""

    def __init__(self, logger) -> None:
        import logging
        self.logger = logger
        self.lines: List[str] = []
        outer = self

        class Handler(logging.Handler):
            def emit(self, record):
                outer.lines.append(record.getMessage())

        self.handler = Handler()

    def __enter__(self) -> List[str]:
        self.logger.addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self.handler)


def test_toy_configs_keep_at_most_two_checkpoints():
    for path in sorted((REPO / 'configs' / 'toy').glob('*.py')):
        hook = Config.fromfile(str(path)).default_hooks.checkpoint
        assert 0 < hook.get('max_keep_ckpts', -1) <= 2, path.name


def test_every_shipped_config_registers_the_safety_hooks():
    """So that other entry points (mmpretrain's, mmdet's, mmseg's own
    tools/train.py, mim) get exact resumes and checked checkpoints too."""
    paths = sorted(p for p in (REPO / 'configs').rglob('*.py')
                   if '_base_' not in p.parts)
    assert len(paths) > 40
    for path in paths:
        types = [h['type'] for h in
                 Config.fromfile(str(path)).get('custom_hooks', [])]
        for name in ru.SAFETY_HOOKS:
            assert f'swat_mm.{name}' in types, path.name
