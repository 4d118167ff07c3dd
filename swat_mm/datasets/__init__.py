"""Data transforms of swat_mm (scope ``swat_mm``): token labelling for SVT."""
from .token_label import (TRANSFORMS, LoadTokenLabel, MakeTokenLabel,
                          TokenLabelRandomResizedCrop, dense_label_target)

__all__ = ['TRANSFORMS', 'LoadTokenLabel', 'MakeTokenLabel',
           'TokenLabelRandomResizedCrop', 'dense_label_target']
