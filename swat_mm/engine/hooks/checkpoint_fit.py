"""Placeholder: CheckpointFitHook is being written (issue 23, item 3)."""
from mmengine.hooks import Hook

from swat_mm.registry import HOOKS


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    pass
