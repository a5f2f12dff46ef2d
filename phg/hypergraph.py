"""The Program Hypergraph: values are nodes, each operation is one hyperedge with ordered sources
and one target.  networkx holds the incidence (a bipartite digraph value -> edge -> value);
annotations live on the Value and Edge records."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from . import support as sup
from .algebra import Algebra
from .diagnostics import Span
from .numeric import DEFAULT
from .types import ValueType
from .units import Unit


@dataclass
class Value:
    id: str
    role: str                              # param input let output const temp
    support: int                           # bit b set: blade mask b may be non-zero
    shape: tuple[int, ...] = ()
    span: Span | None = None
    name: str | None = None
    unit: Unit | None = None               # known unit; None until the unit checker infers it
    versor: str | None = None              # why it is a versor: a theorem id of phg.versors, or None
    declared: ValueType | None = None      # the written type
    const: np.ndarray | None = None        # coefficients by blade mask, for constants
    init: dict | None = None               # parameter initialiser

    @property
    def parity(self) -> str:
        return sup.parity(self.support)


@dataclass
class Edge:
    id: str
    kind: str
    sources: tuple[str, ...]
    target: str
    attrs: dict = field(default_factory=dict)
    span: Span | None = None
    operand_spans: tuple[Span | None, ...] = ()    # where each source was written, at this use


@dataclass
class Symmetry:
    """`symmetry O(3) except a, b`: the group (phg.symmetry.Group) acting on every input but the
    fixed ones (value ids), which do not transform."""
    group: object
    fixed: tuple[str, ...]
    span: Span


@dataclass
class Claim:
    """Something the model asserts and the verifier must discharge."""
    kind: str                              # type, grade, unit, versor, scalar
    subject: str                           # value id
    span: Span
    origin: str                            # let, output, def-arg, def-return, ensure, loss, const
    type: ValueType | None = None
    grades: tuple[int, ...] | None = None
    unit: Unit | None = None


class Hypergraph:
    """One model's Program Hypergraph."""

    def __init__(self, name: str, algebra: Algebra, span: Span | None = None):
        self.name = name
        self.algebra = algebra
        self.span = span
        self.incidence = nx.DiGraph()
        self.values: dict[str, Value] = {}
        self.edges: dict[str, Edge] = {}
        self.claims: list[Claim] = []
        self.params: list[str] = []
        self.inputs: list[str] = []
        self.outputs: dict[str, str] = {}      # output name -> value id
        self.loss: str | None = None
        self.numeric = DEFAULT                 # the kernels' numeric format (phg.numeric)
        self.symmetry: Symmetry | None = None  # the group the model declares it respects (LANGUAGE §20)
        self._counter = 0
        # What later stages derive from the graph and keep with it (the kernel plan, phg.plan):
        # it references the graph, so a cache keyed by the graph elsewhere would keep it alive.
        self.derived: dict = {}

    def fresh_id(self, prefix: str = "%") -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def add_value(self, value: Value) -> Value:
        assert value.id not in self.values, value.id
        self.values[value.id] = value
        self.incidence.add_node(value.id, bipartite="value")
        return value

    def add_edge(self, kind: str, sources: tuple[str, ...], target: str, attrs: dict | None = None,
                 span: Span | None = None, operand_spans: tuple[Span | None, ...] = ()) -> Edge:
        edge = Edge(f"op{len(self.edges) + 1}", kind, tuple(sources), target, attrs or {}, span,
                    tuple(operand_spans))
        self.edges[edge.id] = edge
        self.incidence.add_node(edge.id, bipartite="edge")
        for s in dict.fromkeys(sources):
            self.incidence.add_edge(s, edge.id)
        self.incidence.add_edge(edge.id, target)
        return edge

    def rename(self, old: str, new: str):
        """Give a value a new id (a statement's name), keeping its incidences."""
        assert new not in self.values, new
        value = self.values.pop(old)
        value.id = new
        self.values[new] = value
        # Only the edges incident to the value change (a walk over every edge made a chain of n
        # lets cost n^2).
        incident = [*self.incidence.predecessors(old), *self.incidence.successors(old)]
        nx.relabel_nodes(self.incidence, {old: new}, copy=False)
        for e in (self.edges[i] for i in dict.fromkeys(incident)):
            e.sources = tuple(new if s == old else s for s in e.sources)
            if e.target == old:
                e.target = new
        for c in self.claims:                      # a def's argument or result claim made before the name
            if c.subject == old:
                c.subject = new

    def discard(self, value_id: str):
        """Drop a value nothing uses or produces (a literal consumed at compile time)."""
        if self.incidence.degree(value_id) == 0:
            del self.values[value_id]
            self.incidence.remove_node(value_id)

    def producer(self, value_id: str) -> Edge | None:
        preds = list(self.incidence.predecessors(value_id))
        return self.edges[preds[0]] if preds else None

    def manifold_params(self) -> list[str]:
        """The parameters declared Rotor or Motor: trained on their manifold, R <- R exp(B)."""
        return [p for p in self.params
                if self.values[p].declared is not None and self.values[p].declared.versor in ("Rotor", "Motor")]

    def cone(self, value_id: str) -> list[str]:
        """value_id and every value it depends on, in the order they were made (not a set's order,
        which varies between runs: counterexamples and certificates must not)."""
        above = nx.ancestors(self.incidence, value_id)
        return [value_id] + [n for n in self.values if n in above and n != value_id]

    def topological_edges(self) -> list[Edge]:
        return [self.edges[n] for n in nx.topological_sort(self.incidence) if n in self.edges]

    # ---- serialisation
    def value_dict(self, v: Value) -> dict:
        alg = self.algebra
        blades = [b for b in alg.blades if v.support >> b & 1]
        d = {"id": v.id, "name": v.name, "role": v.role,
             "blades": [alg.blade_name(b) for b in blades],
             "grades": sup.grades_of(v.support), "parity": v.parity, "shape": list(v.shape),
             "unit": None if v.unit is None else str(v.unit), "versor": v.versor is not None}
        if v.versor:
            d["versor_reason"] = v.versor
        if v.declared is not None:
            d["declared"] = v.declared.describe()
        if v.const is not None:
            d["value"] = {alg.blade_name(b): float(v.const[b]) for b in blades}
        if v.init is not None:
            d["init"] = v.init
        if v.span is not None:
            d["span"] = v.span.to_dict()
        return d

    def to_dict(self) -> dict:
        alg = self.algebra
        return {
            "name": self.name,
            "algebra": {"name": alg.name, "signature": list(alg.signature),
                        "basis": [{"name": b.name, "square": b.square, "unit": str(b.unit)} for b in alg.basis]},
            "values": [self.value_dict(v) for v in self.values.values()],
            "edges": [{"id": e.id, "kind": e.kind, "sources": list(e.sources), "target": e.target,
                       "attrs": _jsonable(e.attrs), **({"span": e.span.to_dict()} if e.span else {})}
                      for e in self.edges.values()],
            "claims": [{"kind": c.kind, "subject": c.subject, "origin": c.origin, "span": c.span.to_dict(),
                        **({"type": c.type.describe()} if c.type else {}),
                        **({"grades": list(c.grades)} if c.grades is not None else {}),
                        **({"unit": str(c.unit)} if c.unit is not None else {})}
                       for c in self.claims],
            "params": self.params, "inputs": self.inputs, "outputs": self.outputs, "loss": self.loss,
            **({"numeric": self.numeric} if self.numeric != DEFAULT else {}),
            **({"symmetry": {"group": self.symmetry.group.name, "fixed": list(self.symmetry.fixed),
                             "span": self.symmetry.span.to_dict()}} if self.symmetry is not None else {}),
        }

    def to_dot(self) -> str:
        alg = self.algebra
        numeric = f" ({self.numeric})" if self.numeric != DEFAULT else ""
        lines = [f"  subgraph cluster_{_dot_id(self.name)} {{", f'    label="{self.name} on {alg.name}{numeric}";']
        for v in self.values.values():
            blades = ",".join(alg.blade_name(b) for b in alg.blades if v.support >> b & 1) or "0"
            shape = f"[{','.join(map(str, v.shape))}]" if v.shape else ""
            label = f"{v.name or v.id}{shape}\\n{{{blades}}}"
            style = {"param": "box", "input": "invhouse", "const": "note", "output": "doubleoctagon"}.get(v.role, "ellipse")
            lines.append(f'    "{self.name}.{v.id}" [label="{label}", shape={style}];')
        for e in self.edges.values():
            attrs = ",".join(f"{k}={v}" for k, v in _jsonable(e.attrs).items())
            label = e.kind + (f"\\n{attrs}" if attrs else "")
            lines.append(f'    "{self.name}.{e.id}" [label="{label}", shape=box, style=rounded];')
            for i, s in enumerate(e.sources):
                lines.append(f'    "{self.name}.{s}" -> "{self.name}.{e.id}" [label="{i}", arrowhead=none];')
            lines.append(f'    "{self.name}.{e.id}" -> "{self.name}.{e.target}";')
        lines.append("  }")
        return "\n".join(lines)


def _dot_id(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _jsonable(attrs: dict) -> dict:
    return json.loads(json.dumps(attrs, default=lambda o: list(o) if isinstance(o, (set, tuple)) else str(o)))
