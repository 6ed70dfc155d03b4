"""What the figures show: no empty panels, no legend over data, readable titles, the sweep phase diagram on
numeric axes, the Cauchy–Schwarz bound of Figure 3, the censored chains of the collapse figure."""

import math

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection, PolyCollection

import jaxcollapse as jc
from jaxcollapse.io import plots
from jaxcollapse.io.draw import NAMES, infinite_sentence
from jaxcollapse.io.rundir import load_run, save_result
from jaxcollapse.studies import paper
from jaxcollapse.sweeps import phase


def _drawn(fig):
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig


def _texts(fig) -> str:
    from matplotlib.text import Text

    return "\n".join(t.get_text() for t in fig.findobj(lambda a: isinstance(a, Text) and a.get_visible()))


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.axison]


def _data_points(ax) -> np.ndarray:
    """Display coordinates ``(k, 2)`` of every plotted vertex of ``ax``: lines, bands and markers."""
    pts = []
    for line in ax.get_lines():
        xy = np.column_stack([np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)])
        if xy.size and line.get_visible() and line.get_transform() == ax.transData:
            pts.append(ax.transData.transform(xy[np.isfinite(xy).all(axis=1)]))
    for col in ax.collections:
        if isinstance(col, PolyCollection):
            for path in col.get_paths():
                v = path.vertices
                pts.append(ax.transData.transform(v[np.isfinite(v).all(axis=1)]))
        elif isinstance(col, PathCollection):
            off = col.get_offsets()
            if len(off):
                pts.append(ax.transData.transform(np.asarray(off, float)))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def _legends_clear_of_data(fig) -> None:
    """No plotted vertex lies inside a legend's box (display coordinates)."""
    _drawn(fig)
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            pts = _data_points(ax)
            inside = ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1))
            assert not inside.any(), f"legend over {int(inside.sum())} data points of {ax.get_title()!r}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A small saved fully synthetic run: every chain's KL is infinite from generation 1, most chains collapse
    and some are censored."""
    p0 = jc.zipf(40, exponent=1.1, support=12)
    res = jc.simulate(0, p0, jc.fully_synthetic(15), chains=60, generations=40, sampler="resample")
    d = tmp_path_factory.mktemp("fully")
    save_result(res, str(d), config={"initial_description": "zipf(1.1) on 12 of 40"})
    return {"fully": load_run(str(d))}


def test_infinite_kl_panel_is_a_sentence(runs, tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(plots, "_save", lambda fig, folder, name, formats: made.append(fig) or [])
    plots.plot_traces(runs["fully"], str(tmp_path))
    (fig,) = made
    assert NAMES["kl"] not in _titles(fig) and "kl" not in _titles(fig)
    sentence = "KL divergence from p⁽⁰⁾ is infinite for every chain from generation 1"
    assert sentence in _texts(fig).replace("\n", " ")
    assert "max_prob" not in _titles(fig) and "largest probability" in _titles(fig)
    assert "L1 distance to p⁽⁰⁾" in _titles(fig)
    _legends_clear_of_data(fig)


def test_finite_kl_keeps_its_panel():
    class S:
        mean = np.array([0.0, 0.1, np.inf, np.inf])
        infinite = np.array([0, 0, 3, 4])
        n = np.array([4, 4, 4, 4])
    assert infinite_sentence("kl", S()) == ""          # finite at generation 1: something to draw
    S.mean = np.array([0.0, np.inf, np.inf, np.inf])
    S.infinite = np.array([0, 4, 4, 4])
    assert "from generation 1" in infinite_sentence("kl", S())


def test_collapse_figure_counts_censored_chains_and_compares_like_with_like(runs, tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(plots, "_save", lambda fig, folder, name, formats: made.append(fig) or [])
    run = runs["fully"]
    plots.plot_collapse(run, str(tmp_path))
    text = _texts(made[0]).replace("\n", " ")
    t = run.result.collapse_time
    censored = int((t < 0).sum())
    assert f"{censored:,} of {t.size:,} chains" in text and "censored" in text
    assert "Kaplan–Meier restricted mean E[min(T, 40)]" in text
    assert "exact E[min(T, 40)]" in text and "exact E[T] (no censoring)" in text
    assert "mean of the collapsed chains only" in text
    _legends_clear_of_data(made[0])


def test_collapse_figure_without_collapse_says_so():
    from types import SimpleNamespace

    res = SimpleNamespace(generations=12, chains=30, collapse_time=np.full(30, -1))
    theory = SimpleNamespace(collapse={"expected": 187.0}, curves={})
    fig = plots.collapse_figure(res, theory)
    assert "No chain collapsed within 12 generations: all 30 are censored" in _texts(fig).replace("\n", " ")
    assert not any("collapse times" in title for title in _titles(fig))       # no empty histogram
    _legends_clear_of_data(fig)


# ------------------------------------------------------------------------------------------------
# the paper's figures


def _partial(n, g):
    """One `_partial_figure` series of `g` generations with made-up numbers: no simulation."""
    from jaxcollapse.stats.analysis import MeanCI

    def r(v):
        v = np.asarray(v, float)
        return MeanCI(mean=v, sd=0.1 * v, ci_low=0.9 * v, ci_high=1.1 * v, n=100, infinite=0 * v)

    gens = np.arange(g + 1)
    coll = 0.1 + 0.01 * (1 - np.exp(-gens))
    dev = 1e-3 * (1 - np.exp(-gens[1:] + 1)) * n / 10
    l1 = 0.1 * np.sqrt(n) * (1 - np.exp(-gens[1:] + 1))
    return r(coll), coll, coll * 0.999, r(dev), dev, r(l1), np.sqrt(52 * dev)


def test_fig3_draws_the_cauchy_schwarz_bound_and_keeps_legends_off_the_data():
    g = 10
    series = [(f"N=100, n={n}", _partial(n, g)) for n in (10, 50)]
    fig = _drawn(paper._partial_figure("fig3", "test", series, g))
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any(label.startswith("Cauchy–Schwarz bound") for label in labels)
    l1_axes = fig.axes[2]
    cs = [line for line in l1_axes.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(cs) == 2                                         # one bound per series
    for line, (_, s) in zip(cs, series):
        np.testing.assert_allclose(line.get_ydata(), s[6])
    assert "σ_m" not in _texts(fig)                            # math text, not a literal
    assert all(ax.get_legend() is None for ax in fig.axes)
    _legends_clear_of_data(fig)


# ------------------------------------------------------------------------------------------------
# the sweep phase diagram


def _sweep_rows():
    """Made-up points over size x fraction for two regimes, one of them with a single collapsing point."""
    rows = []
    rng = np.random.default_rng(0)
    g = 20
    for regime, sizes in (("fresh_real", (2, 5, 20, 200)), ("partially_synthetic", (20, 50, 300))):
        for size in sizes:
            for fraction in (0.1, 0.5, 0.9, 1.0):
                if regime == "partially_synthetic" and fraction == 1.0:
                    continue
                share = 1.0 if (regime == "fresh_real" and fraction >= 0.9 and size <= 20) else 0.0
                if regime == "partially_synthetic" and size == 20 and fraction == 0.9:
                    share = 1.0
                t = np.where(rng.random(40) < share, rng.integers(1, g, 40), -1)
                mean = np.zeros((2, g + 1))
                mean[0, -1] = 0.1 + fraction / math.sqrt(size)
                mean[1, -1] = fraction
                rows.append(({"regime": regime, "size": size, "fraction": fraction}, {
                    "collapse_time": t, "metrics": ["collision", "l1_initial"], "mean": mean}))
    return rows, g


def _phase_panels(monkeypatch, y, theory=None):
    """The drawn phase figure of `_sweep_rows` over size and `y`, and its panels (no colour bars)."""
    monkeypatch.setattr(phase, "theory_point", lambda *a, **k: dict(theory or {}))
    monkeypatch.setattr(phase, "_initial_probs", lambda s: None)
    rows, g = _sweep_rows()
    fig = _drawn(phase.phase_figure(rows, g, 40, "size", y))
    return fig, [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_phase_diagram_axes_are_numeric_with_log_sizes(monkeypatch):
    fig, panels = _phase_panels(monkeypatch, "fraction")
    assert len(panels) == 6
    for ax in panels:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
        assert "log scale" in ax.get_xlabel() and "categor" not in ax.get_xlabel()
        lo, hi = ax.get_xlim()
        assert lo < 2 and hi > 200 if ax.get_subplotspec().rowspan.start == 0 else lo < 20 and hi > 300
        assert 0.1 in np.round(ax.get_yticks(), 6) and 0.9 in np.round(ax.get_yticks(), 6)
    # the single collapsing point of the second row does not set the colour range of the time panels
    time_images = [ax.collections[0] for ax in panels if "median collapse time" in ax.get_title()]
    assert len(time_images) == 2
    assert time_images[0].get_clim() == time_images[1].get_clim()
    lo, hi = time_images[1].get_clim()
    assert hi - lo > 1.0


def test_phase_contours_are_labelled(monkeypatch):
    fig, _ = _phase_panels(monkeypatch, "fraction", {"collision": 0.2})
    text = _texts(fig)
    assert "½ collapsed" in text
    assert any(t.get_text().replace(".", "", 1).isdigit() for ax in fig.axes for t in ax.texts)


@pytest.mark.slow                           # several compilations: one per round of the doubling schedule
def test_fig2_rounds_do_not_change_collapse_times(monkeypatch):
    """A round lengthened to the budget gives every chain the collapse time of the doubling schedule."""
    init = jc.uniform(4)
    key = paper.series_key(0, 2, 0)
    stretched = paper.collapse_times(key, init, 6, 24)
    monkeypatch.setattr(paper, "ROUND_BUDGET", 0)
    doubling = paper.collapse_times(key, init, 6, 24)
    assert np.array_equal(stretched, doubling) and (stretched >= 1).all()


def test_phase_diagram_says_when_an_axis_is_categorical(monkeypatch):
    _, panels = _phase_panels(monkeypatch, "regime")
    assert all(ax.get_ylabel() == "regime (categories, equally spaced)" for ax in panels)
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["fresh_real", "partially_synthetic"]


def test_contexts_figure_without_median_collapse_says_so(tmp_path, monkeypatch):
    from types import SimpleNamespace

    made = []
    monkeypatch.setattr(plots, "_save", lambda fig, folder, name, formats: made.append(fig) or [])
    chains, c, g = 8, 3, 10
    t = np.full((chains, c), -1)
    t[0, 1] = 4                                             # one chain of one context: no median reached
    res = SimpleNamespace(context_collapse_time=t, collapse_token=np.where(t >= 0, 0, -1), generations=g,
                          settings={"regime": "fully_synthetic"}, chains=chains)
    init = SimpleNamespace(probs=np.full((c, 4), 0.25), weights=np.full(c, 1 / c), context_labels=None)
    run = SimpleNamespace(result=res, initial=init, arrays={}, config={})
    plots.plot_contexts(run, str(tmp_path))
    fig = made[0]
    assert "No context collapses in half of the chains within 10 generations" in _texts(fig).replace("\n", " ")
    assert sum(ax.axison for ax in fig.axes) == 1               # the share panel; the empty histogram is gone
    _legends_clear_of_data(fig)
