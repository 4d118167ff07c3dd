"""SVT's official token-labelling recipe: MixToken against the official
model (golden fixture), RandAugment that keeps the dense label map on the
image, random interpolation, the shipped -tl configs (train pipeline,
sampler, evaluation crop), and official checkpoints (they carry the
token-labelling head) evaluating to the official logits with the -tl config
while the plain config refuses them, naming the -tl config."""
import os.path as osp
from typing import Dict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

import swat_mm  # noqa: F401
from swat_mm.converters import convert_svt
from swat_mm.engine.hooks.checkpoint_fit import CheckpointMismatchError
from swat_mm.models.layers.mix_token import (MixBox, mix_class_target,
                                             mix_tokens, sample_mix_box,
                                             unmix_token_outputs)
from tests.golden.cases import GOLDEN, load_fixture, svt_arch
from tests.golden.synth import synth_input

CFG = 'configs/cls/svt/svt-h-{}_8xb128_in1k{}.py'
ARCHS = ('small', 'base', 'large')


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(scope='module')
def configs() -> Dict[str, Config]:
    return {f'{a}{tl}': Config.fromfile(CFG.format(a, tl))
            for a in ARCHS for tl in ('', '-tl')}


# ------------------------------------------------------------- MixToken


def _official_mix(x: torch.Tensor, box: MixBox) -> torch.Tensor:
    """The official slicing (svt.py SVT.forward): clone, then the box
    region from the reversed batch; (B, H, W, C)."""
    out = x.clone()
    out[:, box.top:box.bottom, box.left:box.right, :] = \
        x.flip(0)[:, box.top:box.bottom, box.left:box.right, :]
    return out


@pytest.mark.parametrize('box', [MixBox(1, 5, 0, 2), MixBox(0, 7, 0, 7),
                                 MixBox(3, 3, 2, 6), MixBox(6, 7, 4, 7)])
def test_mix_functions_match_the_official_slicing(box):
    torch.manual_seed(0)
    x = torch.randn(5, 7, 7, 3)
    assert torch.equal(mix_tokens(x, box), _official_mix(x, box))
    assert torch.equal(mix_tokens(mix_tokens(x, box), box), x)
    out = torch.randn(5, 49, 3)
    expected = _official_mix(out.reshape(5, 7, 7, 3), box).reshape(5, 49, 3)
    assert torch.equal(unmix_token_outputs(out, box, (7, 7)), expected)
    t = torch.softmax(torch.randn(5, 3), 1)
    lam = 1 - box.area / 49  # TokenLabelCrossEntropy's
    expected = lam * t + (1 - lam) * t.flip(0) if lam < 1 else t
    assert torch.allclose(mix_class_target(t, box, 49), expected)


def _tiny_tl_model(fixture: dict):
    """The shipped -tl config's model with the golden case's tiny arch and
    the official weights through the shipped converter."""
    arch = svt_arch(fixture['official_kwargs'])
    state, conv = convert_svt(load_fixture(fixture['case'])['state_dict'],
                              arch=arch)
    cfg = Config.fromfile(CFG.format('small', '-tl')).model
    cfg.backbone.update(conv['backbone'], drop_path_rate=0.)
    cfg.head.update(conv['head'])
    cfg.data_preprocessor = dict(num_classes=conv['head']['num_classes'])
    model = MODELS.build(cfg)
    model.load_state_dict(state, strict=True)
    return model


def test_mixtoken_training_step_matches_the_official_model():
    """The official SVT (token_label=True) in training, seeded: its box,
    class logits, un-mixed token logits and TokenLabelCrossEntropy loss
    (fixture) are ours, from the shipped -tl config's
    SVTTokenLabelClassifier seeded alike (measured: 2e-7 on the loss)."""
    fixture = torch.load(osp.join(GOLDEN, 'svt_mixtoken.pth'),
                         weights_only=True)
    model = _tiny_tl_model(fixture).train()
    assert model.mix_token
    x = synth_input(fixture['input_synth']['shape'],
                    fixture['input_synth']['seed'])
    np.random.seed(fixture['np_seed'])
    box = sample_mix_box((7, 7))
    bbx1, bby1, bbx2, bby2 = fixture['box']  # official: rows x, cols y
    assert box == MixBox(bbx1, bbx2, bby1, bby2) and 0 < box.area < 49

    with torch.no_grad():
        feats = model.backbone(x, mix_box=box.scaled(8))
        cls, aux = model.head.forward_train(feats)
    assert torch.allclose(cls, fixture['cls'], atol=1e-5, rtol=1e-4)
    aux = unmix_token_outputs(aux, box, (7, 7))
    assert torch.allclose(aux, fixture['aux'], atol=1e-5, rtol=1e-4)

    # the whole loss path, box drawn by the classifier
    target = fixture['target']  # official (B, K, 2 + N): GT, cls, tokens
    samples = [DataSample(token_label=t[:, 1:]) for t in target]
    np.random.seed(fixture['np_seed'])
    losses = model.loss(x, samples)
    total = losses['loss'] + losses['loss_aux']
    assert torch.allclose(total, fixture['loss'], atol=1e-5), \
        (total - fixture['loss']).abs()
    # without MixToken the loss differs (the fixture's box matters)
    model.mix_token = False
    plain = model.loss(x, samples)
    assert abs((plain['loss'] + plain['loss_aux']) - total) > 1e-3


def test_mixtoken_refuses_what_it_cannot_mix():
    fixture = torch.load(osp.join(GOLDEN, 'svt_mixtoken.pth'),
                         weights_only=True)
    model = _tiny_tl_model(fixture).train()
    samples = [DataSample(token_label=torch.full((10, 50), 0.1))
               for _ in range(2)]
    with pytest.raises(ValueError, match='divisible by 32'):
        model.loss(torch.randn(2, 3, 200, 200), samples)
    cfg = Config.fromfile(CFG.format('small', '-tl')).model
    cfg.head.with_aux = False
    with pytest.raises(ValueError, match='with_aux=True'):
        MODELS.build(cfg)


# ------------------------------------------------- token-label RandAugment


def _position_image(H: int, W: int) -> np.ndarray:
    """Channel 0 encodes x, channel 1 y (0..255), channel 2 is 0."""
    ys, xs = np.mgrid[0:H, 0:W]
    return np.stack([np.round(xs * 255 / (W - 1)),
                     np.round(ys * 255 / (H - 1)),
                     np.zeros((H, W))], -1).astype(np.uint8)


def _position_labels(H: int, W: int, h: int, w: int) -> torch.Tensor:
    """(2, 2, h, w): scores = the image position (x, y) of every cell's
    centre, indices 0 and 1."""
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5,
                            indexing='ij')
    scores = torch.stack([xs * W / w - 0.5, ys * H / h - 0.5])
    index = torch.stack([torch.zeros(h, w), torch.ones(h, w)])
    return torch.stack([scores, index])


@pytest.mark.parametrize('policy', [
    dict(type='Rotate', angle=25.), dict(type='Rotate', angle=-30.),
    dict(type='Shear', magnitude=0.3, direction='horizontal'),
    dict(type='Shear', magnitude=0.3, direction='vertical'),
    dict(type='Translate', magnitude=0.3, direction='horizontal'),
    dict(type='Translate', magnitude=0.3, direction='vertical'),
])
def test_randaugment_keeps_the_label_map_on_the_image(policy):
    """A non-square image whose pixels encode their original position and
    a square 12 x 12 label map whose cells hold theirs: after each
    geometric operation (real mmpretrain op, random sign and random
    interpolation), every cell still sits on the image content it labels,
    within half a cell (nearest-cell resampling) and 2 pixels; cells moved
    in from outside have zero scores where the image shows padding."""
    H, W, h, w = 90, 150, 12, 12
    aug = TRANSFORMS.build(dict(
        type='swat_mm.TokenLabelRandAugment',
        policies=[dict(policy, prob=1.0)], num_policies=1,
        magnitude_level=9, hparams=dict(pad_val=(0, 0, 255),
                                        interpolation='random')))
    moved = 0
    for seed in range(4):  # both signs
        np.random.seed(seed)
        results = aug(dict(img=_position_image(H, W),
                           token_label_topk=_position_labels(H, W, h, w),
                           token_label_box=np.array([0., 0., 1., 1.])))
        img, topk = results['img'], results['token_label_topk']
        disagree = 0
        for i in range(h):
            for j in range(w):
                x = int(round((j + 0.5) * W / w - 0.5))
                y = int(round((i + 0.5) * H / h - 0.5))
                pixel = img[y, x].astype(float)
                padded = pixel[2] > 128
                outside = bool(topk[0, 0, i, j] == 0)
                if padded or outside:
                    disagree += padded != outside
                    continue
                near = img[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3, 2]
                if near.any():  # (bicubic) blend with the padding
                    continue
                x0 = pixel[0] * (W - 1) / 255
                y0 = pixel[1] * (H - 1) / 255
                assert abs(x0 - topk[0, 0, i, j]) <= W / w / 2 + 2
                assert abs(y0 - topk[0, 1, i, j]) <= H / h / 2 + 2
                # the cell now shows content from elsewhere
                moved += abs(x0 - (j + 0.5) * W / w + 0.5) > W / w or \
                    abs(y0 - (i + 0.5) * H / h + 0.5) > H / h
        # only cells at the padding's edge may disagree
        assert disagree <= h
    assert moved > 0


def test_randaugment_colour_ops_leave_the_labels_and_order_is_checked():
    aug = TRANSFORMS.build(dict(
        type='swat_mm.TokenLabelRandAugment',
        policies=[dict(type='Invert', prob=1.0)], num_policies=1,
        magnitude_level=9))
    topk = _position_labels(40, 60, 5, 5)
    results = aug(dict(img=_position_image(40, 60), token_label_topk=topk,
                       token_label_box=np.array([0., 0., 1., 1.])))
    assert torch.equal(results['token_label_topk'], topk)
    assert (results['img'][..., 2] == 255).all()
    with pytest.raises(ValueError, match='before the crop and the flip'):
        aug(dict(img=_position_image(40, 60), token_label_topk=topk,
                 token_label_box=np.array([0.1, 0., 1., 1.])))


def test_random_interpolation_crop_uses_bilinear_and_bicubic():
    img = np.random.RandomState(0).randint(0, 255, (50, 70, 3)).astype(
        np.uint8)
    crops = {name: TRANSFORMS.build(dict(
        type='swat_mm.TokenLabelRandomResizedCrop', scale=32,
        backend='pillow', interpolation=name))
        for name in ('random', 'bilinear', 'bicubic')}
    used = set()
    for seed in range(12):
        out = {}
        for name, crop in crops.items():
            np.random.seed(seed)
            out[name] = crop(dict(img=img.copy()))['img']
        match = [n for n in ('bilinear', 'bicubic')
                 if np.array_equal(out['random'], out[n])]
        assert len(match) == 1
        used.add(match[0])
    assert used == {'bilinear', 'bicubic'}


# ---------------------------------------------------------------- configs


def test_tl_configs_follow_the_official_token_labelling_run(configs):
    for arch in ARCHS:
        cfg = configs[f'{arch}-tl']
        assert cfg.model.type == 'swat_mm.SVTTokenLabelClassifier'
        assert cfg.model.mix_token and cfg.model.mix_beta == 1.0
        assert cfg.model.head.with_aux
        assert 'augments' not in cfg.model.get('train_cfg', {})
        assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
        types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
        assert types == [
            'LoadImageFromFile', 'swat_mm.LoadTokenLabel',
            'swat_mm.TokenLabelRandAugment',
            'swat_mm.TokenLabelRandomResizedCrop', 'RandomFlip',
            'swat_mm.MakeTokenLabel', 'RandomErasing', 'PackInputs']
        pipe = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
        ra = pipe['swat_mm.TokenLabelRandAugment']
        assert (ra.policies, ra.num_policies, ra.magnitude_level,
                ra.magnitude_std) == ('timm_increasing', 2, 9, 0.5)
        assert ra.hparams.interpolation == 'random'
        assert pipe['swat_mm.TokenLabelRandomResizedCrop'].interpolation \
            == 'random'
        assert pipe['RandomErasing'].erase_prob == 0.25
        assert pipe['swat_mm.MakeTokenLabel'].label_size == 7
        plain = configs[arch]
        assert cfg.model.backbone == plain.model.backbone
        assert cfg.optim_wrapper == plain.optim_wrapper
        assert cfg.train_cfg.max_epochs == 310
    # configs/svt/svt_{s,b,l}.py
    assert [configs[f'{a}-tl'].model.backbone.drop_path_rate
            for a in ARCHS] == [0.1, 0.1, 0.3]
    assert [configs[f'{a}-tl'].optim_wrapper.get('clip_grad')
            for a in ARCHS] == [None, None, dict(max_norm=1.0,
                                                 norm_type=2)]


def test_every_svt_config_evaluates_at_233_to_224(configs):
    for cfg in configs.values():
        for loader in (cfg.val_dataloader, cfg.test_dataloader):
            resize, crop = loader.dataset.pipeline[1:3]
            assert (resize.type, resize.scale, resize.edge,
                    resize.interpolation) == ('ResizeEdge', 233, 'short',
                                              'bicubic')
            assert (crop.type, crop.crop_size) == ('CenterCrop', 224)


# ------------------------------------------ official checkpoints evaluate


def _runner(config: str, tmp_path, name: str):
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = f'svt_{name}_{tmp_path.name}'
    return Runner.from_cfg(cfg)


def test_official_checkpoint_needs_the_tl_config(tmp_path):
    """An official SVT-H-S checkpoint (golden weights with the aux head,
    converted by the shipped converter), loaded by mmengine's Runner with
    the shipped configs and their CheckpointFitHook: the -tl config gives
    the official logits, the plain config refuses it naming the -tl
    config."""
    fixture = load_fixture('svt_h_small')
    assert fixture['official_kwargs']['token_label']
    state, _ = convert_svt(fixture['state_dict'])
    path = tmp_path / 'svt_h_small.pth'
    torch.save({'state_dict': state}, str(path))

    runner = _runner(CFG.format('small', '-tl'), tmp_path, 'tl')
    runner.load_checkpoint(str(path))
    model = runner.model.eval()
    with torch.no_grad():
        logits = model(fixture['input'], mode='tensor')
    assert torch.allclose(logits, fixture['logits'], rtol=1e-4, atol=1e-5)

    runner = _runner(CFG.format('small', ''), tmp_path, 'plain')
    with pytest.raises(CheckpointMismatchError) as err:
        runner.load_checkpoint(str(path))
    message = str(err.value)
    assert '0 missing, 2 unexpected, 0 shape-mismatched' in message
    assert 'head.aux_head.weight' in message
    assert 'configs/cls/svt/svt-h-small_8xb128_in1k-tl.py' in message


def test_detection_follows_the_pvtv2_b2_baseline():
    """SVT-S's 46.0 box AP is set against PVTv2-B2's 45.3; whai362/PVT
    mask_rcnn_pvt_v2_b2_fpn_1x_coco.py: AdamW lr 2e-4, wd 1e-4 (every
    parameter), mmdet 2.x schedule_1x (500 warm-up iterations, steps 8,
    11)."""
    for arch in ARCHS:
        cfg = Config.fromfile(
            f'configs/det/svt/mask-rcnn_svt-h-{arch}_fpn_1x_coco.py')
        opt = cfg.optim_wrapper
        assert (opt.optimizer.type, opt.optimizer.lr,
                opt.optimizer.weight_decay) == ('AdamW', 2e-4, 1e-4)
        assert 'paramwise_cfg' not in opt and 'clip_grad' not in opt
        warmup, steps = cfg.param_scheduler
        assert (warmup.type, warmup.start_factor, warmup.end) == \
            ('LinearLR', 0.001, 500)
        assert steps.milestones == [8, 11] and cfg.train_cfg.max_epochs == 12
        assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs
