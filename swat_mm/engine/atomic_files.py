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

A kill leaves at most the hidden temporary file
(``.<name>.tmp-<pid>``) behind; the next write of the same name removes
such leftovers.
"""
import glob
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


def install_atomic_local_backend() -> None:
    """Register :class:`AtomicLocalBackend` as mmengine's ``'local'``
    backend (the one for paths without a prefix). Idempotent."""
    if _installed:
        return
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    _installed.append(AtomicLocalBackend)
