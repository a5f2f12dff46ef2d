"""Reading named arrays from an .npz archive someone else wrote, in bounded memory.

An .npz file is a zip of .npy members, and everything in it is claimed by the sender: a member's
uncompressed size (its zip entry), and the shape and dtype in its .npy header.  `np.load` trusts
the header and allocates what it claims, so a few bytes claiming shape (10**12, 3, 3) ask for
65 TiB, and a zip of compressed zeros unpacks to whatever it likes.  Here only the members asked
for are opened; each one's zip entry and header are read first, and a member is refused before
anything is allocated when

* its uncompressed size, or the bytes its header claims, would take the arrays read past the
  limit: by default half of this machine's memory (the smaller of its physical memory and the
  memory limit of its control group, where that can be read; 8 GiB where neither can), since the
  arrays read must fit in memory with room for what is computed on them;
* its header claims more bytes than the member holds (a malformed member);
* it is not a .npy array, or its dtype holds Python objects (those would need unpickling, which
  is never done).

The data is then read in chunks into one array of the claimed size, so no more than the claim
is ever decompressed.
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

# Where neither the machine's memory nor its control group's limit can be read.
FALLBACK_MEMORY = 8 * 2**30
# The longest .npy header read, numpy's own default (a header is a short Python literal).
MAX_HEADER = 10_000
_CHUNK = 2**20
_HEADERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
# What a damaged or hostile zip member can raise while it is read (zlib, bz2, lzma, zipfile).
_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError, zipfile.BadZipFile,
                                                 NotImplementedError, RuntimeError, zlib.error)
try:
    import lzma
    _READ_ERRORS += (lzma.LZMAError,)
except ImportError:                                    # a Python built without lzma reads no lzma zips
    pass


class ArchiveError(ValueError):
    """An archive, or one of its arrays, that is not read; the message says what was expected and
    what was found.  `single_array`: the file is one .npy array, not an archive of them."""

    def __init__(self, message: str, single_array: bool = False):
        super().__init__(message)
        self.single_array = single_array


def memory_limit() -> int:
    """The most bytes the arrays read from one archive may take together (see the module's text)."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            sizes.append(int(text))
    except OSError:
        pass
    sizes = [s for s in sizes if s > 0]
    return min(sizes) // 2 if sizes else FALLBACK_MEMORY


def describe_bytes(n: int) -> str:
    """`n` bytes, exactly and in the largest binary unit under it: "72000000000000 bytes (65.5 TiB)"."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n} bytes ({n / size:.3g} {unit})"
    return f"{n} bytes"


def read_arrays(path, names, limit: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of the archive at `path` (or in a binary file object) among `names` (those it lacks are left out), and the
    names of all the arrays it holds (as `np.load(path).files` lists them), reading at most
    `limit` bytes of array data (default: `memory_limit()`)."""
    budget = _Budget(memory_limit() if limit is None else limit, "half this machine's memory" if limit is None else "")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        if _starts_as_npy(path):
            raise ArchiveError("it is a single array, not an .npz archive of arrays", single_array=True) from None
        raise ArchiveError(f"expected an .npz archive (a zip of .npy arrays), found a file that is not one ({exc})") \
            from None
    except _READ_ERRORS as exc:
        raise ArchiveError(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        files = [n[:-4] if n.endswith(".npy") else n for n in members]
        arrays: dict[str, np.ndarray] = {}
        for name in names:
            # np.load's lookup: the member of exactly that name, else that name with .npy
            info = members.get(name) or members.get(f"{name}.npy")
            if info is None:
                continue
            try:
                arrays[name] = _read_member(archive, info, name, budget)
            except ArchiveError:
                raise
            except _READ_ERRORS as exc:
                raise ArchiveError(f"array {name!r} cannot be read: {str(exc) or type(exc).__name__}") from None
            budget.taken += arrays[name].nbytes
    return arrays, files


def _starts_as_npy(path) -> bool:
    if hasattr(path, "read"):                          # bytes in memory (an HTTP body)
        path.seek(0)
        return path.read(len(npy.MAGIC_PREFIX)) == npy.MAGIC_PREFIX
    try:
        with open(path, "rb") as f:
            return f.read(len(npy.MAGIC_PREFIX)) == npy.MAGIC_PREFIX
    except OSError:
        return False


class _Budget:
    """The bytes the arrays read so far take, out of `limit` (`why`: where the limit comes from)."""

    def __init__(self, limit: int, why: str):
        self.limit, self.why, self.taken = limit, why, 0

    def left(self) -> int:
        return self.limit - self.taken

    def refuse(self, name: str, what: str, size: int) -> ArchiveError:
        room = f"at most {describe_bytes(self.limit)} for all the arrays read" + (f" ({self.why})" if self.why else "")
        if self.taken:
            room += f", of which the arrays before it take {describe_bytes(self.taken)}"
        return ArchiveError(f"array {name!r} {what} {describe_bytes(size)}; expected {room}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: _Budget) -> np.ndarray:
    # Refused before a byte is decompressed: the zip entry alone says how much it unpacks to.
    if info.file_size > budget.left() + MAX_HEADER:
        raise budget.refuse(name, "unpacks to", info.file_size)
    with archive.open(info) as f:
        try:
            version = npy.read_magic(f)
        except ValueError:
            raise ArchiveError(f"array {name!r}: expected a .npy array (written by np.save or np.savez), "
                               f"found a member {info.filename!r} that is not one") from None
        if version not in _HEADERS:
            raise ArchiveError(f"array {name!r}: expected a .npy header of version 1.0 or 2.0, found version "
                               f"{version[0]}.{version[1]}")
        try:
            shape, fortran, dtype = _HEADERS[version](f, max_header_size=MAX_HEADER)
        except ValueError as exc:
            raise ArchiveError(f"array {name!r}: expected a well-formed .npy header, found one that is not ({exc})") \
                from None
        if dtype.hasobject:
            raise ArchiveError(f"array {name!r}: expected an array of numbers, found one of Python objects "
                               f"(dtype {dtype}), which phg never unpickles")
        if any(d < 0 for d in shape):
            raise ArchiveError(f"array {name!r}: expected a shape of sizes >= 0, found {shape}")
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > budget.left():
            raise budget.refuse(name, f"claims shape {shape} of {dtype}:", claimed)
        held = info.file_size - f.tell()
        if claimed > held:
            raise ArchiveError(f"array {name!r} is malformed: its header claims shape {shape} of {dtype}, "
                               f"{describe_bytes(claimed)}, but the member holds only {describe_bytes(max(held, 0))} "
                               "after its header")
        try:
            flat = np.empty(math.prod(shape), dtype)
        except MemoryError:
            raise ArchiveError(f"array {name!r} of shape {shape} of {dtype} needs {describe_bytes(claimed)}, "
                               "more memory than is free") from None
        _fill(f, flat, name)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def _fill(f, flat: np.ndarray, name: str) -> None:
    """Read the data into `flat` a chunk at a time: never a second copy of the whole array."""
    view, done = memoryview(flat.view(np.uint8)) if flat.nbytes else memoryview(b""), 0
    while done < len(view):
        chunk = f.read(min(_CHUNK, len(view) - done))
        if not chunk:
            raise ArchiveError(f"array {name!r} is malformed: its data ends after {done} of "
                               f"{len(view)} bytes")
        view[done:done + len(chunk)] = chunk
        done += len(chunk)
