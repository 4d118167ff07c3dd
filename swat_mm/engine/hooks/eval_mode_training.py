"""Training with the whole model in eval mode, as STViT's 384 fine-tune.

The official STViT fine-tune (``hhb072/STViT`` ``main.py``:
``train_one_epoch(..., set_training_mode=args.finetune == '')``, commented
"keep in eval mode during finetuning") trains the model after
``model.train(False)``: every BatchNorm normalises with its running
statistics and leaves them as they are, drop path and dropout are off,
while the optimizer still updates every parameter (BatchNorm affine
weights included) from the full gradients.

mmengine's train loops call ``runner.model.train()`` (at each epoch's
start, after validation), and the backbone's ``norm_eval`` would cover
the backbone only (STViT's classifier neck has a BatchNorm of its own).
:class:`EvalModeTrainingHook` puts ``runner.model`` back in eval mode
right before every training iteration, so that each ``train_step`` runs
the forward of eval mode with gradients. Batch augmentations (Mixup /
CutMix) are unaffected: mmpretrain's ``train_step`` passes
``training=True`` to the data preprocessor explicitly.
"""
from typing import Optional

from mmengine.hooks import Hook

from swat_mm.registry import HOOKS


@HOOKS.register_module()
class EvalModeTrainingHook(Hook):
    """Keep ``runner.model`` (wrapper and all submodules) in eval mode for
    every training iteration.

    Use it in a config's ``custom_hooks``:
    ``dict(type='swat_mm.EvalModeTrainingHook')``.
    """

    # before the other hooks' before_train_iter, so that none of them sees
    # the model in training mode
    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        if any(m.training for m in runner.model.modules()):
            runner.model.eval()
