"""Write the SWAT golden parity fixtures from the official implementation.

    python tests/golden/make_swat_golden.py /path/to/clone/of/kkahatapitiya/SWAT [--only NAME ...]

The official code is a modified timm 0.4 that selects its variants with
commented-out code, hard-codes the 224 sizes and does not import as shipped.
For every case this script copies the clone's ``timm`` package into a
temporary directory (nothing of it is committed), and there

* makes it importable without the rest of timm (light ``__init__`` files;
  the two names imported elsewhere but never defined by ``mlp.py``,
  ``ConvMlp`` and ``ConvMlpGeneralv2``, become aliases of ``ConvMlpGeneral``:
  no model here uses them);
* swaps the active (ViT-Ti / Mixer-Ti) settings of the marked ``START``/``END``
  regions for the case's: the tokenizer block of ``PatchEmbed.__init__`` and
  ``forward`` (written as the official variant blocks are, with the case's
  channels, kernels, grid and sub-patch), ``ConvAttention``'s ``h, w, c, ks``,
  ``Block``'s ``seq, ks, H, W``, ``MixerBlockConv``'s and ``ResBlockConv``'s
  ``H, W, h, w, c, ks1, ks2``. Every replaced snippet must occur outside the
  commented-out (''' quoted) blocks, or the script stops.

The patch functions live in ``tools/official/swat.py`` (the benchmark's
``--official`` comparison uses them too).

The official model is then built with a fixed seed, given deterministic
weights (:func:`tests.golden.synth.synth_state_dict`), run in eval mode in
fp32, and its logits are saved with the input, the family and the swat_mm
arch that corresponds. Small custom archs store their whole state dict; the
real archs (DeiT-Ti, Mixer-Ti, ResMLP-S12 at 224) store key names, shapes and
the seed.

To add a family (e.g. Swin): write ``build_<family>(timm_dir, case)`` that
patches the copy and returns the official model, add it to ``BUILDERS`` and
add its cases to ``CASES``.
"""
import argparse
import os.path as osp
import sys
import tempfile
from typing import Callable, Dict

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tests.golden.synth import synth_input, synth_state_dict  # noqa: E402
from tools.official.swat import (  # noqa: E402
    copy_timm, import_official, patch_mixer_blocks, patch_resmlp_blocks,
    patch_vit_blocks, patch_vit_tokenizer)

OUT_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')


# ---------------------------------------------------------------- patching --
# The patch functions are shared with the benchmark's comparison
# (tools/official/swat.py): copy_timm makes the copy importable,
# patch_tokenizer / patch_vit_blocks swap the marked variant settings.
patch_tokenizer = patch_vit_tokenizer


# ------------------------------------------------------------ the families --
def _tokenizer(case: dict) -> dict:
    a = case['arch']
    return dict(stem=a.get('stem_channels', 128), k1=case['stem'][0],
                s1=case['stem'][1], p1=case['stem'][2],
                c=a['token_channels'], k2=a.get('proj_kernel', 1),
                pos=a.get('pos_map_size', case.get('default_pos')),
                p=a.get('sub_patch', 8))


def _grid(case: dict, t: dict) -> tuple:
    size = case['input'][-1]
    stem_out = (size + 2 * t['p1'] - t['k1']) // t['s1'] + 1
    return stem_out, stem_out // t['k2'] // t['p']


def build_vit(timm_dir: str, case: dict) -> torch.nn.Module:
    a = case['arch']
    t = _tokenizer(case)
    stem_out, grid = _grid(case, t)
    patch_tokenizer(timm_dir, dict(t, stem_out=stem_out), grid)
    patch_vit_blocks(timm_dir, t['c'], t['p'], a.get('attn_kernel', 3), grid,
                     a.get('mlp_kernel', 5))
    vt = import_official(timm_dir, 'vision_transformer')
    size = case['input'][-1]
    return vt.VisionTransformer(
        img_size=size, patch_size=size // grid, num_classes=case['classes'],
        embed_dim=a['embed_dims'], depth=a['num_layers'],
        num_heads=a['num_heads'], mlp_ratio=a.get('mlp_ratio', 4.),
        qkv_bias=True)


def _patch_mlp_tokenizer(timm_dir: str, case: dict) -> tuple:
    t = _tokenizer(case)
    stem_out, grid = _grid(case, t)
    patch_tokenizer(timm_dir, dict(t, pos=None, stem_out=stem_out), grid)
    return t, grid


def build_mixer(timm_dir: str, case: dict) -> torch.nn.Module:
    a = case['arch']
    t, grid = _patch_mlp_tokenizer(timm_dir, case)
    patch_mixer_blocks(timm_dir, grid, t['p'], t['c'],
                       a.get('token_kernel', 3), a.get('channel_kernel', 5))
    mm = import_official(timm_dir, 'mlp_mixer')
    size = case['input'][-1]
    return mm.MlpMixer(
        num_classes=case['classes'], img_size=size, patch_size=size // grid,
        num_blocks=a['num_layers'], embed_dim=a['embed_dims'],
        mlp_ratio=tuple(a.get('mlp_ratio', (0.5, 4.0))),
        block_layer=mm.MixerBlockConv)


def build_resmlp(timm_dir: str, case: dict) -> torch.nn.Module:
    a = case['arch']
    t, grid = _patch_mlp_tokenizer(timm_dir, case)
    if a.get('token_kernel', 3) != 3 or a.get('channel_kernel', 5) != 5:
        raise SystemExit('the official ResBlockConv fixes its kernels to '
                         '3 (tokens) and 5 (channels)')
    patch_resmlp_blocks(timm_dir, grid, t['p'], t['c'])
    mm = import_official(timm_dir, 'mlp_mixer')
    size = case['input'][-1]
    # the official resmlp_12_224 with its commented-out SWAT block
    return mm.MlpMixer(
        num_classes=case['classes'], img_size=size, patch_size=size // grid,
        num_blocks=a['num_layers'], embed_dim=a['embed_dims'],
        mlp_ratio=a.get('mlp_ratio', 4.), block_layer=mm.ResBlockConv,
        norm_layer=mm.Affine)


BUILDERS: Dict[str, Callable[[str, dict], torch.nn.Module]] = {
    'vit': build_vit,
    'mixer': build_mixer,
    'resmlp': build_resmlp,
}

# ------------------------------------------------------------------- cases --
# name -> family, swat_mm arch (a dict of the backbone's arch keys, or a zoo
# name with the official settings repeated for the patches), official stem
# conv (kernel, stride, padding), input shape (square), classes, whether the
# whole state dict is stored. Cases must use square inputs: the official
# models keep a square grid.
VIT_STEM = (4, 2, 1)
MLP_STEM = (2, 2, 0)
CASES = {
    # sub-patch 4, 2 heads (= c, as the official ConvAttention requires)
    'swat_vit_tiny_a': dict(
        family='vit', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                token_channels=2, sub_patch=4,
                                stem_channels=16, pos_map_size=4,
                                attn_kernel=3, mlp_ratio=2., mlp_kernel=3),
        stem=VIT_STEM, input=(2, 3, 48, 48), classes=10, store=True),
    # ViT-B/32-style 2x2 stride-2 proj22, pos map tiled 4x4, kernels 5
    'swat_vit_tiny_b': dict(
        family='vit', arch=dict(embed_dims=48, num_layers=2, num_heads=3,
                                token_channels=3, sub_patch=4,
                                stem_channels=16, proj_kernel=2,
                                pos_map_size=8, attn_kernel=5, mlp_ratio=3.,
                                mlp_kernel=5),
        stem=VIT_STEM, input=(1, 3, 64, 64), classes=7, store=True),
    'swat_deit_tiny': dict(
        family='vit', arch=dict(embed_dims=192, num_layers=12, num_heads=3,
                                token_channels=3),
        zoo='deit-tiny', default_pos=8, stem=VIT_STEM,
        input=(1, 3, 224, 224), classes=1000, store=False),
    'swat_mixer_tiny_a': dict(
        family='mixer', arch=dict(embed_dims=32, num_layers=2,
                                  token_channels=2, sub_patch=4,
                                  stem_channels=16, token_kernel=3,
                                  channel_kernel=3),
        stem=MLP_STEM, input=(2, 3, 48, 48), classes=10, store=True),
    'swat_mixer_tiny': dict(
        family='mixer', arch=dict(embed_dims=256, num_layers=8,
                                  token_channels=4, stem_channels=64,
                                  token_kernel=3, channel_kernel=5),
        zoo='mixer-tiny', stem=MLP_STEM, input=(1, 3, 224, 224),
        classes=1000, store=False),
    'swat_resmlp_tiny_a': dict(
        family='resmlp', arch=dict(embed_dims=48, num_layers=2,
                                   token_channels=3, sub_patch=4,
                                   stem_channels=16, mlp_ratio=2.),
        stem=MLP_STEM, input=(2, 3, 32, 32), classes=5, store=True),
    'swat_resmlp_s12': dict(
        family='resmlp', arch=dict(embed_dims=384, num_layers=12,
                                   token_channels=6),
        zoo='s12', stem=MLP_STEM, input=(1, 3, 224, 224), classes=1000,
        store=False),
}


def make_case(repo: str, name: str, seed: int) -> dict:
    case = CASES[name]
    with tempfile.TemporaryDirectory(prefix='swat_golden_') as tmp:
        timm_dir = copy_timm(repo, tmp)
        torch.manual_seed(seed)
        model = BUILDERS[case['family']](timm_dir, case).eval()
    shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    state = synth_state_dict(shapes, seed)
    model.load_state_dict(state)
    x = synth_input(case['input'], seed)
    with torch.no_grad():
        logits = model(x)
    arch = case.get('zoo', case['arch'])
    fixture = dict(family=case['family'], arch=arch, input=x, logits=logits,
                   official=dict(case, arch=case['arch']))
    if case['store']:
        fixture['state_dict'] = state
    else:
        fixture['synth'] = dict(shapes=shapes, seed=seed)
    return fixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('official_repo')
    parser.add_argument('--out-dir', default=OUT_DIR)
    parser.add_argument('--only', nargs='*', help='case names')
    args = parser.parse_args()
    for seed, name in enumerate(CASES):
        if args.only and name not in args.only:
            continue
        fixture = make_case(args.official_repo, name, seed)
        out = osp.join(args.out_dir, f'{name}.pth')
        torch.save(fixture, out)
        logits = fixture['logits']
        print(f'{out}: logits {tuple(logits.shape)} '
              f'std {logits.std().item():.4f}')


if __name__ == '__main__':
    main()
