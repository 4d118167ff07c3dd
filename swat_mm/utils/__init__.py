from .checkpoint import (NotACheckpointError, UnsafeCheckpointError,
                         check_checkpoint_format,
                         install_safe_checkpoint_loader, safe_load)
from .load_guard import (allow_partial_load, check_model_parts,
                         install_strict_part_loading, partial_load_allowed)

__all__ = ['NotACheckpointError', 'UnsafeCheckpointError',
           'allow_partial_load', 'check_checkpoint_format',
           'check_model_parts', 'install_safe_checkpoint_loader',
           'install_strict_part_loading',
           'partial_load_allowed', 'safe_load']
