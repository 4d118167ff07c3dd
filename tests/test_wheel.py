"""The wheel carries configs/, tools/ and model-index.yml in swat_mm/.mim/,
and swat_mm installed from it (not editable, away from the checkout) finds
its models by name and its configs by ``swat_mm::`` path, and runs its
tools; an editable install links the same files (README "Models by
name")."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

from tests.golden.cases import load_fixture

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: what setup.py reads; the rest of the checkout (tests, docs) is not built
BUILD_INPUTS = ('setup.py', 'README.md', 'MANIFEST.in', 'model-index.yml',
                'swat_mm', 'configs', 'tools')
MIM = ('configs', 'tools', 'model-index.yml')
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim')


def _files(root: str, names=MIM):
    """Relative paths of the files under ``names`` in ``root``, without
    Python caches."""
    out = set()
    for name in names:
        path = osp.join(root, name)
        if osp.isfile(path):
            out.add(name)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            out |= {osp.relpath(osp.join(dirpath, f), root)
                    for f in filenames if not f.endswith('.pyc')}
    return out


def _run(args, cwd, env=None, timeout=300):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _clean_env(pythonpath=None):
    """The environment without this checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    if pythonpath:
        env['PYTHONPATH'] = pythonpath
    env['OMP_NUM_THREADS'] = '1'
    return env


def _copy_checkout(src):
    """Copy the checkout's build inputs to ``src`` (builds write build/ and
    .egg-info/ next to setup.py; an editable install its links)."""
    src.mkdir()
    for name in BUILD_INPUTS:
        path = osp.join(ROOT, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=IGNORE)
        else:
            shutil.copyfile(path, src / name)
    return src


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """(a copy of the checkout's build inputs, the wheel built from it with
    ``pip wheel --no-deps``)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = _copy_checkout(tmp / 'src')
    # no build isolation: the build uses this environment's setuptools
    # instead of downloading one
    _run([sys.executable, '-m', 'pip', 'wheel', str(src), '--no-deps',
          '--no-build-isolation', '-w', str(tmp / 'dist'), '-q'], cwd=tmp,
         env=_clean_env())
    wheels = glob.glob(str(tmp / 'dist' / 'swat_mm-*.whl'))
    assert len(wheels) == 1
    return src, wheels[0]


def test_wheel_carries_configs_tools_and_index(built):
    src, wheel = built
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        mim = {n[len('swat_mm/.mim/'):] for n in names
               if n.startswith('swat_mm/.mim/')}
        assert mim == _files(ROOT)
        for rel in mim:
            with open(osp.join(ROOT, rel), 'rb') as f:
                assert z.read('swat_mm/.mim/' + rel) == f.read(), rel
    assert 'swat_mm/__init__.py' in names
    assert not [n for n in names if '__pycache__' in n or 'tests/' in n]
    # the build wrote nothing into the source tree
    assert not osp.exists(src / 'swat_mm' / '.mim')


SCRIPT = '''
import contextlib, io, os.path as osp, re, runpy, sys
import torch
import mmpretrain
import swat_mm
from mmengine.config import Config
from mmengine.hub import get_config
from swat_mm.utils.model_index import mim_root

site, tmp = sys.argv[1], sys.argv[2]
assert swat_mm.__file__ == osp.join(site, 'swat_mm', '__init__.py'), \\
    swat_mm.__file__
assert mim_root() == osp.join(site, 'swat_mm', '.mim')
names = mmpretrain.list_models('*stvit*')
assert 'stvit-small_in1k' in names and len(names) == 8, names

# the converter the wheel carries, run from where the wheel put it
tool = osp.join(mim_root(), 'tools', 'model_converters',
                'stvit_to_mmpretrain.py')
sys.argv = [tool, osp.join(tmp, 'official.pth'),
            osp.join(tmp, 'converted.pth')]
try:
    runpy.run_path(tool, run_name='__main__')
except SystemExit as e:
    assert e.code in (0, None), e.code
model = mmpretrain.get_model('stvit-small_in1k',
                             pretrained=osp.join(tmp, 'converted.pth'))
assert model._config.filename.startswith(mim_root())
case = torch.load(osp.join(tmp, 'case.pth'), weights_only=True)
with torch.no_grad():
    logits = model(case['input'], mode='tensor')
assert torch.allclose(logits, case['logits'], rtol=1e-4, atol=1e-5)

# swat_mm:: configs: mmengine's hub and a user's config inheriting one
cfg = get_config('swat_mm::seg/stvit-small_upernet_ade20k.py')
assert cfg.filename == osp.join(mim_root(), 'configs', 'seg',
                                'stvit-small_upernet_ade20k.py')
cfg = Config.fromfile(osp.join(tmp, 'user.py'))
assert cfg.default_scope == 'mmpretrain' and '_scope_' not in cfg.model
model = mmpretrain.get_model(cfg)
assert type(model.backbone).__name__ == 'STViT'
assert model.head.fc.out_features == 10

# a shipped analysis tool from the wheel on a shipped config: the FLOPs
# its index entry states
from mmengine.fileio import load
entry = next(m for m in load(osp.join(mim_root(), 'configs', 'cls', 'swat',
                                      'metafile.yml'))['Models']
             if m['Name'] == 'swat-mixer-tiny_in1k')
sys.argv = ['get_flops.py', osp.join(mim_root(), entry['Config'])]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        runpy.run_path(osp.join(mim_root(), 'tools', 'analysis_tools',
                                'get_flops.py'), run_name='__main__')
    except SystemExit as e:
        assert e.code in (0, None), e.code
gflops = entry['Metadata']['FLOPs'] / 1e9
assert re.search(r'FLOPs \(G, multiply-adds\) \|\s+%.2f \|' % gflops,
                 out.getvalue()), out.getvalue()
print('INSTALLED-WHEEL-OK')
'''

USER_CONFIG = '''
_base_ = 'swat_mm::cls/stvit/stvit-small_8xb128_in1k.py'
model = dict(head=dict(num_classes=10))
'''


def test_installed_wheel_finds_models_configs_and_tools(built, tmp_path):
    """Installed with ``pip install --target`` (no editable link, no
    checkout on the path, run from elsewhere): list_models, the shipped
    converter from swat_mm/.mim/tools on official weights, get_model by
    name with the official logits, mmengine.hub.get_config, a config
    inheriting ``swat_mm::``, and get_flops.py from swat_mm/.mim/tools."""
    _, wheel = built
    site = tmp_path / 'site'
    _run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--target',
          str(site), wheel, '-q'], cwd=tmp_path, env=_clean_env())
    fixture = load_fixture('stvit_small')
    torch.save({'model': fixture['state_dict']}, tmp_path / 'official.pth')
    torch.save({'input': fixture['input'], 'logits': fixture['logits']},
               tmp_path / 'case.pth')
    (tmp_path / 'user.py').write_text(USER_CONFIG)
    (tmp_path / 'check.py').write_text(textwrap.dedent(SCRIPT))
    work = tmp_path / 'elsewhere'
    work.mkdir()
    out = _run([sys.executable, str(tmp_path / 'check.py'), str(site),
                str(tmp_path)], cwd=work, env=_clean_env(str(site)))
    assert 'INSTALLED-WHEEL-OK' in out


EDITABLE_SCRIPT = '''
import os.path as osp, sys
import mmpretrain
import swat_mm
from mmengine.config import Config
from swat_mm.utils.model_index import mim_root

src, tmp = sys.argv[1], sys.argv[2]
assert swat_mm.__file__ == osp.join(src, 'swat_mm', '__init__.py')
assert mim_root() == osp.join(src, 'swat_mm', '.mim')
assert 'swat-deit-small_in1k' in mmpretrain.list_models('swat*')
cfg = Config.fromfile(osp.join(tmp, 'user.py'))
assert cfg.model.head.num_classes == 10
print('EDITABLE-OK')
'''


def test_editable_install_links_the_same_files(tmp_path):
    """``pip install -e`` into a new environment (which sees this one's
    packages): swat_mm/.mim in the source holds links to configs/, tools/
    and model-index.yml, and models and ``swat_mm::`` configs are found
    through them."""
    src = _copy_checkout(tmp_path / 'src')
    venv = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)],
         cwd=tmp_path)
    python = str(venv / 'bin' / 'python')
    site = _run([python, '-c', 'import site; print(site.getsitepackages()'
                 '[0])'], cwd=tmp_path).strip()
    here = [p for p in sys.path if p.endswith('site-packages')]
    with open(osp.join(site, 'stack.pth'), 'w') as f:
        f.write('\n'.join(here) + '\n')
    _run([sys.executable, '-m', 'pip', '--python', python, 'install',
          '--no-deps', '--no-build-isolation', '-e', str(src), '-q'],
         cwd=tmp_path, env=_clean_env())
    for name in MIM:
        link = src / 'swat_mm' / '.mim' / name
        assert osp.islink(link)
        assert osp.samefile(link, src / name)
    (tmp_path / 'user.py').write_text(USER_CONFIG)
    (tmp_path / 'check.py').write_text(textwrap.dedent(EDITABLE_SCRIPT))
    work = tmp_path / 'elsewhere'
    work.mkdir()
    out = _run([python, str(tmp_path / 'check.py'), str(src),
                str(tmp_path)], cwd=work, env=_clean_env())
    assert 'EDITABLE-OK' in out
