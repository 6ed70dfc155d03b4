"""A sweep's store: resume after ``kill -9`` equals an uninterrupted run, a damaged part or array chunk is run
again (not a crash), directories of the earlier one-file-per-point layout, the writer's buffering.

The in-process sweeps use the bucket shape of test_sweep.py (23 chains, 40 generations, one point per call), so
the module compiles the engine once."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_sweep import GRID, TOML, _env

import jaxcollapse as jc
from jaxcollapse.errors import ConfigError

ST = importlib.import_module("jaxcollapse.sweeps.store")


def _same(a, b):
    """Two SweepResults hold the same points, value for value."""
    assert sorted(a.records) == sorted(b.records)
    for i, rec in a.records.items():
        assert set(rec) == set(b.records[i])
        for k, v in rec.items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(v, b.records[i][k], equal_nan=True), k
            else:
                assert v == b.records[i][k], k
    assert a.to_pandas().equals(b.to_pandas())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "ref"
    jc.sweep(GRID, out=d)
    return jc.load_sweep(d)


@pytest.mark.slow
def test_kill_9_and_resume_equal_uninterrupted(tmp_path):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(TOML)
    ref = jc.sweep(str(spec_file), out=tmp_path / "ref")
    env = _env(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "jaxcollapse", "sweep", str(spec_file), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = out / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and any(n.endswith(".parquet") for n in os.listdir(parts)):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the sweep ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    part = jc.load_sweep(out)
    assert 1 <= len(part.records) < 12 and not part.complete and not (out / "manifest.json").exists()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    back = jc.load_sweep(out)
    assert back.complete
    _same(back, jc.load_sweep(tmp_path / "ref"))
    _same(back, ref)
    assert not [n for n in os.listdir(parts) if ".tmp-" in n]


def test_damaged_part_and_chunk_are_run_again(tmp_path, reference):
    d = tmp_path / "a"
    jc.sweep(GRID, out=d)
    parts = sorted((d / "parts").iterdir())
    with open(parts[-1], "r+b") as f:                          # a truncated part: its points are lost
        f.truncate(os.path.getsize(parts[-1]) // 2)
    lost = jc.load_sweep(d)
    assert not lost.complete and 0 < len(lost.records) < 4
    res = jc.sweep(GRID, out=d)                                 # resume: the part's points are run again
    assert res.complete and res.ran == sorted(set(range(4)) - set(lost.records))
    _same(jc.load_sweep(d), reference)
    chunks = [os.path.join(r, n) for r, _, files in os.walk(d / "arrays.zarr" / "collapse_time" / "c") for n in files]
    with open(chunks[0], "wb") as f:                           # a damaged array chunk (every row of it)
        f.write(b"not blosc")
    assert len(jc.load_sweep(d).records) < 4
    res = jc.sweep(GRID, out=d)
    assert res.complete and res.ran
    _same(jc.load_sweep(d), reference)


def test_earlier_layout_loads_but_does_not_resume(tmp_path, reference):
    d = tmp_path / "old"
    (d / "points").mkdir(parents=True)
    fp = {"format_version": 1, "chains": 23, "generations": 40, "seed": 3, "keep_final": False}
    (d / "sweep.json").write_text(json.dumps(fp))
    pts = reference.points
    for p in pts:
        rec = reference.records[p.index]
        arrays = {k: v for k, v in rec.items() if isinstance(v, np.ndarray)}
        np.savez(d / "points" / f"{p.id}.npz", settings=json.dumps(p.settings), fingerprint=json.dumps(fp),
                 metrics=np.array(rec["metrics"]), **arrays)
    (d / "manifest.json").write_text(json.dumps({"jaxcollapse_sweep": 1, "format_version": 1, "chains": 23,
                                                 "generations": 40, "seed": 3, "points": [
                                                     {"index": p.index, "id": p.id, "settings": p.settings}
                                                     for p in pts]}))
    (d / "points" / f"{pts[0].id}.npz").write_bytes(b"PK\x03\x04 truncated")
    old = jc.load_sweep(d)
    assert sorted(old.records) == [1, 2, 3] and not old.complete
    np.testing.assert_array_equal(old.records[2]["collapse_time"], reference.records[2]["collapse_time"])
    with pytest.raises(ConfigError, match="earlier version"):
        jc.sweep(GRID, out=d)


def test_writer_buffers_until_flush(tmp_path, reference, monkeypatch):
    d = tmp_path / "w"
    spec = reference.plan.spec
    ST.prepare_store(d, spec)
    monkeypatch.setattr(ST, "FLUSH_SECONDS", 3600.0)
    for p in reference.points[:2]:
        ST.write_point(d, p, reference.records[p.index], spec)
    ST.flush(d)                                     # the first flush commits
    ST.write_point(d, reference.points[2], reference.records[2], spec)
    ST.flush(d)                                     # within FLUSH_SECONDS: still buffered
    assert len(os.listdir(d / "parts")) == 1
    ST.close(d)
    assert len(os.listdir(d / "parts")) == 2
    recs, parts = ST.read_store(d, reference.points)
    assert sorted(recs) == [0, 1, 2] and len(parts) == 2
    with pytest.raises(ConfigError, match="another sweep"):
        ST.prepare_store(d, type(spec)(points=spec.points[:2], chains=23, generations=40, seed=3))
