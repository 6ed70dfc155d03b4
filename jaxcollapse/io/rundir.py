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

Every file is written to a temporary name in the directory and moved into place with ``os.replace``; the
manifest is written last, so a directory without one is never a finished run.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import math
import os
import platform
import sys
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError
from ..core.initial import Initial
from ..engine.result import Result, Summary
# The report (context tables, theory) lives in report.py; its names stay reachable here.
from .report import (ContextStats, Curve, Theory, context_stats, contexts_csv, earliest_contexts,
                     format_contexts, theory_for, theory_lines)

MANIFEST = "manifest.json"
MARKER = "jaxcollapse_run"
#: 2: a censored chain's ``collapse_time`` in ``collapse.csv`` is empty (1: the last generation). Both are read.
FORMAT_VERSION = 2
SUMMARY = "summary.csv"
TRACES = "traces.npz"
COLLAPSE = "collapse.csv"
CONTEXTS = "contexts.csv"
PLOTS = "plots"
#: Files (and the plots folder) a run writes; ``--overwrite`` removes only these.
RUN_FILES = (MANIFEST, SUMMARY, TRACES, COLLAPSE, CONTEXTS)


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


def check_out_dir(directory, overwrite: bool = False) -> None:
    """Raise ConfigError unless results may be written to ``directory``.

    Allowed: a directory that does not exist yet (its nearest existing parent must be writable), an empty
    directory, or a finished jaxcollapse run when ``overwrite`` is true.
    """
    d = os.fspath(directory)
    if os.path.exists(d):
        if not os.path.isdir(d):
            raise ConfigError(f"output {d} exists and is not a directory")
        if os.listdir(d):
            if not is_run(d):
                raise ConfigError(f"output directory {d} exists, is not empty and is not a finished jaxcollapse run "
                                  f"(no {MANIFEST}); choose another --out or empty it")
            if not overwrite:
                raise ConfigError(f"output directory {d} already holds a jaxcollapse run; pass --overwrite to "
                                  f"replace it or choose another --out")
        if not os.access(d, os.W_OK | os.X_OK):
            raise ConfigError(f"output directory {d} is not writable")
        return
    parent = os.path.dirname(os.path.abspath(d))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create output directory {d}: {parent} is not a writable directory")


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb"):
    """Open a temporary file next to ``path``; on success flush, fsync and ``os.replace`` it onto ``path``."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    kwargs = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
    f = open(tmp, mode, **kwargs)
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_file(path, "w") as f:
        f.write(text)


def clear_run(directory) -> None:
    """Remove a previous run's files (manifest first, so the directory stops being a run at once)."""
    d = os.fspath(directory)
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(d, name))
    plots = os.path.join(d, PLOTS)
    if os.path.isdir(plots):
        for name in os.listdir(plots):
            if name.endswith((".png", ".pdf")):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(plots, name))
        with contextlib.suppress(OSError):
            os.rmdir(plots)


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


def read_collapse_csv(path) -> dict:
    """``collapse.csv`` as arrays ``{"chain", "collapse_time", "censored", "token"}`` (int64; ``censored`` bool),
    with ``collapse_time`` -1 for a censored chain whichever encoding wrote it (empty, or the last generation
    with ``censored = 1`` in runs of ``format_version`` 1). ConfigError if the file is not a collapse table."""
    need = ("chain", "collapse_time", "censored", "token")
    cols = {k: [] for k in need}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(need) <= set(reader.fieldnames):
                raise ConfigError(f"{path} is not a jaxcollapse collapse table (columns {', '.join(need)})")
            for r in reader:
                censored = int(r["censored"]) != 0 or not r["collapse_time"].strip()
                cols["chain"].append(int(r["chain"]))
                cols["censored"].append(censored)
                cols["collapse_time"].append(-1 if censored else int(r["collapse_time"]))
                cols["token"].append(int(r["token"]))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    out = {k: np.asarray(v, np.int64) for k, v in cols.items() if k != "censored"}
    out["censored"] = np.asarray(cols["censored"], bool)
    return out


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
    if os.path.isdir(d) and is_run(d):
        clear_run(d)
    os.makedirs(d, exist_ok=True)
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


def read_summary_csv(path, generations: int | None = None) -> dict:
    """``summary.csv`` as {metric: Summary} (``infinite`` left at 0; :func:`load_run` fills it in)."""
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"generation", "metric", "mean", "sd", "ci_low", "ci_high", "n"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ConfigError(f"{path} is not a jaxcollapse summary (columns {', '.join(sorted(need))})")
        for r in reader:
            rows.setdefault(r["metric"], []).append(r)
    out = {}
    for metric, rs in rows.items():
        rs.sort(key=lambda r: int(r["generation"]))
        col = {k: np.array([float(r[k]) for r in rs]) for k in ("mean", "sd", "ci_low", "ci_high")}
        n = np.array([int(r["n"]) for r in rs], np.int64)
        out[metric] = Summary(col["mean"], col["sd"], col["ci_low"], col["ci_high"], n, np.zeros_like(n))
    return out


def load_run(directory) -> Run:
    """Read a finished run directory (see the module docstring); ConfigError if it is not one."""
    d = os.fspath(directory)
    if not os.path.isdir(d):
        raise ConfigError(f"run directory {d} not found")
    manifest = read_manifest(d)
    if manifest is None:
        raise ConfigError(f"{d} is not a finished jaxcollapse run (no {MANIFEST} with the run marker)")
    try:
        summary = read_summary_csv(os.path.join(d, SUMMARY))
        with np.load(os.path.join(d, TRACES), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot read run {d}: {e}") from None
    if "summary_infinite" in arrays:
        for name, inf in zip(arrays["summary_metrics"], arrays["summary_infinite"]):
            if str(name) in summary:
                summary[str(name)] = summary[str(name)]._replace(infinite=np.asarray(inf, np.int64))
    if "collapse_time" not in arrays:
        # traces.npz always holds the collapse times; a run without them falls back on collapse.csv (any version).
        table = read_collapse_csv(os.path.join(d, COLLAPSE))
        arrays["collapse_time"] = table["collapse_time"]
        arrays.setdefault("collapse_token", table["token"][:, None])
        arrays.setdefault("context_collapse_time", table["collapse_time"][:, None])
    traces = {m: arrays[m] for m in summary if m in arrays} or None
    chains = int(manifest.get("chains", arrays["collapse_time"].shape[0]))
    generations = int(manifest.get("generations", len(next(iter(summary.values())).mean) - 1))
    initial = None
    if "initial" in arrays:
        labels = tuple(str(x) for x in arrays["labels"]) if "labels" in arrays else None
        clabels = tuple(str(x) for x in arrays["context_labels"]) if "context_labels" in arrays else None
        initial = Initial(arrays["initial"], arrays["weights"], labels, clabels)
    result = Result(traces=traces, context_traces=None, summary=summary,
                    collapse_time=arrays["collapse_time"], collapse_token=arrays["collapse_token"],
                    context_collapse_time=arrays["context_collapse_time"], final=arrays.get("final"),
                    settings=manifest.get("settings") or {}, wall_time=float(manifest.get("wall_time_s") or 0.0),
                    chains=chains, generations=generations, initial=initial)
    return Run(d, manifest, result, initial, arrays)


__all__ = ["save_result", "load_run", "read_collapse_csv", "Run", "is_run", "check_out_dir", "read_manifest", "theory_for",
           "theory_lines", "context_stats", "contexts_csv", "format_contexts", "ContextStats",
           "earliest_contexts", "Theory", "Curve"]
