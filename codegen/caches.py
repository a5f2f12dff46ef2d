"""Where phg keeps what it caches for the user (`$XDG_CACHE_HOME/phg`, private to the user): the
modules it built (kernels/), the sha256 of every module it wrote (written/), and Numba's compiled
kernels (numba/)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .header import generator


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "phg"


def cache_dir() -> Path:
    """The per-user build of each source, by its sha256."""
    return user_cache() / "kernels"


def written_dir() -> Path:
    """Where the sha256 of every module phg wrote is recorded, one empty file each."""
    return user_cache() / "written"


def numba_cache() -> Path:
    """Numba's cache of the kernels phg generates, by code generator: kernels compiled by another
    version of phg (whose cached code may name modules that no longer exist) are never loaded."""
    return user_cache() / "numba" / generator()


def numba_root() -> Path:
    """Where Numba caches phg's kernels (the generated ones, and the deposits' C functions):
    numba_cache(), or under the folder the user chose (NUMBA_CACHE_DIR) a folder of this code
    generator's.  Numba tells a cached function's code stale by its own file's stamp alone, not by
    the files of the functions inlined into it (the deposits' C functions inline the accumulator's
    ledger): code cached by another generator must not be loaded, whoever chose the folder.  (The
    library's own njit functions keep Numba's place, by their files' stamps, which an installed
    release's files all change together.)"""
    from numba.core import config

    if not config.CACHE_DIR:
        return numba_cache()
    chosen, own = Path(config.CACHE_DIR), Path("phg", generator())
    if chosen == numba_cache() or chosen.parts[-2:] == own.parts:      # (already inside it)
        return chosen
    return chosen / own


@contextlib.contextmanager
def kernels_cached_for_this_user():
    """Numba's compiled kernels of the functions defined meanwhile are cached in numba_root(),
    not in a __pycache__ beside their file: Numba unpickles its cache index, so one planted there
    would run code.  (A generated module's kernels are cached so by their text, codegen.kernel_cache.)"""
    from numba.core import config

    chosen = config.CACHE_DIR
    config.CACHE_DIR = str(numba_root())
    try:
        yield
    finally:
        config.CACHE_DIR = chosen
