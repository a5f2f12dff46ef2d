"""Supports after narrowing: the abstract rules again, in dependency order, now allowed to use
three kinds of reason -- the sandwich theorem and the scalar norm V ~V of proven versors, and
exact identities found by symbolic expansion.  Narrowed supports are written back to the hypergraph (kernels are laid out
from them); the abstract ones are kept beside them for the certificate."""
from __future__ import annotations

from dataclasses import dataclass

from phg import support as sup
from phg.hypergraph import Hypergraph
from phg.operations import Operand, infer_support, versor_reason
from phg.versors import REVERSE_PRODUCT_THEOREM


@dataclass
class Narrowing:
    value_id: str
    edge_id: str | None
    before: int
    after: int
    reason: str                  # "sandwich", "versor-norm" or "identity"
    detail: str
    versor: str | None = None    # the versor whose theorem narrowed it


def propagate(graph: Hypergraph, identities: dict[str, tuple[int, str]],
              abstract: dict[str, int]) -> list[Narrowing]:
    """Recompute every derived value's support and versor mark; `identities` maps value ids to a
    mask their exact value is known to lie in (and why).  `abstract` receives each value's support
    before any narrowing, the first time it is seen."""
    alg = graph.algebra
    found = []
    for e in graph.topological_edges():
        srcs = [graph.values[s] for s in e.sources]
        target = graph.values[e.target]
        abstract.setdefault(target.id, target.support)
        ops = [Operand(v.support, v.versor, v.unit) for v in srcs]
        s = infer_support(alg, e.kind, ops, e.attrs)
        if e.kind == "sandwich" and srcs[0].versor:
            kept = s & sup.of_grades(alg, sup.grades_of(srcs[1].support))
            if kept != s:
                found.append(Narrowing(target.id, e.id, s, kept, "sandwich",
                                       f"{srcs[0].name or srcs[0].id} is a versor", srcs[0].id))
            s = kept
        reversed_pair = _reversed_pair(graph, e)
        if reversed_pair is not None and graph.values[reversed_pair].versor and s & ~sup.SCALAR:
            found.append(Narrowing(target.id, e.id, s, s & sup.SCALAR, "versor-norm", REVERSE_PRODUCT_THEOREM,
                                   reversed_pair))
            s &= sup.SCALAR
            # As an identity, so that the support queries restrict this definition too.
            identities[target.id] = (sup.SCALAR, REVERSE_PRODUCT_THEOREM)
        if target.id in identities:
            m, why = identities[target.id]
            if s & ~m:
                found.append(Narrowing(target.id, e.id, s, s & m, "identity", why))
            s &= m
        target.support = s
        target.versor = versor_reason(alg, e.kind, [v.versor for v in srcs], [v.support for v in srcs], s)
    return found


def _reversed_pair(graph: Hypergraph, e) -> str | None:
    """V when e is the product V ~V or ~V V, else None."""
    if e.kind != "gp":
        return None
    a, b = e.sources
    for x, y in ((a, b), (b, a)):
        producer = graph.producer(y)
        if producer is not None and producer.kind == "reverse" and producer.sources[0] == x:
            return x
    return None
