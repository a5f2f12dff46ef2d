"""The simulation plan of a spiking network (LANGUAGE §16): each derived block as straight-line
scalar code (phg.plan.scalar), each variable's layout, the initial values, the traces' time
constants, and for the integration of a neuron group's state the linear system it is.

A group's derivatives are linear in its states with constant coefficients (dx/dt = A x + b, as
a leaky membrane driven by a decaying conductance is) or they are not.  `exact` integrates the
linear ones exactly, x(t + dt) = e^(A dt) x + (integral of e^(A s) ds from 0 to dt) b, the
propagator computed once per dt (codegen.network), as Brian2's method "exact" does; `euler`
takes x + dt dx/dt, for any derivatives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy

from phg import support as sup
from phg.diagnostics import PhgError
from phg.network import Network, NetworkBlock

from .scalar import HelperCall, ScalarBuilder, ScalarProgram

# State components of one neuron group that `method exact` integrates: its propagator is a dense
# k x k matrix, written out term by term in the kernel, and its k^2 coefficients are derived
# symbolically.
MAX_EXACT_STATES = 64


@dataclass
class BlockPlan:
    block: NetworkBlock
    program: ScalarProgram
    arguments: list[sympy.Symbol]                  # the inputs' components, in reads order
    results: list[object]                          # the outputs' components (expressions), in writes order


@dataclass
class NetworkPlan:
    network: Network
    layouts: dict[tuple[str, str], list[int]]      # (owner, variable) -> blade masks
    initial: dict[tuple[str, str], dict]           # (owner, variable) -> initialiser (a param's init)
    taus: dict[tuple[str, str], float]             # (synapses, trace) -> seconds
    blocks: dict[tuple[str, str], BlockPlan] = field(default_factory=dict)   # (owner, role) -> plan
    linear: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # group -> (A, b)


def plan(network: Network, source: str) -> NetworkPlan:
    layouts, initial, taus = {}, {}, {}
    for b in network.blocks:
        if b.role != "init":
            continue
        g = b.graph
        for p in g.params:
            v = g.values[p]
            layouts[(b.owner, v.name)] = sorted(sup.blades_of(v.support), key=lambda m: g.algebra.position[m])
            initial[(b.owner, v.name)] = v.init
        for name, vid in g.outputs.items():          # constants > 0 (phg.dsl.lower checks them)
            taus[(b.owner, name.removeprefix("tau "))] = float(g.values[vid].const[0])
    for group in network.groups:
        size = len([1 for name, kind in network.variables.get(group, []) if kind == "state"
                    for _ in layouts[(group, name)]])
        if network.method == "exact" and size > MAX_EXACT_STATES and network.block(group, "ode") is not None:
            g = network.block(group, "ode").graph
            raise PhgError("size", f"neurons {group} have {size} state components, too many to integrate exactly here",
                           g.span, expected=f"at most {MAX_EXACT_STATES} for `method exact` (its propagator is "
                           "a dense matrix)", hint="integrate with `method euler`", source=source)
    out = NetworkPlan(network, layouts, initial, taus)
    for b in network.blocks:
        if b.role == "init":
            continue
        g = b.graph
        names = [g.outputs[w[2]] for w in b.writes] if b.writes else list(g.outputs.values())
        sp = ScalarBuilder(g, names).build()
        by_name = {g.values[v].name: v for v in g.inputs}
        arguments = []
        for variable, owner in b.reads:
            comp = sp.values.get(by_name[variable], {}).get(())
            for m in layouts[(owner, variable)]:      # a component the block never reads: a name of its own
                arguments.append(comp[m] if comp is not None and m in comp else sympy.Symbol(f"_unused_{len(arguments)}"))
        results = []
        outputs = [(w[2], layouts[(w[1], w[0])]) for w in b.writes] if b.writes else \
            [(name, [0]) for name in g.outputs]
        for name, layout in outputs:
            comp = sp.values[g.outputs[name]][()]
            results += [comp.get(m, sympy.Integer(0)) for m in layout]
        out.blocks[(b.owner, b.role)] = BlockPlan(b, sp, arguments, results)
        if b.role == "ode" and network.method == "exact":
            out.linear[b.owner] = linear_system(out, out.blocks[(b.owner, b.role)], source)
    return out


def state_components(p: NetworkPlan, group: str) -> list[tuple[str, int]]:
    """A group's state vector: every state, in declaration order, every component."""
    return [(name, c) for name, kind in p.network.variables.get(group, []) if kind == "state"
            for c in range(len(p.layouts[(group, name)]))]


def linear_system(p: NetworkPlan, bp: BlockPlan, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with the derivatives A x + b over the group's state vector x (state_components; a
    state without a derivative keeps its value: its row is 0); a located PhgError where a
    derivative is not linear with constant coefficients."""
    value: dict = {}
    for sym, expr in bp.program.assignments:
        if isinstance(expr, HelperCall):
            for t in expr.targets:
                value[t] = None                  # a helper (exp, inverse): not linear
        else:
            value[sym] = expr
    group = bp.block.owner
    position = {v: i for i, v in enumerate(state_components(p, group))}
    columns = [position[(name, c)] for name, owner in bp.block.reads for c in range(len(p.layouts[(owner, name)]))]
    rows = [(w, position[(w[0], c)]) for w in bp.block.writes for c in range(len(p.layouts[(w[1], w[0])]))]
    x = bp.arguments
    a = np.zeros((len(position), len(position)))
    b = np.zeros(len(position))
    for (w, i), r in zip(rows, bp.results):
        e = _expanded(r, value)
        ok = e is not None
        if ok:
            for j, s in zip(columns, x):
                d = sympy.diff(e, s)
                if d.free_symbols:
                    ok = False
                    break
                a[i, j] = float(d)
            if ok:
                rest = e.subs({s: 0 for s in x})
                ok = not rest.free_symbols
                if ok:
                    b[i] = float(rest)
        if not ok:
            g = bp.block.graph
            raise PhgError("type", f"d{w[0]}/dt is not linear in the states of {bp.block.owner} with constant "
                           "coefficients, so it has no exact solution here", g.values[g.outputs[w[2]]].span,
                           expected="dX/dt = A X + b with constants A and b, for `method exact` (the default)",
                           hint="integrate this group with `method euler` in the simulate block", source=source)
    return a, b


def _expanded(expr, value: dict):
    """expr with the program's assigned symbols replaced by what they stand for (None through a helper)."""
    seen = {}

    def walk(e):
        subs = {}
        for s in e.free_symbols:
            if s in value:
                if s not in seen:
                    seen[s] = None if value[s] is None else walk(value[s])
                if seen[s] is None:
                    return None
                subs[s] = seen[s]
        return e.xreplace(subs) if subs else e
    return walk(sympy.sympify(expr))
