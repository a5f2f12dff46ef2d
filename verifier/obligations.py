"""Obligations and the ledger a checker writes them to."""
from __future__ import annotations

from dataclasses import dataclass, field

from phg.diagnostics import Span, source_lines
from phg.hypergraph import Hypergraph


@dataclass
class Obligation:
    id: str
    kind: str                      # grade, versor, update (unit, memory, quire: later stages)
    model: str
    subject: str
    span: Span
    claim: str
    status: str                    # proven, refuted, unknown
    evidence: dict = field(default_factory=dict)
    smt2: str | None = None
    # What the claim is about, for tests and tools (not part of the certificate):
    value_id: str | None = None
    mask: int | None = None                  # grade obligations: the claimed support
    versor: str | None = None                # versor obligations: Versor, Rotor or Motor

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "model": self.model, "subject": self.subject,
                "span": self.span.to_dict(), "claim": self.claim, "status": self.status,
                "evidence": self.evidence, "smt2": self.smt2}


class Ledger:
    """The obligations of one model, with ids and the source text of the values they are about."""

    def __init__(self, graph: Hypergraph, source: str | None = None):
        self.g = graph
        self.source_lines = source_lines(source) if source else []
        self.alg = graph.algebra
        self.obligations: list[Obligation] = []

    def blades(self, mask: int) -> list[str]:
        return [self.alg.blade_name(b) for b in self.alg.blades if mask >> b & 1]

    def text(self, sp: Span | None) -> str | None:
        """The source text a one-line span covers."""
        if sp and sp.end_line == sp.line and 1 <= sp.line <= len(self.source_lines):
            return self.source_lines[sp.line - 1][sp.col - 1:sp.end_col - 1]
        return None

    def label(self, value_id: str) -> str:
        """A value's name, or the source text it was written as."""
        v = self.g.values[value_id]
        return v.name or self.text(v.span) or value_id

    def add(self, kind: str, subject: str, span: Span, claim: str, status: str, evidence: dict,
            smt2: str | None = None, **about) -> Obligation:
        value = self.g.values.get(subject)          # None for a claim about the whole model
        oid = f"{self.g.name}/{kind}/{value.name or subject if value else subject}@{span.line}:{span.col}"
        taken = {o.id for o in self.obligations}
        n = 2
        base = oid
        while oid in taken:
            oid, n = f"{base}#{n}", n + 1
        ob = Obligation(oid, kind, self.g.name, self.label(subject) if value else subject, span, claim, status,
                        evidence, smt2, value_id=subject if value else None, **about)
        self.obligations.append(ob)
        return ob
