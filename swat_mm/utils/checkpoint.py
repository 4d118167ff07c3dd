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

A user who trusts a file that pickles other objects (a checkpoint of
another code base, one with custom classes in its ``meta``) sets the
environment variable ``SWAT_MM_TRUST_CHECKPOINTS=1`` (:data:`TRUST_ENV`):
a local file the allow-list refuses is then loaded with
``weights_only=False``, with a warning naming the file. The default stays
refusal, and the refusal's message names the opt-out.

Only local paths (mmengine's ``''`` scheme) go through :func:`safe_load`;
``http(s)://``, ``s3://``, ``open-mmlab://``, ``torchvision://`` and the
other prefixes keep mmengine's own loaders (remote files are read by
``torch.hub``'s ``load_state_dict_from_url``, with torch's default
``weights_only=True``), and the opt-out does not apply to them.

A file that is no PyTorch checkpoint at all (a text file, an image, an
empty, truncated or corrupt file) is told apart by its format before torch
reads it, and refused with a :class:`NotACheckpointError` that says what
the file looks like.
"""
import logging
import os
import os.path as osp
import pickle
import struct
import zipfile
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


class NotACheckpointError(ValueError):
    """The file is not a PyTorch checkpoint (``torch.save`` output) at all:
    its message reads ``not a PyTorch checkpoint: PATH (WHY)``."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into
    (``swat_mm.CheckpointFitHook``, :mod:`swat_mm.utils.load_guard`)."""


#: ``torch.save`` (torch >= 1.6) writes a zip archive; older versions (and
#: ``_use_new_zipfile_serialization=False``) a pickle stream that starts
#: with this magic number.
_ZIP_MAGIC = b'PK\x03\x04'
_EMPTY_ZIP_MAGIC = b'PK\x05\x06'
_LEGACY_MAGIC = (0x1950a86a20f9469cfc6c).to_bytes(10, 'little')
_PICKLE_PROTO = 0x80  # pickle protocol >= 2 starts with PROTO <n>
_HEAD_BYTES = 512

#: Other formats met in place of checkpoints, by their magic bytes.
_FILE_SIGNATURES = (
    (b'\x89PNG\r\n\x1a\n', 'a PNG image'),
    (b'\xff\xd8\xff', 'a JPEG image'),
    (b'GIF87a', 'a GIF image'),
    (b'GIF89a', 'a GIF image'),
    (b'%PDF', 'a PDF document'),
    (b'\x1f\x8b', 'gzip-compressed data (unpack it first)'),
    (b'BZh', 'bzip2-compressed data (unpack it first)'),
    (b'\xfd7zXZ\x00', 'xz-compressed data (unpack it first)'),
    (b'\x89HDF\r\n\x1a\n', 'an HDF5 file (Keras / h5py weights)'),
    (b'\x93NUMPY', 'a NumPy .npy array'),
    (b'<!DOCTYPE', 'an HTML page (a download link that returned a web '
     'page?)'),
    (b'<html', 'an HTML page (a download link that returned a web page?)'),
    (b'version https://git-lfs', 'a Git LFS pointer (run git lfs pull)'),
)


def _looks_like_text(head: bytes) -> bool:
    if not head or b'\x00' in head:
        return False
    try:
        head.decode('utf-8')
    except UnicodeDecodeError as err:
        # a multi-byte character cut by the end of the sample is fine
        if err.start < len(head) - 3:
            return False
    return True


def _is_safetensors(head: bytes, size: int) -> bool:
    # 8-byte little-endian header length, then a JSON object
    if len(head) < 10 or head[8:9] != b'{':
        return False
    (header_len, ) = struct.unpack('<Q', head[:8])
    return 2 <= header_len <= size - 8


def _describe_head(head: bytes, size: int) -> Optional[str]:
    """What a file that is neither a zip archive nor a pickle stream is, by
    its first bytes; None when it may still be a torch file."""
    for magic, what in _FILE_SIGNATURES:
        if head.startswith(magic):
            return f'{what}, {size} bytes'
    if _is_safetensors(head, size):
        return ('a safetensors file: load it with '
                'safetensors.torch.load_file and torch.save the dict')
    if _looks_like_text(head):
        first = head.decode('utf-8', 'replace').strip().splitlines()
        first_line = first[0][:60] if first else ''
        return f'a text file, {size} bytes, starting {first_line!r}'
    return (f'binary data that is neither a zip archive (torch.save since '
            f'torch 1.6) nor a pickle stream (older torch.save); first '
            f'bytes {head[:8].hex(" ")}')


def check_checkpoint_format(filename: str) -> str:
    """Tell a ``torch.save`` file apart from anything else by its format.

    Returns:
        ``'zip'`` (torch >= 1.6) or ``'legacy'`` (a pickle stream with
        torch's magic number).

    Raises:
        NotACheckpointError: empty, text, an image or other known format,
            a zip archive that is truncated/corrupt or holds no
            ``data.pkl``, a pickle without torch's magic number.
    """
    size = os.path.getsize(filename)

    def refuse(why: str) -> NotACheckpointError:
        return NotACheckpointError(
            f'not a PyTorch checkpoint: {filename} ({why})')

    if size == 0:
        raise refuse('an empty file: was it written completely?')
    with open(filename, 'rb') as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        try:
            with zipfile.ZipFile(filename) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise refuse(f'a truncated or corrupt zip archive, {size} '
                         f'bytes: {err}; download or copy it again') from None
        if not any(n == 'data.pkl' or n.endswith('/data.pkl')
                   for n in names):
            listed = ', '.join(names[:5]) + (', ...' if len(names) > 5
                                             else '')
            raise refuse(f'a zip archive without the data.pkl that '
                         f'torch.save writes; it holds: {listed or "nothing"}'
                         )
        return 'zip'
    if len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5:
        if _LEGACY_MAGIC not in head[:32]:
            raise refuse('a pickle stream without the magic number of '
                         'torch.save: pickled by something else; '
                         'torch.save the tensors it holds')
        return 'legacy'
    raise refuse(_describe_head(head, size) or 'unknown format')


#: The environment variable that lets :func:`safe_load` unpickle a local
#: file the allow-list refuses (``1``); unset, empty or ``0``: refuse.
TRUST_ENV = 'SWAT_MM_TRUST_CHECKPOINTS'


def checkpoints_trusted() -> bool:
    """Whether :data:`TRUST_ENV` says to load refused files anyway.

    Raises:
        ValueError: a value other than ``1``, ``0`` or empty (a typo must
            not silently keep, or silently drop, the protection).
    """
    value = os.environ.get(TRUST_ENV, '').strip()
    if value not in ('', '0', '1'):
        raise ValueError(
            f'{TRUST_ENV}={value!r} is not understood: set {TRUST_ENV}=1 to '
            'load checkpoints that pickle objects beyond tensors (only for '
            f'files you trust), or unset it (or {TRUST_ENV}=0) to refuse '
            'them')
    return value == '1'


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

    With ``SWAT_MM_TRUST_CHECKPOINTS=1`` (:data:`TRUST_ENV`) a file the
    allow-list refuses is loaded with ``weights_only=False`` instead, with
    a warning: unpickling it runs whatever code it carries.

    Raises:
        FileNotFoundError: no such file.
        NotACheckpointError: the file is no ``torch.save`` output (see
            :func:`check_checkpoint_format`), or torch finds its archive
            or pickle stream cut short.
        UnsafeCheckpointError: the file pickles another type of object
            (and :data:`TRUST_ENV` is not ``1``).
        ValueError: :data:`TRUST_ENV` has a value other than 0 or 1.
    """
    trusted = checkpoints_trusted()
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    file_format = check_checkpoint_format(filename)
    allowed = mmengine_safe_globals() + list(extra_safe_globals)
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
        except (EOFError, IndexError, KeyError, struct.error) as err:
            # torch's unpickler ran out of input or met garbage: a zip
            # record or an old-format stream cut short or corrupt
            if file_format == 'zip' and not isinstance(err, EOFError):
                raise
            raise NotACheckpointError(
                f'not a PyTorch checkpoint: {filename} (a torch '
                f'{file_format} file that does not read to its end, '
                f'{type(err).__name__}: {err}; truncated or corrupt, copy '
                'it again)') from None
        except RuntimeError as err:
            # torch's zip reader refusing the archive (a valid directory
            # but records that do not read)
            if not str(err).startswith('PytorchStreamReader failed'):
                raise
            raise NotACheckpointError(
                f'not a PyTorch checkpoint: {filename} (a corrupt torch zip '
                f'archive: {str(err).splitlines()[0]})') from None
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
    if trusted:
        print_log(
            f'{TRUST_ENV}=1: loading {filename} with weights_only=False; it '
            f'pickles objects beyond checkpoint data ({names}), and '
            'unpickling runs any code they carry', logger='current',
            level=logging.WARNING)
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    raise UnsafeCheckpointError(
        f'Refusing to load {filename}: it pickles objects that are not '
        f'plain checkpoint data ({names}). swat_mm loads checkpoints with '
        'weights_only=True because unpickling can run arbitrary code. If '
        f'you trust this file, set the environment variable {TRUST_ENV}=1 '
        'to load it as it is, or re-save its tensors once: torch.save('
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
