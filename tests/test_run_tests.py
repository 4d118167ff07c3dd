"""What ``tools/run_tests.sh`` relies on when it spreads the suite over the
cores with pytest-xdist (``--dist loadgroup``)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip('xdist')

MODULE = '''
import os
import pytest


@pytest.fixture(scope='module')
def made():
    with open(os.environ['MADE_LOG'], 'a') as f:
        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')


@pytest.mark.parametrize('i', range(6))
def test_uses_it(made, i):
    pass


@pytest.mark.parametrize('i', range(6))
def test_does_not(i):
    pass
'''


def test_a_module_fixture_is_made_once_on_two_workers(tmp_path):
    """``tests/conftest.py`` puts every test of a module with a module-scoped
    fixture into one xdist group, so the fixture (a training run, a built
    wheel, a new venv) is made once. pytest 9.2 with pytest-xdist 3.8 drops
    the groups silently (pytest-dev/pytest-xdist#1386): the fixture was
    made on each worker, and again after tests of other modules."""
    conftest = Path(__file__).with_name('conftest.py')
    (tmp_path / 'conftest.py').write_text(conftest.read_text())
    (tmp_path / 'test_grouped.py').write_text(textwrap.dedent(MODULE))
    (tmp_path / 'test_other.py').write_text(
        'import pytest\n\n\n@pytest.mark.parametrize("i", range(12))\n'
        'def test_other(i):\n    pass\n')
    log = tmp_path / 'made.log'
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-n', '2', '--dist',
         'loadgroup', '-p', 'no:cacheprovider', '-v', str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, MADE_LOG=str(log)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '24 passed' in proc.stdout
    assert len(log.read_text().split()) == 1, proc.stdout[-3000:]
