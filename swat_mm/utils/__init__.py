from .checkpoint import (NotACheckpointError, UnsafeCheckpointError,
                         check_checkpoint_format,
                         install_safe_checkpoint_loader, safe_load)

__all__ = ['NotACheckpointError', 'UnsafeCheckpointError',
           'check_checkpoint_format', 'install_safe_checkpoint_loader',
           'safe_load']
