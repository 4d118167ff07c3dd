"""Speed and memory of the backbones, ours and (optionally) the official code.

What is measured, for one model at one input size (``python
tools/analysis_tools/benchmark.py`` is the command-line front end):

* ``mode='infer'``: ``model.eval()`` forward under ``torch.inference_mode``;
  ``mode='train'``: ``model.train()`` forward, backward of the mean of every
  output map, and an AdamW step (with a ``GradScaler`` for fp16);
  ``mode='fwdbwd'``: the same forward and backward without the optimizer
  step (gradients set to None before each step), i.e. the model's own
  share of a training step: the optimizer's cost depends only on the
  parameter count, which ours and the official model share.
* ``dtype``: ``fp32``, or ``bf16`` / ``fp16`` through ``torch.autocast``
  (weights stay fp32, as in mixed-precision training).
* latency: the wall time of single steps after ``warmup`` steps, with the
  device synchronised around each; reported as median, quartiles and
  minimum over ``repeats`` steps, and as images/s (batch / median).
* peak memory: on CUDA the caching allocator's peak
  (``torch.cuda.max_memory_allocated``) over the measured steps; on CPU the
  process's peak resident set (``resource.getrusage``), reported whole and
  as the increase over the resident set just before the first step (the
  part the forward/backward itself needs: the whole includes the Python
  interpreter, torch and the weights). Every measurement that reports a
  peak runs in a fresh subprocess, so that the peak is that model's own.
  ``tensor_memory=True`` adds, on CPU, the peak of live tensor bytes (what
  CUDA's allocator peak counts; :func:`cpu_tensor_peak_mb`): the layers
  are the same on every device, so it estimates a GPU's training memory
  without a GPU. ``generic_paths=True`` builds the model with the reference
  formulation of every layer (``swat_mm.models.layers.config``).
* comparison with the official implementation (``official=PATH`` to a clone
  of the authors' repository, imported at run time, nothing of it copied):
  the official model is built with the same hyper-parameters and given our
  weights (same names, see :data:`MODEL_TABLE`); both run on the same input
  in fp32 eval mode and must agree (``torch.allclose`` with
  ``rtol=1e-4`` and ``atol=1e-5`` times the largest official output
  magnitude: the golden-test tolerance at the output's scale); then both
  are timed in the same process, interleaved (ours, official, ours,
  official, ...), so that machine noise hits both alike, and the speed-up
  ``official time / our time`` is the median over the pairs.

Backbones are looked up in :data:`MODEL_TABLE` (``'stvit-small'``), or given
as a registry type and arch (``'STViT:base'``, ``'swat_mm.STViT:base'``), or
as a config file whose whole model is measured: in ``infer`` mode its
``tensor``-mode forward (as :func:`~swat_mm.utils.complexity.count_complexity` runs it),
in ``train``/``fwdbwd`` mode its own training step
(:func:`make_config_step`). Adding a model is one
:class:`ModelEntry` in :data:`MODEL_TABLE` (plus, for the comparison, a
function in ``tools/official/`` that builds the official model from ours).

This module is development tooling, not part of the installed package: the
command line is ``tools/analysis_tools/benchmark.py``, and code that imports
this module (the CLI, ``gpu_check.py``, the tests, the measuring
subprocesses) does so as ``tools.analysis_tools.benchmark_engine`` with the
repository root on ``sys.path``.
"""
import contextlib
import copy
import csv
import gc
import importlib
import json
import math
import os
import os.path as osp
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from tools.official.stvit import build_official_stvit
from tools.official.svt import build_official_svt
from tools.official.swat import (build_official_swat_mixer,
                                 build_official_swat_resmlp,
                                 build_official_swat_swin,
                                 build_official_swat_vit)

Size = Tuple[int, int]

#: Input sizes of the resolution sweep: classification sizes, then the
#: backbone input of the det configs (COCO test scale 1333x800, padded to
#: 32 by mmdet's preprocessor) and of the seg configs (ADE20K 512 crops).
SWEEP_SIZES: Dict[str, Size] = {
    '224': (224, 224), '384': (384, 384), '512 (ADE20K seg)': (512, 512),
    '768': (768, 768), '800x1344 (COCO det)': (800, 1344),
    '1024': (1024, 1024),
}

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}
MODES = ('infer', 'train', 'fwdbwd')

#: Columns of the result rows, in order (CSV header).
COLUMNS = [
    'model', 'impl', 'mode', 'device', 'dtype', 'batch', 'height', 'width',
    'threads', 'channels_last', 'compile', 'warmup', 'repeats',
    'latency_ms_median', 'latency_ms_p25', 'latency_ms_p75',
    'latency_ms_min', 'images_per_s', 'peak_mem_mb', 'mem_kind',
    'mem_before_mb', 'mem_delta_mb', 'tensor_peak_mb', 'generic_paths',
    'speedup_vs_official',
    'speedup_p25', 'speedup_p75', 'outputs_match', 'max_abs_diff',
    'flops_per_image', 'achieved_gflops', 'torch', 'cpu', 'allocator',
    'note'
]


# --------------------------------------------------------------------------
# The model table
# --------------------------------------------------------------------------
@dataclass
class OfficialEntry:
    """How to run the official implementation of a table entry.

    Args:
        build: ``build(repo, ours) -> nn.Module``: the official model, built
            from the clone at ``repo`` with ``ours``'s hyper-parameters and
            weights, as a module whose output is comparable with the last
            map of ``ours`` (same shape).
        sizes: the only input sizes it runs at (None: any).
        note: shown in tables and plots (e.g. why sizes are limited).
    """
    build: Callable[[str, nn.Module], nn.Module]
    sizes: Optional[Sequence[Size]] = None
    note: str = ''


@dataclass
class ModelEntry:
    """A backbone to benchmark.

    Args:
        module: module that defines and registers the class.
        cfg: the backbone config (``type`` as registered in ``swat_mm``).
        official: how to run the official code, if supported.
    """
    module: str
    cfg: Dict[str, Any]
    official: Optional[OfficialEntry] = None


_STVIT = 'swat_mm.models.backbones.stvit'
_STVIT_OFFICIAL = OfficialEntry(build_official_stvit)

_SVT = 'swat_mm.models.backbones.svt'
_SVT_OFFICIAL = OfficialEntry(
    build_official_svt, sizes=[(224, 224)],
    note='official SVT: 224x224 only (filters fixed to 56x56)')

_SWAT_VIT = 'swat_mm.models.backbones.swat_vit'
_SWAT_SWIN = 'swat_mm.models.backbones.swat_swin'
_SWAT_MLP = 'swat_mm.models.backbones.swat_mlp'


def _swat_official(build: Callable[[str, nn.Module], nn.Module]
                   ) -> OfficialEntry:
    return OfficialEntry(
        build, sizes=[(224, 224)],
        note='official SWAT: 224x224 only (sizes hard-coded)')


#: name -> entry. SVT and SWAT rows follow the same pattern: module, cfg,
#: and an OfficialEntry whose ``build`` maps our weights to the official
#: model (``sizes=[(224, 224)]`` where the official code is fixed to it).
MODEL_TABLE: Dict[str, ModelEntry] = {
    'stvit-small': ModelEntry(_STVIT, dict(type='STViT', arch='small'),
                              _STVIT_OFFICIAL),
    'stvit-base': ModelEntry(_STVIT, dict(type='STViT', arch='base'),
                             _STVIT_OFFICIAL),
    'stvit-large': ModelEntry(_STVIT, dict(type='STViT', arch='large'),
                              _STVIT_OFFICIAL),
    'svt-h-small': ModelEntry(_SVT, dict(type='SVT', arch='h-small'),
                              _SVT_OFFICIAL),
    'svt-h-base': ModelEntry(_SVT, dict(type='SVT', arch='h-base'),
                             _SVT_OFFICIAL),
    'svt-h-large': ModelEntry(_SVT, dict(type='SVT', arch='h-large'),
                              _SVT_OFFICIAL),
    'swat-deit-tiny': ModelEntry(
        _SWAT_VIT, dict(type='SWATViT', arch='deit-tiny'),
        _swat_official(build_official_swat_vit)),
    'swat-deit-small': ModelEntry(
        _SWAT_VIT, dict(type='SWATViT', arch='deit-small'),
        _swat_official(build_official_swat_vit)),
    'swat-swin-tiny': ModelEntry(
        _SWAT_SWIN, dict(type='SWATSwin', arch='tiny'),
        _swat_official(build_official_swat_swin)),
    'swat-mixer-small': ModelEntry(
        _SWAT_MLP, dict(type='SWATMixer', arch='mixer-small'),
        _swat_official(build_official_swat_mixer)),
    'swat-resmlp-s12': ModelEntry(
        _SWAT_MLP, dict(type='SWATResMLP', arch='s12'),
        _swat_official(build_official_swat_resmlp)),
}


def resolve_model(spec: str) -> ModelEntry:
    """A table name (``'stvit-small'``) or ``'Type[:arch]'`` (the type as
    registered in swat_mm, with or without the ``swat_mm.`` prefix)."""
    if spec in MODEL_TABLE:
        return MODEL_TABLE[spec]
    type_name, _, arch = spec.partition(':')
    type_name = type_name.split('.')[-1]
    for entry in MODEL_TABLE.values():
        if entry.cfg['type'] == type_name:
            cfg = dict(entry.cfg)
            if arch:
                cfg['arch'] = arch
            return ModelEntry(entry.module, cfg, entry.official)
    import swat_mm.models  # noqa: F401  (registers every backbone)
    from swat_mm.registry import MODELS
    if MODELS.get(type_name) is None:
        raise KeyError(
            f'Unknown model {spec!r}: use one of {sorted(MODEL_TABLE)}, a '
            'registered swat_mm type with an optional ":arch", or --config')
    cfg = dict(type=type_name)
    if arch:
        cfg['arch'] = arch
    return ModelEntry('swat_mm.models', cfg)


def build_backbone(entry: ModelEntry,
                   model_kwargs: Optional[Dict[str, Any]] = None) -> nn.Module:
    """Build ``entry``'s backbone in the swat_mm registry, with
    ``model_kwargs`` added to its config (no weights are loaded or
    downloaded), whatever default scope a config built earlier in the
    process has set (a registry builds in the default scope's registry)."""
    importlib.import_module(entry.module)
    from mmengine.registry import DefaultScope

    from swat_mm.registry import MODELS
    with DefaultScope.overwrite_default_scope('swat_mm'):
        return MODELS.build(dict(entry.cfg, **(model_kwargs or {})))


# --------------------------------------------------------------------------
# Timing and memory in one process
# --------------------------------------------------------------------------
def _outputs(out: Any) -> List[torch.Tensor]:
    """Every floating tensor in a (nested) model output."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _outputs(o)]
    return []


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: str):
    if dtype == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def make_step(model: nn.Module, x: torch.Tensor, mode: str,
              dtype: str = 'fp32') -> Callable[[], None]:
    """One benchmark step of ``model`` on ``x``.

    ``infer``: eval-mode forward under ``inference_mode``; ``train``:
    train-mode forward, backward of the summed means of the outputs, AdamW
    step (fp16 with a ``GradScaler``); ``fwdbwd``: ``train`` without the
    AdamW step.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {sorted(DTYPES)}, '
                         f'got {dtype!r}')
    device = x.device
    if mode == 'infer':
        model.eval()

        def step() -> None:
            with torch.inference_mode(), _autocast(device, dtype):
                model(x)
        return step

    model.train()
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == 'fp16')
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=1e-4) if mode == 'train' else None

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with _autocast(device, dtype):
            outs = _outputs(model(x))
        loss = sum(o.float().mean() for o in outs)
        scaler.scale(loss).backward()
        if optimizer is not None:
            scaler.step(optimizer)
            scaler.update()
    return step


def time_steps(steps: Dict[str, Callable[[], None]], device: torch.device,
               warmup: int, repeats: int) -> Dict[str, List[float]]:
    """Seconds per step for each of ``steps``, after ``warmup`` steps each,
    measured interleaved (A B A B ...) so that noise hits all alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _quantiles(values: Sequence[float]) -> Tuple[float, float, float]:
    """(p25, median, p75), linear interpolation."""
    v = sorted(values)
    if len(v) == 1:
        return v[0], v[0], v[0]
    q = statistics.quantiles(v, n=4, method='inclusive')
    return q[0], q[1], q[2]


def _current_rss_mb() -> float:
    """Resident set now (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open('/proc/self/statm') as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf('SC_PAGE_SIZE') / 2**20
    except (OSError, ValueError, IndexError):
        return math.nan


def _peak_rss_mb() -> float:
    """Peak resident set of this process (``ru_maxrss``: kB on Linux,
    bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10


def gemm_rate(n: int = 2048, dtype: str = 'fp32', device: str = 'cpu',
              repeats: int = 5) -> float:
    """The machine's own matrix-multiply rate in GFLOP/s (2 n^3 per n x n
    product, best of ``repeats`` after one warm-up): the physical reference
    for the model's achieved rate."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev, dtype=DTYPES[dtype])
    b = torch.randn(n, n, device=dev, dtype=DTYPES[dtype])
    out = torch.empty(n, n, device=dev, dtype=DTYPES[dtype])
    best = math.inf
    for i in range(repeats + 1):
        _sync(dev)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(dev)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def machine_info() -> Dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(torch=torch.__version__, cpu=cpu, allocator=allocator_info())


def allocator_info() -> str:
    """The host allocator settings a CPU measurement ran under: a
    preloaded jemalloc/tcmalloc, glibc tunables, or ``'default'``.

    On the CPU they move the step time: glibc returns freed heap memory to
    the system and maps the largest tensors afresh, so each training step
    pays page faults for the memory it allocates again (docs/benchmarks.md
    quotes 0.1-1.7 s of a 5-7 s STViT-B step). Measuring processes inherit
    the environment, e.g. ``GLIBC_TUNABLES=glibc.malloc.trim_threshold=...``.
    """
    parts = [f'LD_PRELOAD={os.path.basename(p)}'
             for p in re.split(r'[:\s]', os.environ.get('LD_PRELOAD', ''))
             if 'malloc' in p]
    if os.environ.get('GLIBC_TUNABLES'):
        parts.append('GLIBC_TUNABLES=' + os.environ['GLIBC_TUNABLES'])
    return ' '.join(parts) or 'default'


def load_config(path: str,
                backbone_kwargs: Optional[Dict[str, Any]] = None) -> Any:
    """The config at ``path``, with ``backbone_kwargs`` (e.g.
    ``with_cp=True``) set on ``model.backbone`` and the top-level
    ``data_preprocessor`` merged into the model as mmengine's Runner does
    (mmpretrain's configs set it there)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if backbone_kwargs:
        if not isinstance(cfg.model.get('backbone'), dict):
            raise ValueError(f'{path}: --model-arg sets the backbone, and '
                             'this config\'s model has no backbone dict')
        cfg.model.backbone.update(backbone_kwargs)
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return cfg


def _config_target(path: str, size: Size,
                   backbone_kwargs: Optional[Dict[str, Any]] = None
                   ) -> nn.Module:
    """A config's whole model, as the module count_complexity traces."""
    from swat_mm.utils.complexity import (_det_data_samples, _Forward,
                                          _padded, _TwoStageForward,
                                          build_model)
    model, toolbox = build_model(load_config(path, backbone_kwargs))
    if toolbox == 'mmdet':
        samples = _det_data_samples(*_padded(size, model))
        if getattr(model, 'with_rpn', False) and \
                getattr(model, 'roi_head', None) is not None:
            return _TwoStageForward(model, samples)
        return _Forward(model, 'mmdet', samples)
    if toolbox in ('mmseg', 'mmpretrain'):
        return _Forward(model, 'tensor')
    return _Forward(model, 'plain')


# --------------------------------------------------------------------------
# A config's own training step
# --------------------------------------------------------------------------
def _as_scales(value: Any) -> List[Size]:
    """(long, short) pairs of a ``scale``/``scales`` value: an int, a pair
    of ints (as a tuple or, after config merging, a list), or a list of
    either."""
    if isinstance(value, int):
        return [(value, value)]
    if isinstance(value, (tuple, list)):
        if len(value) == 2 and all(isinstance(e, int) for e in value):
            return [(max(value), min(value))]
        return [s for v in value for s in _as_scales(v)]
    return []


def _pipeline_scales(node: Any) -> List[Size]:
    """Every (long, short) resize scale in a (nested) pipeline config."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (
            _as_scales(value) if key in ('scale', 'scales', 'img_scale')
            else _pipeline_scales(value))]
    if isinstance(node, (list, tuple)):
        return [s for item in node for s in _pipeline_scales(item)]
    return []


def training_size(cfg: Any) -> Size:
    """The largest (H, W) input the config's training pipeline hands its
    model: the segmentor's crop (``data_preprocessor.size``) or the largest
    resize scale of the train pipeline, landscape (a detector's 1333x800
    gives (800, 1333), the image aspect at which keep-ratio resizing reaches
    both bounds). Raises if the pipeline names no size."""
    from mmengine.config import Config
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    size = cfg.model.get('data_preprocessor', {}).get('size')
    if size is not None:
        return (int(size[0]), int(size[1]))
    scales = _pipeline_scales(cfg.get('train_dataloader', {}).get('dataset'))
    if not scales:
        raise ValueError('no resize scale or crop size found in the train '
                         'pipeline of the config; give the input size with '
                         '--shape H W')
    return (max(s for _, s in scales), max(l for l, _ in scales))


def training_batch(cfg: Any) -> int:
    """Images per GPU of the config's train dataloader."""
    from mmengine.config import Config
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    return int(cfg.train_dataloader.batch_size)


def synthetic_batch(model: nn.Module, toolbox: str, size: Size, batch: int,
                    instances: int = 20, seed: int = 0) -> Dict[str, Any]:
    """A training batch as the toolbox's dataloader gives it (uint8 images
    and data samples with random annotations): ``instances`` boxes with
    bitmap masks per image for a detector (mmdet's own ``demo_mm_inputs``),
    a label map for a segmentor, a label for a classifier."""
    height, width = size
    if toolbox == 'mmdet':
        from mmdet.testing import demo_mm_inputs
        heads = getattr(getattr(model, 'roi_head', None), 'bbox_head',
                        None) or getattr(model, 'bbox_head', None)
        heads = heads if isinstance(heads, nn.ModuleList) else [heads]
        # demo_mm_inputs draws labels from 1 to num_classes - 1
        classes = min(int(getattr(h, 'num_classes', 80)) for h in heads)
        return demo_mm_inputs(
            batch_size=batch, image_shapes=[(3, height, width)] * batch,
            num_items=[instances] * batch, num_classes=max(classes, 2),
            with_mask=bool(getattr(model, 'with_mask', False)))
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                            generator=generator) for _ in range(batch)]
    meta = dict(img_shape=size, ori_shape=size, pad_shape=size,
                scale_factor=(1., 1.), flip=False)
    if toolbox == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        classes = int(model.decode_head.num_classes)
        samples = []
        for _ in range(batch):
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=torch.randint(
                0, classes, (1, height, width), generator=generator))
            samples.append(sample)
        return dict(inputs=inputs, data_samples=samples)
    if toolbox == 'mmpretrain':
        from mmpretrain.structures import DataSample
        classes = int(getattr(model.head, 'num_classes', 1000))
        labels = torch.randint(0, classes, (batch, ), generator=generator)
        return dict(inputs=inputs, data_samples=[
            DataSample(metainfo=meta).set_gt_label(int(label))
            for label in labels])
    raise ValueError(f'no training batch for a {toolbox} model: the config '
                     'must build an mmdet, mmseg or mmpretrain model')


def make_config_step(path: str, size: Size, batch: int, mode: str,
                     dtype: str = 'fp32', device: str = 'cpu',
                     seed: int = 0,
                     backbone_kwargs: Optional[Dict[str, Any]] = None
                     ) -> Tuple[Callable[[], None], nn.Module]:
    """The config's own training step on a synthetic batch: the model's
    ``train_step`` (data preprocessor, loss, backward, the config's
    ``optim_wrapper`` with its parameter-wise settings) for ``train``, the
    same without the update for ``fwdbwd``. The images are ``size`` (a
    segmentor's data preprocessor pads to ``size``, not to the recipe's
    crop). SyncBN runs as BN (one process), and the weights are as
    constructed (no checkpoint); ``backbone_kwargs`` go to the backbone's
    config (see :func:`load_config`). bf16/fp16 run under autocast (on
    CUDA through mmengine's ``AmpOptimWrapper``, which also scales fp16
    losses).

    Returns:
        The step and the model.
    """
    from mmengine.optim import build_optim_wrapper

    from swat_mm.utils.complexity import build_model
    cfg = load_config(path, backbone_kwargs)
    preprocessor = cfg.model.get('data_preprocessor') or {}
    if preprocessor.get('size') is not None:
        # mmseg pads every image to the recipe's crop; the step is measured
        # at the size asked for (by default the crop itself)
        preprocessor['size'] = tuple(size)
    model, toolbox = build_model(cfg)
    dev = torch.device(device)
    model.to(dev).train()
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    amp_here = dtype != 'fp32' and dev.type != 'cpu'
    if amp_here:
        wrapper_cfg.update(type='AmpOptimWrapper',
                           dtype=str(DTYPES[dtype]).split('.')[-1])
    optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
    data = synthetic_batch(model, toolbox, size, batch, seed=seed)
    cast = _autocast(dev, dtype) if dtype != 'fp32' and not amp_here \
        else contextlib.nullcontext()

    def step() -> None:
        with cast:
            if mode == 'train':
                model.train_step(data, optim_wrapper)
                return
            with optim_wrapper.optim_context(model):
                batch_data = model.data_preprocessor(data, True)
                losses = model._run_forward(batch_data, mode='loss')
            loss, _ = model.parse_losses(losses)
            optim_wrapper.backward(loss)
            optim_wrapper.zero_grad()
    return step, model


# --------------------------------------------------------------------------
# Tensor memory on the CPU
# --------------------------------------------------------------------------
def live_tensor_mb(device: str = 'cpu') -> float:
    """Bytes of the distinct storages of every tensor Python holds on
    ``device`` (parameters, buffers, gradients, optimizer state...), the
    CPU's counterpart of ``torch.cuda.memory_allocated``."""
    seen: Dict[int, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == device \
                and not obj.is_meta:
            try:  # fake tensors (left by torch.compile) have no data
                storage = obj.untyped_storage()
                ptr = storage.data_ptr()
            except (RuntimeError, NotImplementedError):
                continue
            if ptr:
                seen[ptr] = storage.nbytes()
    return sum(seen.values()) / 2**20


def cpu_tensor_peak_mb(step: Callable[[], None]) -> float:
    """Peak of the live tensor bytes during one more ``step`` on the CPU: the
    tensors alive before it (:func:`live_tensor_mb`) plus the largest excess
    of the CPU allocator's allocations over its frees during the step, from
    the profiler's memory events. This is what ``max_memory_allocated``
    counts on CUDA; the training step runs the same layers there, so it
    estimates a GPU's peak (CUDA's workspaces, context and caching
    allocator come on top there)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    gc.collect()
    resident = live_tensor_mb('cpu')
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) \
            as prof:
        step()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results
        .events() if e.name() == '[memory]'
        and e.device_type() == DeviceType.CPU)
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return resident + peak / 2**20


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    """Measure one job in this process; see :func:`make_job` for the keys.

    Returns ``dict(rows=[...], gemm_gflops=...)``: one row (see
    :data:`COLUMNS`) per implementation.
    """
    from swat_mm.models.layers.config import fast_layers
    with fast_layers(not job.get('generic_paths')):
        return _run_job(job)


def _run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    threads = job.get('threads')
    if threads:
        torch.set_num_threads(int(threads))
    device = torch.device(job['device'])
    height, width = job['size']
    batch, mode, dtype = job['batch'], job['mode'], job['dtype']
    torch.manual_seed(job.get('seed', 0))

    impls: Dict[str, nn.Module] = {}
    steps: Dict[str, Callable[[], None]] = {}
    official_note = ''
    suffix = ''.join(
        f' {k}={v}' for k, v in (job.get('model_kwargs') or {}).items())
    if job.get('config') and mode != 'infer':
        steps['ours'], impls['ours'] = make_config_step(
            job['config'], (height, width), batch, mode, dtype,
            job['device'], job.get('seed', 0), job.get('model_kwargs'))
        name = osp.splitext(osp.basename(job['config']))[0] + suffix
    elif job.get('config'):
        impls['ours'] = _config_target(job['config'], (height, width),
                                       job.get('model_kwargs'))
        name = osp.splitext(osp.basename(job['config']))[0] + suffix
    else:
        entry = resolve_model(job['model'])
        name = job['model'] + suffix
        ours = build_backbone(entry, job.get('model_kwargs'))
        if 'ours' in job['impls']:
            impls['ours'] = ours
        if 'official' in job['impls']:
            if entry.official is None:
                raise ValueError(f'{name} has no official implementation in '
                                 'the table')
            impls['official'] = entry.official.build(job['official'], ours)
            official_note = entry.official.note
        del ours  # measured alone, the official holds only its own weights
    for model in impls.values():
        model.to(device)
    # a config's training step brings its own batch; an unused input here
    # would count as resident tensor memory
    x = None if steps else torch.randn(batch, 3, height, width,
                                        device=device)

    match: Optional[bool] = None
    max_diff = math.nan
    if len(impls) == 2:
        # agreement first, in fp32 eval mode, on this very input
        with torch.no_grad():
            a = _outputs(impls['ours'].eval()(x))[-1].float()
            b = _outputs(impls['official'].eval()(x))[-1].float()
        max_diff = (a - b).abs().max().item() if a.shape == b.shape \
            else math.inf
        scale = b.abs().max().item()
        match = a.shape == b.shape and torch.allclose(
            a, b, rtol=1e-4, atol=1e-5 * max(scale, 1e-12))

    if job.get('channels_last') and x is not None:
        x = x.contiguous(memory_format=torch.channels_last)
        for model in impls.values():
            model.to(memory_format=torch.channels_last)
    for impl, model in impls.items():
        if impl in steps:
            continue
        if job.get('compile'):
            model = torch.compile(model, backend=job['compile'])
        steps[impl] = make_step(model, x, mode, dtype)

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        mem_before = torch.cuda.memory_allocated(device) / 2**20
    else:
        mem_before = _current_rss_mb()
    times = time_steps(steps, device, job['warmup'], job['repeats'])
    if device.type == 'cuda':
        peak, mem_kind = torch.cuda.max_memory_allocated(device) / 2**20, \
            'cuda_allocator'
    else:
        peak, mem_kind = _peak_rss_mb(), 'rss'
    # a peak is one model's own only when it ran alone in this process
    own_peak = len(impls) == 1
    tensor_peak = None
    if own_peak:
        if device.type == 'cuda':
            tensor_peak = peak
        elif job.get('tensor_memory'):
            tensor_peak = cpu_tensor_peak_mb(next(iter(steps.values())))

    flops = None
    if job.get('count_flops') and 'ours' in impls and not job.get('config'):
        from swat_mm.utils.complexity import count_complexity
        flops = count_complexity(
            build_backbone(resolve_model(job['model']),
                           job.get('model_kwargs')),
            shape=(height, width))['flops']

    info = machine_info()
    rows = []
    for impl in impls:
        p25, med, p75 = _quantiles(times[impl])
        row = dict.fromkeys(COLUMNS)
        row.update(
            model=name, impl=impl, mode=mode, device=device.type,
            dtype=dtype, batch=batch, height=height, width=width,
            threads=torch.get_num_threads(),
            channels_last=bool(job.get('channels_last')),
            compile=job.get('compile') or '', warmup=job['warmup'],
            repeats=job['repeats'], latency_ms_median=med * 1e3,
            latency_ms_p25=p25 * 1e3, latency_ms_p75=p75 * 1e3,
            latency_ms_min=min(times[impl]) * 1e3,
            images_per_s=batch / med, outputs_match=match,
            max_abs_diff=max_diff,
            generic_paths=bool(job.get('generic_paths')),
            note=official_note if impl == 'official' else '', **info)
        if own_peak:
            row.update(peak_mem_mb=peak, mem_kind=mem_kind,
                       mem_before_mb=mem_before,
                       mem_delta_mb=peak - mem_before,
                       tensor_peak_mb=tensor_peak)
        if impl == 'ours' and flops is not None:
            row['flops_per_image'] = flops
            # flops are multiply-adds; 2 floating-point operations each
            row['achieved_gflops'] = 2 * flops * batch / med / 1e9
        rows.append(row)
    if len(impls) == 2:
        ratios = [o / s for s, o in zip(times['ours'], times['official'])]
        p25, med, p75 = _quantiles(ratios)
        rows[0].update(speedup_vs_official=med, speedup_p25=p25,
                       speedup_p75=p75)
    result: Dict[str, Any] = dict(rows=rows)
    if job.get('gemm'):
        result['gemm_gflops'] = gemm_rate(device=job['device'])
    return result


# --------------------------------------------------------------------------
# Fresh subprocesses
# --------------------------------------------------------------------------
_RESULT_MARK = 'SWAT_MM_BENCHMARK_RESULT '


def _worker_main() -> None:
    """Entry of a measuring subprocess: a job as JSON on stdin, the result
    as one marked JSON line on stdout."""
    job = json.loads(sys.stdin.read())
    result = run_job(job)
    sys.stdout.write('\n' + _RESULT_MARK + json.dumps(result) + '\n')
    sys.stdout.flush()


def _worker_env(threads: Optional[int]) -> Dict[str, str]:
    """This environment, with this checkout's root first on the path (the
    worker imports this module, and swat_mm, from it) and the OpenMP thread
    count set before torch starts."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [root] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return env


def run_isolated(job: Dict[str, Any], timeout: Optional[float] = None
                 ) -> Dict[str, Any]:
    """:func:`run_job` in a fresh Python process (so that its peak memory
    is its own); raises with the worker's stderr tail on failure."""
    env = _worker_env(job.get('threads'))
    cmd = [sys.executable, '-c',
           'from tools.analysis_tools.benchmark_engine import _worker_main; '
           '_worker_main()']
    proc = subprocess.run(cmd, input=json.dumps(job), capture_output=True,
                          text=True, env=env, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK):])
    raise RuntimeError(
        f'benchmark worker failed (exit {proc.returncode}) for '
        f'{job.get("model") or job.get("config")}:\n{proc.stderr[-3000:]}')


def gemm_rate_isolated(device: str = 'cpu',
                       threads: Optional[int] = None) -> float:
    """:func:`gemm_rate` in a fresh process with ``threads`` threads."""
    code = ('import sys, torch; from tools.analysis_tools.benchmark_engine '
            'import gemm_rate, _RESULT_MARK; t = int(sys.argv[1]); '
            't and torch.set_num_threads(t); '
            'print(_RESULT_MARK + str(gemm_rate(device=sys.argv[2])))')
    out = subprocess.run(
        [sys.executable, '-c', code, str(threads or 0), device],
        capture_output=True, text=True, env=_worker_env(threads))
    for line in reversed(out.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            return float(line[len(_RESULT_MARK):])
    raise RuntimeError(f'GEMM measurement failed:\n{out.stderr[-3000:]}')


def make_job(model: Optional[str] = None, config: Optional[str] = None,
             size: Size = (224, 224), batch: int = 1, dtype: str = 'fp32',
             device: str = 'cpu', mode: str = 'infer', warmup: int = 2,
             repeats: int = 10, threads: Optional[int] = None,
             official: Optional[str] = None,
             impls: Sequence[str] = ('ours', ), channels_last: bool = False,
             compile: Optional[str] = None, count_flops: bool = False,
             gemm: bool = False, seed: int = 0,
             model_kwargs: Optional[Dict[str, Any]] = None,
             generic_paths: bool = False, tensor_memory: bool = False
             ) -> Dict[str, Any]:
    """A job description (JSON-able) for :func:`run_job`.

    ``model`` is a :data:`MODEL_TABLE` name or ``'Type[:arch]'``, ``config``
    a config file; ``model_kwargs`` are added to the backbone config (e.g.
    ``dict(with_cp=True)``; for a config, to its ``model.backbone``);
    ``impls`` is ``('ours',)``, ``('official',)`` or both (then
    compared); ``count_flops`` adds the achieved arithmetic rate, ``gemm``
    the machine's GEMM rate. ``generic_paths`` builds the
    reference formulation of every layer, ``tensor_memory``
    adds the peak of live tensor bytes on the CPU from one more, profiled
    step (:func:`cpu_tensor_peak_mb`; CUDA always reports its allocator
    peak). A config in ``train``/``fwdbwd`` mode runs its own training step
    (:func:`make_config_step`).
    """
    if (model is None) == (config is None):
        raise ValueError('give exactly one of model and config')
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {sorted(DTYPES)}')
    if 'official' in impls and not official:
        raise ValueError('the official implementation needs its path')
    if config and mode != 'infer' and (compile or channels_last):
        raise ValueError('--compile and --channels-last apply to backbones '
                         'and to a config\'s infer mode, not to its own '
                         'training step')
    return dict(model=model, config=config, size=list(size), batch=batch,
                dtype=dtype, device=device, mode=mode, warmup=warmup,
                repeats=repeats, threads=threads, official=official,
                impls=list(impls), channels_last=channels_last,
                compile=compile, count_flops=count_flops, gemm=gemm,
                seed=seed, model_kwargs=dict(model_kwargs or {}),
                generic_paths=generic_paths, tensor_memory=tensor_memory)


def official_runs_at(model: str, size: Size) -> bool:
    entry = MODEL_TABLE.get(model)
    if entry is None or entry.official is None:
        return False
    sizes = entry.official.sizes
    return sizes is None or tuple(size) in {tuple(s) for s in sizes}


def benchmark(models: Sequence[str] = (), configs: Sequence[str] = (),
              sizes: Optional[Sequence[Size]] = None,
              official: Optional[str] = None, memory: bool = True,
              isolate: bool = True, **job_kwargs) -> List[Dict[str, Any]]:
    """Measure every model/config at every size; rows per :data:`COLUMNS`.

    ``sizes`` default to 224 for backbones and to each config's training
    size (:func:`training_size`); a ``batch`` of None to 1, or for a config
    in a training mode to its dataloader's images per GPU.

    With ``official``, each table model with an official entry is compared
    (agreement, interleaved timing and speed-up) in one process, and each
    implementation's peak memory is measured again alone in a fresh
    process (``memory=True``). Without ``isolate`` everything runs in this
    process (peaks then are not the model's own: left empty).
    """
    run = run_isolated if isolate else run_job
    rows: List[Dict[str, Any]] = []
    specs = [dict(model=m) for m in models] + [dict(config=c)
                                               for c in configs]
    for spec in specs:
        cfg = None
        if 'config' in spec and not (sizes and job_kwargs.get('batch')):
            from mmengine.config import Config
            cfg = Config.fromfile(spec['config'])
        kwargs = dict(job_kwargs)
        if kwargs.get('batch') is None:
            kwargs['batch'] = training_batch(cfg) if cfg and \
                kwargs.get('mode', 'infer') != 'infer' else 1
        for size in sizes or [training_size(cfg) if cfg else (224, 224)]:
            compare = bool(official) and 'model' in spec and \
                official_runs_at(spec['model'], size)
            impls = ('ours', 'official') if compare else ('ours', )
            result = run(make_job(size=size, official=official, impls=impls,
                                  **spec, **kwargs))
            new = result['rows']
            if not isolate:
                for row in new:
                    row.update(peak_mem_mb=None, mem_delta_mb=None,
                               mem_before_mb=None, mem_kind=None,
                               tensor_peak_mb=None)
            if compare and memory and isolate:
                # the timing process held both models: peaks one by one
                mem_kwargs = dict(kwargs, warmup=1,
                                  repeats=min(2, kwargs.get('repeats', 2)),
                                  count_flops=False, gemm=False)
                for row in new:
                    alone = run(make_job(size=size, official=official,
                                         impls=(row['impl'], ), **spec,
                                         **mem_kwargs))['rows'][0]
                    for key in ('peak_mem_mb', 'mem_kind', 'mem_before_mb',
                                'mem_delta_mb', 'tensor_peak_mb'):
                        row[key] = alone[key]
            if 'gemm_gflops' in result:
                for row in new:
                    row['gemm_gflops'] = result['gemm_gflops']
            rows += new
    return rows


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return ''
    if isinstance(value, float):
        if math.isnan(value):
            return ''
        return f'{value:.3g}' if abs(value) < 10 else f'{value:.1f}'
    return str(value)


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """A markdown table of the main columns."""
    cols = ['model', 'impl', 'mode', 'dtype', 'batch', 'height', 'width',
            'threads', 'latency_ms_median', 'latency_ms_p25',
            'latency_ms_p75', 'images_per_s', 'peak_mem_mb', 'mem_delta_mb',
            'tensor_peak_mb', 'speedup_vs_official', 'speedup_p25',
            'speedup_p75', 'outputs_match', 'achieved_gflops']
    cols = [c for c in cols if any(r.get(c) not in (None, '') for r in rows)]
    lines = ['| ' + ' | '.join(cols) + ' |',
             '|' + '---|' * len(cols)]
    for row in rows:
        lines.append('| ' + ' | '.join(_fmt(row.get(c)) for c in cols) +
                     ' |')
    return '\n'.join(lines)


def write_results(rows: Sequence[Dict[str, Any]], out_prefix: str,
                  extra: Optional[Dict[str, Any]] = None) -> List[str]:
    """``<prefix>.csv`` (:data:`COLUMNS`) and ``<prefix>.json`` (rows and
    ``extra``, e.g. the GEMM rate); returns the paths."""
    os.makedirs(osp.dirname(osp.abspath(out_prefix)), exist_ok=True)
    columns = COLUMNS + sorted({k for r in rows for k in r} - set(COLUMNS))
    with open(out_prefix + '.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in columns})
    with open(out_prefix + '.json', 'w') as f:
        json.dump(dict(rows=list(rows), **(extra or {})), f, indent=1)
    return [out_prefix + '.csv', out_prefix + '.json']


def plot_sweep(rows: Sequence[Dict[str, Any]], path: str,
               title: str = '') -> str:
    """Latency and peak memory against input pixels, one line per model and
    implementation (official dashed); notes of official entries that could
    not run at every size go under the plot; the title defaults to the
    first row's settings and machine. Writes a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=90)
    keys = sorted({(r['model'], r['impl']) for r in rows})
    colors = {}
    for model, impl in keys:
        colors.setdefault(model, f'C{len(colors)}')
        pts = sorted((r['height'] * r['width'], r) for r in rows
                     if (r['model'], r['impl']) == (model, impl))
        px = [p / 1e6 for p, _ in pts]
        style = dict(color=colors[model], marker='o' if impl == 'ours'
                     else 's', linestyle='-' if impl == 'ours' else '--',
                     label=f'{model} ({impl})', markersize=4)
        axes[0].plot(px, [r['latency_ms_median'] for _, r in pts], **style)
        mem = [(p, r['mem_delta_mb'] if r.get('mem_kind') == 'rss'
                else r['peak_mem_mb']) for p, r in zip(px, (r for _, r in
                                                             pts))]
        mem = [(p, m) for p, m in mem if m is not None]
        if mem:
            axes[1].plot(*zip(*mem), **style)
    kind = {r.get('mem_kind') for r in rows} - {None}
    axes[0].set_ylabel('latency per batch, ms (median)')
    axes[1].set_ylabel('peak memory, MB' + (
        ' (RSS above the pre-run level)' if kind == {'rss'} else ''))
    for ax in axes:
        ax.set_xlabel('input pixels (millions)')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.grid(True, which='both', alpha=0.3)
    axes[0].legend(fontsize=7)
    notes = sorted({r['note'] for r in rows if r.get('note')})
    if not title and rows:
        first = rows[0]
        title = (f"{first['mode']}, {first['dtype']}, batch {first['batch']}"
                 f", {first['threads']} thread(s), {first.get('cpu', '')}, "
                 f"torch {first.get('torch', '')}")
    if title:
        fig.suptitle(title, fontsize=9)
    if notes:
        fig.text(0.01, 0.01, '\n'.join(notes), fontsize=7, va='bottom')
    fig.tight_layout(rect=(0, 0.04 * len(notes), 1, 1))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def sweep(models: Sequence[str], sizes: Sequence[Size] = tuple(
        SWEEP_SIZES.values()), official: Optional[str] = None,
          **job_kwargs) -> List[Dict[str, Any]]:
    """Each model at each size, ours and (where it runs there) the official
    code, each alone in a fresh process: time and peak memory per point.
    Sizes an official entry cannot run at are noted in the rows."""
    if job_kwargs.get('batch') is None:
        job_kwargs['batch'] = 1
    rows = []
    for model in models:
        entry = resolve_model(model)
        for size in sizes:
            impls = ['ours']
            if official and entry.official is not None:
                if official_runs_at(model, size):
                    impls.append('official')
            for impl in impls:
                rows += run_isolated(make_job(
                    model=model, size=size, official=official,
                    impls=(impl, ), **job_kwargs))['rows']
    return rows
