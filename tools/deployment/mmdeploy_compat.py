"""What mmdeploy 1.3.1 needs to run on this stack's torch, and
replacements for those of its rewrites that change what a model computes;
imported by ``export.py``, registered for the onnxruntime backend.

Measured with torch 2.13, mmcv 2.1.0, onnxruntime 1.32 (README "Deploy"):

* ``torch.onnx.export`` defaults to the dynamo exporter since torch 2.9;
  mmdeploy calls it without ``dynamo=``, so its rewriters (which patch the
  TorchScript tracer) never run and ``torch.export`` fails first
  (``Detected mismatch between the structure of inputs and dynamic_shapes``).
  :func:`torchscript_exporter` makes ``dynamo=False`` the default while
  mmdeploy exports.
* mmdeploy's symbolic for mmcv's ``RoIAlign`` imports
  ``torch.onnx.symbolic_opset9._cast_Long``, which torch removed
  (``ImportError: cannot import name '_cast_Long'``), so no two-stage
  detector exports. :func:`roi_align__onnxruntime` emits the same standard
  ONNX ``RoiAlign`` (opset >= 16, ``half_pixel`` for ``aligned=True``) with
  the ops torch still has; no custom op is involved.
* mmdeploy replaces ``F.adaptive_avg_pool2d`` by an ``avg_pool2d`` whose
  kernel is ``input_size // output_size`` at the export size: with any size
  that the output does not divide this is not adaptive pooling (windows
  differ from PyTorch's), with a feature map smaller than the output it
  fails (``RuntimeError: stride should not be zero``, UperNet's pyramid
  pooling at small inputs), and the kernel is baked into the graph, so a
  dynamic-shape export is wrong at every other size.
  :func:`adaptive_avg_pool2d__onnxruntime` computes PyTorch's adaptive
  windows from the traced size as two averaging matrices, so the graph is
  exact at every size.
* mmdeploy replaces ``F.scaled_dot_product_attention`` by its own
  formula, which divides by ``scale`` where torch multiplies by it: with an
  explicit ``scale=d ** -0.5`` (SWAT ViT, SVT, SWAT Swin) the attention
  logits come out ``d`` times too large (SWAT-DeiT-Ti's class scores off by
  0.07 at random init), and it drops a boolean mask's meaning
  (``masked_fill(not mask, ...)``). torch's TorchScript exporter exports
  the function itself (tests/test_onnx_export.py), so
  :func:`scaled_dot_product_attention__onnxruntime` hands the call back to
  it.
* Mask R-CNN: mmdeploy's RPN keeps proposals by one NMS over all pyramid
  levels with a 0.05 score threshold and keeps boxes without area, and its
  second stage gives every class of a RoI the box of the RoI's arg-max
  class; mmdet takes NMS per level without a threshold, drops empty
  boxes, and keeps each class's own box. On a toy-trained model 2 of 7
  detections >= 0.3 were lost. :func:`rpn_head__predict_by_feat__onnxruntime`
  and :func:`bbox_head__predict_by_feat__onnxruntime` compute mmdet's
  proposals and detections with the standard ONNX NMS.
"""
import contextlib
import functools
from typing import Iterator, List, Sequence

import torch
import torch.nn.functional as F
from mmdeploy.core import FUNCTION_REWRITER, SYMBOLIC_REWRITER
from mmdeploy.utils import get_ir_config


@contextlib.contextmanager
def torchscript_exporter() -> Iterator[None]:
    """``torch.onnx.export`` with ``dynamo=False`` unless a caller says
    otherwise, for the duration of the block."""
    export = torch.onnx.export
    torch.onnx.export = functools.partial(export, dynamo=False)
    try:
        yield
    finally:
        torch.onnx.export = export


# Found through mmcv.ops.roi_align.__self__, mmcv's RoIAlignFunction, as
# mmdeploy's own symbolic is; registered for onnxruntime, it takes
# precedence over mmdeploy's default one.
@SYMBOLIC_REWRITER.register_symbolic(
    'mmcv.ops.roi_align.__self__', backend='onnxruntime')
def roi_align__onnxruntime(g, input: torch.Tensor, rois: torch.Tensor,
                           output_size: List[int], spatial_scale: float,
                           sampling_ratio: int, pool_mode: str,
                           aligned: bool):
    """ONNX ``RoiAlign`` for mmcv's ``RoIAlign``.

    ``input``: (N, C, H, W) features; ``rois``: (K, 5) rows of
    ``(batch index, x1, y1, x2, y2)``; returns (K, C, *output_size).
    """
    ctx = SYMBOLIC_REWRITER.get_context()
    opset = get_ir_config(ctx.cfg).get('opset_version', 11)
    if opset < 16:
        raise ValueError(
            f'RoIAlign needs opset_version >= 16 in the deploy config\'s '
            f'onnx_config (got {opset}): ONNX RoiAlign has the aligned '
            f'(half_pixel) sampling of mmcv only from opset 16')
    index = g.op('Gather', rois,
                 g.op('Constant', value_t=torch.tensor(0)), axis_i=1)
    index = g.op('Cast', index, to_i=7)  # int64, as RoiAlign wants
    boxes = g.op('Gather', rois,
                 g.op('Constant', value_t=torch.tensor([1, 2, 3, 4])),
                 axis_i=1)
    return g.op(
        'RoiAlign', input, boxes, index,
        coordinate_transformation_mode_s='half_pixel' if aligned
        else 'output_half_pixel',
        output_height_i=output_size[0], output_width_i=output_size[1],
        spatial_scale_f=spatial_scale, sampling_ratio_i=sampling_ratio,
        mode_s=pool_mode)


def _averaging_matrix(size: torch.Tensor, out: int) -> torch.Tensor:
    """(out, size) matrix whose row ``i`` averages PyTorch's adaptive window
    ``[floor(i * size / out), ceil((i + 1) * size / out))``; ``size`` is a
    0-d int64 tensor so a traced graph keeps it symbolic."""
    i = torch.arange(out, dtype=torch.int64).unsqueeze(1)
    pos = torch.arange(size, dtype=torch.int64).unsqueeze(0)
    start = torch.div(i * size, out, rounding_mode='floor')
    end = torch.div((i + 1) * size + out - 1, out, rounding_mode='floor')
    inside = ((pos >= start) & (pos < end)).float()
    return inside / inside.sum(dim=1, keepdim=True)


@FUNCTION_REWRITER.register_rewriter(
    func_name='torch.nn.functional.adaptive_avg_pool2d',
    backend='onnxruntime')
def adaptive_avg_pool2d__onnxruntime(
        input: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
    """PyTorch's ``adaptive_avg_pool2d`` of (N, C, H, W) ``input`` as
    ``A_h @ input @ A_w^T``, exact at any traced size."""
    ctx = FUNCTION_REWRITER.get_context()
    out_h, out_w = ((output_size, output_size)
                    if isinstance(output_size, int) else output_size)
    if out_h is None or out_w is None or (out_h == 1 and out_w == 1):
        # global pooling exports as ReduceMean / GlobalAveragePool already
        return ctx.origin_func(input, output_size)
    h = torch.as_tensor(input.shape[2])
    w = torch.as_tensor(input.shape[3])
    a_h = _averaging_matrix(h, out_h).to(input.dtype)
    a_w = _averaging_matrix(w, out_w).to(input.dtype)
    return torch.matmul(torch.matmul(a_h, input), a_w.transpose(0, 1))


@FUNCTION_REWRITER.register_rewriter(
    func_name='torch.nn.functional.scaled_dot_product_attention',
    backend='onnxruntime')
def scaled_dot_product_attention__onnxruntime(*args, **kwargs) -> torch.Tensor:
    """torch's own ``scaled_dot_product_attention``, not mmdeploy's."""
    return FUNCTION_REWRITER.get_context().origin_func(*args, **kwargs)


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.roi_heads.bbox_heads.bbox_head.BBoxHead.predict_by_feat',
    backend='onnxruntime')
def bbox_head__predict_by_feat__onnxruntime(self, rois: torch.Tensor,
                                            cls_scores: torch.Tensor,
                                            bbox_preds: torch.Tensor,
                                            batch_img_metas: List[dict],
                                            rcnn_test_cfg=None,
                                            rescale: bool = False):
    """The second stage's detections with each class's own box.

    ``rois``: (B, N, 5); ``cls_scores``: (B, N, C + 1); ``bbox_preds``:
    (B, N, 4 C) with class-specific regression. Returns ``dets`` (B, K, 5)
    and ``labels`` (B, K). mmdeploy gives every class of a RoI the box of
    its arg-max class, so a RoI's second-best class is detected at the
    wrong place; as mmdet does, each (RoI, class) pair here is a candidate
    with its class's box, NMS per class as before.
    """
    from mmdeploy.codebase.mmdet.deploy import get_post_processing_params
    from mmdeploy.codebase.mmdet.models.roi_heads.bbox_head import \
        bbox_head__predict_by_feat
    from mmdeploy.mmcv.ops import multiclass_nms
    from mmdet.structures.bbox import get_box_tensor
    if self.reg_class_agnostic or self.custom_cls_channels or \
            bbox_preds is None:
        return bbox_head__predict_by_feat(self, rois, cls_scores, bbox_preds,
                                          batch_img_metas, rcnn_test_cfg,
                                          rescale)
    ctx = FUNCTION_REWRITER.get_context()
    scores = F.softmax(cls_scores, dim=-1)[..., :self.num_classes]
    bboxes = get_box_tensor(self.bbox_coder.decode(
        rois[..., 1:], bbox_preds, max_shape=batch_img_metas[0]['img_shape']))
    batch, num_classes = scores.shape[0], self.num_classes
    # (B, N C, 4) candidates, each scored for its own class only
    bboxes = bboxes.reshape(batch, -1, 4)
    eye = torch.eye(num_classes, dtype=scores.dtype, device=scores.device)
    scores = (scores.unsqueeze(-1) * eye).reshape(batch, -1, num_classes)
    post = get_post_processing_params(ctx.cfg)
    return multiclass_nms(
        bboxes, scores, post.max_output_boxes_per_class,
        nms_type=rcnn_test_cfg.nms.get('type'),
        iou_threshold=rcnn_test_cfg.nms.get('iou_threshold',
                                            post.iou_threshold),
        score_threshold=rcnn_test_cfg.get('score_thr',
                                          post.score_threshold),
        pre_top_k=post.pre_top_k,
        keep_top_k=rcnn_test_cfg.get('max_per_img', post.keep_top_k))


@FUNCTION_REWRITER.register_rewriter(
    'mmdet.models.dense_heads.rpn_head.RPNHead.predict_by_feat',
    backend='onnxruntime')
def rpn_head__predict_by_feat__onnxruntime(self, cls_scores, bbox_preds,
                                           score_factors=None,
                                           batch_img_metas=None, cfg=None,
                                           rescale: bool = False,
                                           with_nms: bool = True, **kwargs):
    """Proposals as mmdet's RPN makes them: NMS within each pyramid level
    (mmdet's ``batched_nms`` with level ids), no score threshold, boxes
    without area dropped (``min_bbox_size=0``), the best ``max_per_img``.

    mmdeploy's own takes one NMS over all levels with mmdeploy's score
    threshold (0.05) and keeps empty boxes, so its proposals, and with them
    the detections, differ from mmdet's. Returns ``dets`` (B, K, 5) and
    ``labels`` (B, K) (the level) as mmdeploy's does.
    """
    from mmdet.structures.bbox import get_box_tensor
    from mmdeploy.mmcv.ops import multiclass_nms
    cfg = self.test_cfg if cfg is None else cfg
    if not with_nms or cfg.get('min_bbox_size', -1) > 0:
        raise NotImplementedError(
            'RPN export without NMS or with min_bbox_size > 0 is not '
            'written for onnxruntime (tools/deployment/mmdeploy_compat.py)')
    pre_topk = cfg.get('nms_pre', -1)
    batch = cls_scores[0].shape[0]
    anchors = self.prior_generator.grid_priors(
        [c.shape[-2:] for c in cls_scores], dtype=cls_scores[0].dtype,
        device=cls_scores[0].device)
    boxes, scores, levels = [], [], []
    for level, (cls, reg, anchor) in enumerate(
            zip(cls_scores, bbox_preds, anchors)):
        cls = cls.permute(0, 2, 3, 1)
        score = cls.reshape(batch, -1).sigmoid() if self.use_sigmoid_cls \
            else cls.reshape(batch, -1, 2).softmax(-1)[..., 0]
        delta = reg.permute(0, 2, 3, 1).reshape(batch, -1, 4)
        anchor = get_box_tensor(anchor).unsqueeze(0).expand(batch, -1, 4)
        if pre_topk > 0:
            # a level's best nms_pre anchors, or all where it has fewer
            k = torch.clamp(torch.as_tensor(score.shape[1]), max=pre_topk)
            score, index = score.topk(k, dim=1)
            index = index.unsqueeze(-1).expand(-1, -1, 4)
            delta = delta.gather(1, index)
            anchor = anchor.gather(1, index)
        boxes.append(get_box_tensor(self.bbox_coder.decode(
            anchor, delta, max_shape=batch_img_metas[0]['img_shape'])))
        scores.append(score)
        levels.append(torch.zeros_like(score, dtype=torch.int64) + level)
    boxes, scores = torch.cat(boxes, 1), torch.cat(scores, 1)
    level = torch.cat(levels, 1)
    # each candidate scored for its own level only (NMS per level), and
    # not at all without area (-1). The threshold is the smallest positive
    # float, not 0: mmcv's NMS (mmdeploy's eager stand-in for onnxruntime's)
    # filters by score only for a positive threshold; every sigmoid score
    # above 1e-38 is kept, as mmdet keeps every score
    keep = F.one_hot(level, len(cls_scores)).bool()
    if cfg.get('min_bbox_size', -1) == 0:
        wh = boxes[..., 2:] - boxes[..., :2]
        keep = keep & (wh > 0).all(-1, keepdim=True)
    scores = torch.where(keep, scores.unsqueeze(-1),
                         scores.new_tensor(-1.))
    return multiclass_nms(
        boxes, scores, cfg.max_per_img, nms_type=cfg.nms.get('type'),
        iou_threshold=cfg.nms.iou_threshold,
        score_threshold=torch.finfo(torch.float32).tiny, pre_top_k=-1,
        keep_top_k=cfg.max_per_img)
