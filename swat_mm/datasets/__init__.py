"""Data transforms of swat_mm (scope ``swat_mm``): timm's random
interpolation for mmpretrain's crop and RandAugment, token labelling for
SVT."""
from .random_interpolation import (RandAugmentAndInterpolation,
                                   RandomResizedCropAndInterpolation)
from .token_label import (TRANSFORMS, LoadTokenLabel, MakeTokenLabel,
                          TokenLabelRandAugment, TokenLabelRandomResizedCrop,
                          dense_label_target)

__all__ = ['TRANSFORMS', 'LoadTokenLabel', 'MakeTokenLabel',
           'RandAugmentAndInterpolation', 'RandomResizedCropAndInterpolation',
           'TokenLabelRandAugment', 'TokenLabelRandomResizedCrop',
           'dense_label_target']
