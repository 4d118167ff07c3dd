"""The opt-out for trusted checkpoints, and the schemes the safe loader
leaves to mmengine.

A checkpoint that pickles code is refused by default, through mmengine's
loading path, with an error naming ``SWAT_MM_TRUST_CHECKPOINTS=1``; with
that variable set the same file loads (and its code runs: that is what
trusting it means). Only mmengine's local-path loader is replaced: URLs,
``open-mmlab://``, ``torchvision://`` and ``s3://`` still dispatch to
mmengine's own loader functions (checked by dispatch, without network).
"""
import os.path as osp
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.runner import CheckpointLoader, load_checkpoint
from mmengine.runner import checkpoint as mm_checkpoint

import swat_mm  # noqa: F401  (installs the safe loader)
from swat_mm.utils import TRUST_ENV, UnsafeCheckpointError, safe_load


def _touch(path: str) -> str:
    Path(path).touch()
    return path


class Marker:
    """Unpickling calls ``_touch(marker)``: code that runs on load."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker, )


@pytest.fixture
def code_checkpoint(tmp_path):
    """A model checkpoint whose meta pickles a call of this module's
    ``_touch``, and the marker file that call creates."""
    marker = tmp_path / 'code_ran'
    model = nn.Linear(3, 2)
    torch.manual_seed(0)
    nn.init.normal_(model.weight)
    path = tmp_path / 'with_code.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'note': Marker(marker)}}, path)
    return path, marker, model.state_dict()


def test_code_checkpoint_is_refused_by_default_naming_the_opt_out(
        code_checkpoint, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker, _ = code_checkpoint
    name = f'{__name__}._touch'
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert name in str(err.value)
    assert f'{TRUST_ENV}=1' in str(err.value)
    # 0 is the default spelled out
    monkeypatch.setenv(TRUST_ENV, '0')
    with pytest.raises(UnsafeCheckpointError, match=f'{TRUST_ENV}=1'):
        load_checkpoint(nn.Linear(3, 2), str(path), map_location='cpu')
    assert not marker.exists()


def test_code_checkpoint_loads_with_the_opt_out(code_checkpoint,
                                                monkeypatch):
    path, marker, state = code_checkpoint
    monkeypatch.setenv(TRUST_ENV, '1')
    model = nn.Linear(3, 2)
    ckpt = load_checkpoint(model, str(path), map_location='cpu',
                           strict=True)
    assert torch.equal(model.weight, state['weight'])
    assert torch.equal(model.bias, state['bias'])
    assert ckpt['meta']['note'] == str(marker)  # _touch's return value
    assert marker.exists()


def test_opt_out_keeps_the_plain_path_for_safe_files(tmp_path, monkeypatch):
    """Trusting does not change what a safe file loads as."""
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': {'w': torch.arange(3.)}}, path)
    monkeypatch.setenv(TRUST_ENV, '1')
    assert torch.equal(safe_load(str(path))['state_dict']['w'],
                       torch.arange(3.))


@pytest.mark.parametrize('value', ['yes', 'true', '2'])
def test_unknown_opt_out_value_is_an_error(tmp_path, monkeypatch, value):
    path = tmp_path / 'plain.pth'
    torch.save({'w': torch.ones(1)}, path)
    monkeypatch.setenv(TRUST_ENV, value)
    with pytest.raises(ValueError, match=f'{TRUST_ENV}={value!r}.*=1'):
        safe_load(str(path))


@pytest.mark.parametrize('path, loader', [
    ('open-mmlab://resnet50_v1c', 'load_from_openmmlab'),
    ('openmmlab://resnet50_v1c', 'load_from_openmmlab'),
    ('torchvision://resnet50', 'load_from_torchvision'),
    ('https://download.openmmlab.com/x/model.pth', 'load_from_http'),
    ('http://example.com/model.pth', 'load_from_http'),
    ('s3://bucket/model.pth', 'load_from_ceph'),
    ('mmcls://resnet50', 'load_from_mmcls'),
])
def test_other_schemes_keep_mmengines_loaders(path, loader):
    assert CheckpointLoader._get_checkpoint_loader(path) is \
        getattr(mm_checkpoint, loader)


def test_local_paths_go_through_the_safe_loader(tmp_path):
    local = CheckpointLoader._get_checkpoint_loader(
        osp.join(str(tmp_path), 'x.pth'))
    assert local is not mm_checkpoint.load_from_local
    assert local.__module__ == 'swat_mm.utils.checkpoint'
