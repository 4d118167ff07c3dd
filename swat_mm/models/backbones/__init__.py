from .stvit import STViT
from .svt import SVT
from .swat_mlp import SWATMixer, SWATResMLP
from .swat_swin import SWATSwin
from .swat_vit import SWATViT

__all__ = ['STViT', 'SVT', 'SWATViT', 'SWATMixer', 'SWATResMLP', 'SWATSwin']
