"""Benchmark tool: CLI outputs, comparison with the official code, sweep plot,
and gradient checkpointing's memory saving (no timing assertions)."""
import copy
import csv
import gc
import json
import os
import os.path as osp

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from swat_mm.models.backbones.stvit import STViT
from tests.tiny_archs import (FAMILY_CASES, STVIT_TINY, SVT_TINY,
                               SWAT_VIT_TINY)
from tools.analysis_tools import benchmark_engine as bm
from tools.official.stvit import build_official_stvit
from tools.official.svt import build_official_svt

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OFFICIAL_STVIT = os.environ.get('SWAT_MM_OFFICIAL_STVIT',
                                '/work/official/STViT')
TINY = STVIT_TINY


def test_cli_writes_csv_and_json(tmp_path):
    """One backbone on a tiny input in a fresh process: the table's
    columns in the CSV, rows and the GEMM rate in the JSON."""
    from tools.analysis_tools.benchmark import main
    out = str(tmp_path / 'res')
    assert main(['--backbone', 'stvit-small', '--shape', '32', '--batch',
                 '1', '--warmup', '0', '--repeats', '2', '--threads', '1',
                 '--gemm', '--out', out]) == 0
    with open(out + '.csv') as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames[:len(bm.COLUMNS)] == bm.COLUMNS
    assert len(rows) == 1
    row = rows[0]
    assert (row['model'], row['impl'], row['mode'], row['dtype']) == (
        'stvit-small', 'ours', 'infer', 'fp32')
    assert (int(row['height']), int(row['width']), int(row['batch']),
            int(row['threads'])) == (32, 32, 1, 1)
    med = float(row['latency_ms_median'])
    assert float(row['latency_ms_min']) <= med <= float(
        row['latency_ms_p75'])
    assert float(row['images_per_s']) == pytest.approx(1e3 / med)
    # its own process: the peak is its own, above what it held before
    assert row['mem_kind'] == 'rss'
    assert float(row['peak_mem_mb']) >= float(row['mem_before_mb']) > 0
    with open(out + '.json') as f:
        result = json.load(f)
    assert result['rows'][0]['latency_ms_median'] == pytest.approx(med)
    assert result['gemm_gflops'] > 0


def test_model_specs_and_errors():
    assert bm.resolve_model('stvit-base').cfg == dict(type='STViT',
                                                      arch='base')
    assert bm.resolve_model('swat_mm.STViT:large').cfg['arch'] == 'large'
    with pytest.raises(KeyError, match='Unknown model'):
        bm.resolve_model('NoSuchNet:tiny')
    with pytest.raises(ValueError, match='exactly one'):
        bm.make_job()
    with pytest.raises(ValueError, match='needs its path'):
        bm.make_job(model='stvit-small', impls=('ours', 'official'))
    with pytest.raises(ValueError, match='mode'):
        bm.make_job(model='stvit-small', mode='fit')


@pytest.mark.skipif(
    not osp.isfile(osp.join(OFFICIAL_STVIT, 'models', 'stvit.py')),
    reason=f'no clone of hhb072/STViT at {OFFICIAL_STVIT} (set '
    'SWAT_MM_OFFICIAL_STVIT); CI has none')
@pytest.mark.parametrize('mode', ['infer', 'train'])
def test_comparison_with_official_stvit(mode):
    """Ours and the official STViT-S on the same weights agree (padding
    size), and the interleaved timing gives a speed-up per pair."""
    pytest.importorskip('timm')
    pytest.importorskip('fvcore')  # the official models/stvit.py imports it
    result = bm.run_job(bm.make_job(
        model='stvit-small', size=(40, 56), batch=1, mode=mode, warmup=0,
        repeats=2, threads=1, official=OFFICIAL_STVIT,
        impls=('ours', 'official')))
    ours, official = result['rows']
    assert (ours['impl'], official['impl']) == ('ours', 'official')
    assert ours['outputs_match'] is True
    assert ours['max_abs_diff'] < 1e-3
    assert ours['speedup_p25'] <= ours['speedup_vs_official'] <= \
        ours['speedup_p75']
    # two models in one process: no peak is claimed for either
    assert ours['peak_mem_mb'] is None and official['peak_mem_mb'] is None


@pytest.mark.skipif(
    not osp.isfile(osp.join(OFFICIAL_STVIT, 'models', 'stvit.py')),
    reason=f'no clone of hhb072/STViT at {OFFICIAL_STVIT}')
def test_official_build_detects_different_weights():
    """The check the comparison relies on: a changed weight shows."""
    pytest.importorskip('timm')
    pytest.importorskip('fvcore')  # the official models/stvit.py imports it
    torch.manual_seed(0)
    ours = STViT(arch=dict(TINY, layer_scale=[False, True, True, False]),
                 stoken_size=(4, 2, 1, 1), n_iter=(2, 1, 1, 1)).eval()
    official = build_official_stvit(OFFICIAL_STVIT, ours).eval()
    x = torch.randn(1, 3, 45, 38)
    with torch.no_grad():
        a, b = ours(x)[-1], official(x)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        official.model.layers[0].blocks[0].mlp2.fc2.bias.add_(1e-2)
        assert not torch.allclose(ours(x)[-1], official(x), rtol=1e-4,
                                  atol=1e-5)


def test_sweep_plot_png(tmp_path):
    """Rows at two sizes (measured here, in-process) plot to a PNG."""
    rows = []
    for size in ((32, 32), (48, 64)):
        rows += bm.run_job(bm.make_job(model='stvit-small', size=size,
                                       warmup=0, repeats=1))['rows']
    rows.append(dict(rows[0], impl='official', note='official: 224 only'))
    path = bm.plot_sweep(rows, str(tmp_path / 'sweep.png'), title='test')
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(data) < 300 * 1024


@pytest.mark.parametrize('mode', ['train', 'fwdbwd'])
def test_training_steps(mode):
    """Both training modes give every parameter a gradient; ``train`` then
    takes the AdamW step (every weight changes), ``fwdbwd`` does not (no
    weight changes)."""
    torch.manual_seed(0)
    model = STViT(arch=TINY, drop_path_rate=0.)
    before = [p.detach().clone() for p in model.parameters()]
    step = bm.make_step(model, torch.randn(2, 3, 32, 32), mode)
    step()
    assert model.training
    for a, p in zip(before, model.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0
        assert torch.equal(a, p) == (mode == 'fwdbwd')


def _saved_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for backward."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = \
            t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    sum(o.mean() for o in out).backward()
    return sum(seen.values())


# every backbone family (drop path off there, so that both runs build the
# same graph)
WITH_CP_CASES = FAMILY_CASES


@pytest.mark.parametrize('family', sorted(WITH_CP_CASES))
def test_with_cp_keeps_fewer_tensors_for_backward(family):
    """Gradient checkpointing (deterministic, not timed): each block keeps
    only its input, so the bytes autograd keeps for backward (the bulk of
    a training step's peak memory) drop by more than half in every
    family."""
    from swat_mm.models import backbones
    name, kwargs, size = WITH_CP_CASES[family]
    cls = getattr(backbones, name)
    kwargs = dict(kwargs, drop_path_rate=0.)
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    plain = _saved_bytes(cls(**kwargs).train(), x)
    cp = _saved_bytes(cls(with_cp=True, **kwargs).train(), x)
    assert cp < 0.5 * plain, (cp, plain)


OFFICIAL_SVT = os.environ.get('SWAT_MM_OFFICIAL_SVT', '/work/official/svt')
# the official SVT only has spectral filters for 64/96 channels at 56 x 56
SVT_SMALL_ARCH = dict(stem_channels=8, embed_dims=[64, 16, 24, 32],
                      depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
                      mlp_ratios=[2, 2, 2, 2])


@pytest.mark.skipif(not osp.isfile(osp.join(OFFICIAL_SVT, 'svt.py')),
                    reason=f'no clone of badripatro/svt at {OFFICIAL_SVT} '
                    '(set SWAT_MM_OFFICIAL_SVT); CI has none')
@pytest.mark.parametrize('mode', ['infer', 'train'])
def test_comparison_with_official_svt(mode):
    """Ours (GEMM DTCWT, fused FFN) and the official SVT on the same
    weights agree at 224, in inference and in the training step's
    forward."""
    pytest.importorskip('timm')
    result = bm.run_job(bm.make_job(
        model='svt-h-small', batch=1, mode=mode, warmup=0, repeats=1,
        threads=1, official=OFFICIAL_SVT, impls=('ours', 'official'),
        model_kwargs=dict(arch=SVT_SMALL_ARCH, drop_path_rate=0.)))
    ours, official = result['rows']
    assert ours['outputs_match'] is True
    assert ours['max_abs_diff'] < 1e-3
    assert official['note'].startswith('official SVT: 224x224 only')


def test_official_svt_only_where_it_exists():
    from swat_mm.models.backbones.svt import SVT
    assert not bm.official_runs_at('svt-h-small', (512, 512))
    assert bm.official_runs_at('svt-h-small', (224, 224))
    ours = SVT(arch=SVT_SMALL_ARCH, num_scatter_stages=2)
    with pytest.raises(ValueError, match='one scatter stage'):
        build_official_svt(OFFICIAL_SVT, ours)


class _OutputShapes(TorchDispatchMode):
    """Records the shape of every tensor an aten op returns."""

    def __init__(self):
        super().__init__()
        self.shapes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.shapes.add(tuple(t.shape))
        return out


# Global attention over N tokens; input sizes chosen so that no image map,
# no channel count and no square weight shows a trailing (N, N).
SDPA_CASES = {
    # 128x160 input: the super-token refinement of stages 1-2 (8x10 super
    # tokens) and the global attention of stages 3-4 (8x10 and 4x5 tokens)
    'stvit': ('STViT', dict(arch=TINY, stoken_size=(4, 2, 1, 1)),
              (128, 160), [80, 20]),
    # stages 2-4 of SVT at 128x160: 16x20, 8x10, 4x5 tokens
    'svt': ('SVT', dict(arch=SVT_TINY, img_size=(128, 160)), (128, 160),
            [320, 80, 20]),
    # SWAT DeiT-style ViT at 48x80: 6x10 tokens
    'swat_vit': ('SWATViT', dict(arch=SWAT_VIT_TINY, img_size=(48, 80),
                                 out_type='featmap'), (48, 80), [60]),
}


def _attention_maps(name, kwargs, size, tokens, train):
    from swat_mm.models import backbones
    torch.manual_seed(0)
    model = getattr(backbones, name)(drop_path_rate=0., **kwargs)
    x = torch.randn(1, 3, *size)
    rec = _OutputShapes()
    if train:
        model.train()
        with rec:
            sum(o.mean() for o in model(x)).backward()
    else:
        model.eval()
        with torch.no_grad(), rec:
            model(x)
    return sorted(s for s in rec.shapes
                  if len(s) >= 2 and s[-1] == s[-2] and s[-1] in tokens)


@pytest.mark.parametrize('train', [False, True], ids=['infer', 'train'])
@pytest.mark.parametrize('family', sorted(SDPA_CASES))
def test_global_attention_never_materialises_n_by_n(family, train):
    """``F.scaled_dot_product_attention`` keeps the N x N attention map out
    of every op's outputs, forward and backward (deterministic: the shapes
    aten ops return); the same model on PyTorch's math backend does
    produce it, so the check can fail."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    name, kwargs, size, tokens = SDPA_CASES[family]
    assert _attention_maps(name, kwargs, size, tokens, train) == []
    with sdpa_kernel(SDPBackend.MATH):
        assert _attention_maps(name, kwargs, size, tokens, train)


def test_allocator_info_names_the_settings(monkeypatch):
    """Rows say which host allocator settings they were measured under."""
    monkeypatch.delenv('LD_PRELOAD', raising=False)
    monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
    assert bm.allocator_info() == 'default'
    monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.trim_threshold=1')
    # ld.so takes colons or spaces between the entries
    monkeypatch.setenv('LD_PRELOAD',
                       '/usr/lib/libfoo.so /opt/libjemalloc.so.2')
    assert bm.allocator_info() == ('LD_PRELOAD=libjemalloc.so.2 '
                                   'GLIBC_TUNABLES=glibc.malloc.'
                                   'trim_threshold=1')
    assert bm.machine_info()['allocator'] == bm.allocator_info()


# --------------------------------------------------------------------------
# A config's own training step and its tensor memory
# --------------------------------------------------------------------------
TOY_DET = osp.join(ROOT, 'configs/toy/mask-rcnn_stvit-small_toy-coco.py')
TOY_SEG = osp.join(ROOT, 'configs/toy/stvit-small_upernet_toy-ade20k.py')
TOY_CLS = osp.join(ROOT, 'configs/toy/stvit-small_toy-in1k.py')


def test_training_size_and_batch_from_the_configs():
    """The largest input each pipeline gives (keep-ratio 1333x800 as a
    landscape image, the multi-scale recipe's largest scale, the seg crop,
    the classification crop) and the images per GPU."""
    from mmengine.config import Config
    det = 'configs/det/stvit/mask-rcnn_stvit-base_fpn_%s_coco.py'
    cases = {det % '1x': ((800, 1333), 2), det % 'ms-3x': ((800, 1333), 2),
             'configs/seg/stvit_upernet_ade20k.py': ((512, 512), 2),
             'configs/cls/stvit/stvit-base_8xb128_in1k.py': ((224, 224), 128)}
    for path, (size, batch) in cases.items():
        path = osp.join(ROOT, path)
        assert (bm.training_size(path), bm.training_batch(path)) == \
            (size, batch), path
    # pairs as tuples or (after config merging) lists, nested transforms,
    # square ints; float ranges are not sizes
    assert bm._pipeline_scales([
        dict(type='Resize', scale=[1333, 800]),
        dict(type='RandomChoice', transforms=[[dict(
            scales=[(1333, 640), [1333, 800]])]]),
        dict(type='RandomResizedCrop', scale=224),
        dict(type='Other', scale=(0.08, 1.0))]) == [
            (1333, 800), (1333, 640), (1333, 800), (224, 224)]
    bare = Config(dict(model=dict(), train_dataloader=dict(dataset=dict(
        pipeline=[dict(type='LoadImageFromFile')]))))
    with pytest.raises(ValueError, match='--shape H W'):
        bm.training_size(bare)


@pytest.mark.parametrize('path', [TOY_DET, TOY_SEG, TOY_CLS],
                         ids=['det', 'seg', 'cls'])
def test_config_step_is_the_recipe_training_step(path):
    """``train`` is the model's own train_step with the config's optimizer
    wrapper on annotated images (every weight that gets a gradient moves,
    and gradients are cleared after it); ``fwdbwd`` computes the same
    losses' gradients and moves nothing."""
    torch.manual_seed(0)
    step, model = bm.make_config_step(path, (64, 96), 2, 'train')
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step()
    moved = [n for n, p in model.named_parameters()
             if not torch.equal(before[n], p)]
    assert len(moved) > 0.9 * len(before), (len(moved), len(before))
    assert all(p.grad is None for p in model.parameters())

    step, model = bm.make_config_step(path, (64, 96), 2, 'fwdbwd')
    before = [p.detach().clone() for p in model.parameters()]
    step()
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_config_step_runs_at_the_size_asked_for():
    """A segmentor's data preprocessor pads to the recipe's crop (64x64 in
    the toy recipe); the step asked for at 32x48 runs at 32x48."""
    step, model = bm.make_config_step(TOY_SEG, (32, 48), 2, 'fwdbwd')
    seen = []
    model.backbone.register_forward_pre_hook(
        lambda module, args: seen.append(tuple(args[0].shape)))
    step()
    assert seen == [(2, 3, 32, 48)]


def test_live_tensor_bytes_and_cpu_tensor_peak():
    """Exact byte counts: a held tensor adds its storage once (views add
    nothing); the peak of a step is the largest sum of its tensors alive
    at once, freed ones excluded."""
    mb = 2**20
    # earlier tests' cyclic garbage (tensors in it count as live until the
    # collector runs) must not be freed between the two counts
    gc.collect()
    gc.disable()
    try:
        before = bm.live_tensor_mb()
        held = torch.empty(3 * mb // 4)  # 3 MB of float32
        view = held[1:]  # noqa: F841
        assert bm.live_tensor_mb() - before == pytest.approx(3.0)
    finally:
        gc.enable()

    def step():
        a = torch.empty(4 * mb // 4)
        b = torch.empty(2 * mb // 4)
        del a
        c = torch.empty(3 * mb // 4)  # 2 + 3 live: below 4 + 2
        del b, c

    resident = bm.live_tensor_mb()
    assert bm.cpu_tensor_peak_mb(step) - resident == pytest.approx(
        6.0, abs=0.01)


def test_cli_config_training_with_generic_paths(tmp_path):
    """A det config's training step in a fresh process, on the GPU's code
    path: the row says so and carries the tensor peak, which holds at
    least the weights, their gradients and AdamW's two moments."""
    from tools.analysis_tools.benchmark import main
    out = str(tmp_path / 'res')
    assert main(['--config', TOY_DET, '--mode', 'train', '--shape', '64',
                 '96', '--warmup', '0', '--repeats', '1', '--threads', '1',
                 '--generic-paths', '--tensor-memory', '--out', out]) == 0
    with open(out + '.json') as f:
        row = json.load(f)['rows'][0]
    assert (row['mode'], row['batch'], row['height'], row['width'],
            row['generic_paths']) == ('train', 4, 64, 96, True)
    from swat_mm.utils.complexity import build_model
    model, _ = build_model(TOY_DET)
    weights_mb = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    assert 4 * weights_mb < row['tensor_peak_mb'] < row['peak_mem_mb']


def test_fast_layers_switch():
    """Built with the fast layers off, a model runs the reference
    formulations (F.unfold/F.fold neighbourhoods) and gives the
    same outputs and gradients, for the same stochastic-depth draws; the
    choice is made when the model is built and kept."""
    from swat_mm.models.layers.config import fast_layers, use_fast_layers
    x = torch.randn(2, 3, 64, 64)
    assert use_fast_layers()
    with fast_layers(False):
        assert not use_fast_layers()
    assert use_fast_layers()

    torch.manual_seed(0)
    first = STViT(arch=TINY, drop_path_rate=0.5, out_indices=(0, 1, 2, 3))
    results = []
    for enabled in (True, False):
        with fast_layers(enabled):
            model = STViT(arch=TINY, drop_path_rate=0.5,
                          out_indices=(0, 1, 2, 3))
        model.load_state_dict(first.state_dict())
        assert {m.attn.fast for m in model.modules()
                if hasattr(m, 'attn')} == {enabled}
        torch.manual_seed(1)
        outs = model.train()(x)
        sum((o * o).mean() for o in outs).backward()
        with torch.no_grad():
            evals = model.eval()(x)
        results.append(([o.detach() for o in outs + evals],
                        [p.grad.clone() for p in model.parameters()]))
    (out_a, grad_a), (out_b, grad_b) = results
    for a, b in zip(out_a + grad_a, out_b + grad_b):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_model_args_reach_a_configs_backbone():
    """``--model-arg`` sets ``model.backbone`` of a config (for the
    training step and the tensor-mode forward alike) and names the row."""
    _, model = bm.make_config_step(TOY_DET, (64, 96), 1, 'fwdbwd',
                                   backbone_kwargs=dict(with_cp=True))
    assert model.backbone.with_cp
    target = bm._config_target(TOY_SEG, (64, 64), dict(with_cp=True))
    assert target.model.backbone.with_cp
    row = bm.run_job(bm.make_job(config=TOY_SEG, size=(64, 64), mode='infer',
                                 warmup=0, repeats=1,
                                 model_kwargs=dict(with_cp=True)))['rows'][0]
    assert row['model'] == 'stvit-small_upernet_toy-ade20k with_cp=True'


def test_backbones_build_after_a_config_set_another_scope():
    """Building a config sets mmengine's default scope to its toolbox; the
    table's backbones still build from swat_mm's registry afterwards."""
    from mmengine.registry import DefaultScope
    bm._config_target(TOY_SEG, (64, 64))
    assert DefaultScope.get_current_instance().scope_name == 'mmseg'
    model = bm.build_backbone(bm.resolve_model('swat-deit-small'))
    assert type(model).__name__ == 'SWATViT'


def test_config_training_step_refuses_what_it_cannot_apply():
    """A config's own training step has no compiled or channels-last
    variant: asking for one is an error, not silently ignored."""
    for extra in (dict(compile='inductor'), dict(channels_last=True)):
        with pytest.raises(ValueError, match='not to its own training'):
            bm.make_job(config=TOY_DET, mode='train', **extra)
    assert bm.make_job(config=TOY_DET, mode='infer', channels_last=True)
