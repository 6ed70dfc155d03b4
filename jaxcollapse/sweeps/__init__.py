"""Parameter sweeps: TOML specs, bucketed plans, running a plan on the driver, stores and phase diagrams."""
