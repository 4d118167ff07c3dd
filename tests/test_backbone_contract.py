"""The contract every backbone in the swat_mm registry keeps.

The backbones are found by iterating ``swat_mm.registry.MODELS`` (every
class registered from ``swat_mm.models.backbones``), so a new backbone is
tested as soon as it is registered; it needs its tiny arch in
``tests/tiny_archs.py`` (``FAMILY_CASES``) and its map geometry
(``FAMILY_GEOMETRY``), or these tests fail naming it.

Per backbone: it builds through the registry; it returns a tuple of NCHW
maps with the documented channels and strides for every single
``out_indices`` entry and for all of them together (at odd input sizes where
the family takes any size); every parameter gets a gradient; a strict
state-dict round trip into a fresh instance gives identical outputs; in
eval mode an image's output does not depend on the rest of its batch; bad
drop rates and ``out_indices`` raise a ValueError naming the argument, the
value and the fix.
"""
import inspect
import io
import math
import re
from typing import Any, Dict, List, Tuple

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModule

import swat_mm.models  # noqa: F401  (registers the backbones)
from swat_mm.registry import MODELS
from tests.tiny_archs import FAMILY_CASES, FAMILY_GEOMETRY

BACKBONE_PACKAGE = 'swat_mm.models.backbones'
KNOWN = {'STViT', 'SVT', 'SWATViT', 'SWATMixer', 'SWATResMLP', 'SWATSwin'}


def registered_backbones() -> List[str]:
    """Names of the classes in the swat_mm MODELS registry that come from
    the backbones package."""
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if cls.__module__.startswith(BACKBONE_PACKAGE + '.'))


BACKBONES = registered_backbones()
# backbone class name -> FAMILY_CASES key
FAMILY_OF = {cls_name: key for key, (cls_name, _, _) in FAMILY_CASES.items()}


def spec(name: str) -> Tuple[dict, dict]:
    """The tiny constructor kwargs and the geometry of backbone ``name``;
    fails the test where ``tests/tiny_archs.py`` lacks either."""
    family = FAMILY_OF.get(name)
    if family is None or family not in FAMILY_GEOMETRY:
        pytest.fail(f'backbone {name} is registered in swat_mm but has no '
                    'tiny arch: add it to FAMILY_CASES and FAMILY_GEOMETRY '
                    'in tests/tiny_archs.py')
    return FAMILY_CASES[family][1], FAMILY_GEOMETRY[family]


def build(name: str, **overrides: Any) -> nn.Module:
    """Backbone ``name`` at its tiny size through the swat_mm registry."""
    kwargs, geometry = spec(name)
    cfg = dict(kwargs, **geometry['extra'])
    cfg.update(overrides)
    return MODELS.build(dict(type=f'swat_mm.{name}', **cfg))


def num_outputs(name: str) -> int:
    """Stages (or blocks, for the single-stage families) of the tiny arch."""
    return len(spec(name)[1]['channels'])


def all_indices(name: str) -> Tuple[int, ...]:
    return tuple(range(num_outputs(name)))


def image(name: str, batch: int, seed: int = 0) -> torch.Tensor:
    """A (batch, 3, H, W) input at the family's contract size."""
    H, W = spec(name)[1]['size']
    return torch.randn(batch, 3, H, W,
                       generator=torch.Generator().manual_seed(seed))


def expected_shape(name: str, i: int, batch: int) -> Tuple[int, ...]:
    geometry = spec(name)[1]
    H, W = geometry['size']
    stride = geometry['strides'][i]
    return (batch, geometry['channels'][i], math.ceil(H / stride),
            math.ceil(W / stride))


def test_registry_iteration_finds_the_backbones() -> None:
    """The registry walk finds (at least) the six known backbones and
    nothing that is not a backbone module."""
    assert KNOWN <= set(BACKBONES)
    for name in BACKBONES:
        assert issubclass(MODELS.get(name), BaseModule)
    assert 'SVTClsHead' not in BACKBONES
    assert 'STViTClsNeck' not in BACKBONES


def test_every_registered_backbone_has_a_tiny_arch() -> None:
    missing = [n for n in BACKBONES
               if FAMILY_OF.get(n) not in FAMILY_GEOMETRY]
    assert not missing, (
        f'registered backbones without a tiny arch: {missing}; add them to '
        'FAMILY_CASES and FAMILY_GEOMETRY in tests/tiny_archs.py')


@pytest.mark.parametrize('name', BACKBONES)
def test_builds_through_the_registry(name: str) -> None:
    model = build(name)
    assert type(model) is MODELS.get(name)
    # the default is the last stage (block), as classification needs
    assert model.out_indices == (num_outputs(name) - 1, )
    params = inspect.signature(type(model).__init__).parameters
    assert {'out_indices', 'drop_path_rate', 'frozen_stages', 'norm_eval',
            'with_cp', 'init_cfg'} <= set(params)


@pytest.mark.parametrize('name', BACKBONES)
def test_maps_for_each_index_and_all_together(name: str) -> None:
    """All indices together give one NCHW map per stage with the documented
    channels and strides; a single index gives exactly that stage's map."""
    torch.manual_seed(0)
    full = build(name, out_indices=all_indices(name)).eval()
    x = image(name, 2)
    with torch.no_grad():
        outs = full(x)
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [
        expected_shape(name, i, 2) for i in all_indices(name)]
    for out in outs:
        assert torch.isfinite(out).all()
    n = num_outputs(name)
    # each index alone, and the last once more as the int -1
    for i, given in [(i, (i, )) for i in range(n)] + [(n - 1, -1)]:
        single = build(name, out_indices=given).eval()
        assert single.out_indices == (i, )
        # a single-index model may lack the other stages' output norms
        missing, _ = single.load_state_dict(full.state_dict(), strict=False)
        assert not missing
        with torch.no_grad():
            out = single(x)
        assert isinstance(out, tuple) and len(out) == 1
        assert out[0].shape == expected_shape(name, i, 2)
        torch.testing.assert_close(out[0], outs[i], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('name', BACKBONES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = build(name, out_indices=all_indices(name), drop_path_rate=0.)
    model.init_weights()
    model.train()
    outs = model(image(name, 2))
    # random weights: a plain sum of LayerNorm-ed maps has zero gradient
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    loss.backward()
    params = dict(model.named_parameters())
    assert params and all(p.requires_grad for p in params.values())
    no_grad = [n for n, p in params.items()
               if p.grad is None or not torch.isfinite(p.grad).all()
               or not p.grad.abs().sum() > 0]
    assert not no_grad


@pytest.mark.parametrize('name', BACKBONES)
def test_strict_state_dict_round_trip(name: str) -> None:
    torch.manual_seed(0)
    source = build(name, out_indices=all_indices(name))
    source.init_weights()
    source.eval()
    torch.manual_seed(1)
    fresh = build(name, out_indices=all_indices(name)).eval()
    x = image(name, 2)
    with torch.no_grad():
        expected = source(x)
        before = fresh(x)
    # another seed gives another model: the round trip below is no no-op
    assert not all(torch.equal(a, b) for a, b in zip(before, expected))
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    result = fresh.load_state_dict(
        torch.load(buffer, weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        got = fresh(x)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


@pytest.mark.parametrize('name', BACKBONES)
def test_images_of_a_batch_do_not_interact(name: str) -> None:
    torch.manual_seed(0)
    model = build(name, out_indices=all_indices(name))
    model.init_weights()
    model.eval()
    x = image(name, 3)
    with torch.no_grad():
        batched = model(x)
        alone = model(x[1:2])
    for a, b in zip(batched, alone):
        # at the output's scale: batch 3 and batch 1 may take other GEMM
        # blockings (SWATSwin: 2e-5 apart at a scale of 3.7 on an AMD
        # EPYC's oneDNN); an interaction would be of the order of the
        # outputs. SWATSwin at this size pads every stage's map to its
        # windows and shifts them: masks and padding must broadcast per
        # image.
        torch.testing.assert_close(a[1:2], b, rtol=1e-4,
                                   atol=1e-4 * b.abs().max().item())


def rate_arguments(name: str) -> List[str]:
    """The probability arguments of backbone ``name``'s constructor."""
    params = inspect.signature(MODELS.get(name).__init__).parameters
    return [p for p in params if p.endswith('drop_rate')
            or p == 'drop_path_rate']


def bad_options(name: str) -> List[Tuple[Dict[str, Any], str]]:
    """(kwargs, message regex) pairs that must raise ValueError."""
    cases = []
    for arg in rate_arguments(name):
        values = (-0.1, 1.0, 1.5) if arg == 'drop_path_rate' else (-0.1, 1.)
        for value in values:
            cases.append(({arg: value}, (
                rf'{arg} must be a number in \[0, 1\), got '
                rf'{re.escape(repr(value))}.*use {arg}=0')))
    n = num_outputs(name)
    last = n - 1
    cases += [
        (dict(out_indices=(last, last)), (
            rf'out_indices \({last}, {last}\) must be unique and '
            rf'increasing.*use out_indices=\({last},\)')),
        (dict(out_indices=(last, 0)), (
            rf'out_indices \({last}, 0\) must be unique and '
            rf'increasing.*use out_indices=\(0, {last}\)')),
        (dict(out_indices=(-1, 0)), (
            rf'out_indices \(-1, 0\) \(that is \({last}, 0\) of {n} .*\) '
            rf'must be unique and increasing.*out_indices=\(0, {last}\)')),
        (dict(out_indices=(n, )),
         rf'out_indices \({n},\): {n} is out of range for {n} .*use '
         rf'0..{last}'),
        (dict(out_indices=(-n - 1, )),
         rf'out_indices \({-n - 1},\): {-n - 1} is out of range for {n} '),
        (dict(out_indices=(0, n)),
         rf'out_indices \(0, {n}\): {n} is out of range'),
        (dict(out_indices=()), r'out_indices is empty'),
        (dict(out_indices=(0.5, )), r'0\.5 is not an int'),
    ]
    return cases


def bad_option_params() -> List[Any]:
    """One test per backbone and bad option (one failing test for a
    backbone without a tiny arch)."""
    params = []
    for name in BACKBONES:
        if FAMILY_OF.get(name) not in FAMILY_GEOMETRY:
            params.append(pytest.param(name, None, None,
                                       id=f'{name}-no-tiny-arch'))
            continue
        for kwargs, match in bad_options(name):
            (arg, value), = kwargs.items()
            params.append(pytest.param(name, kwargs, match,
                                       id=f'{name}-{arg}={value!r}'))
    return params


@pytest.mark.parametrize('name, kwargs, match', bad_option_params())
def test_bad_options_raise_naming_argument_value_and_fix(
        name: str, kwargs: Dict[str, Any], match: str) -> None:
    spec(name)
    with pytest.raises(ValueError, match=match):
        build(name, **kwargs)


@pytest.mark.parametrize('name', BACKBONES)
def test_rate_bounds_are_accepted(name: str) -> None:
    """Every backbone has a ``drop_path_rate``; 0 and rates just below 1
    build."""
    assert 'drop_path_rate' in rate_arguments(name)
    for arg in rate_arguments(name):
        build(name, **{arg: 0.})
        build(name, **{arg: 0.9})
