"""Nothing lost, nothing silently wrong: exact rerun commands, collapse as a support of one, clear errors."""

import json
import shlex

import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.cli import main


def _traces(out):
    with np.load(out / "traces.npz") as z:
        return {k: z[k] for k in z.files}


def test_rerun_command_keeps_full_float_precision(tmp_path):
    first = tmp_path / "a"
    args = ["run", "--chains", "6", "-g", "3", "--no-plots", "--quiet", "--out", str(first),
            "--regime", "fresh_real", "--fraction", "0.1234565", "--temperature", "1.00000049",
            "--top-p", "0.7000001", "--exponent", "1.123456789", "--smoothing", "0.000123456789"]
    assert main(args) == 0
    command = json.loads((first / "manifest.json").read_text())["command"]
    for text in ("1.00000049", "0.7000001", "1.123456789", "0.1234565", "0.000123456789"):
        assert text in command
    again = tmp_path / "b"
    words = shlex.split(command)
    assert words[:2] == ["jaxcollapse", "run"]
    assert main(words[1:] + ["--no-plots", "--quiet", "--out", str(again)]) == 0
    a, b = _traces(first), _traces(again)
    assert a.keys() == b.keys() and a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert a[k].tobytes() == b[k].tobytes(), k


def test_tiny_probability_is_not_collapse():
    res = jc.simulate(0, [1e-300, 1 - 1e-300], jc.fully_synthetic(10), chains=20, generations=3)
    assert not np.any(res.collapse_time == 0)
    assert not np.any(res.context_collapse_time == 0)
