"""What mmdeploy 1.3.1 needs to run on this stack's torch, and exact
replacements for two of its rewrites; imported by ``export.py``.

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
