import os
import sys
import tempfile
from pathlib import Path

# Test helpers (exprgen, modelgen, cliffeval, claimcheck) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# Certificates are signed with a per-user key; the tests make theirs in a scratch folder.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="phg-test-config-")
os.environ.pop("PHG_SIGNING_KEY", None)
