"""From a checked Program Hypergraph to Python source with Numba kernels."""
