"""Equivariance obligations (LANGUAGE §20): for a model that declares `symmetry G(n)`, each output
is claimed to transform with the group, f(g . x) = chi(g) g . f(x), chi(g) = 1 or det(g).

Proven by the operations' rules (phg.operations' `equivariance`, phg.symmetry): every value gets a
parity from its sources', value by value; a leaf's is decided exactly: an input transforms (parity
+1) unless excepted; a parameter, an excepted input or a constant does not depend on the inputs, so
it is covariant only where the group fixes it (every blade of a parameter's support, a constant's
very value), else it breaks equivariance there.  An output whose rules break is refuted with a
witness: a group element (a product of rational unit vectors, and a rational translator in a PGA)
and rational inputs and parameters where f(g . x) is neither g . f(x) nor det(g) g . f(x), found in
floating point and confirmed by exact evaluation; without one it stays unknown.
"""
from __future__ import annotations

import random
from fractions import Fraction

from sympy import Rational

from phg import sparse
from phg import support as sup
from phg.hypergraph import Hypergraph
from phg.operations import operation
from phg.symmetry import fixed_parity, support_parity

from . import counterexample as cx
from .exact import Budget, Concrete, Enclosure, Floating, Undefined, enclosed, nonzero
from .obligations import Ledger, Obligation


# Witness searches of one file, at most: each evaluates its output's cone four times a candidate
# (twice in floating point, twice exactly, before and after the group element), in Python; a file
# of thousands of broken outputs would otherwise search for minutes (measured: 2,000 outputs on a
# chain, 70 s).  Past it, a claim stays unknown, with this limit named.
MAX_WITNESS_SEARCHES = 100


class SymmetryChecker(Ledger):
    def __init__(self, graph: Hypergraph, source: str | None = None, searches: cx.FileSearches | None = None):
        super().__init__(graph, source)
        self.searches = searches or cx.FileSearches()

    def run(self) -> list[Obligation]:
        sym = self.g.symmetry
        if sym is None:
            return self.obligations
        grp = sym.group
        parities, why, origin = self.parities()
        used = self.rules(why)
        for name, vid in sorted(self.g.outputs.items()):
            v = self.g.values[vid]
            span = v.span or sym.span
            q = parities.get(vid)
            if q is not None:
                rules = used[vid]
                self.add("equivariance", vid, span, f"{name} is {grp.name}-equivariant: {grp.behaviour(q, v.support)}",
                         "proven", {"group": grp.name, "parity": q, "rules": rules,
                                    "inputs": [self.label(i) for i in self.g.inputs if i not in sym.fixed],
                                    "fixed": [self.label(i) for i in sym.fixed]})
                continue
            where = origin[vid]
            breaks = {"at": self._where(where), "because": why[where]}
            try:
                if self.searches.used > cx.MAX_FILE_SEARCH_PRODUCTS:     # spent: no cone is walked again
                    raise Budget(f"the counterexample searches of this file have used their budget of "
                                 f"{cx.MAX_FILE_SEARCH_PRODUCTS:,} scalar products")
                self.searches.witnesses += 1
                if self.searches.witnesses > MAX_WITNESS_SEARCHES:
                    raise Budget(f"a file's outputs have {MAX_WITNESS_SEARCHES} witness searches at most")
                witness, budget = find_witness(self.g, vid, file=self.searches), None
            except Budget as exc:
                witness, budget = None, str(exc)
            evidence = {"group": grp.name, "breaks": breaks}
            if witness:
                evidence["witness"] = witness
            else:
                evidence["reason"] = "the rules do not show it, and no witness was " + \
                    (f"confirmed: {budget}" if budget else "found")
            self.add("equivariance", vid, span, f"{name} is {grp.name}-equivariant",
                     "refuted" if witness else "unknown", evidence)
        return self.obligations

    def rules(self, why: dict) -> dict[str, dict]:
        """Per value, each kind of operation in its cone and the theorem its rule gave (the nearest
        use's), made once for every value: a cone's walk per output would cost outputs x values."""
        used: dict[str, dict] = {}
        for vid in self.g.values:                       # a topological order
            e = self.g.producer(vid)
            if e is None:
                used[vid] = {}
                continue
            mine = {e.kind: why[vid]}
            for src in e.sources:
                for kind, theorem in used[src].items():
                    mine.setdefault(kind, theorem)
            used[vid] = mine
        return used

    def _where(self, vid: str) -> dict:
        e = self.g.producer(vid)
        span = (e.span if e is not None else None) or self.g.values[vid].span
        out = {"value": self.label(vid), "operation": e.kind if e is not None else self.g.values[vid].role}
        if span is not None:
            out["span"] = span.to_dict()
        return out

    def parities(self) -> tuple[dict, dict, dict]:
        """Each value's parity (None: the rules break), the theorem or reason, and for a broken
        value the value where it first broke."""
        sym = self.g.symmetry
        grp = sym.group
        parity: dict[str, int | None] = {}
        why: dict[str, str] = {}
        origin: dict[str, str] = {}
        moving: set[str] = set()                    # the values that depend on an input the group moves
        for vid, v in self.g.values.items():            # a topological order
            e = self.g.producer(vid)
            if (v.role == "input" and vid not in sym.fixed) or (e is not None and moving & set(e.sources)):
                moving.add(vid)
            if v.support == 0:                       # proven zero for every input (its support rule)
                parity[vid], why[vid], origin[vid] = 1, "identically zero: its support is empty", vid
                continue
            if e is not None and vid not in moving and (still := support_parity(grp, v.support)) is not None:
                parity[vid], origin[vid] = still, vid
                why[vid] = "depends on no input the group moves, and its blades are ones the group fixes"
                continue
            if e is not None and e.kind == "sandwich" and self.g.values[e.sources[1]].support == 1 \
                    and parity[e.sources[1]] is not None:
                q = parity[e.sources[1]]             # V s V^-1 = s V V^-1 = s, whatever V is
                parity[vid], why[vid], origin[vid] = q, "V s V^-1 = s for a Scalar s, whatever V is", vid
                continue
            if e is None:
                if v.const is not None:
                    q = fixed_parity(grp, {b: Fraction(float(v.const[b])) for b in sup.blades_of(v.support)})
                    why[vid] = ("a constant the group fixes" if q is not None else
                                f"a constant {grp.name} moves ({', '.join(self.blades(v.support))})")
                elif v.role == "input" and vid not in sym.fixed:
                    q, why[vid] = 1, "an input: it transforms by the group's action"
                else:
                    q = support_parity(grp, v.support)
                    what = "an input excepted from the action" if v.role == "input" else f"a {v.role}"
                    why[vid] = (f"{what}, of blades the group fixes" if q is not None else
                                f"{what} that does not transform, of blades {grp.name} moves "
                                f"({', '.join(self.blades(v.support))})")
                parity[vid], origin[vid] = q, vid
                continue
            sources = [parity[s] for s in e.sources]
            if any(p is None for p in sources):
                bad = next(s for s in e.sources if parity[s] is None)
                parity[vid], origin[vid] = None, origin[bad]
                why[vid] = f"depends on {self.label(bad)}, which is not equivariant"
                continue
            q, text = operation(e.kind).equivariance(grp, e.attrs, sources)
            parity[vid], why[vid], origin[vid] = q, text, vid
        return parity, why, origin


# ---- witnesses --------------------------------------------------------------------------------------
def element(grp, rng: random.Random) -> tuple[dict, int]:
    """A group element as a rational versor V (V ~V = 1) and det(g): a rotation (a product of two
    or four rational unit vectors), a translator in E and SE, a reflection more half of the time in
    O and E."""
    alg = grp.alg
    euclidean = [i for i, b in enumerate(alg.basis) if b.square == 1]
    v = {0: Rational(1)}
    for _ in range(rng.choice([2, 4])):
        v = sparse.product(alg, "gp", v, cx.unit_vector(alg, rng, euclidean))
    if grp.kind in ("E", "SE"):
        v = sparse.product(alg, "gp", cx.translator(alg, rng), v)
    det = 1
    if grp.reflection is not None and rng.random() < 0.5:
        v, det = sparse.product(alg, "gp", v, cx.unit_vector(alg, rng, euclidean)), -1
    return v, det


def act(alg, v: dict, det: int, x: dict) -> dict:
    """The twisted adjoint V x^ ~V (x^ the grade involution for an odd V), V ~V = 1."""
    x = sparse.involute(alg, x) if det < 0 else x
    return sparse.product(alg, "gp", sparse.product(alg, "gp", v, x), sparse.reverse(alg, v))


def find_witness(graph: Hypergraph, value_id: str, tries: int = 24, seed: int = 0,
                 file: cx.FileSearches | None = None) -> dict | None:
    """A group element and inputs where value_id is neither g . f(x) nor det(g) g . f(x) at g . x,
    found in floating point and confirmed by exact evaluation; None if none was found."""
    rng = random.Random(seed)
    grp, fixed = graph.symmetry.group, set(graph.symmetry.fixed)
    alg = graph.algebra
    leaves = cx._leaves(graph, value_id)
    budget = cx.SearchBudget(graph, value_id, leaves, file)
    for inputs in cx.candidates(alg, leaves, rng, tries, budget):
        v, det = element(grp, rng)
        moved = {k: ({ch: act(alg, v, det, m) for ch, m in val.items()}
                     if graph.values[k].role == "input" and k not in fixed else val) for k, val in inputs.items()}
        budget.charge(exact=False)                     # (the candidate's first evaluation is charged as it is drawn)
        try:
            before = Floating(graph, inputs).coefficients(value_id)
            after = Floating(graph, moved).coefficients(value_id)
        except (Undefined, ZeroDivisionError, ValueError, OverflowError):
            continue
        if _differs(alg, v, det, before, after, lambda d, scale: abs(d) > 1e-7 * scale) is None:
            continue
        budget.charge(exact=True)
        budget.charge(exact=True)
        try:
            ev, ev2 = Concrete(graph, inputs), Concrete(graph, moved)
            before, after = ev.coefficients(value_id), ev2.coefficients(value_id)
        except (Undefined, ZeroDivisionError, ValueError):
            continue
        ch = _differs(alg, v, det, before, after, lambda d, scale: nonzero(d))
        if ch is None:
            continue
        turned = {b: c for b, c in act(alg, v, det, before[ch]).items() if nonzero(c)}
        exact = ev.exact and ev2.exact
        proof = exact
        if not exact:                                  # two more evaluations, in intervals
            try:
                budget.confirm()
                budget.confirm()
                proof = _enclosed(graph, inputs, moved, value_id, v, det, ch)
            except Budget:
                proof = False
        return {"element": cx._show(alg, {(): v}), "det": det,
                "inputs": {graph.values[k].name or k: cx._show(alg, val) for k, val in inputs.items()},
                "channel": list(ch), "f(g.x)": cx._show(alg, {(): after[ch]}),
                "g.f(x)": cx._show(alg, {(): turned}), "exact": exact,
                "confirmed": "in rational arithmetic" if exact else "in interval arithmetic" if proof else "at 50 digits"}
    return None


def _enclosed(graph: Hypergraph, inputs: dict, moved: dict, value_id: str, v: dict, det: int, ch) -> bool:
    """Whether interval arithmetic proves the witness (verifier.exact.Enclosure): f(g . x) minus
    g . f(x), and plus it after a reflection, each has a blade whose interval excludes 0."""
    alg = graph.algebra
    try:
        before = Enclosure(graph, inputs).coefficients(value_id)[ch]
        after = Enclosure(graph, moved).coefficients(value_id)[ch]
    except (Undefined, Budget, ZeroDivisionError, ValueError):
        return False
    turned = act(alg, {b: enclosed(c) for b, c in v.items()}, det, before)
    blades = set(turned) | set(after)
    plus = any(0 not in enclosed(after.get(b, 0)) - enclosed(turned.get(b, 0)) for b in blades)
    minus = any(0 not in enclosed(after.get(b, 0)) + enclosed(turned.get(b, 0)) for b in blades)
    return plus and (minus or det == 1)


def _differs(alg, v: dict, det: int, before: dict, after: dict, differ):
    """The first channel where `after` is neither g . before nor det(g) g . before (by `differ`)."""
    for ch in sorted(before):
        turned = act(alg, v, det, before[ch])
        scale = max([1.0] + [abs(float(c)) for c in (*turned.values(), *after[ch].values())])
        blades = set(turned) | set(after[ch])
        plus = any(differ(after[ch].get(b, 0) - turned.get(b, 0), scale) for b in blades)
        minus = any(differ(after[ch].get(b, 0) + turned.get(b, 0), scale) for b in blades)
        if plus and (minus or det == 1):
            return ch
    return None
