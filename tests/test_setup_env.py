"""The first-run path of ``tools/setup_env.sh``, in a brand-new environment.

CI machines and developers reuse a built environment, so the path a newcomer
takes (a new venv, torch installed into it, mmcv's build preconditions, the
stack) would otherwise never run. Here a new virtual environment is made in a
temporary folder with the machine's ``python3``, reusing nothing but the mmcv
wheel the suite's own setup built (the compile takes 20 minutes) and pip's
download cache. The tests run in order, on one environment:

1. a failing mmcv build (a broken compiler), after torch is installed: the
   build's preconditions hold (``pkg_resources`` importable after torch's own
   ``setuptools>=77`` requirement) and nothing is left in the wheel cache;
2. a run killed in the middle of the compile leaves no wheel, and its
   half-built folder is gone at the next run;
3. a failing pip step leaves no stamp that would make the next run skip it;
4. the full setup, then ``import swat_mm`` and a backbone's forward pass;
5. a stale stamp of the editable install redoes that step alone;
6. a second run installs nothing, all checked in one interpreter, also
   with the venv's python named by a relative ``SWAT_MM_PYTHON``.

Several minutes (torch alone is several GB to install); the suite's longest
module.
"""
import glob
import os
import re
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SETUP = osp.join(REPO, 'tools', 'setup_env.sh')
MAIN_CACHE = os.environ.get('SWAT_MM_CACHE', osp.expanduser('~/.cache/swat_mm'))
MMCV = '2.1.0'
PYTAG = None  # the fresh interpreter's tag, set by the fixture


def _machine_python3() -> str:
    """The first python3 on PATH that is not this suite's venv's."""
    venv_bin = osp.dirname(sys.executable)
    dirs = [d for d in os.environ['PATH'].split(os.pathsep)
            if osp.realpath(d) != osp.realpath(venv_bin)]
    found = shutil.which('python3', path=os.pathsep.join(dirs))
    if found is None:
        pytest.skip('no python3 on PATH besides the suite\'s own venv')
    return found


@pytest.fixture(scope='module')
def fresh(tmp_path_factory):
    """A new, empty cache and venv location, and the pieces it may reuse."""
    base_py = _machine_python3()
    tag, pyv = subprocess.run(
        [base_py, '-c', 'import sys; v = sys.version_info[:2]; '
         'print("cp%d%d" % v, "%d.%d" % v)'],
        capture_output=True, text=True, check=True).stdout.split()
    torch_tag = torch.__version__.replace('+', '_')
    ops = 'cuda' if torch.cuda.is_available() else 'cpu'
    wheel_dir = f'torch{torch_tag}-{ops}'
    cached = glob.glob(osp.join(MAIN_CACHE, 'wheels', wheel_dir,
                                f'mmcv-{MMCV}-{tag}-*.whl'))
    if not cached:
        pytest.skip(f'no cached mmcv wheel for {tag} + torch {torch_tag} in '
                    f'{MAIN_CACHE}/wheels (the suite\'s setup builds one for '
                    'its own interpreter); a fresh build would take 20 min')
    root = tmp_path_factory.mktemp('fresh_setup')
    env = dict(os.environ)
    # The machine's python3 first on PATH, as on a fresh machine.
    env['PATH'] = os.pathsep.join(
        [osp.dirname(base_py)] + [d for d in env['PATH'].split(os.pathsep)
                                  if osp.realpath(d) != osp.realpath(osp.dirname(sys.executable))])
    for k in ('SWAT_MM_PYTHON', 'VIRTUAL_ENV', 'PYTHONPATH', 'SWAT_MM_UNTESTED_PYTHON'):
        env.pop(k, None)
    env.update(SWAT_MM_CACHE=str(root / 'cache'), SWAT_MM_VENV=str(root / 'venv'))
    main_torch = torch.__version__.split('+')[0]
    if main_torch == _default_torch(pyv):
        env['SWAT_MM_TORCH'] = main_torch
    else:
        # The suite's env runs an older pair (a machine whose pip config caps
        # torch, as this workplace's do): the fresh venv gets there the way
        # a newcomer on such a machine does, through a global pip config
        # that refuses the default pair (read by pip even with --isolated).
        xdg = root / 'xdg'
        (xdg / 'pip').mkdir(parents=True)
        cap = root / 'torch-cap.txt'
        cap.write_text(f'torch<{_default_torch(pyv)}\n')
        (xdg / 'pip' / 'pip.conf').write_text(f'[global]\nconstraint = {cap}\n')
        env['XDG_CONFIG_DIRS'] = os.pathsep.join(
            [str(xdg), env.get('XDG_CONFIG_DIRS') or '/etc/xdg'])
    yield dict(root=root, env=env, cache=root / 'cache', venv=root / 'venv',
               wheel_src=cached[0], wheel_dir=root / 'cache' / 'wheels' / wheel_dir,
               py=str(root / 'venv' / 'bin' / 'python'), pyv=pyv)
    shutil.rmtree(root, ignore_errors=True)  # several GB


def _default_torch(pyv: str) -> str:
    """The first pair of setup_env.sh's TORCH_ORDER with wheels for Python
    pyv (TORCH_PYTHONS): what setup_env.sh installs in a new venv of that
    Python (torch 2.15 has none for 3.10)."""
    order, pythons = None, None
    with open(SETUP) as f:
        for line in f:
            if line.startswith('TORCH_ORDER=('):
                order = line.split('(')[1].split(')')[0].split()
            elif line.startswith('declare -A TORCH_PYTHONS='):
                pythons = dict(re.findall(r'\[([0-9.]+)\]="([^"]*)"', line))
    assert order and pythons, 'TORCH_ORDER/TORCH_PYTHONS not found in ' + SETUP
    for t in order:
        if pyv in pythons[t].split():
            return t
    raise AssertionError(f'no pair in {SETUP} for Python {pyv}')


def _run(fresh, timeout=3600, **extra) -> subprocess.CompletedProcess:
    env = dict(fresh['env'], **extra)
    return subprocess.run(['bash', SETUP], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _wheels(fresh):
    """Every file under the wheel cache, hidden ones (partial copies) included."""
    return sorted(osp.join(d, f) for d, _, files in os.walk(fresh['cache'] / 'wheels')
                  for f in files)


def _stamp(fresh):
    return fresh['venv'] / '.swat_mm_requirements'


def test_failed_build_leaves_no_wheel_and_preconditions_hold(fresh):
    # A broken compiler: the build starts (all preconditions met) and fails.
    res = _run(fresh, CXX='false', CC='false')
    assert res.returncode == 1, res.stderr[-3000:]
    assert 'building mmcv failed' in res.stderr, res.stderr[-3000:]
    assert 'pkg_resources is not importable' not in res.stderr
    assert 'creating the virtual environment' in res.stderr
    if 'SWAT_MM_TORCH' not in fresh['env']:
        # the capped default pair gives way to the suite's own
        assert f"refuses torch=={_default_torch(fresh['pyv'])}" in res.stderr, res.stderr[-3000:]
        assert f"installing torch=={torch.__version__.split('+')[0]}" in res.stderr
    # The regression this guards: torch's setuptools>=77 must not have moved
    # setuptools past pkg_resources in a new venv (Python <= 3.11 venvs start
    # with setuptools 65, which has it).
    subprocess.run([fresh['py'], '-c', 'import pkg_resources, torch'], check=True)
    assert _wheels(fresh) == []
    assert not glob.glob(str(fresh['cache'] / 'mmcv-build.*'))
    log = fresh['cache'] / 'mmcv-build-failed.log'
    assert str(log) in res.stderr and log.is_file()
    assert not _stamp(fresh).exists()


def test_killed_build_leaves_no_wheel(fresh):
    proc = subprocess.Popen(['bash', SETUP], env=fresh['env'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # Kill it once the compiler has started (the unpacked sdist is there).
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if glob.glob(str(fresh['cache'] / 'mmcv-build.*' / f'mmcv-{MMCV}' / 'build')):
                break
            time.sleep(1)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert glob.glob(str(fresh['cache'] / 'mmcv-build.*')), 'expected a half-built folder'
    assert _wheels(fresh) == []


def test_failed_pip_step_leaves_no_stamp(fresh):
    # From here on the compiled wheel is reused, as the suite's setup built it.
    fresh['wheel_dir'].mkdir(parents=True, exist_ok=True)
    shutil.copy(fresh['wheel_src'], fresh['wheel_dir'])
    # A constraint no release meets: mmcv's own step passes, the stack's fails.
    bad = fresh['root'] / 'impossible.txt'
    bad.write_text('mmdet==0.0.1\n')
    res = _run(fresh, PIP_CONSTRAINT=str(bad))
    assert res.returncode == 1, res.stderr[-3000:]
    assert 'pip could not install the OpenMMLab stack' in res.stderr, res.stderr[-3000:]
    assert 'installing mmcv from the cached wheel' in res.stderr
    assert not glob.glob(str(fresh['cache'] / 'mmcv-build.*')), 'the killed build was not cleaned'
    assert not _stamp(fresh).exists()


def test_fresh_setup_runs_a_backbone(fresh):
    res = _run(fresh)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == fresh['py']
    assert 'installing mmengine==0.10.7' in res.stderr  # the stack step ran again
    assert 'what was done' in res.stderr and 'OpenMMLab stack' in res.stderr
    assert _stamp(fresh).is_file()
    # The same weights and input in both environments give the same maps.
    from swat_mm.models.backbones import STViT
    torch.manual_seed(0)
    ref_model = STViT(arch='small', out_indices=(0, 1, 2, 3)).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref = ref_model(x)
    blob = fresh['root'] / 'stvit_s.pth'
    torch.save(dict(state=ref_model.state_dict(), x=x), blob)
    code = ('import torch, swat_mm; from swat_mm.models.backbones import STViT\n'
            f'd = torch.load({str(blob)!r}, weights_only=True)\n'
            'm = STViT(arch="small", out_indices=(0, 1, 2, 3)).eval()\n'
            'm.load_state_dict(d["state"])\n'
            'with torch.no_grad(): outs = m(d["x"])\n'
            f'torch.save([o.contiguous() for o in outs], {str(fresh["root"] / "outs.pth")!r})\n'
            'print(sum(p.numel() for p in m.parameters()))\n')
    out = subprocess.run([fresh['py'], '-c', code], capture_output=True, text=True,
                         env=dict(fresh['env'], OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) == 23_943_264  # STViT-S backbone (24.5M with its head)
    outs = torch.load(fresh['root'] / 'outs.pth', weights_only=True)
    assert [tuple(o.shape) for o in outs] == [
        (1, 64, 24, 32), (1, 128, 12, 16), (1, 320, 6, 8), (1, 512, 3, 4)]
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)


def _report(fresh, res) -> list:
    assert res.returncode == 0, res.stderr[-3000:]
    lines = (fresh['root'] / 'report.txt').read_text().splitlines()
    assert [ln.split()[0] for ln in lines[:-1]] == [
        'virtual', 'torch', 'mmcv', 'OpenMMLab', 'swat_mm']
    return lines


def test_a_stale_editable_install_is_redone_alone(fresh):
    # as after a change of setup.py or a move of the checkout
    stamp = fresh['venv'] / '.swat_mm_editable'
    good = stamp.read_text()
    stamp.write_text('stale\n')
    res = _run(fresh, SWAT_MM_SETUP_REPORT=str(fresh['root'] / 'report.txt'))
    lines = _report(fresh, res)
    assert all('kept' in ln and 'one check' not in ln for ln in lines[1:4])
    assert 'installed' in lines[4]
    assert stamp.read_text() == good


def test_second_run_installs_nothing(fresh):
    res = _run(fresh, SWAT_MM_SETUP_REPORT=str(fresh['root'] / 'report.txt'))
    lines = _report(fresh, res)
    # one interpreter checked steps 2-4 together
    assert 'one check' in lines[1]
    assert all('kept' in ln for ln in lines[1:5])
    assert 'installing' not in res.stderr


def test_own_interpreter_by_a_relative_path(fresh):
    # SWAT_MM_PYTHON relative to the working directory: the one check (run
    # from /) still finds it
    rel = osp.relpath(fresh['py'], fresh['root'])
    res = subprocess.run(['bash', SETUP], cwd=fresh['root'], capture_output=True,
                         text=True, timeout=600,
                         env=dict(fresh['env'], SWAT_MM_PYTHON=rel,
                                  SWAT_MM_SETUP_REPORT=str(fresh['root'] / 'report.txt')))
    assert res.returncode == 0, res.stderr[-3000:]
    lines = (fresh['root'] / 'report.txt').read_text().splitlines()
    assert lines[0].split()[0] == 'interpreter' and 'one check' in lines[1]
    assert osp.samefile(res.stdout.strip().splitlines()[-1], fresh['py'])


@pytest.mark.parametrize('version', ['3.9', '3.8'])
def test_python_that_cannot_work_stops_at_once(tmp_path, version):
    """torch 2.13 has no wheels below Python 3.10: refused before anything is made."""
    found = sorted(glob.glob(osp.expanduser(f'~/.pyenv/versions/{version}.*/bin/python3')))
    if not found:
        pytest.skip(f'no Python {version} on this machine')
    env = dict(os.environ, PATH=os.pathsep.join([osp.dirname(found[-1]), os.environ['PATH']]),
               SWAT_MM_CACHE=str(tmp_path / 'cache'), SWAT_MM_VENV=str(tmp_path / 'venv'))
    env.pop('SWAT_MM_PYTHON', None)
    t0 = time.time()
    res = subprocess.run(['bash', SETUP], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert f'Python {version}' in res.stderr and 'cannot work' in res.stderr, res.stderr
    assert 'wheels for Python 3.10-3.14 only' in res.stderr
    assert not (tmp_path / 'venv').exists()
    assert time.time() - t0 < 30
    # The same for an interpreter named by SWAT_MM_PYTHON.
    res = subprocess.run(['bash', SETUP], env=dict(env, SWAT_MM_PYTHON=found[-1]),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and 'cannot work' in res.stderr, res.stderr


def test_setup_py_and_setup_env_ask_for_the_same_packages():
    """``pip install -e .[tests]`` and tools/setup_env.sh install the same
    requirements, pins included (setup.py's install_requires and tests
    extra against the script's REQS)."""
    import ast
    tree = ast.parse(open(osp.join(REPO, 'setup.py')).read())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, 'id', None) == 'setup')
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords
          if k.arg in ('install_requires', 'extras_require')}
    wanted = kw['install_requires'] + kw['extras_require']['tests']
    script = open(SETUP).read()
    reqs = re.search(r'^REQS=\((.*?)^\)', script, re.S | re.M).group(1)
    assert sorted(re.findall(r'"([^"]+)"', reqs)) == sorted(wanted)
