from .norm import LayerNorm2d
from .res_dwconv import ResDWConv

__all__ = ['LayerNorm2d', 'ResDWConv']
