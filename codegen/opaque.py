"""Parts of a loop plan's kernels compiled once and called by address.

Numba links every function a kernel calls into the kernel's own LLVM module, then optimises and
generates machine code for the whole again: a model's parts, shared by inference, the slots and
the step's epilogue, were compiled three or four times over (two thirds of a 96-channel network's
cold build).  A part that reads and writes only the workspace is compiled instead as a C function
of its own (numba.cfunc, cached like the kernels) and bound to a symbol; the kernels call that
symbol, so nothing of the part is linked into them.

A symbol names a part by the sha256 of its generated text and of its module's kernel digest
(codegen.kernel_cache), so two modules in one process never bind one name to two different parts,
and a module of the same kernels (another source's, a comment apart) binds the same names.  A part computes in IEEE
arithmetic (error_model "numpy"): a C function cannot raise, so a division by zero gives the
infinity or NaN a float gives, kept to its sample as a NaN input is.

Every part receives the workspace twice, as the words of the slabs that vary with the sample
(`_wv`, a tile's) and of those that do not (`_wi`: parameters, their adjoints), and its length.
A part of loop nests alone (a `nest`) reads each slab through one of the two and has them
`noalias`: the two ranges of words are disjoint, and so LLVM knows that a tile's slabs and a
parameter's never overlap.  Without that it must check at run time every pair of the nest's
loads and stores for overlap, gives up beyond a few ("too many memory checks needed"), and the
nest runs one sample-channel at a time.  A part that calls a function on the workspace (a matrix
product, a table of copies) views it as one array and promises nothing.

Parts are bound when a model class is first instantiated (codegen.runtime), before any of its
kernels can be compiled or loaded: a kernel's machine code resolves the symbols it calls then.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

import llvmlite.binding as llvm
import numba
from numba import carray, types
from numba.core import ccallback, sigutils

# The part's own signature (the varying and invariant slabs' words, the workspace's length, the
# tile's sample count) and the kernels' view of it (the workspace as the pointer numba passes for
# `array.ctypes`).
_WORDS = types.CPointer(types.float64)
PART = types.void(_WORDS, _WORDS, types.int64, types.int64)
_CALL = types.void(types.voidptr, types.voidptr, types.int64, types.int64)
_OPTIONS = {"nogil": True, "error_model": "numpy"}

_LOCK = threading.Lock()
# symbol -> its compiled C function, held for the life of the process: the kernels call its code.
_BOUND: dict[str, object] = {}


class _NoAliasCompiler(ccallback._CFuncCompiler):
    def _customize_flags(self, flags):
        flags = super()._customize_flags(flags)
        flags.noalias = True                     # noalias on every pointer argument
        return flags


class NoAliasCFunc(ccallback.CFunc):
    """numba.cfunc with its pointer arguments noalias (numba sets that flag for its parallel
    loops' kernels only; numba.cfunc takes no such option)."""

    def __init__(self, function, signature=PART):
        super().__init__(function, sigutils.normalize_signature(signature), {}, _OPTIONS)
        self._compiler = _NoAliasCompiler(function, self._targetdescr, _OPTIONS, {},
                                          pipeline_class=numba.core.compiler.Compiler)


def external(symbol: str) -> types.ExternalFunction:
    """A part as a kernel calls it: by its symbol (bound by `bind` before the kernel compiles)."""
    return types.ExternalFunction(symbol, _CALL)


def unbound(parts: Iterable[tuple]) -> bool:
    return any(symbol not in _BOUND for symbol, *_ in parts)


def bind(parts: Iterable[tuple[str, object, bool]]) -> tuple[int, int]:
    """Compile (or load from Numba's cache) the parts (symbol, Python function, whether it is a
    nest) not bound yet, and bind each to its symbol; how many it bound, and how many of those
    Numba loaded from its cache."""
    from .kernel_cache import cache_by_kernel_text

    bound = loaded = 0
    with _LOCK:
        for symbol, function, nest in parts:
            if symbol in _BOUND:
                continue
            compiled = NoAliasCFunc(function) if nest else \
                ccallback.CFunc(function, sigutils.normalize_signature(PART), {}, _OPTIONS)
            cache_by_kernel_text(compiled)
            compiled.compile()
            llvm.add_symbol(symbol, compiled.address)
            _BOUND[symbol] = compiled
            bound += 1
            loaded += compiled.cache_hits
    return bound, loaded


__all__ = ["PART", "NoAliasCFunc", "bind", "carray", "external", "unbound"]
