"""ONNX export of every registered backbone with both exporters of torch:
the TorchScript one (``torch.onnx.export(..., dynamo=False)``, what mmdeploy
uses) and the dynamo one (``dynamo=True``, torch's default, through
``torch.export`` and onnxscript), dynamic batch, height and width, run by
onnxruntime.

Each backbone (its tiny arch, every stage out) is exported at its family's
square size, where nothing is padded, and the exported model must then give
the eager outputs (relative to their scale, 1e-4) on another batch at that
size and at the sizes that need padding; where the eager model refuses a
size (the fixed-token SWAT MLPs), onnxruntime must fail too: never an
answer where eager has none. Found before these tests (2026-12-06, full
models): size-dependent Python branches (padding only when needed, the
position embedding resized only off its grid, SVT's filter resized only off
its training size, filter matrices from Python lists) were baked into the
graph at the export size, so other sizes failed in a Reshape or broadcast,
and SVT did not export at all (``aten::block_diag``).
"""
import io
import warnings
from typing import Tuple

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tests.test_backbone_contract import (BACKBONES, FAMILY_OF, all_indices,
                                          build, spec)
from tests.tiny_archs import FAMILY_CASES


def export(name: str) -> Tuple[torch.nn.Module, ort.InferenceSession]:
    """The tiny backbone ``name`` in eval mode and an onnxruntime session
    of its export at the family's unpadded square size."""
    torch.manual_seed(0)
    model = build(name, out_indices=all_indices(name))
    model.init_weights()
    model.eval()
    side = FAMILY_CASES[FAMILY_OF[name]][2]
    x = torch.randn(1, 3, side, side)
    outputs = [f'out{i}' for i in all_indices(name)]
    f = io.BytesIO()
    # as a user calls it: gradients on (parameters require them), eval mode
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings on shape math
        torch.onnx.export(model, (x, ), f, dynamo=False, opset_version=17,
                          input_names=['x'], output_names=outputs,
                          dynamic_axes={'x': {0: 'b', 2: 'h', 3: 'w'}})
    options = ort.SessionOptions()
    options.log_severity_level = 4  # a refused size is an expected error
    return model, ort.InferenceSession(
        f.getvalue(), options, providers=['CPUExecutionProvider'])


# With named Dims over a range, torch.export must prove SVT's shape guards
# for every size in it, and cannot (the padded DTCWT grid); with Dim.AUTO it
# keeps the sizes symbolic where the guards allow, and the export is right
# at every size tested (2026-12-06).
DYNAMO_AUTO = {'SVT'}

# The smallest side of the named Dims. SWAT-Swin's and STViT's from 33:
# torch.export's fake convolution asks whether a channels-last input's map
# (what the MLP's depth-wise conv gets) is more than one token a side, to
# pick the output's memory format, and of the last stage's map
# (ceil(side / 32)) that holds from 33 on. From 16, torch.onnx.export's
# first torch.export fails on that guard, and it retries with the range
# torch.export suggests, 33 to 4096: SWAT-Swin about 45 s instead of 35 s,
# STViT about 35 s instead of 34 s (2026-12-06). The ONNX graphs check no
# range, and give the eager outputs at 16 x 16 and 20 x 36 too (measured
# 2026-12-06).
DYNAMO_MIN_SIDE = {'SWATSwin': 33, 'STViT': 33}


def export_dynamo(name: str
                  ) -> Tuple[torch.nn.Module, ort.InferenceSession]:
    """As :func:`export` with the dynamo exporter. The example has two
    images: from a batch of one, ``torch.export`` specialises the batch."""
    torch.manual_seed(0)
    model = build(name, out_indices=all_indices(name))
    model.init_weights()
    model.eval()
    side = FAMILY_CASES[FAMILY_OF[name]][2]
    dim = torch.export.Dim
    if name in DYNAMO_AUTO:
        dynamic = {0: dim.AUTO, 2: dim.AUTO, 3: dim.AUTO}
    else:
        low = DYNAMO_MIN_SIDE.get(name, 16)
        dynamic = {0: dim('b', max=1024), 2: dim('h', min=low, max=4096),
                   3: dim('w', min=low, max=4096)}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(
            model, (torch.randn(2, 3, side, side), ), dynamo=True,
            opset_version=18, verbose=False, input_names=['x'],
            dynamic_shapes=(dynamic, ))
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return model, ort.InferenceSession(
        program.model_proto.SerializeToString(), options,
        providers=['CPUExecutionProvider'])


def sizes(name: str) -> list:
    side = FAMILY_CASES[FAMILY_OF[name]][2]
    return [(2, side, side), (1, ) + tuple(spec(name)[1]['size']),
            (1, 33, 50)]


# onnxruntime before 1.24 (1.23.2 is the newest for Python 3.10) computes
# LayerNormalization's variance as E[x^2] - E[x]^2: a LayerNorm over four
# channels with mean 30 and spread 0.01 gives NaN there (1.32: 6e-4, as
# torch's fp32); SWAT-Swin's pixel-map LayerNorms over 2-4 channels then
# miss 1e-4 (1.8e-4 at 64 x 64 with the tiny arch), whatever the export.
OLD_ORT = tuple(int(v) for v in ort.__version__.split('.')[:2]) < (1, 24)


def run_sizes(name: str, model: torch.nn.Module,
              session: ort.InferenceSession) -> list:
    """Runs the session at every size of :func:`sizes`: each answer must
    equal eager (relative error <= 1e-4), and where eager refuses a size
    the session must refuse it too. Returns the sizes that the session
    refused although eager answers."""
    refused = []
    for batch, H, W in sizes(name):
        x = torch.randn(batch, 3, H, W,
                        generator=torch.Generator().manual_seed(H * W))
        with torch.no_grad():
            try:
                expected = model(x)
            except ValueError:
                expected = None
        try:
            got = session.run(None, {'x': x.numpy()})
        except Exception:
            if expected is not None:
                refused.append((batch, H, W))
            continue
        assert expected is not None, f'{name}: an answer where eager has none'
        assert len(got) == len(expected)
        for i, (a, b) in enumerate(zip(got, expected)):
            b = b.numpy()
            assert a.shape == b.shape, (name, (H, W), i)
            err = np.abs(a - b).max() / np.abs(b).max()
            assert err <= 1e-4, f'{name} at {H}x{W}, output {i}: {err:.2e}'
    return refused


@pytest.mark.parametrize('name', [
    pytest.param(n, marks=pytest.mark.xfail(
        strict=True, reason='onnxruntime < 1.24 LayerNormalization'))
    if OLD_ORT and n == 'SWATSwin' else n for n in BACKBONES])
def test_onnx_export_reproduces_eager_at_every_size(name: str) -> None:
    spec(name)
    model, session = export(name)
    refused = run_sizes(name, model, session)
    assert not refused, f'{name}: onnxruntime refuses {refused}'


# SWAT-Swin's and STViT's shape arithmetic is written for torch.export
# (see swat_mm.models.backbones.swat_swin._copied, and the padding and
# cropping in swat_mm.models.layers.StokenAttention).
@pytest.mark.parametrize('name', [
    pytest.param(n, marks=pytest.mark.xfail(
        strict=True, reason='onnxruntime < 1.24 LayerNormalization'))
    if OLD_ORT and n == 'SWATSwin' else n for n in BACKBONES])
def test_dynamo_onnx_export_reproduces_eager_at_every_size(name: str) -> None:
    """The dynamo exporter's model reproduces eager at every size (where
    the eager model refuses a size, onnxruntime must refuse it too)."""
    pytest.importorskip('onnxscript')
    spec(name)
    model, session = export_dynamo(name)
    refused = run_sizes(name, model, session)
    assert not refused, f'{name}: onnxruntime refuses {refused}'
