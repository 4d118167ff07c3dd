"""Golden parity cases: an official model's weights, input and logits.

The fixtures in ``data/`` were written by the official code
(``make_*_golden.py``). :func:`load_fixture` rebuilds a case's state dict
(synthetic weights from their seed, official buffers, true DTCWT filters)
and :func:`golden_classifier` turns it into our whole ``ImageClassifier``
through the shipped converter, as a user converting an official checkpoint
gets it. The per-family golden tests and ``tools/analysis_tools/gpu_check.py``
(the same cases on CUDA) share them.
"""
import os.path as osp
import re
from typing import Any, Dict, Tuple

import torch
import torch.nn as nn

from tests.golden.synth import synth_input, synth_state_dict

GOLDEN = osp.join(osp.dirname(osp.abspath(__file__)), 'data')

#: one zoo-size case per backbone family (the GPU check runs these)
FAMILY_CASES = {
    'stvit': 'stvit_small', 'svt': 'svt_h_small',
    'swat_vit': 'swat_deit_tiny', 'swat_swin': 'swat_swin_tiny',
    'swat_mixer': 'swat_mixer_tiny', 'swat_resmlp': 'swat_resmlp_s12'}


def family_of(name: str) -> str:
    if name.startswith('swat_swin'):
        return 'swat_swin'
    return name.split('_')[0]


def _true_dtcwt_filters(state: Dict[str, torch.Tensor]) -> None:
    """Synthesised SVT weights keep the true DTCWT filter buffers."""
    from swat_mm.models.layers.spectral import SpectralChannelMixing
    mixing = SpectralChannelMixing(4, 2)
    ref = {f'{name}.{k}': v for name in ('xfm', 'ifm')
           for k, v in getattr(mixing, name).state_dict().items()}
    for key in state:
        m = re.search(r'\.attn\.((xfm|ifm)\.\w+)$', key)
        if m:
            state[key] = ref[m.group(1)].clone()


def load_fixture(name: str) -> Dict[str, Any]:
    """The fixture ``name`` with its official ``state_dict`` and ``input``."""
    fixture = torch.load(osp.join(GOLDEN, f'{name}.pth'), weights_only=True)
    family = family_of(name)
    if family == 'swat_swin':
        synth = fixture['synth']
        state = synth_state_dict(synth['shapes'], synth['seed'])
        for key, value in fixture['buffers'].items():
            state[key] = value.long() if key.endswith('index') \
                else value.float()
        fixture['state_dict'] = state
        fixture['input'] = synth_input(fixture['input_synth']['shape'],
                                       fixture['input_synth']['seed'])
    elif 'state_dict' not in fixture:
        synth = fixture['synth']
        fixture['state_dict'] = synth_state_dict(synth['shapes'],
                                                 synth['seed'])
        if family == 'svt':
            _true_dtcwt_filters(fixture['state_dict'])
    return fixture


def stvit_arch(kw: Dict[str, Any]) -> Tuple[dict, dict]:
    """Our STViT ``arch`` and extra kwargs for the official constructor's."""
    arch = dict(embed_dims=kw['embed_dim'], depths=kw['depths'],
                num_heads=kw['num_heads'], layer_scale=kw['layerscale'],
                layer_scale_init_value=kw['init_values'])
    return arch, dict(stoken_size=kw['stoken_size'], n_iter=kw['n_iter'])


def svt_arch(kw: Dict[str, Any]) -> dict:
    """Our SVT ``arch`` for the official constructor's kwargs."""
    return dict(stem_channels=kw['stem_hidden_dim'],
                embed_dims=kw['embed_dims'], depths=kw['depths'],
                num_heads=kw['num_heads'], mlp_ratios=kw['mlp_ratios'])


def convert_case(name: str, fixture: Dict[str, Any]
                 ) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The shipped converter's (state dict, classifier config) of a case."""
    from swat_mm.converters import (convert_stvit, convert_svt,
                                    convert_swat, convert_swat_swin)
    family = family_of(name)
    if family == 'stvit':
        arch, extra = stvit_arch(fixture['official_kwargs'])
        state, cfg = convert_stvit(fixture['state_dict'], arch=arch)
        cfg['backbone'].update(extra)
    elif family == 'svt':
        arch = None if name == 'svt_h_small' else \
            svt_arch(fixture['official_kwargs'])
        state, cfg = convert_svt(fixture['state_dict'], arch=arch)
    elif family == 'swat_swin':
        state, cfg = convert_swat_swin(fixture['state_dict'])
    else:
        arch = fixture['arch']
        state, cfg = convert_swat(
            fixture['state_dict'],
            arch=arch if isinstance(arch, dict) else None)
    return state, cfg


def golden_classifier(name: str) -> Tuple[nn.Module, torch.Tensor,
                                          torch.Tensor]:
    """(our classifier with the case's weights, in eval mode; its input;
    the official logits)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import swat_mm  # noqa: F401  (registers the modules)
    fixture = load_fixture(name)
    state, cfg = convert_case(name, fixture)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg).eval()
    model.load_state_dict(state, strict=True)
    return model, fixture['input'], fixture['logits']


def assert_official_logits(model: nn.Module, fixture: Dict[str, Any],
                           rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """``model``'s tensor-mode logits on the fixture's input are the
    official logits of the fixture."""
    with torch.no_grad():
        logits = model(fixture['input'], mode='tensor')
    expected = fixture['logits']
    assert logits.shape == expected.shape
    assert torch.allclose(logits, expected, rtol=rtol, atol=atol), \
        (logits - expected).abs().max()
