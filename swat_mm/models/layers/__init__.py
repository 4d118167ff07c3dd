from .norm import LayerNorm2d
from .res_dwconv import ResDWConv
from .spectral import SpectralChannelMixing

__all__ = ['LayerNorm2d', 'ResDWConv', 'SpectralChannelMixing']
