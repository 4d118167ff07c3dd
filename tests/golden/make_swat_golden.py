"""Write the SWAT golden parity fixtures from the official implementation.

    python tests/golden/make_swat_golden.py /path/to/clone/of/kkahatapitiya/SWAT [--only NAME ...]

The official code is a modified timm 0.4 that selects its variants with
commented-out code, hard-codes the 224 sizes and does not import as shipped.
For every case this script copies the clone's ``timm`` package into a
temporary directory (nothing of it is committed), and there

* defines the two names ``timm/models/layers/__init__.py`` imports but
  ``mlp.py`` never defines (``ConvMlp``, ``ConvMlpGeneralv2``) as aliases of
  ``ConvMlpGeneral`` (neither is used by the models built here);
* swaps the active (ViT-Ti / Mixer-Ti) settings of the marked ``START``/``END``
  regions for the case's: the tokenizer block of ``PatchEmbed.__init__`` and
  ``forward`` (written as the official variant blocks are, with the case's
  channels, kernels, grid and sub-patch), ``ConvAttention``'s ``h, w, c, ks``,
  ``Block``'s ``seq, ks, H, W``, ``MixerBlockConv``'s and ``ResBlockConv``'s
  ``H, W, h, w, c, ks1, ks2``. Every replaced snippet must occur outside the
  commented-out (''' quoted) blocks, or the script stops.

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
import importlib
import os.path as osp
import shutil
import sys
import tempfile
from typing import Callable, Dict

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tests.golden.synth import synth_input, synth_state_dict  # noqa: E402

OUT_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')


# ---------------------------------------------------------------- patching --
def _replace_active(path: str, old: str, new: str) -> None:
    """Replace the first occurrence of ``old`` in ``path``, which must lie
    outside ''' quoted (commented-out) code."""
    with open(path) as f:
        text = f.read()
    idx = text.find(old)
    if idx < 0:
        raise SystemExit(f'{path}: expected snippet not found:\n{old}\n'
                         'is this a clone of kkahatapitiya/SWAT?')
    if text.count("'''", 0, idx) % 2:
        raise SystemExit(f'{path}: the snippet is inside commented-out '
                         f'code:\n{old}')
    with open(path, 'w') as f:
        f.write(text[:idx] + new + text[idx + len(old):])


def copy_timm(repo: str, dst: str) -> str:
    """Copy ``repo/timm`` to ``dst/timm`` and make it importable."""
    src = osp.join(repo, 'timm')
    if not osp.isfile(osp.join(src, 'models', 'layers', 'patch_embed.py')):
        raise SystemExit(f'{src} not found: pass the root of a clone of '
                         'kkahatapitiya/SWAT')
    shutil.copytree(src, osp.join(dst, 'timm'))
    with open(osp.join(dst, 'timm', 'models', 'layers', 'mlp.py'), 'a') as f:
        f.write('\n\n# golden generator: names imported elsewhere but never '
                'defined\nConvMlp = ConvMlpGeneral\n'
                'ConvMlpGeneralv2 = ConvMlpGeneral\n')
    return osp.join(dst, 'timm')


def import_official(timm_dir: str, module: str):
    """Import ``timm.models.<module>`` from the patched copy (dropping any
    timm imported before)."""
    for name in list(sys.modules):
        if name == 'timm' or name.startswith('timm.'):
            del sys.modules[name]
    root = osp.dirname(timm_dir)
    sys.path.insert(0, root)
    try:
        return importlib.import_module(f'timm.models.{module}')
    finally:
        sys.path.remove(root)


def patch_tokenizer(timm_dir: str, t: dict, grid: int) -> None:
    """PatchEmbed: the case's tokenizer (keys of ``t``: stem, k1, s1, p1, c,
    k2 (= stride of proj22), pos (map size or None), p (sub-patch),
    stem_out (stem output side))."""
    path = osp.join(timm_dir, 'models', 'layers', 'patch_embed.py')
    init = (
        f"self.proj21 = nn.Conv2d(in_chans, {t['stem']}, "
        f"kernel_size={t['k1']}, stride={t['s1']}, padding={t['p1']})\n"
        f"        self.proj22 = nn.Conv2d({t['stem']}, {t['c']}, "
        f"kernel_size={t['k2']}, stride={t['k2']})\n"
        "        self.act = nn.GELU()\n"
        "        self.norm = norm_layer(embed_dim) if norm_layer else "
        "nn.Identity()\n"
        f"        self.norm2 = norm_layer({t['stem']}) if norm_layer else "
        "nn.Identity()\n")
    if t['pos']:
        init += (f"        self.pos_embed2 = nn.Parameter(torch.zeros(1, "
                 f"{t['stem']}, {t['pos']}, {t['pos']}))\n"
                 "        trunc_normal_(self.pos_embed2, std=.02)\n")
    _replace_active(path, (
        "self.proj21 = nn.Conv2d(in_chans, 128, kernel_size=4, stride=2, "
        "padding=1)\n"
        "        self.proj22 = nn.Conv2d(128, 3, kernel_size=1, stride=1)\n"
        "        self.act = nn.GELU()\n"
        "        self.norm = norm_layer(embed_dim) if norm_layer else "
        "nn.Identity()\n"
        "        self.norm2 = norm_layer(128) if norm_layer else "
        "nn.Identity()\n"
        "        self.pos_embed2 = nn.Parameter(torch.zeros(1, 128, 8, 8))\n"
        "        trunc_normal_(self.pos_embed2, std=.02)\n"), init)
    if t['pos']:
        rep = t['stem_out'] // t['pos']
        first = (f"x2 = self.norm2(self.act(self.proj21(x) + "
                 f"self.pos_embed2.repeat(1,1,{rep},{rep})))")
    else:  # the Swin / Mixer / ResMLP variants' line
        first = ("x2 = self.norm2(self.act(self.proj21(x)).transpose(1,-1))"
                 ".transpose(1,-1)")
    _replace_active(path, (
        "x2 = self.norm2(self.act(self.proj21(x) + "
        "self.pos_embed2.repeat(1,1,14,14))) # B 128 112 112\n"
        "        x2 = self.proj22(x2)\n"
        "        x2 = rearrange(x2, 'b c (n1 p1) (n2 p2) -> b (c p1 p2) n1 "
        "n2', n1=14, n2=14, p1=8, p2=8)\n"), (
        f"{first}\n"
        "        x2 = self.proj22(x2)\n"
        "        x2 = rearrange(x2, 'b c (n1 p1) (n2 p2) -> b (c p1 p2) n1 "
        f"n2', n1={grid}, n2={grid}, p1={t['p']}, p2={t['p']})\n"))


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
    path = osp.join(timm_dir, 'models', 'vision_transformer.py')
    _replace_active(path, (
        "self.h = self.w = 8\n"
        "        self.c = 3 # SAME AS NUM OF HEADS\n"
        "        self.ks = 3\n"), (
        f"self.h = self.w = {t['p']}\n"
        f"        self.c = {t['c']} # SAME AS NUM OF HEADS\n"
        f"        self.ks = {a.get('attn_kernel', 3)}\n"))
    _replace_active(path, "seq = 196; ks = 5; self.H = self.W = 14", (
        f"seq = {grid * grid}; ks = {a.get('mlp_kernel', 5)}; "
        f"self.H = self.W = {grid}"))
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
    _replace_active(osp.join(timm_dir, 'models', 'mlp_mixer.py'), (
        "self.H = self.W = 14\n"
        "        self.h =self.w = 8\n"
        "        self.c = 4 # Mixer-Ti\n"
        "        #self.c = 8 # Mixer-S\n"
        "        self.ks1 = 3\n"
        "        self.ks2 = 5\n"), (
        f"self.H = self.W = {grid}\n"
        f"        self.h =self.w = {t['p']}\n"
        f"        self.c = {t['c']}\n"
        f"        self.ks1 = {a.get('token_kernel', 3)}\n"
        f"        self.ks2 = {a.get('channel_kernel', 5)}\n"))
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
    _replace_active(osp.join(timm_dir, 'models', 'mlp_mixer.py'), (
        "self.H = self.W = 14\n"
        "        self.h =self.w = 8\n"
        "        self.c = 6\n"), (
        f"self.H = self.W = {grid}\n"
        f"        self.h =self.w = {t['p']}\n"
        f"        self.c = {t['c']}\n"))
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
