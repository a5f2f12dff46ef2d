"""Which files phg reads as model sources: regular files of bounded size.

A path given on the command line or recorded in a certificate may name a FIFO (opening it lets a
waiting writer through, reading it may block forever), a device (/dev/zero never ends) or a file
far larger than any model.  The file is looked at before it is opened, and again once it is open
(it may have been swapped in between); reading stops one byte past the limit.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

# The largest source phg reads; a model is a few kilobytes.
MAX_SOURCE_BYTES = 4 * 2**20


def _refuse_irregular(status: os.stat_result, limit: int):
    if not stat.S_ISREG(status.st_mode):
        raise OSError(0, "not a regular file")
    if status.st_size > limit:
        raise OSError(0, f"larger than {limit // 2**20} MiB")


def check_file(path: str | Path, limit: int = MAX_SOURCE_BYTES) -> None:
    """Raise OSError (strerror says why) unless `path` is a regular file of at most `limit` bytes;
    a link counts as the file it points to.  A NUL in the path is an OSError too."""
    try:
        status = os.stat(path)
    except ValueError:                      # "embedded null byte": no file has such a name
        raise OSError(0, "a file name cannot hold a NUL character") from None
    _refuse_irregular(status, limit)


def read_file(path: str | Path, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else OSError (strerror says why)."""
    check_file(path, limit)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        _refuse_irregular(os.fstat(f.fileno()), limit)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(0, f"larger than {limit // 2**20} MiB")
    return data
