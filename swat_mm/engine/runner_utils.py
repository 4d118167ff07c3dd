"""Shared logic of ``tools/train.py`` and ``tools/test.py``.

The two tools accept configs of mmpretrain, mmdet and mmsegmentation. The
toolbox is taken from ``cfg.default_scope``, and each step below follows
that toolbox's own ``tools/train.py`` / ``tools/test.py`` (mmdet 3.3.0,
mmseg 1.2.2, mmpretrain 1.2.0), so a config behaves as it would under the
toolbox's entry point.

On top of that, :func:`apply_device_fixes` and :func:`init_distributed`
make CPU runs work on mmengine 0.10.7 (see ``REFERENCE.md`` section 4):
SyncBN becomes BN where no process group with GPUs can exist, and a
launcher on CPU uses gloo, a DDP wrapper without ``device_ids`` and a
process-group init that does not call ``torch.cuda.set_device``. Every
automatic change prints one line starting with ``[swat_mm]``.
"""
import contextlib
import glob
import importlib
import logging
import os
import os.path as osp
import re
import zipfile
from copy import deepcopy
from typing import Any, Iterator, List, Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

TOOLBOXES = ('mmpretrain', 'mmdet', 'mmseg')

#: The visualization hook each toolbox's ``tools/test.py`` drives.
VISUALIZATION_HOOKS = {
    'mmdet': 'DetVisualizationHook',
    'mmseg': 'SegVisualizationHook',
    'mmpretrain': 'VisualizationHook',
}

#: Norm layer types that need an initialised process group with GPUs:
#: ``SyncBN`` (torch's SyncBatchNorm, CUDA only in training) and mmcv's
#: ``MMSyncBN`` (CUDA kernels).
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def log_change(message: str) -> None:
    """Print one line about an automatic change, on the first rank only.

    The lines are printed before the runner (and the process group) exists,
    so the rank comes from the launcher's environment variables.
    """
    for var in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if var in os.environ:
            if os.environ[var] != '0':
                return
            break
    print_log(f'[swat_mm] {message}', logger='current', level=logging.INFO)


# ---------------------------------------------------------------------------
# config and toolbox
# ---------------------------------------------------------------------------


def get_toolbox(cfg: Config) -> str:
    """The toolbox a config belongs to, from its ``default_scope``.

    Raises:
        ValueError: the scope is missing or not one of :data:`TOOLBOXES`.
    """
    scope = cfg.get('default_scope', None)
    if scope not in TOOLBOXES:
        raise ValueError(
            f'Cannot tell which toolbox runs this config: default_scope is '
            f'{scope!r}; set default_scope to one of {list(TOOLBOXES)}.')
    return scope


def register_toolbox(toolbox: str) -> None:
    """Import every module of ``toolbox`` into its registries.

    ``default_scope`` alone would import them lazily when the runner builds
    the first module; doing it up front makes errors in the toolbox show up
    before any work and lets the tools use the toolbox's classes (e.g.
    ``mmdet.evaluation.DumpDetResults``). The default scope itself is left
    to the runner, which sets it from the config.
    """
    if toolbox not in TOOLBOXES:
        raise ValueError(f'Unknown toolbox {toolbox!r}')
    utils = importlib.import_module(f'{toolbox}.utils')
    utils.register_all_modules(init_default_scope=False)


def add_cfg_options_argument(parser: Any) -> None:
    """``--cfg-options`` with the wording of OpenMMLab's tools."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs; lists as '
        'key="[a,b]" or key=a,b, nested as key="[(a,b),(c,d)]", no spaces')


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none') -> Config:
    """Read a config, merge ``--cfg-options`` and record the launcher."""
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def set_work_dir(cfg: Config, work_dir: Optional[str],
                 config_path: str) -> None:
    """``work_dir`` priority as in every OpenMMLab tool: CLI, then the
    config, then ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


# ---------------------------------------------------------------------------
# device fixes
# ---------------------------------------------------------------------------


def _is_sync_bn(value: Any) -> bool:
    if isinstance(value, str):
        # 'mmcv.SyncBN' or 'mmengine.SyncBN' name the same layer.
        return value.rsplit('.', 1)[-1] in SYNC_BN_TYPES
    return value is torch.nn.SyncBatchNorm


def replace_sync_bn(node: Any, prefix: str = '') -> List[str]:
    """Turn every ``dict(type='SyncBN' | 'MMSyncBN', ...)`` under ``node``
    into ``type='BN'`` in place, keeping its other keys.

    Args:
        node: a config, dict, list or tuple (searched recursively).
        prefix: dotted path of ``node``, used in the returned names.

    Returns:
        The dotted paths of the dicts that changed, e.g.
        ``['model.backbone.norm_cfg']``.
    """
    changed: List[str] = []
    if isinstance(node, Config):
        node = node._cfg_dict
    if isinstance(node, dict):
        if _is_sync_bn(node.get('type', None)):
            node['type'] = 'BN'
            changed.append(prefix or '<root>')
        for key, value in node.items():
            if isinstance(value, (dict, list, tuple)):
                path = f'{prefix}.{key}' if prefix else str(key)
                changed += replace_sync_bn(value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            if isinstance(value, (dict, list, tuple)):
                changed += replace_sync_bn(value, f'{prefix}[{i}]')
    return changed


def apply_device_fixes(cfg: Config, launcher: str) -> None:
    """Adapt ``cfg`` to the machine it runs on; logs one line per change.

    * SyncBN -> BN when CUDA is missing, and in a single process without a
      launcher on any machine: SyncBN needs a process group (and GPUs) to
      train, and its statistics equal BN's in one process anyway.
    * With a launcher and no CUDA: the ``gloo`` backend (NCCL needs GPUs),
      no ``sync_bn`` conversion by the runner, and a DDP wrapper with
      ``device_ids=None`` (mmengine passes ``[LOCAL_RANK]``, which DDP
      rejects for a CPU module). :func:`init_distributed` does the rest.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                         f'{launcher!r}')
    cuda = torch.cuda.is_available()
    if not cuda or launcher == 'none':
        changed = replace_sync_bn(cfg)
        if changed:
            reason = 'no CUDA' if not cuda else 'single process, no launcher'
            log_change(f'SyncBN -> BN ({reason}) in: {", ".join(changed)}')
    if cuda or launcher == 'none':
        return

    if cfg.get('sync_bn', None):
        log_change(f'sync_bn={cfg.sync_bn!r} -> None (SyncBatchNorm cannot '
                   'train on CPU)')
        cfg.sync_bn = None

    env_cfg = cfg.get('env_cfg', None)
    if env_cfg is None:
        cfg.env_cfg = env_cfg = ConfigDict()
    dist_cfg = env_cfg.get('dist_cfg', None)
    if dist_cfg is None:
        env_cfg.dist_cfg = dist_cfg = ConfigDict()
    if dist_cfg.get('backend', None) != 'gloo':
        log_change(f'env_cfg.dist_cfg.backend={dist_cfg.get("backend")!r} '
                   "-> 'gloo' (no CUDA)")
        dist_cfg.backend = 'gloo'

    wrapper = cfg.get('model_wrapper_cfg', None)
    wrapper = ConfigDict() if wrapper is None else wrapper
    old = dict(wrapper)
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    # What mmengine uses when model_wrapper_cfg is None; keep it.
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    wrapper.device_ids = None
    cfg.model_wrapper_cfg = wrapper
    log_change(f'model_wrapper_cfg={old or None} -> {dict(wrapper)} '
               '(DDP on CPU needs device_ids=None)')


def check_amp(cfg: Config, requested: bool) -> None:
    """Enable AMP for ``--amp`` as the toolboxes do, refusing it on CPU.

    mmengine's ``AmpOptimWrapper`` asserts a GPU; on CPU it would fail
    after the model and data are built, with a message that does not name
    the cause. A config that selects ``AmpOptimWrapper`` itself is refused
    the same way.

    Raises:
        RuntimeError: AMP requested without CUDA.
    """
    optim_wrapper = cfg.get('optim_wrapper', None)
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper') \
        if optim_wrapper is not None else None
    if not torch.cuda.is_available():
        if requested:
            raise RuntimeError(
                '--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper asserts '
                'one) and torch.cuda.is_available() is False here; run '
                'without --amp on CPU.')
        if wrapper_type is not None and \
                str(wrapper_type).rsplit('.', 1)[-1] == 'AmpOptimWrapper':
            raise RuntimeError(
                "optim_wrapper.type='AmpOptimWrapper' in the config needs a "
                'CUDA GPU and torch.cuda.is_available() is False here; set '
                "--cfg-options optim_wrapper.type=OptimWrapper for CPU.")
    if not requested:
        return
    if optim_wrapper is None:
        raise RuntimeError('--amp given but the config has no optim_wrapper')
    if str(wrapper_type).rsplit('.', 1)[-1] == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
        return
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.setdefault('loss_scale', 'dynamic')


@contextlib.contextmanager
def _cuda_set_device_disabled() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op for the enclosed block only.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device(local_rank)``
    before ``init_process_group`` for the pytorch, mpi and slurm launchers,
    with no check for a GPU; without one it raises and distributed training
    on CPU cannot start. Nothing else in that function touches CUDA, so
    disabling the call for its duration, and only then, is enough; the
    original function is restored afterwards even if init fails.
    """
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def init_distributed(cfg: Config, launcher: str) -> None:
    """Initialise the process group on CPU before the runner does.

    With CUDA (or without a launcher) this does nothing: the runner's own
    ``setup_env`` initialises the group as usual. On CPU the runner would
    fail in ``torch.cuda.set_device``; initialising here first, with the
    same ``mp_cfg`` and ``dist_cfg`` the runner would use, makes the
    runner skip its own init (it checks ``is_distributed()``).
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    from mmengine.dist import init_dist, is_distributed
    from mmengine.utils.dl_utils import set_multi_processing
    if is_distributed():
        return
    env_cfg = cfg.get('env_cfg', None) or {}
    # Same order as Runner.setup_env: the start method first, so init_dist
    # does not pick 'spawn' and the runner then warn when forcing 'fork'.
    set_multi_processing(**env_cfg.get('mp_cfg', {}), distributed=True)
    dist_cfg = dict(env_cfg.get('dist_cfg', {}))
    with _cuda_set_device_disabled():
        init_dist(launcher, **dist_cfg)
    log_change(f'process group initialised on CPU ({launcher} launcher, '
               f'{dist_cfg.get("backend")}) without torch.cuda.set_device')


# ---------------------------------------------------------------------------
# safety hooks
# ---------------------------------------------------------------------------

#: Hooks every run of swat_mm's tools gets unless its config has them:
#: checkpoints are checked against the model before they are loaded
#: (:class:`swat_mm.engine.hooks.CheckpointFitHook`) and the random state
#: of every rank travels with the checkpoint
#: (:class:`swat_mm.engine.hooks.RandomStateHook`).
SAFETY_HOOKS = ('CheckpointFitHook', 'RandomStateHook')


def add_safety_hooks(cfg: Config) -> None:
    """Append :data:`SAFETY_HOOKS` missing from ``cfg.custom_hooks``.

    A hook the config already lists (``'swat_mm.X'`` or ``'X'``) keeps the
    config's settings.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    present = {str(h.get('type', '')).rsplit('.', 1)[-1] for h in hooks
               if isinstance(h, dict)}
    for name in SAFETY_HOOKS:
        if name not in present:
            hooks.append(ConfigDict(type=f'swat_mm.{name}'))
    cfg.custom_hooks = hooks


# ---------------------------------------------------------------------------
# train options
# ---------------------------------------------------------------------------


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole torch checkpoint file: a zip archive
    with its central directory (the last thing written), so a file cut
    short by a kill is not one. Reads only the directory."""
    if not osp.isfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _checkpoint_step(path: str) -> int:
    match = re.search(r'(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else -1


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` without a path continues from.

    ``last_checkpoint`` names it, as in mmengine; if that file is missing,
    empty (mmengine writes it in place: swat_mm makes that write atomic,
    but a work directory may come from elsewhere) or names a file that is
    gone or incomplete, the complete ``epoch_*.pth`` /
    ``iter_*.pth`` with the highest step is taken instead, with a log
    line. ``best_*.pth`` files are never resumed from.

    Returns:
        The path, or ``None`` when the work directory holds no complete
        checkpoint.
    """
    last = osp.join(work_dir, 'last_checkpoint')
    named = ''
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        for candidate in (named, osp.join(work_dir, osp.basename(named))):
            if named and is_complete_checkpoint(candidate):
                return candidate
    found = [p for p in glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
             if not osp.basename(p).startswith('best_')
             and is_complete_checkpoint(p)]
    if not found:
        return None
    path = max(found, key=lambda p: (_checkpoint_step(p), osp.getmtime(p)))
    if osp.isfile(last):
        log_change(f'last_checkpoint names {named!r}, which is not a '
                   f'complete checkpoint; resuming from {path} instead')
    return path


def existing_checkpoints(work_dir: str) -> List[str]:
    """Checkpoint files (``*.pth``) and ``last_checkpoint`` in
    ``work_dir``, sorted."""
    if not osp.isdir(work_dir):
        return []
    names = glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        names.append(last)
    return sorted(names)


def check_work_dir(cfg: Config, resume: Optional[str],
                   overwrite: bool = False) -> None:
    """Refuse to train a new run into a work directory that holds
    another run's checkpoints.

    Without ``--resume``, mmengine would write ``epoch_1.pth`` over the old
    one, keep the old run's later checkpoints and move ``last_checkpoint``:
    a work directory mixing two runs. ``overwrite`` (``--overwrite-
    checkpoints``) removes the old checkpoints first (on the first rank),
    logging each.

    Raises:
        RuntimeError: checkpoints exist, no resume and no overwrite.
    """
    if resume is not None or cfg.get('resume', False):
        return
    existing = existing_checkpoints(cfg.work_dir)
    if not existing:
        return
    if not overwrite:
        shown = ', '.join(osp.basename(p) for p in existing[:5])
        more = f' and {len(existing) - 5} more' if len(existing) > 5 else ''
        raise RuntimeError(
            f'The work directory {cfg.work_dir} already holds checkpoints '
            f'of a run ({shown}{more}); a new run would overwrite some of '
            'them and mix the two. Continue that run with --resume, train '
            'into another directory with --work-dir, or delete its '
            'checkpoints first with --overwrite-checkpoints.')
    if os.environ.get('RANK', '0') != '0':
        return
    for path in existing:
        os.remove(path)
        log_change(f'--overwrite-checkpoints: removed {path}')


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume`` as mmdet/mmpretrain: ``'auto'`` resumes from the latest
    complete checkpoint in ``work_dir`` (:func:`find_resume_checkpoint`);
    a path resumes from that file. A config's own ``resume=True`` without
    ``load_from`` is the same as ``'auto'``.

    With nothing to resume, training starts from scratch after a warning
    that says so (mmengine only logs "resumed from ... None").

    Raises:
        FileNotFoundError: the named checkpoint does not exist.
    """
    if resume is None and cfg.get('resume', False) and \
            cfg.get('load_from', None) is None:
        resume = 'auto'
    if resume == 'auto':
        path = find_resume_checkpoint(cfg.work_dir)
        if path is None:
            print_log(
                f'[swat_mm] --resume: {cfg.work_dir} holds no complete '
                'checkpoint to resume from; training starts from scratch.',
                logger='current', level=logging.WARNING)
            cfg.resume = False
            return
        cfg.resume = True
        cfg.load_from = path
    elif resume is not None:
        if not osp.isfile(osp.expanduser(resume)):
            raise FileNotFoundError(
                f'--resume {resume}: no such checkpoint file; give an '
                'existing file, or --resume alone to continue from the '
                'latest checkpoint of the work directory.')
        cfg.resume = True
        cfg.load_from = resume


def apply_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr`` as mmdet: the config must name the base batch
    size the learning rate was set for."""
    scale = cfg.get('auto_scale_lr', None)
    if scale is None or 'base_batch_size' not in scale:
        raise RuntimeError(
            '--auto-scale-lr needs auto_scale_lr=dict(enable=False, '
            'base_batch_size=...) in the config; it has none.')
    scale.enable = True


def apply_dataloader_options(cfg: Config, toolbox: str,
                             fields: Sequence[str],
                             no_pin_memory: bool = False,
                             no_persistent_workers: bool = False) -> None:
    """Dataloader settings the toolboxes' tools add.

    mmpretrain's tools fill ``pin_memory=True``, a stacking
    ``default_collate`` and (for training) ``persistent_workers=True`` into
    its dataloaders unless the config sets them; its configs rely on that.
    ``persistent_workers`` is only defaulted with worker processes, since
    torch refuses it otherwise. mmdet and mmseg configs are kept as they
    are. ``--no-pin-memory`` / ``--no-persistent-workers`` apply to all.
    """
    for field in fields:
        loader = cfg.get(field, None)
        if loader is None:
            continue
        if toolbox == 'mmpretrain':
            merged = ConfigDict(pin_memory=True,
                                collate_fn=dict(type='default_collate'))
            # mmpretrain's tools/test.py does not default it for testing.
            if field != 'test_dataloader' and \
                    loader.get('num_workers', 0) > 0:
                merged.persistent_workers = True
            merged.update(loader)
            cfg[field] = loader = merged
        if no_pin_memory:
            loader.pin_memory = False
        if no_persistent_workers and 'persistent_workers' in loader:
            loader.persistent_workers = False


def disable_validation(cfg: Config) -> None:
    """``--no-validate``: drop the validation loop."""
    cfg.val_cfg = None
    cfg.val_dataloader = None
    cfg.val_evaluator = None


# ---------------------------------------------------------------------------
# test options
# ---------------------------------------------------------------------------


def trigger_visualization_hook(cfg: Config, toolbox: str, show: bool,
                               show_dir: Optional[str],
                               wait_time: float,
                               interval: int = 1) -> None:
    """``--show`` / ``--show-dir`` with each toolbox's visualization hook.

    mmdet's ``DetVisualizationHook`` takes ``draw``/``test_out_dir``,
    mmseg's ``SegVisualizationHook`` takes ``draw`` and the visualizer's
    ``save_dir``, mmpretrain's ``VisualizationHook`` takes ``enable``/
    ``out_dir``. A config without the hook gets the toolbox's one.
    """
    hook_type = VISUALIZATION_HOOKS[toolbox]
    default_hooks = cfg.get('default_hooks', None)
    if default_hooks is None:
        cfg.default_hooks = default_hooks = ConfigDict()
    hook = default_hooks.get('visualization', None)
    if hook is None:
        hook = ConfigDict(type=hook_type)
        default_hooks.visualization = hook
        log_change(f"default_hooks.visualization=dict(type='{hook_type}') "
                   'added for --show/--show-dir')
    elif str(hook.get('type', '')).rsplit('.', 1)[-1] != hook_type:
        raise RuntimeError(
            f'--show/--show-dir drive {toolbox}\'s {hook_type}, but '
            f'default_hooks.visualization is {hook.get("type")!r}')

    if toolbox == 'mmdet':
        hook.draw = True
        if show:
            hook.show = True
            hook.wait_time = wait_time
        if show_dir:
            hook.test_out_dir = show_dir
    elif toolbox == 'mmseg':
        hook.draw = True
        if show:
            hook.show = True
            hook.wait_time = wait_time
        if show_dir:
            if cfg.get('visualizer', None) is None:
                raise RuntimeError('--show-dir needs a visualizer in the '
                                   'config (mmseg: SegLocalVisualizer)')
            if not osp.isabs(show_dir):
                # mmseg would save relative to the current directory;
                # keep results with the run.
                show_dir = osp.join(cfg.work_dir, show_dir)
            cfg.visualizer.save_dir = show_dir
    else:
        hook.enable = True
        hook.show = show
        hook.wait_time = wait_time
        if show_dir and not osp.isabs(show_dir):
            # mmpretrain's hook would write relative to the current
            # directory; keep results with the run, as mmdet/mmseg do.
            show_dir = osp.join(cfg.work_dir, show_dir)
        hook.out_dir = show_dir
        hook.interval = interval


def _innermost_dataset(dataset_cfg: ConfigDict) -> ConfigDict:
    # Wrappers (RepeatDataset, ConcatDataset...) keep the real one in
    # ``dataset``; the pipeline lives there.
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def apply_tta(cfg: Config, toolbox: str) -> None:
    """``--tta`` as each toolbox: mmdet and mmpretrain fall back to flip
    TTA when the config has no ``tta_model``/``tta_pipeline``; mmseg needs
    both in the config."""
    if toolbox == 'mmseg':
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            raise RuntimeError(f'--tta with an mmseg config needs {missing} '
                               'in the config (mmseg has no default)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
        return

    test_dataset = _innermost_dataset(cfg.test_dataloader.dataset)
    if 'tta_model' not in cfg:
        if toolbox == 'mmdet':
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                             max_per_img=100))
        else:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
        log_change(f'tta_model={cfg.tta_model["type"]} (config has none)')
    if 'tta_pipeline' not in cfg:
        pipeline = test_dataset.pipeline
        cfg.tta_pipeline = deepcopy(pipeline)
        if toolbox == 'mmdet':
            pack = dict(type='PackDetInputs',
                        meta_keys=('img_id', 'img_path', 'ori_shape',
                                   'img_shape', 'scale_factor', 'flip',
                                   'flip_direction'))
        else:
            pack = pipeline[-1]
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[dict(type='RandomFlip', prob=1.),
                         dict(type='RandomFlip', prob=0.)], [pack]])
        log_change('tta_pipeline = test pipeline with horizontal flip TTA '
                   '(config has none)')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    if toolbox == 'mmdet':
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    else:
        test_dataset.pipeline = cfg.tta_pipeline


def apply_out(cfg: Config, toolbox: str, out: Optional[str]) -> None:
    """The config side of ``--out``: mmseg writes prediction files through
    its ``IoUMetric`` (``output_dir``, ``keep_results``); mmdet and
    mmpretrain add a dump metric to the built runner
    (:func:`add_dump_metric`)."""
    if out is None or toolbox != 'mmseg':
        return
    evaluators = cfg.test_evaluator
    for evaluator in evaluators if isinstance(evaluators, list) \
            else [evaluators]:
        evaluator['output_dir'] = out
        evaluator['keep_results'] = True


def add_dump_metric(runner: Any, toolbox: str, out: Optional[str],
                    out_item: Optional[str] = None) -> None:
    """The runner side of ``--out`` for mmdet (``DumpDetResults``, a
    ``.pkl``) and mmpretrain (``DumpResults`` unless only metrics are
    wanted)."""
    if out is None or toolbox == 'mmseg':
        return
    if toolbox == 'mmdet':
        if not out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out for mmdet must be a .pkl/.pickle file')
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=out))
    elif out_item in ('pred', None):
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))


def build_runner(cfg: Config) -> Any:
    """``Runner.from_cfg``, or the registered ``runner_type`` if set."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
