"""Checkpoint safety and strict part loading, installed by ``import
swat_mm``.

:mod:`swat_mm.utils.complexity` (parameters and FLOPs of a config's model,
``tools/analysis_tools/get_flops.py``) is imported on its own: it builds on
:mod:`swat_mm.engine.runner_utils`, and ``swat_mm.engine``'s hooks import
this package, so importing it here would close a cycle.
"""
from .checkpoint import (TRUST_ENV, CheckpointMismatchError,
                         NotACheckpointError, UnsafeCheckpointError,
                         check_checkpoint_format, checkpoints_trusted,
                         install_safe_checkpoint_loader, safe_load)
from .load_guard import (allow_partial_load, check_model_parts,
                         install_strict_part_loading, partial_load_allowed)

__all__ = ['TRUST_ENV', 'CheckpointMismatchError', 'NotACheckpointError',
           'UnsafeCheckpointError',
           'allow_partial_load', 'check_checkpoint_format',
           'checkpoints_trusted',
           'check_model_parts', 'install_safe_checkpoint_loader',
           'install_strict_part_loading',
           'partial_load_allowed', 'safe_load']
