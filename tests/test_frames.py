"""Results as objects in a notebook: ``to_pandas``, ``to_xarray``, ``plot``, ``plot_rank_frequency``, the rich
display and a short repr, for a fresh ``simulate`` result, a run saved and loaded back, and a small sweep.

One simulation (2,000 chains) and one sweep (the bucket shape of ``test_sweep.py``) are run for the module."""

import io
import sys

import numpy as np
import pytest

import jaxcollapse as jc

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")

CHAINS, GENERATIONS, N = 2000, 30, 20
SWEEP = {"chains": 23, "generations": 40, "seed": 3, "vocab": 40, "support": 20, "points_per_call": 1, "buckets": 1,
         "grid": {"regime": ["fully_synthetic"], "size": [3, 9]}}


@pytest.fixture(scope="module")
def truth():
    return jc.zipf(30, 1.1, support=12)


@pytest.fixture(scope="module")
def result(truth):
    return jc.simulate(0, truth, jc.fully_synthetic(N), chains=CHAINS, generations=GENERATIONS, keep_final=True)


@pytest.fixture(scope="module")
def run(result, truth, tmp_path_factory):
    from jaxcollapse.engine.simulate import trajectories

    d = tmp_path_factory.mktemp("runs") / "run"
    traj = trajectories(0, truth, jc.fully_synthetic(N), chains=6, generations=GENERATIONS)
    jc.save_result(result, d, {"seed": 0, "initial_description": "zipf(1.1) on 12 of 30"}, initial=truth,
                   trajectories=traj)
    return jc.load_run(d)


@pytest.fixture(scope="module")
def swept():
    return jc.sweep(SWEEP)


def _has_data(fig) -> bool:
    return any(len(line.get_xdata()) > 1 for ax in fig.axes for line in ax.lines) or \
        any(len(c.get_offsets()) for ax in fig.axes for c in ax.collections if hasattr(c, "get_offsets"))


def _labels(fig) -> list:
    out = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    for ax in fig.axes:
        out += [line.get_label() for line in ax.lines]
    return out


# ------------------------------------------------------------------------------------------------
# Result and Run


def _check_summary_frame(df, res):
    names = list(res.summary)
    assert list(df.columns) == ["generation", "metric", "mean", "sd", "ci_low", "ci_high", "n"]
    assert df.shape == ((res.generations + 1) * len(names), 7)
    for m in names:
        sub = df[df["metric"] == m].sort_values("generation")
        np.testing.assert_array_equal(sub["generation"], np.arange(res.generations + 1))
        for k in ("mean", "sd", "ci_low", "ci_high", "n"):
            np.testing.assert_array_equal(sub[k].to_numpy(), np.asarray(getattr(res.summary[m], k)))
    # the same table as summary.csv
    csv = pd.read_csv(io.StringIO(res.summary_csv()))
    pd.testing.assert_frame_equal(df.reset_index(drop=True), csv, check_dtype=False)


def _check_chains_frame(df, res):
    names = list(res.traces)
    assert list(df.columns) == ["chain", "generation", "metric", "value", "collapse_time", "censored"]
    assert len(df) == res.chains * (res.generations + 1) * len(names)
    for m in ("collision", "support"):
        sub = df[df["metric"] == m]
        values = sub.pivot(index="chain", columns="generation", values="value").to_numpy()
        np.testing.assert_array_equal(values, res.traces[m])
    first = df[(df["metric"] == names[0]) & (df["generation"] == 0)].sort_values("chain")
    t = res.collapse_time
    np.testing.assert_array_equal(first["censored"].to_numpy(), t < 0)
    assert first["collapse_time"].isna().to_numpy().tolist() == (t < 0).tolist()
    np.testing.assert_array_equal(first["collapse_time"][t >= 0].to_numpy(dtype=np.int64), t[t >= 0])


def _check_dataset(ds, res, initial=None):
    assert {"chain", "generation", "metric"} <= set(ds.dims)
    assert ds.sizes["chain"] == res.chains and ds.sizes["generation"] == res.generations + 1
    assert list(ds["metric"].values) == list(res.summary)
    assert ds["trace"].dims == ("metric", "chain", "generation")
    for m in ("collision", "kl", "l1_first"):
        np.testing.assert_array_equal(ds["trace"].sel(metric=m).values, res.traces[m])
        for k in ("mean", "sd", "ci_low", "ci_high", "n", "infinite"):
            np.testing.assert_array_equal(ds[f"summary_{k}"].sel(metric=m).values, getattr(res.summary[m], k))
    t = res.collapse_time
    np.testing.assert_array_equal(ds["censored"].values, t < 0)
    assert np.isnan(ds["collapse_time"].values[t < 0]).all()
    np.testing.assert_array_equal(ds["collapse_time"].values[t >= 0], t[t >= 0])
    np.testing.assert_array_equal(ds["collapsed_fraction"].values, res.collapsed_fraction())
    np.testing.assert_array_equal(ds["final"].values, res.final)
    assert ds.attrs["regime"] == res.settings["regime"] and ds.attrs["chains"] == res.chains
    assert "settings_json" in ds.attrs
    if initial is not None:
        np.testing.assert_array_equal(ds["initial"].values, initial.probs)


def test_result_to_pandas(result):
    _check_summary_frame(result.to_pandas(), result)
    _check_chains_frame(result.to_pandas("chains"), result)
    col = result.to_pandas("collapse")
    assert list(col.columns) == ["chain", "collapse_time", "censored", "token"] and len(col) == CHAINS
    assert col["token"].isna().to_numpy().tolist() == (result.collapse_time < 0).tolist()
    with pytest.raises(ValueError, match="kind must be"):
        result.to_pandas("bogus")


def test_result_to_xarray(result, truth):
    _check_dataset(result.to_xarray(), result)
    _check_dataset(result.to_xarray(initial=truth), result, truth)


def test_result_plot_and_theory(result, truth):
    from matplotlib.figure import Figure

    fig = result.plot()
    assert isinstance(fig, Figure) and _has_data(fig)
    assert fig._repr_png_().startswith(b"\x89PNG")
    with_theory = result.plot("collision", initial=truth)
    assert "exact (Theorem 1)" in _labels(with_theory)
    kl = result.plot("kl", initial=truth)                 # mean +inf once a token is lost: explained, not empty
    assert _has_data(kl)
    rank = result.plot_rank_frequency(initial=truth)
    assert isinstance(rank, Figure) and _has_data(rank)
    assert any("truth" in label for label in _labels(rank))
    from matplotlib.figure import Figure as Plain

    ax = Plain().subplots()
    assert result.plot("support", ax=ax) is ax.figure and _has_data(ax.figure)
    with pytest.raises(ValueError, match="unknown metric"):
        result.plot("nope")
    with pytest.raises(ValueError, match="no models kept for generation"):
        result.plot_rank_frequency(generations=[5])


def test_result_html_and_repr(result):
    text = result._repr_html_()
    k = int((result.collapse_time >= 0).sum())
    assert "<img" in text and "base64," in text
    assert result.settings["regime"] in text and f"{CHAINS:,} × {GENERATIONS}" in text
    assert f"{k:,} of {CHAINS:,} chains = {100 * (k / CHAINS):.1f}%" in text
    assert f"{result.summary['collision'].mean[-1]:.4g}" in text
    r = repr(result)
    assert len(r) < 2000 and f"chains={CHAINS}" in r and "array" not in r


def test_loaded_run(run, result, truth):
    res = run.result
    assert res.initial is not None
    _check_summary_frame(run.to_pandas(), res)
    _check_chains_frame(run.to_pandas("chains"), res)
    pd.testing.assert_frame_equal(run.to_pandas(), result.to_pandas())          # the saved run is the result
    ds = run.to_xarray()
    _check_dataset(ds, res, truth)
    assert ds.attrs["path"].endswith("run")
    fig = run.plot()
    assert _has_data(fig) and "exact (Theorem 1)" in _labels(fig)             # the truth was saved: theory
    rank = run.plot_rank_frequency()                   # trajectories for the early generations, final for G
    labels = _labels(rank)
    assert any(f"generation {GENERATIONS}:" in label and f"{CHAINS:,} chains" in label for label in labels)
    assert any("mean of 6 chains" in label for label in labels)
    text = run._repr_html_()
    assert "<img" in text and "zipf(1.1) on 12 of 30" in text and f"{CHAINS:,} × {GENERATIONS}" in text
    assert len(repr(run)) < 2000 and "Run(" in repr(run)


def test_plot_run_draws_the_rank_frequency_figure(run, tmp_path):
    from jaxcollapse.io.plots import plot_run

    files = plot_run(run, str(tmp_path), ("png",))
    names = sorted(p.rsplit("/", 1)[-1] for p in files)
    assert names == ["collapse.png", "rank_frequency.png", "traces.png"]
    assert (tmp_path / "rank_frequency.png").read_bytes().startswith(b"\x89PNG")


def test_missing_pandas_names_the_extra(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"needs pandas: pip install 'jaxcollapse\[io\]'"):
        result.to_pandas()
    with pytest.raises(ImportError, match=r"needs xarray: pip install 'jaxcollapse\[io\]'"):
        result.to_xarray()


# ------------------------------------------------------------------------------------------------
# SweepResult


def test_sweep_to_pandas(swept):
    df = swept.to_pandas()
    rec0 = swept.records[0]
    names = list(rec0["metrics"])
    g1 = SWEEP["generations"] + 1
    assert len(df) == len(swept.points) * g1 * (len(names) + 1)
    assert {"point", "id", "regime", "size", "generation", "metric", "mean", "sd", "ci_low", "ci_high",
            "n"} <= set(df.columns)
    for p in swept.points:
        rec = swept.records[p.index]
        for k, m in enumerate(names):
            sub = df[(df["point"] == p.index) & (df["metric"] == m)].sort_values("generation")
            assert (sub["size"] == p.settings["size"]).all()
            for stat in ("mean", "sd", "ci_low", "ci_high", "n"):
                np.testing.assert_array_equal(sub[stat].to_numpy(), rec[stat][k])
        sub = df[(df["point"] == p.index) & (df["metric"] == "collapsed")].sort_values("generation")
        np.testing.assert_array_equal(sub["mean"].to_numpy(), rec["collapsed"])
    table = pd.read_csv(io.StringIO(swept.table_csv()))         # the same rows as table.csv
    assert list(table.columns) == list(df.columns)
    for c in ("point", "generation", "mean", "sd", "ci_low", "ci_high", "n", "size"):
        np.testing.assert_array_equal(table[c].to_numpy(), df[c].to_numpy())


def test_sweep_to_xarray(swept):
    ds = swept.to_xarray()
    assert {"point", "generation", "metric", "chain"} <= set(ds.dims)
    assert ds.sizes["point"] == len(swept.points) and ds.sizes["chain"] == SWEEP["chains"]
    for p in swept.points:
        rec = swept.records[p.index]
        one = ds.sel(point=p.index)
        assert int(one["size"]) == p.settings["size"] and str(one["id"].values) == p.id
        for k, m in enumerate(rec["metrics"]):
            np.testing.assert_array_equal(one["summary_mean"].sel(metric=m).values, rec["mean"][k])
            np.testing.assert_array_equal(one["final_value"].sel(metric=m).values, rec[f"final_{m}"])
        t = rec["collapse_time"]
        np.testing.assert_array_equal(one["censored"].values, t < 0)
        np.testing.assert_array_equal(one["collapse_time"].values[t >= 0], t[t >= 0])
        np.testing.assert_array_equal(one["collapsed_fraction"].values, rec["collapsed"])


def test_sweep_plot_html_and_repr(swept):
    from matplotlib.figure import Figure

    fig = swept.plot("collision", x="size")
    assert isinstance(fig, Figure) and _has_data(fig) and len(fig.axes) == 2
    assert fig.axes[1].get_xlabel() == "size"
    assert _has_data(swept.plot("collapsed"))
    with pytest.raises(ValueError, match="unknown metric"):
        swept.plot("nope")
    assert swept.varying() == ["size", "synthetic"]
    text = swept._repr_html_()
    assert "<img" in text and f"{len(swept.points)} of {len(swept.points)} finished" in text
    r = repr(swept)
    assert len(r) < 2000 and "SweepResult(2/2 points" in r
