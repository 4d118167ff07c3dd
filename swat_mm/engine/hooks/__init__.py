from .checkpoint_fit import CheckpointFitHook
from .eval_mode_training import EvalModeTrainingHook
from .random_state import RandomStateHook

__all__ = ['CheckpointFitHook', 'EvalModeTrainingHook', 'RandomStateHook']
