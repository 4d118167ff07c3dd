"""Loading mmengine checkpoints without unpickling arbitrary objects.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the
``HistoryBuffer`` and numpy objects that mmengine 0.10.7 writes into the
``message_hub`` of every training checkpoint, so ``--resume``, ``tools/test.py``
on a training checkpoint and ``Pretrained`` init from one all fail. The usual
workaround, ``weights_only=False``, would run any code a downloaded file
carries. Instead, :func:`install_safe_checkpoint_loader` replaces mmengine's
loader for local paths with one that keeps ``weights_only=True`` and allows
exactly the extra types mmengine's own checkpoints contain
(:func:`mmengine_safe_globals`). Any other pickled object is refused with an
:class:`UnsafeCheckpointError` that names it.
"""
import os.path as osp
import pickle
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


# the statistics HistoryBuffer registers by default (mmengine 0.10)
_HISTORY_BUFFER_METHODS = frozenset(('min', 'max', 'mean', 'current'))


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``getattr`` while unpickling.

    A ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'min')``; a general ``getattr`` would let a
    pickle walk from any allowed object to arbitrary code, so only those
    attributes of that class are served.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def mmengine_safe_globals() -> List[Any]:
    """The types, beyond tensors and containers, that a checkpoint saved by
    mmengine's ``CheckpointHook`` holds: the message hub's ``HistoryBuffer``
    (with its statistics methods, fetched by a restricted ``getattr``) and
    the numpy arrays and scalars inside it."""
    np_core = np._core if hasattr(np, '_core') else np.core
    types: List[Any] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        np_core.multiarray._reconstruct,
        np_core.multiarray.scalar,
    ]
    # numpy >= 1.25 pickles dtypes by their class (np.dtypes.Float64DType...).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [getattr(dtypes, name) for name in dir(dtypes)
                  if name.endswith('DType')]
    return types


def safe_load(filename: str, map_location: Optional[Any] = None,
              extra_safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load`` with ``weights_only=True`` and the mmengine allow-list.

    Args:
        extra_safe_globals: more types to allow (e.g. ``argparse.Namespace``
            for the official training scripts' checkpoints).

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file pickles another type of object.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    allowed = mmengine_safe_globals() + list(extra_safe_globals)
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
        except pickle.UnpicklingError as err:
            message = str(err)
            try:
                # Inside the context, so that only the globals outside the
                # allow-list are named, not HistoryBuffer or numpy's.
                unsafe = sorted(
                    torch.serialization.get_unsafe_globals_in_checkpoint(
                        filename))
            except Exception:  # not a zip checkpoint: report torch's words
                unsafe = []
    # No unknown global (e.g. a refused getattr): torch's own reason, which
    # follows 'WeightsUnpickler error:' in its message.
    _, found, reason = message.partition('WeightsUnpickler error:')
    reason = reason.split('Check the documentation')[0] if found else message
    names = ', '.join(unsafe) or ' '.join(reason.split())
    raise UnsafeCheckpointError(
        f'Refusing to load {filename}: it pickles objects that are not '
        f'plain checkpoint data ({names}). swat_mm loads checkpoints with '
        'weights_only=True because unpickling can run arbitrary code. If '
        'you trust this file, re-save its tensors: torch.save('
        "{'state_dict': torch.load(path, weights_only=False)"
        "['state_dict']}, new_path).") from None


_installed: List[Callable] = []


def install_safe_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints through :func:`safe_load`.

    Idempotent; affects ``Runner.resume``, ``load_checkpoint`` and
    ``Pretrained`` init of every toolbox in this process.
    """
    if _installed:
        return

    def load_from_local(filename, map_location):
        return safe_load(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)
    _installed.append(load_from_local)
