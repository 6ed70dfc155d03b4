"""Benchmarks of the engine against NumPy references (``jaxcollapse bench``)."""
