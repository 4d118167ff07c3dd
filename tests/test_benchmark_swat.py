"""The benchmark's comparison with the official SWAT code: the official
ViT/DeiT, Swin, Mixer and ResMLP built from a clone (patched in a temporary
copy) with our weights agree with ours, and a changed weight shows (no
timing assertions)."""
import os
import os.path as osp

import pytest
import torch

from swat_mm.models.backbones.swat_mlp import SWATMixer, SWATResMLP
from swat_mm.models.backbones.swat_swin import SWATSwin
from swat_mm.models.backbones.swat_vit import SWATViT
from tests.tiny_archs import SWAT_MIXER_TINY, SWAT_RESMLP_TINY, SWAT_VIT_TINY
from tools.analysis_tools import benchmark_engine as bm
from tools.official import swat as osw

OFFICIAL_SWAT = os.environ.get('SWAT_MM_OFFICIAL_SWAT', '/work/official/SWAT')
needs_official = pytest.mark.skipif(
    not osp.isfile(osp.join(OFFICIAL_SWAT, 'timm', 'models',
                            'vision_transformer.py')),
    reason=f'no clone of kkahatapitiya/SWAT at {OFFICIAL_SWAT} (set '
    'SWAT_MM_OFFICIAL_SWAT); CI has none')

# two layers each: the official code runs these in the comparison too
VIT_TINY = dict(SWAT_VIT_TINY, num_layers=2)
MIXER_TINY = dict(SWAT_MIXER_TINY, num_layers=2)
RESMLP_TINY = dict(SWAT_RESMLP_TINY, num_layers=2)
# Swin-T tables, fewer blocks (the official code runs at 224 only)
SWIN_SHALLOW = dict(depths=[2, 1, 1, 1], num_heads=[3, 6, 12, 24])
TOL = dict(rtol=1e-4, atol=1e-5)


def _close(a, b):
    return torch.allclose(a, b, rtol=TOL['rtol'],
                          atol=TOL['atol'] * b.abs().max().item())


@needs_official
@pytest.mark.parametrize('kind', ['vit', 'swin', 'mixer', 'resmlp'])
def test_official_swat_agrees_and_detects_changed_weights(kind):
    """Same weights: same output (last map); one changed weight shows."""
    pytest.importorskip('einops')
    torch.manual_seed(0)
    if kind == 'vit':
        ours = SWATViT(arch=VIT_TINY, img_size=48).eval()
        official = osw.build_official_swat_vit(OFFICIAL_SWAT, ours).eval()
        x = torch.randn(2, 3, 48, 48)
    elif kind == 'swin':
        ours = SWATSwin(arch=SWIN_SHALLOW, drop_path_rate=0.).eval()
        official = osw.build_official_swat_swin(OFFICIAL_SWAT, ours).eval()
        x = torch.randn(1, 3, 224, 224)
    elif kind == 'mixer':
        ours = SWATMixer(arch=MIXER_TINY, img_size=32).eval()
        official = osw.build_official_swat_mixer(OFFICIAL_SWAT, ours).eval()
        x = torch.randn(2, 3, 32, 32)
    else:
        ours = SWATResMLP(arch=RESMLP_TINY, img_size=32).eval()
        official = osw.build_official_swat_resmlp(OFFICIAL_SWAT,
                                                  ours).eval()
        x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = ours(x)[-1], official(x)
        assert a.shape == b.shape
        assert _close(a, b), (a - b).abs().max()
        # a weight of the per-token conv (the part the fast path rewrites),
        # of the conv MLP, or (ResMLP, whose 1e-4 layer scales would hide a
        # small change inside the branch) a layer scale
        m = official.model
        weight = {'vit': lambda: m.blocks[0].attn.qkv.weight[0, 0],
                  'swin': lambda: m.layers[0].blocks[0].attn.qkv.weight[0, 0],
                  'mixer': lambda: m.blocks[0].mlp_channels.fc3.weight[0, 0],
                  'resmlp': lambda: m.blocks[0].ls2}[kind]()
        weight.add_(1e-2)
        assert not _close(ours(x)[-1], official(x))
    # the installed timm (if any) is untouched by the official copy
    import sys
    timm = sys.modules.get('timm')
    assert timm is None or 'official_swat' not in (timm.__file__ or '')


@needs_official
def test_comparison_job_with_official_swat(monkeypatch):
    """run_job with both implementations of a SWAT table entry: outputs
    match and the speed-up per pair is reported."""
    pytest.importorskip('einops')
    monkeypatch.setitem(bm.MODEL_TABLE, 'swat-vit-test', bm.ModelEntry(
        'swat_mm.models.backbones.swat_vit',
        dict(type='SWATViT', arch=VIT_TINY, img_size=48),
        bm.OfficialEntry(osw.build_official_swat_vit, sizes=[(48, 48)])))
    for mode in ('infer', 'train'):
        result = bm.run_job(bm.make_job(
            model='swat-vit-test', size=(48, 48), batch=1, mode=mode,
            warmup=0, repeats=2, threads=1, official=OFFICIAL_SWAT,
            impls=('ours', 'official')))
        ours, official = result['rows']
        assert ours['outputs_match'] is True, ours['max_abs_diff']
        assert ours['speedup_p25'] <= ours['speedup_vs_official'] <= \
            ours['speedup_p75']


@needs_official
def test_official_builders_refuse_what_the_official_code_cannot_run():
    with pytest.raises(ValueError, match='num_heads == token_channels'):
        osw.build_official_swat_vit(
            OFFICIAL_SWAT, SWATViT(arch=dict(VIT_TINY, num_heads=1),
                                   img_size=48))
    with pytest.raises(ValueError, match='avg_featmap'):
        osw.build_official_swat_vit(
            OFFICIAL_SWAT, SWATViT(arch=VIT_TINY, img_size=48,
                                   out_type='featmap'))
    with pytest.raises(ValueError, match='tokenizer'):
        osw.build_official_swat_swin(OFFICIAL_SWAT, SWATSwin(arch=dict(
            SWIN_SHALLOW, tokenizer=dict(stem_channels=64))))


def test_missing_clone_is_reported(tmp_path):
    ours = SWATViT(arch=VIT_TINY, img_size=48)
    with pytest.raises(FileNotFoundError, match='clone'):
        osw.build_official_swat_vit(str(tmp_path), ours)
