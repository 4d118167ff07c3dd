"""Every GPU check of swat_mm in one prepared run (``tools/gpu_check.sh``).

    python tools/analysis_tools/gpu_check.py OUT_DIR [--device cuda]
        [--official DIR] [--small] [--only correctness,amp,...]

Writes ``OUT_DIR/gpu_check.json`` (every number) and ``OUT_DIR/gpu_check.log``
(what ran, as it ran) and exits non-zero when a check fails. The checks:

1. ``correctness``: each family's golden case (STViT-S, SVT-H-S, SWAT DeiT-Ti,
   Swin-T, Mixer-Ti, ResMLP-S12; weights and logits written by the official
   code) on the device in fp32 with TF32 off, against the golden logits and
   our CPU logits (the CPU tests' tolerance: ``rtol=1e-4, atol=1e-5``); the
   error with TF32 on is reported.
2. ``amp``: bf16 and fp16 autocast forward and backward of each backbone are
   finite (errors against fp32 reported); a few steps of an STViT-S
   classifier through mmengine's ``AmpOptimWrapper`` (fp16, dynamic loss
   scale) keep the loss finite and within 2 % of the fp32 run's.
3. ``speed``: ours against the official code (``--official``: a folder with
   clones of hhb072/STViT, badripatro/svt and kkahatapitiya/SWAT), same
   weights, interleaved in one process, bf16 autocast: inference at 224 and
   batch 64, and a training step (forward, backward, AdamW) at the recipe's
   images per GPU; achieved TFLOP/s against the measured bf16 GEMM rate; a
   profile of both wherever ours is under 1.3x in the training step.
4. ``dense``: the training step of the STViT-B UperNet recipe (512x512, 2
   images) and of mmseg's Swin-T UperNet beside it, and of the STViT-S Mask
   R-CNN recipe (1333x800, 2 images) where mmcv's compiled ops exist: peak
   allocator memory and images/s.
5. ``compile``: ``torch.compile`` (Inductor) of each backbone matches eager
   (fp32, TF32 off; relative L2 error <= 1e-4) and its inference speed-up
   over eager under bf16 autocast is measured. The compilations run from the
   start in parallel worker processes (CPU-bound, at the lowest priority)
   while checks 1-4 run; the timing then loads them from Inductor's cache
   with the machine quiet.

``--small`` runs the same code at unit-test sizes (tiny archs, small batches
and inputs, few repeats): the CPU rehearsal that CI runs.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# this checkout's `tests` package (golden cases, tiny archs) before any
# other, and its `tools` (the benchmark engine)
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from swat_mm.utils.complexity import (  # noqa: E402
    build_model, count_complexity)
from tools.analysis_tools.benchmark_engine import (  # noqa: E402
    _outputs, build_backbone, gemm_rate, load_config, make_config_step,
    make_job, make_step, resolve_model, run_job, synthetic_batch, time_steps,
    training_batch)

# compile last: its workers compile (niced, CPU-bound) while the others run
CHECKS = ('correctness', 'amp', 'speed', 'dense', 'compile')
# zoo archs of every family (checks 2-3), as benchmark model specs
FAMILY_SPECS = {
    'stvit': 'STViT:small', 'svt': 'SVT:h-small',
    'swat_vit': 'SWATViT:deit-tiny', 'swat_swin': 'SWATSwin:tiny',
    'swat_mixer': 'SWATMixer:mixer-tiny', 'swat_resmlp': 'SWATResMLP:s12'}
# check 4: benchmark table name -> the recipe giving its images per GPU
SPEED_MODELS = {
    'stvit-small': 'configs/cls/stvit/stvit-small_8xb128_in1k.py',
    'stvit-base': 'configs/cls/stvit/stvit-base_8xb128_in1k.py',
    'stvit-large': 'configs/cls/stvit/stvit-large_8xb128_in1k.py',
    'svt-h-small': 'configs/cls/svt/svt-h-small_8xb128_in1k.py',
    'swat-deit-small': 'configs/cls/swat/swat-deit-small_8xb256_in1k.py',
    'swat-swin-tiny': 'configs/cls/swat/swat-swin-tiny_8xb96_in1k.py'}
TRAIN_TARGET = 1.3  # ours / official in the training step, STViT and SVT
SEG_STVIT = 'configs/seg/stvit_upernet_ade20k.py'
SEG_SWIN = ('swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
            '8xb2-160k_ade20k-512x512.py')  # in mmseg's packaged configs
DET_STVIT = 'configs/det/stvit/mask-rcnn_stvit-small_fpn_1x_coco.py'


# --------------------------------------------------------------------------
# Logging and small helpers
# --------------------------------------------------------------------------
class Log:
    """Prints and appends to OUT_DIR/gpu_check.log."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path

    def __call__(self, *parts: Any) -> None:
        line = ' '.join(str(p) for p in parts)
        print(line, flush=True)
        if self.path:
            with open(self.path, 'a') as f:
                f.write(line + '\n')


def sync(dev: torch.device) -> None:
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64 (inf for NaN or a shape mismatch)."""
    if a.shape != b.shape:
        return math.inf
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    err = ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
    return err if math.isfinite(err) else math.inf


def set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def build_family(family: str, small: bool, **kwargs: Any
                 ) -> tuple:
    """(backbone, input side) of a family: the zoo arch, or the unit tests'
    tiny arch with ``small``."""
    if small:
        import swat_mm.models.backbones as backbones
        from tests.tiny_archs import FAMILY_CASES
        cls, cfg, side = FAMILY_CASES[family]
        return getattr(backbones, cls)(**dict(cfg, **kwargs)), side
    return build_backbone(resolve_model(FAMILY_SPECS[family]), kwargs), 224


def median_times(steps: Dict[str, Callable[[], None]], dev: torch.device,
                 warmup: int, repeats: int) -> Dict[str, float]:
    """Median seconds per step, steps interleaved after ``warmup`` each."""
    times = time_steps(steps, dev, warmup, repeats)
    return {k: statistics.median(v) for k, v in times.items()}


def environment(dev: torch.device) -> Dict[str, Any]:
    info = dict(date=datetime.datetime.now().isoformat(timespec='seconds'),
                torch=torch.__version__, python=platform.python_version(),
                device=dev.type, host=platform.node())
    if dev.type == 'cuda':
        props = torch.cuda.get_device_properties(dev)
        info.update(gpu=props.name, gpu_memory_gb=props.total_memory / 1e9,
                    sms=props.multi_processor_count,
                    cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
        try:
            info['driver'] = subprocess.run(
                ['nvidia-smi', '--query-gpu=driver_version',
                 '--format=csv,noheader'], capture_output=True, text=True,
                timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    import mmcv
    import mmengine
    info.update(mmcv=mmcv.__version__, mmengine=mmengine.__version__)
    try:
        from mmcv.ops import nms  # noqa: F401
        info['mmcv_ops'] = True
    except Exception as err:  # no compiled ops in this mmcv
        info['mmcv_ops'] = f'{type(err).__name__}: {err}'
    return info


# --------------------------------------------------------------------------
# 1. correctness
# --------------------------------------------------------------------------
def check_correctness(dev: torch.device, args: argparse.Namespace,
                      log: Log) -> Dict[str, Any]:
    from tests.golden.cases import FAMILY_CASES, golden_classifier
    rows, ok = [], True
    for family, name in FAMILY_CASES.items():
        model, x, golden = golden_classifier(name)
        with torch.no_grad():
            cpu = model(x, mode='tensor')
            model.to(dev)
            set_tf32(False)
            out = model(x.to(dev), mode='tensor').cpu()
            set_tf32(True)
            out_tf32 = model(x.to(dev), mode='tensor').cpu()
            set_tf32(False)
        row = dict(
            family=family, case=name, batch=x.shape[0],
            size=list(x.shape[-2:]),
            max_abs_vs_golden=(out - golden).abs().max().item(),
            max_abs_vs_cpu=(out - cpu).abs().max().item(),
            matches_golden=torch.allclose(out, golden, rtol=1e-4, atol=1e-5),
            matches_cpu=torch.allclose(out, cpu, rtol=1e-4, atol=1e-5),
            tf32_rel_l2_vs_cpu=rel_l2(out_tf32, cpu),
            tf32_max_abs_vs_cpu=(out_tf32 - cpu).abs().max().item(),
            logit_range=(golden.max() - golden.min()).item())
        ok &= row['matches_golden'] and row['matches_cpu']
        rows.append(row)
        log(f'  {name:18s} golden {row["max_abs_vs_golden"]:.2e} '
            f'cpu {row["max_abs_vs_cpu"]:.2e} match '
            f'{row["matches_golden"] and row["matches_cpu"]} | tf32 rel '
            f'{row["tf32_rel_l2_vs_cpu"]:.2e}')
        del model
    return dict(passed=ok, rows=rows)


# --------------------------------------------------------------------------
# 2. AMP
# --------------------------------------------------------------------------
def _fwd_bwd(model: nn.Module, x: torch.Tensor, dtype: Optional[torch.dtype],
             scale: float) -> tuple:
    model.zero_grad(set_to_none=True)
    ctx = torch.autocast(x.device.type, dtype=dtype) if dtype else \
        contextlib.nullcontext()
    with ctx:
        outs = _outputs(model(x))
    loss = sum(o.float().mean() for o in outs)
    (loss * scale).backward()
    grads = [p.grad.detach().float() / scale for p in model.parameters()
             if p.grad is not None]
    return outs[-1].detach().float(), torch.cat([g.flatten() for g in grads])


def _classifier_steps(dev: torch.device, small: bool, amp: bool,
                      steps: int) -> List[float]:
    """Losses of ``steps`` train_step calls of the STViT-S classifier recipe
    (batch augments off, so that both runs see the same targets)."""
    from mmengine.optim import build_optim_wrapper

    cfg = load_config(osp.join(ROOT, SPEED_MODELS['stvit-small']))
    cfg.model.train_cfg = None
    cfg.model.backbone.drop_path_rate = 0.
    size, batch = (224, 32)
    if small:
        from tests.tiny_archs import STVIT_TINY
        cfg.model.backbone.update(arch=STVIT_TINY, stoken_size=(4, 2, 1, 1))
        cfg.model.neck.in_channels = STVIT_TINY['embed_dims'][-1]
        size, batch = (64, 4)
    torch.manual_seed(0)
    model, _ = build_model(cfg)
    model.to(dev).train()
    wrapper = dict(cfg.optim_wrapper)
    if amp:
        wrapper.update(type='AmpOptimWrapper', dtype='float16',
                       loss_scale='dynamic')
    optim_wrapper = build_optim_wrapper(model, wrapper)
    data = synthetic_batch(model, 'mmpretrain', (size, size), batch)
    losses = []
    for _ in range(steps):
        out = model.train_step(data, optim_wrapper)
        losses.append(float(out['loss']))
    return losses


def check_amp(dev: torch.device, args: argparse.Namespace,
              log: Log) -> Dict[str, Any]:
    rows, ok = [], True
    batch = 2 if args.small else 16
    for family in args.families:
        torch.manual_seed(0)
        model, side = build_family(family, args.small, drop_path_rate=0.)
        model.to(dev).train()
        x = torch.randn(batch, 3, side, side, device=dev)
        set_tf32(False)
        ref_out, ref_grad = _fwd_bwd(model, x, None, 1.)
        for name, dtype, scale in (('bf16', torch.bfloat16, 1.),
                                   ('fp16', torch.float16, 1024.)):
            out, grad = _fwd_bwd(model, x, dtype, scale)
            row = dict(family=family, dtype=name, batch=batch, size=side,
                       finite=bool(torch.isfinite(out).all()
                                   and torch.isfinite(grad).all()),
                       out_rel_l2=rel_l2(out, ref_out),
                       grad_rel_l2=rel_l2(grad, ref_grad))
            ok &= row['finite']
            rows.append(row)
            log(f'  {family:12s} {name} finite {row["finite"]} out '
                f'{row["out_rel_l2"]:.2e} grad {row["grad_rel_l2"]:.2e}')
        del model
    if dev.type == 'cpu':
        return dict(passed=ok, rows=rows, amp_optim_wrapper=dict(
            passed=None,
            skipped='mmengine\'s AmpOptimWrapper refuses the CPU'))
    steps = 3 if args.small else 5
    fp32 = _classifier_steps(dev, args.small, False, steps)
    fp16 = _classifier_steps(dev, args.small, True, steps)
    rel = [abs(a - b) / abs(a) for a, b in zip(fp16, fp32)]
    wrapper_ok = all(math.isfinite(v) for v in fp16) and max(rel) <= 0.02
    ok &= wrapper_ok
    log(f'  AmpOptimWrapper fp16 losses {[round(v, 4) for v in fp16]} vs '
        f'fp32 {[round(v, 4) for v in fp32]}: max rel {max(rel):.2e}')
    return dict(passed=ok, rows=rows, amp_optim_wrapper=dict(
        passed=wrapper_ok, fp16_losses=fp16, fp32_losses=fp32,
        max_rel_diff=max(rel)))


# --------------------------------------------------------------------------
# 3. torch.compile
# --------------------------------------------------------------------------
def _compile_case(family: str, dev: torch.device, small: bool,
                  time_it: bool, backend: str) -> Dict[str, Any]:
    """Compile ``family``'s backbone (fp32 and bf16-autocast inference
    graphs); with ``time_it`` also time compiled against eager in bf16."""
    torch.manual_seed(0)
    model, side = build_family(family, small)
    model.to(dev).eval()
    batch = 2 if small else 64
    x = torch.randn(batch, 3, side, side, device=dev)
    set_tf32(False)
    compiled = torch.compile(model, backend=backend)
    row: Dict[str, Any] = dict(family=family, batch=batch, size=side,
                               backend=backend)
    with torch.inference_mode():
        eager = _outputs(model(x))
        start = time.perf_counter()
        got = _outputs(compiled(x))
        sync(dev)
        row['compile_s_fp32'] = time.perf_counter() - start
        errs = [rel_l2(a, b) for a, b in zip(got, eager)]
        row['rel_l2_fp32'] = max(errs) if len(got) == len(eager) \
            else math.inf
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            start = time.perf_counter()
            compiled(x)
            sync(dev)
            row['compile_s_bf16'] = time.perf_counter() - start
            if time_it:
                reps = 3 if small else 20
                med = median_times(
                    dict(eager=lambda: model(x), compiled=lambda: compiled(x)),
                    dev, warmup=1 if small else 5, repeats=reps)
                row.update(eager_ms=med['eager'] * 1e3,
                           compiled_ms=med['compiled'] * 1e3,
                           speedup=med['eager'] / med['compiled'])
    row['passed'] = row['rel_l2_fp32'] <= 1e-4
    return row


def start_compile_workers(dev: torch.device, args: argparse.Namespace,
                          log: Log) -> List[tuple]:
    """One process per family that compiles (filling Inductor's cache) and
    checks the fp32 result; returns (family, process, result path)."""
    workers = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(
            os.pathsep) if p]))
    env.setdefault('TORCHINDUCTOR_COMPILE_THREADS', '2')
    env.setdefault('OMP_NUM_THREADS', '1')
    for family in args.families:
        path = osp.join(args.work_dir, f'compile_{family}.json')
        cmd = [sys.executable, osp.abspath(__file__), args.out_dir,
               '--device', args.device, '--compile-worker', family,
               '--work-dir', args.work_dir]
        if args.small:
            cmd.append('--small')
        cmd += ['--compile-backend', args.compile_backend]
        with open(path[:-len('.json')] + '.log', 'w') as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT,
                                    preexec_fn=lambda: os.nice(19))
        workers.append((family, proc, path))
    log(f'  started {len(workers)} compile workers')
    return workers


def check_compile(dev: torch.device, args: argparse.Namespace, log: Log,
                  workers: List[tuple]) -> Dict[str, Any]:
    rows, ok = [], True
    for family, proc, path in workers:
        try:
            proc.wait(timeout=args.compile_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with open(path[:-len('.json')] + '.log') as f:
            out = f.read()
        worker = None
        if proc.returncode == 0 and osp.exists(path):
            with open(path) as f:
                worker = json.load(f)
        if worker is None or not worker.get('passed'):
            log(f'  {family}: compile worker failed (exit '
                f'{proc.returncode}):\n{out[-3000:]}')
            rows.append(dict(family=family, passed=False,
                             error=out[-3000:], worker=worker))
            ok = False
            continue
        # again in this process, from the cache, with the machine quiet
        row = _compile_case(family, dev, args.small, True,
                            args.compile_backend)
        row.update(worker_compile_s_fp32=worker['compile_s_fp32'],
                   worker_compile_s_bf16=worker['compile_s_bf16'],
                   worker_rel_l2_fp32=worker['rel_l2_fp32'])
        ok &= row['passed']
        rows.append(row)
        log(f'  {family:12s} rel {row["rel_l2_fp32"]:.1e} compile '
            f'{worker["compile_s_fp32"]:.0f}+{worker["compile_s_bf16"]:.0f}s'
            f' (cached {row["compile_s_fp32"]:.0f}+'
            f'{row["compile_s_bf16"]:.0f}s) bf16 eager '
            f'{row["eager_ms"]:.1f} ms compiled {row["compiled_ms"]:.1f} ms '
            f'x{row["speedup"]:.2f}')
    return dict(passed=ok, rows=rows)


# --------------------------------------------------------------------------
# 4. speed against the official code
# --------------------------------------------------------------------------
def _profile(model_name: str, impl: str, dev: torch.device, batch: int,
             official: str, log: Log) -> List[Dict[str, Any]]:
    """The 12 costliest device kernels of two bf16 training steps."""
    from torch.profiler import ProfilerActivity, profile

    entry = resolve_model(model_name)
    model = build_backbone(entry)
    if impl == 'official':
        model = entry.official.build(official, model)
    model.to(dev)
    x = torch.randn(batch, 3, 224, 224, device=dev)
    step = make_step(model, x, 'train', 'bf16')
    step()
    sync(dev)
    acts = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    with profile(activities=acts) as prof:
        for _ in range(2):
            step()
        sync(dev)
    key = 'self_device_time_total' if dev.type == 'cuda' else \
        'self_cpu_time_total'
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0),
                    reverse=True)
    total = sum(getattr(e, key, 0) for e in events) or 1
    top = [dict(name=e.key[:90], ms_per_step=getattr(e, key, 0) / 2e3,
                share=getattr(e, key, 0) / total) for e in events[:12]]
    log(f'    profile {model_name} {impl}: ' + '; '.join(
        f'{t["name"][:40]} {t["ms_per_step"]:.1f} ms' for t in top[:6]))
    return top


def check_speed(dev: torch.device, args: argparse.Namespace,
                log: Log) -> Dict[str, Any]:
    if not args.official:
        return dict(passed=True, skipped='no --official folder given')
    repos = dict(stvit=osp.join(args.official, 'STViT'),
                 svt=osp.join(args.official, 'svt'),
                 swat=osp.join(args.official, 'SWAT'))
    n = 1024 if args.small else 8192
    gemm = gemm_rate(n=n, dtype='bf16' if dev.type == 'cuda' else 'fp32',
                     device=args.device) / 1e3
    log(f'  GEMM rate: {gemm:.1f} TFLOP/s')
    # the official SWAT is too slow for a CPU rehearsal
    models = ['stvit-small', 'svt-h-small'] if args.small \
        else list(SPEED_MODELS)
    rows, ok = [], True
    for name in models:
        repo = repos['stvit' if name.startswith('stvit') else
                     'svt' if name.startswith('svt') else 'swat']
        macs = count_complexity(build_backbone(resolve_model(name)),
                                shape=(224, 224))['flops']
        for mode in ('infer', 'train'):
            batch = 64 if mode == 'infer' else \
                training_batch(osp.join(ROOT, SPEED_MODELS[name]))
            if args.small:
                batch = 2
            job = make_job(model=name, size=(224, 224), batch=batch,
                           dtype='bf16', device=args.device, mode=mode,
                           warmup=1 if args.small else 3,
                           repeats=2 if args.small else 10, official=repo,
                           impls=('ours', 'official'))
            row: Dict[str, Any] = dict(model=name, mode=mode, batch=batch)
            try:
                ours, official = run_job(job)['rows']
            except Exception as err:
                # which side failed: ours alone must run (the official SVT,
                # for one, cannot train under bf16 autocast)
                row.update(error=f'{type(err).__name__}: {err}'[:2000])
                try:
                    (alone, ) = run_job(dict(job, impls=['ours']))['rows']
                    row.update(failed='official',
                               ours_ms=alone['latency_ms_median'],
                               ours_images_per_s=alone['images_per_s'])
                    log(f'  {name} {mode}: the official code fails '
                        f'({row["error"][:200]}); ours alone '
                        f'{row["ours_ms"]:.1f} ms')
                except Exception as err2:
                    row.update(failed='ours',
                               ours_error=f'{type(err2).__name__}: {err2}'
                               [:2000])
                    log(f'  {name} {mode}: FAILED {row["ours_error"][:300]}')
                    ok = False
                rows.append(row)
                continue
            flops = 2 * macs * (1 if mode == 'infer' else 3)
            row.update(
                ours_ms=ours['latency_ms_median'],
                official_ms=official['latency_ms_median'],
                ours_images_per_s=ours['images_per_s'],
                official_images_per_s=official['images_per_s'],
                speedup=ours['speedup_vs_official'],
                speedup_p25=ours['speedup_p25'],
                speedup_p75=ours['speedup_p75'],
                outputs_match_fp32=ours['outputs_match'],
                max_abs_diff_fp32=ours['max_abs_diff'],
                macs_per_image=macs,
                ours_tflops=flops * batch / ours['latency_ms_median'] / 1e9,
                official_tflops=flops * batch /
                official['latency_ms_median'] / 1e9)
            row['ours_share_of_gemm'] = row['ours_tflops'] / gemm
            if mode == 'train' and name.startswith(('stvit', 'svt')):
                row['target'] = TRAIN_TARGET
                row['target_met'] = row['speedup'] >= TRAIN_TARGET
            log(f'  {name:16s} {mode:5s} b{batch:<3d} ours '
                f'{row["ours_ms"]:.1f} ms official {row["official_ms"]:.1f} '
                f'ms x{row["speedup"]:.2f} | {row["ours_tflops"]:.0f} '
                f'TFLOP/s ({100 * row["ours_share_of_gemm"]:.0f}% of GEMM) '
                f'| fp32 match {row["outputs_match_fp32"]}')
            if mode == 'train' and row['speedup'] < TRAIN_TARGET and \
                    not args.no_profile:
                row['profile'] = {
                    impl: _profile(name, impl, dev, batch, repo, log)
                    for impl in ('ours', 'official')}
            rows.append(row)
            if dev.type == 'cuda':
                torch.cuda.empty_cache()
    return dict(passed=ok, gemm_tflops=gemm, gemm_n=n, rows=rows)


# --------------------------------------------------------------------------
# 5. dense-prediction recipes
# --------------------------------------------------------------------------
def _recipe_step(path: str, size: tuple, batch: int, dev: torch.device,
                 args: argparse.Namespace) -> Dict[str, Any]:
    step, model = make_config_step(path, size, batch, 'train', 'fp32',
                                   args.device)
    if dev.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    med = median_times(dict(step=step), dev, warmup=0 if args.small else 3,
                       repeats=1 if args.small else 10)['step']
    row = dict(config=osp.relpath(path, ROOT) if path.startswith(ROOT)
               else path, size=list(size), batch=batch, dtype='fp32',
               step_ms=med * 1e3, images_per_s=batch / med)
    if dev.type == 'cuda':
        row['max_memory_allocated_gb'] = \
            torch.cuda.max_memory_allocated(dev) / 2**30
        row['max_memory_reserved_gb'] = \
            torch.cuda.max_memory_reserved(dev) / 2**30
    del step, model
    return row


def check_dense(dev: torch.device, args: argparse.Namespace,
                log: Log) -> Dict[str, Any]:
    import mmseg
    seg_size, det_size = ((64, 64), (64, 96)) if args.small else \
        ((512, 512), (800, 1333))
    batch = 2  # the recipes' images per GPU (and UperNet's pooled batch norm
    # needs more than one value per channel)
    swin = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', SEG_SWIN)
    cases = [('stvit-b upernet', osp.join(ROOT, SEG_STVIT), seg_size),
             ('swin-t upernet (mmseg)', swin, seg_size)]
    rows, ok, skipped = [], True, {}
    try:
        from mmcv.ops import RoIAlign  # noqa: F401
        cases.append(('stvit-s mask r-cnn', osp.join(ROOT, DET_STVIT),
                      det_size))
    except Exception as err:
        skipped['stvit-s mask r-cnn'] = (
            'mmcv has no compiled ops here (mmdet\'s RoIAlign and NMS need '
            f'them): {type(err).__name__}: {err}')
        log(f'  Mask R-CNN skipped: {skipped["stvit-s mask r-cnn"]}')
    for label, path, size in cases:
        try:
            row = _recipe_step(path, size, batch, dev, args)
        except Exception as err:
            rows.append(dict(case=label, error=traceback.format_exc()[-3000:]))
            log(f'  {label}: FAILED {type(err).__name__}: {err}')
            ok = False
            continue
        row['case'] = label
        rows.append(row)
        mem = row.get('max_memory_allocated_gb')
        log(f'  {label:24s} {size[0]}x{size[1]} b{batch} '
            f'{row["step_ms"]:.0f} ms/step {row["images_per_s"]:.1f} img/s'
            + (f' peak {mem:.2f} GB' if mem is not None else ''))
        if dev.type == 'cuda':
            torch.cuda.empty_cache()
    return dict(passed=ok, rows=rows, skipped=skipped)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='folder for gpu_check.json / .log')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--official', default=None,
                        help='folder holding the clones STViT/, svt/, SWAT/')
    parser.add_argument('--small', action='store_true',
                        help='unit-test sizes: the CPU rehearsal')
    parser.add_argument('--only', default=','.join(CHECKS),
                        help=f'comma-separated subset of {",".join(CHECKS)}')
    parser.add_argument('--no-profile', action='store_true')
    parser.add_argument('--compile-timeout', type=float, default=420)
    parser.add_argument('--compile-backend', default='inductor',
                        help='torch.compile backend (the CPU rehearsal: '
                        'aot_eager, which skips code generation)')
    parser.add_argument('--compile-worker', default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument('--work-dir', default=None,
                        help='scratch folder of the compile workers '
                        '(default: a new temporary folder)')
    parser.add_argument('--families', default=','.join(FAMILY_SPECS),
                        help='backbone families of the amp and compile '
                        'checks (default: all)')
    args = parser.parse_args(argv)
    args.families = args.families.split(',')
    if set(args.families) - set(FAMILY_SPECS):
        parser.error(f'unknown families; choose from '
                     f'{",".join(FAMILY_SPECS)}')
    unknown = set(args.only.split(',')) - set(CHECKS)
    if unknown:
        parser.error(f'unknown checks {sorted(unknown)}; choose from '
                     f'{",".join(CHECKS)}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.work_dir is None:
        args.work_dir = tempfile.mkdtemp(prefix='swat_mm_gpu_check_')
    dev = torch.device(args.device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        print('gpu_check: --device cuda, but torch sees no CUDA device; use '
              '--device cpu for the rehearsal', file=sys.stderr)
        return 2
    import swat_mm  # noqa: F401  (registers the modules)
    from mmengine.logging import MMLogger
    # mmengine logs every parameter-wise optimizer setting at INFO
    MMLogger.get_instance('gpu_check', log_level='WARNING')
    if args.compile_worker:
        row = _compile_case(args.compile_worker, dev, args.small, False,
                            args.compile_backend)
        with open(osp.join(args.work_dir,
                           f'compile_{args.compile_worker}.json'), 'w') as f:
            json.dump(row, f)
        return 0

    log = Log(osp.join(args.out_dir, 'gpu_check.log'))
    only = args.only.split(',')
    result: Dict[str, Any] = dict(environment=environment(dev),
                                  small=args.small, checks={})
    log(f'gpu_check {json.dumps(result["environment"])}')
    workers = start_compile_workers(dev, args, log) \
        if 'compile' in only else []
    funcs = dict(correctness=check_correctness, amp=check_amp,
                 speed=check_speed, dense=check_dense)
    started = time.perf_counter()
    for name in CHECKS:
        if name not in only:
            continue
        log(f'[{name}] ({time.perf_counter() - started:.0f} s)')
        t0 = time.perf_counter()
        try:
            if name == 'compile':
                out = check_compile(dev, args, log, workers)
            else:
                out = funcs[name](dev, args, log)
        except Exception as err:
            out = dict(passed=False, error=traceback.format_exc()[-4000:])
            log(f'  FAILED {type(err).__name__}: {err}')
        out['seconds'] = time.perf_counter() - t0
        result['checks'][name] = out
        with open(osp.join(args.out_dir, 'gpu_check.json'), 'w') as f:
            json.dump(result, f, indent=1, default=str)
    failed = [k for k, v in result['checks'].items() if not v['passed']]
    result['passed'] = not failed
    result['seconds'] = time.perf_counter() - started
    with open(osp.join(args.out_dir, 'gpu_check.json'), 'w') as f:
        json.dump(result, f, indent=1, default=str)
    verdict = 'FAILED: ' + ', '.join(failed) if failed else \
        'all checks passed'
    log(f'gpu_check: {verdict} in {result["seconds"]:.0f} s')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
