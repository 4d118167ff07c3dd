"""tools/visualization/vis_super_tokens.py on a toy image with the toy
STViT config (random weights): the PNGs it writes, and its errors."""
import numpy as np
import pytest
from PIL import Image

from tools.visualization.vis_super_tokens import main

CFG = 'configs/toy/stvit-small_toy-in1k.py'


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    img[20:60, 30:80] = (200, 30, 30)
    path = tmp_path / 'toy.png'
    Image.fromarray(img).save(path)
    return str(path)


def test_writes_one_png_per_stage_with_super_tokens(image, tmp_path):
    out = tmp_path / 'vis'
    written = main([CFG, image, '--size', '112', '--out-dir', str(out)])
    # STViT-S: super tokens of 8x8 and 4x4 in stages 0 and 1
    assert [p.rsplit('_', 1)[1] for p in written] == ['stage0.png',
                                                      'stage1.png']
    for path in written:
        with Image.open(path) as png:
            # two panels of the resized image (112 x 162) at 80 dpi
            assert png.size[0] == 2 * 162 and png.size[1] >= 112
            pixels = np.asarray(png.convert('RGB'))
        assert pixels.std() > 10  # a picture, not a blank canvas


def test_loads_a_whole_models_checkpoint(image, tmp_path):
    """A classifier's checkpoint (``backbone.*`` among other keys) loads
    strictly into the backbone; a foreign one is refused naming keys."""
    import torch
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import swat_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(CFG)
    cfg.model.backbone.pop('init_cfg', None)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'toy.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    written = main([CFG, image, '--size', '64', '--checkpoint', str(ckpt),
                    '--out-dir', str(tmp_path / 'vis'), '--stage', '0'])
    assert len(written) == 1
    torch.save(dict(state_dict={'backbone.other.weight': torch.zeros(1)}),
               ckpt)
    with pytest.raises(RuntimeError, match='Missing key'):
        main([CFG, image, '--checkpoint', str(ckpt)])


def test_errors_name_the_problem(image, tmp_path):
    out = tmp_path / 'vis'
    with pytest.raises(FileNotFoundError, match='image .*missing.png'):
        main([CFG, image, str(tmp_path / 'missing.png'), '--out-dir',
              str(out)])
    assert not out.exists()  # nothing half-written
    with pytest.raises(ValueError, match='backbone is .*SVT, not STViT'):
        main(['configs/toy/svt-h-small_toy-in1k.py', image])
    with pytest.raises(ValueError, match='stage 2 has no super tokens'):
        main([CFG, image, '--stage', '2'])
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        main([CFG, image, '--checkpoint', str(tmp_path / 'none.pth')])
