"""The command-line tools: train/test entry points, the CPU fixes they apply,
the distributed launch scripts and the FLOPs counter.

Everything runs for real on the CPU: tiny STViT classifiers on 32x32 images
written into a temporary directory, the tools as subprocesses with the same
interpreter as pytest. ``tests/test_checkpoint_safety.py`` reuses the
helpers defined here.
"""
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.forked_tools import run_python

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NO_CUDA = not torch.cuda.is_available()

# --------------------------------------------------------------------------
# helpers (also used by test_checkpoint_safety.py)
# --------------------------------------------------------------------------

TINY_ARCH = dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1],
                 num_heads=[1, 2, 3, 4])


def make_images(root: Path, per_class: int = 8, size: int = 32) -> Path:
    """An ImageNet-style folder (one sub-folder per class) of random PNGs;
    the second class is brighter, so there is something to learn."""
    import cv2
    rng = np.random.RandomState(0)
    for label, name in enumerate(['dark', 'bright']):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.randint(0, 128, (size, size, 3)) + 100 * label
            cv2.imwrite(str(root / name / f'{i}.png'), img.astype(np.uint8))
    return root


def write_cls_config(path: Path, data_root: Path, max_iters: int = 6,
                     checkpoint_interval: int = 3,
                     norm: str = 'SyncBN', extra: str = '') -> Path:
    """A complete mmpretrain config: a 4-stage STViT (one block each) with
    the given backbone norm, SGD with momentum and a warm-up, seeded and
    deterministic, checkpoints every ``checkpoint_interval`` iterations.
    ``env_cfg`` asks for NCCL, as real configs do, so the CPU switch to gloo
    is exercised."""
    path.write_text(f'''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=2, mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=True),
    backbone=dict(type='swat_mm.STViT', arch={TINY_ARCH!r},
                  stoken_size=(4, 2, 1, 1), drop_path_rate=0.,
                  norm_cfg=dict(type={norm!r}, requires_grad=True),
                  out_indices=(3, )),
    neck=dict(type='swat_mm.STViTClsNeck', in_channels=64, out_channels=32),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=32,
              loss=dict(type='CrossEntropyLoss')))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={str(data_root)!r},
                 pipeline=train_pipeline),
    sampler=dict(type='InfiniteSampler', shuffle=True))
test_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={str(data_root)!r},
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict()
train_cfg = dict(by_epoch=False, max_iters={max_iters})
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0,
         end=4),
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval={checkpoint_interval}),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
log_processor = dict(by_epoch=False)
visualizer = dict(type='UniversalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=True)
log_level = 'INFO'
load_from = None
resume = False
{extra}
''')
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd: List[str], timeout: int = 300,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run a command from the repository root; output captured as text."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def run_tool(tool: str, *args: str, timeout: int = 300,
             env: Optional[Dict[str, str]] = None
             ) -> subprocess.CompletedProcess:
    """``python tools/<tool> args...`` with pytest's interpreter; the
    caller checks the exit status (:func:`assert_ok` or its own)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return run_python([REPO / 'tools' / tool, *args], cwd=REPO, env=full_env,
                      timeout=timeout)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f'exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}'
        f'\n--- stderr\n{proc.stderr[-6000:]}')


def read_log(work_dir: Path) -> str:
    """The runner's text log(s) in ``work_dir/<timestamp>/``, concatenated
    in time order."""
    logs = sorted(Path(work_dir).glob('*/*.log'))
    assert logs, f'no log under {work_dir}'
    return '\n'.join(p.read_text() for p in logs)


@pytest.fixture(scope='session')
def image_root(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp('tiny_images'))


# --------------------------------------------------------------------------
# CPU fixes applied to configs
# --------------------------------------------------------------------------


def test_sync_bn_becomes_bn_in_config_and_model(tmp_path, image_root):
    from mmengine.config import Config
    from swat_mm.engine.runner_utils import apply_device_fixes
    from swat_mm.utils.complexity import build_model

    cfg = Config.fromfile(write_cls_config(
        tmp_path / 'cfg.py', image_root, norm='SyncBN',
        extra="norm_cfg = dict(type='SyncBN', requires_grad=True)\n"
              "aux = [dict(head=dict(norm_cfg=dict(type='MMSyncBN')))]"))
    apply_device_fixes(cfg, 'none')  # single process: always BN
    assert cfg.model.backbone.norm_cfg == dict(type='BN', requires_grad=True)
    assert cfg.norm_cfg.type == 'BN'
    assert cfg.aux[0]['head']['norm_cfg']['type'] == 'BN'

    model, toolbox = build_model(cfg)
    assert toolbox == 'mmpretrain'
    kinds = [type(m) for m in model.modules()]
    # 4 stem BNs, 1 per block (4), 1 per down-sampling (3), 1 in the neck
    assert kinds.count(nn.BatchNorm2d) == 12
    assert nn.SyncBatchNorm not in kinds


@pytest.mark.skipif(not NO_CUDA, reason='CPU-only behaviour')
def test_launcher_on_cpu_uses_gloo_and_ddp_without_device_ids(
        tmp_path, image_root):
    from mmengine.config import Config
    from swat_mm.engine.runner_utils import apply_device_fixes

    cfg = Config.fromfile(write_cls_config(
        tmp_path / 'cfg.py', image_root,
        extra="model_wrapper_cfg = dict(find_unused_parameters=True)\n"
              "sync_bn = 'torch'"))
    apply_device_fixes(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.sync_bn is None
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert dict(cfg.model_wrapper_cfg) == dict(
        type='MMDistributedDataParallel', device_ids=None,
        find_unused_parameters=True, broadcast_buffers=False)


@pytest.mark.skipif(not NO_CUDA, reason='CPU-only behaviour')
def test_amp_on_cpu_is_refused_with_a_clear_error(tmp_path, image_root):
    cfg = write_cls_config(tmp_path / 'cfg.py', image_root)
    proc = run_tool('train.py', cfg, '--amp', '--work-dir', tmp_path / 'w')
    assert proc.returncode == 1
    assert 'RuntimeError: --amp needs a CUDA GPU' in proc.stderr
    # refused before any training started
    assert not list((tmp_path / 'w').glob('*.pth'))


# --------------------------------------------------------------------------
# distributed training on CPU
# --------------------------------------------------------------------------


RANK_PROBE = '''
"""Records, per rank, what that rank trained on (written by the test)."""
import json
import os.path as osp

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):
    def before_run(self, runner):
        self.iters, self.samples = 0, []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.iters += 1
        self.samples += [int(d.sample_idx) for d in data_batch['data_samples']]

    def after_run(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        checksum = sum(p.double().sum().item() for p in model.parameters())
        with open(osp.join(runner.work_dir, f'rank{get_rank()}.json'),
                  'w') as f:
            json.dump(dict(world_size=get_world_size(), iters=self.iters,
                           samples=self.samples, checksum=checksum,
                           wrapper=type(runner.model).__name__), f)
'''


@pytest.mark.skipif(not NO_CUDA, reason='CPU (gloo) launch')
def test_dist_train_two_processes_on_cpu(tmp_path, image_root):
    """``tools/dist_train.sh CONFIG 2`` on CPU: both ranks train in one
    DDP group, each on its half of the data, ending with equal weights."""
    (tmp_path / 'rank_probe.py').write_text(RANK_PROBE)
    cfg = write_cls_config(
        tmp_path / 'cfg.py', image_root, max_iters=2, checkpoint_interval=2,
        extra="custom_imports = dict(imports=['swat_mm', 'rank_probe'], "
              "allow_failed_imports=False)\n"
              "custom_hooks = [dict(type='RankProbeHook')]")
    work_dir = tmp_path / 'work'
    proc = run(['bash', str(REPO / 'tools' / 'dist_train.sh'), str(cfg), '2',
                '--work-dir', str(work_dir)],
               env=dict(PYTHON=PYTHON, PORT=str(free_port()),
                        PYTHONPATH=str(tmp_path)), timeout=400)
    assert_ok(proc)  # torchrun exits 0 only if every rank did
    out = proc.stdout + proc.stderr
    assert "[swat_mm] env_cfg.dist_cfg.backend='nccl' -> 'gloo'" in out
    assert 'device_ids' in out and '[swat_mm] SyncBN -> BN' in out

    log = read_log(work_dir)
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'Iter(train) [1/2]' in log and 'Iter(train) [2/2]' in log

    ranks = [json.loads((work_dir / f'rank{r}.json').read_text())
             for r in (0, 1)]
    for rank in ranks:
        assert rank['world_size'] == 2
        assert rank['iters'] == 2
        assert rank['wrapper'] == 'MMDistributedDataParallel'
        assert len(rank['samples']) == 8  # 2 iterations x batch 4
    # the sampler gave each rank its own half of the 16 images
    assert sorted(ranks[0]['samples'] + ranks[1]['samples']) == \
        list(range(16))
    # gradients were all-reduced: both ranks hold the same weights
    assert ranks[0]['checksum'] == ranks[1]['checksum']

    ckpt = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                      weights_only=False)
    assert ckpt['meta']['iter'] == 2
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])


# --------------------------------------------------------------------------
# FLOPs counter
# --------------------------------------------------------------------------


def test_flops_of_a_convolution_are_exact():
    from swat_mm.utils.complexity import count_complexity

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 4, 1))
    result = count_complexity(model, (32, 32))
    # multiply-adds: 32*32 outputs x (8 x 3*3*3) + 32*32 x (4 x 8)
    assert result['flops'] == 32 * 32 * 8 * 27 + 32 * 32 * 4 * 8
    assert result['params'] == 8 * 27 + 8 + 4 * 8 + 4
    assert result['input_shape'] == (1, 3, 32, 32)


def test_flops_count_fused_attention():
    from swat_mm.utils.complexity import count_complexity

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Conv2d(3, 3 * 8, 1, bias=False)

        def forward(self, x):
            b, _, h, w = x.shape
            q, k, v = self.qkv(x).flatten(2).reshape(b, 3, 2, 4, h * w) \
                .permute(1, 0, 2, 4, 3)
            return F.scaled_dot_product_attention(q, k, v)

    result = count_complexity(Attn(), (4, 4))
    tokens, heads, head_dim = 16, 2, 4
    qkv = tokens * 24 * 3
    attention = heads * tokens * tokens * (head_dim + head_dim)
    assert result['flops'] == qkv + attention


def test_flops_of_resnet18_match_the_model_zoo():
    """mmpretrain's model zoo: ResNet-18, 11.69M params, 1.82 GFLOPs."""
    from mmengine.config import Config
    from swat_mm.utils.complexity import count_complexity

    cfg = Config(dict(
        default_scope='mmpretrain',
        model=dict(type='ImageClassifier',
                   backbone=dict(type='ResNet', depth=18),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=1000,
                             in_channels=512))))
    result = count_complexity(cfg)  # default 224 x 224 for mmpretrain
    assert result['input_shape'] == (1, 3, 224, 224)
    assert result['params'] == 11_689_512
    assert round(result['flops'] / 1e9, 2) == 1.82
    backbone = count_complexity(cfg, backbone_only=True)
    assert backbone['params'] == 11_689_512 - 513_000
    assert 0 < result['flops'] - backbone['flops'] < 600_000


def _toolbox_config(toolbox: str, name: str) -> str:
    """A config shipped inside an installed toolbox (its .mim folder)."""
    import importlib
    package = importlib.import_module(toolbox)
    return osp.join(osp.dirname(package.__file__), '.mim', 'configs', name)


@pytest.mark.parametrize('toolbox, name, shape, params_m, gflops', [
    # Swin paper (arXiv 2103.14030), tables 2 and 3: Swin-T Mask R-CNN
    # 48M / 267G at 1280x800; Swin-T UperNet 60M / 945G at 512x2048.
    ('mmdet', 'swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', None, 48, 267),
    ('mmseg', 'swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
     '8xb2-160k_ade20k-512x512.py', (512, 2048), 60, 945),
])
def test_flops_of_dense_models_match_the_swin_paper(toolbox, name, shape,
                                                    params_m, gflops):
    """Whole detectors and segmentors, counted from the toolboxes' own
    Swin-T configs (their pretrained init_cfg is never loaded)."""
    from mmengine.config import Config
    from swat_mm.utils.complexity import count_complexity

    cfg = Config.fromfile(_toolbox_config(toolbox, name))
    result = count_complexity(cfg, shape)
    assert result['toolbox'] == toolbox
    # within the papers' rounding (measured: 47.79M / 267.01G and
    # 59.94M / 945.66G)
    assert abs(result['params'] / 1e6 - params_m) < 0.5
    assert abs(result['flops'] / 1e9 - gflops) < 1


def test_get_flops_cli_stvit_small(tmp_path):
    """The CLI on an STViT-S classifier: 25.50M params as the official model
    (REFERENCE.md); FLOPs printed as a table."""
    cfg = tmp_path / 'stvit_s.py'
    cfg.write_text('''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['swat_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='swat_mm.STViT', arch='small'),
    neck=dict(type='swat_mm.STViTClsNeck', in_channels=512,
              out_channels=1024),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024))
''')
    proc = run_tool('analysis_tools/get_flops.py', cfg)
    assert_ok(proc)
    rows = dict(re.findall(r'\| (.+?) +\| +(\S+) \|', proc.stdout))
    assert rows['params (M)'] == '25.50'
    assert rows['input shape'] == '1x3x224x224'
    # 4.37G on the official code (REFERENCE.md), whose identity-kernel
    # unfold/fold convolutions add a little that F.unfold/F.fold do not.
    assert rows['FLOPs (G, multiply-adds)'] == '4.36'
