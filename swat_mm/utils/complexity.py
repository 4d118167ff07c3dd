"""Parameters and FLOPs of a config's model, for any of the three toolboxes.

FLOPs are counted as OpenMMLab and fvcore count them: one fused
multiply-add is one FLOP, so the numbers compare with the "FLOPs" columns
of the model zoos (ResNet-50: 4.1G at 224).

What is counted, by default (the model's ``mode='tensor'`` path):

* mmpretrain classifiers: backbone, neck and head, on a (1, 3, H, W) input;
* mmseg segmentors: ``_forward``, i.e. backbone, neck and decode head (the
  auxiliary head only runs in training);
* mmdet detectors: backbone, neck and heads on one image whose metainfo
  says ``img_shape == (H, W)`` (padded to the data preprocessor's
  ``pad_size_divisor``): ``_forward`` as mmdet's ``tools/analysis_tools/
  get_flops.py`` runs it for one-stage detectors; two-stage detectors run
  their RPN head and then their RoI heads on a fixed 1000 proposals
  (:class:`_TwoStageForward`), as mmdet 2.x counted the published numbers,
  because the proposals of an untrained RPN vary in number;
* ``backbone_only=True``: ``model.backbone`` alone (parameters too).

The counter is mmengine's ``FlopAnalyzer`` (what
``mmengine.analysis.get_model_complexity_info`` runs) with one handle added:
``aten::scaled_dot_product_attention``, which that analyzer does not know
and would skip silently, under-counting every attention that uses PyTorch's
fused kernel (STViT's does). Nothing is downloaded: weights are not
initialised from any ``init_cfg``.

FLOPs are those of the reference formulation of every layer: a config's
model is built inside ``fast_layers(False)``
(:mod:`swat_mm.models.layers.config`), since a fast formulation may spend
other multiply-adds on the same function (SWAT's conv-attention as one
dense matrix, SVT's block-diagonal maps as dense GEMMs). A model passed in
is counted as it was built.
"""
import copy
import importlib
import sys
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.print_helper import complexity_stats_table
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from swat_mm.models.layers.config import fast_layers
from swat_mm.engine.runner_utils import (get_toolbox, register_toolbox,
                                         replace_sync_bn)

from .flops import EXTRA_OP_HANDLES

#: Default input (H, W) per toolbox: the sizes the model zoos quote.
DEFAULT_SHAPES: Dict[str, Tuple[int, int]] = {
    'mmpretrain': (224, 224),
    'mmdet': (1280, 800),
    'mmseg': (512, 512),
    'torch': (224, 224),
}


def _toolbox_of_model(model: nn.Module) -> str:
    """Which toolbox's base class ``model`` derives from ('torch' if none)."""
    bases = (('mmdet', 'mmdet.models.detectors', 'BaseDetector'),
             ('mmseg', 'mmseg.models.segmentors', 'BaseSegmentor'),
             ('mmpretrain', 'mmpretrain.models.classifiers', 'BaseClassifier'))
    for toolbox, module, name in bases:
        # A model can only derive from a class whose module is imported, so
        # looking in sys.modules avoids importing all three toolboxes.
        base = getattr(sys.modules.get(module), name, None)
        if base is not None and isinstance(model, base):
            return toolbox
    return 'torch'


def build_model(cfg: Union[str, Config]) -> Tuple[nn.Module, str]:
    """Build ``cfg.model`` with its toolbox's registry, for counting.

    SyncBN is turned into BN first (one process, no process group); weights
    stay as constructed (no ``init_weights``, hence no download); every
    layer takes its reference formulation (``fast_layers(False)``).

    Returns:
        The model in eval mode and the toolbox name.
    """
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    else:
        cfg = copy.deepcopy(cfg)  # the caller's config stays as it was
    toolbox = get_toolbox(cfg)
    register_toolbox(toolbox)
    init_default_scope(toolbox)
    replace_sync_bn(cfg.model, 'model')
    registry = importlib.import_module(f'{toolbox}.registry').MODELS
    with fast_layers(False):
        model = revert_sync_batchnorm(registry.build(cfg.model))
    return model.eval(), toolbox


class _Forward(nn.Module):
    """The path being counted, as a module the jit tracer can call with one
    tensor. Holding the model (or backbone) as a child keeps its parameter
    count and per-module names (under ``model.``)."""

    def __init__(self, model: nn.Module, mode: str,
                 data_samples: Optional[list] = None) -> None:
        super().__init__()
        self.model = model
        self.mode = mode
        self.data_samples = data_samples

    def forward(self, x: torch.Tensor) -> Any:
        if self.mode == 'plain':
            return self.model(x)
        if self.mode == 'mmdet':
            return self.model(x, self.data_samples, mode='tensor')
        return self.model(x, mode='tensor')


class _TwoStageForward(nn.Module):
    """A two-stage mmdet detector with a fixed set of proposals.

    ``_forward`` takes its proposals from the RPN's NMS, so with untrained
    weights their number (hence the RoI heads' FLOPs) changes from run to
    run. Like mmdet 2.x's ``forward_dummy``, by which the published numbers
    were counted, this runs the RPN head and then the RoI head on exactly
    ``test_cfg.rpn.max_per_img`` (1000) proposals, the number a trained RPN
    keeps. Mask heads see the first 100 RoIs (mmdet's ``StandardRoIHead``
    does this itself; for a cascade it is done here, per stage, as in 2.x,
    whereas 3.x's ``CascadeRoIHead.forward`` would mask all RoIs).
    """

    def __init__(self, model: nn.Module, data_samples: list) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples
        test_cfg = getattr(model, 'test_cfg', None) or {}
        rpn_cfg = test_cfg.get('rpn', None) or {}
        num = int(rpn_cfg.get('max_per_img', rpn_cfg.get('max_num', 1000)))
        height, width = data_samples[0].img_shape
        size = torch.tensor([width, height], dtype=torch.float32)
        generator = torch.Generator().manual_seed(0)
        corner = torch.rand(num, 2, generator=generator) * size * 0.75
        extent = torch.rand(num, 2, generator=generator) * size * 0.25 + 1
        self.proposals = torch.cat([corner, corner + extent], dim=1)

    def forward(self, x: torch.Tensor) -> Any:
        from mmdet.models.roi_heads import CascadeRoIHead
        from mmdet.structures.bbox import bbox2roi
        from mmengine.structures import InstanceData
        model = self.model
        feats = model.extract_feat(x)
        rpn_outs = model.rpn_head(feats)
        proposals = self.proposals.to(x.device)
        roi_head = model.roi_head
        if type(roi_head).forward is CascadeRoIHead.forward and \
                roi_head.with_mask:
            metas = [sample.metainfo for sample in self.data_samples]
            rois, cls_scores, bbox_preds = roi_head._refine_roi(
                feats, bbox2roi([proposals]), metas, (len(proposals), ))
            mask_rois = torch.cat(rois)[:100]
            masks = [roi_head._mask_forward(stage, feats,
                                            mask_rois)['mask_preds']
                     for stage in range(roi_head.num_stages)]
            return rpn_outs, cls_scores, bbox_preds, masks
        return rpn_outs, roi_head.forward(
            feats, [InstanceData(bboxes=proposals)], self.data_samples)


def _det_data_samples(height: int, width: int) -> list:
    from mmdet.structures import DetDataSample
    shape = (height, width)
    return [DetDataSample(metainfo=dict(
        img_shape=shape, ori_shape=shape, pad_shape=shape,
        batch_input_shape=shape, scale_factor=(1., 1.)))]


def _padded(shape: Tuple[int, int], model: nn.Module) -> Tuple[int, int]:
    # Detectors see inputs padded to the preprocessor's divisor; counting an
    # unpadded size would trace shapes the model never gets.
    preprocessor = getattr(model, 'data_preprocessor', None)
    divisor = getattr(preprocessor, 'pad_size_divisor', 1) or 1
    return tuple(-(-s // divisor) * divisor for s in shape)  # type: ignore


def count_complexity(cfg_or_model: Union[str, Config, nn.Module],
                     shape: Optional[Sequence[int]] = None,
                     backbone_only: bool = False,
                     show_table: bool = False) -> Dict[str, Any]:
    """Count parameters and FLOPs of a model at one input size.

    Args:
        cfg_or_model: a config path, a :class:`Config`, or a built model (an
            mmpretrain/mmdet/mmseg model, or any ``nn.Module`` taking one
            (1, 3, H, W) tensor).
        shape: (H, W) or (S,) for S x S; default per toolbox
            (:data:`DEFAULT_SHAPES`).
        backbone_only: count ``model.backbone`` only.
        show_table: also return mmengine's per-module table.

    Returns:
        ``dict(params=int, flops=int, input_shape=(1, 3, H, W),
        toolbox=str, table=str or None)``; ``flops`` are multiply-adds.
    """
    # A detector's count depends on how many proposals survive NMS, hence on
    # the weights and the input: fix both, without touching the caller's
    # random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if isinstance(cfg_or_model, nn.Module):
            model, toolbox = cfg_or_model, _toolbox_of_model(cfg_or_model)
            model.eval()
        else:
            model, toolbox = build_model(cfg_or_model)
        return _count(model, toolbox, shape, backbone_only, show_table)


def _count(model: nn.Module, toolbox: str, shape: Optional[Sequence[int]],
           backbone_only: bool, show_table: bool) -> Dict[str, Any]:
    """The counting part of :func:`count_complexity`."""
    if shape is None:
        shape = DEFAULT_SHAPES[toolbox]
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        shape = shape * 2
    if len(shape) != 2:
        raise ValueError(f'shape must be (H, W) or (S,), got {shape}')

    if backbone_only:
        backbone = getattr(model, 'backbone', None)
        if backbone is None:
            raise ValueError(f'{type(model).__name__} has no backbone')
        target = _Forward(backbone, 'plain')
    elif toolbox == 'mmdet':
        shape = _padded(shape, model)
        samples = _det_data_samples(*shape)
        if getattr(model, 'with_rpn', False) and \
                getattr(model, 'roi_head', None) is not None:
            target = _TwoStageForward(model, samples)
        else:  # one-stage and DETR-like: _forward has no data dependence
            target = _Forward(model, 'mmdet', samples)
    elif toolbox in ('mmseg', 'mmpretrain'):
        target = _Forward(model, 'tensor')
    else:
        target = _Forward(model, 'plain')

    device = next(model.parameters()).device
    inputs = (torch.randn(1, 3, *shape, device=device), )
    analyzer = FlopAnalyzer(target, inputs)
    analyzer.set_op_handle(**EXTRA_OP_HANDLES)
    # Tracer warnings (data-dependent shapes in detection heads) and
    # "unsupported op" notes (softmax, GELU...: not multiply-adds) are
    # expected; keep the output to the numbers.
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = analyzer.total()
    params = parameter_count(target)['']
    table = None
    if show_table:
        table = complexity_stats_table(flops=analyzer, max_depth=3,
                                       show_param_shapes=False)
    return dict(params=int(params), flops=int(flops),
                input_shape=tuple(inputs[0].shape), toolbox=toolbox,
                table=table)
