import os
import sys

import jax
import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def x64():
    """Run the test body with 64-bit JAX types, as the engine does."""
    with jax.enable_x64(True):
        yield
