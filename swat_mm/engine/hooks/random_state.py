"""Exact resume: the random state of every rank travels with the checkpoint.

mmengine 0.10.7 saves the model, optimizer, schedulers and message hub, and
on ``resume`` re-seeds nothing but the runner's seed. A resumed run then
draws other numbers than the uninterrupted one from the moment it starts:
batch augmentations (Mixup/CutMix draw from NumPy and torch in the main
process), dropout and stochastic depth (torch), transforms run in the main
process when ``num_workers=0`` (Python's ``random`` and NumPy). The
weights drift apart from the first resumed step.

:class:`RandomStateHook` closes that gap:

* every checkpoint a ``CheckpointHook`` saves gets ``'random_state'``:
  Python's, NumPy's, torch's CPU and (when initialised) CUDA generator
  states of **every rank**, gathered just before the first rank saves,
  with the world size;
* ``--resume`` restores each rank's own states at the point the
  uninterrupted run was at when it saved: at the start of the next epoch
  (epoch-based loops, before the epoch's data loader iterator draws its
  worker seed), or after the data loader has been advanced past the
  batches already trained (iteration-based loops: the hook advances it
  itself, then restores, so that transforms replayed in the main process
  do not consume the restored state);
* validation during training runs on a forked state: the states are saved
  before it and put back after it, so a run's training randomness does not
  depend on whether or how often it validates (and a resumed run, which
  does not repeat the validation of the epoch it resumes after, stays in
  step).

The data loader's position needs no state of its own: mmengine's samplers
draw from ``seed + epoch`` (``DefaultSampler``, mmpretrain's
``RepeatAugSampler``) or from a seeded stream replayed up to the resumed
iteration (``InfiniteSampler``), and with ``persistent_workers=False``
every epoch's workers are seeded from ``seed``, rank and worker id.
Workers kept alive across epochs (``persistent_workers=True``) carry their
own generators, which no checkpoint can hold: resuming such an epoch-based
run is announced with a warning that worker-side augmentation continues
from a fresh state. So is resuming an epoch-based loop from a checkpoint
saved in the middle of an epoch, which mmengine restarts from the epoch's
first batch.

A checkpoint without ``'random_state'`` (written before this hook, or by
another tool) resumes as mmengine does, with a warning; one saved by a
different number of processes restores nothing (each rank's stream belongs
to that rank), with a warning.
"""
import random
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from swat_mm.registry import HOOKS

#: Key of the states in a checkpoint.
CHECKPOINT_KEY = 'random_state'

State = Dict[str, Any]


def get_random_state() -> State:
    """The generator states of this process, as plain checkpoint data.

    NumPy's state is stored as tensors and numbers (not its tuple with an
    ndarray) so that ``torch.load(weights_only=True)`` reads it without an
    allow-list.
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: State = dict(
        python=random.getstate(),
        numpy=dict(name=name, keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   cached_gaussian=float(gauss)),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_random_state(state: State) -> None:
    """Restore the states :func:`get_random_state` returned."""
    python = state['python']
    # torch.load gives lists where random.getstate had tuples
    random.setstate((python[0], tuple(python[1]), python[2]))
    npy = state['numpy']
    np.random.set_state((npy['name'], npy['keys'].numpy().astype(np.uint32),
                         npy['pos'], npy['has_gauss'],
                         npy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


class _Advanced:
    """A data loader iterator already advanced by ``skipped`` batches:
    the next ``skipped`` calls return ``None`` at once, then it delegates.

    IterBasedTrainLoop replays ``runner.iter`` batches after
    ``before_train_epoch`` to reach the resumed position; the hook has done
    that replay itself (before restoring the random state), so the loop's
    own replay must not move the loader again.
    """

    def __init__(self, iterator: Iterator, skipped: int) -> None:
        self._iterator = iterator
        self._skipped = skipped

    def __iter__(self) -> '_Advanced':
        return self

    def __next__(self) -> Any:
        if self._skipped:
            self._skipped -= 1
            return None
        return next(self._iterator)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every rank's random state in checkpoints; restore it on resume.

    Registered by ``tools/train.py`` for every config (and listed in the
    shipped configs' ``custom_hooks``); add it to a config used with another
    entry point as ``custom_hooks=[dict(type='swat_mm.RandomStateHook')]``.
    The priority runs it before every other hook at the start of an epoch,
    so that nothing draws from the generators before they are restored.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[State] = None
        self._forked: Optional[State] = None
        self._gathered: Optional[Tuple[int, State]] = None

    # -- saving -----------------------------------------------------------
    # Runner.save_checkpoint runs on the first rank only, so the states of
    # all ranks are gathered just before, in the same after_train_* call
    # in which a CheckpointHook (lower priority) saves: nothing draws
    # random numbers between the two.

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._checkpoint_due(runner, by_epoch=False):
            self._gather(runner)

    def after_train_epoch(self, runner) -> None:
        if self._checkpoint_due(runner, by_epoch=True):
            self._gather(runner)

    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a ``CheckpointHook`` saves in this ``after_train_iter``
        (``by_epoch=False``) or ``after_train_epoch``, by its own rule."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or \
                    hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval,
                                          hook.save_begin) or \
                    (hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(runner, hook.interval,
                                               hook.save_begin) or \
                    (hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _gather(self, runner) -> None:
        _, world_size = get_dist_info()
        state = get_random_state()
        states: List[State] = all_gather_object(state) \
            if world_size > 1 else [state]
        self._gathered = (runner.iter, dict(world_size=world_size,
                                            ranks=states))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        _, world_size = get_dist_info()
        if self._gathered is not None and self._gathered[0] == runner.iter:
            checkpoint[CHECKPOINT_KEY] = self._gathered[1]
        elif world_size == 1:
            checkpoint[CHECKPOINT_KEY] = dict(world_size=1,
                                              ranks=[get_random_state()])
        else:
            # a save outside the training loop's schedule (a best-metric
            # checkpoint, a direct call): the other ranks cannot be asked
            print_log(
                'RandomStateHook: this checkpoint was saved where the other '
                'ranks\' random states cannot be collected; it holds none, '
                'and resuming from it will not be exact.',
                logger='current', level='WARNING')

    # -- resuming ---------------------------------------------------------

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # load_from (fine-tuning, evaluation) starts fresh randomness.
        if not getattr(runner, '_resume', False):
            return
        saved = checkpoint.get(CHECKPOINT_KEY, None)
        rank, world_size = get_dist_info()
        if saved is None:
            print_log(
                'RandomStateHook: the checkpoint holds no random state (it '
                'was saved without swat_mm.RandomStateHook); training '
                'resumes with fresh random numbers, so it will not repeat '
                'an uninterrupted run exactly.', logger='current',
                level='WARNING')
            return
        if saved['world_size'] != world_size:
            print_log(
                f'RandomStateHook: the checkpoint was saved by '
                f'{saved["world_size"]} processes and this run has '
                f'{world_size}; the random state is not restored (each '
                'rank\'s stream belongs to that rank).', logger='current',
                level='WARNING')
            return
        self._pending = saved['ranks'][rank]

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            # Advance the loader here, while the replayed transforms may
            # still draw from the generators; the loop's own replay then
            # finds it done.
            for _ in range(loop.iter):
                next(loop.dataloader_iterator)
            loop.dataloader_iterator = _Advanced(loop.dataloader_iterator,
                                                 loop.iter)
        else:
            loader = loop.dataloader
            if loop.iter != loop.epoch * len(loader):
                print_log(
                    f'RandomStateHook: the checkpoint was saved in the '
                    f'middle of epoch {loop.epoch + 1} (iteration '
                    f'{loop.iter}); an epoch-based loop restarts that '
                    'epoch from its first batch, so this resumed run will '
                    'not repeat an uninterrupted one exactly. Save '
                    'checkpoints at epoch ends (CheckpointHook '
                    'by_epoch=True) for exact resumes.',
                    logger='current', level='WARNING')
            if getattr(loader, 'persistent_workers', False) and \
                    getattr(loader, 'num_workers', 0) > 0:
                print_log(
                    'RandomStateHook: the training data loader keeps its '
                    'workers alive across epochs (persistent_workers=True), '
                    'and their random state cannot be saved; transforms in '
                    'the workers continue from a fresh state, so this '
                    'resumed run will not repeat an uninterrupted one '
                    'exactly. Set persistent_workers=False in '
                    'train_dataloader for exact resumes.',
                    logger='current', level='WARNING')
        set_random_state(self._pending)
        self._pending = None

    # -- validation on a forked state -------------------------------------

    def before_val(self, runner) -> None:
        self._forked = get_random_state()

    def after_val(self, runner) -> None:
        if self._forked is not None:
            set_random_state(self._forked)
            self._forked = None
