"""The kernel that runs a study: the one place that maps a static configuration to its :class:`Kernel`."""

from __future__ import annotations

from . import count, resample, trained
from .interface import Kernel


def kernel_for(config) -> Kernel:
    """The kernel that runs a study of static configuration ``config`` (from ``build``)."""
    if isinstance(config, trained.Config):
        return trained.KERNEL
    if isinstance(config, count.Config):
        return resample.KERNEL if config.sampler == "resample" else count.KERNEL
    raise TypeError(f"no kernel for a configuration of type {type(config).__name__}")


#: The package's own kernels (the engine's program store keeps programs of these only: their code is the
#: package's source, which the store's keys include).
BUILT_IN = (count.KERNEL, resample.KERNEL, trained.KERNEL)
