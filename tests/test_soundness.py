"""Soundness against numbers: on random models with random claimed types, every grade or versor
claim the verifier proves holds for clifford on 20 random admissible inputs.  `python -m bench
soundness` runs the same generator on 20,000 models and reports precision."""
from hypothesis import HealthCheck, given, settings

import phg
from claimcheck import holds
from modelgen import models

MODELS = 2000


@settings(max_examples=MODELS, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(models())
def test_every_proven_claim_holds_numerically(source):
    program = phg.loads(source)
    cert = phg.check(program)
    proven = [o for o in cert.obligations if o.kind in ("grade", "versor") and o.status == "proven"]
    verdict = holds(program.models["M"], proven, trials=20)
    broken = [o.claim for o in proven if verdict[o.id] is False]
    assert not broken, (source, broken)
    # Sandwiches of proven versors and rotor updates are always proven.
    assert all(o.status == "proven" for o in cert.obligations if o.kind == "update")
    assert all(o.status == "proven" for o in cert.obligations if o.evidence.get("narrowing") == "sandwich")
