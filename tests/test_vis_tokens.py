"""tools/visualization/vis_tokens.py on a toy image with the toy SWAT-DeiT
config and tiny configs of the other SWAT backbones (random weights): the
PNGs it writes, that the drawn (c, p, p) maps are the patch's stem
features, and its errors (also as a command: one line, exit status 1)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tests.forked_tools import run_python

from tests.tiny_cls_configs import save_random_checkpoint, tiny_cls_config
from tools.visualization.vis_tokens import main, token_convs, tokenize

CFG = 'configs/toy/swat-deit-tiny_toy-in1k.py'


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    img[20:60, 30:80] = (200, 30, 30)
    path = tmp_path / 'toy.png'
    Image.fromarray(img).save(path)
    return str(path)


def png_size(path):
    with Image.open(path) as png:
        assert np.asarray(png.convert('RGB')).std() > 10  # not blank
        return png.size


def test_token_layout_and_kernels_of_swat_deit(image, tmp_path):
    out = tmp_path / 'vis'
    written = main([CFG, image, '--size', '64', '--out-dir', str(out),
                    '--token', '1', '2', '--modules', 'blocks.0.attn',
                    'blocks.11.attn'])
    assert [os.path.basename(p) for p in written] == [
        'toy_token_r1_c2.png', 'kernels_blocks.0.attn.png',
        'kernels_blocks.11.attn.png']
    # 3 rows of 4 128-pixel panels (3 token maps: c = 3 in DeiT-Ti)
    assert png_size(written[0]) == (4 * 128, 3 * 128)
    # qkv and proj, each a 256-pixel panel
    assert png_size(written[1]) == (2 * 256, 256)


def test_drawn_maps_are_the_patchs_stem_features():
    """The token drawn as (c, p, p) is the stem output (``proj22``) of its
    patch, cell for cell: the layout the picture claims."""
    from swat_mm.models.backbones import SWATViT
    from swat_mm.models.layers.config import fast_layers
    from tests.tiny_archs import SWAT_VIT_TINY
    torch.manual_seed(0)
    with fast_layers(False):
        model = SWATViT(arch=SWAT_VIT_TINY, img_size=32).eval()
    stem_out = []
    model.patch_embed.proj22.register_forward_hook(
        lambda m, i, o: stem_out.append(o))
    with torch.no_grad():
        tokens, (hg, wg), tok = tokenize(model, torch.randn(1, 3, 40, 24))
    c, p = tok.out_channels, tok.sub_patch  # 2, 4; token stride 8
    assert (hg, wg) == (5, 3)
    fmap = stem_out[0][0]  # (c, 20, 12)
    for row, col in ((0, 0), (3, 2)):
        token = tokens[0, row * wg + col].reshape(c, p, p)
        torch.testing.assert_close(
            token, fmap[:, row * p:(row + 1) * p, col * p:(col + 1) * p])


@pytest.mark.parametrize('family, modules', [
    ('swat_swin', ['layers.0.blocks.0.attn', 'layers.3.blocks.0.attn']),
    ('swat_mixer', ['blocks.0.mlp_tokens', 'blocks.2.mlp_tokens']),
    ('swat_resmlp', ['blocks.0', 'blocks.2']),
])
def test_other_swat_backbones(family, modules, image, tmp_path):
    config, side = tiny_cls_config(family, str(tmp_path))
    ckpt = str(tmp_path / 'model.pth')
    save_random_checkpoint(config, ckpt)
    out = tmp_path / 'vis'
    written = main([config, image, '--checkpoint', ckpt, '--size', str(side),
                    '--out-dir', str(out), '--modules', *modules])
    assert len(written) == 3
    assert png_size(written[0])[1] == 3 * 128
    for path in written[1:]:
        assert png_size(path)[1] == 256
    from tools.visualization.common import build_backbone
    backbone, _, _ = build_backbone(config, ckpt, [backbone_type(config)],
                                    '')
    convs = token_convs(backbone)
    assert set(modules) <= set(convs)
    if family == 'swat_swin':  # only the conv-attention (non-shifted) ones
        assert len(convs) == 4
        assert set(convs['layers.0.blocks.0.attn']) == {'qkv', 'proj'}


def backbone_type(config):
    from mmengine.config import Config
    return Config.fromfile(config).model.backbone.type.split('.')[-1]


def test_errors_name_the_problem(image, tmp_path):
    out = tmp_path / 'vis'
    with pytest.raises(FileNotFoundError, match='image .*missing.png'):
        main([CFG, image, str(tmp_path / 'missing.png'), '--out-dir',
              str(out)])
    assert not out.exists()  # nothing half-written
    with pytest.raises(ValueError, match='backbone is .*SVT, not SWATViT or'
                       ' SWATSwin or SWATMixer or SWATResMLP'):
        main(['configs/toy/svt-h-small_toy-in1k.py', image])
    with pytest.raises(ValueError, match="'blocks.12.attn' has no per-token"
                       ' convs.*blocks.0.attn, blocks.1.attn'):
        main([CFG, image, '--modules', 'blocks.12.attn'])
    with pytest.raises(ValueError, match='--token 4 0 is outside the 4x6 '
                       'token grid'):
        main([CFG, image, '--size', '64', '--token', '4', '0', '--out-dir',
              str(out)])
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        main([CFG, image, '--checkpoint', str(tmp_path / 'none.pth')])
    run = run_python(['tools/visualization/vis_tokens.py', CFG,
                      str(tmp_path / 'missing.png')])
    assert run.returncode == 1
    assert 'vis_tokens.py: error: image' in run.stderr
    assert 'missing.png' in run.stderr and 'Traceback' not in run.stderr
