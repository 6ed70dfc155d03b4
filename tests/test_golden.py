"""The engine reproduces the golden outputs recorded at fixed seeds (``tests/golden_cases.py``).

Integer records (collapse times and tokens, collapsed shares) are compared bit for bit. Models are compared bit
for bit under the JAX version that recorded them (``golden/versions.json``) and to 1e-12 relative under another
(a different XLA may round float64 arithmetic of the trained and decoded models in the last bits); metric traces
(sums whose summation order XLA may choose per program) to 1e-12. Deterministic: no false failures.
"""

import os

import json

import jax
import numpy as np
import pytest

import golden_cases

CASES = golden_cases.cases()
with open(os.path.join(golden_cases.GOLDEN, "versions.json")) as f:
    RECORDED = json.load(f)
SAME_JAX = RECORDED.get("jax") == jax.__version__
EXACT_PREFIXES = ("collapse_time", "collapse_token", "context_collapse_time", "final", "models", "collapsed")


def _exact(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in EXACT_PREFIXES


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case):
    path = golden_cases.path(case)
    assert os.path.exists(path), f"no golden file for {case}: run python tests/golden_cases.py"
    want = np.load(path)
    got = {k: v for k, v in CASES[case]().items() if v is not None}
    assert sorted(got) == sorted(want.files)
    for name in want.files:
        a, b = np.asarray(got[name]), want[name]
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if _exact(name) and (SAME_JAX or not np.issubdtype(b.dtype, np.floating)):
            np.testing.assert_array_equal(a, b, err_msg=f"{case}: {name}")
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"{case}: {name}")
