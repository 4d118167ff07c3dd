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
