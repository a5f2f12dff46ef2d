"""Parts of a loop plan's kernels compiled once and called by address.

Numba links every function a kernel calls into the kernel's own LLVM module, then optimises and
generates machine code for the whole again: a model's parts, shared by inference, the slots and
the step's epilogue, were compiled three or four times over (two thirds of a 96-channel network's
cold build).  A part that reads and writes only the workspace is compiled instead as a C function
of its own (numba.cfunc, cached like the kernels) and bound to a symbol; the kernels call that
symbol, so nothing of the part is linked into them.

A symbol names a part by the sha256 of its generated text and of the code generator, so two
modules in one process never bind one name to two different parts.  A part computes in IEEE
arithmetic (error_model "numpy"): a C function cannot raise, so a division by zero gives the
infinity or NaN a float gives, kept to its sample as a NaN input is.

Parts are bound when a model class is first instantiated (codegen.runtime), before any of its
kernels can be compiled or loaded: a kernel's machine code resolves the symbols it calls then.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import llvmlite.binding as llvm
import numba
from numba import carray, types

# The part's own signature (the workspace's words and length, the tile's sample count) and the
# kernels' view of it (the workspace as the pointer numba passes for `array.ctypes`).
PART = types.void(types.CPointer(types.float64), types.int64, types.int64)
_CALL = types.void(types.voidptr, types.int64, types.int64)

_LOCK = threading.Lock()
# symbol -> its compiled C function, held for the life of the process: the kernels call its code.
_BOUND: dict[str, object] = {}


def external(symbol: str) -> types.ExternalFunction:
    """A part as a kernel calls it: by its symbol (bound by `bind` before the kernel compiles)."""
    return types.ExternalFunction(symbol, _CALL)


def unbound(parts: Iterable[tuple[str, object]]) -> bool:
    return any(symbol not in _BOUND for symbol, _ in parts)


def bind(parts: Iterable[tuple[str, object]]) -> None:
    """Compile (or load from Numba's cache) the parts (symbol, Python function) not bound yet, and
    bind each to its symbol."""
    from .build import kernels_cached_for_this_user

    with _LOCK:
        for symbol, function in parts:
            if symbol in _BOUND:
                continue
            with kernels_cached_for_this_user():
                compiled = numba.cfunc(PART, cache=True, nogil=True, error_model="numpy")(function)
            llvm.add_symbol(symbol, compiled.address)
            _BOUND[symbol] = compiled


__all__ = ["PART", "bind", "carray", "external", "unbound"]
