"""phg imports only a module it wrote itself, from the bytes it checked, and writes its outputs over a
symbolic link rather than through it.  One real build of a tiny model is shared; every other case is
made by writing files next to a copy of it."""
from __future__ import annotations

import importlib.util
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import phg
import phg.verifier.certificate
import phg.codegen.caches
import phg.codegen.emit
from phg.codegen import build as cg
from phg import files
from phg.shell.cli import main

SCALE = """algebra G2 = Cl(2, 0)
model Scale on G2 {
    input x: Vector
    output y: Vector = x + x
}
"""
# What a planted module does if it is ever run.
PAYLOAD = '\nopen({marker!r}, "w").close()\n'


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """(source path, the text phg wrote for it, the user cache it recorded it in)."""
    root = tmp_path_factory.mktemp("trust")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        source = root / "built" / "model.phg"
        source.parent.mkdir()
        source.write_text(SCALE)
        mp.chdir(source.parent)                 # the module names its source as it was loaded
        module = phg.build(phg.load("model.phg"), source.parent)
        yield source, Path(module.__file__).read_bytes(), root / "cache"


@pytest.fixture
def env(real, tmp_path, monkeypatch):
    """A fresh folder holding the source, the working directory, with the shared user cache; no module of this source
    imported in this process (so a build really reads what is on disk)."""
    source, text, cache = real
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.chdir(tmp_path)
    program = phg.load(source)
    for name in [n for n in sys.modules if n.startswith("phg_kernels_")]:
        monkeypatch.delitem(sys.modules, name)
    (tmp_path / "model.phg").write_text(SCALE)
    return tmp_path, text


def no_generation(monkeypatch):
    """Make any code generation or checking fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("phg regenerated a module it could have reused")
    monkeypatch.setattr(phg.codegen.emit, "module_source", refuse)
    monkeypatch.setattr(phg.verifier.certificate, "certify", refuse)


def doubles(module) -> None:
    x = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_array_equal(module.Scale().predict(x=x)["y"], 2 * x)


def _built_once(monkeypatch, folder, generated=True):
    """phg.build of model.phg into folder, asserting that it generated the module (once), or, where
    this user built the source before, copied it from the per-user cache without generating."""
    calls = []
    generate = phg.codegen.emit.module_source
    monkeypatch.setattr(phg.codegen.emit, "module_source", lambda *a: calls.append(a) or generate(*a))
    module = phg.build(phg.load("model.phg"), folder)
    assert len(calls) == generated
    if not generated:
        shared = phg.codegen.caches.cache_dir() / phg.load("model.phg").sha256[:16]
        assert (folder / "model.py").read_bytes() == (shared / "model.py").read_bytes()
        assert (folder / "model.cert.json").read_bytes() == (shared / "model.cert.json").read_bytes()
    return module


# ---- what is imported ------------------------------------------------------------------------------
@pytest.mark.parametrize("planted", ["header", "appended"])
def test_a_planted_module_is_never_run_and_is_replaced(env, planted, monkeypatch):
    """The reproducer: the right three header lines (or the whole real module) followed by code,
    with any certificate beside it; the build writes the real module instead of running it."""
    folder, text = env
    marker = folder / "MARKER"
    head = b"".join(text.splitlines(keepends=True)[:3]) if planted == "header" else text
    (folder / "model.py").write_bytes(head + PAYLOAD.format(marker=str(marker)).encode())
    (folder / "model.cert.json").write_text("{}")
    assert cg.cached(phg.load("model.phg"), folder) is None
    module = _built_once(monkeypatch, folder, generated=False)      # (the fixture built it, in another folder)
    assert not marker.exists()
    assert (folder / "model.py").read_bytes() == text
    doubles(module)


def test_the_cli_build_runs_no_planted_module(env, capsys):
    folder, text = env
    marker = folder / "MARKER"
    head = b"".join(text.splitlines(keepends=True)[:3])
    (folder / "model.py").write_bytes(head + PAYLOAD.format(marker=str(marker)).encode())
    (folder / "model.cert.json").write_text("{}")
    assert main(["build", "model.phg"]) == 0
    assert not marker.exists() and (folder / "model.py").read_bytes() == text
    assert "all proven" in capsys.readouterr().out


def test_a_module_phg_wrote_is_reused_without_generating(env, monkeypatch):
    folder, text = env
    phg.build(phg.load("model.phg"), folder)             # writes and records it
    for name in [n for n in sys.modules if n.startswith("phg_kernels_")]:
        monkeypatch.delitem(sys.modules, name)
    no_generation(monkeypatch)
    mtime = os.stat(folder / "model.py").st_mtime_ns
    module = phg.build(phg.load("model.phg"), folder)
    assert module.__file__ == str(folder / "model.py") and os.stat(folder / "model.py").st_mtime_ns == mtime
    doubles(module)


def test_the_right_text_unrecorded_is_not_trusted(env, monkeypatch, tmp_path_factory):
    """The very text phg writes, found where this user's phg never recorded writing it (another
    user's folder, say), is regenerated rather than imported."""
    folder, text = env
    (folder / "model.py").write_bytes(text)
    (folder / "model.cert.json").write_text("{}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("other-user")))
    assert cg.cached(phg.load("model.phg"), folder) is None
    module = _built_once(monkeypatch, folder)
    assert module.__file__ == str(folder / "model.py") and (folder / "model.py").read_bytes() == text


def test_a_module_edited_after_the_check_is_not_imported(env):
    """import_module runs only the bytes it has just checked: a swap after cached() said yes is
    a located error, and the swapped-in code never runs."""
    folder, text = env
    program = phg.load("model.phg")
    phg.build(program, folder)
    for name in [n for n in sys.modules if n.startswith("phg_kernels_")]:
        del sys.modules[name]
    hit = cg.cached(program, folder)
    assert hit == (folder / "model.py", "all proven")
    marker = folder / "MARKER"
    (folder / "model.py").write_bytes(text + PAYLOAD.format(marker=str(marker)).encode())
    with pytest.raises(phg.PhgError) as info:
        cg.import_module(hit[0], program.sha256)
    assert not marker.exists()
    assert info.value.kind == "io" and info.value.span.file == str(folder / "model.py")
    assert "is not the module phg wrote" in info.value.message


def test_a_planted_pyc_beside_the_module_is_never_run(env, monkeypatch):
    """Python's own import would run __pycache__/model.*.pyc when its stamp matches the source;
    phg compiles the checked text itself."""
    folder, text = env
    phg.build(phg.load("model.phg"), folder)
    for name in [n for n in sys.modules if n.startswith("phg_kernels_")]:
        monkeypatch.delitem(sys.modules, name)
    marker = folder / "MARKER"
    st = os.stat(folder / "model.py")
    code = compile(PAYLOAD.format(marker=str(marker)), str(folder / "model.py"), "exec")
    pyc = Path(importlib.util.cache_from_source(str(folder / "model.py")))
    pyc.parent.mkdir(exist_ok=True)
    from importlib._bootstrap_external import _code_to_timestamp_pyc
    pyc.write_bytes(_code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size))
    doubles(phg.build(phg.load("model.phg"), folder))
    assert not marker.exists()


class _Opens:
    """A pickle that creates a file when it is loaded."""
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_planted_numba_cache_index_beside_the_module_is_never_loaded(env, monkeypatch):
    """Numba unpickles its cache index; phg's kernels keep theirs in the user's cache, so one
    planted in the module's __pycache__ is never read."""
    import numba
    folder, text = env
    module = phg.build(phg.load("model.phg"), folder)
    doubles(module)
    kernels = [v for v in vars(module).values() if isinstance(v, numba.core.registry.CPUDispatcher)
               and v.py_func.__module__ == module.__name__]
    cache = os.environ["XDG_CACHE_HOME"]
    assert kernels and all(os.path.abspath(k._cache._cache_path).startswith(cache) for k in kernels)
    marker = folder / "MARKER"
    (folder / "__pycache__").mkdir(exist_ok=True)
    for k in kernels:
        (folder / "__pycache__" / k._cache._cache_file._index_name).write_bytes(pickle.dumps(_Opens(str(marker))))
    for name in [n for n in sys.modules if n.startswith("phg_kernels_")]:
        monkeypatch.delitem(sys.modules, name)
    doubles(phg.build(phg.load("model.phg"), folder))
    assert not marker.exists()


def test_a_fifo_where_the_module_goes_neither_blocks_nor_stays(env):
    folder, text = env
    os.mkfifo(folder / "model.py")
    (folder / "model.cert.json").write_text("{}")

    def blocked(*_):
        raise AssertionError("phg build waited on a FIFO")
    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(60)
    try:
        doubles(phg.build(phg.load("model.phg"), folder))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert (folder / "model.py").read_bytes() == text


# ---- what is written -------------------------------------------------------------------------------
def test_check_writes_over_a_linked_certificate_not_through_it(env, capsys):
    folder, _ = env
    victim = folder / "victim.txt"
    victim.write_text("precious\n")
    (folder / "model.phg.cert.json").symlink_to(victim.name)
    assert main(["check", "model.phg"]) == 0
    capsys.readouterr()
    cert = folder / "model.phg.cert.json"
    assert victim.read_text() == "precious\n"
    assert not cert.is_symlink() and cert.is_file()
    assert '"source"' in cert.read_text() and '"path": "model.phg"' in cert.read_text()


@pytest.mark.parametrize("linked", ["model.py", "model.cert.json"])
def test_build_writes_over_linked_outputs_not_through_them(env, linked):
    folder, text = env
    victim = folder / "victim.txt"
    victim.write_text("precious\n")
    (folder / linked).symlink_to(victim.name)
    if linked == "model.py":
        (folder / "model.cert.json").write_text("{}")
    doubles(phg.build(phg.load("model.phg"), folder))
    assert victim.read_text() == "precious\n"
    for name in ("model.py", "model.cert.json"):
        assert not (folder / name).is_symlink() and (folder / name).is_file()
    assert (folder / "model.py").read_bytes() == text


def test_replace_is_all_or_nothing_and_keeps_the_usual_mode(tmp_path):
    target = tmp_path / "out.bin"
    files.write_bytes(target, b"first")

    def half(f):
        f.write(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        files.replace(target, half)
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["out.bin"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~mask


def test_the_record_of_written_modules_is_the_users_alone(real):
    _, text, cache = real
    written = cache / "phg" / "written"
    assert os.stat(written).st_mode & 0o777 == 0o700
    assert (written / __import__("hashlib").sha256(text).hexdigest()).is_file()


def test_replace_puts_a_file_where_a_link_was(tmp_path):
    """phg train's parameters, certificates and modules all go through files.replace."""
    (tmp_path / "victim.npz").write_bytes(b"precious")
    (tmp_path / "params.npz").symlink_to("victim.npz")
    files.write_bytes(tmp_path / "params.npz", b"new")
    assert (tmp_path / "victim.npz").read_bytes() == b"precious"
    assert not (tmp_path / "params.npz").is_symlink() and (tmp_path / "params.npz").read_bytes() == b"new"


def test_the_same_text_at_another_path_is_built_naming_its_own_file(env, monkeypatch):
    """The per-user cache holds this text's module as built from model.phg; the same text in
    another file is built afresh (no copy), so its module names the file it is of."""
    folder, text = env
    (folder / "elsewhere").mkdir()
    (folder / "elsewhere" / "model.phg").write_text(SCALE)
    calls = []
    generate = phg.codegen.emit.module_source
    monkeypatch.setattr(phg.codegen.emit, "module_source", lambda *a: calls.append(a) or generate(*a))
    module = phg.build(phg.load("elsewhere/model.phg"), folder / "b")
    assert len(calls) == 1
    assert open(module.__file__).read().splitlines()[0].endswith(f"from {ascii('elsewhere/model.phg')}; do not edit.")
    doubles(module)


def test_a_cache_folder_that_cannot_be_written_compiles_instead(env, monkeypatch):
    """Numba's cache folder made impossible (a file where its folder goes): the kernels compile
    in the process and run, and nothing is cached beside the module."""
    import numba.core.config

    folder, text = env
    (folder / "blocked").write_text("a file, not a folder")
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", str(folder / "blocked" / "numba"))
    module = phg.build(phg.load("model.phg"), folder / "built")
    doubles(module)
    assert not (folder / "built" / "__pycache__").exists()


def test_a_chosen_numba_cache_folder_keeps_each_generators_code_apart(tmp_path, monkeypatch):
    """Under NUMBA_CACHE_DIR phg caches in a folder of its code generator's own: Numba would load a
    library kernel cached before an edit to a file whose code it inlines (its stamp is its own
    file's), so code of another generator must be out of its reach."""
    import numba.core.config

    from phg.codegen.caches import kernels_cached_for_this_user, numba_cache, numba_root
    from phg.codegen.header import generator

    monkeypatch.setattr(numba.core.config, "CACHE_DIR", str(tmp_path / "chosen"))
    assert numba_root() == tmp_path / "chosen" / "phg" / generator()
    with kernels_cached_for_this_user():          # the root as Numba sees it inside: the same, not nested
        assert numba_root() == tmp_path / "chosen" / "phg" / generator()
    assert numba.core.config.CACHE_DIR == str(tmp_path / "chosen")
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", "")
    with kernels_cached_for_this_user():          # the default folder, likewise
        assert numba_root() == numba_cache()
