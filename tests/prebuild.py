"""Builds every example, compiling its kernels, into one folder for the workers of a test run.

Started by the controller (tests/conftest.py) as the run begins, beside the workers: it holds each
example's lock until that example is built, so a worker that needs one waits (its core then
serves this build) and then loads the compiled kernels from Numba's cache rather than compiling
them again.  It locks every example before it imports phg, and says `locked` on stdout once it has.
A build that fails here is left to the worker, which builds it again and reports the error.

    python prebuild.py FOLDER STEM...
"""
import fcntl
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main(root: Path, stems: list[str]) -> None:
    locks = {}
    for stem in stems:
        locks[stem] = open(root / f"{stem}.lock", "a")
        fcntl.flock(locks[stem], fcntl.LOCK_EX)
    print("locked", flush=True)
    import phg
    for stem in stems:
        try:
            phg.build(phg.load(EXAMPLES / f"{stem}.phg"), root / stem, progress=lambda *_: None)
        except Exception:
            pass
        finally:
            locks[stem].close()            # releases the lock


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
