"""Placeholder: RandomStateHook is being written (issue 23, item 1)."""
from mmengine.hooks import Hook

from swat_mm.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    pass
