from .drop_path import DropPath, add_branch, has_dropout
from .fast_paths import cpu_fast_paths
from .norm import LayerNorm2d
from .res_dwconv import ResDWConv
from .spectral import SpectralChannelMixing
from .swat_mixing import (SWATAttention, SWATConvMlp, SWATTokenConvMlp,
                          layout_to_tokens, map_to_tokens,
                          subpatches_to_tokens, tokens_to_layout,
                          tokens_to_map, tokens_to_subpatches)
from .swat_tokenizer import SWATTokenizer

__all__ = [
    'DropPath', 'add_branch', 'has_dropout', 'cpu_fast_paths', 'LayerNorm2d',
    'ResDWConv', 'SpectralChannelMixing', 'SWATTokenizer', 'SWATAttention',
    'SWATConvMlp', 'SWATTokenConvMlp', 'tokens_to_layout',
    'layout_to_tokens', 'tokens_to_subpatches', 'subpatches_to_tokens',
    'tokens_to_map', 'map_to_tokens'
]
