"""The paper's figures (``jaxcollapse.reproduce``) and the ``plan`` command (``jaxcollapse.planning``)."""

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from jaxcollapse import cli
from jaxcollapse import reproduce, theory, uniform
from jaxcollapse.studies import history
from stats import FAIL_PROB


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == reproduce.COLUMNS
        return list(reader)


@pytest.fixture
def small(monkeypatch):
    """One series per figure, so that every figure runs in a few seconds."""
    monkeypatch.setattr(reproduce, "FIG2_NS", (10,))
    monkeypatch.setattr(reproduce, "FIG3_NS", (10,))
    monkeypatch.setattr(reproduce, "FIG4_EXPONENTS", (1.1,))
    monkeypatch.setattr(history, "FIG6_WINDOWS", (1,))
    monkeypatch.setattr(history, "FIG6_RANDOM_HISTORY", False)
    monkeypatch.setattr(reproduce, "FIG2_DISTRIBUTIONS", lambda: {"uniform on 10": uniform(10)})
    monkeypatch.setattr(history, "REGIMES_SERIES", ("accumulate",))
    monkeypatch.setattr(history, "DECODING_SERIES", ("top-k 5",))


# fig1 and fig3 write their files in the statistical tests below
EXPECTED = {
    "fig2": {"collapse_time"},
    "fig4": {"collision", "sq_deviation_from_first", "l1_from_first"},
    "fig6": {"collision", "P(T<=m)"},
    "regimes": {"diversity", "P(T<=m)"},
    "decoding": {"collision", "P(T<=m)"},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_figure_writes_its_files(name, small, tmp_path):
    messages = []
    head = reproduce.FIGURES[name](tmp_path, scale=0.002, seed=3, progress=messages.append)
    for ext in ("png", "csv", "json"):
        assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    assert json.loads((tmp_path / f"{name}.json").read_text()) == json.loads(json.dumps(head))
    assert head["figure"] == name and head["settings"]["seed"] == 3
    assert messages and all(isinstance(m, str) for m in messages)
    rows = _rows(tmp_path / f"{name}.csv")
    assert {r["quantity"] for r in rows} >= EXPECTED[name]
    sim = [r for r in rows if r["kind"] == "simulated"]
    assert sim and all(r["figure"] == name for r in rows)
    for r in sim:
        if r["ci_low"]:
            assert float(r["ci_low"]) <= float(r["value"]) + 1e-12 <= float(r["ci_high"]) + 2e-12
    if name != "decoding":                                       # top-k 5 has no exact theory
        assert any(r["kind"] != "simulated" for r in rows)


def _max_z_bound(k):
    return stats.norm.isf(FAIL_PROB / (2 * k))


def test_fig3_agrees_with_exact_theory(monkeypatch, tmp_path):
    """At fixed keys, the simulated E σ_m and E‖p^(m) - p^(1)‖² of Figure 3's setting (N = 100, n = 50, 2,000
    chains, 50 generations) agree with the corrected Theorem 2 and the exact deviation: every z of the CSV
    within the Bonferroni bound at a false-failure probability of FAIL_PROB per quantity."""
    monkeypatch.setattr(reproduce, "FIG3_NS", (50,))
    head = reproduce.fig3(tmp_path, chains=2000, seed=0)
    assert (tmp_path / "fig3.png").stat().st_size > 0
    assert json.loads((tmp_path / "fig3.json").read_text()) == json.loads(json.dumps(head))
    rows = _rows(tmp_path / "fig3.csv")
    assert {r["kind"] for r in rows} == {"simulated", "exact", "printed", "cauchy_schwarz", "recursion_bound"}
    p = np.asarray(reproduce.zipf52().probs[0])
    for quantity, exact in (("collision", theory.theorem2_collision(p, 100, 50, 50)),
                            ("sq_deviation_from_first", theory.partial_sq_deviation_from_first(p, 100, 50, 50))):
        sim = [r for r in rows if r["quantity"] == quantity and r["kind"] == "simulated" and r["z"]]
        ex = {int(r["x"]): float(r["value"]) for r in rows if r["quantity"] == quantity and r["kind"] == "exact"}
        assert len(sim) >= 49
        for r in sim:
            assert ex[int(r["x"])] == pytest.approx(exact[int(r["x"])], rel=1e-12)
            z = (float(r["value"]) - ex[int(r["x"])]) / float(r["se"])
            assert z == pytest.approx(float(r["z"]), rel=1e-6, abs=1e-9)
        zs = np.array([float(r["z"]) for r in sim])
        assert np.max(np.abs(zs)) < _max_z_bound(len(zs)), quantity
    series = head["series"]["N=100, n=50"]
    assert series["test_corrected_theorem2"]["p_value_bonferroni"] > FAIL_PROB
    assert series["test_sq_deviation"]["p_value_bonferroni"] > FAIL_PROB


def test_fig1_share_collapsed_agrees_with_wright_fisher(tmp_path):
    """Figure 1 (81 contexts of 3 tokens, about 12 samples each): the mean share of collapsed contexts per
    generation against the exact per-context Wright–Fisher probabilities, 1,000 chains."""
    head = reproduce.fig1(tmp_path, chains=1000, scale=0.5, seed=1)
    assert (tmp_path / "fig1.png").stat().st_size > 0
    rows = _rows(tmp_path / "fig1.csv")
    assert {r["quantity"] for r in rows} >= {"share_collapsed", "collision", "p[0]", "p[2]"}
    sim = [r for r in rows if r["quantity"] == "share_collapsed" and r["kind"] == "simulated" and r["z"]]
    zs = np.array([float(r["z"]) for r in sim])
    assert len(zs) >= 15
    assert np.max(np.abs(zs)) < _max_z_bound(len(zs))
    assert head["test_share_collapsed"]["p_value_bonferroni"] > FAIL_PROB


def test_collapse_times_run_every_chain_to_collapse():
    """Chains still alive after the first stage are run again for longer, with the same keys: every chain ends
    collapsed and the mean agrees with the exact E[T] (uniform on 4 tokens, n = 8, 4,000 chains)."""
    import jax

    init = uniform(4)
    t = reproduce.collapse_times(jax.random.key(5), init, 8, 4000)
    assert t.shape == (4000,) and t.min() >= 1
    stage = math.ceil(theory.littler_collapse_time(np.full(4, 0.25), 8))
    assert (t > stage).sum() > 100                               # the continuation was exercised
    exact = theory.expected_collapse_time(np.full(4, 0.25), 8)
    z = (t.mean() - exact) / (t.std(ddof=1) / math.sqrt(t.size))
    assert abs(z) < stats.norm.isf(FAIL_PROB / 2)


# ------------------------------------------------------------------------------------------------
# command line


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_reproduce_bad_figure_is_one_line(capsys, tmp_path):
    code, out, err = _cli(capsys, "reproduce", "fig9", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and err.startswith("jaxcollapse: error: figure must be one of")
    code, out, err = _cli(capsys, "reproduce", "fig3", "--scale", "0", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "scale" in err
    assert not list(tmp_path.iterdir())


PLAN = ("plan", "--vocab", "20", "--support", "10", "-n", "20", "--generations", "10", "--pilot-chains", "60")


def test_plan_json(capsys):
    code, out, err = _cli(capsys, *PLAN, "--metric", "collision", "--generation", "10", "--half-width", "0.01",
                          "--json")
    assert code == 0, err
    plan = json.loads(out)
    (row,) = plan["targets"]
    assert row["target"] == "mean collision at generation 10"
    z = stats.norm.ppf(0.975)
    assert row["chains"] == max(2, math.ceil((z * row["sd"] / 0.01) ** 2 * (1 - 1e-12)))
    assert row["run_time_s"] > 0 and plan["chain_generations_per_s"] > 0 and plan["pilot_chains"] == 60


def test_plan_table_proportion_and_collapse_time(capsys):
    code, out, err = _cli(capsys, *PLAN, "--collapsed-by", "10", "--collapse-time", "--half-width", "0.05")
    assert code == 0, err
    assert "P(collapsed by generation 10)" in out and "mean collapse time" in out and "pilot:" in out


@pytest.mark.parametrize("extra, message", [
    (("--metric", "nope", "--half-width", "0.1"), "metric must be one of"),
    (("--metric", "collision", "--generation", "11", "--half-width", "0.1"), "generation must be in [0, 10]"),
    (("--metric", "collision", "--half-width", "0"), "half_width"),
    (("--collapsed-by", "3", "--half-width", "2"), "half-width of a proportion"),
    (("--metric", "collision",), "--half-width"),
])
def test_plan_errors_are_one_line(capsys, extra, message):
    code, out, err = _cli(capsys, *PLAN, *extra)
    assert code == 2 and err.count("\n") == 1 and err.startswith("jaxcollapse: error:") and message in err, err


def test_quick_compilation_only_below_full_scale(monkeypatch):
    """Below full scale XLA_FLAGS asks for optimisation level 1 (unless the caller chose one); full scale and a
    process where JAX already started are left alone."""
    import os
    import sys

    from jaxcollapse.cli import reproduce as command

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    command.quick_compilation(0.05)                     # JAX runs here already: too late to change
    assert "XLA_FLAGS" not in os.environ
    monkeypatch.delitem(sys.modules, "jax")
    command.quick_compilation(1.0)
    assert "XLA_FLAGS" not in os.environ
    command.quick_compilation(0.05)
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=1"
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    command.quick_compilation(0.05)
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=3"
