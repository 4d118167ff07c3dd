from .checkpoint_fit import CheckpointFitHook
from .random_state import RandomStateHook

__all__ = ['CheckpointFitHook', 'RandomStateHook']
