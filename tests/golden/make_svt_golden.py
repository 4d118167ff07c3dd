"""Write the SVT golden parity fixtures from the official implementation.

    python tests/golden/make_svt_golden.py /path/to/clone/of/badripatro/svt

Needs what the official ``svt.py`` imports (timm, pytorch_wavelets); nothing
of the official code is copied or patched. For every case the official model
is built with a fixed seed, given deterministic weights
(:func:`tests.golden.synth.synth_state_dict`; the DTCWT filter buffers keep
their true values, see :func:`keep_dtcwt_filters`), run in eval mode in fp32
at 224 (the only size the official model runs at), and its logits are saved
with the input. With ``token_label=True`` the official eval output is
``head(cls) + 0.5 * max over tokens of aux_head(tokens)``.

The official ``SVT`` hard-codes one scatter stage; the two-scatter-stage case
replaces the official model's ``block2`` by blocks built from the official
``Block`` class with ``block_type='scatter'`` (what the code would build with
its ``alpha = 2``). The official scatter mixing only exists for widths 64/96
(stage 1) and 128/192 (stage 2); the attention stages take any width
divisible by the heads, so the cases use odd widths there.

``svt_tiny_a`` stores its whole state dict; the others (a few MB each, the
low-pass filters being (C, 56, 56)) store key names, shapes and the seed, and
the tests rebuild their weights with ``synth_state_dict`` and the true DTCWT
filters.
"""
import argparse
import importlib.util
import os.path as osp
import sys
from functools import partial

import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tests.golden.synth import synth_input, synth_state_dict  # noqa: E402

OUT_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')

# name -> (official SVT kwargs, scatter stages, input shape, store state dict)
CASES = {
    # odd widths and MLP widths in the attention stages, aux head
    'svt_tiny_a': (dict(stem_hidden_dim=16, embed_dims=[64, 32, 40, 45],
                        num_heads=[2, 2, 5, 3], mlp_ratios=[2, 3, 2, 3],
                        depths=[1, 1, 2, 1], num_classes=10,
                        token_label=True), 1, (2, 3, 224, 224), True),
    # two scatter stages (96 -> 56x56 filter, 192 -> 28x28), no aux head
    'svt_tiny_b': (dict(stem_hidden_dim=8, embed_dims=[96, 192, 48, 63],
                        num_heads=[3, 6, 4, 7], mlp_ratios=[1, 1, 2, 2],
                        depths=[1, 2, 1, 1], num_classes=7,
                        token_label=False), 2, (1, 3, 224, 224), False),
    # three stages, aux head
    'svt_tiny_c': (dict(stem_hidden_dim=8, embed_dims=[64, 128, 72],
                        num_heads=[1, 2, 4], mlp_ratios=[2, 2, 3],
                        depths=[2, 1, 1], num_stages=3, num_classes=5,
                        token_label=True), 1, (1, 3, 224, 224), False),
    'svt_h_small': (dict(stem_hidden_dim=32, embed_dims=[64, 128, 320, 448],
                         num_heads=[2, 4, 10, 14], mlp_ratios=[8, 8, 4, 4],
                         depths=[3, 4, 6, 3], num_classes=1000,
                         token_label=True), 1, (1, 3, 224, 224), False),
}


def keep_dtcwt_filters(state: dict, reference: dict) -> dict:
    """``state`` with the DTCWT filter buffers (``*.attn.xfm.*``,
    ``*.attn.ifm.*``) taken from ``reference``: they are fixed wavelet
    filters, not weights, and the converter checks them."""
    return {k: (reference[k].clone() if ('.attn.xfm.' in k or '.attn.ifm.'
                                          in k) else v)
            for k, v in state.items()}


def load_official(repo: str):
    path = osp.join(repo, 'svt.py')
    if not osp.isfile(path):
        sys.exit(f'{path} not found: pass the root of a clone of '
                 'badripatro/svt')
    spec = importlib.util.spec_from_file_location('official_svt', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # timm's register_model looks it up
    spec.loader.exec_module(module)
    return module


def build_official(official, kwargs: dict, num_scatter: int) -> nn.Module:
    norm_layer = partial(nn.LayerNorm, eps=1e-6)
    model = official.SVT(norm_layer=norm_layer, drop_path_rate=0., **kwargs)
    if num_scatter not in (1, 2):
        raise ValueError('cases have one or two scatter stages')
    if num_scatter == 2:
        model.block2 = nn.ModuleList([
            official.Block(dim=kwargs['embed_dims'][1],
                           num_heads=kwargs['num_heads'][1],
                           mlp_ratio=kwargs['mlp_ratios'][1],
                           norm_layer=norm_layer, block_type='scatter')
            for _ in range(kwargs['depths'][1])
        ])
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('official_repo')
    parser.add_argument('--out-dir', default=OUT_DIR)
    args = parser.parse_args()
    official = load_official(args.official_repo)
    for seed, (name, (kwargs, num_scatter, in_shape,
                      store)) in enumerate(CASES.items()):
        torch.manual_seed(seed)
        model = build_official(official, kwargs, num_scatter)
        reference = model.state_dict()
        shapes = [(k, list(v.shape)) for k, v in reference.items()]
        state = keep_dtcwt_filters(synth_state_dict(shapes, seed), reference)
        model.load_state_dict(state)
        x = synth_input(in_shape, seed)
        with torch.no_grad():
            logits = model(x)
        fixture = dict(official_kwargs=kwargs, num_scatter_stages=num_scatter,
                       input=x, logits=logits)
        if store:
            fixture['state_dict'] = state
        else:
            fixture['synth'] = dict(shapes=shapes, seed=seed)
        out = osp.join(args.out_dir, f'{name}.pth')
        torch.save(fixture, out)
        print(f'{out}: logits {tuple(logits.shape)} '
              f'std {logits.std().item():.4f}')


if __name__ == '__main__':
    main()
