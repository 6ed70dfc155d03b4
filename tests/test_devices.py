"""Chunks spread over several devices give bit-identical results (8 simulated CPU devices, in a subprocess
because the device count is fixed when JAX starts)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np, jaxcollapse as jc
    assert len(jax.devices()) == 8, jax.devices()
    p = jc.zipf(40, 1.1, support=20)
    for regime, sampler in [(jc.fully_synthetic(30), "resample"), (jc.partially_synthetic(20, 10), "tokens")]:
        kw = dict(chains=53, generations=6, chunk_size=5, sampler=sampler)
        one = jc.simulate(7, p, regime, devices=jax.devices()[:1], **kw)
        many = jc.simulate(7, p, regime, **kw)
        assert len(many.settings["devices"]) == 8
        assert np.array_equal(one.final, many.final), regime
        for m in one.traces:
            assert np.array_equal(one.traces[m], many.traces[m], equal_nan=True), (regime, m)
        assert np.array_equal(one.collapse_time, many.collapse_time)
        three = jc.simulate(7, p, regime, devices=3, **kw)
        assert three.settings["devices"] == [str(d) for d in jax.devices()[:3]]
        assert np.array_equal(one.final, three.final)
        for m in one.traces:
            assert np.array_equal(one.traces[m], three.traces[m], equal_nan=True), (regime, m)
            assert np.array_equal(one.summary[m].mean, three.summary[m].mean, equal_nan=True), (regime, m)
    from jaxcollapse.cli import main
    assert main(["run", "--devices", "9", "--chains", "4", "-g", "2", "--quiet", "--no-plots"]) == 2
    print("ok")
""")


def test_eight_devices_match_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
    assert "--devices must be 'all' or a number from 1 to 8" in out.stderr, out.stderr[-3000:]
