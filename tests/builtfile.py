"""A model written to a file and built where `phg train` on that file finds it (the per-user cache
of a scratch folder), so that a test module compiles its kernels once."""
import pytest

import phg


def built_file(tmp_path_factory, stem: str, text: str):
    """Yields (path, module); use as `yield from built_file(...)` in a module-scoped fixture."""
    root = tmp_path_factory.mktemp(stem)
    path = root / f"{stem}.phg"
    path.write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        yield path, phg.build(phg.load(path))
