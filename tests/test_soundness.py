"""Soundness against numbers: on random models with random claimed types, every grade or versor
claim the verifier proves holds for clifford on 20 random admissible inputs.  `python -m bench
soundness` runs the same generator on 20,000 models and reports precision."""
import pytest

import phg
from claimcheck import holds
from modelgen import models
from shards import sweep

MODELS = 2000
SHARDS = 8          # in parallel under pytest-xdist


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_proven_claim_holds_numerically(shard):
    def check(source):
        program = phg.loads(source)
        cert = phg.check(program)
        proven = [o for o in cert.obligations if o.kind in ("grade", "versor") and o.status == "proven"]
        verdict = holds(program.models["M"], proven, trials=20)
        broken = [o.claim for o in proven if verdict[o.id] is False]
        assert not broken, (source, broken)
        # Sandwiches of proven versors and rotor updates are always proven.
        assert all(o.status == "proven" for o in cert.obligations if o.kind == "update")
        assert all(o.status == "proven" for o in cert.obligations if o.evidence.get("narrowing") == "sandwich")

    sweep(models(built=False), MODELS, shard, SHARDS, check)


def test_the_numeric_versor_check_accepts_large_boosts_and_rejects_null_elements():
    """The oracle itself: a boost rotor cosh t + sinh t e12 of STA (e12^2 = +1) has x ~x = 1 while
    its coefficients are about e^t / 2; 1 + e12 has x ~x = 0 at any size.  Where rounding hides
    x ~x the check says neither (None): a false alarm is no better than a missed violation."""
    import numpy as np

    from claimcheck import versor_holds
    from cliffeval import Reference

    program = phg.loads("algebra STA = Cl(1, 3, 0)\nmodel M on STA {\n    input a: Vector\n    output y = a\n}\n")
    ref = Reference(program.models["M"])
    e12 = 0b11
    for t in (0.5, 10.0):
        assert versor_holds(ref, ref.mv({0: np.cosh(t), e12: np.sinh(t)}), normalised=True) is True, t
    assert versor_holds(ref, ref.mv({0: np.cosh(18.0), e12: np.sinh(18.0)}), normalised=True) is None
    assert versor_holds(ref, 2 * ref.mv({0: np.cosh(1.0), e12: np.sinh(1.0)}), normalised=True) is False
    assert versor_holds(ref, ref.mv({0: 1.0, 0b1: 1.0}), normalised=False) is False    # 1 + e1: x ~x not scalar
    for size in (1.0, 1e4):
        assert versor_holds(ref, ref.mv({0: size, e12: size}), normalised=False) is None, size
