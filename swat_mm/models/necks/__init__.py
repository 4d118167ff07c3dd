from .stvit_cls_neck import STViTClsNeck

__all__ = ['STViTClsNeck']
