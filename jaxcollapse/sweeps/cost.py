"""What a sweep's plan costs: a calibrated time estimate, and checks that its calls fit device and host memory."""

from __future__ import annotations

import contextlib
import dataclasses
import math

from ..engine.host import available_memory, clock
from ..errors import ConfigError
from .plan import Plan
from .run import time_call


@dataclasses.dataclass
class Estimate:
    """Predicted cost of a plan. seconds: compute + compilation; compile_s: per compilation (measured);
    rate: padded size units x chain-generations per second (measured); device_bytes: largest call;
    host_bytes: per-point arrays held at once."""

    seconds: float
    compile_s: float
    rate: float
    device_bytes: int
    host_bytes: int

    def describe(self) -> str:
        return (f"estimate: about {clock(self.seconds)} ({self.compile_s:.1f} s per compilation, "
                f"{self.rate / 1e6:.0f}M size-units x chain-generations/s measured); device memory per call "
                f"{self.device_bytes / 2**20:.0f} MiB, host memory {self.host_bytes / 2**20:.0f} MiB")


def record_bytes(spec, config) -> int:
    """Host bytes of one finished point's record, held until the sweep returns: per-chain collapse times and
    tokens, each metric at the last generation, the per-generation statistics, and the final models
    (``keep_final``) and every chain's traces (``keep_traces``) when kept."""
    g1 = spec.generations + 1
    n = spec.chains * (8 + 2 * 8 * config.contexts) + 8 * spec.chains * 8 + 6 * 8 * g1 * 8
    if spec.keep_final:
        n += spec.chains * config.contexts * config.vocab * 8
    if spec.keep_traces:
        n += 8 * spec.chains * g1 * 8
    return n


def host_bytes(plan: Plan) -> int:
    """Host bytes of a sweep at its peak: the records of every point of the plan's share (kept until the sweep
    returns) plus the largest call group's working arrays (metric blocks of a chunk, per-chain arrays)."""
    spec = plan.spec
    most = held = 0
    for b in plan.buckets:
        per_point = record_bytes(spec, b.config)
        held += per_point * sum(len(t) for t in b.tasks)
        block = b.chunk * (spec.generations + 1) * 8 * 8 * 2
        most = max(most, b.group * (per_point + block))
    return held + most


def estimate(plan: Plan, hosts: int = 1, devices=None) -> Estimate:
    """Time one call of the largest bucket (compilation, then a run) and extrapolate to the whole plan."""
    import jax

    spec = plan.spec
    device = (list(devices) if devices is not None else jax.local_devices())[0]
    b = max(plan.buckets, key=lambda b: len(b.points) * b.work)
    first, run, seg = time_call(plan, b, [device])
    rate = b.group * b.chunk * seg * b.work / run
    compile_s = max(first - 2 * run, 0.0)
    work = sum(len(bk.tasks) * bk.group * math.ceil(spec.chains / bk.chunk) * bk.chunk * spec.generations * bk.work
               for bk in plan.buckets)
    n_dev = 1 if devices is None and device.platform == "cpu" else len(devices or jax.local_devices())
    seconds = work / rate / hosts / max(n_dev, 1) + compile_s * (len(plan.buckets) - 1)
    return Estimate(seconds, compile_s, rate, max(bk.bytes_per_call for bk in plan.buckets), host_bytes(plan))


def check_fits(plan: Plan, est: Estimate | None = None, devices=None) -> None:
    """ConfigError when a call needs more device memory than the device has, or the host arrays more than
    the available host memory."""
    import jax

    device = (list(devices) if devices is not None else jax.local_devices())[0]
    need = max(b.bytes_per_call for b in plan.buckets)
    limit = None
    with contextlib.suppress(Exception):
        stats = device.memory_stats()
        limit = stats.get("bytes_limit") if stats else None
    if limit and need > limit:
        raise ConfigError(f"a call of this sweep needs about {need / 2**20:.0f} MiB of device memory, the device has "
                          f"{limit / 2**20:.0f} MiB; lower memory, points_per_call or the sizes")
    host = host_bytes(plan) if est is None else est.host_bytes
    avail = available_memory()
    if avail is not None and host > avail:
        raise ConfigError(f"this sweep needs about {host / 2**20:.0f} MiB of host memory at once, "
                          f"{avail / 2**20:.0f} MiB are available; lower chains, turn keep_final or keep_traces off, or "
                          "split it into shards (--shard I/N)")
