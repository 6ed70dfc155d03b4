"""The persistent compilation cache of jaxcollapse.engine.cache: where it goes, how it is turned off, and that a
compiled program lands in it."""

import os
import subprocess
import sys

import jax
import pytest

from jaxcollapse.engine import cache

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
