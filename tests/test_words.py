"""Run directories and reprs: one encoding of censoring, old runs still load, short reprs."""

import json

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.errors import ConfigError
from jaxcollapse.io import rundir
from jaxcollapse.io.report import plural


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small fully synthetic run, some of whose chains collapse and some not, saved to a directory."""
    res = jc.simulate(jax.random.key(3), jc.zipf(20, 1.1, 6), jc.fully_synthetic(8), chains=40, generations=6)
    t = np.asarray(res.collapse_time)
    assert (t < 0).any() and (t >= 0).any()
    d = tmp_path_factory.mktemp("run") / "r"
    rundir.save_result(res, d, argv=["test"])
    return res, d


def test_collapse_csv_leaves_censored_times_empty_and_reads_back_minus_one(saved):
    res, d = saved
    lines = (d / "collapse.csv").read_text().splitlines()
    assert lines[0] == "chain,collapse_time,censored,token"
    t = np.asarray(res.collapse_time)
    for i, line in enumerate(lines[1:]):
        chain, time, censored, _ = line.split(",")
        assert int(chain) == i and int(censored) == (t[i] < 0)
        assert time == ("" if t[i] < 0 else str(t[i]))
    table = rundir.read_collapse_csv(d / "collapse.csv")
    np.testing.assert_array_equal(table["collapse_time"], t)
    np.testing.assert_array_equal(table["censored"], t < 0)
    assert json.loads((d / "manifest.json").read_text())["format_version"] == rundir.FORMAT_VERSION == 2
    run = jc.load_run(d)
    np.testing.assert_array_equal(run.result.collapse_time, t)


def test_old_collapse_csv_and_a_run_without_npz_collapse_times_still_load(saved, tmp_path):
    res, d = saved
    t = np.asarray(res.collapse_time)
    # format_version 1: a censored chain's collapse_time is the last generation, with censored = 1
    old = tmp_path / "collapse.csv"
    old.write_text("chain,collapse_time,censored,token\n" + "".join(
        f"{i},{res.generations if t[i] < 0 else t[i]},{int(t[i] < 0)},-1\n" for i in range(res.chains)))
    np.testing.assert_array_equal(rundir.read_collapse_csv(old)["collapse_time"], t)
    # load_run falls back on collapse.csv (either encoding) when traces.npz lacks the collapse times
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "summary.csv"):
        (copy / name).write_bytes((d / name).read_bytes())
    (copy / "collapse.csv").write_bytes(old.read_bytes())
    with np.load(d / "traces.npz") as z:
        np.savez(copy / "traces.npz", **{k: z[k] for k in z.files if "collapse" not in k})
    run = jc.load_run(copy)
    np.testing.assert_array_equal(run.result.collapse_time, t)
    (copy / "collapse.csv").write_text("chain,time\n0,1\n")
    with pytest.raises(ConfigError, match="collapse table"):
        jc.load_run(copy)


def test_initial_repr_is_short():
    r = repr(jc.zipf(600, 1.1, 52))
    assert r == "Initial(contexts=1, vocab=600, support=52, S0=0.099818)"
    r = repr(jc.dirichlet(1000, contexts=50))
    assert r.startswith("Initial(contexts=50, vocab=1000, support=") and len(r) < 100


def test_plural():
    assert plural(1, "generation") == "1 generation" and plural(2, "chain") == "2 chains"
    assert plural(0, "point") == "0 points"


def test_help_cites_no_missing_reference_and_gives_both_fraction_defaults(capsys):
    from jaxcollapse.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "model.md" not in out
    assert "default: 0.5 for fresh_real, 1 for autoregressive" in out
