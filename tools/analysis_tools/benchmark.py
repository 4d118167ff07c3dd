"""Throughput, latency and peak memory of backbones or whole configs.

    python tools/analysis_tools/benchmark.py --backbone stvit-small \\
        [--backbone STViT:base ...] [--config CONFIG ...] \\
        [--shape H [W]] [--batch 8] [--dtype fp32|bf16|fp16] \\
        [--device cpu|cuda] [--mode infer|train|fwdbwd] [--warmup 2] \\
        [--repeats 10] [--generic-paths] [--tensor-memory] \\
        [--threads N] [--channels-last] [--compile BACKEND] [--flops] \\
        [--model-arg with_cp=True] \\
        [--gemm] [--official PATH] [--sweep [--plot docs/sweep.png]] \\
        [--out work_dirs/benchmark/result]

Each measurement runs in a fresh subprocess, so a reported peak memory is
the model's own (CUDA: allocator peak; CPU: process peak RSS, also given as
the increase over the RSS just before the first step). ``--official PATH``
(a clone of the authors' repository) compares ours with the official code on
the same weights: outputs must agree, and both are timed interleaved in one
process; the speed-up is official time / our time. ``--sweep`` runs 224 to
1024 and the det/seg input sizes and plots time and memory against pixels.
A config in ``--mode train`` runs its own training step (``train_step``
with its ``optim_wrapper``, on a synthetic annotated batch at its training
size and images per GPU unless ``--shape``/``--batch`` say otherwise);
``--tensor-memory`` on a CPU estimates the tensor memory that step needs
on a GPU; ``--generic-paths`` builds the reference formulation of every
layer.
See ``benchmark_engine.py`` beside this file for the details; ``--list``
shows the table.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# The repository root first: the engine is imported from its tools/ folder,
# and swat_mm from this checkout (installed or not).
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import DictAction  # noqa: E402

from tools.analysis_tools import benchmark_engine as bm  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark speed and memory of swat_mm models')
    parser.add_argument('--backbone', action='append', default=[],
                        help='table name (see --list) or Type[:arch]; '
                        'repeatable')
    parser.add_argument('--config', action='append', default=[],
                        help='config file whose whole model is measured: '
                        'tensor-mode forward for infer, its own training '
                        'step on a synthetic annotated batch for train and '
                        'fwdbwd; repeatable')
    parser.add_argument('--model-arg', nargs='+', action=DictAction,
                        default={}, metavar='KEY=VALUE',
                        help='added to the backbone config (of a --config: '
                        'to model.backbone), e.g. with_cp=True')
    parser.add_argument('--shape', type=int, nargs='+', action='append',
                        help='input H W (or S); repeatable; default 224, '
                        'for a config its training size (the largest the '
                        'train pipeline gives)')
    parser.add_argument('--batch', type=int,
                        help='default 1; for a config in train/fwdbwd mode '
                        'its train dataloader\'s images per GPU')
    parser.add_argument('--dtype', choices=sorted(bm.DTYPES), default='fp32',
                        help='bf16/fp16 run under torch.autocast')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--mode', choices=bm.MODES, default='infer',
                        help='infer; train (forward, backward, AdamW '
                        'step); or fwdbwd (forward and backward only)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int,
                        help='torch threads (default: torch\'s own)')
    parser.add_argument('--channels-last', action='store_true',
                        help='model and input in channels-last memory '
                        'format (ours and official alike)')
    parser.add_argument('--compile', metavar='BACKEND',
                        help='torch.compile the models with this backend')
    parser.add_argument('--flops', action='store_true',
                        help='count FLOPs and report the achieved rate')
    parser.add_argument('--gemm', action='store_true',
                        help='also measure the machine\'s fp32 GEMM rate')
    parser.add_argument('--official', metavar='PATH',
                        help='clone of the official repository to compare '
                        'with')
    parser.add_argument('--generic-paths', action='store_true',
                        help='build the reference formulation of every '
                        'layer (SWAT_MM_FAST_LAYERS=0) instead of the fast '
                        'ones')
    parser.add_argument('--tensor-memory', action='store_true',
                        help='CPU: also the peak of live tensor bytes, from '
                        'one more, profiled step (what CUDA\'s allocator '
                        'peak counts)')
    parser.add_argument('--no-memory', action='store_true',
                        help='with --official: skip the separate '
                        'per-implementation memory runs')
    parser.add_argument('--sweep', action='store_true',
                        help='all of ' + ', '.join(bm.SWEEP_SIZES) +
                        ' (ignores --shape)')
    parser.add_argument('--plot', help='PNG of the sweep')
    parser.add_argument('--out', default='work_dirs/benchmark/result',
                        help='writes OUT.csv and OUT.json')
    parser.add_argument('--list', action='store_true',
                        help='list the table of models and exit')
    args = parser.parse_args(argv)
    if not args.list and not (args.backbone or args.config):
        parser.error('give --backbone and/or --config')
    if args.sweep and args.config:
        parser.error('--sweep takes --backbone models only')
    for shape in args.shape or []:
        if len(shape) not in (1, 2):
            parser.error('--shape takes H W or one size S')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, entry in bm.MODEL_TABLE.items():
            official = 'official: yes' if entry.official else 'official: no'
            print(f'{name:24s} {entry.cfg}  {official}')
        return 0
    sizes = [tuple(s * 2 if len(s) == 1 else s)
             for s in args.shape] if args.shape else None
    common = dict(batch=args.batch, dtype=args.dtype, device=args.device,
                  mode=args.mode, warmup=args.warmup, repeats=args.repeats,
                  threads=args.threads, channels_last=args.channels_last,
                  compile=args.compile, count_flops=args.flops,
                  model_kwargs=args.model_arg,
                  generic_paths=args.generic_paths,
                  tensor_memory=args.tensor_memory)
    extra = {}
    if args.gemm:
        extra['gemm_gflops'] = bm.gemm_rate_isolated(args.device, args.threads)
    if args.sweep:
        rows = bm.sweep(args.backbone, official=args.official, **common)
    else:
        rows = bm.benchmark(args.backbone, args.config, sizes,
                            official=args.official,
                            memory=not args.no_memory, **common)
    print(bm.format_table(rows))
    if 'gemm_gflops' in extra:
        print(f'fp32 GEMM rate of this machine ({args.threads or "default"} '
              f'threads): {extra["gemm_gflops"]:.1f} GFLOP/s')
    bad = [r['model'] for r in rows if r.get('outputs_match') is False]
    paths = bm.write_results(rows, args.out, extra)
    if args.plot:
        paths.append(bm.plot_sweep(rows, args.plot))
    print('wrote ' + ', '.join(paths))
    if bad:
        print(f'OUTPUTS DIFFER from the official code: {bad}',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
