from .checkpoint import (UnsafeCheckpointError, install_safe_checkpoint_loader,
                         safe_load)

__all__ = ['UnsafeCheckpointError', 'install_safe_checkpoint_loader',
           'safe_load']
