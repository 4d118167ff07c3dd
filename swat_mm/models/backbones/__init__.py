from .stvit import STViT
from .svt import SVT

__all__ = ['STViT', 'SVT']
