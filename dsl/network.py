"""A spiking network's statements as models (LANGUAGE §16).

Every piece of a network that computes is derived here as a model of the language: a neuron
group's derivatives (`dX/dt = ...`), its spike condition and its reset, and each `on pre` and
`on post` block of a synapse group, plus one model that holds the initial values as parameters.
Lowering, units, grades and the verifier's obligations are then the models' own (phg.dsl.lower,
phg.verifier): `ge += w` adds a `let` of ge's declared type, so the unit and grade of every
assignment are claims like any `let`'s.

Assignments run in order, each seeing the ones before it: the k-th assignment to x is a value
named `x'k` (a name no source can spell), the last one the output `x'`.  Names in an `on`
block are the synapse group's own (parameters and traces), then the target group's states; a
name that is both is refused where the synapse group declares it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from phg.diagnostics import Note, PhgError, Span

from . import ast

SIDES = ("pre", "post")


@dataclass
class Block:
    """One derived model: what it reads (inputs, in order: (variable, owner)) and what it writes
    (outputs: (variable, owner, output name))."""
    role: str                               # init, ode, spike, reset, pre, post
    owner: str                              # the neuron or synapse group
    model: ast.ModelDecl
    reads: list[tuple[str, str]] = field(default_factory=list)
    writes: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Variable:
    """A state, parameter or trace of a group, as declared."""
    name: str
    owner: str
    kind: str                               # state, param, trace
    type: ast.TypeExpr
    span: Span
    tau: ast.Expr | None = None             # a trace's time constant


def output_name(variable: str) -> str:
    return f"{variable}'"


def block_name(network: str, owner: str, role: str) -> str:
    return f"{network}.{owner}.{role}"


class Deriver:
    """The blocks of one network declaration."""

    def __init__(self, decl: ast.NetworkDecl, source: str):
        self.decl = decl
        self.source = source
        self.inputs: dict[str, ast.SpikesInput] = {}
        self.groups: dict[str, ast.Neurons] = {}
        self.synapses: dict[str, ast.Synapses] = {}
        self.variables: dict[str, dict[str, Variable]] = {}      # owner -> name -> variable
        self.spans: dict[str, Span] = {}

    def error(self, kind, message, span, expected=None, hint=None, notes=()) -> PhgError:
        return PhgError(kind, message, span, expected, hint, list(notes), self.source)

    def declare(self, name: str, span: Span):
        if name in self.spans:
            raise self.error("name", f"{name!r} is declared twice in network {self.decl.name}", span,
                             expected="each input, neuron group and synapse group named once",
                             notes=[Note(self.spans[name], "first declared here")])
        self.spans[name] = span

    def run(self) -> list[Block]:
        for item in self.decl.body:
            self.declare(item.name, item.span)
            if isinstance(item, ast.SpikesInput):
                self.inputs[item.name] = item
                if item.payload is not None:
                    self.own(item.name, item.payload.name, "payload", _with_unit(item.payload.type), item.payload.span)
            elif isinstance(item, ast.Neurons):
                self.groups[item.name] = item
            else:
                self.synapses[item.name] = item
        blocks = [self.init(i.name, i.span, [i.payload]) for i in self.inputs.values() if i.payload is not None]
        for g in self.groups.values():
            blocks += self.neurons(g)
        for s in self.synapses.values():
            blocks += self.synapse_group(s)
        return blocks

    # ---- neuron groups ------------------------------------------------------------------------
    def own(self, owner: str, name: str, kind: str, type_: ast.TypeExpr, span: Span, tau=None):
        mine = self.variables.setdefault(owner, {})
        if name in mine:
            raise self.error("name", f"{name!r} is declared twice in {owner}", span, expected="a new name",
                             notes=[Note(mine[name].span, "first declared here")])
        mine[name] = Variable(name, owner, kind, type_, span, tau)

    def neurons(self, g: ast.Neurons) -> list[Block]:
        for s in g.states:
            self.own(g.name, s.name, "state", _with_unit(s.type), s.span)
        states = self.variables.get(g.name, {})
        out = [self.init(g.name, g.span, [*g.states])]
        seen = {}
        for name, expr, span in g.odes:
            if name not in states:
                raise self.error("name", f"d{name}/dt: {name!r} is not a state of {g.name}", span,
                                 expected=f"one of its states: {', '.join(states) or '(none declared)'}")
            if name in seen:
                raise self.error("name", f"{name!r} has two derivatives in {g.name}", span,
                                 expected="one `dX/dt = ...` per state", notes=[Note(seen[name], "the first")])
            seen[name] = span
        if g.odes:
            body, reads = self.reads(g.name, [e for _, e, _ in g.odes], [])
            for name, expr, span in g.odes:
                v = states[name]
                body.append(ast.Statement("output", f"d{name}/dt", None, _per_second(v.type, span), expr, span))
            out.append(Block("ode", g.name, self.model(g.name, "ode", body, g.span), reads,
                             [(name, g.name, f"d{name}/dt") for name, _, _ in g.odes]))
        if g.spike is not None:
            left, op, right, span = g.spike
            over = ast.Binary("sub", left, right, span) if op == ">" else ast.Binary("sub", right, left, span)
            body, reads = self.reads(g.name, [over], [])
            body.append(ast.Statement("output", "over", None, ast.TypeExpr("Scalar", [], None, span), over, span))
            out.append(Block("spike", g.name, self.model(g.name, "spike", body, span), reads, []))
        elif g.reset:
            raise self.error("syntax", f"neurons {g.name} resets but never spikes", g.reset_span,
                             expected="a `spike A > B` statement, or no reset")
        if g.reset:
            out.append(self.assignments("reset", g.name, g.reset, g.reset_span, [g.name]))
        return out

    # ---- synapse groups -----------------------------------------------------------------------
    def synapse_group(self, s: ast.Synapses) -> list[Block]:
        if s.source not in self.inputs and s.source not in self.groups:
            raise self.error("name", f"synapses {s.name} come from {s.source!r}, which network {self.decl.name} "
                             "does not declare", s.source_span,
                             expected="a spike input or neuron group of the network")
        if s.target not in self.groups and s.target not in self.inputs:
            raise self.error("name", f"synapses {s.name} go to {s.target!r}, which network {self.decl.name} does not "
                             "declare", s.target_span,
                             expected="a neuron group of the network, or a spike input (its spikes the post spikes)")
        for p in s.params:
            self.own(s.name, p.name, "param", _with_unit(p.type), p.span)
        for t in s.traces:
            self.own(s.name, t.name, "trace", _with_unit(t.type), t.span, t.tau)
        for side in dict.fromkeys((s.target, s.source)):
            theirs = self.variables.get(side, {})
            for v in self.variables.get(s.name, {}).values():
                if v.name in theirs:
                    raise self.error("name", f"{v.name!r} is a variable of synapses {s.name} and of {side}, so an "
                                     "`on` block could not tell which it means", v.span,
                                     expected=f"a name that is not a variable of {side}",
                                     notes=[Note(theirs[v.name].span, f"the variable of {side}")])
        traces = [ast.Statement("param", t.name, None, t.type, t.value, t.span) for t in s.traces]
        out = [self.init(s.name, s.span, [*s.params, *traces],
                         [ast.Statement("output", f"tau {t.name}", None,
                                        ast.TypeExpr("Scalar", [], ast.UnitName("s", t.tau.span), t.tau.span),
                                        t.tau, t.tau.span) for t in s.traces])]
        seen = {}
        for block in s.on:
            if block.side not in SIDES:
                raise self.error("syntax", f"`on {block.side}`: a synapse acts on a pre or a post spike",
                                 block.side_span, expected="`on pre` or `on post`")
            if block.side in seen:
                raise self.error("syntax", f"synapses {s.name} have two `on {block.side}` blocks", block.side_span,
                                 expected="one block per side", notes=[Note(seen[block.side], "the first")])
            seen[block.side] = block.side_span
            spiking = s.source if block.side == "pre" else s.target
            if spiking in self.groups and self.groups[spiking].spike is None:
                raise self.error("syntax", f"`on {block.side}` of synapses {s.name} acts on the spikes of {spiking}, "
                                 "which never spikes", block.side_span,
                                 expected=f"a `spike A > B` statement in neurons {spiking}")
            out.append(self.assignments(block.side, s.name, block.body, block.span, [s.name, s.target, s.source]))
        return out

    # ---- models -------------------------------------------------------------------------------
    def model(self, owner: str, role: str, body: list, span: Span) -> ast.ModelDecl:
        return ast.ModelDecl(block_name(self.decl.name, owner, role), self.decl.algebra, self.decl.algebra_span,
                             body, span)

    def init(self, owner: str, span: Span, params: list[ast.Statement], extra=()) -> Block:
        """The initial values, as the parameters of a model (their initialisers are a param's: a
        constant, normal(std) or uniform(a, b)), and a trace's time constant, an output in s."""
        body = [dataclasses.replace(p, kind="param", type=_with_unit(p.type)) for p in params] + list(extra)
        return Block("init", owner, self.model(owner, "init", body, span))

    def lookup(self, name: str, owners: list[str], span: Span | None = None) -> Variable | None:
        """The variable a name means among the owners' (the first has it; a name that two of the
        others both have is refused, located at `span`)."""
        found = [self.variables[o][name] for o in dict.fromkeys(owners) if name in self.variables.get(o, {})]
        if len(found) > 1 and span is not None and found[0].owner != owners[0]:
            raise self.error("name", f"{name!r} is a variable of both {found[0].owner} and {found[1].owner}", span,
                             expected="a name only one side of the synapse has",
                             hint="rename one of them", notes=[Note(v.span, f"the one of {v.owner}") for v in found])
        return found[0] if found else None

    def reads(self, owner: str, exprs: list[ast.Expr], writes: list[str], owners=None) -> tuple[list, list]:
        """The input statements of the variables the expressions name (and the ones written)."""
        owners = owners or [owner]
        spans = {}                                   # each name read, at its first use, in order
        for e in exprs:
            for n in _names(e):
                spans.setdefault(n.id, n.span)
        names = list(spans) + [w for w in dict.fromkeys(writes) if w not in spans]
        body, reads = [], []
        for n in names:
            v = self.lookup(n, owners, spans.get(n))
            if v is not None:
                body.append(ast.Statement("input", n, None, v.type, None, v.span))
                reads.append((n, v.owner))
        return body, reads

    def assignments(self, role: str, owner: str, items: list[ast.Assignment], span: Span, order: list[str]) -> Block:
        for a in items:
            v = self.lookup(a.target, order, a.target_span)
            if v is None:
                known = [n for o in order for n, x in self.variables.get(o, {}).items() if x.kind != "payload"]
                raise self.error("name", f"{a.target!r} is not a variable {role} can assign", a.target_span,
                                 expected=f"one of {', '.join(known) or '(none declared)'}")
            if v.kind == "payload":
                raise self.error("name", f"{a.target!r} is what the spikes of {v.owner} carry, given to simulate",
                                 a.target_span, expected="a state, parameter or trace")
        body, reads = self.reads(owner, [a.value for a in items], [a.target for a in items], order)
        last = {a.target: i for i, a in enumerate(items)}
        current: dict[str, str] = {}
        count: dict[str, int] = {}
        writes = []
        for i, a in enumerate(items):
            v = self.lookup(a.target, order, a.target_span)
            value = _renamed(a.value, current)
            if a.op != "=":
                value = ast.Binary("add" if a.op == "+=" else "sub", ast.Name(current.get(a.target, a.target),
                                                                               a.target_span), value, a.span)
            count[a.target] = count.get(a.target, 0) + 1
            claimed = dataclasses.replace(v.type, span=a.span)     # the claim located at the assignment
            if last[a.target] == i:
                name = output_name(a.target)
                body.append(ast.Statement("output", name, None, claimed, value, a.span))
                writes.append((a.target, v.owner, name))
            else:
                name = f"{a.target}'{count[a.target]}"
                body.append(ast.Statement("let", name, None, claimed, value, a.span))
            current[a.target] = name
        return Block(role, owner, self.model(owner, role, body, span), reads, writes)


def _with_unit(t: ast.TypeExpr) -> ast.TypeExpr:
    """A network variable's type: its declared unit, or dimensionless (1) where it declares none."""
    return t if t.unit is not None else dataclasses.replace(t, unit=ast.UnitOne(1, t.span))


def _per_second(t: ast.TypeExpr, span: Span) -> ast.TypeExpr:
    return dataclasses.replace(t, unit=ast.UnitBinary("/", t.unit, ast.UnitName("s", span), span), span=span)


def _names(e) -> list[ast.Name]:
    """The Name nodes of an expression (not inside a def's body, which is not part of it)."""
    out, stack = [], [e]
    while stack:
        x = stack.pop()
        if isinstance(x, ast.Name):
            out.append(x)
        elif isinstance(x, list):
            stack.extend(x)
        elif dataclasses.is_dataclass(x) and not isinstance(x, (ast.TypeExpr, Span)):
            stack.extend(getattr(x, f.name) for f in dataclasses.fields(x))
    return out


def _renamed(e, names: dict[str, str]):
    """The expression with each Name in `names` replaced by its new name."""
    if isinstance(e, ast.Name):
        return dataclasses.replace(e, id=names.get(e.id, e.id))
    if isinstance(e, list):
        return [_renamed(x, names) for x in e]
    if dataclasses.is_dataclass(e) and not isinstance(e, (ast.TypeExpr, Span)):
        return dataclasses.replace(e, **{f.name: _renamed(getattr(e, f.name), names) for f in dataclasses.fields(e)})
    return e
