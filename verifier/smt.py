"""Blade-support obligations as bit-vector queries (QF_BV).

Each value in the cone of the subject is a bit-vector of 2^n bits (bit b: blade mask b may be
non-zero).  Inputs, parameters and constants are fixed to their declared or exact supports; each
hyperedge constrains its target by the abstract rule of its kind.  Products are encoded bit by
bit over the pairs of blades the sources' current supports allow; the query then also asks
whether any value escapes its current support, so the restriction is justified inside the same
query (by induction along the edges, the first escape would be a model).  Closures (inverses of
non-versors, exp, log) are bounded by a constant set that the query checks to be closed.

The query is satisfiable exactly when the claim can fail; unsat proves it.  Z3 runs under a
deterministic resource limit, in a context of its own: when it gives up, the answer is unknown,
never proven, and the same in every process.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import z3

from phg import rules as r
from phg import support as sup
from phg.algebra import Algebra
from phg.hypergraph import Edge, Hypergraph
from phg.operations import operation
from phg.versors import SANDWICH_THEOREM

RLIMIT = 5_000_000
# The size of one query, counted before it is built (building is what takes time in large
# algebras: a product of two general multivectors of G8 conjoins 2^16 pairs of blades).  Past it
# the claim is unknown, the same in every process.
PAIR_BUDGET = 100_000


class QueryTooLarge(Exception):
    pass
# Z3's heuristics follow its terms' internal ids, which depend on every term the context ever
# made: in a shared context, one claim's verdict (and the recorded query's text) would depend on
# what the process checked before.  Each query gets a context of its own and a fixed seed.
SEED = 0


def solver(ctx: z3.Context) -> z3.Solver:
    """A solver under the deterministic resource limit and seed every query uses."""
    s = z3.Solver(ctx=ctx)
    s.set("rlimit", RLIMIT)
    s.set("random_seed", SEED)
    return s



@dataclass
class Answer:
    status: str                 # proven, refuted, unknown
    smt2: str
    reason: str                 # z3's words: unsat, sat, or why unknown
    axioms: list[str]           # theorems and identities the query relies on
    covered: set = field(default_factory=set)   # values proven within their supports (unsat only)


def bit(x, b: int):
    return z3.Extract(b, b, x) == 1


def mask(alg: Algebra, m: int, ctx: z3.Context | None = None):
    return z3.BitVecVal(m, alg.dim, ctx)


def outside(alg: Algebra, x, m: int):
    """x has a blade outside mask m."""
    return (x & mask(alg, alg.every_blade & ~m, x.ctx)) != mask(alg, 0, x.ctx)


def bits_to_bv(alg: Algebra, conds, ctx: z3.Context | None = None):
    """The bit-vector whose bit c is conds[c] (a z3 Bool or a Python bool)."""
    parts = [z3.If(c, z3.BitVecVal(1, 1, ctx), z3.BitVecVal(0, 1, ctx)) if not isinstance(c, bool)
             else z3.BitVecVal(int(c), 1, ctx) for c in reversed(conds)]
    return parts[0] if len(parts) == 1 else z3.Concat(parts)


def product_bv(alg: Algebra, kind: str, a, b, hint_a: int, hint_b: int, bit=bit):
    sign, target = alg.tables[kind]
    terms: list[list] = [[] for _ in range(alg.dim)]
    for i in sup.blades_of(hint_a):
        for j in sup.blades_of(hint_b):
            if sign[i, j]:
                terms[int(target[i, j])].append(_connective(z3.Z3_mk_and, [bit(a, i), bit(b, j)]))
    conds = [False if not t else t[0] if len(t) == 1 else _connective(z3.Z3_mk_or, t) for t in terms]
    return bits_to_bv(alg, conds, a.ctx)


def _connective(make, args: list):
    """And/Or of Boolean terms through Z3's C API: the same term as z3.And/z3.Or, without their
    per-argument coercions, which cost most of the time of a large product (G8: 2^16 pairs)."""
    ctx = args[0].ctx
    array = (z3.Ast * len(args))(*(x.as_ast() for x in args))
    return z3.BoolRef(make(ctx.ref(), len(args), array), ctx)


def product_pairs(alg: Algebra, kind: str, hint_a: int, hint_b: int) -> int:
    """The pairs of blades a product's encoding conjoins (its size)."""
    sign, _ = alg.tables[kind]
    rows, cols = sup.blades_of(hint_a), sup.blades_of(hint_b)
    return int(np.count_nonzero(sign[np.ix_(rows, cols)])) if rows and cols else 0


def grades_bv(alg: Algebra, x):
    """All blades of every grade x has a blade of."""
    ctx = x.ctx
    out = mask(alg, 0, ctx)
    for k in range(alg.n + 1):
        g = sup.of_grades(alg, [k])
        out = out | z3.If((x & mask(alg, g, ctx)) != mask(alg, 0, ctx), mask(alg, g, ctx), mask(alg, 0, ctx))
    return out


class Encoder:
    """Builds the query for one claim about one value of a hypergraph."""

    def __init__(self, graph: Hypergraph, narrowings: dict[str, tuple[int, str]], lemmas: set[str] = frozenset()):
        self.g = graph
        # Values an earlier query already proved to stay within their supports: the query stops there
        # and assumes only that containment (the abstract rules are monotone, so that suffices).
        self.lemmas = lemmas
        self.alg = graph.algebra
        self.ctx = z3.Context()
        self.narrowings = narrowings        # value id -> (mask, why): exact identities, as axioms
        self.vars: dict[str, z3.BitVecRef] = {}
        self.facts: list = []
        self.failures: list = []
        self.axioms: list[str] = []
        self._bits: dict = {}
        self.pairs = 0

    def bit(self, x, b: int):
        """Bit b of x is set; cached, since products ask for the same bits many times."""
        key = (x.get_id(), b)
        if key not in self._bits:
            self._bits[key] = bit(x, b)
        return self._bits[key]

    def product(self, kind: str, a, b, hint_a: int, hint_b: int):
        self.pairs += product_pairs(self.alg, kind, hint_a, hint_b)
        if self.pairs > PAIR_BUDGET:
            raise QueryTooLarge(f"the support query is too large: its products conjoin more than "
                                f"{PAIR_BUDGET:,} pairs of blades")
        return product_bv(self.alg, kind, a, b, hint_a, hint_b, self.bit)

    def var(self, value_id: str):
        if value_id not in self.vars:
            self.vars[value_id] = z3.BitVec(f"s_{_smt_name(value_id)}", self.alg.dim, self.ctx)
        return self.vars[value_id]

    def encode(self, value_id: str, claim_mask: int):
        alg = self.alg
        for v in self.cone(value_id):
            value = self.g.values[v]
            x = self.var(v)
            edge = self.g.producer(v)
            if edge is None:
                self.facts.append(x == mask(alg, value.support, self.ctx))
                continue
            if v in self.lemmas and v != value_id:
                self.facts.append(x & mask(alg, alg.every_blade & ~value.support, self.ctx) == mask(alg, 0, self.ctx))
                self.axioms.append(f"{value.name or v}: within its support, by an earlier query")
                continue
            # Each value is defined exactly once, so the facts are always satisfiable: a narrowing
            # restricts the definition, it is never asserted beside it.
            definition = self.edge(edge)
            if v in self.narrowings:
                m, why = self.narrowings[v]
                definition = definition & mask(alg, m, self.ctx)
                self.axioms.append(f"{value.name or v}: {why}")
            self.facts.append(x == definition)
            self.failures.append(outside(alg, x, value.support))
        self.failures.append(outside(alg, self.var(value_id), claim_mask))

    def cone(self, value_id: str) -> list[str]:
        """The values the query needs: the subject's cone, cut at lemmas."""
        order, seen, stack = [], set(), [value_id]
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            order.append(v)
            e = self.g.producer(v)
            if e is not None and (v == value_id or v not in self.lemmas):
                stack.extend(e.sources)
        return order

    def edge(self, e: Edge):
        """The support of e's target, as a bit-vector expression of its sources': the bit-vector
        reading of its operation's support rule (phg.rules, phg.operations)."""
        for s in e.sources:              # made in the sources' order, as Z3's term ids follow it
            self.var(s)
        return self.rule(operation(e.kind).support, e)[0]

    def rule(self, t: r.Rule, e: Edge):
        """(bit-vector, inferred support) of rule term t on e's sources: the support is t's integer
        reading on the sources' inferred supports, which bounds the products' encodings."""
        alg, g = self.alg, self.g
        hint = [g.values[s].support for s in e.sources]
        if isinstance(t, r.Arg):
            return self.var(e.sources[t.i]), hint[t.i]
        if isinstance(t, r.Blades):
            m = t.mask(alg, e.attrs)
            return mask(alg, m, self.ctx), m
        if isinstance(t, r.Union):
            (a, ha), (b, hb) = self.rule(t.a, e), self.rule(t.b, e)
            return a | b, ha | hb
        if isinstance(t, r.Product):
            (a, ha), (b, hb) = self.rule(t.a, e), self.rule(t.b, e)
            return self.product(t.kind, a, b, ha, hb), sup.product(alg, t.kind, ha, hb)
        if isinstance(t, r.Keep):
            m = t.mask(alg, e.attrs)
            keep = mask(alg, m, self.ctx) if t.mask_first else None
            a, ha = self.rule(t.a, e)
            return a & (keep if keep is not None else mask(alg, m, self.ctx)), ha & m
        if isinstance(t, r.Inverse):
            return self.inverse(e, t.i)
        if isinstance(t, r.Closure):
            a, ha = self.rule(t.a, e)
            return self.closure(a, ha), sup.closure(alg, ha)
        if isinstance(t, r.Dual):
            a, ha = self.rule(t.a, e)
            return bits_to_bv(alg, [bit(a, alg.full ^ c) for c in range(alg.dim)], self.ctx), sup.dual(alg, ha)
        if isinstance(t, r.IfBlade):
            (a, ha), (b, hb) = self.rule(t.then, e), self.rule(t.other, e)
            return z3.If(bit(self.var(e.sources[t.i]), t.blade(alg, e.attrs)), a, b), ha | hb
        if isinstance(t, r.IfSupport):
            return self.rule(t.then if t.test(hint[t.i]) else t.other, e)
        if isinstance(t, r.Sandwich):
            v, x = self.var(e.sources[t.v]), self.var(e.sources[t.x])
            hv, hx = hint[t.v], hint[t.x]
            inverse, hi = self.inverse(e, t.v)
            vx = self.product("gp", v, x, hv, hx)
            out = self.product("gp", vx, inverse, sup.product(alg, "gp", hv, hx), hi)
            if g.values[e.sources[t.v]].versor:
                self.axioms.append(f"{e.kind} {e.id}: {SANDWICH_THEOREM}")
                out = out & grades_bv(alg, x)
            return out, r.support(t, alg, hint, [g.values[s].versor for s in e.sources], e.attrs)
        if isinstance(t, r.Paths):
            x, y = self.var(e.sources[t.x]), self.var(e.sources[t.y])
            out = mask(alg, 0, self.ctx)
            for ga, gb, made in e.attrs["paths"]:
                ma, mb = sup.of_grades(alg, [ga]), sup.of_grades(alg, [gb])
                product = self.product("gp", x & mask(alg, ma, self.ctx), y & mask(alg, mb, self.ctx),
                                       hint[t.x] & ma, hint[t.y] & mb)
                out = out | (product & mask(alg, sup.of_grades(alg, [made]), self.ctx))
            return out, r.support(t, alg, hint, [], e.attrs)
        # A term with no reading here must not be encoded as anything: read as a scalar, it could
        # make a false grade claim proven.
        raise KeyError(f"the support encoding has no reading of {type(t).__name__} (operation {e.kind!r})")

    def inverse(self, e: Edge, i: int):
        """Source i's inverse: itself for a versor, else the closure of its subalgebra (checked)."""
        v, hv = self.var(e.sources[i]), self.g.values[e.sources[i]].support
        if self.g.values[e.sources[i]].versor:
            return v, hv
        return self.closure(v, hv), sup.closure(self.alg, hv)

    def closure(self, x, hint: int):
        """A constant set C bounding the subalgebra generated by x; the query checks C contains 1
        and x and is closed under products with x, so C contains that subalgebra."""
        alg = self.alg
        c = sup.closure(alg, hint)
        cv = mask(alg, c, self.ctx)
        self.failures.append(outside(alg, x, c))
        self.failures.append(outside(alg, self.product("gp", cv, x, c, hint), c))
        return cv

    def solve(self) -> Answer:
        definitions = solver(self.ctx)
        definitions.add(*self.facts)
        if definitions.check() != z3.sat:
            # Cannot happen for definitional facts; never let a vacuous query prove anything.
            return Answer("unknown", definitions.to_smt2(), "the definitions are not satisfiable", self.axioms)
        s = solver(self.ctx)
        s.add(*self.facts)
        s.add(z3.Or(*self.failures) if len(self.failures) > 1 else self.failures[0])
        smt2 = s.to_smt2()
        result = s.check()
        if result == z3.unsat:
            return Answer("proven", smt2, "unsat", self.axioms)
        if result == z3.sat:
            return Answer("refuted", smt2, "sat", self.axioms)
        return Answer("unknown", smt2, s.reason_unknown(), self.axioms)


def _smt_name(value_id: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in value_id.replace("%", "t"))


def support_query(graph: Hypergraph, value_id: str, claim_mask: int,
                  narrowings: dict[str, tuple[int, str]] | None = None, lemmas: set[str] | None = None) -> Answer:
    """Prove that value_id stays within claim_mask; on unsat, every value the query covered is
    within its support too (answer.covered)."""
    enc = Encoder(graph, narrowings or {}, lemmas or set())
    try:
        enc.encode(value_id, claim_mask)
    except QueryTooLarge as exc:
        return Answer("unknown", "", str(exc), enc.axioms)
    answer = enc.solve()
    answer.covered = set(enc.vars) if answer.status == "proven" else set()
    return answer
