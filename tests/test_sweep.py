"""Parameter sweeps: bucketing, identity with ``simulate``, files, devices, plots (the store's resume and repair:
test_sweep_store.py; shards: test_sweep_shards.py).

Every in-process sweep here uses the same bucket shape (``points_per_call = 1``, 23 chains, 40 generations), so
the whole module compiles the vmapped engine once."""

import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest
import xarray as xr

import jaxcollapse as jc
from jaxcollapse import cli
from jaxcollapse.errors import ConfigError

S = importlib.import_module("jaxcollapse.sweeps.sweep")
SP = importlib.import_module("jaxcollapse.sweeps.spec")
PL = importlib.import_module("jaxcollapse.sweeps.plan")
RUN = importlib.import_module("jaxcollapse.sweeps.run")
ST = importlib.import_module("jaxcollapse.sweeps.store")
phase = importlib.import_module("jaxcollapse.sweeps.phase")

BASE = {"chains": 23, "generations": 40, "seed": 3, "vocab": 40, "support": 20, "points_per_call": 1,
        "buckets": 1}
GRID = {**BASE, "grid": {"regime": ["fully_synthetic"], "size": [3, 5, 9, 14]}}
TOML = textwrap.dedent("""
    chains = 23
    generations = 40
    seed = 3
    vocab = 40
    support = 20
    points_per_call = 1
    buckets = 1
    [grid]
    regime = ["fully_synthetic"]
    size = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
""")


def _env(**extra):
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **extra)


def test_spec_grid_points_and_errors():
    spec = SP.spec_from_dict({**BASE, "grid": [{"regime": ["fresh_real"], "size": [4, 8], "fraction": [0.5, 1.0]}],
                             "points": [{"regime": "partially_synthetic", "real": 3, "synthetic": 2}]})
    pts = SP.resolve(spec)
    assert len(pts) == 5 and pts[-1].settings["size"] == 5 and pts[-1].settings["fraction"] == 0.4
    assert pts[1].settings == {**pts[1].settings, "regime": "fresh_real", "real": 4, "fraction": 1.0}
    assert len({p.id for p in pts}) == 5
    for bad, msg in [({"grid": {"regim": [1]}}, "unknown setting 'regim'"),
                     ({"grid": {"size": []}}, "empty list"),
                     ({"regime": "partially_synthetic", "size": 3, "fraction": 0.1}, "both must be >= 1"),
                     ({"regime": "fully_synthetic", "size": 3, "fraction": 0.5}, "fraction must be 1"),
                     ({"chains": 0}, "chains must be an integer"),
                     ({"points": [{"size": 3}, {"synthetic": 3}]}, "same settings")]:
        with pytest.raises(ConfigError, match=msg):
            SP.resolve(SP.spec_from_dict(bad))


def test_points_resolved_once_per_combination_equal_points_resolved_alone():
    spec = SP.spec_from_dict({"chains": 10, "generations": 5, "vocab": 30, "grid": [
        {"regime": ["fresh_real"], "initial": ["zipf", "uniform"], "size": [4, 9], "fraction": [0.25, 0.26, 0.5]},
        {"regime": ["partially_synthetic"], "initial": ["zipf", "uniform"], "size": [4, 9], "fraction": [0.25, 0.5]},
        {"regime": ["accumulate_subsample"], "synthetic": [2, 3], "real": [6], "train": [3, 6]}]})
    pts = SP.resolve(spec)
    alone = [SP.resolve_point(s, i) for i, s in enumerate(spec.points)]
    assert [(p.id, p.fold, p.settings, list(p.settings), p.regime) for p in pts] == \
           [(p.id, p.fold, p.settings, list(p.settings), p.regime) for p in alone]
    plan = PL.make_plan(spec, pts, platform="cpu")
    with jax.enable_x64(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p, (config, params) in zip(alone, plan.configs):
            c, q = p.build(spec.generations)
            assert config == c and all(np.array_equal(x, y) for x, y in zip(params, q))
    assert len({id(params) for _, params in plan.configs}) < len(pts)          # equal sizes share one
    bad = {"chains": 10, "generations": 5, "grid": {"regime": ["fresh_real"], "size": [4, 0]}}
    with pytest.raises(ConfigError, match=r"^point 1 \(.*size=0.*\): size must be"):
        SP.resolve(SP.spec_from_dict(bad))


def test_buckets_pad_sizes_and_vocab():
    spec = SP.spec_from_dict({**GRID, "points_per_call": None, "buckets": 3})
    plan = PL.make_plan(spec)
    assert len(plan.buckets) == 1 and plan.buckets[0].config.slots == 14      # a size sweep: one compilation
    spec = SP.spec_from_dict({"chains": 10, "generations": 5, "points": [
        {"synthetic": 9, "temperature": 0.7, "vocab": v, "sampler": "binomial"} for v in (33, 40, 64, 65)]})
    plan = PL.make_plan(spec)
    assert sorted(b.config.vocab for b in plan.buckets) == [64, 65]           # padded within a power of two
    many = SP.spec_from_dict({"chains": 1000, "generations": 100, "grid": {"size": [10, 20, 1000, 2000]}})
    assert len(PL.make_plan(many).buckets) == 2                                # big sizes not padded onto small


def test_points_equal_plain_simulate_and_compile_once(tmp_path):
    spec = SP.spec_from_dict({**GRID, "keep_final": True, "keep_traces": True})
    before = RUN.compiled_count()
    res = jc.sweep(spec, out=tmp_path / "a")
    assert RUN.compiled_count() - before <= 1 and res.complete and len(res.plan.buckets) == 1
    for p in res.points[2:3]:                # padded from 9 to 14 samples
        rec = res.records[p.index]
        sim = jc.simulate(SP.point_key(spec.seed, p), p.initial, p.regime, chains=spec.chains,
                          generations=spec.generations, keep_final=True)
        assert np.array_equal(sim.final, rec["final"])
        assert np.array_equal(sim.collapse_time, rec["collapse_time"])
        assert np.array_equal(sim.context_collapse_time, rec["context_collapse_time"])
        for k, m in enumerate(rec["metrics"]):
            np.testing.assert_allclose(rec[f"final_{m}"], sim.traces[m][:, -1], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(rec["mean"][k], sim.summary[m].mean, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(rec["traces"][k], sim.traces[m], rtol=1e-12, atol=1e-14)
    # files: the store (Parquet parts, Zarr arrays), the manifest written last; read back value for value
    d = tmp_path / "a"
    assert {"sweep.json", "parts", "arrays.zarr", "manifest.json"} <= set(os.listdir(d))
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["plan"]["compilations"] == 1 and manifest["points"] == 4 and manifest["bytes"] > 0
    back = jc.load_sweep(d)
    assert back.complete and sorted(back.records) == [0, 1, 2, 3]
    for i, rec in res.records.items():
        assert set(back.records[i]) == set(rec)
        for k, v in rec.items():
            assert np.array_equal(back.records[i][k], v, equal_nan=True) if isinstance(v, np.ndarray) else back.records[i][k] == v, k
    df = back.to_pandas()
    assert list(df.columns[:3]) == ["point", "id", "regime"] and list(df.columns[-7:]) == [
        "generation", "metric", "mean", "sd", "ci_low", "ci_high", "n"]
    assert len(df) == 4 * (spec.generations + 1) * (len(jc.METRICS) + 1)
    assert df.equals(res.to_pandas())
    z = xr.open_zarr(d / "arrays.zarr", consolidated=False)
    assert z["collapse_time"].dims == ("point", "chain") and z["final"].dims == ("point", "chain", "context", "token")
    assert z["traces"].dims == ("point", "metric", "chain", "generation")
    assert back.to_xarray()["traces"].dims == ("point", "metric", "chain", "generation")
    assert sorted(z["point"].values.tolist()) == [0, 1, 2, 3]
    assert back.to_xarray()["summary_mean"].dims == ("point", "metric", "generation")
    # the CSV tables of sweep-export: as many rows as the Parquet parts
    assert cli.main(["sweep-export", str(d), "--csv", "-q"]) == 0
    table = (d / "table.csv").read_text().splitlines()
    assert table[0].split(",")[:3] == ["point", "id", "regime"] and len(table) == 1 + len(df)
    assert len((d / "points.csv").read_text().splitlines()) == 5
    # the phase diagram and its theory
    made = phase.plot_sweep(d, "size", "regime")
    assert os.path.getsize(made[0]) > 10_000
    th = phase.theory_point(res.points[0].settings, res.points[0].initial.probs, spec.generations)
    p0 = res.points[0].initial.probs[0]
    assert th["collision"] == pytest.approx(jc.theory.fully_synthetic_collision(p0, 3, 40)[40])
    assert th["collapse_low"] <= th["collapse"] <= th["collapse_high"]


EIGHT = textwrap.dedent("""
    import importlib, jax, numpy as np
    import jaxcollapse as jc
    S = importlib.import_module("jaxcollapse.sweeps.sweep")
    assert len(jax.devices()) == 8
    spec = {"chains": 11, "generations": 7, "seed": 1, "vocab": 30, "support": 12, "points_per_call": 2,
            "grid": {"regime": ["fresh_real"], "size": [3, 6], "fraction": [0.5, 1.0]}}
    one = jc.sweep(spec, devices=jax.devices()[:1])
    many = jc.sweep(spec)              # each call group's chains sharded over the eight devices
    # Trajectories are bit-identical; metric sums may differ in the last bit between the one-device
    # program and the partitioned one (XLA compiles them separately).
    for i, r in one.records.items():
        for k in ("collapse_time", "collapse_token", "context_collapse_time", "collapsed"):
            assert np.array_equal(r[k], many.records[i][k]), k
        for k in ("mean", "final_l1_initial", "final_entropy"):
            np.testing.assert_allclose(r[k], many.records[i][k], rtol=1e-14, atol=1e-15)
    print("ok")
""")


def test_eight_devices_equal_one():
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=8")
    out = subprocess.run([sys.executable, "-c", EIGHT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_cli_dry_run_and_errors(tmp_path, capsys):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(TOML)
    assert cli.main(["sweep", str(spec_file), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "12 points" in text and "1 compilation" in text and "estimate:" in text
    assert not (tmp_path / "o").exists()
    (tmp_path / "bad.toml").write_text("chains = 10\n[grid]\nsize = [3, 0]\n")
    assert cli.main(["sweep", str(tmp_path / "bad.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxcollapse: error: point 1") and "size" in err[0]
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert cli.main(["sweep", str(spec_file), "--out", str(tmp_path / "x")]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_host_memory_counts_every_kept_record(monkeypatch):
    cost = importlib.import_module("jaxcollapse.sweeps.cost")
    plain = PL.make_plan(SP.spec_from_dict(GRID))
    kept = PL.make_plan(SP.spec_from_dict({**GRID, "keep_traces": True}))
    # 4 points' traces (8 metrics x 23 chains x 41 generations) are held until the sweep returns
    assert cost.host_bytes(kept) - cost.host_bytes(plain) >= 4 * 8 * 23 * 41 * 8
    monkeypatch.setattr(cost, "available_memory", lambda: cost.host_bytes(kept) - 1)
    cost.check_fits(plain)
    with pytest.raises(ConfigError, match="keep_traces"):
        cost.check_fits(kept)
