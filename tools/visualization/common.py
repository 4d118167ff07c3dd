"""What the visualization tools share: a config's backbone with an optional
checkpoint (strictly loaded), the image loading, and the command-line
wrapper that turns a bad input into one clear line and a non-zero exit."""
import os.path as osp
import sys
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch.nn as nn


def build_backbone(config: str, checkpoint: Optional[str],
                   families: Sequence[str], hint: str,
                   overrides: Optional[dict] = None
                   ) -> Tuple[nn.Module, np.ndarray, np.ndarray]:
    """The config's ``model.backbone`` in eval mode, and the data
    preprocessor's RGB mean and std.

    Args:
        config: a config file whose backbone is one of ``families`` (class
            names in ``swat_mm``), else a ValueError naming what it is and
            ``hint`` (where the right configs are).
        checkpoint: a whole model's (``backbone.*`` keys among others) or a
            backbone's own state dict, loaded strictly (safe loader); None
            keeps the random initialisation.
        overrides: backbone constructor arguments to change (outputs only,
            never parameters).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import swat_mm  # noqa: F401  (registers swat_mm and the safe loader)
    from swat_mm.engine.runner_utils import (get_toolbox, register_toolbox,
                                             replace_sync_bn)
    from swat_mm.registry import MODELS
    if not osp.isfile(config):
        raise FileNotFoundError(f'config {config!r} does not exist')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    cfg = Config.fromfile(config)
    backbone_type = str(cfg.model.get('backbone', {}).get('type', '?'))
    family = backbone_type.split('.')[-1]
    if family not in families:
        raise ValueError(
            f'{config}: the backbone is {backbone_type}, not '
            f'{" or ".join(families)}; {hint}')
    toolbox = get_toolbox(cfg)
    register_toolbox(toolbox)
    init_default_scope(toolbox)
    replace_sync_bn(cfg.model, 'model')
    backbone_cfg = dict(cfg.model.backbone)
    backbone_cfg.pop('init_cfg', None)  # no download; weights below
    backbone_cfg.update(overrides or {})
    backbone_cfg['type'] = f'swat_mm.{family}'
    backbone = MODELS.build(backbone_cfg)
    if checkpoint is not None:
        from mmengine.runner.checkpoint import _load_checkpoint
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        state = ckpt.get('state_dict', ckpt)
        # a whole model's checkpoint (classifier, detector, segmentor) or a
        # backbone's own; every backbone key must be there (strict)
        if any(k.startswith('backbone.') for k in state):
            state = {k[len('backbone.'):]: v for k, v in state.items()
                     if k.startswith('backbone.')}
        backbone.load_state_dict(state, strict=True)
    pre = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    mean = pre.get('mean', [123.675, 116.28, 103.53])
    std = pre.get('std', [58.395, 57.12, 57.375])
    return backbone.eval(), np.array(mean, np.float32), np.array(
        std, np.float32)


def load_image(path: str, size: int) -> np.ndarray:
    """RGB uint8 image with its shorter side ``size``."""
    import mmcv
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path!r} does not exist')
    img = mmcv.imread(path, channel_order='rgb')
    if img is None:
        raise ValueError(f'{path!r} is not an image mmcv can read')
    h, w = img.shape[:2]
    scale = size / min(h, w)
    return mmcv.imresize(img, (max(1, round(w * scale)),
                               max(1, round(h * scale))))


def cli(main: Callable[[Optional[Sequence[str]]], List[str]]) -> None:
    """Run a tool's ``main`` from the command line: a missing file or a
    wrong config, stage or layer is reported as one line on stderr with
    exit status 1 (no traceback); a checkpoint that does not fit
    (RuntimeError from the strict load) as well."""
    prog = osp.basename(sys.argv[0])
    try:
        main(None)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f'{prog}: error: {e}', file=sys.stderr)
        sys.exit(1)
