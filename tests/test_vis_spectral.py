"""tools/visualization/vis_spectral.py on a toy image with the toy SVT
config (random weights) and a toy checkpoint: the PNGs it writes, what it
draws, and its errors (also as a command: one line, exit status 1)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tests.forked_tools import run_python

from tools.visualization.vis_spectral import lowpass_groups, main

CFG = 'configs/toy/svt-h-small_toy-in1k.py'


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    img[20:60, 30:80] = (200, 30, 30)
    path = tmp_path / 'toy.png'
    Image.fromarray(img).save(path)
    return str(path)


def test_one_png_per_image_and_spectral_layer(image, tmp_path):
    out = tmp_path / 'vis'
    written = main([CFG, image, image, '--size', '64', '--out-dir',
                    str(out), '--layers', 'block1.0.attn', 'block1.2.attn'])
    assert [os.path.basename(p) for p in written] == [
        'toy_block1.0.attn.png', 'toy_block1.2.attn.png'] * 2
    for path in written:
        with Image.open(path) as png:
            # 3 rows x 6 columns (six orientations; 1 + 4 low-pass groups)
            # of 128-pixel panels
            assert png.size == (6 * 128, 3 * 128)
            pixels = np.asarray(png.convert('RGB'))
        assert pixels.std() > 10  # a picture, not a blank canvas


def test_lowpass_groups_and_a_trained_checkpoint(image, tmp_path):
    """A whole classifier's checkpoint loads strictly; the drawn low-pass
    groups are the mean magnitude of the checkpoint's filter."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import swat_mm  # noqa: F401
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(CFG)
    cfg.model.backbone.pop('init_cfg', None)
    model = MODELS.build(cfg.model)
    weight = model.backbone.block1[0].attn.complex_weight_ll.detach()
    groups = lowpass_groups(weight, 2)
    assert groups.shape == (2, *weight.shape[1:])
    half = weight.shape[0] // 2
    torch.testing.assert_close(groups[1], weight[half:].abs().mean(0))
    ckpt = tmp_path / 'toy.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    written = main([CFG, image, '--size', '48', '--checkpoint', str(ckpt),
                    '--groups', '8', '--out-dir', str(tmp_path / 'vis'),
                    '--layers', 'block1.1.attn'])
    with Image.open(written[0]) as png:
        assert png.size == (9 * 128, 3 * 128)  # 1 + 8 groups
    with pytest.raises(ValueError, match='--groups 5 does not divide'):
        main([CFG, image, '--groups', '5'])


def test_errors_name_the_problem(image, tmp_path):
    out = tmp_path / 'vis'
    with pytest.raises(FileNotFoundError, match='image .*missing.png'):
        main([CFG, image, str(tmp_path / 'missing.png'), '--out-dir',
              str(out)])
    assert not out.exists()  # nothing half-written
    with pytest.raises(ValueError, match='backbone is .*STViT, not SVT'):
        main(['configs/toy/stvit-small_toy-in1k.py', image])
    with pytest.raises(ValueError, match="'block2.0.attn' is not a spectral"
                       ' layer.*block1.0.attn, block1.1.attn'):
        main([CFG, image, '--layers', 'block2.0.attn'])
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        main([CFG, image, '--checkpoint', str(tmp_path / 'none.pth')])
    # as a command: one line naming the problem, exit status 1
    run = run_python(
        ['tools/visualization/vis_spectral.py',
         'configs/toy/swat-deit-tiny_toy-in1k.py', image])
    assert run.returncode == 1
    assert 'vis_spectral.py: error: configs/toy/swat-deit-tiny_toy-in1k.py:' \
        ' the backbone is swat_mm.SWATViT, not SVT' in run.stderr
    assert 'Traceback' not in run.stderr
