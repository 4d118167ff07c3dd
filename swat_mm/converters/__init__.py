"""Checkpoint converters from the official repositories to mmpretrain /
mmdet / mmseg layouts, one function per model family."""
from .common import ConversionError, load_official_state_dict
from .stvit import convert_stvit
from .svt import convert_svt
from .swat import convert_swat
from .swat_swin import convert_swat_swin

__all__ = [
    'ConversionError', 'load_official_state_dict', 'convert_stvit',
    'convert_svt', 'convert_swat', 'convert_swat_swin'
]
