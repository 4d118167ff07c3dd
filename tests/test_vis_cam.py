"""mmpretrain's own tools/visualization/vis_cam.py (Grad-CAM, the grad-cam
package) on every backbone family, with the --target-layers README.md gives
for it, on a tiny classification config with random weights: the real
script, run in a subprocess, writes a PNG of the test pipeline's crop size
with a heat map that is not constant.

One subprocess runs the script once per family (runpy, as ``python
vis_cam.py ...`` does), so that the imports are paid once."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.tiny_cls_configs import (FAMILIES, save_random_checkpoint,
                                    tiny_cls_config)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# README.md, "Class-activation maps": the layer and flags per family
# (at the tiny archs' depths)
TARGETS = {
    'stvit': ['--target-layers', 'backbone.layers.3.blocks.0'],
    'svt': ['--target-layers', 'backbone.block4.0', '--vit-like'],
    'swat_vit': ['--target-layers', 'backbone.norm', '--vit-like'],
    'swat_swin': ['--target-layers', 'backbone.layers.3.blocks.0.mlp'],
    'swat_mixer': ['--target-layers', 'backbone.norm', '--vit-like'],
    'swat_resmlp': ['--target-layers', 'backbone.norm', '--vit-like'],
}

_DRIVER = '''
import json, runpy, sys
script, runs = sys.argv[1], json.loads(sys.argv[2])
for args in runs:
    sys.argv = [script] + args
    runpy.run_path(script, run_name='__main__')
'''


def vis_cam_script() -> str:
    import mmpretrain
    path = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools',
                    'visualization', 'vis_cam.py')
    assert osp.isfile(path), f'mmpretrain ships no vis_cam.py at {path}'
    return path


def run_vis_cam(runs, timeout=240):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, '-c', _DRIVER, vis_cam_script(), json.dumps(runs)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def test_grad_cam_pin_is_one_that_vis_cam_works_with():
    """vis_cam.py constructs the CAM with ``use_cuda=``, which grad-cam
    1.5 removed: the pinned version must still take it."""
    import inspect
    from importlib.metadata import version

    import pytorch_grad_cam
    assert version('grad-cam') == '1.4.8'
    params = inspect.signature(pytorch_grad_cam.GradCAM.__init__).parameters
    assert 'use_cuda' in params


@pytest.fixture(scope='module')
def family_runs(tmp_path_factory):
    """Every family's tiny config, a random checkpoint, a square test image
    of the crop size (so the crop is the image) and vis_cam's output."""
    tmp = tmp_path_factory.mktemp('cam')
    rng = np.random.default_rng(0)
    cases, runs = {}, []
    for family in FAMILIES:
        config, side = tiny_cls_config(family, str(tmp))
        ckpt = str(tmp / f'{family}.pth')
        save_random_checkpoint(config, ckpt)
        img = (rng.random((side, side, 3)) * 255).astype(np.uint8)
        img[side // 4:side // 2, side // 4:3 * side // 4] = (200, 30, 30)
        src = str(tmp / f'{family}_in.png')
        Image.fromarray(img).save(src)
        out = str(tmp / f'{family}_cam.png')
        runs.append([src, config, ckpt, '--save-path', out,
                     *TARGETS[family]])
        cases[family] = (img, out)
    # last, a layer the model does not have: vis_cam names it (and stops)
    runs.append(runs[-1][:3] + ['--target-layers', 'backbone.layers.9'])
    result = run_vis_cam(runs)
    assert result.returncode != 0
    assert 'Cannot get the layer "backbone.layers.9"' in result.stderr, \
        result.stderr[-3000:]
    return cases


@pytest.mark.parametrize('family', FAMILIES)
def test_vis_cam_on_every_family(family, family_runs):
    img, out = family_runs[family]
    with Image.open(out) as png:
        cam = np.asarray(png.convert('RGB')).astype(np.float64)
    assert cam.shape == img.shape  # the crop's size
    # show_cam_on_image writes (img / 255 + heat) / max: with a constant
    # CAM (heat) that is an affine map of the image per channel; a real
    # CAM leaves a large residual
    residuals = []
    for ch in range(3):
        x = img[..., ch].reshape(-1).astype(np.float64)
        y = cam[..., ch].reshape(-1)
        coef = np.polyfit(x, y, 1)
        residuals.append((y - np.polyval(coef, x)).std())
    assert max(residuals) > 5, residuals


# README.md's table: config of each standard arch -> its target layer
README_LAYERS = {
    'configs/cls/stvit/stvit-small_8xb128_in1k.py':
        'backbone.layers.3.blocks.2',
    'configs/cls/stvit/stvit-base_8xb128_in1k.py':
        'backbone.layers.3.blocks.5',
    'configs/cls/stvit/stvit-large_8xb128_in1k.py':
        'backbone.layers.3.blocks.7',
    'configs/cls/svt/svt-h-small_8xb128_in1k.py': 'backbone.block4.2',
    'configs/cls/svt/svt-h-large_8xb128_in1k.py': 'backbone.block4.2',
    'configs/cls/swat/swat-deit-small_8xb256_in1k.py': 'backbone.norm',
    'configs/cls/swat/swat-swin-tiny_8xb96_in1k.py':
        'backbone.layers.3.blocks.1.mlp',
    'configs/cls/swat/swat-swin-small_8xb96_in1k.py':
        'backbone.layers.3.blocks.1.mlp',
    'configs/cls/swat/swat-mixer-tiny_8xb256_in1k.py': 'backbone.norm',
    'configs/cls/swat/swat-resmlp-s12_8xb256_in1k.py': 'backbone.norm',
}


def test_readme_target_layers_are_the_last_blocks_of_the_real_models():
    """The layers README.md names exist in the standard models, and (for
    the blocks) are the last block of the last stage."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import swat_mm  # noqa: F401
    with open(osp.join(REPO, 'README.md')) as f:
        readme = f.read()
    init_default_scope('mmpretrain')
    for config, layer in README_LAYERS.items():
        assert f'`{layer}' in readme or f'/ `.{layer[-1]}`' in readme
        cfg = Config.fromfile(osp.join(REPO, config))
        cfg.model.backbone.pop('init_cfg', None)
        model = MODELS.build(cfg.model)
        names = dict(model.named_modules())
        assert layer in names, (config, layer)
        if 'blocks.' in layer:
            stage = layer.split('.blocks.')[0]
            last = len(names[stage + '.blocks']) - 1
            assert layer.split('.blocks.')[1].split('.')[0] == str(last)
        elif '.block4.' in layer:
            last = len(names['backbone.block4']) - 1
            assert layer == f'backbone.block4.{last}'
