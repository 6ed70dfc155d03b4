"""Running many chains: the one driver (chunks of chains under vmap, a loop over generations, sharding over
devices, processes), ``simulate`` / ``simulate_trained`` and the ``Result``."""
