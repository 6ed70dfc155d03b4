"""Host side of :func:`jaxcollapse.simulate`: the per-chain arrays of a run, filled chunk by chunk from the
driver's records, and the per-generation moments merged in chain order (also across processes)."""

from __future__ import annotations

import math
import mmap

import numpy as np

from .local import allgather
from .result import METRIC_NAMES, Moments

#: Arrays from this size (bytes) on are mapped with their pages in place (:func:`empty`).
POPULATE_BYTES = 4 << 20


def empty(shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """``np.empty(shape, dtype)``, with its pages mapped in one call where the OS offers it (Linux
    ``MAP_POPULATE``) for arrays of :data:`POPULATE_BYTES` and more: the run's traces are written once, and
    writing new memory page by page faults once per 4 KiB page (on the 2-core test machine, a virtual one,
    a 64 MiB array's first write took 543 ms, against 61 ms mapped with its pages)."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    flag = getattr(mmap, "MAP_POPULATE", None)
    if size < POPULATE_BYTES or flag is None:
        return np.empty(shape, dtype)
    try:
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flag)
    except (OSError, ValueError, OverflowError):
        return np.empty(shape, dtype)
    return np.frombuffer(buffer, dtype).reshape(shape)


class Collector:
    """The driver's sink (:class:`jaxcollapse.engine.driver.Sink`) for :func:`jaxcollapse.simulate`.

    Chunk ``k`` holds chains ``k * chunk ..`` of the run; with several processes it is this process's slot
    ``k // processes`` of the ``(slots, chunk, ...)`` buffers gathered afterwards. Non-metric records of a
    kernel's ``info`` (e.g. ``context_l1``) are kept per chain in ``extra``."""

    def __init__(self, out: "Output", chunk: int, processes: int, width: int, per_context: bool):
        self.out, self.chunk, self.processes, self.width, self.per_context = out, chunk, processes, width, per_context
        self.moments = {}                                  # chunk -> {metric: Moments}, until merged

    def _rows(self, array, k, n):
        if self.out.shared:
            return array[k // self.processes][:n]
        return array[k * self.chunk:k * self.chunk + n]

    def block(self, k: int, first_column: int, info: dict) -> None:
        mo = self.moments.setdefault(k, {m: Moments(self.width) for m in METRIC_NAMES})
        out = self.out
        for m in METRIC_NAMES:
            block = info[m]
            n = block.shape[0]
            cols = slice(first_column, first_column + block.shape[1])
            part = Moments(block.shape[1])
            part.update(block)
            mk = mo[m]
            mk.n[cols], mk.mean[cols], mk.m2[cols], mk.inf[cols], mk.nan[cols] = (
                part.n, part.mean, part.m2, part.inf, part.nan)
            if out.traces is not None:
                self._rows(out.traces[m], k, n)[:, cols] = block
            if self.per_context:
                self._rows(out.context[m], k, n)[:, cols] = info[m + "/context"]
        for name, block in info.items():
            if name not in out.traces_names and not name.endswith("/context") and name != "model":
                array = out.extra.setdefault(name, np.zeros(out.lead + (self.width,)))
                self._rows(array, k, block.shape[0])[:, first_column:first_column + block.shape[1]] = block

    def finish(self, k: int, records: dict) -> None:
        out = self.out
        n = records["chain_collapse"].shape[0]
        self._rows(out.collapse_time, k, n)[:] = records["chain_collapse"]
        self._rows(out.context_time, k, n)[:] = records["collapse_time"]
        self._rows(out.context_token, k, n)[:] = records["collapse_token"]
        if out.final is not None:
            self._rows(out.final, k, n)[:] = records["final"]
        if out.shared:
            for m in METRIC_NAMES:
                out.moments[m][k // self.processes] = _pack(self.moments[k][m])

    def summary_moments(self) -> dict:
        """This process's chunks' moments merged in chain order (one process)."""
        total = {m: Moments(self.width) for m in METRIC_NAMES}
        for k in sorted(self.moments):
            for m in METRIC_NAMES:
                _merge(total[m], self.moments[k][m])
        return total


class Output:
    """Host arrays of a run. With one process, chunk ``k``'s chains are rows ``start .. start + n`` of the
    final arrays; with several, this process's ``j``-th chunk fills slot ``j`` of ``(slots, chunk, ...)``
    buffers that are gathered from every process and put in chain order afterwards."""

    def __init__(self, chains, chunk, width, c, v, *, keep_traces, per_context, keep_final, slots):
        self.shared = slots is not None
        lead = (slots, chunk) if self.shared else (chains,)
        self.traces = {m: empty(lead + (width,)) for m in METRIC_NAMES} if keep_traces else None
        self.context = {m: empty(lead + (width, c)) for m in METRIC_NAMES} if per_context else None
        self.collapse_time = np.empty(lead, np.int64)
        self.context_time = np.empty(lead + (c,), np.int64)
        self.context_token = np.empty(lead + (c,), np.int64)
        self.final = empty(lead + (c, v)) if keep_final else None
        self.moments = ({m: np.zeros((slots, 5, width)) for m in METRIC_NAMES} if self.shared else None)
        self.lead = lead
        self.traces_names = set(METRIC_NAMES)
        self.extra = {}

    def arrays(self) -> dict:
        names = ("traces", "context", "collapse_time", "context_time", "context_token", "final", "moments", "extra")
        values = {k: getattr(self, k) for k in names}
        return {k: v for k, v in values.items() if v is not None and not (isinstance(v, dict) and not v)}


def _merge(total: Moments, part: Moments) -> None:
    """Add one chunk's per-generation moments to ``total`` (Chan et al.), exactly as ``Moments.update`` adds a
    block with that count, mean and sum of squared deviations; chunks are merged in chain order, so the
    summary does not depend on which device or process measured which chunk."""
    total.inf = total.inf + part.inf
    total.nan = total.nan | part.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        n = total.n + part.n
        delta = part.mean - total.mean
        frac = np.where(n > 0, part.n / np.maximum(n, 1), 0.0)
        total.mean = total.mean + delta * frac
        total.m2 = total.m2 + part.m2 + delta ** 2 * total.n * frac
    total.n = n


def _pack(mo: Moments) -> np.ndarray:
    return np.stack([mo.n, mo.mean, mo.m2, mo.inf.astype(np.float64), mo.nan.astype(np.float64)])


def _unpack(a: np.ndarray) -> Moments:
    mo = Moments(a.shape[1])
    mo.n, mo.mean, mo.m2 = a[0].copy(), a[1].copy(), a[2].copy()
    mo.inf, mo.nan = a[3].astype(np.int64), a[4] > 0
    return mo


def gather(out: Output, starts: list, processes: int, chains: int, moments: dict) -> Output:
    """Collect every process's chunks (:func:`jaxcollapse.engine.local.allgather`) into chain-ordered arrays on
    every process, and merge the chunks' moments in chain order."""
    everything = allgather(out.arrays())
    full = Output(chains, 1, 1, 1, 1, keep_traces=False, per_context=False, keep_final=False, slots=None)
    for k in range(len(starts)):
        for m in METRIC_NAMES:
            _merge(moments[m], _unpack(everything["moments"][m][k % processes, k // processes]))

    def order(a):
        # (P, slots, chunk, ...) -> chunk k = a[k % P, k // P] -> (chains, ...)
        chunk = a.shape[2]
        k = np.arange(len(starts))
        rows = a[k % processes, k // processes]
        return rows.reshape((len(starts) * chunk,) + a.shape[3:])[:chains]
    full.traces = ({m: order(v) for m, v in everything["traces"].items()} if "traces" in everything else None)
    full.context = ({m: order(v) for m, v in everything["context"].items()} if "context" in everything else None)
    full.final = order(everything["final"]) if "final" in everything else None
    full.collapse_time = order(everything["collapse_time"])
    full.context_time = order(everything["context_time"])
    full.context_token = order(everything["context_token"])
    full.extra = {name: order(v) for name, v in everything.get("extra", {}).items()}
    return full
