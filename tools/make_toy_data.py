"""Generate the toy ImageNet / COCO / ADE20K datasets (swat_mm.testing).

    python tools/make_toy_data.py                      # all three under data/toy
    python tools/make_toy_data.py --root data/toy --which ade20k
    python tools/make_toy_data.py --force              # rebuild even if complete
    python tools/make_toy_data.py --which imagenet --imagenet-train-per-class 200

Needs only numpy, Pillow and torch (the token labels are torch files), not
mmcv; complete folders are kept, so re-running is cheap.
"""
import argparse
import os.path as osp
import sys
import time
from typing import List, Optional

# Runs from a checkout without ``pip install -e .`` too. The module is loaded
# by path so that this tool does not import the __init__ of swat_mm (which
# needs mmcv) or of swat_mm.testing (mmpretrain, mmdet) just to write images.
_MODULE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'swat_mm',
                   'testing', 'toy_data.py')


def _load_toy_data():
    import importlib.util
    spec = importlib.util.spec_from_file_location('swat_mm_toy_data', _MODULE)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        raise SystemExit(f'make_toy_data needs numpy, Pillow and torch ({e}); '
                         'run it with the python that tools/setup_env.sh '
                         'prints')
    return module


def parse_args(toy, argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data/toy',
                        help='parent folder of the datasets (default data/toy)')
    parser.add_argument('--which', nargs='+', default=list(toy.DATASETS),
                        choices=toy.DATASETS, help='datasets to generate')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate complete folders too')
    parser.add_argument('--imagenet-train-per-class', type=int, default=None,
                        metavar='N',
                        help='training images per class of the toy ImageNet '
                        '(default 40; a superset of the default set, the '
                        'same val split)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    toy = _load_toy_data()
    args = parse_args(toy, argv)
    start = time.time()
    try:
        paths = toy.make_toy_data(
            args.root, args.which, seed=args.seed, force=args.force,
            imagenet_train_per_class=args.imagenet_train_per_class)
    except ValueError as e:
        raise SystemExit(f'make_toy_data: {e}')
    for name, path in paths.items():
        print(f'{name}: {path}')
    print(f'done in {time.time() - start:.1f} s', file=sys.stderr)


if __name__ == '__main__':
    main()
