"""Write the STViT golden parity fixtures from the official implementation.

    python tests/golden/make_stvit_golden.py /path/to/clone/of/hhb072/STViT

Needs what the official ``models/stvit.py`` imports (``pip install timm fvcore
scipy``); nothing of the official code is copied. For every case the official
model is built with a fixed seed, given deterministic weights
(:func:`tests.golden.synth.synth_state_dict`), run in eval mode in fp32, and
its logits are saved with the input. Small custom archs store their whole
state dict; the real archs store key names, shapes and the seed (their state
dicts would be 100-200 MB).
"""
import argparse
import importlib.util
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from tests.golden.synth import synth_input, synth_state_dict  # noqa: E402

OUT_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')

# name -> (official STViT kwargs, input shape, store the state dict)
CASES = {
    'stvit_tiny_a': (dict(embed_dim=[16, 32, 48, 64], depths=[1, 1, 2, 1],
                          num_heads=[1, 2, 3, 4], n_iter=[1, 1, 1, 1],
                          stoken_size=[8, 4, 1, 1], projection=128,
                          num_classes=10, layerscale=[False] * 4,
                          init_values=1e-5), (2, 3, 64, 64), True),
    # padding on odd sizes, several sampling rounds, layer scale
    'stvit_tiny_b': (dict(embed_dim=[16, 32, 64, 64], depths=[1, 2, 1, 1],
                          num_heads=[2, 2, 4, 4], n_iter=[2, 3, 1, 1],
                          stoken_size=[4, 2, 2, 1], projection=96,
                          num_classes=7,
                          layerscale=[False, True, True, False],
                          init_values=1e-2), (1, 3, 75, 53), True),
    # three stages, rectangular super tokens
    'stvit_tiny_c': (dict(embed_dim=[24, 48, 96], depths=[1, 1, 1],
                          num_heads=[1, 2, 4], n_iter=[1, 1, 1],
                          stoken_size=[(6, 4), 3, 1], projection=64,
                          num_classes=5, layerscale=[False] * 3,
                          init_values=1e-5), (1, 3, 70, 90), True),
    'stvit_small': (dict(embed_dim=[64, 128, 320, 512], depths=[3, 5, 9, 3],
                         num_heads=[1, 2, 5, 8], n_iter=[1, 1, 1, 1],
                         stoken_size=[8, 4, 1, 1], projection=1024,
                         num_classes=1000, layerscale=[False] * 4,
                         init_values=1e-5), (1, 3, 96, 80), False),
    'stvit_base': (dict(embed_dim=[96, 192, 384, 512], depths=[4, 6, 14, 6],
                        num_heads=[2, 3, 6, 8], n_iter=[1, 1, 1, 1],
                        stoken_size=[8, 4, 1, 1], projection=1024,
                        num_classes=1000,
                        layerscale=[False, False, True, True],
                        init_values=1e-6), (1, 3, 64, 64), False),
}


def load_official(repo: str):
    path = osp.join(repo, 'models', 'stvit.py')
    if not osp.isfile(path):
        sys.exit(f'{path} not found: pass the root of a clone of hhb072/STViT')
    spec = importlib.util.spec_from_file_location('official_stvit', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # timm's register_model looks it up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('official_repo')
    parser.add_argument('--out-dir', default=OUT_DIR)
    args = parser.parse_args()
    official = load_official(args.official_repo)
    for seed, (name, (kwargs, in_shape, store)) in enumerate(CASES.items()):
        torch.manual_seed(seed)
        model = official.STViT(drop_path_rate=0., **kwargs).eval()
        shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
        state = synth_state_dict(shapes, seed)
        model.load_state_dict(state)
        x = synth_input(in_shape, seed)
        with torch.no_grad():
            logits = model(x)
        fixture = dict(official_kwargs=kwargs, input=x, logits=logits)
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
