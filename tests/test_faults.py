"""Nothing lost, nothing silently wrong when things fail: damaged run files, full disks, interrupts, two runs on one
directory, figures that fail, memory that does not suffice."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import interrupts
from jaxcollapse.cli import main
from jaxcollapse.io import files, rundir

TINY = ["--vocab", "20", "--support", "8", "-n", "20", "--chains", "6", "-g", "4", "--quiet"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxcollapse: error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "run"
    res = jc.simulate(1, jc.zipf(20, 1.0, support=8), jc.fully_synthetic(20), chains=6, generations=4)
    rundir.save_result(res, out, {"seed": 1}, [])
    return out


def _copy(finished, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(finished, d)
    return d


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_manifest(**entries):
    def edit(d):
        m = json.loads((d / "manifest.json").read_text())
        m.update(entries)
        (d / "manifest.json").write_text(json.dumps(m))
    return edit


def _drop_array(name):
    def edit(d):
        with np.load(d / "traces.npz") as z:
            arrays = {k: z[k] for k in z.files if k != name}
        np.savez(d / "traces.npz", **arrays)
    return edit


# damage -> (the file the error names, words of what is wrong)
DAMAGE = {
    "empty traces": (lambda d: (d / "traces.npz").write_bytes(b""), "traces.npz", "empty file"),
    "truncated traces": (lambda d: _truncate(d / "traces.npz"), "traces.npz", "damaged"),
    "array missing": (_drop_array("collapse_token"), "traces.npz", "collapse_token is missing"),
    "trace missing": (_drop_array("collision"), "traces.npz", "collision is missing"),
    "truncated summary": (lambda d: _truncate(d / "summary.csv", 0.6), "summary.csv", "truncated"),
    "empty summary": (lambda d: (d / "summary.csv").write_text(""), "summary.csv", "empty file"),
    "generations edited": (_edit_manifest(generations=50), "summary.csv", "0..50"),
    "chains edited": (_edit_manifest(chains=60), "traces.npz", "60 chains"),
    "generations not a number": (_edit_manifest(generations="many"), "manifest.json", "generations"),
    "newer format": (_edit_manifest(format_version=rundir.FORMAT_VERSION + 1), "manifest.json",
                     "newer than this jaxcollapse reads"),
    "manifest not json": (lambda d: _truncate(d / "manifest.json"), "manifest.json", "not valid JSON"),
}


@pytest.mark.parametrize("command", ["show", "plot"])
@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_names_the_file(case, command, finished, tmp_path, capsys):
    d = _copy(finished, tmp_path)
    damage, name, words = DAMAGE[case]
    damage(d)
    if case == "manifest not json":     # not a finished run for the reader of directories, damaged for load_run
        assert not rundir.is_run(d)
    assert main([command, str(d)]) == 2
    line = one_error(capsys)
    assert f"{d / name}: " in line and words in line, line
    assert not (d / "plots").exists()


def test_a_run_of_format_1_still_reads(finished, tmp_path):
    d = _copy(finished, tmp_path)
    _edit_manifest(format_version=1)(d)
    assert rundir.load_run(d).result.chains == 6


# ------------------------------------------------------------------------------------------------
# atomic writes and full disks


@pytest.mark.parametrize("failing", ["write", "fsync", "close"])
def test_atomic_file_never_leaves_its_temporary_file(failing, tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    full = OSError(28, "No space left on device")
    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(full))
    with pytest.raises(jc.ConfigError, match=f"{target}: no space left on device"):
        with files.atomic_file(target) as f:
            if failing == "write":
                raise full
            if failing == "close":
                real = f.close

                def close():
                    real()
                    raise full
                f.close = close
            f.write(b"new")
    assert os.listdir(tmp_path) == ["f.bin"] and target.read_bytes() == b"old"


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    out = tmp_path / "o"
    assert main(["run", *TINY, "--no-plots", "--out", str(out)]) == 2
    line = one_error(capsys)
    assert f"{out / 'traces.npz'}: no space left on device" in line
    assert not (out / "manifest.json").exists() and not [p for p in os.listdir(out) if p.startswith(".")]


def test_a_full_tmpfs(tmp_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        (mount / "filler").write_bytes(b"x" * (56 << 10))     # two pages left: the lock and summary.csv fit
        out = mount / "o"
        assert main(["run", *TINY, "--no-plots", "--out", str(out)]) == 2
        line = one_error(capsys)
        assert f"{out / 'traces.npz'}: no space left on device" in line, line
        left = os.listdir(out) if out.exists() else []      # a run that wrote nothing leaves no directory
        assert "manifest.json" not in left and not [p for p in left if p.startswith(".")], left
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


# ------------------------------------------------------------------------------------------------
# output directories: overwrite, unfinished runs, locks


def test_overwrite_removes_what_the_package_wrote(finished, tmp_path, capsys):
    d = _copy(finished, tmp_path)
    (d / "plots").mkdir()
    (d / "plots" / "traces.svg").write_text("<svg/>")
    (d / ".traces.npz.tmp-1").write_bytes(b"x")
    (d / "notes.txt").write_text("mine")
    assert main(["run", *TINY, "--no-plots", "--overwrite", "--out", str(d)]) == 0
    assert sorted(os.listdir(d)) == ["collapse.csv", "manifest.json", "notes.txt", "summary.csv", "traces.npz"]


def test_an_interrupted_run_directory_is_reused_with_overwrite(finished, tmp_path, capsys):
    d = _copy(finished, tmp_path)
    (d / "manifest.json").unlink()
    assert main(["run", *TINY, "--no-plots", "--out", str(d)]) == 2
    assert "unfinished jaxcollapse run" in one_error(capsys)
    assert main(["run", *TINY, "--no-plots", "--overwrite", "--out", str(d)]) == 0
    assert rundir.is_run(d)


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "summary.csv").write_text("mine")
    (d / "thesis.tex").write_text("mine")
    assert main(["run", *TINY, "--no-plots", "--overwrite", "--out", str(d)]) == 2
    assert "thesis.tex" in one_error(capsys)
    assert sorted(os.listdir(d)) == ["summary.csv", "thesis.tex"]


def test_a_locked_directory_is_refused_at_once_and_a_stale_lock_is_taken_over(tmp_path, capsys, monkeypatch):
    d = tmp_path / "o"
    d.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (d / files.LOCK).write_text(f"{other.pid} {os.uname().nodename}\n")
        simulated = []
        monkeypatch.setattr("jaxcollapse.engine.simulate.simulate", lambda *a, **k: simulated.append(1))
        assert main(["run", *TINY, "--no-plots", "--out", str(d)]) == 2
        line = one_error(capsys)
        assert f"pid {other.pid}" in line and "another jaxcollapse run" in line and not simulated
    finally:
        other.kill()
        other.wait()
    monkeypatch.undo()
    assert main(["run", *TINY, "--no-plots", "--out", str(d)]) == 0     # its process is gone: stale
    assert not (d / files.LOCK).exists() and rundir.is_run(d)


def test_failing_figures_are_a_warning_after_complete_results(tmp_path, capsys, monkeypatch):
    def broken(run, formats=None):
        raise RuntimeError("no fonts")

    monkeypatch.setattr("jaxcollapse.io.plots.plot_run", broken)
    out = tmp_path / "o"
    assert main(["run", *TINY[:-1], "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "jaxcollapse: warning: the figures could not be drawn (no fonts)" in err and "Traceback" not in err
    assert rundir.is_run(out)


# ------------------------------------------------------------------------------------------------
# memory and time, before anything is allocated


def test_memory_is_estimated_before_the_truth_is_built(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("jaxcollapse.engine.host.available_memory", lambda: 64 << 20)
    monkeypatch.setattr("jaxcollapse.core.initial.dirichlet", lambda *a, **k: pytest.fail("built"))
    assert main(["run", "--initial", "dirichlet", "--vocab", "3000", "--contexts", "3000", "--out",
                 str(tmp_path / "o")]) == 2
    line = one_error(capsys)
    assert "contexts 3000 x vocab 3000" in line and "64.0 MiB is available" in line
    assert not (tmp_path / "o").exists()


def test_memory_of_a_corpus_table_is_estimated_before_it_is_built(tmp_path, capsys, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(f"w{i}" for i in range(3000)))
    monkeypatch.setattr("jaxcollapse.engine.host.available_memory", lambda: 64 << 20)
    assert main(["run", "--corpus", str(corpus), "--tokens", "words", "--max-vocab", "5000", "--max-contexts",
                 "5000", "--out", str(tmp_path / "o")]) == 2
    line = one_error(capsys)
    assert "max_vocab" in line and "2999 contexts" in line and "3000 tokens" in line


def test_a_chain_larger_than_the_memory_budget_is_refused_before_building(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("jaxcollapse.core.count.build", lambda *a, **k: pytest.fail("built"))
    assert main(["run", "--vocab", "10000000", "--memory", "64", "--out", str(tmp_path / "o")]) == 2
    assert "--memory 64 MiB" in one_error(capsys)


def test_a_very_long_run_is_warned_about_off_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("jaxcollapse.cli.run.LONG_RUN_S", 0.0)
    out = tmp_path / "o"
    assert main(["run", *TINY[:-1], "--no-plots", "--progress-every", "0", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("jaxcollapse: warning: this run will take about") == 1


# ------------------------------------------------------------------------------------------------
# interrupts


@pytest.fixture
def sigint():
    """SIGINT handled by Python's default handler during the test, and so by default in the processes it starts
    (a test run launched in the background inherits SIGINT ignored); the previous handler afterwards."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_an_interrupt_while_writing_leaves_no_file_and_no_manifest(sigint, tmp_path, capsys, monkeypatch):
    real = np.savez_compressed

    def interrupted(f, **arrays):
        real(f, **arrays)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    out = tmp_path / "o"
    assert main(["run", *TINY, "--no-plots", "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "jaxcollapse: interrupted"
    left = os.listdir(out)
    assert "manifest.json" not in left and "traces.npz" not in left and not [p for p in left if p.startswith(".")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_interrupt_stays_ignored(sigint):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts.handling(hard_exit=False):
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        assert not interrupts.pending()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_an_interrupt_inside_jax_waits_for_the_next_safe_point(sigint):
    with interrupts.handling(hard_exit=False):
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                assert interrupts.pending()     # recorded, not raised inside the block
        assert not interrupts.pending()


def _start(out, *extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "jaxcollapse", "run", "--chains", "20000", "-g", "100",
                             "--no-plots", "--progress-every", "0.2", "--out", str(out), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(proc, words, limit=240):
    """Read the process's stderr until a line holds ``words``; the lines read."""
    seen = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if words in line:
            return seen
    proc.kill()
    pytest.fail(f"never saw {words!r}: {seen[-5:]}")


def _interrupted(proc, out):
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=240) == 130
    lines = [x for x in err.splitlines() if not x.startswith("jaxcollapse run: [")]
    assert lines == ["jaxcollapse: interrupted"], err[-2000:]
    left = os.listdir(out) if out.exists() else []
    assert "manifest.json" not in left and not [p for p in left if p.startswith(".")], left


@pytest.mark.slow
def test_interrupt_at_start_up(sigint, tmp_path):
    fifo = tmp_path / "settings.toml"
    os.mkfifo(fifo)
    out = tmp_path / "o"
    proc = _start(out, "--config", str(fifo))
    t0 = time.monotonic()
    while True:             # the command is reading its settings once the pipe has a reader
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert time.monotonic() - t0 < 120 and proc.poll() is None
            time.sleep(0.05)
    try:
        time.sleep(0.2)
        _interrupted(proc, out)
    finally:
        os.close(fd)
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("stage, words", [("compilation", "(compiling)"), ("run", "chain-generations (")])
def test_interrupt_during_compilation_and_run(sigint, stage, words, tmp_path):
    out = tmp_path / "o"
    proc = _start(out)
    _wait_for(proc, words)
    _interrupted(proc, out)
    assert not out.exists()
