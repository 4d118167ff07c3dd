import os

# Two cores: one OpenMP thread per process leaves the other to data loading
# and to the second rank of the distributed tests; two spinning OpenMP
# threads next to busy workers slow every op down several times.
os.environ.setdefault('OMP_NUM_THREADS', '1')
# and no busy-waiting between ops when the cores are shared
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def toy_root(tmp_path_factory):
    """All three toy datasets, generated once per test session."""
    from swat_mm.testing.toy_data import make_toy_data
    root = str(tmp_path_factory.mktemp('toy'))
    make_toy_data(root)
    return root


def pytest_collection_modifyitems(config, items):
    """``tools/run_tests.sh`` spreads the tests over the cores with
    pytest-xdist (``--dist loadgroup``). A module-scoped fixture (a training
    run, a built wheel, a new venv whose tests run in order) is made once
    per worker that runs a test of the module, so such a module's tests
    are kept together on one worker."""
    for item in items:
        info = getattr(item, '_fixtureinfo', None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d.scope == 'module' for ds in defs for d in ds):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
