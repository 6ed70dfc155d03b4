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


def _sim(**kw):
    args = dict(key=0, initial=[0.5, 0.3, 0.2], regime=jc.fully_synthetic(10), chains=4, generations=2)
    args.update(kw)
    return jc.simulate(**args)


API_CASES = {
    "keep_traces string": (lambda: _sim(keep_traces="no"), "keep_traces"),
    "keep_final string": (lambda: _sim(keep_final="no"), "keep_final"),
    "per_context int": (lambda: _sim(per_context=1), "per_context"),
    "negative memory": (lambda: _sim(memory=-5), "memory"),
    "progress not callable": (lambda: _sim(progress=5), "progress"),
    "huge smoothing": (lambda: _sim(smoothing=1e307), "smoothing"),
    "tiny temperature": (lambda: jc.Decoding(temperature=1e-320), "temperature"),
    "complex table": (lambda: jc.table(np.array([0.5 + 1j, 0.5])), "real numbers"),
    "bool table": (lambda: jc.table([True, False]), "real numbers"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_refuses_with_config_error(case):
    call, name = API_CASES[case]
    with pytest.raises(jc.ConfigError, match=name) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("command", ["show", "plot"])
def test_show_a_file_is_not_not_found(command, tmp_path, capsys):
    path = tmp_path / "afile"
    path.write_text("x")
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a run directory" in err[0] and "not found" not in err[0]


class _ClosedPipe:
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise OSError("no descriptor")


def test_broken_pipe_is_quiet(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", "--chains", "4", "-g", "2", "--no-plots", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert main(["show", str(out)]) == 1
    assert capsys.readouterr().err == ""
