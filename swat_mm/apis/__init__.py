"""Helpers behind the command-line tools, importable for tests and scripts.

``runner_utils`` holds the logic shared by ``tools/train.py`` and
``tools/test.py``; ``complexity`` counts parameters and FLOPs
(``tools/analysis_tools/get_flops.py``). Neither imports a toolbox until a
function needs it.
"""
from .complexity import DEFAULT_SHAPES, build_model, count_complexity
from .runner_utils import (TOOLBOXES, VISUALIZATION_HOOKS, apply_device_fixes,
                           check_amp, get_toolbox, init_distributed,
                           register_toolbox, replace_sync_bn)

__all__ = [
    'DEFAULT_SHAPES', 'TOOLBOXES', 'VISUALIZATION_HOOKS',
    'apply_device_fixes', 'build_model', 'check_amp', 'count_complexity',
    'get_toolbox', 'init_distributed', 'register_toolbox', 'replace_sync_bn'
]
