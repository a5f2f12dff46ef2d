"""Concrete admissible inputs: rational values of every parameter and input that satisfy their
declared types, versor types included, for counterexamples checked by exact evaluation."""
from __future__ import annotations

import itertools
import math
import random

from sympy import Rational

from phg import sparse
from phg import support as sup
from phg.algebra import Algebra
from phg.hypergraph import Hypergraph, Value
from phg.plan.loops import unrolled

from .exact import Budget, Concrete, Floating, Undefined, nonzero

# Scalar products one search may evaluate, counted per candidate over the value's cone (the
# products the fused code would unroll), an exact evaluation as EXACT_WEIGHT floating ones.
# Measured: about 4 us a product in floating point, 18 us exactly (sympy rationals), so a search
# stops within some seconds; past it the claim stays unknown, with this budget named.
MAX_SEARCH_PRODUCTS = 2_000_000
EXACT_WEIGHT = 4
# The searches of all the claims of a file together: a file may hold many models, each with claims
# whose searches use their whole budget (measured: about 2 s each at two cores).
MAX_FILE_SEARCH_PRODUCTS = 10_000_000


class FileSearches:
    """The scalar products the counterexample searches of one file have used, and how many
    equivariance witnesses it has searched for (verifier.symmetry)."""

    def __init__(self):
        self.used = 0
        self.witnesses = 0


class SearchBudget:
    def __init__(self, graph: Hypergraph, value_id: str, leaves: list[Value], file: FileSearches | None = None):
        self.file = file or FileSearches()
        # Drawing a candidate costs too: a versor leaf's channel is a product of random rotors
        # (measured about 0.3 ms, some dim^2 products' time), any other leaf's a draw a coefficient.
        drawn = sum(math.prod(v.shape) * (graph.algebra.dim ** 2 if _versor_declared(v) else v.support.bit_count())
                    for v in leaves)
        self.per_candidate = max(1, unrolled(graph, [value_id]) + drawn)
        self.used = 0

    def confirm(self) -> None:
        """Charges an exact evaluation that confirms a witness already found (verifier.symmetry's
        interval enclosure) to the file's budget alone: the search itself is over."""
        self.file.used += self.per_candidate * EXACT_WEIGHT
        if self.file.used > MAX_FILE_SEARCH_PRODUCTS:
            raise Budget(f"the counterexample searches of this file have used their budget of "
                         f"{MAX_FILE_SEARCH_PRODUCTS:,} scalar products (exact ones counted {EXACT_WEIGHT} times)")

    def charge(self, exact: bool) -> None:
        cost = self.per_candidate * (EXACT_WEIGHT if exact else 1)
        self.used += cost
        self.file.used += cost
        if self.file.used > MAX_FILE_SEARCH_PRODUCTS:
            raise Budget(f"the counterexample searches of this file have used their budget of "
                         f"{MAX_FILE_SEARCH_PRODUCTS:,} scalar products (exact ones counted {EXACT_WEIGHT} times)")
        if self.used > MAX_SEARCH_PRODUCTS:
            raise Budget(f"a counterexample search costs {self.per_candidate:,} scalar products a candidate (to draw and evaluate it), "
                         f"beyond its budget of {MAX_SEARCH_PRODUCTS:,} (exact ones counted {EXACT_WEIGHT} times)")


def small_rational(rng: random.Random) -> Rational:
    return Rational(rng.randint(-4, 4) or 1, rng.choice([1, 1, 2, 3]))


def unit_vector(alg: Algebra, rng: random.Random, indices: list[int]) -> dict:
    """A rational vector v over the given basis vectors (all with one square s) with v^2 = s:
    inverse stereographic projection of a random rational point."""
    if len(indices) == 1:
        return {1 << indices[0]: Rational(1)}
    t = [small_rational(rng) for _ in indices[1:]]
    n2 = sum(x * x for x in t)
    coords = [(n2 - 1) / (n2 + 1)] + [2 * x / (n2 + 1) for x in t]
    return {1 << i: c for i, c in zip(indices, coords) if c != 0}


def rotor(alg: Algebra, rng: random.Random, factors: int) -> dict:
    """A product of `factors` (even) rational unit vectors of one signature class: R ~R = 1."""
    positive = [i for i, v in enumerate(alg.basis) if v.square == 1]
    negative = [i for i, v in enumerate(alg.basis) if v.square == -1]
    pool = positive if len(positive) >= 2 or not negative else negative
    out = {0: Rational(1)}
    for _ in range(factors if pool else 0):
        out = sparse.product(alg, "gp", out, unit_vector(alg, rng, pool))
    return out


def translator(alg: Algebra, rng: random.Random) -> dict:
    """1 + e0 u / 2 with u a rational Euclidean vector: a motor with T ~T = 1 (e0 squares to 0)."""
    null = next(i for i, v in enumerate(alg.basis) if v.square == 0)
    out = {0: Rational(1)}
    for i, v in enumerate(alg.basis):
        if v.square != 0:
            c = small_rational(rng) / 2
            s, m = alg.product("op", 1 << null, 1 << i)
            if c and s:
                out[m] = out.get(m, 0) + s * c
    return out


def _leaves(graph: Hypergraph, value_id: str) -> list[Value]:
    """The parameters and inputs value_id depends on."""
    cone = [graph.values[v] for v in graph.cone(value_id)]
    return [v for v in cone if graph.producer(v.id) is None and v.const is None]


def basis_rotor(alg: Algebra, rng: random.Random) -> dict:
    """1 or a basis bivector e_ij of two basis vectors with one non-zero square (e_ij ~e_ij = 1):
    rotations by pi, the rotors that put coefficients on the fewest blades."""
    classes = [[i for i, v in enumerate(alg.basis) if v.square == s] for s in (1, -1)]
    pairs = [(i, j) for c in classes for i in c for j in c if i < j]
    if not pairs or rng.random() < 0.3:
        return {0: Rational(1)}
    i, j = rng.choice(pairs)
    return {(1 << i) | (1 << j): Rational(rng.choice([-1, 1]))}


def admissible(alg: Algebra, v: Value, rng: random.Random, special: bool = False) -> dict:
    """A value satisfying v's declared type, channel by channel.  `special` draws from the few
    values where identities between inputs tend to fail: coefficients in {-1, 0, 1}, basis rotors,
    vectors that are null or cancel another input."""
    out = {}
    for ch in itertools.product(*(range(s) for s in v.shape)):
        kind = v.declared.versor if v.declared is not None else None
        if _versor_declared(v):
            if special:
                m = basis_rotor(alg, rng)
            else:
                m = rotor(alg, rng, rng.choice([0, 1, 2, 3, 4] if kind == "Versor" else [0, 2, 2, 4]))
            if kind == "Motor" and alg.degenerate:
                m = sparse.product(alg, "gp", translator(alg, rng), m)
            m = {b: c for b, c in m.items() if v.support >> b & 1}
        elif special:
            m = {b: Rational(c) for b in sup.blades_of(v.support) if (c := rng.choice([-1, 0, 0, 1]))}
        else:
            m = {b: small_rational(rng) for b in sup.blades_of(v.support) if rng.random() < 0.9}
        out[ch] = m
    return out


def _versor_declared(v: Value) -> bool:
    return v.declared is not None and v.declared.versor in ("Rotor", "Motor", "Versor")


def candidates(alg: Algebra, leaves: list[Value], rng: random.Random, tries: int, budget: SearchBudget):
    """Input assignments to try, alternating generic rational values and special ones; each is
    charged to the budget before it is drawn."""
    for attempt in range(tries):
        budget.charge(exact=False)
        yield {v.id: admissible(alg, v, rng, special=attempt % 2 == 1) for v in leaves}


def find(graph: Hypergraph, value_id: str, blades: int, tries: int = 48, seed: int = 0,
         file: FileSearches | None = None) -> dict | None:
    """Inputs at which value_id has a non-zero coefficient on one of `blades` (a support mask),
    as {inputs, blade, channel, coefficient, exact}; None if none was found.  Candidates are found
    in floating point and then confirmed by exact evaluation."""
    rng = random.Random(seed)
    alg = graph.algebra
    leaves = _leaves(graph, value_id)
    budget = SearchBudget(graph, value_id, leaves, file)
    for inputs in candidates(alg, leaves, rng, tries, budget):
        try:
            approx = Floating(graph, inputs).coefficients(value_id)
        except (Undefined, ZeroDivisionError, ValueError, OverflowError):
            continue
        if not any(_clearly_nonzero(m, b) for m in approx.values() for b in sup.blades_of(blades)):
            continue
        budget.charge(exact=True)
        ev = Concrete(graph, inputs)
        try:
            value = ev.coefficients(value_id)
        except (Undefined, ZeroDivisionError, ValueError):
            continue
        for ch, m in sorted(value.items()):
            for b in sup.blades_of(blades):
                if b in m and nonzero(m[b]):
                    return {"inputs": {graph.values[k].name or k: _show(alg, val) for k, val in inputs.items()},
                            "blade": alg.blade_name(b), "channel": list(ch), "coefficient": str(m[b]),
                            "exact": ev.exact}
    return None


def _clearly_nonzero(m: dict, b: int) -> bool:
    scale = max([1.0] + [abs(c) for c in m.values()])
    return abs(m.get(b, 0.0)) > 1e-9 * scale


def _show(alg: Algebra, value: dict) -> dict:
    def one(m):
        return {alg.blade_name(b): str(c) for b, c in sorted(m.items(), key=lambda t: alg.position[t[0]]) if c != 0}
    if list(value) == [()]:
        return one(value[()])
    return {",".join(map(str, ch)): one(m) for ch, m in value.items()}


def _versor_failure(ev, m: dict, normalised: bool) -> str | None:
    """Why the multivector m is not a (normalised) versor, or None if these checks pass.  Works in
    either evaluation mode; `ev.zero(x)` says whether a number counts as zero there."""
    alg = ev.alg
    rev = {b: (c if alg.reverse_sign(b) > 0 else -c) for b, c in m.items()}
    vv = sparse.product(alg, "gp", m, rev)
    for b, c in vv.items():
        if b and not ev.zero(c):
            return f"V ~V has a {alg.blade_name(b)} part ({c})"
    s = vv.get(0, 0)
    if ev.zero(s):
        return "V ~V = 0, so V is not invertible"
    if normalised and not ev.zero(s - 1):
        return f"V ~V = {s}, not 1"
    inverse = ev.inverse(m, None)
    for i in range(alg.n):
        image = sparse.product(alg, "gp", sparse.product(alg, "gp", m, {1 << i: 1}), inverse)
        for b, c in image.items():
            if b.bit_count() != 1 and not ev.zero(c):
                return f"V {alg.blade_name(1 << i)} V^-1 has a {alg.blade_name(b)} part ({c})"
    return None


def find_non_versor(graph: Hypergraph, value_id: str, normalised: bool, tries: int = 48, seed: int = 0,
                    file: FileSearches | None = None) -> dict | None:
    """Inputs at which value_id is not a versor (or not normalised), with the failed check: found in
    floating point, confirmed by exact evaluation.  The first inputs tried are zero wherever the
    type admits it, since 0 is never a versor."""
    rng = random.Random(seed)
    alg = graph.algebra
    leaves = _leaves(graph, value_id)
    budget = SearchBudget(graph, value_id, leaves, file)
    for attempt, inputs in enumerate(candidates(alg, leaves, rng, tries, budget)):
        if attempt == 0:
            inputs = {k: ({ch: {} for ch in val} if not graph.values[k].versor else val) for k, val in inputs.items()}
        try:
            approx = Floating(graph, inputs)
            if not any(_versor_failure(approx, m, normalised) for m in approx.coefficients(value_id).values()):
                continue
            budget.charge(exact=True)
            ev = Concrete(graph, inputs)
            for ch, m in sorted(ev.coefficients(value_id).items()):
                failure = _versor_failure(ev, m, normalised)
                if failure:
                    return {"inputs": {graph.values[k].name or k: _show(alg, val) for k, val in inputs.items()},
                            "channel": list(ch), "failure": failure, "exact": ev.exact}
        except (Undefined, ZeroDivisionError, ValueError, OverflowError):
            continue
    return None
