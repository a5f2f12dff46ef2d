"""Numba's cache of a generated module's kernels, keyed by the kernels' own text.

Numba keys a cached function by its file's path and modification time, so every edit of a `.phg`
file (a comment, a learning rate, the train block: none of them reaches a kernel) wrote a new
module at a new path and compiled every kernel again: seconds for a small model, a minute for a
wide one.  A generated module records instead the sha256 of the text its kernels are compiled from
(`KERNELS_SHA256`: the imports, helpers, kernels, loop-plan parts and their tables, and the code
generator; not the source, the specification or the certificate), and each of its kernels is
cached under that digest: any module of the same kernel text, in whatever folder and of whatever
source, loads them, and a module of other kernel text never does.

The digest is trusted only because the module is: phg imports a module only if it wrote its every
byte (codegen.build), and it computed the digest as it wrote them.
"""
from __future__ import annotations

import hashlib
import re

import numba
from numba.core import caching

from .caches import numba_root
from .header import generator

# The name of the module constant holding the digest, read by the kernels' cache as they are defined.
DIGEST = "KERNELS_SHA256"

# The symbol of a loop plan's part (codegen.looped), as written before the module's digest is known.
_SYMBOL = re.compile(r"phg_part_[0-9a-f]{24}")


def digest(kernel_text: str) -> str:
    """The digest of a module's kernel text (under this code generator)."""
    return hashlib.sha256(f"{generator()}\0{kernel_text}".encode()).hexdigest()


def kernels_of(text: bytes) -> str:
    """The kernel digest a module phg wrote records."""
    found = re.search(rb"^" + DIGEST.encode() + rb" = '([0-9a-f]{64})'$", text, re.MULTILINE)
    return found.group(1).decode() if found else ""


def bind_symbols(text: str, kernels: str) -> str:
    """text with every part symbol named by the module's kernel digest too: parts of one text in
    two modules may read module constants (tables of copies, blade pairs) of different values, and
    one process binds a symbol once (codegen.opaque)."""
    return _SYMBOL.sub(lambda m: "phg_part_" + hashlib.sha256(f"{kernels}\0{m.group()}".encode()).hexdigest()[:24],
                       text)


class _ByKernelText(caching._CacheLocator):
    """Where a generated function is cached: a folder per kernel digest, whose index stays valid
    as long as the digest is the same (Numba's stamp is the file's time and size)."""

    def __init__(self, kernels: str):
        self._kernels = kernels
        self._path = str(numba_root() / "content" / kernels[:32])

    def get_cache_path(self) -> str:
        return self._path

    def get_source_stamp(self) -> str:
        return self._kernels

    def get_disambiguator(self) -> str:
        # (Numba's default, the function's first line, moves when the source above it grows: the
        # digest already tells one module's kernels from another's, and names are unique in one.)
        return "k"

    @classmethod
    def from_function(cls, py_func, py_file):
        kernels = py_func.__globals__.get(DIGEST)
        if not (isinstance(kernels, str) and re.fullmatch(r"[0-9a-f]{64}", kernels)):
            return None
        locator = cls(kernels)
        try:
            locator.ensure_cache_path()           # (as Numba's own locators: a folder it can write)
        except OSError:
            return None
        return locator


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [_ByKernelText]

    def get_filename_base(self, fullname, abiflags):
        # fullname is the file's stem and the function's name: a copy of the model under another
        # file name has the same kernels.
        return super().get_filename_base(fullname.split(".", 1)[-1], abiflags)


class _Cache(caching.FunctionCache):
    _impl_class = _Impl


def cache_by_kernel_text(compiled):
    """A dispatcher or C function of a generated module, its compiled code cached by the module's
    kernel digest (Numba's own caching, cache=True, with this locator in place of the file's).
    Where no cache folder can be written, it is compiled in each process instead, never cached
    elsewhere (beside the module, say)."""
    try:
        compiled._cache = _Cache(compiled.py_func if hasattr(compiled, "py_func") else compiled._pyfunc)
    except RuntimeError:                            # Numba: no locator for it
        pass
    return compiled


def kernel(**options):
    """The decorator of a generated function (codegen.decorators): numba.njit with options, cached
    by kernel text."""
    def define(function):
        return cache_by_kernel_text(numba.njit(**options)(function))
    return define


def cache_hits(compiled) -> int:
    """How many of a dispatcher's or C function's overloads Numba loaded from its cache."""
    if hasattr(compiled, "stats"):
        return sum(compiled.stats.cache_hits.values())
    return compiled.cache_hits
