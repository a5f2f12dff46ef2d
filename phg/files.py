"""Writing outputs all or nothing, and never through a link.

Every file phg writes (a certificate, a generated module, trained parameters) goes to a scratch
file in the target's own folder and is then renamed onto the target.  The rename replaces a
symbolic link itself rather than the file it points to, so a link planted where an output goes
cannot make phg overwrite anything else; and a failed write leaves an earlier file as it was.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def _umask() -> int:
    # Python can only read the umask by setting it; done once, while phg is imported.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes a file only its owner can read; an output gets the mode a plain open would give.
MODE = 0o666 & ~_umask()


def replace(target: str | Path, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Make `target` hold exactly what `write` writes to the (binary) file it is given; `durable`:
    on the disk (file and folder synced) before it returns, for state a crash must not lose."""
    target = Path(target)
    fd, scratch = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), MODE)
            if durable:
                os.fsync(f.fileno())
        os.replace(scratch, target)
        if durable:
            folder = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    except BaseException:
        os.unlink(scratch)
        raise


def write_bytes(target: str | Path, data: bytes) -> None:
    replace(target, lambda f: f.write(data))
