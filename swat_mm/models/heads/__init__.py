from .svt_head import SVTClsHead

__all__ = ['SVTClsHead']
