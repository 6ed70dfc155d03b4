"""End-to-end tests of the ``jaxcollapse`` command line, its results directory and its figures.

Most runs call ``cli.main([...])`` in-process (compilations are shared); a few go through the real entry point
(``python -m jaxcollapse`` in a subprocess with ``JAX_PLATFORMS=cpu``). Studies are small: 200 chains,
20 generations, a 50-token vocabulary.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxcollapse import cli
from jaxcollapse.cli import options, settings
from jaxcollapse.cli import run as run_command
from jaxcollapse.io import rundir as results_io
from jaxcollapse.io.rundir import load_run, save_result

SMALL = ["--vocab", "50", "--support", "20", "-n", "50", "--chains", "200", "--generations", "20", "--seed", "3"]
SMALL_TOML = 'vocab = 50\nsupport = 20\nsynthetic = 50\nchains = 200\ngenerations = 20\nseed = 3\n'
METRICS = ("collision", "max_prob", "l1_initial", "l1_first", "entropy", "support", "missing_mass", "kl")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def subprocess_cli(*argv, cwd=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "jaxcollapse", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One small default-regime run made with flags (shared by the read-back tests)."""
    out = tmp_path_factory.mktemp("runs") / "base"
    code = cli.main(["run", *SMALL, "--out", str(out), "--quiet", "--pdf"])
    assert code == 0
    return out


# ------------------------------------------------------------------------------------------------
# run


def test_run_with_flags_writes_a_complete_run(base_run):
    d = base_run
    for name in ("summary.csv", "traces.npz", "collapse.csv", "manifest.json", "plots/traces.png",
                 "plots/traces.pdf", "plots/collapse.png", "plots/collapse.pdf"):
        assert (d / name).is_file(), name
    assert not (d / "contexts.csv").exists()
    assert not [p for p in os.listdir(d) if p.startswith(".")], "temporary files left behind"
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["jaxcollapse_run"] == 1
    assert manifest["seed"] == 3 and manifest["chains"] == 200 and manifest["generations"] == 20
    cfg = manifest["config"]
    assert cfg["regime"] == "fully_synthetic" and cfg["initial"] == "zipf" and cfg["vocab"] == 50
    assert cfg["support"] == 20 and cfg["synthetic"] == 50 and cfg["exponent"] == 1.1
    assert manifest["given"]["flags"]["vocab"] == 50 and manifest["given"]["config_file"] is None
    for pkg in ("jaxcollapse", "jax", "jaxlib", "numpy"):
        assert manifest["versions"][pkg]
    assert manifest["jax"]["backend"] and manifest["jax"]["device_kind"]
    assert manifest["wall_time_s"] > 0
    assert manifest["argv"][:2] == ["jaxcollapse", "run"]
    assert manifest["command"].startswith("jaxcollapse run ")
    assert sorted(manifest["plots"]) == sorted(["plots/traces.png", "plots/traces.pdf", "plots/collapse.png",
                                                "plots/collapse.pdf", "plots/rank_frequency.png",
                                                "plots/rank_frequency.pdf"])
    # summary.csv: tidy, every field numeric (pandas-readable)
    rows = read_csv(d / "summary.csv")
    assert list(rows[0]) == ["generation", "metric", "mean", "sd", "ci_low", "ci_high", "n"]
    assert len(rows) == 21 * len(METRICS)
    assert {r["metric"] for r in rows} == set(METRICS)
    for r in rows:
        for k in ("mean", "sd", "ci_low", "ci_high"):
            float(r[k])
        undefined = r["metric"] == "l1_first" and r["generation"] == "0"
        assert int(r["n"]) == (0 if undefined else 200)
        assert math.isnan(float(r["mean"])) == undefined
    first = {r["metric"]: float(r["mean"]) for r in rows if r["generation"] == "0"}
    p = np.arange(1, 21) ** -1.1
    p /= p.sum()
    assert first["collision"] == pytest.approx(float(p @ p), rel=1e-12)
    assert first["support"] == 20
    # traces.npz
    with np.load(d / "traces.npz") as z:
        for m in METRICS:
            assert z[m].shape == (200, 21)
        assert z["collapse_time"].shape == (200,)
        assert z["collapse_token"].shape == (200, 1) and z["context_collapse_time"].shape == (200, 1)
        assert z["final"].shape == (200, 1, 50)
        assert z["initial"].shape == (1, 50)
        np.testing.assert_allclose(z["final"].sum(axis=2), 1.0)
        means = z["collision"].mean(axis=0)
        collapse_time = z["collapse_time"]
    sim = {int(r["generation"]): float(r["mean"]) for r in rows if r["metric"] == "collision"}
    np.testing.assert_allclose([sim[g] for g in range(21)], means, rtol=1e-12)
    # collapse.csv
    crow = read_csv(d / "collapse.csv")
    assert list(crow[0]) == ["chain", "collapse_time", "censored", "token"]
    assert len(crow) == 200
    for i, r in enumerate(crow):
        censored = collapse_time[i] < 0
        assert int(r["chain"]) == i and int(r["censored"]) == censored
        assert r["collapse_time"] == ("" if censored else str(collapse_time[i]))
        assert (int(r["token"]) == -1) == censored
    png = (d / "plots" / "traces.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_run_prints_summary_theory_and_location(tmp_path, capsys):
    code, out, err = run_cli(capsys, "run", *SMALL, "--no-plots", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "collision" in out and "collapsed:" in out
    assert "theory, exact (Theorem 1): E[collision] at generation 20" in out
    assert "P(collapsed by generation 20)" in out and "Littler" in out
    assert f"results: {tmp_path / 'r'}" in out
    assert not (tmp_path / "r" / "plots").exists()
    assert "Traceback" not in err


def test_default_output_directory_under_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "run", *SMALL, "--no-plots", "--quiet")
    assert code == 0
    (made,) = os.listdir(tmp_path / "runs")
    assert made.endswith("-fully_synthetic")
    assert out.strip() == f"results: {os.path.join('runs', made)}{os.sep} (summary.csv, traces.npz, collapse.csv, " \
                          "manifest.json)"
    assert results_io.is_run(tmp_path / "runs" / made)


def test_config_file_gives_identical_summary(base_run, tmp_path, capsys):
    cfg = tmp_path / "study.toml"
    cfg.write_text(SMALL_TOML + 'regime = "fully_synthetic"\nplots = false\n')
    code, _, err = run_cli(capsys, "run", "--config", str(cfg), "--out", str(tmp_path / "from_file"), "-q")
    assert code == 0, err
    assert (tmp_path / "from_file" / "summary.csv").read_bytes() == (base_run / "summary.csv").read_bytes()
    manifest = json.loads((tmp_path / "from_file" / "manifest.json").read_text())
    assert manifest["given"]["config_file"] == str(cfg)
    assert manifest["given"]["config_file_settings"]["chains"] == 200


def test_flags_override_config_file(tmp_path, capsys):
    cfg = tmp_path / "study.toml"
    cfg.write_text(SMALL_TOML + "traces = true\n")
    out = tmp_path / "o"
    code, _, err = run_cli(capsys, "run", "--config", str(cfg), "--generations", "12", "--no-traces", "--no-plots",
                           "--out", str(out), "-q")
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["generations"] == 12 and m["config"]["generations"] == 12
    assert m["config"]["chains"] == 200 and m["config"]["seed"] == 3
    assert m["traces_kept"] is False
    with np.load(out / "traces.npz") as z:
        assert "collision" not in z.files and z["collapse_time"].shape == (200,)
    assert len(read_csv(out / "summary.csv")) == 13 * len(METRICS)
    # show and plot work without traces
    assert run_cli(capsys, "show", str(out))[0] == 0
    assert run_cli(capsys, "plot", str(out))[0] == 0
    assert (out / "plots" / "traces.png").read_bytes().startswith(PNG_MAGIC)


def test_config_paths_are_relative_to_the_file(tmp_path, capsys, monkeypatch):
    sub = tmp_path / "study"
    sub.mkdir()
    np.save(sub / "p.npy", VECTOR)
    (sub / "s.toml").write_text('initial_file = "p.npy"\nout = "result"\nchains = 200\ngenerations = 20\n'
                                'synthetic = 50\nplots = false\nquiet = true\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "run", "--config", str(sub / "s.toml"))
    assert code == 0, err
    assert load_run(sub / "result").config["initial_file"] == str(sub / "p.npy")


TABLE = np.array([[0.5, 0.5, 0.0, 0.0], [0.2, 0.3, 0.4, 0.1]])
#: A 50-token vector: runs from it share the compiled engine with the SMALL runs.
VECTOR = np.r_[np.arange(1, 21) ** -1.0, np.zeros(30)] / (np.arange(1, 21) ** -1.0).sum()
SAME_SHAPE = ["-n", "50", "--chains", "200", "--generations", "20"]


def test_run_from_initial_file(tmp_path, capsys, base_run):
    path = tmp_path / "p.csv"
    np.savetxt(path, VECTOR[None], delimiter=",")
    out = tmp_path / "o"
    code, out_text, err = run_cli(capsys, "run", "--initial-file", str(path), *SAME_SHAPE, "--no-plots",
                                  "--out", str(out))
    assert code == 0, err
    run = load_run(out)
    np.testing.assert_allclose(run.initial.probs, VECTOR[None])
    assert run.config["initial"] == "file" and run.config["initial_file"] == str(path)
    assert "p.csv (1 context × 50 tokens)" in out_text and "theory, exact (Theorem 1)" in out_text


@pytest.mark.parametrize("ext", [".npy", ".csv", ".txt", ".npz", ".tsv"])
def test_initial_file_formats(tmp_path, ext):
    path = tmp_path / f"p{ext}"
    if ext == ".npy":
        np.save(path, TABLE)
    elif ext == ".npz":
        np.savez(path, probs=TABLE, weights=np.array([3.0, 1.0]))
    else:
        np.savetxt(path, TABLE, delimiter="," if ext == ".csv" else " ", header="two contexts")
    init = settings._initial_from_file(str(path))
    np.testing.assert_allclose(init.probs, TABLE)
    np.testing.assert_allclose(init.weights, [0.75, 0.25] if ext == ".npz" else [0.5, 0.5])
    column = tmp_path / "column.txt"
    column.write_text("# one probability per line\n0.25\n0.25\n0.5\n")
    np.testing.assert_allclose(settings._initial_from_file(str(column)).probs, [[0.25, 0.25, 0.5]])


def test_config_file_keys_and_types(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('top-k = 5\ntop_p = 0.9\ntemperature = 2\nper-context = true\ncorpus = "../t.txt"\n')
    got = settings.load_config(str(cfg))
    assert got == {"top_k": 5, "top_p": 0.9, "temperature": 2.0, "per_context": True,
                   "corpus": os.path.normpath(str(tmp_path / ".." / "t.txt"))}
    assert isinstance(got["temperature"], float)
    for bad in ('chains = 1.5', 'temperature = "hot"', 'traces = 1', 'regime = "nope"', 'chains = true'):
        cfg.write_text(bad + "\n")
        with pytest.raises(ValueError):
            settings.load_config(str(cfg))


def test_rerun_command_reproduces_the_run(base_run, tmp_path, capsys):
    command = json.loads((base_run / "manifest.json").read_text())["command"]
    argv = shlex.split(command)
    assert argv[0] == "jaxcollapse"
    code, _, err = run_cli(capsys, *argv[1:], "--no-plots", "-q", "--out", str(tmp_path / "again"))
    assert code == 0, err
    assert (tmp_path / "again" / "summary.csv").read_bytes() == (base_run / "summary.csv").read_bytes()


def test_partially_synthetic_with_theory(tmp_path, capsys):
    code, out, err = run_cli(capsys, "run", "--regime", "partially_synthetic", "--real", "30", *SMALL, "--no-plots",
                             "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "theory, exact (Theorem 2, corrected): E[collision] at generation 20" in out
    run = load_run(tmp_path / "o")
    assert run.config["real"] == 30 and run.result.settings["kind"] == "partially_synthetic"
    labels = [c.label for c in run.theory.curves["collision"]]
    assert labels == ["exact (Theorem 2, corrected)", "Theorem 2 as printed"]
    files = __import__("jaxcollapse.io.plots", fromlist=["plot_traces"]).plot_traces(run, str(tmp_path), ("png",))
    assert os.path.getsize(files[0]) > 5000


def test_theory_for_each_regime():
    from jaxcollapse import theory

    p = np.array([0.5, 0.3, 0.2])
    init = __import__("jaxcollapse").table(p)

    def settings(kind, real=0, synthetic=10, **kw):
        return {"kind": kind, "sizes": {"real": [real], "synthetic": [synthetic]}, "smoothing": 0.0,
                "decoding": None, **kw}

    t = results_io.theory_for(settings("accumulate", real=20), init, 6)
    np.testing.assert_allclose(t.curves["collision"][0].values, 1 - theory.accumulate_diversity(p, 20, 10, 6))
    t = results_io.theory_for(settings("fully_synthetic"), init, 6)
    np.testing.assert_allclose(t.curves["collision"][0].values, theory.fully_synthetic_collision(p, 10, 6))
    np.testing.assert_allclose(t.curves["support"][0].values, theory.expected_alive(p, 10, 6))
    np.testing.assert_allclose(t.values("collapsed"), theory.collapsed_probability(p, 10, 6))
    assert t.collapse["expected"] == pytest.approx(theory.expected_collapse_time(p, 10))
    t = results_io.theory_for(settings("fresh_real", real=10), init, 6)      # M = 10 + 10 synthetic, λ = 1/2
    np.testing.assert_allclose(t.values("collision"),
                               theory.collision(p) + theory.fresh_real_sq_deviation(p, 20, 0.5, 6))
    assert results_io.theory_for(settings("most_recent"), init, 6).curves == {}
    assert results_io.theory_for(settings("fully_synthetic", smoothing=0.5), init, 6).curves == {}
    dec = {"temperature": 0.5, "top_k": None, "top_p": None}
    assert results_io.theory_for(settings("fully_synthetic", decoding=dec), init, 6).curves == {}
    two = __import__("jaxcollapse").table([p, p])
    assert results_io.theory_for(settings("fully_synthetic"), two, 6).curves == {}


def test_unused_flags_warn(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", *SMALL, "--window", "3", "--ratio", "0.3", "--no-plots",
                           "--out", str(tmp_path / "o"))
    assert code == 0
    assert "--window is not used by regime fully_synthetic" in err
    assert "--ratio is not used by --initial zipf" in err


# ------------------------------------------------------------------------------------------------
# show, plot, load_run


def test_show_reads_the_saved_files(base_run, tmp_path, capsys):
    code, out, err = run_cli(capsys, "show", str(base_run))
    assert code == 0, err
    assert "settings:" in out and "vocab=50" in out and "rerun: jaxcollapse run" in out
    assert "collapsed:" in out and "theory, exact (Theorem 1)" in out
    # read back, not recomputed: a changed value in summary.csv shows up
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(base_run, copy)
    text = (copy / "summary.csv").read_text().splitlines()
    i = next(k for k, line in enumerate(text) if line.startswith("20,collision,"))
    parts = text[i].split(",")
    parts[2] = "0.123456"
    text[i] = ",".join(parts)
    (copy / "summary.csv").write_text("\n".join(text) + "\n")
    code, out2, _ = run_cli(capsys, "show", str(copy), "--metrics", "collision", "--rows", "3")
    assert code == 0
    assert "0.1235" in out2 and "max_prob" not in out2.splitlines()[5]


def test_plot_redraws_from_files(base_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(base_run, copy)
    shutil.rmtree(copy / "plots")
    code, out, err = run_cli(capsys, "plot", str(copy))             # PNG only unless --format says more
    assert code == 0, err
    for name in ("traces.png", "collapse.png"):
        data = (copy / "plots" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert str(copy / "plots" / name) in out
    assert not (copy / "plots" / "traces.pdf").exists()


@pytest.fixture(scope="module")
def api_result():
    import jaxcollapse as jc

    init = jc.zipf(50, 1.0, support=10)
    return init, jc.simulate(5, init, jc.fully_synthetic(50), chains=200, generations=20)


def test_save_and_load_roundtrip(tmp_path, api_result):
    init, res = api_result
    d = tmp_path / "api"
    manifest = save_result(res, d, {"seed": 5, "note": "api"}, ["my_script.py"], initial=init)
    assert manifest["jaxcollapse_run"] == 1 and manifest["seed"] == 5 and manifest["argv"] == ["my_script.py"]
    run = load_run(d)
    for m, s in res.summary.items():
        t = run.result.summary[m]
        for field in ("mean", "sd", "ci_low", "ci_high", "n", "infinite"):
            np.testing.assert_array_equal(getattr(t, field), getattr(s, field), err_msg=f"{m}.{field}")
        np.testing.assert_array_equal(run.result.traces[m], res.traces[m])
    np.testing.assert_array_equal(run.result.collapse_time, res.collapse_time)
    np.testing.assert_array_equal(run.result.final, res.final)
    np.testing.assert_array_equal(run.initial.probs, init.probs)
    assert run.result.format() == res.format()
    assert run.result.settings == json.loads(json.dumps(res.settings))


# ------------------------------------------------------------------------------------------------
# atomic writes and output directories


def test_directory_without_manifest_is_not_a_run(base_run, tmp_path, capsys):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(base_run, partial)
    (partial / "manifest.json").unlink()
    assert not results_io.is_run(partial)
    for cmd in (["show", str(partial)], ["plot", str(partial)], ["run", *SMALL, "--out", str(partial)]):
        code, _, err = run_cli(capsys, *cmd)
        assert code == 2 and err.startswith("jaxcollapse: error:") and err.count("\n") == 1, (cmd, err)
    with pytest.raises(ValueError, match="not a finished jaxcollapse run"):
        load_run(partial)
    # a manifest without the marker is not a run either
    (partial / "manifest.json").write_text('{"something": 1}')
    assert not results_io.is_run(partial)


def test_existing_run_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "o"
    assert run_cli(capsys, "run", *SMALL, "--no-plots", "--out", str(out), "-q")[0] == 0
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "run", *SMALL, "--no-plots", "--out", str(out))
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "run", *SMALL, "--generations", "5", "--no-plots", "--out", str(out),
                           "--overwrite", "-q")
    assert code == 0, err
    assert load_run(out).result.generations == 5
    assert (out / "notes.txt").read_text() == "mine"      # only the run's own files are replaced


def test_failed_write_leaves_no_manifest(tmp_path, monkeypatch, api_result):
    _, res = api_result

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", boom)
    d = tmp_path / "d"
    with pytest.raises(ValueError, match="traces.npz: no space left on device"):     # a ConfigError naming the file
        save_result(res, d, {}, [])
    assert not (d / "manifest.json").exists() and not results_io.is_run(d)
    assert not [p for p in os.listdir(d) if p.startswith(".")]       # temporary file removed
    assert (d / "summary.csv").exists()                               # written before, but no manifest
    with pytest.raises(ValueError):
        load_run(d)


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with results_io.atomic_file(target, "w") as f:
            f.write("partial")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]
    results_io.write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["f.txt"]


# ------------------------------------------------------------------------------------------------
# simplex (3 tokens)


def test_simplex_for_three_tokens(tmp_path, capsys):
    out = tmp_path / "v3"
    code, _, err = run_cli(capsys, "run", "--initial", "uniform", "--vocab", "3", "-n", "30", "--chains", "40",
                           "--generations", "15", "--sampler", "tokens", "--no-plots", "--out", str(out), "-q")
    assert code == 0, err
    assert run_cli(capsys, "plot", str(out), "--format", "png")[0] == 0
    data = (out / "plots" / "simplex.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    m = json.loads((out / "manifest.json").read_text())
    assert m["trajectories_match_final"] is True          # the same chains as the engine's
    with np.load(out / "traces.npz") as z:
        traj = z["trajectories"]
        assert traj.shape == (8, 16, 1, 3)
        np.testing.assert_allclose(traj[:, 0, 0], 1 / 3)
        np.testing.assert_array_equal(traj[:, -1], z["final"][:8])
        # the recorded models reproduce the engine's collision trace of those chains
        np.testing.assert_allclose((traj[:, :, 0] ** 2).sum(-1), z["collision"][:8], rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# errors: one line on stderr, exit status 2, no traceback


def _bad_files(tmp_path):
    (tmp_path / "bad.toml").write_text("chains = \n")
    (tmp_path / "unknown.toml").write_text("chains = 10\ncolour = 'red'\n")
    (tmp_path / "type.toml").write_text('chains = "many"\n')
    (tmp_path / "latin1.toml").write_bytes(b"regime = '\xe9'\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("   \n\n ")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "ok.txt").write_text("abcabcabd " * 20)
    (tmp_path / "notrun").mkdir()
    (tmp_path / "notrun" / "data.csv").write_text("x\n")
    (tmp_path / "p.csv").write_text("0.5,0.6\n")
    (tmp_path / "neg.npy").write_bytes(b"")
    np.save(tmp_path / "neg.npy", np.array([1.5, -0.5]))


ERROR_CASES = [
    (["run", "--regime", "foo"], "invalid choice"),
    (["run", "--corpus", "{d}/missing.txt"], "not found"),
    (["run", "--corpus", "{d}/empty.txt"], "empty"),
    (["run", "--corpus", "{d}/blank.txt", "--tokens", "words"], "no word tokens"),
    (["run", "--corpus", "{d}/binary.txt"], "not valid UTF-8"),
    (["run", "--corpus", "{d}"], "directory"),
    (["run", "--corpus", "{d}/ok.txt", "--order", "0"], "--order must be an integer >= 1"),
    (["run", "--corpus", "{d}/ok.txt", "--initial", "zipf"], "drop --initial"),
    (["run", "--config", "{d}/missing.toml"], "not found"),
    (["run", "--config", "{d}/bad.toml"], "invalid TOML"),
    (["run", "--config", "{d}/unknown.toml"], "unknown key 'colour'"),
    (["run", "--config", "{d}/type.toml"], "must be an integer"),
    (["run", "--config", "{d}/latin1.toml"], "config file"),
    (["run", "--config", "{d}"], "directory"),
    (["run", "--out", "{d}/notrun"], "not a finished jaxcollapse run"),
    (["run", "--out", "{d}/ok.txt"], "not a directory"),
    (["run", "--chains", "0"], "--chains must be an integer >= 1"),
    (["run", "--generations", "-2"], "--generations must be an integer >= 1"),
    (["run", "-n", "0"], "-n/--synthetic must be an integer >= 1"),
    (["run", "--regime", "partially_synthetic", "--real", "0"], "--real must be an integer >= 1"),
    (["run", "--vocab", "0"], "--vocab must be"),
    (["run", "--vocab", "10", "--support", "11"], "support must be at most vocab"),
    (["run", "--fraction", "1.5"], "--fraction must be a number in [0.0, 1.0]"),
    (["run", "--regime", "fresh_real", "--fraction", "-0.1"], "--fraction"),
    (["run", "--temperature", "0"], "--temperature must be a number in [0.001, "),
    (["run", "--temperature", "-1"], "--temperature"),
    (["run", "--top-p", "0"], "--top-p must be a number in (0.0, 1.0]"),
    (["run", "--top-p", "1.01"], "--top-p"),
    (["run", "--top-k", "0"], "--top-k"),
    (["run", "--smoothing", "-1"], "--smoothing"),
    (["run", "--memory", "0"], "--memory"),
    (["run", "--chains", "ten"], "invalid integer"),
    (["run", "--no-such-flag"], "unrecognized arguments"),
    (["run", "--initial", "file"], "--initial-file"),
    (["run", "--initial-file", "{d}/missing.npy"], "not found"),
    (["run", "--initial-file", "{d}/p.csv"], "sum to 1"),
    (["run", "--initial-file", "{d}/neg.npy"], "non-negative"),
    (["run", "--regime", "most_recent", "-n", "3", "--window", "5"], "window"),
    (["show", "{d}/nothing"], "not found"),
    (["show", "{d}/notrun"], "not a finished jaxcollapse run"),
    (["plot", "{d}/notrun"], "not a finished jaxcollapse run"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", ERROR_CASES, ids=[" ".join(a) for a, _ in ERROR_CASES])
def test_errors_in_process(tmp_path, capsys, argv, message):
    _bad_files(tmp_path)
    argv = [a.format(d=tmp_path) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("jaxcollapse: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("argv", [
    ["run", "--config", "{d}/bad.toml"],
    ["run", "--out", "{d}/notrun", "--chains", "10"],
])
def test_errors_through_the_entry_point(tmp_path, argv):
    _bad_files(tmp_path)
    proc = subprocess_cli(*[a.format(d=tmp_path) for a in argv], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxcollapse: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_memory_refusal_names_the_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_command, "available_memory", lambda: 10 * 2**20)
    code, _, err = run_cli(capsys, "run", "--chains", "100000", "--generations", "100", "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1
    need = run_command.host_bytes(100000, 100, 1, 600, traces=True, per_context=False, final=True)
    assert f"{need / 2**30:.1f} GiB" in err and "--no-traces" in err
    assert not (tmp_path / "o").exists()


def test_host_bytes():
    assert run_command.host_bytes(10, 9, 1, 5, traces=True, per_context=False, final=False) == 10 * 10 * 64 + 10 * 24
    assert (run_command.host_bytes(10, 9, 3, 5, traces=False, per_context=True, final=True)
            == 10 * 10 * 3 * 64 + 10 * 3 * 5 * 8 + 10 * 3 * 16 + 80)


# ------------------------------------------------------------------------------------------------
# help, progress, bench, theory helper


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in options.OPTIONS:
        for flag in opt.flags:
            assert flag in text, flag
    assert text.count("(default:") >= len(options.OPTIONS) - 2
    for regime in options.REGIME_CHOICES:
        assert regime in text
    code, out, _ = run_cli(capsys)
    assert code == 0 and "run" in out and "show" in out and "plot" in out and "bench" in out


#: Heavy modules that the command line's parser and help must not import (the commands import them when they run).
HEAVY = ("jax", "jaxlib", "optax", "matplotlib", "scipy")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELP_THEN_CHECK = """
import sys
import time
from jaxcollapse.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
assert code in (0, None), code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
assert not heavy, heavy
print("ok")
"""


def _light_env():
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_importing_the_command_line_loads_no_jax():
    code = ("import sys, jaxcollapse.cli\n"
            "from jaxcollapse.cli import main\n"
            "from jaxcollapse.cli import app, examples, options, plan, progress, reproduce, run, settings, sweep, "
            "sweep_plot\n"
            "from jaxcollapse.engine import host\n"
            f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
            "assert callable(main) and not heavy, heavy\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_light_env(), cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["plan", "--help"], ["sweep", "--help"],
                                  ["sweep-plot", "--help"], ["reproduce", "--help"], ["--version"], [],
                                  ["examples"], ["examples", "sweep-phase"]])
def test_help_loads_no_jax(argv):
    proc = subprocess.run([sys.executable, "-c", HELP_THEN_CHECK.format(heavy=HEAVY), *argv], capture_output=True,
                          text=True, env=_light_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("ok"), proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_python_m_help_loads_no_jax(argv):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "jaxcollapse", *argv], capture_output=True,
                          text=True, env=_light_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: jaxcollapse"), proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "jaxcollapse.cli.app" in imported
    assert not sorted(m for m in imported if m.split(".")[0] in HEAVY)


def test_reproduce_help_states_the_paper_chain_count():
    from jaxcollapse.cli import reproduce as reproduce_command
    from jaxcollapse.studies import paper

    assert reproduce_command.PAPER_CHAINS == paper.CHAINS


def _import_graph() -> dict:
    """``{module: modules of jaxcollapse it imports}``, imports inside functions included, ``TYPE_CHECKING`` ones
    and a package's imports of its own submodules left out."""
    import ast

    package = os.path.join(ROOT, "jaxcollapse")
    modules = {}
    for folder, _, files in os.walk(package):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(open(path, encoding="utf-8").read())
        here = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.dump(node.test) for n in ast.walk(node)}
        targets = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        found = set()
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and not t.startswith(name + "."):
                found.add(t)
        graph[name] = found
    return graph


def test_import_graph_has_no_cycles_and_the_command_line_on_top():
    graph = _import_graph()
    outside = sorted((m, t) for m, ts in graph.items() for t in ts
                     if t.startswith("jaxcollapse.cli") and not m.startswith("jaxcollapse.cli")
                     and m != "jaxcollapse.__main__")
    assert not outside, outside
    state, cycles = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_progress_bar():
    from jaxcollapse.cli.progress import Bar

    stream = io.StringIO()
    ticks = iter([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    bar = Bar(stream, clock_fn=lambda: next(ticks))
    bar(100, 1000)
    bar(500, 1000)
    bar(1000, 1000)
    bar.close()
    text = stream.getvalue()
    assert "chain-gen/s" in text and "ETA" in text and "100.0%" in text and "\r" in text


def test_no_progress_bar_without_tty(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", *SMALL, "--no-plots", "--out", str(tmp_path / "o"))
    assert code == 0 and "chain-gen/s" not in err


def test_bench_lists_the_workloads(capsys):
    code, out, _ = run_cli(capsys, "bench", "--list")
    assert code == 0 and all(f"W{i}:" in out for i in range(1, 7))


def test_bench_bad_flag_is_one_line(capsys):
    code, _, err = run_cli(capsys, "bench", "--bogus")
    assert code == 2 and err.startswith("jaxcollapse: error:") and err.count("\n") == 1



def test_three_token_run_on_the_resampling_kernel_draws_the_simplex(tmp_path, capsys):
    out = tmp_path / "tri"
    code, _, err = run_cli(capsys, "run", "--initial", "uniform", "--vocab", "3", "-n", "10", "--chains", "20",
                           "--generations", "5", "--sampler", "resample", "--out", str(out))
    assert code == 0, err
    assert (out / "plots" / "simplex.png").stat().st_size > 0


# ------------------------------------------------------------------------------------------------
# packaging: examples, the wheel's contents


def test_examples_are_listed_printed_and_copied(tmp_path, capsys):
    from jaxcollapse.cli import examples as examples_command

    shipped = examples_command.examples()
    assert "sweep-phase" in shipped and "run-partially-synthetic" in shipped
    code, out, _ = run_cli(capsys, "examples")
    assert code == 0 and all(f"{name}.toml" in out for name in shipped)
    code, out, _ = run_cli(capsys, "examples", "sweep-phase.toml")
    assert code == 0 and out == (examples_command._folder() / "sweep-phase.toml").read_text(encoding="utf-8")
    # examples/ of a checkout is the same folder, so the README's commands work from a checkout
    assert out == open(os.path.join(ROOT, "examples", "sweep-phase.toml"), encoding="utf-8").read()
    code, out, _ = run_cli(capsys, "examples", "--copy", str(tmp_path / "ex"))
    assert code == 0 and sorted(os.listdir(tmp_path / "ex")) == sorted(f"{n}.toml" for n in shipped)
    code, _, err = run_cli(capsys, "examples", "sweep-phase", "--copy", str(tmp_path / "ex"))
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1
    code, out, _ = run_cli(capsys, "examples", "sweep-phase", "--copy", str(tmp_path / "ex"), "--overwrite", "-q")
    assert code == 0 and out == ""
    code, _, err = run_cli(capsys, "examples", "nope")
    assert code == 2 and "sweep-phase" in err
    # every example is a valid study or sweep: a run config resolves, a sweep spec plans
    from jaxcollapse.sweeps.plan import make_plan
    from jaxcollapse.sweeps.spec import as_spec

    assert len(make_plan(as_spec(str(tmp_path / "ex" / "sweep-phase.toml"), {})).points) == 200
    study = settings.resolve({o.key: None for o in options.OPTIONS}, str(tmp_path / "ex" / "run-partially-synthetic.toml"))
    assert study.resolved["regime"] == "partially_synthetic" and study.resolved["chains"] == 10000


def test_wheel_ships_license_type_marker_and_examples(tmp_path):
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
    import jaxcollapse

    assert wheel.startswith(f"jaxcollapse-{jaxcollapse.__version__}-")
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    assert "jaxcollapse/py.typed" in names
    assert {"jaxcollapse/examples/sweep-phase.toml", "jaxcollapse/examples/run-partially-synthetic.toml"} <= names
    assert "jaxcollapse/data/tales.txt" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(n for n in names if "dist-info" in n)
    meta = zipfile.ZipFile(tmp_path / wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    meta = meta.decode()
    assert f"Version: {jaxcollapse.__version__}" in meta and "License-Expression: MIT" in meta
    assert "Requires-Dist: jax>=0.8.0" in meta and "Provides-Extra: cuda12" in meta


# ------------------------------------------------------------------------------------------------
# batch jobs: progress lines, --quiet, the cgroup memory limit


@pytest.fixture
def slow_reports(monkeypatch):
    """Each progress report takes 50 ms, so that a run from the compilation cache lasts past the first line."""
    from jaxcollapse.cli.progress import Lines

    report = Lines.__call__

    def slow(self, *args, **kwargs):
        report(self, *args, **kwargs)
        time.sleep(0.05)

    monkeypatch.setattr(Lines, "__call__", slow)


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys, slow_reports):
    code, _, err = run_cli(capsys, "run", *SMALL, "--no-plots", "--out", str(tmp_path / "o"), "--progress-every",
                           "0.02")
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("jaxcollapse run: [")]
    assert lines and "\r" not in err and "chain-gen/s" not in err
    assert lines[-1].endswith("4,000/4,000 chain-generations (100.0%)") or "4,000/4,000 chain-generations" in lines[-1]
    assert any("chain-generations/s" in line for line in lines)
    code, _, err = run_cli(capsys, "run", *SMALL, "--no-plots", "--out", str(tmp_path / "q"), "--progress-every",
                           "0.02", "--quiet")
    assert code == 0 and err == ""


def test_sweep_plan_and_reproduce_print_progress_lines(tmp_path, capsys, monkeypatch, slow_reports):
    spec = tmp_path / "tiny.toml"
    spec.write_text('chains = 4\ngenerations = 3\ninitial = "zipf"\nvocab = 20\nsupport = 10\n'
                    '[[grid]]\nregime = ["fresh_real"]\nsize = [4, 5]\nfraction = [0.5, 1.0]\n')
    code, _, err = run_cli(capsys, "sweep", str(spec), "--out", str(tmp_path / "sw"), "--progress-every", "0.01")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("jaxcollapse sweep: [")]
    assert lines and "\r" not in err and "/4 points" in lines[-1] and "chain-generations" in lines[-1]
    code, out, err = run_cli(capsys, "plan", "--vocab", "20", "--support", "10", "-n", "20", "--generations", "10",
                             "--pilot-chains", "60", "--half-width", "0.01", "--progress-every", "0.01")
    assert code == 0 and "pilot:" in out
    assert any(line.startswith("jaxcollapse plan: pilot: [") for line in err.splitlines()), err
    code, _, err = run_cli(capsys, "plan", "--vocab", "20", "--support", "10", "-n", "20", "--generations", "10",
                           "--pilot-chains", "60", "--half-width", "0.01", "--progress-every", "0.01", "--quiet")
    assert code == 0 and err == ""
    from jaxcollapse.studies import paper

    def figure(out, *, scale, seed, progress):
        for step in range(3):
            time.sleep(0.05)
            progress(f"series {step} done")
        return {}

    monkeypatch.setitem(paper.FIGURES, "figtest", figure)
    code, out, err = run_cli(capsys, "reproduce", "figtest", "--out", str(tmp_path / "re"), "--progress-every",
                             "0.01")
    assert code == 0 and out.startswith("figtest: ")
    lines = [line for line in err.splitlines() if line.startswith("jaxcollapse reproduce: [")]
    assert any("figtest: series" in line for line in lines), err
    assert lines[-1].endswith("1/1 figures (100.0%)") or "1/1 figures (100.0%)" in lines[-1]


def test_progress_interval_from_the_environment(monkeypatch):
    from jaxcollapse.cli import progress

    monkeypatch.delenv(progress.ENV, raising=False)
    assert progress.every_seconds() == progress.DEFAULT_EVERY == 10
    monkeypatch.setenv(progress.ENV, "2.5")
    assert progress.every_seconds() == 2.5 and progress.every_seconds(7) == 7
    assert progress.reporter(io.StringIO(), "x", 0, quiet=False) is None
    monkeypatch.setenv(progress.ENV, "soon")
    with pytest.raises(ValueError, match=progress.ENV):
        progress.every_seconds()
    with pytest.raises(ValueError, match="--progress-every"):
        progress.every_seconds(-1)


def test_bad_progress_interval_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAXCOLLAPSE_PROGRESS_EVERY", "soon")
    code, _, err = run_cli(capsys, "run", *SMALL, "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "JAXCOLLAPSE_PROGRESS_EVERY" in err


def test_progress_line_counts_rate_and_eta():
    from jaxcollapse.cli.progress import Lines

    now = [100.0]
    stream = io.StringIO()
    lines = Lines(stream, "jaxcollapse sweep", every=0, points_total=10, points_before=2, clock_fn=lambda: now[0])
    assert lines.line() == "jaxcollapse sweep: [0:00] 2/10 points, starting (compiling)"
    now[0] = 130.0
    lines(1_000, 11_000, 0)         # after the compilation: no rate yet
    assert lines.line() == "jaxcollapse sweep: [0:30] 2/10 points, 1,000/11,000 chain-generations (9.1%)"
    now[0] = 140.0
    lines(6_000, 11_000, 3)         # 5,000 in 10 s: 500/s, 5,000 left: 10 s
    assert lines.line() == ("jaxcollapse sweep: [0:40] 5/10 points, 6,000/11,000 chain-generations (54.5%), "
                            "500 chain-generations/s, ETA 0:10")
    lines.emit()
    lines.close()                   # a line was printed: a last one
    assert stream.getvalue().count("\n") == 2
    slow = Lines(io.StringIO(), "jaxcollapse reproduce", every=0, unit="figures", clock_fn=lambda: now[0])
    slow(0, 4)
    now[0] += 90
    slow(1, 4)
    slow.update(what="fig2 running")
    assert slow.line().endswith("fig2 running, 1/4 figures (25.0%), 1:30 per figure, ETA 4:30")


def test_progress_rate_counts_finished_pieces_and_the_eta_never_ends_early():
    from jaxcollapse.cli.progress import Bar, Rate

    rate = Rate()
    rate.add(100, 30.0)              # compilation and generation 1: 30 s, not a speed
    assert rate.per_second() is None and rate.left(1_000, 30.0) is None
    rate.add(200, 40.0)              # 100 in 10 s
    assert rate.per_second() == 10.0 and rate.left(1_000, 40.0) == 80.0
    assert rate.left(1_000, 50.0) == 70.0          # counts down during the piece under way
    assert rate.left(1_000, 130.0) == 800 / (100 / 100)   # a late piece: the slower speed, never 0
    assert rate.left(200, 40.0) == 0.0
    now = [0.0]
    stream = io.StringIO()
    bar = Bar(stream, width=10, clock_fn=lambda: now[0])
    now[0] = 30.0
    bar(350, 1000)
    assert "warming up" in stream.getvalue().rsplit("\r", 1)[-1]
    now[0] = 30.001                  # two reports a moment apart: a speed, but measured, not an ETA of 0:00
    bar(351, 1000)
    now[0] = 40.0
    bar(400, 1000)
    assert bar.text(400, 1000).endswith("5 chain-gen/s  ETA 2:00")


def test_progress_lines_come_from_a_timer():
    import time

    from jaxcollapse.cli.progress import Lines

    stream = io.StringIO()
    lines = Lines(stream, "jaxcollapse run", every=0.01)
    lines(10, 100)
    deadline = time.monotonic() + 10
    while stream.getvalue().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines.close()
    assert stream.getvalue().count("\n") >= 3 and "10/100 chain-generations" in stream.getvalue()


def test_quiet_plot_prints_nothing(base_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(base_run, run_dir)
    code, out, err = run_cli(capsys, "plot", str(run_dir), "--format", "png", "--quiet")
    assert code == 0 and out == "" and err == ""
    assert (run_dir / "plots" / "traces.png").exists()


def test_every_printing_command_takes_quiet():
    parser = cli.app.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    for name in ("run", "plot", "reproduce", "plan", "sweep", "sweep-plot", "examples"):
        flags = {f for a in sub.choices[name]._actions for f in a.option_strings}
        assert "--quiet" in flags, name
    for name in ("run", "reproduce", "plan", "sweep"):
        flags = {f for a in sub.choices[name]._actions for f in a.option_strings}
        assert "--progress-every" in flags, name


def _limit_files(tmp_path, monkeypatch, v2=None, v1=None, available_kib=8 * 2**20):
    import tempfile

    from jaxcollapse.engine import host

    tmp_path = type(tmp_path)(tempfile.mkdtemp(dir=tmp_path))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:       {4 * available_kib} kB\nMemAvailable:   {available_kib} kB\n")
    files = []
    for name, text in (("memory.max", v2), ("memory.limit_in_bytes", v1)):
        path = tmp_path / name
        if text is not None:
            path.write_text(text + "\n")
        files.append(str(path))
    monkeypatch.setattr(host, "MEMINFO", str(meminfo))
    monkeypatch.setattr(host, "CGROUP_LIMIT_FILES", tuple(files))
    monkeypatch.setattr(host, "PROC_CGROUP", str(tmp_path / "no-such-file"))
    return host


def test_available_memory_honours_the_cgroup_limit(tmp_path, monkeypatch):
    gib = 2**30
    host = _limit_files(tmp_path, monkeypatch)                          # no cgroup files: MemAvailable
    assert host.available_memory() == 8 * gib
    host = _limit_files(tmp_path, monkeypatch, v2="max")                # v2, no limit
    assert host.available_memory() == 8 * gib
    host = _limit_files(tmp_path, monkeypatch, v2=str(2 * gib))         # v2 limit below MemAvailable
    assert host.available_memory() == 2 * gib and host.cgroup_memory_limit() == 2 * gib
    host = _limit_files(tmp_path, monkeypatch, v2=str(64 * gib))        # a limit above MemAvailable: MemAvailable
    assert host.available_memory() == 8 * gib
    host = _limit_files(tmp_path, monkeypatch, v1="9223372036854771712")  # v1 without a limit
    assert host.available_memory() == 8 * gib and host.cgroup_memory_limit() is None
    host = _limit_files(tmp_path, monkeypatch, v1=str(3 * gib))         # v1 limit
    assert host.available_memory() == 3 * gib
    host = _limit_files(tmp_path, monkeypatch, v2="garbage")
    assert host.available_memory() == 8 * gib


def test_available_memory_reads_the_process_own_cgroup(tmp_path, monkeypatch):
    from jaxcollapse.engine import host

    proc = tmp_path / "cgroup"
    proc.write_text("0::/slurm/job_42\n")
    monkeypatch.setattr(host, "PROC_CGROUP", str(proc))
    assert host._own_cgroup_files() == ["/sys/fs/cgroup/slurm/job_42/memory.max"]
    proc.write_text("12:pids:/x\n4:memory:/docker/abc\n0::/\n")
    assert host._own_cgroup_files() == ["/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"]


def test_run_refuses_beyond_the_cgroup_limit(tmp_path, capsys, monkeypatch):
    host = _limit_files(tmp_path, monkeypatch, v2=str(20 * 2**20))      # a 20 MiB job
    monkeypatch.setattr(run_command, "available_memory", host.available_memory)
    code, _, err = run_cli(capsys, "run", "--chains", "100000", "--generations", "100", "--out", str(tmp_path / "o"))
    assert code == 2 and "20.0 MiB is available" in err


# ------------------------------------------------------------------------------------------------
# figures leave the caller's matplotlib backend alone


def test_library_code_never_sets_the_matplotlib_backend():
    import ast

    for folder, _, files in os.walk(os.path.join(ROOT, "jaxcollapse")):
        for f in files:
            if f.endswith(".py"):
                tree = ast.parse(open(os.path.join(folder, f), encoding="utf-8").read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                            and node.func.attr in ("use", "switch_backend") \
                            and "matplotlib" in ast.unparse(node.func.value) + ast.unparse(node.func).replace(
                                "plt.", "matplotlib.pyplot."):
                        pytest.fail(f"{f}:{node.lineno}: {ast.unparse(node)}")


def _fake_phase_sweep():
    gens = 5
    rows = []
    for regime in ("fresh_real",):
        for size in (10, 20):
            for fraction in (0.5, 1.0):
                t = np.array([2, 3, -1, 4, 5, -1])
                rec = {"collapse_time": t, "metrics": ["collision", "l1_initial"],
                       "mean": np.full((2, gens + 1), 0.3)}
                rows.append(({"regime": regime, "size": size, "fraction": fraction, "initial": "zipf", "vocab": 20,
                              "support": 10, "exponent": 1.1, "synthetic": int(size * fraction),
                              "real": size}, rec))
    return {"generations": gens, "chains": 6, "plot": {"x": "size", "y": "fraction"}}, rows


def _fake_trained_result(seed, corpus, regime, *, chains, generations, **kw):
    from types import SimpleNamespace

    g = generations + 1
    traces = {m: np.linspace(0, 1, chains * g).reshape(chains, g) for m in ("l1_initial", "missing_mass")}
    return SimpleNamespace(traces=traces, settings={"context_l1": np.linspace(0, 0.1, g)},
                           context_collapse_time=np.full((chains, corpus.initial.contexts), -1))


def test_figures_leave_the_backend_and_pyplot_alone(tmp_path, monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    from jaxcollapse.engine import simulate as simulate_module
    from jaxcollapse.studies import text
    from jaxcollapse.sweeps import phase

    backend, figures = matplotlib.get_backend(), plt.get_fignums()

    def refuse(*a, **k):
        raise AssertionError(f"matplotlib.use{a} called by library code")

    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setattr(plt, "switch_backend", refuse)
    monkeypatch.setattr(phase, "_load", lambda out: _fake_phase_sweep())
    made = phase.plot_sweep(tmp_path / "sweep", formats=("png", "svg"))
    assert [os.path.basename(p) for p in made] == ["phase.png", "phase.svg"]
    monkeypatch.setattr(simulate_module, "simulate_trained", _fake_trained_result)
    text.generation_modes(tmp_path / "text", order=1, generations=3)
    assert (tmp_path / "text" / "generation_modes.png").read_bytes().startswith(PNG_MAGIC)
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures
