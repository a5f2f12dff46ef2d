"""The decorator of every function phg generates.

Generated functions compute in IEEE arithmetic (Numba's error_model "numpy"): a division by zero,
a normalize of a zero vector, gives the float's infinity or NaN in the sample it came with, as a
NaN input does, and training then stops with TrainingDiverged; under Numba's default model it
raised ZeroDivisionError from inside the kernel.  The loop strategy's C parts (codegen.opaque)
cannot raise at all, so both strategies now answer alike.
"""
from __future__ import annotations


def njit(nogil: bool = True, inline: str | None = None) -> str:
    options = ["cache=True"] + (["nogil=True"] if nogil else []) + ([f"inline={inline!r}"] if inline else [])
    return f"@_phg_numba.njit({', '.join(options)}, error_model='numpy')"
