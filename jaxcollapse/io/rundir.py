"""A study's results directory: writing it atomically and reading it back.

The per-context table and the theory that goes with a run are formatted in :mod:`jaxcollapse.io.report`;
its names (``theory_for``, ``theory_lines``, ``context_stats``, ``contexts_csv``, ``format_contexts``,
``Theory``, ``Curve``) are re-exported here.

A finished run directory holds:

``summary.csv``     tidy per-generation statistics, ``generation,metric,mean,sd,ci_low,ci_high,n``
                    (the rows of :meth:`Result.summary_rows`; ``inf`` where a chain's KL is infinite, ``nan``
                    where undefined).
``traces.npz``      per-chain traces ``<metric>`` ``(chains, G+1)`` (unless traces were not kept),
                    ``collapse_time`` ``(chains,)`` (-1 = censored), ``collapse_token`` and
                    ``context_collapse_time`` ``(chains, contexts)``, ``final`` ``(chains, contexts, vocab)``
                    when kept, the truth ``initial`` ``(contexts, vocab)`` and its ``weights``, token ``labels`` and
                    ``context_labels`` when known, per-context mean traces ``context_mean_<metric>``
                    ``(G+1, contexts)`` for per-context runs, ``summary_infinite`` ``(metrics, G+1)`` and, for
                    3-token vocabularies, ``trajectories`` ``(k, G+1, contexts, 3)`` of the first ``k`` chains.
``collapse.csv``    ``chain,collapse_time,censored,token``; a censored chain (no collapse within the run) has an
                    empty ``collapse_time`` and ``censored = 1``, so that no filter on ``collapse_time`` counts
                    it; ``token`` is the token a one-context chain collapsed onto (-1 if censored or if the
                    model has several contexts). :func:`read_collapse_csv` reads it back with -1 for censored
                    chains, as in ``traces.npz`` and :class:`Result`. (Runs of ``format_version`` 1 wrote the
                    last generation simulated with ``censored = 1``; they are read the same way.)
``contexts.csv``    (several contexts) per-context initial support and collision probability, weight, fraction of
                    chains collapsed, median collapse time (NaN when fewer than half collapsed) and the token
                    most often collapsed onto.
``plots/``          figures (:mod:`jaxcollapse.io.plots`).
``manifest.json``   configuration as given and resolved, seed, versions, backend, wall time, the command line,
                    and the marker ``"jaxcollapse_run": 1``.

Every file is written to a temporary name in the directory and moved into place with ``os.replace``
(:mod:`jaxcollapse.io.files`); the manifest is written last, so a directory without one is never a finished run.
A run holds the directory's lock while it writes. :func:`load_run` reads the files back through the checked
readers of :mod:`jaxcollapse.io.readers` (``format_version`` 1 and 2; a damaged file is a ConfigError naming it).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import platform
import sys
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .. import interrupts
from ..errors import ConfigError
from ..core.initial import Initial
from .readers import (FORMAT_VERSION, MANIFEST, MARKER, check_arrays, read_arrays, read_collapse_csv,
                      read_run_manifest, read_summary_csv)
from .files import LOCK, held_error, atomic_file, is_temp_name, lock_holder, output_lock, write_text
# The report (context tables, theory) lives in report.py; its names stay reachable here.
from .report import (ContextStats, Curve, Theory, context_stats, contexts_csv, earliest_contexts,
                     format_contexts, theory_for, theory_lines)

if TYPE_CHECKING:
    from ..engine.result import Result

SUMMARY = "summary.csv"
TRACES = "traces.npz"
COLLAPSE = "collapse.csv"
CONTEXTS = "contexts.csv"
PLOTS = "plots"
#: Files (and the plots folder) a run writes; ``--overwrite`` removes only these, figures and temporary files.
RUN_FILES = (MANIFEST, SUMMARY, TRACES, COLLAPSE, CONTEXTS)
#: Figure files in ``plots/`` that a run or ``jaxcollapse plot`` writes.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


# ------------------------------------------------------------------------------------------------
# directories and atomic writes


def read_manifest(directory) -> dict | None:
    """The manifest of a finished run in ``directory``, or None if it has none (or not a valid one)."""
    path = os.path.join(os.fspath(directory), MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get(MARKER) == 1:
        return data
    return None


def is_run(directory) -> bool:
    """Whether ``directory`` holds a finished jaxcollapse run (a manifest with the run marker)."""
    return read_manifest(directory) is not None


def _ours(directory: str) -> tuple[list[str], list[str]]:
    """The entries of ``directory`` that a run writes (its files, figures in ``plots/``, temporary files, the
    lock) and the others, as relative paths."""
    ours, others = [], []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name == PLOTS and os.path.isdir(path) and not os.path.islink(path):
            for fig in os.listdir(path):
                mine = fig.endswith(FIGURE_SUFFIXES) or is_temp_name(fig)
                (ours if mine and os.path.isfile(os.path.join(path, fig)) else others).append(f"{PLOTS}/{fig}")
            ours.append(PLOTS)
        elif (name in RUN_FILES or name == LOCK or is_temp_name(name)) and os.path.isfile(path):
            ours.append(name)
        else:
            others.append(name)
    return ours, others


def check_out_dir(directory, overwrite: bool = False) -> None:
    """Raise ConfigError unless results may be written to ``directory``.

    Allowed: a directory that does not exist yet (its nearest existing parent must be writable), an empty
    directory, or (with ``overwrite``) a directory holding only what a run writes: a finished run, or one that was
    interrupted or killed before its manifest was written (other files are kept, and allowed only beside a
    finished run). A directory another run is writing (its lock held by a live process) is refused.
    """
    d = os.fspath(directory)
    if os.path.exists(d):
        if not os.path.isdir(d):
            raise ConfigError(f"output {d} exists and is not a directory")
        held = lock_holder(d)
        if held is not None:
            raise held_error(d, held)
        ours, others = _ours(d)
        if others and not is_run(d):
            raise ConfigError(f"output directory {d} exists, is not empty and is not a finished jaxcollapse run "
                              f"({others[0]} is not a file a run writes); choose another --out or empty it")
        if [x for x in ours if x != LOCK and not is_temp_name(os.path.basename(x))] and not overwrite:
            what = "a jaxcollapse run" if is_run(d) else f"an unfinished jaxcollapse run (no {MANIFEST})"
            raise ConfigError(f"output directory {d} already holds {what}; pass --overwrite to replace it or "
                              f"choose another --out")
        if not os.access(d, os.W_OK | os.X_OK):
            raise ConfigError(f"output directory {d} is not writable")
        return
    parent = os.path.dirname(os.path.abspath(d))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create output directory {d}: {parent} is not a writable directory")


def clear_run(directory) -> None:
    """Remove what a previous run wrote (manifest first, so the directory stops being a run at once): its files,
    its figures, ``plots/`` if that leaves it empty, and temporary files; never anything else, nor the lock."""
    d = os.fspath(directory)
    ours, _ = _ours(d)
    for rel in sorted(ours, key=lambda x: (x != MANIFEST, x == PLOTS)):
        path = os.path.join(d, rel)
        if rel == LOCK:
            continue
        with contextlib.suppress(OSError):
            os.rmdir(path) if rel == PLOTS else os.remove(path)


# ------------------------------------------------------------------------------------------------
# environment


def versions() -> dict:
    """Versions of jaxcollapse, jax, jaxlib, numpy, scipy, matplotlib and Python."""
    from importlib import metadata

    out = {}
    for name in ("jaxcollapse", "jax", "jaxlib", "numpy", "scipy", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def backend() -> dict:
    """The JAX backend and its first device."""
    try:
        import jax

        devices = jax.devices()
        return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
                "device_count": len(devices), "platform": devices[0].platform}
    except Exception as e:  # pragma: no cover - reported, never fatal
        return {"backend": None, "error": str(e)}


# ------------------------------------------------------------------------------------------------
# saving


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else repr(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if x is None or isinstance(x, (bool, int, str)):
        return x
    return str(x)


def summary_csv(result: Result) -> str:
    """``summary.csv`` text: :meth:`Result.summary_csv` (plain floats; ``inf``/``nan`` as pandas reads them)."""
    return result.summary_csv()


def collapse_csv(result: Result) -> str:
    """``collapse.csv`` text (see the module docstring)."""
    out = io.StringIO()
    out.write("chain,collapse_time,censored,token\n")
    t = result.collapse_time
    one = result.collapse_token.shape[1] == 1
    for i in range(result.chains):
        cens = t[i] < 0
        tok = int(result.collapse_token[i, 0]) if one and not cens else -1
        out.write(f"{i},{'' if cens else int(t[i])},{int(cens)},{tok}\n")
    return out.getvalue()


def save_result(result: Result, directory, config: dict | None = None, argv=None, *,
                initial: Initial | None = None, given: dict | None = None, command: str | None = None,
                extra: dict | None = None, trajectories: np.ndarray | None = None,
                overwrite: bool = False) -> dict:
    """Write ``result`` to ``directory`` (created if needed) and return the manifest.

    Args:
      result: what :func:`jaxcollapse.simulate` returned.
      directory: the run directory; it must not exist, be empty, or (with ``overwrite``) hold a finished run.
      config: the resolved configuration (JSON-friendly); its ``seed`` is recorded too.
      argv: the command line that produced it (default ``sys.argv``).
      initial: the truth ``p^(0)`` (needed to redraw theory curves and the simplex picture later); default
        ``result.initial``.
      given: the configuration as given (flags and config file), recorded as is.
      command: a command line that reruns the study.
      extra: more JSON-friendly entries for the manifest (e.g. the corpus description).
      trajectories: ``(k, G+1, contexts, vocab)`` models of the first ``k`` chains, for the simplex picture.
    """
    d = os.fspath(directory)
    if initial is None:
        initial = getattr(result, "initial", None)
    check_out_dir(d, overwrite)
    with output_lock(d):
        clear_run(d)
        return _write_run(result, d, config, argv, initial, given, command, extra, trajectories)


def _write_run(result, d, config, argv, initial, given, command, extra, trajectories) -> dict:
    config = dict(config or {})
    if argv is None:
        argv = list(sys.argv)
    files = {}

    def record(name):
        files[name] = os.path.getsize(os.path.join(d, name))

    write_text(os.path.join(d, SUMMARY), summary_csv(result))
    record(SUMMARY)
    arrays = {"collapse_time": result.collapse_time, "collapse_token": result.collapse_token,
              "context_collapse_time": result.context_collapse_time,
              "summary_metrics": np.array(list(result.summary)),
              "summary_infinite": np.stack([np.asarray(s.infinite) for s in result.summary.values()])}
    if result.traces is not None:
        arrays.update({m: np.asarray(v) for m, v in result.traces.items()})
    if result.final is not None:
        arrays["final"] = result.final
    if result.context_traces is not None:
        for m, v in result.context_traces.items():
            with np.errstate(invalid="ignore"):
                arrays[f"context_mean_{m}"] = np.asarray(v).mean(axis=0)
    if initial is not None:
        arrays["initial"] = np.asarray(initial.probs)
        arrays["weights"] = np.asarray(initial.weights)
        if initial.labels is not None:
            arrays["labels"] = np.array([str(x) for x in initial.labels], dtype=str)
        if initial.context_labels is not None:
            arrays["context_labels"] = np.array([str(x) for x in initial.context_labels], dtype=str)
    if trajectories is not None:
        arrays["trajectories"] = np.asarray(trajectories)
    with atomic_file(os.path.join(d, TRACES)) as f:
        np.savez_compressed(f, **arrays)
    record(TRACES)
    write_text(os.path.join(d, COLLAPSE), collapse_csv(result))
    record(COLLAPSE)
    if initial is not None and result.context_collapse_time.shape[1] > 1:
        stats = context_stats(result.context_collapse_time, result.collapse_token, initial, result.generations)
        write_text(os.path.join(d, CONTEXTS), contexts_csv(stats, initial))
        record(CONTEXTS)
    manifest = {
        MARKER: 1,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "given": given,
        "seed": config.get("seed"),
        "settings": result.settings,
        "chains": result.chains,
        "generations": result.generations,
        "traces_kept": result.traces is not None,
        "final_kept": result.final is not None,
        "wall_time_s": result.wall_time,
        "versions": versions(),
        "jax": backend(),
        "command": command,
        "argv": list(argv),
        "cwd": os.getcwd(),
        "files": files,
    }
    if extra:
        manifest.update(extra)
    manifest = _jsonable(manifest)
    interrupts.check()          # an interrupted run leaves no manifest
    write_text(os.path.join(d, MANIFEST), json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def add_to_manifest(directory, **entries) -> None:
    """Add entries to a finished run's manifest (atomically; e.g. the list of plots)."""
    d = os.fspath(directory)
    manifest = read_manifest(d)
    if manifest is None:
        raise ConfigError(f"{d} is not a finished jaxcollapse run (no {MANIFEST})")
    manifest.update(_jsonable(entries))
    write_text(os.path.join(d, MANIFEST), json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------------
# loading


class Run(NamedTuple):
    """A finished run read back from its directory.

    Attributes:
      path: the directory. manifest: the manifest dict.
      result: a :class:`Result` rebuilt from the files (summary from ``summary.csv``; traces, collapse times and
        final models from ``traces.npz``; ``context_traces`` is None, the per-context means are in ``arrays``;
        ``initial`` is the truth when it was saved).
      initial: the truth (with labels), or None if it was not saved.
      arrays: everything in ``traces.npz``.

    In a notebook a Run is displayed with its headline numbers and a small figure; :meth:`plot`,
    :meth:`plot_rank_frequency`, :meth:`to_pandas` and :meth:`to_xarray` are those of :class:`Result`, with the
    saved truth and trajectories.
    """

    path: str
    manifest: dict
    result: Result
    initial: Initial | None
    arrays: dict

    @property
    def config(self) -> dict:
        return self.manifest.get("config") or {}

    @property
    def theory(self) -> Theory:
        return theory_for(self.result.settings, self.initial, self.result.generations)

    def plot(self, metric: str = "collision", ax=None, *, chains: int = 5):
        """The figure of one metric per generation, with the exact theory where it applies (the panel of
        ``plots/traces.png``); see :meth:`Result.plot`."""
        return self.result.plot(metric, ax, initial=self.initial, chains=chains)

    def plot_rank_frequency(self, generations=None, *, models=None, ax=None):
        """Rank–frequency of the truth and of the saved models (the final models and, when saved, the
        trajectories of the first chains); see :meth:`Result.plot_rank_frequency`."""
        if models is None and "trajectories" in self.arrays:
            models = self.arrays["trajectories"]
        return self.result.plot_rank_frequency(generations, models=models, initial=self.initial, ax=ax)

    def to_pandas(self, kind: str = "summary"):
        """See :meth:`Result.to_pandas`."""
        return self.result.to_pandas(kind)

    def to_xarray(self):
        """See :meth:`Result.to_xarray`; ``attrs`` also hold the run's ``path``."""
        from .frames import result_dataset

        return result_dataset(self.result, self.initial, {"path": os.path.abspath(self.path)})

    def _repr_html_(self) -> str:
        from .draw import result_html

        facts = [("directory", os.path.abspath(self.path))]
        if self.config.get("initial_description"):
            facts.append(("truth", str(self.config["initial_description"])))
        return result_html(self.result, self.theory.curves.get("collision", []), title="jaxcollapse Run",
                           facts=facts)

    def __repr__(self) -> str:
        res = self.result
        kept = [name for name, ok in (("traces", res.traces is not None), ("final", res.final is not None),
                                      ("initial", self.initial is not None),
                                      ("trajectories", "trajectories" in self.arrays)) if ok]
        return (f"Run({self.path!r}, {res.settings.get('regime', '?')}, chains={res.chains}, "
                f"generations={res.generations}, collapsed={int(res.collapsed.sum())}/{res.chains}, "
                f"kept={'+'.join(kept) or 'summary'})")


def load_run(directory) -> Run:
    """Read a finished run directory (see the module docstring), checked file by file: a ConfigError
    ``<path>: <what is wrong>`` names a missing, damaged or inconsistent file or a newer ``format_version``."""
    d = os.fspath(directory)
    if not os.path.isdir(d):
        raise ConfigError(f"run directory {d} not found")
    manifest = read_run_manifest(d)
    generations = manifest.get("generations")
    summary = read_summary_csv(os.path.join(d, SUMMARY), generations)
    if generations is None:
        generations = len(next(iter(summary.values())).mean) - 1
    traces_path = os.path.join(d, TRACES)
    arrays = read_arrays(traces_path)
    if "collapse_time" not in arrays:
        # traces.npz always holds the collapse times; a run without them falls back on collapse.csv (any version).
        table = read_collapse_csv(os.path.join(d, COLLAPSE))
        arrays["collapse_time"] = table["collapse_time"]
        arrays.setdefault("collapse_token", table["token"][:, None])
        arrays.setdefault("context_collapse_time", table["collapse_time"][:, None])
    chains = manifest.get("chains")
    if chains is None:
        chains = arrays["collapse_time"].shape[0]
    metrics = [m for m in summary if m in arrays]
    lost = [m for m in summary if m not in arrays]
    if manifest.get("traces_kept") and lost:
        raise ConfigError(f"{traces_path}: the trace {lost[0]} is missing (the manifest says the traces were kept)")
    if manifest.get("final_kept") and "final" not in arrays:
        raise ConfigError(f"{traces_path}: the array final is missing (the manifest says it was kept)")
    check_arrays(traces_path, arrays, chains, generations, metrics)
    if "summary_infinite" in arrays and "summary_metrics" in arrays:
        for name, inf in zip(arrays["summary_metrics"], arrays["summary_infinite"]):
            if str(name) in summary and np.shape(inf) == summary[str(name)].n.shape:
                summary[str(name)] = summary[str(name)]._replace(infinite=np.asarray(inf, np.int64))
    traces = {m: arrays[m] for m in metrics} or None
    initial = None
    if "initial" in arrays:
        labels = tuple(str(x) for x in arrays["labels"]) if "labels" in arrays else None
        clabels = tuple(str(x) for x in arrays["context_labels"]) if "context_labels" in arrays else None
        try:
            initial = Initial(arrays["initial"], arrays.get("weights", np.ones(1)), labels, clabels)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{traces_path}: the saved truth is damaged ({e})") from None
    from ..engine.result import Result     # JAX's import waits until a run is loaded

    result = Result(traces=traces, context_traces=None, summary=summary,
                    collapse_time=arrays["collapse_time"], collapse_token=arrays["collapse_token"],
                    context_collapse_time=arrays["context_collapse_time"], final=arrays.get("final"),
                    settings=manifest.get("settings") or {}, wall_time=float(manifest.get("wall_time_s") or 0.0),
                    chains=chains, generations=generations, initial=initial)
    return Run(d, manifest, result, initial, arrays)


__all__ = ["save_result", "load_run", "read_collapse_csv", "read_summary_csv", "atomic_file", "write_text", "Run", "is_run", "check_out_dir", "read_manifest", "theory_for",
           "theory_lines", "context_stats", "contexts_csv", "format_contexts", "ContextStats",
           "earliest_contexts", "Theory", "Curve"]
