"""pytest-benchmark suites (not collected by the plain `pytest`, whose testpaths is tests/).

    pytest bench/ --benchmark-autosave            # save a run
    pytest bench/ --benchmark-compare             # compare with the last saved run
    pytest bench/ --benchmark-compare --benchmark-compare-fail=median:10%
    BACKPROP_BENCH_XL=1 pytest bench/test_cases.py  # include the XL case (~0.5 s a step)

Each benchmark group is one operation at one size; within a group, `impl` is this library's
compiled kernel ("core") and, where there is one, the NumPy reference ("numpy").
"""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)
