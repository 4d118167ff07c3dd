"""Write the SWAT-Swin golden parity fixtures from the official implementation.

    python tests/golden/make_swat_swin_golden.py /path/to/kkahatapitiya/SWAT

The official repository is a modified timm 0.4 that does not import as
shipped and selects its SWAT variant by commented-out code. This script copies
its ``timm`` package into a temporary directory and, there only:

* keeps ``timm/__init__.py`` / ``timm/models/__init__.py`` from importing
  every model (only ``swin_transformer`` is needed);
* defines the undefined ``ConvMlpGeneralv2`` / ``ConvMlp`` as aliases of
  ``ConvMlpGeneral`` (unused by the models built here);
* selects the Swin-T tokenizer in ``layers/patch_embed.py``: the active
  (ViT-Ti) code of its two SWAT regions is commented out and the block marked
  ``SWIN-T`` / ``for swin-T`` is un-quoted;
* turns the three per-width / per-resolution tables of
  ``swin_transformer.py`` (attention conv, MLP depth-wise kernel, patch-merging
  conv) into module-level lookups. Their shipped values are read from the
  file itself and used unchanged for ``swat_swin_tiny``; the custom cases
  swap in other values to check that every per-stage setting reaches the
  right stage. Nothing else of the model changes.

Every case is built with a fixed seed, gets deterministic weights
(:func:`tests.golden.synth.synth_state_dict`), runs in eval mode in fp32 at
224 (the only size the official code accepts). Saved: the logits, the
input's shape and seed (:func:`tests.golden.synth.synth_input`), the
official kwargs, the tables, the key names, shapes and seed of the state
dict (the state dicts themselves would be 30-110 MB) and its buffers
(relative position indices, shift masks) as small integers.
Needs ``timm``'s own imports (``einops``); nothing of the official code is
copied into this repository. The patch functions live in
``tools/official/swat.py`` (the benchmark's comparison uses them).
"""
import argparse
import os.path as osp
import sys
import tempfile

import torch

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tests.golden.synth import synth_input, synth_state_dict  # noqa: E402
from tools.official.swat import load_official_swin  # noqa: E402

OUT_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')

# name -> (official SwinTransformer kwargs, tables (None: as shipped),
#          input shape)
CASES = {
    # shifted and non-shifted stages with a larger window (the official code
    # turns stage 3's shift off: its 14x14 map is one window), no qkv bias,
    # another MLP ratio, and tables unlike the shipped ones, one attention
    # conv viewing the token in another (c, h, w) layout than its own
    'swat_swin_custom_a': (
        dict(embed_dim=96, depths=(2, 1, 2, 1), num_heads=(2, 4, 8, 8),
             window_size=14, mlp_ratio=2., qkv_bias=False, num_classes=10),
        dict(attn={96: (6, 4, 4, 3), 192: (12, 4, 4, 3), 384: (6, 8, 8, 1),
                   768: (3, 16, 16, 3)},
             mlp={56: 3, 28: 5, 14: 3, 7: 1},
             merge={56: (24, 2, 2, 1), 28: (12, 4, 4, 3),
                    14: (6, 8, 8, 5)}),
        (2, 3, 224, 224)),
    # the shipped tables on a shallow Swin-T
    'swat_swin_custom_b': (
        dict(embed_dim=96, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24),
             window_size=7, num_classes=7),
        None, (1, 3, 224, 224)),
    'swat_swin_tiny': (
        dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
             window_size=7, num_classes=1000),
        None, (1, 3, 224, 224)),
}


def load_official(repo: str, workdir: str):
    """The patched official ``swin_transformer`` module and its shipped
    tables (:func:`tools.official.swat.load_official_swin`, shared
    with the benchmark's comparison)."""
    return load_official_swin(repo, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('official_repo')
    parser.add_argument('--out-dir', default=OUT_DIR)
    parser.add_argument('--cases', nargs='*', default=list(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        official, shipped = load_official(args.official_repo, workdir)
        print('shipped tables:', shipped)
        for seed, (name, (kwargs, tables, in_shape)) in enumerate(
                CASES.items()):
            if name not in args.cases:
                continue
            tables = tables or shipped
            official._SWAT_TABLES.clear()
            official._SWAT_TABLES.update(tables)
            torch.manual_seed(seed)
            model = official.SwinTransformer(
                img_size=224, patch_size=4, drop_path_rate=0.,
                **kwargs).eval()
            shapes = [(k, list(v.shape))
                      for k, v in model.state_dict().items()]
            state = synth_state_dict(shapes, seed)
            # buffers are not weights: keep the official index and masks
            for k, v in model.state_dict().items():
                if k.endswith(('relative_position_index', 'attn_mask')):
                    state[k] = v.clone()
            model.load_state_dict(state)
            x = synth_input(in_shape, seed)
            with torch.no_grad():
                logits = model(x)
            # the buffers, compactly (indices < 32768, masks 0 / -100)
            buffers = {
                k: v.to(torch.int16 if k.endswith('index') else torch.int8)
                for k, v in state.items()
                if k.endswith(('relative_position_index', 'attn_mask'))}
            # the input is rebuilt from its shape and seed (synth_input)
            fixture = dict(official_kwargs=kwargs, tables=tables,
                           input_synth=dict(shape=in_shape, seed=seed),
                           logits=logits, buffers=buffers,
                           synth=dict(shapes=shapes, seed=seed))
            out = osp.join(args.out_dir, f'{name}.pth')
            torch.save(fixture, out)
            nparams = sum(v.numel() for k, v in model.named_parameters())
            print(f'{out}: logits {tuple(logits.shape)} std '
                  f'{logits.std().item():.4f}; {nparams / 1e6:.2f}M params')


if __name__ == '__main__':
    main()
