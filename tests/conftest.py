import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Test helpers (exprgen, modelgen, cliffeval, claimcheck) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# Certificates are signed with a per-user key; the tests make theirs in a scratch folder.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="phg-test-config-")
os.environ.pop("PHG_SIGNING_KEY", None)
# pytest-xdist's workers set COLUMNS=80, which the CLI honours: the tests read its output unwrapped.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)
# Workers side by side share the cores: each runs Numba's parallel kernels on its share (unless
# the caller chose), rather than every worker starting a thread per core.  Tests of thread
# independence start their own processes with the counts they test.
if "NUMBA_NUM_THREADS" not in os.environ and "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ["NUMBA_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# clifford, the tests' oracle, compiles a Numba function per product, inverse and dual of every
# algebra, in every worker: seconds per algebra, minutes per run.  It runs the same code in Python
# when imported with Numba's JIT off (clifford's own test mode), and phg's kernels stay compiled.
def _import_clifford_interpreted():
    import numba.core.config as numba_config
    import sparse  # noqa: F401  (clifford's sparse tensors stay compiled: numba's typed lists need it)
    saved, numba_config.DISABLE_JIT = numba_config.DISABLE_JIT, True
    try:
        import clifford  # noqa: F401
    finally:
        numba_config.DISABLE_JIT = saved


_import_clifford_interpreted()


try:
    import fcntl
except ImportError:                           # each worker then builds in a folder of its own
    fcntl = None


@contextlib.contextmanager
def _held(lock: Path):
    """An exclusive lock on a file, across the workers of one run."""
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Examples(dict):
    """{stem: (program, module)}, each example built and its every kernel compiled on first use.
    The workers of one run build into one folder, one worker at a time per example: the first
    compiles, the others load its kernels from Numba's cache (same module file, same mtime)."""

    def __init__(self, root: Path, shared: bool):
        super().__init__()
        self.root, self.shared = root, shared

    def __missing__(self, stem: str):
        import phg

        source = EXAMPLES / f"{stem}.phg"
        if not source.is_file():
            raise KeyError(stem)
        lock = self.root / f"{stem}.lock" if self.shared else None
        with (_held(lock) if lock else contextlib.nullcontext()):
            program = phg.load(source)
            phg.check(program)           # narrows its supports (build() imports a built module unchecked)
            module = phg.build(program, self.root / stem, progress=lambda *_: None)
        self[stem] = (program, module)
        return self[stem]


# Every example, the largest source (the longest to compile) first.
STEMS = [p.stem for p in sorted(EXAMPLES.glob("*.phg"), key=lambda p: -p.stat().st_size)]
_prebuild = None


def pytest_sessionstart(session):
    """With workers, the controller starts building the examples beside them (tests/prebuild.py)."""
    global _prebuild
    workers = getattr(session.config.option, "numprocesses", None)
    if fcntl is None or hasattr(session.config, "workerinput") or not workers:
        return
    root = Path(tempfile.mkdtemp(prefix="phg-test-examples-"))
    os.environ["PHG_TEST_EXAMPLES"] = str(root)         # inherited by the workers
    _prebuild = subprocess.Popen([sys.executable, str(Path(__file__).parent / "prebuild.py"), str(root), *STEMS],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _prebuild.stdout.readline()                         # "locked": a worker cannot get ahead of it


def pytest_sessionfinish(session):
    if _prebuild is not None:
        _prebuild.kill()
        _prebuild.wait()
        shutil.rmtree(os.environ.pop("PHG_TEST_EXAMPLES"), ignore_errors=True)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Every example, built once per run and shared by the workers: {stem: (program, module)}."""
    shared = os.environ.get("PHG_TEST_EXAMPLES")
    if shared is None or fcntl is None:
        return Examples(tmp_path_factory.mktemp("examples"), shared=False)
    return Examples(Path(shared), shared=True)


@pytest.fixture
def unshared(monkeypatch, tmp_path_factory):
    """phg.build with no per-user module cache to share: each build checks its program (narrowing
    the supports of the very Program given, which tests comparing against that program read) and
    generates its module, rather than copying an earlier build of the same source."""
    import phg.codegen.caches
    monkeypatch.setattr(phg.codegen.caches, "cache_dir", lambda: tmp_path_factory.mktemp("unshared"))
