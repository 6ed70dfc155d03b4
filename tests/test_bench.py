"""The benchmark's GPU script in its CPU smoke mode, and the bandwidth share of the metric pass."""

import json
import os
import subprocess
import sys

from jaxcollapse.bench.machine import metric_bytes_per_chain, metrics_share
from jaxcollapse.bench.workloads import WORKLOADS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_script_smoke_writes_its_tables(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHON=sys.executable)
    out = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), str(tmp_path), "--smoke", "W3"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.load(open(tmp_path / "gpu.json"))
    assert [w["workload"]["name"] for w in report["workloads"]] == ["W3"]
    assert report["exactness"]["exact"] and report["exactness"]["rows_sum_to_n"]
    assert report["exactness"]["n"] == 10 ** 9
    md = (tmp_path / "gpu.md").read_text()
    assert "**exact**" in md and "| W3 | engine" in md and "smoke 0" in md


def test_metric_pass_share():
    w = WORKLOADS["W6"]              # partially synthetic: the n synthetic samples, p^(1)'s counts and sums
    assert metric_bytes_per_chain(w, "resample") == 4 * 100 + 4 * 600 + 8 * 11
    assert metric_bytes_per_chain(WORKLOADS["W1"], "resample") == 4 * 100 + 4 * 1000
    share = metrics_share(w, 10, "resample", {"metrics_ms_per_gen": 2.0}, {"per_s": 4 * 28_880 / 2e-3})
    assert share["bytes_per_gen"] == 28_880
    assert abs(share["share_of_bandwidth"] - 0.25) < 1e-12
    assert "share_of_bandwidth" not in metrics_share(w, 10, "binomial", None, None)
