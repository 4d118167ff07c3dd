"""SpectralChannelMixing as a layer of its own: its high-pass coefficients
through forward hooks (the same in both formulations, equal to
pytorch_wavelets' own transform), and the (B, N, C) token form."""
import pytest
import torch
from pytorch_wavelets import DTCWTForward

from swat_mm.models.backbones.svt import SVT
from swat_mm.models.layers import (ORIENTATIONS, SpectralChannelMixing,
                                   collect_spectra, orientation_energy)
from swat_mm.models.layers.config import fast_layers
from tests.tiny_archs import SVT_TINY


def layer(fast: bool) -> SpectralChannelMixing:
    torch.manual_seed(0)
    with fast_layers(fast):
        return SpectralChannelMixing(8, (10, 8), num_blocks=2).eval()


@pytest.mark.parametrize('size', [(10, 8), (9, 7)])
def test_highpass_before_and_after_mixing_in_both_formulations(size):
    """``before`` is pytorch_wavelets' own level-1 high-pass of the input;
    ``after`` the official complex map of it (the reference formulation's
    einsums); the fast formulation reports the same values."""
    x = torch.randn(2, 8, *size)
    seen = {}
    for fast in (True, False):
        mix = layer(fast)
        with torch.no_grad(), collect_spectra(mix) as spectra:
            mix(x)
        assert len(spectra) == 1 and spectra[0]['name'] == ''
        seen[fast] = spectra[0]
    h, w = (size[0] + 1) // 2, (size[1] + 1) // 2
    for fast in (True, False):
        assert seen[fast]['before'].shape == (2, 8, 6, h, w, 2)
        assert seen[fast]['after'].shape == (2, 8, 6, h, w, 2)
    _, highs = DTCWTForward(J=1, biort='near_sym_b', qshift='qshift_b')(x)
    torch.testing.assert_close(seen[False]['before'], highs[0])
    for key in ('before', 'after'):
        torch.testing.assert_close(seen[True][key], seen[False][key],
                                   rtol=1e-5, atol=1e-6)
    # the mixing changes them (random complex maps of scale 0.02)
    assert not torch.allclose(seen[True]['before'], seen[True]['after'])
    energy = orientation_energy(seen[True]['before'])
    assert energy.shape == (2, len(ORIENTATIONS), h, w)
    torch.testing.assert_close(
        energy, (highs[0] ** 2).sum((1, 5)), rtol=1e-5, atol=1e-6)


def test_tap_costs_nothing_without_hooks_and_traces():
    mix = layer(True)
    x = torch.randn(1, 8, 10, 8)
    with torch.no_grad():
        ref = mix(x)
        with collect_spectra(mix) as spectra:
            torch.testing.assert_close(mix(x), ref, rtol=0, atol=0)
        traced = torch.jit.trace(mix, (x, ), check_trace=False)
        torch.testing.assert_close(traced(x), ref)
    assert len(spectra) == 1
    assert not mix.highpass_tap._forward_hooks  # removed on exit


@pytest.mark.parametrize('fast', [True, False])
def test_tokens_equal_the_map_form(fast):
    mix = layer(fast)
    x = torch.randn(2, 8, 9, 6)
    tokens = x.flatten(2).transpose(1, 2)  # (B, H*W, C), row by row
    with torch.no_grad():
        out = mix(tokens, (9, 6))
        torch.testing.assert_close(out, mix(x).flatten(2).transpose(1, 2),
                                   rtol=0, atol=0)
    with pytest.raises(ValueError, match='needs hw_shape'):
        mix(tokens)
    with pytest.raises(ValueError, match='54 tokens do not form a 6x6 map'):
        mix(tokens, (6, 6))


def test_collect_spectra_over_an_svt():
    model = SVT(arch=SVT_TINY, img_size=64, num_scatter_stages=2).eval()
    with torch.no_grad(), collect_spectra(model) as spectra:
        model(torch.randn(1, 3, 64, 64))
    # one scatter block in each of the first two stages (16 and 8 maps)
    assert [s['name'] for s in spectra] == ['block1.0.attn', 'block2.0.attn']
    assert [s['after'].shape for s in spectra] == [(1, 16, 6, 8, 8, 2),
                                                   (1, 24, 6, 4, 4, 2)]
