"""StokenAttention as a layer of its own: its association maps through
forward hooks, and the (B, N, C) token form."""
import pytest
import torch

from swat_mm.models.backbones.stvit import STViT
from swat_mm.models.layers import (StokenAttention, affinity_map,
                                   collect_affinities)
from swat_mm.models.layers.config import fast_layers
from tests.tiny_archs import STVIT_TINY


def layer(fast: bool = True, n_iter: int = 2) -> StokenAttention:
    torch.manual_seed(0)
    with fast_layers(fast):
        return StokenAttention(16, (4, 3), n_iter=n_iter, num_heads=2).eval()


def test_association_map_per_round_sums_to_one_and_rebuilds_super_tokens():
    """One (B, 9, H, W) map per round over the padded map, summing to 1 over
    the nine neighbours; the last round's map, with the layer's own
    formula, rebuilds exactly the super tokens the layer refines."""
    attn = layer()
    x = torch.randn(2, 16, 17, 13)  # padded to 20 x 15: a 5 x 5 grid
    refined_in = []
    attn.stoken_refine.register_forward_hook(
        lambda m, inputs, out: refined_in.append(inputs[0]))
    with torch.no_grad(), collect_affinities(attn) as maps:
        attn(x)
    assert len(maps) == 2  # n_iter rounds
    for m in maps:
        assert m['map'].shape == (2, 9, 20, 15)
        assert m['grid'] == (5, 5) and m['stoken_size'] == (4, 3)
        torch.testing.assert_close(m['map'].sum(1), torch.ones(2, 20, 15))
    # rebuild: each super token is the affinity-weighted mean of the pixels
    # that see it; pixel (y, x) of cell (i, j) sees token (i + a - 1,
    # j + b - 1) with weight map[:, 3a + b, y, x]
    a = maps[-1]['map']
    padded = torch.nn.functional.pad(x, (0, 2, 0, 3))
    num = torch.zeros(2, 16, 7, 7)
    den = torch.zeros(2, 1, 7, 7)
    for k in range(9):
        di, dj = divmod(k, 3)
        w = a[:, k:k + 1]
        cell = lambda t: t.reshape(2, -1, 5, 4, 5, 3).sum((3, 5))  # noqa
        num[:, :, di:di + 5, dj:dj + 5] += cell(w * padded)
        den[:, :, di:di + 5, dj:dj + 5] += cell(w)
    rebuilt = (num / (den + 1e-12))[:, :, 1:6, 1:6]
    torch.testing.assert_close(rebuilt, refined_in[0], rtol=1e-5,
                               atol=1e-6)


def test_association_maps_are_the_same_in_both_formulations_and_traced():
    x = torch.randn(1, 16, 12, 12)
    results = []
    for fast in (True, False):
        attn = layer(fast)
        with torch.no_grad(), collect_affinities(attn) as maps:
            attn(x)
        results.append(maps[-1]['map'])
    torch.testing.assert_close(results[0], results[1], rtol=1e-5,
                               atol=1e-6)
    attn = layer()
    with torch.no_grad():
        traced = torch.jit.trace(attn, (x, ), check_trace=False)
        with collect_affinities(attn) as maps:
            attn(x)
        torch.testing.assert_close(traced(x), attn(x))
    assert len(maps) == 2  # hooks cost nothing when absent, work when set


def test_collect_affinities_over_a_backbone_and_hooks_removed():
    model = STViT(arch=STVIT_TINY, stoken_size=(4, 2, 1, 1)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), collect_affinities(model) as maps:
        model(x)
    # stages with super tokens larger than one pixel: the first two
    names = {m['name'].split('.blocks')[0] for m in maps}
    assert names == {'layers.0', 'layers.1'}
    assert {m['map'].shape[-2:] for m in maps} == {(16, 16), (8, 8)}
    with torch.no_grad():
        model(x)
    assert all(not layer.affinity_tap._forward_hooks
               for layer in model.modules()
               if isinstance(layer, StokenAttention))


def test_affinity_map_layout():
    aff = torch.arange(4 * 9 * 6.).reshape(1, 4, 9, 6)  # grid 2x2, 2x3
    m = affinity_map(aff, (2, 2), (2, 3))
    assert m.shape == (1, 9, 4, 6)
    # pixel (3, 4): cell (1, 1) = index 3, pixel (1, 1) in it = index 4
    assert torch.equal(m[0, :, 3, 4], aff[0, 3, :, 4])


def test_token_form_equals_map_form():
    attn = layer()
    x = torch.randn(2, 16, 11, 9, requires_grad=True)
    tokens = x.detach().flatten(2).transpose(1, 2).requires_grad_()
    out_map = attn(x)
    out_tokens = attn(tokens, (11, 9))
    torch.testing.assert_close(out_tokens,
                               out_map.flatten(2).transpose(1, 2))
    with pytest.raises(ValueError, match='hw_shape'):
        attn(tokens)
    with pytest.raises(ValueError, match='do not form a 10x9 map'):
        attn(tokens, (10, 9))
