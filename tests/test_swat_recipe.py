"""SWAT classification configs against the official code.

For every shipped ``configs/cls/swat`` config:

* weight decay: the optimizer that mmengine's real optim wrapper
  constructor builds from the config splits the parameters into decayed
  and not decayed exactly as the official run does: timm 0.4.13's
  ``add_weight_decay`` (``timm/optim/optim_factory.py`` of
  kkahatapitiya/SWAT, which bundles timm 0.4.13) with the official model's
  ``no_weight_decay()`` set, applied to the official model's parameters (the
  names and shapes of the golden fixtures, written by the official code) and
  mapped to ours through the shipped converter;
* official checkpoints: the classifier built from the config, loaded with
  the shipped converter's output (``tools/model_converters/
  swat_to_mmpretrain.py`` for the zoo-size fixtures), gives the official
  logits through the config's data preprocessor;
* evaluation pipeline: the config's test pipeline and data preprocessor
  give the tensor the official evaluation gives (train.py's validation
  loader: timm 0.4.13 ``transforms_imagenet_eval`` with the yaml's
  crop_pct 0.9 and the model's bicubic interpolation, PIL loading, the
  prefetcher's normalisation).

Configs whose arch has no golden fixture run the fixture of the same
family with the arch (and width) swapped in; the test first checks that the
swap keeps the parameter kinds (names up to block indices, and dimensions)
of the config's own model.
"""
import copy
import functools
import math
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS, TRANSFORMS
from PIL import Image

import swat_mm  # noqa: F401
from tests.golden.cases import convert_case, family_of, load_fixture
from tests.test_swat import _load_cli

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(ROOT, 'configs', 'cls', 'swat')

# shipped config -> golden case of the official code: the case of the
# config's own arch where one exists (converted by the CLI), otherwise a
# small case of the same family (the arch swapped in)
CASES = {
    'swat-deit-tiny_8xb256_in1k.py': 'swat_deit_tiny',
    'swat-deit-small_8xb256_in1k.py': 'swat_vit_tiny_a',
    # tiny_b has B/32's 2x2 stride-2 token projection
    'swat-vit-base-p32_8xb256_in1k.py': 'swat_vit_tiny_b',
    'swat-mixer-tiny_8xb256_in1k.py': 'swat_mixer_tiny',
    'swat-mixer-small_8xb256_in1k.py': 'swat_mixer_tiny_a',
    'swat-mixer-base-p32_8xb256_in1k.py': 'swat_mixer_tiny_a',
    'swat-resmlp-s12_8xb256_in1k.py': 'swat_resmlp_s12',
    'swat-swin-tiny_8xb96_in1k.py': 'swat_swin_tiny',
    # Swin-T's tables and tokenizer (as Swin-S's), other depths
    'swat-swin-small_8xb96_in1k.py': 'swat_swin_custom_b',
}
ZOO_CASES = {'swat_deit_tiny', 'swat_mixer_tiny', 'swat_resmlp_s12',
             'swat_swin_tiny'}

# The official rule. timm 0.4.13 create_optimizer_v2 calls
# add_weight_decay(model, weight_decay, model.no_weight_decay()), which
# puts a trainable parameter in the no-decay group when
#   len(param.shape) == 1 or name.endswith('.bias') or name in skip_list.
# no_weight_decay() of the official models: VisionTransformer
# (vision_transformer.py) {'pos_embed', 'cls_token', 'dist_token'};
# SwinTransformer (swin_transformer.py) {'absolute_pos_embed'} (its
# no_weight_decay_keywords() {'relative_position_bias_table'} is never read
# by the optimizer factory); MlpMixer (mlp_mixer.py, also ResMLP) has none.
OFFICIAL_NO_WEIGHT_DECAY = {
    'vit': {'pos_embed', 'cls_token', 'dist_token'},
    'swat_swin': {'absolute_pos_embed'},
    'mixer': set(),
    'resmlp': set(),
}
# the official state dicts' buffers (Swin's); the others have none
OFFICIAL_BUFFERS = ('relative_position_index', 'attn_mask')
# official evaluation (config/*_i1k_scratch.yaml: crop_pct 0.9, mean and
# std ImageNet's, interpolation '' -> the model's default_cfg 'bicubic')
OFFICIAL_EVAL = dict(img_size=224, crop_pct=0.9, interpolation='bicubic',
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    # other test modules leave mmdet/mmseg as the process's default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def official_family(case: str) -> str:
    family = family_of(case)
    return family if family == 'swat_swin' else golden(case)['family']


@functools.lru_cache(maxsize=None)
def load_config(name: str) -> Config:
    """A shipped config (read-only here), parsed once per module."""
    return Config.fromfile(osp.join(CONFIG_DIR, name))


@functools.lru_cache(maxsize=None)
def golden(case: str) -> dict:
    """A golden case (read-only here), loaded once per module."""
    return load_fixture(case)


def test_every_shipped_config_is_covered():
    shipped = sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith('.py'))
    assert shipped == sorted(CASES)


def config_model(name: str, case: str = None) -> dict:
    """The config's model dict (with its data preprocessor, as the runner
    builds it); with ``case``, the case's arch, input size and classes
    swapped in, after checking that the config's types fit the
    converter's."""
    cfg = load_config(name)
    model = cfg.model.to_dict()
    model.setdefault('data_preprocessor', cfg.data_preprocessor.to_dict())
    if case is None:
        return model
    _, conv = convert_case(case, golden(case))
    assert model['backbone']['type'] == conv['backbone']['type']
    assert model['neck'] == conv['neck']
    assert model['head']['type'] == conv['head']['type']
    if case in ZOO_CASES:  # the config's own arch: nothing swapped
        assert conv['backbone']['arch'] == model['backbone']['arch']
        assert conv['backbone'].get('img_size', 224) == 224
    for key, value in conv['backbone'].items():
        if key in ('arch', 'img_size'):
            model['backbone'][key] = value
        else:  # e.g. the ViT's out_type: the config's must be the official
            assert model['backbone'][key] == value, key
    for key in ('num_classes', 'in_channels'):
        model['head'][key] = conv['head'][key]
    return model


def kinds(model: torch.nn.Module) -> set:
    return {(re.sub(r'\.\d+\.', '.#.', n), p.ndim)
            for n, p in model.named_parameters()}


@pytest.mark.parametrize('name', sorted(CASES))
def test_weight_decay_split_is_the_official_rule(name):
    """Decay / no decay, parameter by parameter, as the official run."""
    case = CASES[name]
    cfg = load_config(name)
    model = MODELS.build(config_model(name, case))
    if case not in ZOO_CASES:
        full = MODELS.build(config_model(name))
        assert kinds(model) == kinds(full)
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    base_lr = cfg.optim_wrapper.optimizer.lr
    base_wd = cfg.optim_wrapper.optimizer.weight_decay
    assert base_wd == 0.3
    decay_of = {}
    for group in wrapper.optimizer.param_groups:
        assert group['lr'] == base_lr  # no lr multipliers
        for p in group['params']:
            assert id(p) not in decay_of
            decay_of[id(p)] = group['weight_decay']
    ours = {n: decay_of[id(p)] for n, p in model.named_parameters()}
    assert len(decay_of) == len(ours)

    # the official rule on the official parameters, named as ours
    fixture = golden(case)
    state, _ = convert_case(case, fixture)
    ours_of_ptr = {v.data_ptr(): k for k, v in state.items()}
    skip = OFFICIAL_NO_WEIGHT_DECAY[official_family(case)]
    official = {}
    for key, value in fixture['state_dict'].items():
        if key.rsplit('.', 1)[-1] in OFFICIAL_BUFFERS:
            continue
        no_decay = value.ndim == 1 or key.endswith('.bias') or key in skip
        official[ours_of_ptr[value.data_ptr()]] = 0. if no_decay else base_wd
    assert sorted(official) == sorted(ours)
    differ = {n: (ours[n], official[n]) for n in ours
              if ours[n] != official[n]}
    assert not differ

    # where the official rule differs from the usual recipes
    def decay(suffix):
        return {wd for n, wd in ours.items() if n.endswith(suffix)}

    if 'swin' in name:
        assert decay('.relative_position_bias_table') == {base_wd}
    if 'resmlp' in name:
        assert decay('.ls1') == decay('.ls2') == {0.}
        assert decay('.alpha') == decay('.beta') == {base_wd}
    if 'deit' in name or 'vit' in name:
        assert ours['backbone.pos_embed'] == 0.
        assert ours['backbone.patch_embed.pos_embed2'] == base_wd


@pytest.mark.parametrize('name', sorted(CASES))
def test_official_checkpoint_gives_official_logits(name, tmp_path,
                                                   monkeypatch):
    """The classifier built from the shipped config, with the official
    weights converted by the shipped converter, gives the official logits
    for the official input (fed as pixels through the config's data
    preprocessor)."""
    case = CASES[name]
    fixture = golden(case)
    model = MODELS.build(config_model(name, case)).eval()
    if case in ZOO_CASES:
        # as README's command: the EMA weights of a training checkpoint
        ema = fixture['state_dict']
        raw = {k: -v if k.startswith('head.') else v for k, v in ema.items()}
        src, dst = str(tmp_path / 'official.pth.tar'), str(tmp_path / 'c.pth')
        torch.save({'state_dict': raw, 'state_dict_ema': ema}, src)
        monkeypatch.setattr(sys, 'argv', ['x', src, dst, '--use-ema'])
        assert _load_cli().main() == 0
        load_checkpoint(model, dst, map_location='cpu', strict=True)
    else:  # a custom arch: the function behind the CLI
        state, _ = convert_case(case, fixture)
        model.load_state_dict(state, strict=True)
    mean = torch.tensor(OFFICIAL_EVAL['mean']).view(1, 3, 1, 1) * 255
    std = torch.tensor(OFFICIAL_EVAL['std']).view(1, 3, 1, 1) * 255
    pixels = (fixture['input'] * std + mean).flip(1)  # BGR, as loaded
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=pixels), False)
        logits = model(data['inputs'], mode='tensor')
    expected = fixture['logits']
    assert logits.shape == expected.shape
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def official_eval_input(path: str) -> torch.Tensor:
    """timm 0.4.13's evaluation of the official run for one image: PIL
    loading, Resize(floor(224 / 0.9)) bicubic, CenterCrop(224), the
    prefetcher's (x - 255 mean) / (255 std)."""
    from torchvision import transforms as T
    size = OFFICIAL_EVAL['img_size']
    img = Image.open(path).convert('RGB')
    img = T.Resize(int(math.floor(size / OFFICIAL_EVAL['crop_pct'])),
                   interpolation=T.InterpolationMode.BICUBIC)(img)
    img = T.CenterCrop(size)(img)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    x = x.permute(2, 0, 1).float()
    mean = torch.tensor(OFFICIAL_EVAL['mean']).view(3, 1, 1) * 255
    std = torch.tensor(OFFICIAL_EVAL['std']).view(3, 1, 1) * 255
    return (x - mean) / std


def test_eval_pipeline_is_the_official_one(tmp_path):
    """Every config's test and val pipelines plus its data preprocessor
    give the official evaluation tensor (JPEGs of several shapes,
    landscape, portrait, odd, smaller than the resize)."""
    rng = np.random.default_rng(0)
    paths = []
    for h, w in [(375, 500), (500, 333), (257, 301), (200, 181)]:
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 0.5 + yy * 0.2) % 256, (yy * 0.7) % 256,
                        (xx * yy / 300) % 256], -1)
        img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255)
        path = str(tmp_path / f'{h}x{w}.jpg')
        Image.fromarray(img.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    expected = [official_eval_input(p) for p in paths]
    # every config's val and test (preprocessor, pipeline), each distinct
    # one checked once
    settings = {}
    for name in sorted(CASES):
        cfg = load_config(name)
        for loader in ('val_dataloader', 'test_dataloader'):
            setting = (cfg.data_preprocessor, cfg[loader].dataset.pipeline)
            settings.setdefault(repr(setting), (name, setting))
    assert len(settings) == 1  # the SWAT configs share theirs today
    for name, (preprocessor, pipeline) in settings.values():
        preprocessor = MODELS.build(dict(type='ClsDataPreprocessor',
                                         **preprocessor))
        pipeline = [TRANSFORMS.build(t) for t in pipeline]
        for path, ref in zip(paths, expected):
            results = dict(img_path=path)
            for t in pipeline:
                results = t(results)
            data = preprocessor(dict(inputs=[results['inputs']]), False)
            torch.testing.assert_close(data['inputs'][0], ref, rtol=0,
                                       atol=1e-5, msg=f'{name} {path}')
