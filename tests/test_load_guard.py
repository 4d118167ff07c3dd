"""mmengine's non-strict loads (mmpretrain's ``init_model`` and
inferencers, ``load_checkpoint``) refuse a checkpoint whose keys do not fit
a swat_mm backbone or SVT head, naming the keys and the config to use;
torch's own ``load_state_dict(strict=False)`` and deliberate partial loads
keep working."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint, save_checkpoint
from mmpretrain.apis import init_model

import swat_mm  # noqa: F401  (installs the guard)
from swat_mm.engine.hooks.checkpoint_fit import CheckpointMismatchError
from swat_mm.utils import partial_load_allowed

REPO = Path(__file__).resolve().parents[1]
SVT_TINY = dict(stem_channels=8, embed_dims=[16, 24, 32, 40],
                depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 5],
                mlp_ratios=[2, 2, 2, 2])


def _svt_cfg(tl: bool) -> Config:
    name = 'svt-h-small_8xb128_in1k' + ('-tl' if tl else '')
    cfg = Config.fromfile(str(REPO / 'configs/cls/svt' / f'{name}.py'))
    cfg.model.backbone.arch = SVT_TINY
    cfg.model.backbone.img_size = 64
    cfg.model.head.in_channels = 40
    cfg.model.head.num_heads = 5
    return cfg


def _checkpoint(tmp_path: Path, tl: bool) -> str:
    torch.manual_seed(0)
    model = init_model(_svt_cfg(tl), device='cpu')
    path = str(tmp_path / f'svt_tl{int(tl)}.pth')
    save_checkpoint({'state_dict': model.state_dict()}, path)
    return path


def test_init_model_refuses_a_token_labelling_checkpoint_in_a_plain_config(
        tmp_path):
    ckpt = _checkpoint(tmp_path, tl=True)
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(_svt_cfg(tl=False), ckpt, device='cpu')
    msg = str(err.value)
    assert "this model's head (SVTClsHead): 0 of its" in msg
    assert '2 unexpected (head.aux_head.bias, head.aux_head.weight)' in msg
    assert 'svt-h-<size>_8xb128_in1k-tl.py' in msg
    # and the other way round
    plain = _checkpoint(tmp_path, tl=False)
    with pytest.raises(CheckpointMismatchError, match=r'2 of its \d+ '
                       r'tensors missing \(head.aux_head.bias, '
                       r'head.aux_head.weight\).*plain config'):
        init_model(_svt_cfg(tl=True), plain, device='cpu')
    # the fitting config loads every tensor exactly
    model = init_model(_svt_cfg(tl=True), ckpt, device='cpu')
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_another_backbone_is_refused_and_partial_loads_stay_possible(
        tmp_path):
    ckpt = _checkpoint(tmp_path, tl=False)
    cfg = _svt_cfg(tl=False)
    cfg.model.backbone.arch = dict(SVT_TINY, depths=[1, 1, 2, 1])
    with pytest.raises(CheckpointMismatchError, match=r"model's backbone "
                       r'\(SVT\): \d+ of its \d+ tensors missing '
                       r'\(backbone\.block3\.1\.'):
        init_model(cfg, ckpt, device='cpu')
    model = init_model(copy.deepcopy(cfg), device='cpu')
    with partial_load_allowed():
        load_checkpoint(model, ckpt, map_location='cpu')
    # torch's own non-strict load is not second-guessed
    state = torch.load(ckpt, weights_only=True)['state_dict']
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys and not result.unexpected_keys
