"""Training data files cannot exhaust memory: `phg train --data` reads only the arrays named after
the model's inputs, and refuses (exit 2, before the model is built) a member whose .npy header or
zip entry claims more than the limit, a header claiming more than its member holds, and arrays of
Python objects.  What it does read is what np.load reads."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy

import phg.shell.train
from phg import npz
from phg.shell.cli import main
from phg.diagnostics import PhgError

MODEL = str(Path(__file__).resolve().parents[1] / "examples" / "rigid_registration.phg")   # inputs x, y


def header(shape, descr="<f8", fortran=False, version=(1, 0)) -> bytes:
    """The .npy header of an array of `shape`, without its data."""
    f = io.BytesIO()
    write = npy.write_array_header_1_0 if version == (1, 0) else npy.write_array_header_2_0
    write(f, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return f.getvalue()


def npy_bytes(array) -> bytes:
    f = io.BytesIO()
    np.save(f, array, allow_pickle=False)
    return f.getvalue()


def archive(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


def good(n=8) -> dict[str, bytes]:
    x = np.arange(3.0 * n).reshape(n, 3)
    return {"x.npy": npy_bytes(x), "y.npy": npy_bytes(x + 1)}


@pytest.fixture
def never_built(monkeypatch):
    """phg train must refuse the data before it builds (and compiles) the model."""
    def build(*args, **kwargs):
        raise AssertionError("the model was built although its data should have been refused")
    monkeypatch.setattr(phg.shell.train, "build", build)


def train(data: str, capsys) -> tuple[int, str]:
    code = main(["train", MODEL, "--data", data])
    return code, capsys.readouterr().err


# ---- a header claiming an enormous array -------------------------------------------------------
@pytest.mark.parametrize("shape,found", [
    ((10**12, 3, 3), "claims shape (1000000000000, 3, 3) of float64: 72000000000000 bytes (65.5 TiB)"),
    ((10**10,), "claims shape (10000000000,) of float64: 80000000000 bytes (74.5 GiB)"),
    ((2**62, 2**62), f"claims shape ({2**62}, {2**62}) of float64: {2**127} bytes (1.55e+26 TiB)"),
])
def test_a_header_claiming_more_than_the_limit_is_refused_before_anything_is_allocated(
        shape, found, tmp_path, capsys, never_built, monkeypatch):
    monkeypatch.setattr(npz, "memory_limit", lambda: 2**30)
    members = good()
    members["x.npy"] = header(shape) + b"\0" * 64                      # the claim, and a few bytes of data
    path = archive(tmp_path / "huge.npz", members)
    code, err = train(path, capsys)
    assert code == 2, err
    assert f"phg train: cannot read the data {path}: array 'x' {found}; expected at most 1073741824 bytes " \
           "(1 GiB) for all the arrays read (half this machine's memory)" in err
    assert "MemoryError" not in err and "internal error" not in err


def test_the_default_limit_is_half_the_memory_and_refuses_the_reviewed_file(tmp_path, capsys, never_built):
    limit = npz.memory_limit()
    assert 0 < limit < 10**12 * 9 * 8                                 # no machine has 72 TB to give
    try:                                                              # POSIX: half the physical memory, or less
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        assert limit <= physical // 2
    except (AttributeError, ValueError, OSError):
        assert limit == npz.FALLBACK_MEMORY
    members = good()
    members["y.npy"] = header((10**12, 3, 3)) + b"\0" * 64
    path = archive(tmp_path / "huge.npz", members)
    code, err = train(path, capsys)
    assert code == 2 and "array 'y' claims shape (1000000000000, 3, 3) of float64: 72000000000000 bytes" in err
    assert f"expected at most {limit} bytes" in err


# ---- a zip bomb ---------------------------------------------------------------------------------
def test_a_zip_bomb_is_refused_by_its_unpacked_size_before_it_is_decompressed(tmp_path, capsys, never_built,
                                                                               monkeypatch):
    monkeypatch.setattr(npz, "memory_limit", lambda: 2**20)
    members = good()
    members["x.npy"] = npy_bytes(np.zeros((2**18, 3)))                # 6 MiB of zeros: a few KiB deflated
    path = archive(tmp_path / "bomb.npz", members, zipfile.ZIP_DEFLATED)
    assert Path(path).stat().st_size < 2**16
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, m, *a, **k: opened.append(getattr(m, "filename", m))
                        or real_open(self, m, *a, **k))
    code, err = train(path, capsys)
    assert code == 2, err
    size = len(members["x.npy"])
    assert f"cannot read the data {path}: array 'x' unpacks to {size} bytes (6 MiB); expected at most " \
           "1048576 bytes (1 MiB) for all the arrays read" in err
    assert "x.npy" not in opened                                      # refused from its zip entry alone


def test_arrays_that_fit_alone_but_not_together_are_refused(tmp_path, capsys, never_built, monkeypatch):
    monkeypatch.setattr(npz, "memory_limit", lambda: 2**20)
    x = np.zeros((2**14, 3))                                          # 384 KiB each: two fit in 1 MiB, three do not
    with pytest.raises(npz.ArchiveError, match=r"array 'c' unpacks to 393344 bytes "
                                               r"\(384 KiB\); expected at most 1048576 bytes \(1 MiB\) for all the "
                                               r"arrays read \(half this machine's memory\), of which the arrays "
                                               r"before it take 786432 bytes \(768 KiB\)"):
        npz.read_arrays(archive(tmp_path / "three.npz", {f"{k}.npy": npy_bytes(x) for k in "abc"},
                                zipfile.ZIP_DEFLATED), ["a", "b", "c"])


# ---- malformed members --------------------------------------------------------------------------
def test_a_header_claiming_more_than_its_member_holds_is_malformed(tmp_path, capsys, never_built):
    members = good()
    members["y.npy"] = header((1000, 3)) + b"\0" * 10
    path = archive(tmp_path / "short.npz", members, zipfile.ZIP_DEFLATED)
    code, err = train(path, capsys)
    assert code == 2
    assert f"cannot read the data {path}: array 'y' is malformed: its header claims shape (1000, 3) of float64, " \
           "24000 bytes (23.4 KiB), but the member holds only 10 bytes after its header" in err


@pytest.mark.parametrize("member,found", [
    (b"just some text, not an array", "array 'x': expected a .npy array (written by np.save or np.savez), "
                                      "found a member 'x.npy' that is not one"),
    (header((4, 3)).replace(b"'<f8'", b"'<f8' + x"), "array 'x': expected a well-formed .npy header, found one "
                                                     "that is not"),
    (b"\x93NUMPY\x07\x00" + header((4, 3))[8:], "array 'x': expected a .npy header of version 1.0 or 2.0, "
                                                 "found version 7.0"),
    (header((2,), descr="|O") + b"\0" * 16,
     "array 'x': expected an array of numbers, found one of Python objects (dtype object), which phg never "
     "unpickles"),
])
def test_a_member_that_is_not_a_numeric_npy_array_is_refused(member, found, tmp_path, capsys, never_built):
    members = good()
    members["x.npy"] = member
    path = archive(tmp_path / "odd.npz", members)
    code, err = train(path, capsys)
    assert code == 2, err
    assert f"phg train: cannot read the data {path}: {found}" in err


def test_a_damaged_member_is_refused_by_its_checksum(tmp_path, capsys, never_built):
    members = good()
    path = Path(archive(tmp_path / "damaged.npz", members))
    data = bytearray(path.read_bytes())
    at = data.index(members["y.npy"]) + len(members["y.npy"]) - 1   # the last byte of y's data
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    code, err = train(str(path), capsys)
    assert code == 2 and f"cannot read the data {path}: array 'y' cannot be read: Bad CRC-32 for file 'y.npy'" in err


def test_a_pickled_object_array_is_never_unpickled(tmp_path, capsys, never_built, monkeypatch):
    import pickle
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([object(), None], dtype=object)[:1].repeat(4), y=np.zeros((4, 3)))
    code, err = train(str(path), capsys)
    assert code == 2 and "array 'x': expected an array of numbers, found one of Python objects" in err


def test_a_file_that_is_not_an_archive_is_refused(tmp_path, capsys, never_built):
    code, err = train(str(tmp_path / "absent.npz"), capsys)
    assert code == 2 and f"phg train: cannot read the data {tmp_path / 'absent.npz'}: No such file or directory" in err
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    code, err = train(str(tmp_path / "text.npz"), capsys)
    assert code == 2 and f"cannot read the data {tmp_path / 'text.npz'}: expected an .npz archive (a zip of .npy " \
                         "arrays), found a file that is not one" in err


# ---- only the arrays named after the inputs are read -------------------------------------------
def test_arrays_the_model_does_not_name_are_never_read(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(npz, "memory_limit", lambda: 2**20)
    members = good()
    members["bomb.npy"] = npy_bytes(np.zeros((2**18, 3)))             # past the limit, but not an input
    members["huge.npy"] = header((10**12, 3, 3))
    members["notes.txt"] = b"not an array at all"
    path = archive(tmp_path / "extra.npz", members, zipfile.ZIP_DEFLATED)
    arrays, held = npz.read_arrays(path, ["x", "y", "z"])
    assert sorted(arrays) == ["x", "y"] and sorted(held) == ["bomb", "huge", "notes.txt", "x", "y"]

    reached = []

    def build(program, unverified=False):                             # the data was admitted: stop there
        reached.append(program.path)
        raise PhgError("build", "stopped after reading the data")
    monkeypatch.setattr(phg.shell.train, "build", build)
    code, err = train(path, capsys)
    assert code == 1 and reached == [MODEL] and "stopped after reading the data" in err


def test_the_arrays_read_are_what_np_load_reads(tmp_path):
    rng = np.random.default_rng(14)
    arrays = {
        "plain": rng.normal(size=(5, 3)),
        "single": rng.normal(size=(7, 2)).astype(np.float32),
        "big_endian": rng.normal(size=(4, 3)).astype(">f8"),
        "fortran": np.asfortranarray(rng.normal(size=(6, 4))),
        "ints": rng.integers(-9, 9, size=(3, 2, 2)),
        "empty": np.zeros((0, 3)),
        "scalar": np.float64(2.5),
        "complex": rng.normal(size=(3,)) + 1j,
        "long": rng.normal(size=(300_000,)),                           # more than one chunk
    }
    for saver in (np.savez, np.savez_compressed):
        path = tmp_path / f"{saver.__name__}.npz"
        saver(path, **arrays)
        got, held = npz.read_arrays(path, list(arrays))
        with np.load(path, allow_pickle=False) as theirs:
            assert held == theirs.files
            for k in arrays:
                assert got[k].dtype == theirs[k].dtype and got[k].shape == theirs[k].shape, k
                assert np.array_equal(got[k], theirs[k]) and got[k].flags.writeable, k
                assert got[k].flags.f_contiguous == theirs[k].flags.f_contiguous, k
    # a version 2.0 header, and a member named without .npy, as np.load finds them
    members = {"x": header((2, 3), version=(2, 0)) + np.arange(6.0).tobytes()}
    got, held = npz.read_arrays(archive(tmp_path / "v2.npz", members), ["x"])
    assert held == ["x"] and np.array_equal(got["x"], np.arange(6.0).reshape(2, 3))


def test_an_allocation_that_fails_is_a_message(tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 3)))

    def empty(*args, **kwargs):
        raise MemoryError("Unable to allocate")
    monkeypatch.setattr(npz.np, "empty", empty)
    with pytest.raises(npz.ArchiveError, match=r"array 'x' of shape \(4, 3\) of float64 needs 96 bytes, more "
                                               "memory than is free"):
        npz.read_arrays(path, ["x"])
