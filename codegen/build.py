"""Writing and importing the generated module.

A module is rewritten only when its text changes, so Numba's on-disk cache (keyed on the file's
path and its modification time) stays valid: a second build of the same source imports without
compiling.

A module is imported only if phg wrote exactly its text: each module phg writes leaves the sha256
of its bytes in the user's own state, and a module is executed from the very bytes that were
hashed (never re-read from the path, nor from a compiled .pyc beside it), so a planted or edited
`<stem>.py`, whatever its header says, is regenerated rather than run.  Numba caches its kernels
in the user's cache too, keyed by the module's path: nothing it loads comes from the module's folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import stat
import sys
from pathlib import Path

from phg import files
from phg.diagnostics import PhgError, Span
from phg.program import Program

from .header import generator
from .header import status as header_status

# codegen.emit (and sympy) are imported only when a module has to be written.

# The largest module phg reads back; a generated module is a few megabytes at most.
MAX_MODULE_BYTES = 256 * 2**20


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "phg"


def cache_dir() -> Path:
    return _user_cache() / "kernels"


def written_dir() -> Path:
    """Where the sha256 of every module phg wrote is recorded, one empty file each."""
    return _user_cache() / "written"


def stem(program: Program) -> str:
    name = Path(program.path).name
    name = name[:-4] if name.endswith(".phg") else name
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "model"


def _read(path: Path) -> bytes | None:
    """The bytes of a regular file at path; None for anything else (missing, a link, a FIFO that
    would block, a device, or a file too large to be a module)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read(MAX_MODULE_BYTES + 1)
    return data if len(data) <= MAX_MODULE_BYTES else None


def _record(text: bytes) -> None:
    record = written_dir() / hashlib.sha256(text).hexdigest()
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record.touch()


def _written_by_phg(text: bytes) -> bool:
    return (written_dir() / hashlib.sha256(text).hexdigest()).is_file()


def _status(text: bytes, digest: str) -> str | None:
    """The certificate status of a module this phg and generator wrote for the source of sha256
    `digest`; None for any other text."""
    if not _written_by_phg(text):
        return None
    return header_status(text, digest)


def cached(program: Program, directory: Path) -> tuple[Path, str] | None:
    """The module an earlier build of this very source wrote here (phg wrote its every byte; same
    sha256, same phg version and generator; its certificate beside it), with its certificate
    status; None if there is none."""
    target = directory / f"{stem(program)}.py"
    if not (directory / f"{stem(program)}.cert.json").exists():
        return None
    text = _read(target)
    status = None if text is None else _status(text, program.sha256)
    return None if status is None else (target, status)


def write_module(program: Program, directory: Path, status: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    from .emit import module_source

    target = directory / f"{stem(program)}.py"
    text = module_source(program, status).encode("utf-8")
    _record(text)
    if _read(target) != text:
        files.write_bytes(target, text)
    return target


def import_module(path: Path, digest: str):
    """Import a generated file under a name unique to its source, once per process; only a module
    phg wrote for the source of sha256 `digest`, and from the bytes that were checked."""
    name = f"phg_kernels_{path.stem}_{digest[:16]}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    text = _read(path)
    if text is None or _status(text, digest) is None:
        raise PhgError("io", f"{path} is not the module phg wrote (it changed while phg was building), "
                       "so it was not imported", Span(str(path), 1, 1),
                       expected="the module phg generated for this source", hint="build again")
    # Executed from the checked bytes under the file's own name: Numba's cache (cache=True) is
    # keyed by that file, and no .pyc beside it is ever read.
    code = compile(text, str(path), "exec", dont_inherit=True)
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        with kernels_cached_for_this_user():
            exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@contextlib.contextmanager
def kernels_cached_for_this_user():
    """Numba's compiled kernels of the functions defined meanwhile are cached in the user's own
    cache, not in a __pycache__ beside the module: Numba unpickles its cache index, so one planted
    in the module's folder would run code.  (A cache folder the user chose, NUMBA_CACHE_DIR,
    stands.)  The folder is keyed by the code generator, so kernels compiled by another version
    of phg (whose cached code may name modules that no longer exist) are never loaded."""
    from numba.core import config

    chosen = config.CACHE_DIR
    if not chosen:
        config.CACHE_DIR = str(_user_cache() / "numba" / generator())
    try:
        yield
    finally:
        config.CACHE_DIR = chosen
