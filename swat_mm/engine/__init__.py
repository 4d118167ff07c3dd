"""Runtime parts for mmengine's Runner: hooks that make training runs safe
to interrupt and checkpoints safe to load.

:mod:`swat_mm.engine.runner_utils` configures the Runner of
``tools/train.py``, ``tools/test.py`` and ``tools/misc/verify_dataset.py``
(the toolbox's own steps, plus the CPU fixes). Only those entry points need
it, so it is imported on its own (``from swat_mm.engine import
runner_utils``), not by ``import swat_mm``.
"""
from . import hooks  # noqa: F401  (registers the hooks)
from .atomic_files import (AtomicLocalBackend, atomic_write,
                           install_atomic_local_backend)

__all__ = ['AtomicLocalBackend', 'atomic_write',
           'install_atomic_local_backend']
