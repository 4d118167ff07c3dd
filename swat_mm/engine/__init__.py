"""Runtime parts for mmengine's Runner: hooks that make training runs safe
to interrupt and checkpoints safe to load."""
from . import hooks  # noqa: F401  (registers the hooks)
