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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """``tools/run_tests.sh`` spreads the tests over the cores with
    pytest-xdist (``--dist loadgroup``). A module-scoped fixture (a training
    run, a built wheel) is made once per run of consecutive tests of its
    module on a worker, so every test of a module that has one goes to one
    worker, in file order: spread over both workers, the fixture would be
    made on each. First among the hooks, so that the marks are there when
    xdist's worker reads them (in its own hook of this name). Needs pytest
    below 9.2 (``tests/test_run_tests.py``)."""
    def shared(item) -> bool:
        info = getattr(item, '_fixtureinfo', None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        return any(d.scope in ('module', 'class') for ds in defs for d in ds)

    grouped = {item.module.__name__ for item in items if shared(item)}
    for item in items:
        if item.module.__name__ in grouped:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
