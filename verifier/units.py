"""Units (LANGUAGE §2, §4): checked and inferred with Z3 over linear rational arithmetic.

Every value's unit is a vector of rational exponents over the base units.  A parameter, input or
constant with a known unit is a fact; one without is an unknown.  Each hyperedge defines its
target's unit from its sources' by the operation's linear rule (phg.operations.unit_rule_of);
sums, dimensionless arguments and written units are requirements.  Facts and requirements are
tracked with the source spans they come from, so that an unsatisfiable system's minimised core
maps back to every place involved.  This is one family of queries, apart from the bit-vector
support queries.

Obligations (kind `unit`): the model's units are consistent (z3 answers sat: some choice of the
unknown units meets every requirement), or one refuted obligation per conflict (the recorded
query is its core, and z3 answers unsat); and each `ensure unit(E) == U` (proven when the system
with unit(E) != U is unsat).  Values whose unit the system determines get it written back;
the others are reported as free, asking for an annotation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import z3

from phg.diagnostics import Span
from phg.hypergraph import Hypergraph
from phg.operations import unit_rule_of
from phg.units import BASE_UNITS, DIMENSIONLESS, Unit

from .obligations import Ledger, Obligation
from . import smt
from .smt import _smt_name

# After this many conflicts the rest are not looked for (each costs a solve).
MAX_CONFLICTS = 10
# Requirements named first when a conflict is explained: the operation that cannot be done.
PRIMARY_ORDER = {"equal": 0, "dimensionless": 1, "written": 2, "fact": 3}
EXPECTED = {"equal": "the same unit on both sides", "dimensionless": "a dimensionless value",
            "written": "a value in {unit}", "fact": "a value in {unit}"}


@dataclass
class Requirement:
    key: str
    kind: str                         # equal, dimensionless, written, fact
    subject: str                      # the value id it is about
    span: Span                        # where it is stated
    text: str                         # what it requires, in words
    # sum(power * unit(value)) == unit, in exponents
    terms: tuple[tuple[str, Fraction], ...]
    unit: Unit = DIMENSIONLESS
    # the values whose units a message about it names: (value id or None, where, role)
    sides: list[tuple[str | None, Span | None, str]] = field(default_factory=list)
    equations: list = field(default_factory=list)     # the z3 form, built once


class UnitChecker(Ledger):
    def __init__(self, graph: Hypergraph, source: str | None = None):
        super().__init__(graph, source)
        # The checker's own context: its verdicts and queries do not depend on what ran before.
        self.ctx = z3.Context()
        self.u: dict[str, list[z3.ArithRef]] = {}
        self.definitions: list = []
        self.requirements: list[Requirement] = []
        self.free: list[str] = []
        self.dims = self.dimensions()

    # ---- the system -----------------------------------------------------------------------------
    def dimensions(self) -> list[str]:
        """The base units the model mentions.  Only these need unknowns: every rule is the same
        linear map in each base unit, so in the others the system is homogeneous -- 0 solves it,
        and a value is determined there exactly when it is determined in a mentioned one (the
        first base unit stands in when the model mentions none)."""
        g, seen = self.g, set()
        units = [v.unit for v in g.values.values()] + [b.unit for b in self.alg.basis]
        units += [c.unit for c in g.claims] + [c.type.unit for c in g.claims if c.type is not None]
        for u in units:
            if u is not None:
                seen.update(u.as_dict())
        return [b for b in BASE_UNITS if b in seen] or [BASE_UNITS[0]]

    def var(self, value_id: str) -> list[z3.ArithRef]:
        if value_id not in self.u:
            self.u[value_id] = [z3.Real(f"u_{_smt_name(value_id)}_{b}", self.ctx) for b in self.dims]
        return self.u[value_id]

    def linear(self, terms, unit: Unit) -> list:
        """sum(power * unit(value)) == unit, one equation per base unit."""
        exponents = unit.as_dict()
        eqs = []
        for k, base in enumerate(self.dims):
            parts = [self.var(v)[k] if p == 1 else -self.var(v)[k] if p == -1 else z3.RealVal(p, self.ctx) * self.var(v)[k]
                     for v, p in terms if p]
            lhs = parts[0] if len(parts) == 1 else z3.Sum(parts) if parts else z3.RealVal(0, self.ctx)
            eqs.append(lhs == z3.RealVal(exponents.get(base, 0), self.ctx))
        return eqs

    def require(self, kind: str, subject: str, span: Span, text: str, terms, unit: Unit = DIMENSIONLESS,
                sides=()) -> Requirement:
        r = Requirement(f"r{len(self.requirements)}", kind, subject, span, text, tuple(terms), unit, list(sides))
        r.equations = self.linear(r.terms, r.unit)
        self.requirements.append(r)
        return r

    def build(self):
        g = self.g
        for v in g.values.values():
            self.var(v.id)
            if g.producer(v.id) is None and v.unit is not None:
                what = f"{v.name} is declared in {v.unit}" if v.role in ("param", "input") else \
                    f"this constant is in {v.unit}"
                self.require("fact", v.id, v.span, what, [(v.id, Fraction(1))], v.unit)
        for e in g.topological_edges():
            rule = unit_rule_of(self.alg, e.kind, e.attrs)
            terms = [(e.target, Fraction(1))] + [(s, -p) for s, p in zip(e.sources, rule.powers)]
            self.definitions += self.linear(_merge(terms), rule.offset)
            spans = list(e.operand_spans) + [None] * (len(e.sources) - len(e.operand_spans))
            if rule.equal:
                i, j = rule.equal
                op = {"add": "+", "sub": "-"}.get(e.kind, e.kind)
                self.require("equal", e.target, e.span, f"both sides of {op} need the same unit",
                             _merge([(e.sources[i], Fraction(1)), (e.sources[j], Fraction(-1))]),
                             sides=[(e.sources[i], spans[i], "left side"), (e.sources[j], spans[j], "right side")])
            for i in rule.dimensionless:
                what = "the gate in gate(x, s)" if e.kind in ("gate", "gradegate") else f"the argument of {e.kind}"
                self.require("dimensionless", e.sources[i], spans[i] or e.span,
                             f"{what} must be dimensionless", [(e.sources[i], Fraction(1))],
                             sides=[(e.sources[i], spans[i], what), (None, None, "dimensionless")])
        for v in g.values.values():
            t = v.declared
            if t is not None and t.versor in ("Rotor", "Motor") and v.role in ("param", "input"):
                self.normalised(v.id, t.versor, v.span, None, None)   # its declaration is the fact shown
        for c in g.claims:
            if c.kind == "type" and c.type.versor in ("Rotor", "Motor"):
                self.normalised(c.subject, c.type.versor, c.span, g.values[c.subject].span, c.span)
            if c.kind == "type" and c.type.unit is not None:
                v = g.values[c.subject]
                name = self.label(c.subject)
                what = {"def-arg": f"{name} is passed where the def declares {c.type.unit}",
                        "def-return": f"the def's result {name} is declared in {c.type.unit}"}.get(
                    c.origin, f"{name} is declared in {c.type.unit}")
                self.require("written", c.subject, c.span, what,
                             [(c.subject, Fraction(1))], c.type.unit,
                             sides=[(c.subject, v.span if c.origin in ("let", "output") else None, "the value"),
                                    (None, c.span, "declared")])

    def normalised(self, value_id: str, kind: str, span: Span, value_span: Span | None, type_span: Span | None):
        self.require("written", value_id, span, f"a {kind} (V ~V = 1) is dimensionless", [(value_id, Fraction(1))],
                     sides=[(value_id, value_span, "the value"), (None, type_span, f"declared a {kind}")])

    def solver(self, requirements, extra=()) -> z3.Solver:
        s = smt.solver(self.ctx)
        s.add(*self.definitions)
        for r in requirements:
            s.add(*r.equations)
        s.add(*extra)
        return s

    def unit_in(self, model: z3.ModelRef, value_id: str) -> Unit:
        return Unit.of({b: model.eval(x, model_completion=True).as_fraction()
                        for b, x in zip(self.dims, self.var(value_id))})

    def determined(self, requirements, value_id: str, model: z3.ModelRef) -> Unit | None:
        """value_id's unit when the requirements leave it no choice, else None."""
        unit = self.unit_in(model, value_id)
        s = self.solver(requirements, [z3.Not(z3.And(self.linear([(value_id, Fraction(1))], unit)))])
        return unit if s.check() == z3.unsat else None

    # ---- the run --------------------------------------------------------------------------------
    def run(self) -> list[Obligation]:
        self.build()
        active = list(self.requirements)
        conflicts = 0
        while True:
            s = smt.solver(self.ctx)
            s.set("core.minimize", True)
            s.add(*self.definitions)
            keyed = {r.key: r for r in active}
            for r in active:
                s.assert_and_track(z3.And(r.equations), r.key)
            result = s.check()
            if result == z3.sat:
                break
            if result == z3.unknown or conflicts == MAX_CONFLICTS:
                self.add("unit", self.g.name, self.g.span, f"the units of {self.g.name} are consistent", "unknown",
                         {"reason": f"z3: {s.reason_unknown()}" if result == z3.unknown else
                          f"more than {MAX_CONFLICTS} unit conflicts; fix these first"})
                return self.obligations
            core = [keyed[str(c)] for c in s.unsat_core()]
            primary = self.conflict(core)
            active.remove(primary)
            conflicts += 1
        model = s.model()
        if not conflicts:
            plain = self.solver(active)
            self.add("unit", self.g.name, self.g.span, f"the units of {self.g.name} are consistent", "proven",
                     {"z3": "sat", "requirements": len(active)}, plain.to_smt2())
        self.infer(active, model)
        for c in self.g.claims:
            if c.kind == "unit":
                self.ensure(c, active, consistent=not conflicts)
        return self.obligations

    def conflict(self, core: list[Requirement]) -> Requirement:
        """A refuted obligation for one minimal conflict; returns the requirement it blames."""
        primary = min(core, key=lambda r: (PRIMARY_ORDER[r.kind], r.span.line, r.span.col))
        rest = [r for r in core if r is not primary]
        s = self.solver(rest)
        units = []
        if s.check() == z3.sat:
            m = s.model()
            for vid, _, _ in primary.sides:
                if vid is None:
                    units.append(str(primary.unit))
                else:
                    u = self.determined(rest, vid, m)
                    units.append(str(u) if u is not None else "an undetermined unit")
        else:                                  # the core was not minimal after all
            units = ["?"] * len(primary.sides)
        shown = [f"'{u}'" for u in units]
        message = f"the unit {shown[0]} does not match {shown[1]}: {primary.text}" if len(units) == 2 \
            else primary.text
        notes = []
        for (vid, sp, role), u in zip(primary.sides, units):
            if sp is not None:
                notes.append(_note(sp, f"{role}: {self.text(sp) or role} is in {u}" if vid else f"{role} here, as {u}"))
        shown_at = {(n["line"], n["col"]) for n in notes}
        for r in sorted(rest, key=lambda r: (r.span.line, r.span.col)):
            if (r.span.line, r.span.col) not in shown_at:
                notes.append(_note(r.span, r.text))
        record = self.solver(core)
        self.add("unit", primary.subject, primary.span, message, "refuted",
                 {"z3": "unsat", "units": units, "requirement": primary.text, "spans": notes,
                  "expected": EXPECTED[primary.kind].format(unit=primary.unit),
                  "core": [r.text for r in core]}, record.to_smt2())
        return primary

    def infer(self, requirements, model: z3.ModelRef):
        """Write back every unit the requirements determine; list the named values left free."""
        named = [v.id for v in self.g.values.values() if v.name is not None or v.role in ("param", "input")]
        subjects = [c.subject for c in self.g.claims if c.kind == "unit"]
        undecided = list(dict.fromkeys(named + subjects))
        free: set[str] = set()
        while undecided:
            s = self.solver(requirements, [z3.Or([z3.Not(z3.And(self.linear([(v, Fraction(1))],
                                                                               self.unit_in(model, v))))
                                                  for v in undecided])])
            if s.check() != z3.sat:
                break
            other = s.model()
            moved = [v for v in undecided if self.unit_in(other, v) != self.unit_in(model, v)]
            free.update(moved)
            undecided = [v for v in undecided if v not in free]
        for vid in named + subjects:
            self.g.values[vid].unit = None if vid in free else self.unit_in(model, vid)
        self.free = [v for v in named if v in free]

    def ensure(self, claim, requirements, consistent: bool):
        label = self.label(claim.subject)
        text = f"unit({label}) == {claim.unit}"
        is_unit = self.linear([(claim.subject, Fraction(1))], claim.unit)
        if not consistent:
            self.add("unit", claim.subject, claim.span, text, "unknown",
                     {"reason": "the model's units conflict (see the refuted unit obligations)"})
            return
        differs = self.solver(requirements, [z3.Not(z3.And(is_unit))])
        result = differs.check()
        if result == z3.unsat:
            self.add("unit", claim.subject, claim.span, text, "proven", {"z3": "unsat", "unit": str(claim.unit)},
                     differs.to_smt2())
            return
        same = self.solver(requirements, is_unit)
        if result == z3.sat and same.check() == z3.unsat:
            actual = self.determined(requirements, claim.subject, differs.model())
            found = str(actual) if actual is not None else "an undetermined unit"
            self.add("unit", claim.subject, claim.span, f"the unit '{found}' does not match '{claim.unit}': {text}",
                     "refuted", {"z3": "unsat", "units": [found, str(claim.unit)],
                                 "expected": f"a value in {claim.unit}",
                                 "spans": [_note(self.g.values[claim.subject].span, f"{label} is in {found}")]},
                     same.to_smt2())
            return
        free = [self.label(v) for v in self.g.cone(claim.subject)
                if v in self.free and self.g.values[v].role in ("param", "input")]
        self.add("unit", claim.subject, claim.span, text, "unknown",
                 {"reason": "the unit of " + label + " is not determined by the model"
                  + (f"; annotate {', '.join(free)}" if free else "")})


def _merge(terms) -> list[tuple[str, Fraction]]:
    """Combine the powers of repeated values (x * x is x^2)."""
    out: dict[str, Fraction] = {}
    for v, p in terms:
        out[v] = out.get(v, Fraction(0)) + p
    return list(out.items())


def _note(span: Span, message: str) -> dict:
    return {**span.to_dict(), "note": message}

