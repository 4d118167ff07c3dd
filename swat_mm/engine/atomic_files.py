"""Checkpoints written whole or not at all.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(...)``
through its local file backend: a process killed during the write leaves
a truncated file under the checkpoint's real name, which ``tools/test.py``,
``load_from`` or a user picking the newest file then meets.
:class:`AtomicLocalBackend` writes to a temporary file in the same
directory, flushes it to disk and renames it over the target
(``os.replace``, atomic on POSIX and Windows), so a kill at any moment
leaves the old file or the new one. :func:`install_atomic_local_backend`
(called by ``import swat_mm``) makes it mmengine's backend for local paths;
``tools/train.py`` and the runner's ``CheckpointHook`` then save through it.

mmengine's ``CheckpointHook`` writes ``last_checkpoint`` with a plain
``open(path, 'w')``; :func:`install_atomic_local_backend` gives that module
an ``open`` whose text writes go through :func:`atomic_write` as well
(reads are the builtin's), so ``last_checkpoint`` names the old checkpoint
or the new one, never nothing.

A kill leaves at most the hidden temporary file
(``.<name>.tmp-<pid>``) behind; the next write of the same name removes
such leftovers.
"""
import builtins
import glob
import io
import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio.backends import LocalBackend, register_backend

_installed = []


def atomic_write(data: Union[bytes, str], filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``filepath`` through a temporary file and a rename.

    Raises:
        IsADirectoryError: ``filepath`` is a directory (checked before any
            write).
    """
    filepath = str(filepath)
    if osp.isdir(filepath):
        raise IsADirectoryError(
            f'Cannot write {filepath}: it is a directory; give a file path.')
    folder, name = osp.split(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    prefix = osp.join(folder, f'.{name}.tmp-')
    for stale in glob.glob(glob.escape(prefix) + '*'):
        try:
            os.remove(stale)
        except OSError:
            pass
    tmp = f'{prefix}{os.getpid()}'
    if isinstance(data, str):
        data = data.encode(encoding)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose writes are atomic
    (:func:`atomic_write`)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj, filepath, encoding)


class _AtomicTextWriter(io.StringIO):
    """A text file for ``with open(path, 'w') as f``: collects what is
    written and hands it to :func:`atomic_write` when the block ends
    without an error."""

    def __init__(self, path: str, encoding: str = 'utf-8') -> None:
        super().__init__()
        self._path = path
        self._encoding = encoding

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            atomic_write(self.getvalue(), self._path, self._encoding)
        self.close()


def atomic_text_open(file, mode: str = 'r', *args, **kwargs):
    """``open`` whose ``'w'`` mode writes atomically at the end of the
    ``with`` block; any other mode is the builtin ``open``."""
    if mode == 'w':
        return _AtomicTextWriter(str(file), kwargs.get('encoding') or
                                 'utf-8')
    return builtins.open(file, mode, *args, **kwargs)


def install_atomic_local_backend() -> None:
    """Register :class:`AtomicLocalBackend` as mmengine's ``'local'``
    backend (the one for paths without a prefix), and give mmengine's
    ``checkpoint_hook`` module :func:`atomic_text_open` for its
    ``last_checkpoint`` write. Idempotent."""
    if _installed:
        return
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    from mmengine.hooks import checkpoint_hook
    checkpoint_hook.open = atomic_text_open  # module global before builtin
    _installed.append(AtomicLocalBackend)
