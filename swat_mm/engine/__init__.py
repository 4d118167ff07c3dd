"""Runtime parts for mmengine's Runner: hooks that make training runs safe
to interrupt and checkpoints safe to load."""
from . import hooks  # noqa: F401  (registers the hooks)
from .atomic_files import (AtomicLocalBackend, atomic_write,
                           install_atomic_local_backend)

__all__ = ['AtomicLocalBackend', 'atomic_write',
           'install_atomic_local_backend']
