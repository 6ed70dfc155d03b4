"""Sweeps split into shards (SLURM job arrays): each shard writes only its own store, ``sweep-merge`` checks
and merges them, the result equals a one-process run value for value; the linear planner and the shares."""

import importlib
import os
import random

import pytest
from test_sweep import GRID, TOML
from test_sweep_store import _same

import jaxcollapse as jc
from jaxcollapse import cli
from jaxcollapse.errors import ConfigError

S = importlib.import_module("jaxcollapse.sweeps.sweep")
SP = importlib.import_module("jaxcollapse.sweeps.spec")
PL = importlib.import_module("jaxcollapse.sweeps.plan")
ST = importlib.import_module("jaxcollapse.sweeps.store")


@pytest.mark.slow
def test_shards_and_merge_equal_one_process(tmp_path):
    one = jc.sweep(GRID, out=tmp_path / "one")
    out = tmp_path / "sh"
    s0 = jc.sweep(GRID, out=out, shard="0/2")
    assert not s0.complete and os.listdir(out) == ["shards"]
    with pytest.raises(ConfigError, match=r"not finished .*1-of-2|run the missing shards"):
        S.merge(out)
    s1 = jc.sweep(GRID, out=out, shard=(1, 2))
    assert sorted(s0.ran + s1.ran) == [0, 1, 2, 3] and not set(s0.ran) & set(s1.ran)
    assert sorted(os.listdir(out / "shards")) == ["0-of-2", "1-of-2"] and not (out / "manifest.json").exists()
    merged = S.merge(out)
    assert merged.complete and (out / "manifest.json").exists()
    back = jc.load_sweep(out)
    _same(back, one)
    back.parts.reverse()                                        # parts out of point order: rows sorted
    _same(back, one)


@pytest.mark.slow
def test_cli_shards_from_slurm_and_sweep_merge(tmp_path, capsys, monkeypatch):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(TOML.replace("size = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]", "size = [3, 5, 9]"))
    out = tmp_path / "o"
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    for task in ("1", "2"):                                     # --array=1-2
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        assert cli.main(["sweep", str(spec_file), "--out", str(out), "--quiet"]) == 0
        assert os.path.isdir(out / "shards" / f"{int(task) - 1}-of-2" / "parts")
    assert not (out / "manifest.json").exists()
    assert cli.main(["sweep", str(spec_file), "--out", str(out), "--shard", "2/2"]) == 2
    assert "shard must be I/N" in capsys.readouterr().err
    assert cli.main(["sweep-merge", str(out)]) == 0
    text = capsys.readouterr().out
    assert "merged 3 points" in text and "results:" in text
    assert jc.load_sweep(out).complete


def test_parse_shard_and_env():
    assert ST.parse_shard("3/16") == (3, 16) and ST.parse_shard((0, 1)) == (0, 1)
    for bad in ("16/16", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ConfigError, match="shard must be"):
            ST.parse_shard(bad)
    assert ST.shard_from_env({}) is None
    assert ST.shard_from_env({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "8"}) == (7, 8)
    assert ST.shard_from_env({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1",
                              "SLURM_ARRAY_TASK_COUNT": "8"}) == (7, 8)


def _quadratic_split(sizes, most, per_point, compile_units):
    """The reference: the plain O(most * k^2) dynamic programme."""
    k, inf = len(sizes), float("inf")
    cost = [[inf] * (k + 1) for _ in range(most + 1)]
    cut = [[0] * (k + 1) for _ in range(most + 1)]
    cost[0][0] = 0.0
    for b in range(1, most + 1):
        for j in range(1, k + 1):
            for i in range(b - 1, j):
                c = cost[b - 1][i] + (j - i) * sizes[j - 1] * per_point + compile_units
                if c < cost[b][j]:
                    cost[b][j], cut[b][j] = c, i
    return min(cost[b][k] for b in range(1, most + 1))


def test_linear_split_is_optimal():
    rng = random.Random(5)
    for _ in range(400):
        sizes = sorted(rng.choice([rng.randint(1, 8), rng.randint(1, 5000)]) for _ in range(rng.randint(1, 30)))
        most, per, cu = rng.randint(1, 6), rng.choice([1.0, 7.0, 1e5]), rng.choice([0.5, 50.0, 2e4, 2e9])
        bounds = PL._split(sizes, most, per, cu)
        assert bounds[0][0] == 0 and bounds[-1][1] == len(sizes) and len(bounds) <= most
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        got = sum((hi - lo) * sizes[hi - 1] * per + cu for lo, hi in bounds)
        assert got == pytest.approx(_quadratic_split(sizes, most, per, cu), rel=1e-12)


def test_shares_cover_the_plan_contiguously():
    spec = SP.spec_from_dict({"chains": 50, "generations": 20, "points_per_call": 3, "grid": [
        {"regime": ["fresh_real"], "size": [4, 8, 30, 200], "fraction": [0.3, 0.6, 0.9]},
        {"regime": ["fully_synthetic"], "size": [5, 6, 7]}]})
    plan = PL.make_plan(spec, platform="cpu")
    order = [tuple(t) for _, _, t in plan.tasks()]
    for n in (1, 2, 3, 5, 40):
        shares = [[tuple(t) for _, _, t in plan.share(i, n).tasks()] for i in range(n)]
        assert [t for s in shares for t in s] == order          # disjoint, complete, contiguous, in order
        points = sorted(i for k in range(n) for i in plan.share(k, n).share_points)
        assert points == list(range(len(plan.points)))
