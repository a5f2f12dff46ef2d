import os
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


def _build_examples(tmp_path_factory):
    import phg
    root = tmp_path_factory.mktemp("examples")
    out = {}
    for p in sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.phg")):
        program = phg.load(p)                  # build() checks it, narrowing its supports
        out[p.stem] = (program, phg.build(program, root / p.stem))
    return out


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Every example built once per session: {stem: (program, module)}; kernels compile once."""
    return _build_examples(tmp_path_factory)
