"""The command line (``jaxcollapse``). Importing it does not import JAX."""
