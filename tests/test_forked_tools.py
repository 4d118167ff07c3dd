"""tests/forked_tools.py: a script run as a fork of the tool server sees
what it sees as ``python script args`` in a fresh interpreter."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests import forked_tools
from tests.forked_tools import run_python

pytestmark = pytest.mark.skipif(
    os.environ.get('SWAT_MM_TEST_FRESH_TOOLS') == '1',
    reason='SWAT_MM_TEST_FRESH_TOOLS=1: no tool runs as a fork')

PROBE = textwrap.dedent('''
    import atexit, json, os, random, sys
    import numpy as np
    import torch
    out = dict(
        name=__name__, file=__file__, argv=sys.argv, path0=sys.path[0],
        path1=sys.path[1], cwd=os.getcwd(), stdin=sys.stdin.read(),
        swat_mm='swat_mm' in sys.modules, probe_var=os.environ.get('SWAT_MM_PROBE'),
        tokenizers=os.environ.get('TOKENIZERS_PARALLELISM'),
        parent=os.getppid(), draws=[random.random(), float(np.random.rand()),
                                    float(torch.rand(1))])
    atexit.register(lambda: open(sys.argv[1], 'w').write('atexit ran'))
    print(json.dumps(out))
    if sys.argv[2] == 'raise':
        raise ValueError('a probe error')
    if sys.argv[2] == 'sleep':
        import time
        time.sleep(60)
    sys.exit(int(sys.argv[2]))
''')


@pytest.fixture
def probe(tmp_path):
    folder = tmp_path / 'scripts'
    folder.mkdir()
    (folder / 'probe.py').write_text(PROBE)
    return folder / 'probe.py'


def _run(probe, tmp_path, how, *args, env=None, **kw):
    marker = tmp_path / f'atexit_{how}_{args[0]}'
    proc = run_python([probe, marker, *args], cwd=tmp_path, env=env, **kw)
    return proc, marker


def test_a_fork_runs_the_script_as_a_fresh_interpreter_does(
        probe, tmp_path, monkeypatch):
    env = dict(os.environ, SWAT_MM_PROBE='set')
    forked, marker = _run(probe, tmp_path, 'fork', '3', env=env)
    monkeypatch.setenv('SWAT_MM_TEST_FRESH_TOOLS', '1')
    fresh, fresh_marker = _run(probe, tmp_path, 'fresh', '3',
                               env=dict(env, SWAT_MM_TEST_FRESH_TOOLS='1'))
    assert forked.returncode == fresh.returncode == 3, forked.stderr
    a, b = (json.loads(p.stdout) for p in (forked, fresh))
    server = forked_tools._server.proc.pid
    assert a['parent'] == server, (a, os.getpid(), os.getppid(), server)
    assert b['parent'] == os.getpid()  # started by this process
    for key in ('name', 'file', 'path0', 'cwd', 'stdin', 'swat_mm',
                'probe_var', 'path1'):
        assert a[key] == b[key], key
    assert a['name'] == '__main__' and a['file'] == str(probe)
    assert a['argv'][0] == b['argv'][0] == str(probe)
    assert a['path0'] == str(probe.parent) and a['stdin'] == ''
    assert not a['swat_mm'] and a['probe_var'] == 'set'
    # what the stack's imports set (mmseg's tokenizer) is set as it would be
    # after the same imports in a fresh process
    assert a['tokenizers'] == 'false'
    assert marker.read_text() == fresh_marker.read_text() == 'atexit ran'


def test_each_fork_draws_its_own_random_numbers(probe, tmp_path):
    one, _ = _run(probe, tmp_path, 'one', '0')
    two, _ = _run(probe, tmp_path, 'two', '0')
    draws = [json.loads(p.stdout)['draws'] for p in (one, two)]
    assert all(x != y for x, y in zip(*draws)), draws


def test_an_uncaught_error_exits_1_with_its_traceback(probe, tmp_path):
    proc, _ = _run(probe, tmp_path, 'raise', 'raise')
    assert proc.returncode == 1
    assert 'Traceback' in proc.stderr
    assert proc.stderr.strip().endswith('ValueError: a probe error')


def test_an_environment_the_stack_reads_gets_a_fresh_interpreter(
        probe, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='3', PYTHONPATH=str(tmp_path))
    proc, _ = _run(probe, tmp_path, 'omp', '0', env=env)
    out = json.loads(proc.stdout)
    assert out['parent'] == os.getpid()
    # PYTHONPATH alone is applied in the fork, after the script's folder
    proc, _ = _run(probe, tmp_path, 'pythonpath', '0',
                   env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    out = json.loads(proc.stdout)
    assert out['parent'] != os.getpid() and out['path1'] == str(tmp_path)


def test_a_run_past_its_timeout_is_killed_and_the_server_goes_on(
        probe, tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        _run(probe, tmp_path, 'sleep', 'sleep', timeout=3)
    proc, _ = _run(probe, tmp_path, 'after', '0')
    assert proc.returncode == 0
    assert json.loads(proc.stdout)['parent'] == forked_tools._server.proc.pid
    assert sys.executable == proc.args[0]
