"""Running many chains: the one driver (chunks of chains under vmap, lax.scan over generations, sharding over
devices, processes), ``simulate`` / ``simulate_trained`` and the ``Result``."""
