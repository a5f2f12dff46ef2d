"""Writing and importing the generated module.

A module is rewritten only when its text changes, so Numba's on-disk cache (keyed on the file's
path and its modification time) stays valid: a second build of the same source imports without
compiling.

A module is imported only if phg wrote exactly its text: each module phg writes leaves the sha256
of its bytes in the user's own state, and a module is executed from the very bytes that were
hashed (never re-read from the path, nor from a compiled .pyc beside it), so a planted or edited
`<stem>.py`, whatever its header says, is regenerated rather than run.  Numba caches its kernels
in the user's cache too, keyed by the kernels' text (codegen.kernel_cache): nothing it loads comes
from the module's folder.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import sys
from pathlib import Path

from phg import files
from phg.diagnostics import PhgError, Span
from phg.program import Program

from .caches import written_dir
from .header import made_from
from .header import status as header_status
from .kernel_cache import kernels_of

# codegen.emit (and sympy) are imported only when a module has to be written.

# The largest module phg reads back; a generated module is a few megabytes at most.
MAX_MODULE_BYTES = 256 * 2**20


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


def copy_built(program: Program, module: Path, directory: Path) -> Path | None:
    """The module phg wrote for this source at `module` (as `cached` found it) and its
    certificate, copied into `directory` unless it holds them already; the copy's path, or None if
    either changed meanwhile, or the module names another file as its source (the same text at
    another path: it is then built there instead, so a module always names the file it is of)."""
    target = directory / module.name
    cert = module.with_name(f"{stem(program)}.cert.json")
    text, signed = _read(module), _read(cert)
    if text is None or signed is None or _status(text, program.sha256) is None or \
            not made_from(text, str(program.path)):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    if _read(target) != text:
        files.write_bytes(target, text)
    if _read(target.with_name(cert.name)) != signed:
        files.write_bytes(target.with_name(cert.name), signed)
    return target


def write_module(program: Program, directory: Path, status: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    from .emit import module_source

    target = directory / f"{stem(program)}.py"
    text = module_source(program, status).encode("utf-8")
    _record(text)
    if _read(target) != text:
        files.write_bytes(target, text)
    return target


# (module path, source sha256) -> the module imported from it in this process (while it is the
# module of its name).
_IMPORTED: dict[tuple[str, str], object] = {}


def import_module(path: Path, digest: str):
    """Import a generated file once per process; only a module phg wrote for the source of sha256
    `digest`, and from the bytes that were checked.  Its name is its kernels' (their digest,
    codegen.kernel_cache): the kernels Numba loads from its cache find their module by that name,
    and a module of the same kernels (another source's, a comment apart, or a copy under another
    file name) is one they can use."""
    done = _IMPORTED.get((str(path), digest))
    if done is not None and sys.modules.get(done.__name__) is done:     # imported already: read nothing again
        return done
    text = _read(path)
    if text is None or _status(text, digest) is None:
        raise PhgError("io", f"{path} is not the module phg wrote (it changed while phg was building), "
                       "so it was not imported", Span(str(path), 1, 1),
                       expected="the module phg generated for this source", hint="build again")
    name = f"phg_kernels_{kernels_of(text)[:24]}"
    held = sys.modules.get(name)
    # Executed from the checked bytes under the file's own name (no .pyc beside it is ever read).
    code = compile(text, str(path), "exec", dont_inherit=True)
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        if held is None:
            del sys.modules[name]
        else:
            sys.modules[name] = held
        raise
    _IMPORTED[str(path), digest] = module
    return module
