"""The official SWAT models, built from a clone for the benchmark comparison.

The official code (``kkahatapitiya/SWAT``) is a modified timm 0.4 that does
not import as shipped, hard-codes its 224 sizes and selects its variants
(ViT-Ti / ViT-S / ..., the Swin-T tokenizer, per-width tables) with
commented-out code. The functions here copy the clone's ``timm`` package into
a temporary directory (nothing of it is copied into this repository, and the
clone is never modified), patch the copy so that it imports and builds the
variant of *our* backbone, import it under private module names (a timm
installed in the environment is left untouched) and load our weights into it
under the same state-dict names.

The patches only swap the hard-coded settings of the marked variant regions
(``START`` / ``END``) for ours and fix the imports; every replaced snippet
must be found outside the commented-out (``'''`` quoted) code, or the build
stops with the snippet: the model code itself is the official one.

* :func:`build_official_swat_vit`: :class:`~swat_mm.models.SWATViT`
  (``VisionTransformer`` with ``ConvAttention`` and the conv MLP);
  output: the mean of the final-normed tokens, our ``'avg_featmap'``.
* :func:`build_official_swat_swin`: :class:`~swat_mm.models.SWATSwin`
  (``SwinTransformer`` with the Swin-T tokenizer and the three tables);
  output: the final-normed last stage as a (B, C, H, W) map, our last
  output.
* :func:`build_official_swat_mixer` / :func:`build_official_swat_resmlp`:
  :class:`~swat_mm.models.SWATMixer` / :class:`~swat_mm.models.SWATResMLP`
  (``MlpMixer`` with ``MixerBlockConv`` / ``ResBlockConv`` blocks); output:
  the final-normed tokens as the (B, C, Hg, Wg) map, our last output.

The official models run at the input size they are built for only (224 for
the zoo archs). The golden-fixture generators
(``tests/golden/make_swat_golden.py``, ``make_swat_swin_golden.py``) use the
same patch functions; our weights go in through :mod:`.loading`, as for the
other families.
"""
import ast
import importlib
import os.path as osp
import re
import shutil
import sys
import tempfile
from typing import Dict, Tuple

import torch
import torch.nn as nn

from .loading import load_matching

_COPY_COUNT = [0]


# --------------------------------------------------------------------------
# Copying, patching and importing
# --------------------------------------------------------------------------
def replace_active(path: str, old: str, new: str) -> None:
    """Replace the first occurrence of ``old`` in ``path``, which must lie
    outside ''' quoted (commented-out) code."""
    with open(path) as f:
        text = f.read()
    idx = text.find(old)
    if idx < 0:
        raise RuntimeError(f'{path}: expected snippet not found:\n{old}\n'
                           'is this a clone of kkahatapitiya/SWAT?')
    if text.count("'''", 0, idx) % 2:
        raise RuntimeError(f'{path}: the snippet is inside commented-out '
                           f'code:\n{old}')
    with open(path, 'w') as f:
        f.write(text[:idx] + new + text[idx + len(old):])


def copy_timm(repo: str, dst: str) -> str:
    """Copy ``repo/timm`` to ``dst/timm`` and make it importable without
    the rest of timm: ``timm/__init__.py`` and ``timm/models/__init__.py``
    no longer import every model, and the two names imported elsewhere but
    never defined by ``mlp.py`` (``ConvMlp``, ``ConvMlpGeneralv2``) become
    aliases of ``ConvMlpGeneral`` (no SWAT model built here uses them).
    Returns the copy's ``timm`` directory."""
    src = osp.join(repo, 'timm')
    if not osp.isfile(osp.join(src, 'models', 'layers', 'patch_embed.py')):
        raise FileNotFoundError(f'{src} not found: pass the root of a clone '
                                'of kkahatapitiya/SWAT')
    timm = osp.join(dst, 'timm')
    shutil.copytree(src, timm)
    with open(osp.join(timm, '__init__.py'), 'w') as f:
        f.write('from .version import __version__\n')
    open(osp.join(timm, 'models', '__init__.py'), 'w').close()
    # names imported across the package (layers/__init__, mlp_mixer,
    # gather_excite, global_context) that mlp.py never defines
    with open(osp.join(timm, 'models', 'layers', 'mlp.py'), 'a') as f:
        f.write('\n\n# swat_mm: names imported elsewhere but never defined\n'
                'ConvMlp = ConvMlpGeneral\n'
                'ConvMlpGeneralv2 = ConvMlpGeneral\n')
    return timm


def import_official(timm_dir: str, module: str):
    """Import ``timm.models.<module>`` from the patched copy at
    ``timm_dir`` and return it.

    The copy is imported as ``timm`` (its files import ``timm.data``), then
    its modules are taken out of ``sys.modules`` and whatever ``timm`` was
    imported before is put back, so that the official copy and an installed
    timm (or another official copy) never see each other's modules.
    """
    saved = {k: v for k, v in sys.modules.items()
             if k == 'timm' or k.startswith('timm.')}
    for k in saved:
        del sys.modules[k]
    root = osp.dirname(timm_dir)
    sys.path.insert(0, root)
    try:
        mod = importlib.import_module(f'timm.models.{module}')
    finally:
        sys.path.remove(root)
        _COPY_COUNT[0] += 1
        for k in [k for k in sys.modules
                  if k == 'timm' or k.startswith('timm.')]:
            # keep them importable for pickling/inspection under a private
            # name; the classes hold their module globals anyway
            sys.modules[f'_official_swat{_COPY_COUNT[0]}.{k}'] = \
                sys.modules.pop(k)
        sys.modules.update(saved)
    return mod


def patch_vit_tokenizer(timm_dir: str, t: Dict, grid: int) -> None:
    """``PatchEmbed`` (its active ViT-Ti variant) with another tokenizer.

    Keys of ``t``: ``stem`` (channels of ``proj21``), ``k1``, ``s1``, ``p1``
    (its kernel, stride, padding), ``c`` (channels of ``proj22``), ``k2``
    (kernel = stride of ``proj22``), ``pos`` (side of the position map, or
    None for the Swin / Mixer / ResMLP variant line without one), ``p``
    (sub-patch), ``stem_out`` (side of the stem output); ``grid``: side of
    the token grid.
    """
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
    replace_active(path, (
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
    replace_active(path, (
        "x2 = self.norm2(self.act(self.proj21(x) + "
        "self.pos_embed2.repeat(1,1,14,14))) # B 128 112 112\n"
        "        x2 = self.proj22(x2)\n"
        "        x2 = rearrange(x2, 'b c (n1 p1) (n2 p2) -> b (c p1 p2) n1 "
        "n2', n1=14, n2=14, p1=8, p2=8)\n"), (
        f"{first}\n"
        "        x2 = self.proj22(x2)\n"
        "        x2 = rearrange(x2, 'b c (n1 p1) (n2 p2) -> b (c p1 p2) n1 "
        f"n2', n1={grid}, n2={grid}, p1={t['p']}, p2={t['p']})\n"))


def patch_vit_blocks(timm_dir: str, c: int, p: int, attn_kernel: int,
                     grid: int, mlp_kernel: int) -> None:
    """``ConvAttention``'s ``h, w, c, ks`` and ``Block``'s ``seq, ks, H, W``
    of ``vision_transformer.py`` (its active ViT-Ti settings)."""
    path = osp.join(timm_dir, 'models', 'vision_transformer.py')
    replace_active(path, (
        "self.h = self.w = 8\n"
        "        self.c = 3 # SAME AS NUM OF HEADS\n"
        "        self.ks = 3\n"), (
        f"self.h = self.w = {p}\n"
        f"        self.c = {c} # SAME AS NUM OF HEADS\n"
        f"        self.ks = {attn_kernel}\n"))
    replace_active(path, "seq = 196; ks = 5; self.H = self.W = 14", (
        f"seq = {grid * grid}; ks = {mlp_kernel}; "
        f"self.H = self.W = {grid}"))


def patch_mixer_blocks(timm_dir: str, grid: int, sub_patch: int,
                       token_channels: int, token_kernel: int,
                       channel_kernel: int) -> None:
    """Set the grid, sub-patch, token channels and kernels that the
    official ``MixerBlockConv`` hard-codes (its Mixer-Ti values)."""
    replace_active(osp.join(timm_dir, 'models', 'mlp_mixer.py'), (
        "self.H = self.W = 14\n"
        "        self.h =self.w = 8\n"
        "        self.c = 4 # Mixer-Ti\n"
        "        #self.c = 8 # Mixer-S\n"
        "        self.ks1 = 3\n"
        "        self.ks2 = 5\n"), (
        f"self.H = self.W = {grid}\n"
        f"        self.h =self.w = {sub_patch}\n"
        f"        self.c = {token_channels}\n"
        f"        self.ks1 = {token_kernel}\n"
        f"        self.ks2 = {channel_kernel}\n"))


def patch_resmlp_blocks(timm_dir: str, grid: int, sub_patch: int,
                        token_channels: int) -> None:
    """Set the grid, sub-patch and token channels that the official
    ``ResBlockConv`` hard-codes (its kernels stay 3 and 5)."""
    replace_active(osp.join(timm_dir, 'models', 'mlp_mixer.py'), (
        "self.H = self.W = 14\n"
        "        self.h =self.w = 8\n"
        "        self.c = 6\n"), (
        f"self.H = self.W = {grid}\n"
        f"        self.h =self.w = {sub_patch}\n"
        f"        self.c = {token_channels}\n"))


def _comment_active_code(lines, start: int, end: int) -> None:
    """Comment out the code lines of ``lines[start:end]`` that are outside
    triple-quoted strings (the variant the repository ships active)."""
    in_string = False
    for i in range(start, end):
        stripped = lines[i].strip()
        if not in_string and stripped and not stripped.startswith(
                ('#', "'''")):
            indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = indent + '# ' + lines[i].lstrip()
        if stripped.count("'''") % 2 == 1:
            in_string = not in_string


def _unquote_block_after(lines, start: int, end: int, marker: str) -> None:
    """Remove the triple quotes around the block that follows the comment
    line matching ``marker`` in ``lines[start:end]``."""
    for i in range(start, end):
        if re.fullmatch(marker, lines[i].strip(), flags=re.IGNORECASE):
            j = i + 1
            if not lines[j].lstrip().startswith("'''"):
                raise RuntimeError(f'expected a quoted block after {marker}')
            lines[j] = lines[j].replace("'''", '', 1)
            while "'''" not in lines[j]:
                j += 1
            lines[j] = lines[j].replace("'''", '', 1)
            return
    raise RuntimeError(f'marker {marker!r} not found')


def select_swin_tokenizer(timm_dir: str) -> None:
    """Select the Swin-T tokenizer in ``layers/patch_embed.py``: the active
    (ViT-Ti) code of its two SWAT regions is commented out and the blocks
    marked ``SWIN-T`` / ``for swin-T`` are un-quoted."""
    path = osp.join(timm_dir, 'models', 'layers', 'patch_embed.py')
    with open(path) as f:
        lines = f.read().split('\n')
    starts = [i for i, line in enumerate(lines) if '# START #' in line]
    ends = [i for i, line in enumerate(lines) if '# END #' in line]
    if not len(starts) == len(ends) == 2:
        raise RuntimeError(f'{path}: expected two START/END regions')
    markers = [r'#\s*SWIN-T', r'#\s*for swin-T']
    for (s, e), marker in zip(zip(starts, ends), markers):
        _comment_active_code(lines, s, e)
        _unquote_block_after(lines, s, e, marker)
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


_BY_RES = r'\{[^{}]*\}(?=\[self\.input_resolution\[0\]\]'
_SWIN_TABLE_PATTERNS = {
    'attn': r'\{[^{}]*\}(?=\[self\.dim\])',
    # both keyed by resolution: told apart by the line that follows
    'mlp': _BY_RES + r'\s*\n\s*self\.mlp)',
    'merge': _BY_RES + r'\s*\n\s*self\.reduction)',
}


def tabulate_swin(timm_dir: str) -> Dict[str, dict]:
    """Replace the three table literals of ``swin_transformer.py``
    (attention conv by width, MLP kernel and merging conv by resolution) by
    lookups in a module-level ``_SWAT_TABLES`` dict; return the shipped
    tables."""
    path = osp.join(timm_dir, 'models', 'swin_transformer.py')
    with open(path) as f:
        src = f.read()
    shipped = {}
    for name, pattern in _SWIN_TABLE_PATTERNS.items():
        found = re.findall(pattern, src)
        if len(found) != 1:
            raise RuntimeError(f'{path}: table {name!r} not found once')
        shipped[name] = ast.literal_eval(found[0])
        src = re.sub(pattern, f'_SWAT_TABLES[{name!r}]', src)
    src = src.replace('_logger = logging.getLogger(__name__)',
                      '_logger = logging.getLogger(__name__)\n'
                      '_SWAT_TABLES = {}', 1)
    with open(path, 'w') as f:
        f.write(src)
    return shipped


def load_official_swin(repo: str, workdir: str) -> Tuple[object, dict]:
    """The patched official ``swin_transformer`` module (copied under
    ``workdir``) and its shipped tables; set ``module._SWAT_TABLES`` before
    building a model."""
    timm = copy_timm(repo, workdir)
    select_swin_tokenizer(timm)
    shipped = tabulate_swin(timm)
    return import_official(timm, 'swin_transformer'), shipped


# --------------------------------------------------------------------------
# Builders for the benchmark
# --------------------------------------------------------------------------
def _drop_path_rate(ours: nn.Module) -> float:
    return max((m.drop_prob for m in ours.modules()
                if hasattr(m, 'drop_prob')), default=0.)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class _OfficialSWATViTBackbone(nn.Module):
    """The official ViT's ``forward_features``: mean of the final-normed
    tokens (B, C), our ``out_type='avg_featmap'`` output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def build_official_swat_vit(repo: str, ours: nn.Module) -> nn.Module:
    """Official SWAT ``VisionTransformer`` with ``ours``'s
    (:class:`~swat_mm.models.SWATViT`) settings and weights, for its
    ``img_size`` input (224 for the zoo archs)."""
    s = ours.arch_settings
    if s['num_heads'] != s['token_channels']:
        raise ValueError('the official ConvAttention needs num_heads == '
                         f'token_channels, got {s["num_heads"]} and '
                         f'{s["token_channels"]}')
    if s['stem_norm_cfg'] is not None or ours.out_type != 'avg_featmap':
        raise ValueError('the official SWAT ViT has no stem norm and '
                         "returns the token mean (out_type='avg_featmap')")
    size = ours.img_size[0]
    if ours.img_size[1] != size or size % ours.patch_embed.token_stride:
        raise ValueError(f'the official SWAT ViT needs a square input that '
                         f'the token size divides, got {ours.img_size}')
    stem_out = _conv_out(size, s['stem_kernel'], s['stem_stride'],
                         s['stem_padding'])
    grid = stem_out // s['proj_kernel'] // s['sub_patch']
    t = dict(stem=s['stem_channels'], k1=s['stem_kernel'],
             s1=s['stem_stride'], p1=s['stem_padding'],
             c=s['token_channels'], k2=s['proj_kernel'],
             pos=s['pos_map_size'], p=s['sub_patch'], stem_out=stem_out)
    if t['pos'] and stem_out % t['pos']:
        raise ValueError('the official tokenizer tiles its position map a '
                         'whole number of times')
    with tempfile.TemporaryDirectory(prefix='official_swat_') as tmp:
        timm = copy_timm(repo, tmp)
        patch_vit_tokenizer(timm, t, grid)
        patch_vit_blocks(timm, s['token_channels'], s['sub_patch'],
                         s['attn_kernel'], grid, s['mlp_kernel'])
        vt = import_official(timm, 'vision_transformer')
    attn = ours.blocks[0].attn
    model = vt.VisionTransformer(
        img_size=size, patch_size=size // grid, num_classes=1000,
        embed_dim=s['embed_dims'], depth=s['num_layers'],
        num_heads=s['num_heads'], mlp_ratio=s['mlp_ratio'],
        qkv_bias=attn.qkv_linear.bias is not None,
        drop_path_rate=_drop_path_rate(ours))
    # the classifier is the only official-only part
    load_matching(model, ours, lambda k: k.startswith('head.'))
    return _OfficialSWATViTBackbone(model)


class _OfficialSWATSwinBackbone(nn.Module):
    """The official Swin up to its final norm, as a (B, C, H, W) map (our
    last output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.patch_embed(x)
        if m.absolute_pos_embed is not None:
            x = x + m.absolute_pos_embed
        x = m.norm(m.layers(m.pos_drop(x)))  # (B, H*W, C)
        H, W = m.layers[-1].input_resolution
        return x.transpose(1, 2).reshape(x.shape[0], -1, H, W)


def build_official_swat_swin(repo: str, ours: nn.Module) -> nn.Module:
    """Official SWAT ``SwinTransformer`` with ``ours``'s
    (:class:`~swat_mm.models.SWATSwin`) settings and weights, at 224 (the
    size its tables and tokenizer are written for)."""
    a = ours.arch_settings
    tok = a['tokenizer']
    if tok != dict(stem_channels=128, stem_kernel=2, stem_stride=2,
                   out_channels=24, sub_patch=2):
        raise ValueError('the official Swin tokenizer is fixed to the Swin-T '
                         f'one, got {tok}')
    if ours.out_indices != [ours.num_stages - 1] and \
            list(ours.out_indices) != [ours.num_stages - 1]:
        raise ValueError('compare the last stage only (out_indices=-1)')
    ws = set(a['window_size'])
    if len(ws) != 1:
        raise ValueError('the official Swin has one window size')
    size, n = 224, len(a['depths'])
    res = [size // 4 // 2**i for i in range(n)]
    for i in range(n):
        # the official shift rule: on where the map is larger than a window
        if a['shift'][i] != (res[i] > a['window_size'][i]):
            raise ValueError(f'stage {i}: the official code shifts windows '
                             'exactly where the 224 map exceeds one window')
    dims = ours.embed_dims
    tables = dict(
        attn={dims[i]: tuple(a['attn_conv'][i]) for i in range(n)},
        mlp={res[i]: a['mlp_dw_kernel'][i] for i in range(n)},
        merge={res[i]: tuple(a['merge_conv'][i]) for i in range(n - 1)})
    with tempfile.TemporaryDirectory(prefix='official_swat_') as tmp:
        module, _ = load_official_swin(repo, tmp)
    module._SWAT_TABLES.clear()
    module._SWAT_TABLES.update(tables)
    blk = ours.layers[0].blocks[0]
    model = module.SwinTransformer(
        img_size=size, patch_size=4, embed_dim=dims[0],
        depths=tuple(a['depths']), num_heads=tuple(a['num_heads']),
        window_size=a['window_size'][0], mlp_ratio=a['mlp_ratio'],
        qkv_bias=blk.attn.qkv_linear.bias is not None, num_classes=1000,
        drop_path_rate=_drop_path_rate(ours))
    load_matching(model, ours,
                  lambda k: k.endswith('attn_mask') or k.startswith('head.'))
    return _OfficialSWATSwinBackbone(model)


class _OfficialSWATMlpBackbone(nn.Module):
    """The official Mixer / ResMLP up to its final norm, as the (B, C, Hg,
    Wg) token map (our last output)."""

    def __init__(self, model: nn.Module, grid: int) -> None:
        super().__init__()
        self.model = model
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.norm(m.blocks(m.stem(x)))  # (B, N, C)
        return x.transpose(1, 2).reshape(x.shape[0], -1, self.grid,
                                         self.grid)


def _mlp_tokenizer(ours: nn.Module, timm: str) -> Tuple[dict, int, int]:
    """Patch the Mixer / ResMLP tokenizer line for ``ours``; returns its
    settings, the grid side and the input side."""
    s = ours.arch_settings
    size = ours.img_size[0]
    if ours.img_size[1] != size or size % ours.stem.token_stride:
        raise ValueError(f'the official SWAT MLPs need a square input that '
                         f'the token size divides, got {ours.img_size}')
    if s['stem_norm_cfg'] is not None:
        raise ValueError('the official SWAT MLPs have no stem norm')
    stem_out = _conv_out(size, s['stem_kernel'], s['stem_stride'],
                         s['stem_padding'])
    grid = stem_out // s['proj_kernel'] // s['sub_patch']
    t = dict(stem=s['stem_channels'], k1=s['stem_kernel'],
             s1=s['stem_stride'], p1=s['stem_padding'],
             c=s['token_channels'], k2=s['proj_kernel'], pos=None,
             p=s['sub_patch'], stem_out=stem_out)
    patch_vit_tokenizer(timm, t, grid)
    return s, grid, size


def build_official_swat_mixer(repo: str, ours: nn.Module) -> nn.Module:
    """Official SWAT ``MlpMixer`` with ``MixerBlockConv`` blocks, built with
    ``ours``'s (:class:`~swat_mm.models.SWATMixer`) settings and weights."""
    with tempfile.TemporaryDirectory(prefix='official_swat_') as tmp:
        timm = copy_timm(repo, tmp)
        s, grid, size = _mlp_tokenizer(ours, timm)
        patch_mixer_blocks(timm, grid, s['sub_patch'], s['token_channels'],
                           s['token_kernel'], s['channel_kernel'])
        mm = import_official(timm, 'mlp_mixer')
    model = mm.MlpMixer(
        num_classes=1000, img_size=size, patch_size=size // grid,
        num_blocks=s['num_layers'], embed_dim=s['embed_dims'],
        mlp_ratio=tuple(s['mlp_ratio']), block_layer=mm.MixerBlockConv,
        drop_path_rate=_drop_path_rate(ours))
    load_matching(model, ours, lambda k: k.startswith('head.'))
    return _OfficialSWATMlpBackbone(model, grid)


def build_official_swat_resmlp(repo: str, ours: nn.Module) -> nn.Module:
    """Official SWAT ResMLP (``MlpMixer`` with ``ResBlockConv`` blocks and
    ``Affine`` norms, the commented-out SWAT ``resmlp_12_224``), built with
    ``ours``'s (:class:`~swat_mm.models.SWATResMLP`) settings and weights."""
    s = ours.arch_settings
    if s['token_kernel'] != 3 or s['channel_kernel'] != 5:
        raise ValueError('the official ResBlockConv fixes its kernels to 3 '
                         '(tokens) and 5 (channels)')
    with tempfile.TemporaryDirectory(prefix='official_swat_') as tmp:
        timm = copy_timm(repo, tmp)
        s, grid, size = _mlp_tokenizer(ours, timm)
        patch_resmlp_blocks(timm, grid, s['sub_patch'], s['token_channels'])
        mm = import_official(timm, 'mlp_mixer')
    model = mm.MlpMixer(
        num_classes=1000, img_size=size, patch_size=size // grid,
        num_blocks=s['num_layers'], embed_dim=s['embed_dims'],
        mlp_ratio=s['mlp_ratio'], block_layer=mm.ResBlockConv,
        norm_layer=mm.Affine, drop_path_rate=_drop_path_rate(ours))
    load_matching(model, ours, lambda k: k.startswith('head.'))
    return _OfficialSWATMlpBackbone(model, grid)
