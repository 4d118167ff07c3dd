from .config import fast_layers, use_fast_layers
from .drop_path import DropPath
from .neighbours import fold3x3, gather3x3, scatter3x3, unfold3x3
from .norm import LayerNorm2d
from .pointwise import PointwiseConv
from .res_dwconv import ResDWConv
from .shape import ceil_to
from .spectral import (ORIENTATIONS, HighpassTap, SpectralChannelMixing,
                       collect_spectra, orientation_energy)
from .stoken_attention import (StokenAttention, affinity_map,
                               collect_affinities)
from .swat_mixing import (SWATAttention, SWATConvMlp, SWATTokenConvMlp,
                          layout_to_tokens, map_to_tokens,
                          subpatches_to_tokens, tokens_to_layout,
                          tokens_to_map, tokens_to_subpatches)
from .swat_tokenizer import SWATTokenizer

__all__ = [
    'DropPath', 'ceil_to', 'fast_layers', 'use_fast_layers', 'gather3x3',
    'scatter3x3', 'unfold3x3', 'fold3x3', 'LayerNorm2d', 'PointwiseConv',
    'ResDWConv', 'SpectralChannelMixing', 'HighpassTap', 'collect_spectra',
    'orientation_energy', 'ORIENTATIONS', 'StokenAttention', 'affinity_map',
    'collect_affinities', 'SWATTokenizer', 'SWATAttention', 'SWATConvMlp',
    'SWATTokenConvMlp', 'tokens_to_layout', 'layout_to_tokens',
    'tokens_to_subpatches', 'subpatches_to_tokens', 'tokens_to_map',
    'map_to_tokens'
]
