"""The decorator of every function phg generates.

Generated functions compute in IEEE arithmetic (Numba's error_model "numpy"): a division by zero,
a normalize of a zero vector, gives the float's infinity or NaN in the sample it came with, as a
NaN input does, and training then stops with TrainingDiverged; under Numba's default model it
raised ZeroDivisionError from inside the kernel.  The loop strategy's C parts (codegen.opaque)
cannot raise at all, so both strategies now answer alike.
"""
from __future__ import annotations


def njit(nogil: bool = True, inline: str | None = None) -> str:
    """numba.njit's options, its compiled code cached by the module's kernel text (codegen.kernel_cache)."""
    options = (["nogil=True"] if nogil else []) + ([f"inline={inline!r}"] if inline else [])
    return f"@_phg_kernel({', '.join(options + ['error_model=' + repr('numpy')])})"
