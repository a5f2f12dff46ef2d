"""A model written to a file and built where `phg train` on that file finds it (the per-user cache
of a scratch folder), so that a test module compiles its kernels once."""
import re
from pathlib import Path

import pytest

import phg

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def model_examples() -> list[Path]:
    """The examples that declare a model (the others hold spiking networks, tests/test_spiking.py)."""
    return [p for p in sorted(EXAMPLES.glob("*.phg")) if re.search(r"^model ", p.read_text(), re.M)]


def built_file(tmp_path_factory, stem: str, text: str):
    """Yields (path, module); use as `yield from built_file(...)` in a module-scoped fixture."""
    root = tmp_path_factory.mktemp(stem)
    path = root / f"{stem}.phg"
    path.write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        yield path, phg.build(phg.load(path))
