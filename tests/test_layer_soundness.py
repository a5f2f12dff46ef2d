"""Soundness of the layers (LANGUAGE §10) against numbers, as tests/test_soundness.py is for the
other operations: random models of linear(W, x), bilinear(w, x, y) per channel and fully
connected, and gate(x, s) per grade, over inputs of random grades and channels (and, half the
time, a second layer on the first's result), each result claimed to have random grades; every
grade claim the verifier proves holds for clifford on random admissible inputs."""
from __future__ import annotations

import pytest
from claimcheck import holds
from hypothesis import strategies as st
from shards import sweep

import phg
from phg import support as sup
from phg.algebra import Algebra

MODELS = 200
SHARDS = 2          # in parallel under pytest-xdist
ALGEBRAS = {"G3": (3, 0, 0), "PGA": (3, 0, 1)}


def _grades(draw, n: int) -> list[int]:
    return sorted(draw(st.sets(st.integers(0, n), min_size=1, max_size=n + 1)))


def _type(grades: list[int]) -> str:
    return f"Grades({', '.join(map(str, grades))})"


@st.composite
def layer_models(draw):
    name = draw(st.sampled_from(sorted(ALGEBRAS)))
    alg = Algebra.from_signature(name, *ALGEBRAS[name])
    c, cout = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    gx, gy = _grades(draw, alg.n), _grades(draw, alg.n)
    lines = [f"    input x[{c}]: {_type(gx)}", f"    input y[{c}]: {_type(gy)}"]
    value = {"x": (sup.of_grades(alg, gx), c), "y": (sup.of_grades(alg, gy), c)}

    def layer(k: int, a: str, b: str) -> str:
        """A random layer of a (and b), its weights declared as W<k>; its name."""
        (sa, ca), (sb, _) = value[a], value[b]
        paths = len(sup.grade_paths(alg, sa, sb))    # none for e0123 e0123 in PGA, say
        kind = draw(st.sampled_from(["linear", "bilinear", "connected", "gate"] if ca == value[b][1] and paths else
                                    ["linear", "gate"]))
        ka = len(sup.grades_of(sa))
        shape, expr, out = {"linear": ([cout, ca, ka], f"linear(W{k}, {a})", cout),
                            "bilinear": ([ca, paths], f"bilinear(W{k}, {a}, {b})", ca),
                            "connected": ([cout, ca, paths], f"bilinear(W{k}, {a}, {b})", cout),
                            "gate": ([ca, ka], f"gate({a}, W{k})", ca)}[kind]
        lines.append(f"    param W{k}[{', '.join(map(str, shape))}]: Scalar = normal(0.5)")
        claim = _type(_grades(draw, alg.n))
        lines.append(f"    let z{k}[{out}]: {claim} = {expr}")
        inferred = sup.bilinear(alg, sup.SCALAR, sa, sb, sup.grade_paths(alg, sa, sb)) if kind in ("bilinear", "connected") \
            else sa
        value[f"z{k}"] = (inferred, out)
        return f"z{k}"

    last = layer(0, "x", "y")
    if draw(st.booleans()):
        last = layer(1, last, draw(st.sampled_from([last, "x"])))
    lines.append(f"    output o = sum({last})")
    p, q, r = ALGEBRAS[name]
    return f"algebra {name} = Cl({p}, {q}, {r})\n\nmodel M on {name} {{\n" + "\n".join(lines) + "\n}\n"


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_proven_layer_claim_holds_numerically(shard):
    def check(source):
        program = phg.loads(source)
        cert = phg.check(program)
        proven = [o for o in cert.obligations if o.kind == "grade" and o.status == "proven"]
        verdict = holds(program.models["M"], proven, trials=12)
        broken = [o.claim for o in proven if verdict[o.id] is False]
        assert not broken, (source, broken)

    sweep(layer_models(), MODELS, shard, SHARDS, check)
