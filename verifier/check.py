"""Obligations of a program and their discharge.

Every written type (let, output, def arguments and results), every `ensure`, the loss being a
Scalar, every narrowing and every trained Rotor/Motor parameter's update becomes an obligation.
Grade obligations are bit-vector queries (verifier.smt); when one fails, the offending blades are
expanded exactly (verifier.exact): identically zero ones are removed, with the identity recorded,
and for the rest a counterexample is searched for and confirmed by exact evaluation.
"""
from __future__ import annotations

import functools

from phg import deep
from phg import multivector as mv
from phg import support as sup
from phg.diagnostics import Span
from phg.hypergraph import Hypergraph, Value
from phg.program import Program
from phg.versors import REVERSE_PRODUCT_THEOREM, SANDWICH_THEOREM, THEOREMS

from . import counterexample
from .exact import Budget, Symbolic, Undefined
from .narrowing import Narrowing, propagate
from .obligations import Ledger, Obligation
from .smt import Answer, support_query
from .memory import MemoryChecker
from .symmetry import SymmetryChecker
from .units import UnitChecker

# Beyond this many values in a cone, exact expansion is not attempted (the claim stays unknown
# unless a counterexample turns up).
EXACT_CONE_LIMIT = 400


class ModelChecker(Ledger):
    def __init__(self, graph: Hypergraph, source: str | None = None,
                 searches: counterexample.FileSearches | None = None):
        super().__init__(graph, source)
        self.searches = searches or counterexample.FileSearches()     # shared by a file's models
        self.identities: dict[str, tuple[int, str]] = {}
        self.abstract: dict[str, int] = {}
        self._symbolic: Symbolic | None = None
        self.lemmas: set[str] = set()            # values proven within their current supports

    # ---- the run --------------------------------------------------------------------------------
    def run(self) -> list[Obligation]:
        for nr in propagate(self.g, self.identities, self.abstract):
            if nr.versor is not None:
                self.narrowed(nr)
        for claim in self.g.claims:
            if claim.kind == "type":
                t = claim.type
                self.grade(claim.subject, t.support, claim.span, f"{self.label(claim.subject)} : {t.describe()}")
                if t.versor:
                    self.versor(claim.subject, claim.span, t.versor)
            elif claim.kind == "grade":
                mask = sup.of_grades(self.alg, claim.grades)
                self.grade(claim.subject, mask, claim.span,
                           f"grade({self.label(claim.subject)}) in {{{', '.join(map(str, claim.grades))}}}")
            elif claim.kind == "scalar":
                self.grade(claim.subject, sup.SCALAR, claim.span, "the loss is a Scalar")
            elif claim.kind == "versor":
                self.versor(claim.subject, claim.span, "Versor")
            # unit claims are discharged by the unit checker
        for pid in self.g.manifold_params():
            self.update(self.g.values[pid])
        return self.obligations

    def query(self, subject: str, claim_mask: int) -> Answer:
        ans = support_query(self.g, subject, claim_mask, self.identities, self.lemmas)
        if ans.status == "proven":
            self.lemmas |= ans.covered
        return ans

    # ---- grades ---------------------------------------------------------------------------------
    def narrowed(self, nr: Narrowing):
        """The obligation of a narrowing made by a versor theorem (sandwich, V ~V)."""
        edge = self.g.edges[nr.edge_id]
        ans = self.query(nr.value_id, nr.after)
        before, after = ", ".join(self.blades(nr.before)), ", ".join(self.blades(nr.after))
        versor_id = nr.versor
        if nr.reason == "sandwich":
            x = self.label(edge.sources[1])
            claim = f"{self.label(versor_id)} >> {x} keeps the grades of {x} ({before} -> {after})"
            theorem = SANDWICH_THEOREM
        else:
            claim = f"{self.label(nr.value_id)} is a scalar, V ~V of the versor {self.label(versor_id)} ({before} -> {after})"
            theorem = REVERSE_PRODUCT_THEOREM
        self.add("grade", nr.value_id, edge.span, claim, ans.status,
                 {"narrowing": nr.reason, "theorem": theorem, "versor": self.derivation(versor_id),
                  "solver": ans.reason, "axioms": ans.axioms}, ans.smt2, mask=nr.after)

    def grade(self, subject: str, claim_mask: int, span: Span, claim: str):
        ans = self.query(subject, claim_mask)
        evidence = {"claimed": self.blades(claim_mask),
                    "abstract": self.blades(self.abstract.get(subject, self.g.values[subject].support))}
        if ans.status == "refuted":
            ans = self.refine(subject, claim_mask, evidence) or ans
            if ans.status == "refuted" and "counterexample" not in evidence:
                why = f"no counterexample confirmed: {evidence['budget']}" if "budget" in evidence else "no counterexample found"
                ans = Answer("unknown", ans.smt2, why, ans.axioms)
        evidence.update(support=self.blades(self.g.values[subject].support), solver=ans.reason, axioms=ans.axioms)
        self.add("grade", subject, span, claim, ans.status, evidence, ans.smt2, mask=claim_mask)

    def refine(self, subject: str, claim_mask: int, evidence: dict) -> Answer | None:
        """Expand the blades outside the claim exactly; drop the ones that vanish identically."""
        value = self.g.values[subject]
        offending = value.support & ~claim_mask
        zero = 0
        if len(self.g.cone(subject)) <= EXACT_CONE_LIMIT:
            try:
                # One expansion serves every claim; supports narrowed since only meant wider fresh
                # variables, which stays sound.
                self._symbolic = self._symbolic or Symbolic(self.g)
                coefs = self._symbolic.coefficients(subject)
                zero = sup.from_blades(b for b in sup.blades_of(offending)
                                       if all(not m.get(b) for m in coefs.values()))
            except Undefined:
                zero = 0
        answer = None
        if zero:
            names = ", ".join(self.blades(zero))
            why = f"the coefficients of {names} expand to the zero polynomial in the inputs"
            self.identities[subject] = (value.support & ~zero, why)
            propagate(self.g, self.identities, self.abstract)
            self.lemmas.clear()                 # supports changed: earlier lemmas are about the old ones
            evidence["identity"] = {"vanishing": self.blades(zero), "statement": why}
            answer = self.query(subject, claim_mask)
        remaining = self.g.values[subject].support & ~claim_mask
        if remaining:
            try:
                cex = counterexample.find(self.g, subject, remaining, file=self.searches)
            except Budget as exc:
                cex, evidence["budget"] = None, str(exc)
            if cex is not None:
                evidence["counterexample"] = cex
        return answer

    # ---- versors --------------------------------------------------------------------------------
    def derivation(self, value_id: str) -> dict:
        v = self.g.values[value_id]
        if not v.versor:
            return {"value": self.label(value_id), "versor": False}
        e = self.g.producer(value_id)
        step = {"value": self.label(value_id), "theorem": v.versor, "statement": THEOREMS[v.versor]}
        if e is not None:
            premises = [self.derivation(s) for s in e.sources if self.g.values[s].versor]
            if premises:
                step["from"] = premises
        return step

    def normalised(self, value_id: str) -> str | None:
        """Why V ~V = 1, for a proven versor V (None if that does not follow)."""
        v = self.g.values[value_id]
        e = self.g.producer(value_id)
        if not v.versor:
            return None
        if e is None:
            # Only a parameter's or input's type is an assumption; any other written type is a claim.
            if v.role in ("param", "input") and v.declared is not None and v.declared.versor in ("Rotor", "Motor"):
                return f"declared {v.declared.versor}"
            if v.const is not None and _unit_norm(self.alg, v.const):
                return "the constant's V ~V is exactly 1"
            return None
        src = [self.normalised(s) for s in e.sources]
        if v.versor in ("whole-grades", "plus-zero"):
            kept = [n for s, n in zip(e.sources, src) if self.g.values[s].support]
            return kept[0] if kept and kept[0] else None
        if e.kind in ("neg", "reverse", "involute", "inv", "copy", "index") and src[0]:
            return "an involution or inverse of a normalised versor"
        if e.kind in ("gp", "div", "sandwich") and all(src):
            return "(V W) ~(V W) = V (W ~W) ~V = 1"
        if e.kind == "exp" and v.versor == "exp-bivector":
            return "exp(B) ~exp(B) = exp(B) exp(-B) = 1"
        if e.kind == "normalize" and self.alg.signature[1] == 0:
            return "no basis vector squares to -1, so V ~V > 0 and normalize makes it 1"
        return None

    def versor(self, subject: str, span: Span, kind: str):
        claim = f"{self.label(subject)} is a {'normalised ' if kind != 'Versor' else ''}versor ({kind})"
        v = self.g.values[subject]
        needs_norm = kind in ("Rotor", "Motor")
        why_norm = self.normalised(subject) if needs_norm else None
        if v.versor and (why_norm or not needs_norm):
            evidence = {"derivation": self.derivation(subject)}
            if needs_norm:
                evidence["normalised"] = why_norm
            self.add("versor", subject, span, claim, "proven", evidence, versor=kind)
            return
        try:
            cex, budget = counterexample.find_non_versor(self.g, subject, needs_norm, file=self.searches), None
        except Budget as exc:
            cex, budget = None, str(exc)
        status = "refuted" if cex else "unknown"
        evidence = {"derivation": self.derivation(subject)}
        if cex:
            evidence["counterexample"] = cex
        else:
            evidence["reason"] = "no versor derivation, and no counterexample was " + \
                (f"confirmed: {budget}" if budget else "found")
        self.add("versor", subject, span, claim, status, evidence, versor=kind)

    # ---- manifold updates -----------------------------------------------------------------------
    def update(self, p: Value):
        """R <- R exp(B), B a bivector: R exp(B) lies in the declared support, is a versor, and is
        normalised."""
        ans, after = _update_query(self.alg, p.support, p.declared)
        self.add("update", p.id, p.span,
                 f"the update {p.name} <- {p.name} exp(B), B a bivector, keeps {p.name} a normalised "
                 f"{p.declared.text}", ans.status,
                 {"support": self.blades(after), "solver": ans.reason,
                  "theorems": [THEOREMS["exp-bivector"], THEOREMS["product"],
                               "exp(B) ~exp(B) = 1 and R ~R = 1 give (R exp(B)) ~(R exp(B)) = 1; "
                               "the trainer renormalises against rounding"]},
                 ans.smt2)


@functools.lru_cache(maxsize=64)
def _update_query(alg, support: int, declared) -> tuple[Answer, int]:
    """The support part of an update obligation, on a two-edge graph of its own: the same for every
    parameter of one type in one algebra, so asked once."""
    g = Hypergraph("update", alg)
    g.add_value(Value("R", "param", support, versor="declared", declared=declared))
    g.add_value(Value("B", "input", sup.of_grades(alg, [2])))
    g.add_value(Value("E", "temp", sup.closure(alg, sup.of_grades(alg, [2])), versor="exp-bivector"))
    g.add_edge("exp", ("B",), "E")
    g.add_value(Value("next", "temp", sup.product(alg, "gp", support, g.values["E"].support), versor="product"))
    g.add_edge("gp", ("R", "E"), "next")
    return support_query(g, "next", declared.support), g.values["next"].support


def _unit_norm(alg, value) -> bool:
    """V ~V == 1 exactly, for a constant's coefficients (dense, by blade mask)."""
    vv = mv.product(alg, "gp", value, mv.reverse(alg, value))
    return vv[0] == 1 and not vv[1:].any()


def check_program(program: Program) -> list[Obligation]:
    return deep.call(_check_program, program)


def _check_program(program: Program) -> list[Obligation]:
    out = []
    searches = counterexample.FileSearches()
    for graph in program.models.values():
        out.extend(ModelChecker(graph, program.source, searches).run())
        out.extend(UnitChecker(graph, program.source).run())
        out.extend(SymmetryChecker(graph, program.source, searches).run())
        if graph.name in program.trains and graph.loss is not None:
            out.extend(MemoryChecker(graph, program.trains[graph.name], program.source).run())
    for network in program.networks.values():          # its statements, as the models phg.dsl.network derives
        for graph in network.graphs():
            out.extend(ModelChecker(graph, program.source, searches).run())
            out.extend(UnitChecker(graph, program.source).run())
    return out
