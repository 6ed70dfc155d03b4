"""The false-failure budget of tests/stats.py still describes the suite's statistical tests."""

import ast
import pathlib

import pytest

import stats

HERE = pathlib.Path(__file__).parent
# Names whose use makes a test statistical: the assertions of tests/stats.py, the level, and the modules'
# own helpers that apply it.
STATISTICAL_NAMES = {"assert_mean", "assert_proportion", "z_for", "FAIL_PROB", "assert_mc", "_binomial_band",
                     "_max_z_bound"}


def _tests_using_the_level(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    helpers = {f.name for f in tree.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("test_")
               and any(isinstance(n, ast.Name) and n.id in STATISTICAL_NAMES for n in ast.walk(f))}
    names = STATISTICAL_NAMES | helpers
    return {f"{path.name}::{f.name}" for f in tree.body if isinstance(f, ast.FunctionDef)
            and f.name.startswith("test_") and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(f))}


def test_budget_numbers():
    assert stats.ASSERTIONS == sum(per_run * runs for per_run, runs in stats.STATISTICAL.values())
    assert stats.FAIL_PROB * stats.ASSERTIONS == pytest.approx(stats.SUITE_FALSE_FAILURE, rel=1e-12)
    assert stats.SUITE_FALSE_FAILURE <= 0.01


def test_every_statistical_test_is_counted(collected):
    """Each collected module's tests that apply the level are in ``stats.STATISTICAL``, and each listed test
    has the stated number of runs (parametrisations)."""
    runs, paths = collected
    modules = {p for p in paths if p.name.startswith("test_") and p.parent == HERE}
    for path in modules:
        listed = {name for name in stats.STATISTICAL if name.startswith(path.name + "::")}
        missing = _tests_using_the_level(path) - listed
        assert not missing, f"statistical tests missing from stats.STATISTICAL: {sorted(missing)}"
        for name in listed:
            found, stated = runs.get(name, 0), stats.STATISTICAL[name][1]
            assert found == stated, f"{name}: {found} collected runs, stats.STATISTICAL says {stated}"
