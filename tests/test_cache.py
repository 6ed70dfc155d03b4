"""The persistent compilation cache of jaxcollapse.engine.cache: where it goes, how it is turned off, and that a
compiled program lands in it."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.core.kernels import kernel_for
from jaxcollapse.engine import cache, programs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def jax_settings():
    """Restore JAX's cache settings after the test."""
    names = ["jax_compilation_cache_dir"] + [name for name, _, _ in cache._THRESHOLDS]
    saved = {name: getattr(jax.config, name) for name in names}
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_dir() == os.path.join(str(tmp_path), "jaxcollapse", "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.default_dir() == os.path.join(str(tmp_path), ".cache", "jaxcollapse", "jax")


def test_off_changes_nothing(monkeypatch, jax_settings):
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv(cache.ENV, "OFF")
    assert cache.configure() is None
    assert jax.config.jax_compilation_cache_dir == before


def test_named_dir_sets_jax_and_stores_every_program(monkeypatch, tmp_path, jax_settings):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "c"))
    assert cache.configure() == str(tmp_path / "c")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1


def test_a_cache_jax_already_has_is_kept(monkeypatch, tmp_path, jax_settings):
    monkeypatch.delenv(cache.ENV, raising=False)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.5)
    assert cache.configure() == str(tmp_path / "mine")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 2.5


def test_before_jax_starts_a_compiled_program_lands_in_the_default_dir(tmp_path):
    """In a fresh process: configure() does not import JAX, sets JAX's variables, and the first jitted call
    writes an entry under $XDG_CACHE_HOME/jaxcollapse/jax."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "JAXCOLLAPSE_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    code = ("import sys\nfrom jaxcollapse.engine.cache import configure\np = configure()\n"
            "assert 'jax' not in sys.modules\nimport jax\nprint(p)\n"
            "jax.jit(lambda x: x * 3 + 1)(jax.numpy.arange(5.0)).block_until_ready()\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = os.path.join(str(tmp_path), "jaxcollapse", "jax")
    assert out.stdout.strip() == path
    assert os.listdir(path)


# ------------------------------------------------------------------------------------------------
# the program store (jaxcollapse.engine.programs)

_TWO_STUDIES = """
import sys, jax, numpy as np, jaxcollapse as jc
from jaxcollapse.engine import programs
exports = []
export = jax.export.export
jax.export.export = lambda *a, **k: (exports.append(1), export(*a, **k))[1]
r = jc.simulate(3, jc.zipf(30, 1.1), jc.partially_synthetic(50, 20), chains=37, generations=12, sampler="resample")
b = jc.simulate(5, jc.zipf(20, 1.1), jc.fully_synthetic(10**5), chains=9, generations=5, sampler="binomial")
np.savez(sys.argv[1], kl=r.traces["kl"], l1=r.traces["l1_initial"], entropy=b.traces["entropy"],
         collapse=b.collapse_time)
print(len(exports), sorted(type(run).__name__ for _, run in programs._LOADED.values()))
"""


def _two_studies(path, env):
    out = subprocess.run([sys.executable, "-c", _TWO_STUDIES, str(path)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(maxsplit=1)


def _config(initial, regime, sampler):
    from jaxcollapse.engine.simulate import _build
    with jax.enable_x64(True):
        return _build(initial, regime, 5, None, 0.0, sampler, None)[1]


def test_a_second_process_reads_the_programs_back_and_gets_the_same_trajectories(tmp_path):
    """A fresh process exports and stores the driver's programs (two per study); a second one reads them back,
    exporting none; both give the trajectories of a run without the store, bit for bit."""
    env = dict(os.environ, JAXCOLLAPSE_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    exported, kinds = _two_studies(tmp_path / "first.npz", env)
    assert exported == "4" and "partial" not in kinds
    stored = sorted(os.listdir(tmp_path / "cache" / programs.FOLDER))
    assert len(stored) == 4 and all(name.endswith(".program") for name in stored)
    exported, kinds = _two_studies(tmp_path / "second.npz", env)
    assert exported == "0" and "partial" not in kinds
    assert sorted(os.listdir(tmp_path / "cache" / programs.FOLDER)) == stored
    _two_studies(tmp_path / "plain.npz", dict(env, JAXCOLLAPSE_CACHE_DIR="off"))
    runs = [np.load(tmp_path / f"{name}.npz") for name in ("first", "second", "plain")]
    for name in ("kl", "l1", "entropy", "collapse"):
        assert np.array_equal(runs[0][name], runs[2][name]) and np.array_equal(runs[1][name], runs[2][name])


def test_a_program_key_names_the_function_statics_shapes_and_code(monkeypatch):
    import jax.numpy as jnp
    from jaxcollapse.engine import driver
    args = (jnp.zeros(3), jnp.int32(1))
    base = programs.key(driver.segment, args, {"length": 4})
    assert programs.key(driver.segment, (jnp.ones(3), jnp.int32(7)), {"length": 4}) == base   # values are not keys
    assert programs.key(driver.start, args, {"length": 4}) != base
    assert programs.key(driver.segment, args, {"length": 5}) != base
    assert programs.key(driver.segment, (jnp.zeros(4), jnp.int32(1)), {"length": 4}) != base
    assert programs.key(driver.segment, (jnp.zeros(3, jnp.int32), jnp.int32(1)), {"length": 4}) != base
    assert programs.key(driver.segment, (jnp.zeros(3), 1.0), {"length": 4}) != base
    study = jc.fully_synthetic(10)
    jobs = [driver.Job(kernel_for(config), config) for config in (
        _config(jc.zipf(10, 1.1), study, "resample"), _config(jc.zipf(10, 1.1), study, "tokens"),
        _config(jc.zipf(11, 1.1), study, "resample"))]
    assert len({programs.key(driver.segment, args, {"job": job}) for job in jobs}) == 3
    from jaxcollapse.core import count
    monkeypatch.setitem(count.DATA, "fully_synthetic", count.DATA["partially_synthetic"])   # a table edited at run time
    edited = programs.key(driver.segment, args, {"length": 4})
    assert edited != base
    monkeypatch.setattr(programs, "_source_digest", lambda: "edited")
    assert programs.key(driver.segment, args, {"length": 4}) != edited


def test_only_the_package_kernels_are_stored(monkeypatch, tmp_path, jax_settings):
    """A kernel other than the package's own (here one whose collapsed chains do not freeze) runs without the
    store: its code is not part of the keys."""
    import jaxcollapse.engine.simulate as sim
    study = dict(initial=jc.zipf(12, 1.1), regime=jc.fully_synthetic(20), chains=5, generations=4)
    monkeypatch.setenv(cache.ENV, str(tmp_path / "c"))
    monkeypatch.setattr(programs, "_LOADED", {})
    monkeypatch.setattr(sim, "kernel_for", lambda config: kernel_for(config)._replace(freezes=lambda c: False))
    jc.simulate(2, **study)
    assert not (tmp_path / "c" / programs.FOLDER).exists() and not programs._LOADED


def test_a_damaged_program_is_exported_again_and_off_stores_nothing(monkeypatch, tmp_path, jax_settings):
    study = dict(initial=jc.zipf(12, 1.1), regime=jc.fully_synthetic(20), chains=5, generations=4)
    monkeypatch.setenv(cache.ENV, "off")
    plain = jc.simulate(2, **study).traces["entropy"]
    assert not (tmp_path / "c").exists()
    monkeypatch.setenv(cache.ENV, str(tmp_path / "c"))
    monkeypatch.setattr(programs, "_LOADED", {})
    assert np.array_equal(jc.simulate(2, **study).traces["entropy"], plain)
    folder = tmp_path / "c" / programs.FOLDER
    names = sorted(os.listdir(folder))
    assert len(names) == 2
    for name in names:
        (folder / name).write_bytes(b'{"format": 1, "classes": []}\nnot a program')
    monkeypatch.setattr(programs, "_LOADED", {})
    assert np.array_equal(jc.simulate(2, **study).traces["entropy"], plain)
    assert sorted(os.listdir(folder)) == names
    assert all(b"not a program" not in (folder / name).read_bytes() for name in names)
