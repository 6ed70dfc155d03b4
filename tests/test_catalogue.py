"""The catalogue of bad command-line inputs: each through the real entry point (``jaxcollapse.cli.main``, in
process), each refused with exit status 2 and one line ``jaxcollapse: error: ...`` naming the setting, no
traceback, nothing written. The engine's own table of bad arguments is tests/test_inputs.py; damaged run files,
full disks, locks and interrupts are in tests/test_faults.py.

Host memory is pinned at 1 GiB for every case, so the memory refusals do not depend on the machine."""

import numpy as np
import pytest

from jaxcollapse.cli import main

GIB = 1 << 30


def _toml(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text("chains = 4\ngenerations = 2\n" + text)
    return str(path)


def _npy(tmp_path, arr):
    path = tmp_path / "p.npy"
    np.save(path, arr)
    return str(path)


def _words(tmp_path, n):
    path = tmp_path / "c.txt"
    path.write_text(" ".join(f"w{i}" for i in range(n)))
    return str(path)


def _not_a_run(tmp_path):
    d = tmp_path / "notes"
    d.mkdir()
    (d / "thesis.tex").write_text("mine")
    return str(d)


def run(*flags):
    return lambda t: ["run", *flags]


# name -> (argv builder given tmp_path, words the one error line must contain)
CASES = {
    # settings of run, each naming its flag
    "chains 0": (run("--chains", "0"), ["chains"]),
    "generations negative": (run("--generations", "-3"), ["generations"]),
    "sample size 0": (run("-n", "0"), ["synthetic"]),
    "fraction above 1": (run("--regime", "fresh_real", "--fraction", "1.5"), ["fraction"]),
    "window 0": (run("--regime", "most_recent", "--window", "0"), ["window"]),
    "temperature 0": (run("--temperature", "0"), ["temperature"]),
    "top-p above 1": (run("--top-p", "1.5"), ["top"]),
    "top-k 0": (run("--top-k", "0"), ["top"]),
    "smoothing negative": (run("--smoothing", "-1"), ["smoothing"]),
    "sampler unknown": (run("--sampler", "gpu"), ["sampler"]),
    "chunk size 0": (run("--chunk-size", "0"), ["chunk"]),
    "regime unknown": (run("--regime", "collapse_fast"), ["regime"]),
    "vocab 0": (run("--vocab", "0"), ["vocab"]),
    "vocab not an integer": (run("--vocab", "2e8"), ["vocab"]),
    "support above vocab": (run("--vocab", "10", "--support", "11"), ["support"]),
    "exponent negative": (run("--exponent", "-1"), ["exponent"]),
    "ratio above 1": (run("--initial", "geometric", "--ratio", "1.5"), ["ratio"]),
    "concentration 0": (run("--initial", "dirichlet", "--concentration", "0"), ["concentration"]),
    "huge smoothing": (run("--smoothing", "1e307"), ["smoothing", "1000000"]),
    "tiny temperature": (run("--temperature", "1e-320"), ["temperature", "0.001"]),
    "complex initial file": (lambda t: ["run", "--initial-file", _npy(t, np.array([0.5 + 1j, 0.5]))],
                             ["initial distribution", "real"]),
    "bool initial file": (lambda t: ["run", "--initial-file", _npy(t, np.array([True, False]))],
                          ["initial distribution", "real"]),
    "missing initial file": (lambda t: ["run", "--initial-file", str(t / "none.npy")], ["initial file", "not found"]),
    "missing config file": (lambda t: ["run", "--config", str(t / "none.toml")], ["none.toml"]),
    # memory, estimated from the settings before any array is built
    "vocab of a billion": (run("--vocab", "1000000000"), ["vocab 1000000000", "1.0 GiB is available"]),
    "dirichlet table": (run("--initial", "dirichlet", "--vocab", "100000", "--contexts", "100000"),
                        ["contexts 100000 x vocab 100000", "available"]),
    "corpus table": (lambda t: ["run", "--corpus", _words(t, 20000), "--tokens", "words", "--max-vocab", "100000",
                                "--max-contexts", "100000"], ["max_vocab", "max_contexts", "available"]),
    "chain above the memory budget": (run("--vocab", "5000000", "--memory", "64"), ["--memory 64 MiB", "vocab"]),
    "results above host memory": (run("--chains", "2000000", "--generations", "2000"),
                                  ["host memory", "--no-traces"]),
    # output directories
    "out is not a run": (lambda t: ["run", "--overwrite", "--out", _not_a_run(t)], ["thesis.tex"]),
    "out is a file": (lambda t: ["run", "--out", _toml(t, "", "f.toml")], ["not a directory"]),
    # show and plot
    "show a missing run": (lambda t: ["show", str(t / "none")], ["not found"]),
    "plot a directory that is not a run": (lambda t: ["plot", _not_a_run(t)], ["not a finished jaxcollapse run"]),
    "plot format": (lambda t: ["plot", str(t), "--format", "gif"], ["--format"]),
    # sweeps
    "sweep keep_final string": (lambda t: ["sweep", _toml(t, 'keep_final = "no"\n[grid]\nsynthetic = [10]\n')],
                                ["keep_final"]),
    "sweep contexts fraction": (lambda t: ["sweep", _toml(t, 'initial = "dirichlet"\ncontexts = 2.5\nvocab = 5\n'
                                                             '[grid]\nsynthetic = [10]\n')], ["contexts", "point 0"]),
    "sweep exponent string": (lambda t: ["sweep", _toml(t, 'exponent = "abc"\n[grid]\nsynthetic = [10]\n')],
                              ["exponent", "point 0"]),
    "sweep points per call": (lambda t: ["sweep", _toml(t, "[grid]\nsynthetic = [10]\n"), "--points-per-call", "-3"],
                              ["points_per_call"]),
    # bench
    "bench unknown workload": (lambda t: ["bench", "--workloads", "W9"], ["--workloads", "W9"]),
    "bench negative chains": (lambda t: ["bench", "--chains", "-3"], ["--chains"]),
    "bench unknown flag": (lambda t: ["bench", "--bogus"], ["--bogus"]),
    "bench unwritable json": (lambda t: ["bench", "--json", str(t / "none" / "r.json")], ["r.json"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_status_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("jaxcollapse.engine.host.available_memory", lambda: GIB)
    argv, words = CASES[case]
    args = argv(tmp_path)
    out = tmp_path / "out"
    if args[0] in ("run", "sweep") and "--out" not in args:
        args += ["--out", str(out)]
    if args[0] == "run":
        args += ["--quiet", "--no-plots"] + ([] if "--chains" in args else ["--chains", "4"]) \
            + ([] if "--generations" in args or "-g" in args else ["-g", "2"])
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("jaxcollapse: error: ") and "Traceback" not in captured.err
    for w in words:
        assert w in err[0], (w, err[0])
    assert not out.exists() or not list(out.iterdir())
