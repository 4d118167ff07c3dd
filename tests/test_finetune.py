"""Fine-tuning on a folder dataset with the shipped config
(``configs/cls/finetune/stvit-small_in1k-pre_1xb64_custom.py``), the way the
README tells users to: a config of their own inherits it and sets the data
root, the number of classes and the checkpoint.

Here the "ImageNet" checkpoint is a 5-class classifier of the tiny STViT
arch saved to a temporary file, the dataset a folder of PNGs with two class
sub-folders, and the model is shrunk to that arch; everything else (the
dataset type, pipelines, ``load_from``, the layer-wise lr decay constructor,
the schedulers and the safety hooks) is the shipped config's, run by the
real mmengine ``Runner``.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from tests.test_tools import REPO, TINY_ARCH, make_images

CONFIG = REPO / 'configs/cls/finetune/stvit-small_in1k-pre_1xb64_custom.py'
# a dict arch replaces the base's arch name: _delete_
TINY_MODEL = dict(
    backbone=dict(arch=dict(TINY_ARCH, _delete_=True),
                  stoken_size=(4, 2, 1, 1)),
    neck=dict(in_channels=64, out_channels=32),
    head=dict(in_channels=32))
NUM_BLOCKS = sum(TINY_ARCH['depths'])


class LoadedState(Hook):
    """Records the model's weights and the optimizer's param groups when
    training starts, after ``load_from`` was loaded."""

    def before_train(self, runner) -> None:
        self.state = {k: v.detach().clone()
                      for k, v in runner.model.state_dict().items()}
        self.groups = [dict(g, params=None)
                       for g in runner.optim_wrapper.optimizer.param_groups]


def pretrained_checkpoint(path: Path) -> dict:
    """A tiny STViT "ImageNet" classifier (5 classes), randomly
    initialised, saved as the converter saves: ``{'state_dict': ...}``."""
    import mmpretrain.models  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(dict(model=TINY_MODEL))
    cfg.model.head.num_classes = 5
    torch.manual_seed(1)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.state_dict()
    torch.save({'state_dict': state}, path)
    return state


def write_user_config(tmp: Path, data_root: Path, ckpt: Path) -> Path:
    """What a user writes (README, "Fine-tune on your own images"), plus
    the tiny arch and a short CPU schedule."""
    path = tmp / 'my_finetune.py'
    path.write_text(f'''
_base_ = [{str(CONFIG)!r}]
data_root = {str(data_root)!r}
train_dataloader = dict(batch_size=4, num_workers=0,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, num_workers=0,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
model = dict(head=dict(num_classes=2))
load_from = {str(ckpt)!r}
# the test's size and schedule
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}),
                  stoken_size=(4, 2, 1, 1)),
    neck=dict(in_channels=64, out_channels=32),
    head=dict(num_classes=2, in_channels=32))
train_cfg = dict(max_epochs=1)
randomness = dict(seed=0)
''')
    return path


@pytest.fixture(scope='module')
def finetuned(tmp_path_factory):
    from mmengine.runner import Runner
    import swat_mm  # noqa: F401
    tmp = tmp_path_factory.mktemp('finetune')
    data_root = tmp / 'data'
    make_images(data_root / 'train', per_class=8)
    make_images(data_root / 'val', per_class=2)
    ckpt = tmp / 'stvit-tiny_in1k.pth'
    pretrained = pretrained_checkpoint(ckpt)
    cfg = Config.fromfile(str(write_user_config(tmp, data_root, ckpt)))
    cfg.work_dir = str(tmp / 'work')
    runner = Runner.from_cfg(cfg)
    loaded = LoadedState()
    runner.register_hook(loaded, priority='LOWEST')
    runner.train()
    return dict(runner=runner, loaded=loaded, pretrained=pretrained,
                work_dir=tmp / 'work')


def test_config_is_the_shipped_recipe(finetuned):
    cfg = finetuned['runner'].cfg
    assert cfg.train_dataloader.dataset.type == 'CustomDataset'
    assert cfg.optim_wrapper.constructor == \
        'LearningRateDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.85
    dataset = finetuned['runner'].train_dataloader.dataset
    assert dataset.metainfo['classes'] == ('bright', 'dark')
    assert len(dataset) == 16


def test_checkpoint_was_loaded_except_the_head(finetuned):
    state = finetuned['loaded'].state
    pretrained = finetuned['pretrained']
    body = [k for k in pretrained if not k.startswith('head.')]
    assert any(k.startswith('backbone.') for k in body)
    assert any(k.startswith('neck.') for k in body)
    for k in body:
        assert torch.equal(state[k], pretrained[k]), k
    # the 5-class ImageNet head did not fit the 2 class folders
    assert state['head.fc.weight'].shape == (2, 32)
    assert pretrained['head.fc.weight'].shape == (5, 32)


def test_training_ran_with_finite_loss_and_changed_weights(finetuned):
    runner = finetuned['runner']
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 4  # 16 images, 4 per batch, 1 epoch
    assert all(math.isfinite(float(v)) for v in losses)
    final = runner.model.state_dict()
    loaded = finetuned['loaded'].state
    for k in ('backbone.patch_embed.proj.0.weight', 'neck.proj.weight',
              'head.fc.weight'):
        assert not torch.equal(final[k], loaded[k]), k
    assert (finetuned['work_dir'] / 'epoch_1.pth').is_file()


def test_learning_rates_decay_layer_by_layer(finetuned):
    """Before the warm-up scales them, the groups' lrs are the config's
    2.5e-4 times 0.85 ** (num_layers - 1 - depth): 4 blocks, 6 depths."""
    groups = finetuned['loaded'].groups
    base, rate = 2.5e-4, 0.85
    by_name = {g['param_name']: g for g in groups}
    assert by_name['head.fc.weight']['initial_lr'] == pytest.approx(base)
    assert by_name['neck.proj.weight']['layer_id'] == NUM_BLOCKS + 1
    assert by_name['neck.proj.weight']['initial_lr'] == pytest.approx(base)
    stem = [g for n, g in by_name.items()
            if n.startswith('backbone.patch_embed.')]
    assert stem and all(g['layer_id'] == 0 for g in stem)
    assert all(g['initial_lr'] == pytest.approx(
        base * rate**(NUM_BLOCKS + 1), rel=1e-9) for g in stem)
    for k in range(NUM_BLOCKS):
        block = [g for n, g in by_name.items()
                 if n.startswith(f'backbone.layers.{k}.blocks.0.')]
        assert block and all(g['layer_id'] == k + 1 for g in block)
        assert all(g['initial_lr'] == pytest.approx(
            base * rate**(NUM_BLOCKS - k), rel=1e-9) for g in block)


def test_finetuned_checkpoint_classifies_with_its_folder_classes(
        finetuned):
    """The fine-tuned checkpoint through mmpretrain's inferencer: the class
    names are the dataset's folders (the Runner saves them in the
    checkpoint; CustomDataset has no fixed class list)."""
    from mmengine.registry import DefaultScope
    from mmpretrain import ImageClassificationInferencer
    runner = finetuned['runner']
    ckpt = finetuned['work_dir'] / 'epoch_1.pth'
    image = runner.train_dataloader.dataset.get_data_info(0)['img_path']
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        inferencer = ImageClassificationInferencer(
            runner.cfg, pretrained=str(ckpt), device='cpu')
        result = inferencer(image)[0]
    assert result['pred_scores'].shape == (2, )
    assert result['pred_class'] == ('bright', 'dark')[result['pred_label']]
