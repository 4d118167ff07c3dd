"""Export a swat_mm classifier, segmentor or detector with mmdeploy's ONNX
Runtime backend and check the exported model against PyTorch on an image.

    python tools/deployment/export.py DEPLOY_CFG MODEL_CFG CHECKPOINT IMAGE \
        --work-dir DIR [--score-thr 0.3]

Writes ``DIR/end2end.onnx`` (mmdeploy's name), ``DIR/deploy_cfg.py``,
``DIR/model_cfg.py`` and ``DIR/verify.json`` (the numbers below), and exits
with status 1 when a check fails, 2 on bad arguments.

The image goes through the config's test pipeline (``test_dataloader``'s,
which the toolboxes' inferencers use; mmdeploy itself reads the top-level
``test_pipeline``, so that is set to it), then two checks run:

1. **The export.** The ONNX graph holds standard ONNX operators only (no
   mmdeploy or mmcv custom op), and onnxruntime's raw outputs equal those
   of the PyTorch model under mmdeploy's rewrites on the same input
   (relative error <= ``--rtol``; detections: each one with score >=
   ``--score-thr`` on either side has one on the other with the same
   label, box within ``--box-atol`` pixels, score and 28 x 28 mask
   probabilities within 1e-3; paired rather than compared by rank, since
   an IoU a rounding away from an NMS threshold may flip a box between
   onnxruntime's NMS and mmcv's). Where the deploy config makes height
   and width dynamic, the same holds on the input resized to a second size
   (a quarter larger plus 3 pixels: padding in every backbone family).
2. **The deployed model against the toolbox.** mmdeploy's backend model
   (onnxruntime plus mmdeploy's Python post-processing) against the
   toolbox's own ``test_step`` with the checkpoint:

   * classification: the same top-1 class, scores within 1e-4;
   * segmentation: the maps equal on >= 99.9 % of the pixels. mmdeploy
     resizes the arg-max label map (nearest) to the image, where mmseg
     resizes the logits (bilinear) and then takes the arg-max, so the map
     compared is the segmentor's own ``postprocess_result`` of the
     exported logits (deploy config ``with_argmax=False``); mmdeploy's
     label map is reported beside it (``deploy_map_agreement``);
   * instance segmentation: each toolbox detection with score >=
     ``--score-thr`` has a deployed one of the same class with box IoU >=
     0.9 and mask IoU >= 0.8, and the other way round. mmdeploy's RPN
     keeps proposals by one NMS over all pyramid levels with a score
     threshold, where mmdet's takes NMS per level without one, so the two
     differ in their low-score detections (and in all detections of an
     untrained model, where every score is low) by design; check 1 holds
     for those.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

STANDARD_DOMAINS = ('', 'ai.onnx')


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a model with mmdeploy (ONNX Runtime) and check '
        'it against PyTorch on an image.')
    parser.add_argument('deploy_cfg', help='mmdeploy deploy config, e.g. '
                        'tools/deployment/configs/*.py')
    parser.add_argument('model_cfg', help='swat_mm model config')
    parser.add_argument('checkpoint', help='the model\'s checkpoint')
    parser.add_argument('image', help='image to export with and check on')
    parser.add_argument('--work-dir', required=True,
                        help='folder for end2end.onnx and verify.json')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='relative error allowed between onnxruntime '
                        'and PyTorch outputs (default 1e-4)')
    parser.add_argument('--box-atol', type=float, default=0.05,
                        help='pixels allowed between exported and PyTorch '
                        'boxes (default 0.05)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections compared: those with a score >= '
                        'this (default 0.3)')
    parser.add_argument('--min-pixel-agreement', type=float, default=0.999,
                        help='segmentation: share of pixels whose class '
                        'must agree (default 0.999)')
    return parser.parse_args(argv)


class BadInput(Exception):
    """An argument the tool cannot work with; the message says the fix."""


def check_paths(args: argparse.Namespace) -> None:
    for what in ('deploy_cfg', 'model_cfg', 'checkpoint', 'image'):
        path = getattr(args, what)
        if not osp.isfile(path):
            raise BadInput(f'{what} {path!r} is not a file')


def load_configs(args: argparse.Namespace):
    """The deploy and model configs, the model's test pipeline taken from
    its ``test_dataloader`` without annotation loading (the image comes
    alone), both saved next to the ONNX file."""
    from mmdeploy.utils import get_backend, get_task_type, load_config
    deploy_cfg, model_cfg = load_config(args.deploy_cfg, args.model_cfg)
    if get_backend(deploy_cfg).value != 'onnxruntime':
        raise BadInput(
            f'{args.deploy_cfg} has backend_config type '
            f'{deploy_cfg.backend_config.type!r}; this tool exports to '
            f'onnxruntime only (backend_config = dict(type=\'onnxruntime\'))')
    if get_task_type(deploy_cfg).value == 'Segmentation' and \
            deploy_cfg.codebase_config.get('with_argmax', True):
        raise BadInput(
            f'{args.deploy_cfg} exports the arg-max map (codebase_config '
            f'with_argmax=True), which cannot be compared with mmseg\'s map '
            f'at the image size: set with_argmax=False')
    pipeline = model_cfg.get('test_dataloader', {}).get(
        'dataset', {}).get('pipeline', model_cfg.get('test_pipeline'))
    if pipeline is None:
        raise BadInput(f'{args.model_cfg} has neither '
                         f'test_dataloader.dataset.pipeline nor test_pipeline')
    model_cfg.test_pipeline = [
        copy.deepcopy(t) for t in pipeline if t['type'] != 'LoadAnnotations']
    os.makedirs(args.work_dir, exist_ok=True)
    deploy_cfg.dump(osp.join(args.work_dir, 'deploy_cfg.py'))
    model_cfg.dump(osp.join(args.work_dir, 'model_cfg.py'))
    return deploy_cfg, model_cfg


def custom_ops(onnx_file: str) -> List[str]:
    """``domain::op`` of every node outside the standard ONNX domain."""
    import onnx
    graph = onnx.load(onnx_file, load_external_data=False).graph
    return sorted({f'{n.domain}::{n.op_type}' for n in graph.node
                   if n.domain not in STANDARD_DOMAINS})


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| relative to max |b|."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def ort_outputs(deploy_cfg, backend_model, inputs: torch.Tensor) -> Dict:
    """The exported graph's outputs by onnxruntime, by output name."""
    from mmdeploy.utils import get_ir_config
    onnx_cfg = get_ir_config(deploy_cfg)
    with torch.no_grad():
        out = backend_model.wrapper({onnx_cfg['input_names'][0]: inputs})
    return {k: out[k] for k in onnx_cfg['output_names']}


def traced_outputs(deploy_cfg, torch_model, inputs: torch.Tensor,
                   data_samples) -> Dict:
    """The outputs of the PyTorch model under mmdeploy's rewrites (what was
    traced), by output name."""
    from mmdeploy.core import RewriterContext, patch_model
    from mmdeploy.utils import IR, get_ir_config
    onnx_cfg = get_ir_config(deploy_cfg)
    patched = patch_model(copy.deepcopy(torch_model), cfg=deploy_cfg,
                          backend='onnxruntime', ir=IR.ONNX)
    with RewriterContext(cfg=deploy_cfg, backend='onnxruntime', ir=IR.ONNX,
                         opset=onnx_cfg.get('opset_version', 11)), \
            torch.no_grad():
        ref = patched(inputs, copy.deepcopy(data_samples), mode='predict')
    if isinstance(ref, torch.Tensor):
        ref = (ref, )
    return dict(zip(onnx_cfg['output_names'], ref))


def resized(inputs: torch.Tensor, data_samples) -> Tuple[torch.Tensor, list]:
    """The preprocessed batch at a second size, a quarter larger plus an
    odd 3 pixels on each side (padding in every backbone family), with
    data samples whose shapes say so."""
    h, w = inputs.shape[2:]
    size = (h + h // 4 + 3, w + w // 4 + 3)
    inputs = torch.nn.functional.interpolate(
        inputs, size=size, mode='bilinear', align_corners=False)
    samples = copy.deepcopy(data_samples)
    for sample in samples:
        sample.set_metainfo({k: size for k in (
            'img_shape', 'pad_shape', 'batch_input_shape')
            if k in sample.metainfo})
    return inputs, samples


def second_size(task: str, deploy_cfg, torch_model, backend_model,
                inputs: torch.Tensor, data_samples, args) -> Dict:
    """Check 1 at a second input size. Where PyTorch refuses the size (the
    fixed-token SWAT MLPs), onnxruntime must refuse it too: never an answer
    where PyTorch has none."""
    out = dict(input_shape=list(inputs.shape))
    errors = {}
    try:
        ref = traced_outputs(deploy_cfg, torch_model, inputs, data_samples)
    except Exception as e:  # noqa: B902 (reported, and compared below)
        errors['pytorch'] = f'{type(e).__name__}: {e}'[:300]
    try:
        ort = ort_outputs(deploy_cfg, backend_model, inputs)
    except Exception as e:  # noqa: B902
        errors['onnxruntime'] = f'{type(e).__name__}: {e}'[:300]
    if errors:
        # both refusing is right; one refusing is a mismatch
        out.update(errors=errors, ok=len(errors) == 2)
        return out
    out.update(check_export(task, ort, ref, args))
    return out


def dynamic_hw(deploy_cfg) -> bool:
    """Whether the deploy config exports height and width as dynamic."""
    from mmdeploy.utils import get_ir_config
    onnx_cfg = get_ir_config(deploy_cfg)
    axes = onnx_cfg.get('dynamic_axes') or {}
    return {2, 3} <= set(axes.get(onnx_cfg['input_names'][0], {}))


def check_export(task: str, ort: Dict, ref: Dict, args) -> Dict:
    """Check 1: onnxruntime against the rewritten PyTorch model."""
    out = {}
    if task != 'ObjectDetection':
        for name in ort:
            err = rel_err(ort[name], ref[name])
            out[f'{name}_rel_err'] = err
            out['ok'] = out.get('ok', True) and ort[name].shape == \
                ref[name].shape and err <= args.rtol
        return out
    # NMS keeps or drops a box on an IoU a rounding away from its
    # threshold, and a proposal flipped so changes the detections after it:
    # onnxruntime's NMS and mmcv's (the eager model's) may differ there, so
    # detections are paired, not compared by rank
    out['num_dets'] = [len(ort['dets'][0]), len(ref['dets'][0])]
    pairs, unmatched = [], 0
    for a, b in ((ort, ref), (ref, ort)):
        dets, labels = a['dets'][0], a['labels'][0]
        for i in torch.nonzero(dets[:, 4] >= args.score_thr).flatten():
            err = (b['dets'][0] - dets[i]).abs()
            same = (b['labels'][0] == labels[i]) & \
                (err[:, :4].max(1).values <= args.box_atol) & \
                (err[:, 4] <= 1e-3)
            if not same.any():
                unmatched += 1
                continue
            j = int(torch.nonzero(same)[0])
            pairs.append((float(err[j, :4].max()), float(err[j, 4]),
                          float((a['masks'][0][i] - b['masks'][0][j]).abs()
                                .max()) if 'masks' in a else 0.))
    out['compared'] = len(pairs) + unmatched
    out['unmatched'] = unmatched
    if pairs:
        errs = torch.tensor(pairs).max(0).values.tolist()
        out['box_max_abs_err'], out['score_max_abs_err'] = errs[:2]
        if 'masks' in ort:
            out['mask_prob_max_abs_err'] = errs[2]
    out['ok'] = unmatched == 0 and out.get('mask_prob_max_abs_err', 0) <= 1e-3
    return out


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4) x (M, 4) xyxy boxes -> (N, M) IoU."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-6)


def match_detections(src, dst, thr: float) -> Tuple[int, int]:
    """How many of ``src``'s detections with score >= ``thr`` have one in
    ``dst`` of the same class with box IoU >= 0.9 and mask IoU >= 0.8."""
    keep = src.scores >= thr
    matched = 0
    for i in torch.nonzero(keep).flatten().tolist():
        iou = box_iou(src.bboxes[i:i + 1].float(), dst.bboxes.float())[0]
        cand = (dst.labels == src.labels[i]) & (iou >= 0.9)
        for j in torch.nonzero(cand).flatten().tolist():
            if 'masks' not in src or _mask_iou(src.masks[i],
                                               dst.masks[j]) >= 0.8:
                matched += 1
                break
    return int(keep.sum()), matched


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def check_deployed(task: str, deployed, expected, torch_model, ort: Dict,
                   args) -> Dict:
    """Check 2: mmdeploy's backend model against the toolbox's
    ``test_step``."""
    out = {}
    if task == 'Classification':
        a, b = deployed.pred_score, expected.pred_score
        out['top1'] = [int(a.argmax()), int(b.argmax())]
        out['score_max_abs_err'] = float((a - b).abs().max())
        out['ok'] = out['top1'][0] == out['top1'][1] and \
            out['score_max_abs_err'] <= 1e-4
    elif task == 'Segmentation':
        truth = expected.pred_sem_seg.data
        out['deploy_map_agreement'] = float(
            (deployed.pred_sem_seg.data == truth).float().mean())
        # mmseg's own post-processing of the exported logits
        logits = ort[list(ort)[0]]
        sample = copy.deepcopy(expected)
        mine = torch_model.postprocess_result(logits, [sample])[0]
        agree = float((mine.pred_sem_seg.data == truth).float().mean())
        out['map_agreement'] = agree
        out['ok'] = agree >= args.min_pixel_agreement
    else:
        a, b = deployed.pred_instances, expected.pred_instances
        n_b, m_b = match_detections(b, a, args.score_thr)
        n_a, m_a = match_detections(a, b, args.score_thr)
        out['confident'] = {'pytorch': n_b, 'deployed': n_a}
        out['matched'] = {'pytorch': m_b, 'deployed': m_a}
        out['ok'] = n_b == m_b and n_a == m_a
    return out


def main(argv: Sequence[str] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        check_paths(args)
        return run(args)
    except BadInput as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Export, check, report; 0 when every check holds, 1 otherwise."""
    # swat_mm's registries and mmdeploy's rewriters, ours included
    import swat_mm  # noqa: F401
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from mmdeploy.apis import torch2onnx
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_task_type, load_config
    from mmdeploy_compat import torchscript_exporter

    deploy_cfg, model_cfg = load_configs(args)
    task = get_task_type(deploy_cfg).value
    onnx_file = osp.join(args.work_dir, 'end2end.onnx')
    if osp.exists(onnx_file):
        os.remove(onnx_file)  # never check an earlier run's file
    with torchscript_exporter(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings on shape math
        torch2onnx(args.image, args.work_dir, 'end2end.onnx', deploy_cfg,
                   model_cfg, args.checkpoint, 'cpu')
    if not osp.isfile(onnx_file):
        print(f'export failed: {onnx_file} was not written', file=sys.stderr)
        return 1
    # the saved configs, as a user's later run reads them
    deploy_cfg, model_cfg = load_config(
        osp.join(args.work_dir, 'deploy_cfg.py'),
        osp.join(args.work_dir, 'model_cfg.py'))

    report = {'task': task, 'onnx': onnx_file,
              'custom_ops': custom_ops(onnx_file)}
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    torch_model = processor.build_pytorch_model(args.checkpoint)
    backend_model = processor.build_backend_model(
        [onnx_file],
        data_preprocessor_updater=processor.update_data_preprocessor)
    data, inputs = processor.create_input(
        args.image, None, data_preprocessor=torch_model.data_preprocessor)
    if isinstance(inputs, list):
        inputs = inputs[0]
    report['input_shape'] = list(inputs.shape)
    ort = ort_outputs(deploy_cfg, backend_model, inputs)
    ref = traced_outputs(deploy_cfg, torch_model, inputs,
                         data['data_samples'])
    report['export'] = check_export(task, ort, ref, args)
    if dynamic_hw(deploy_cfg):
        # a dynamic graph must be right at sizes other than the traced one
        inputs2, samples2 = resized(inputs, data['data_samples'])
        report['export_second_size'] = second_size(
            task, deploy_cfg, torch_model, backend_model, inputs2, samples2,
            args)
        report['export']['ok'] = report['export']['ok'] and \
            report['export_second_size']['ok']

    raw, _ = processor.create_input(args.image, None)
    with torch.no_grad():
        deployed = backend_model.test_step(copy.deepcopy(raw))[0]
        expected = torch_model.test_step(copy.deepcopy(raw))[0]
    report['deployed'] = check_deployed(task, deployed, expected,
                                        torch_model, ort, args)
    report['ok'] = (not report['custom_ops'] and report['export']['ok']
                    and report['deployed']['ok'])
    with open(osp.join(args.work_dir, 'verify.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    if not report['ok']:
        print('MISMATCH: the exported model does not reproduce PyTorch '
              f'(details above and in {args.work_dir}/verify.json)',
              file=sys.stderr)
        return 1
    print(f'OK: {onnx_file} reproduces PyTorch on {args.image}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
