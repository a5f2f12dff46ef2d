"""The simulation kernel and class of a spiking network (LANGUAGE §16), emitted from its plan
(phg.plan.spiking).

Each derived block is a small Numba function of its inputs' components returning its outputs';
one kernel runs the clock from step `_s0` to `_s1`, in Brian2's order within a step: record the
variables asked for (the values at the step's start), integrate every neuron group, find the
spikes (threshold; the spike inputs' trains), run every synapse group's `on pre` block for each
spike of its source and then every `on post` block for each spike of its target (a synapse's
traces decaying exactly, by exp(-(t - last)/tau), to the event first), and reset the neurons
that spiked.  A spike input's spike sets what it carries (its payload) for its channel as the
step's spikes are read.  Synapse groups connect every source channel to every target (a neuron,
or a spike input's channel, whose spikes are then the post spikes); a synapse's row is source *
targets + target.  The kernel stops early, returning the step it reached, when
a spike buffer could overflow in the next step; codegen.network grows it and goes on.
"""
from __future__ import annotations

from phg.plan.scalar import global_name
from phg.plan.spiking import NetworkPlan, state_components

from .decorators import njit
from .printers import code, statement


def block_function(net: str, bp, helpers: dict, share) -> tuple[str, str]:
    """(its name, its source)."""
    name = global_name("block", net, bp.block.owner, bp.block.role)
    for h in bp.program.helpers.values():
        share(helpers, h)
    args = [str(a) for a in bp.arguments]
    lines = [njit(), f"def {name}({', '.join(args)}):"]
    lines += ["    " + statement(sym, expr) for sym, expr in bp.program.assignments]
    lines.append("    return (" + "".join(f"{code(r)}, " for r in bp.results) + ")")
    return name, "\n".join(lines)


class Layout:
    """The kernel's arguments, in order, and each one's role (codegen.network passes them)."""

    def __init__(self, p: NetworkPlan):
        net = p.network
        self.variables = [(owner, name) for owner, names in net.variables.items() for name, _ in names]
        self.index = {v: i for i, v in enumerate(self.variables)}
        self.synapses = list(net.synapses)
        self.exact = [g for g in net.groups if g in p.linear]
        self.inputs = list(net.inputs)
        self.spiking = [g for g in net.groups if p.blocks.get((g, "spike")) is not None]

    def arguments(self) -> list[str]:
        return (["_s0", "_s1", "_dt"] + [f"x{i}" for i in range(len(self.variables))]
                + [f"last{i}" for i in range(len(self.synapses))]
                + [a for i in range(len(self.exact)) for a in (f"E{i}", f"c{i}")]
                + [a for i in range(len(self.inputs)) for a in (f"in_step{i}", f"in_index{i}", f"in_at{i}",
                                                                f"in_payload{i}")]
                + [a for i in range(len(self.spiking)) for a in (f"out_step{i}", f"out_index{i}", f"out_count{i}")]
                + [a for i in range(len(self.variables)) for a in (f"rec_index{i}", f"rec{i}")] + ["_r0"])


def kernel(p: NetworkPlan, names: dict) -> tuple[str, Layout]:
    """The simulation kernel's source; `names` maps (owner, role) to its block function."""
    net = p.network
    lay = Layout(p)
    var = lambda owner, name: f"x{lay.index[(owner, name)]}"  # noqa: E731
    sizes = {**net.inputs, **net.groups}
    body = ["for _s in range(_s0, _s1):", "    _t = _s * _dt"]
    for i, g in enumerate(lay.spiking):          # room for a spike of every neuron in this step
        body += [f"    if out_count{i}[0] + {net.groups[g]} > out_step{i}.shape[0]:", "        return _s"]
    for i, (owner, name) in enumerate(lay.variables):
        body += [f"    for _m in range(rec_index{i}.shape[0]):",
                 f"        rec{i}[_s - _r0, _m, :] = x{i}[rec_index{i}[_m], :]"]
    # integration
    for g in net.groups:
        bp = p.blocks.get((g, "ode"))
        if bp is None:
            continue
        body.append(f"    for _n in range({net.groups[g]}):")
        if g in p.linear:
            k = lay.exact.index(g)
            states = state_components(p, g)
            body += [f"        _x{j} = {var(g, name)}[_n, {c}]" for j, (name, c) in enumerate(states)]
            for j, (name, c) in enumerate(states):
                terms = " + ".join(f"E{k}[{j}, {i}] * _x{i}" for i in range(len(states)))
                body.append(f"        {var(g, name)}[_n, {c}] = {terms} + c{k}[{j}]")
        else:
            body += _call(p, bp, names[(g, "ode")], {g: "_n"}, var, "        ", "+= _dt *")
    # spikes: thresholds, then the inputs' trains
    fired = {}
    for i, g in enumerate(lay.spiking):
        bp = p.blocks[(g, "spike")]
        args = _gather(p, bp.block.reads, {g: "_n"}, var)
        body += [f"    _start{i} = out_count{i}[0]", f"    for _n in range({net.groups[g]}):",
                 f"        _over, = {names[(g, 'spike')]}({', '.join(args)})",
                 "        if _over > 0:",
                 f"            out_step{i}[out_count{i}[0]] = _s",
                 f"            out_index{i}[out_count{i}[0]] = _n",
                 f"            out_count{i}[0] += 1"]
        fired[g] = (f"out_index{i}", f"_start{i}", f"out_count{i}[0]")
    for i, name in enumerate(lay.inputs):
        carried = [var(name, v) for v, kind in net.variables.get(name, []) if kind == "payload"]
        body += [f"    while in_at{i}[0] < in_step{i}.shape[0] and in_step{i}[in_at{i}[0]] < _s:",
                 f"        in_at{i}[0] += 1",
                 f"    _first{i} = in_at{i}[0]",
                 f"    while in_at{i}[0] < in_step{i}.shape[0] and in_step{i}[in_at{i}[0]] == _s:"]
        body += [f"        {x}[in_index{i}[in_at{i}[0]], :] = in_payload{i}[in_at{i}[0], :]" for x in carried]
        body += [f"        in_at{i}[0] += 1"]
        fired[name] = (f"in_index{i}", f"_first{i}", f"in_at{i}[0]")
    # synapses: every pre pathway, then every post pathway
    for side in ("pre", "post"):
        for k, s in enumerate(lay.synapses):
            bp = p.blocks.get((s, side))
            source, target = net.synapses[s]
            spiking = source if side == "pre" else target
            if bp is None or spiking not in fired:
                continue
            array, first, end = fired[spiking]
            count = sizes[target] if side == "pre" else sizes[source]
            body += [f"    for _e in range({first}, {end}):", f"        _a = {array}[_e]",
                     f"        for _j in range({count}):"]
            row = f"_a * {sizes[target]} + _j" if side == "pre" else f"_j * {sizes[target]} + _a"
            body.append(f"            _row = {row}")
            traces = [name for name, kind in net.variables[s] if kind == "trace"]
            if traces:
                body.append(f"            _age = _t - last{k}[_row]")
                decays = {}                               # one exponential per time constant
                for name in traces:
                    tau = p.taus[(s, name)]
                    if tau not in decays:
                        decays[tau] = f"_f{len(decays)}"
                        body.append(f"            {decays[tau]} = _phg_math.exp(-_age / {tau!r})")
                    body += [f"            {var(s, name)}[_row, {c}] *= {decays[tau]}"
                             for c in range(len(p.layouts[(s, name)]))]
                body.append(f"            last{k}[_row] = _t")
            where = {source: "_a" if side == "pre" else "_j", target: "_j" if side == "pre" else "_a", s: "_row"}
            body += _call(p, bp, names[(s, side)], where, var, "            ", "=")
    # resets
    for g in lay.spiking:
        bp = p.blocks.get((g, "reset"))
        if bp is not None:
            array, first, end = fired[g]
            body += [f"    for _e in range({first}, {end}):", f"        _n = {array}[_e]"]
            body += _call(p, bp, names[(g, "reset")], {g: "_n"}, var, "        ", "=")
    doc = (f"Network {net.name}: steps _s0 to _s1 of the clock (codegen.spiking); returns the step reached, "
           "_s1 unless a spike buffer was full.")
    name = global_name("simulate", net.name)
    lines = [njit(), f"def {name}({', '.join(lay.arguments())}):", f"    {ascii(doc)}"]
    lines += ["    " + ln for ln in body] + ["    return _s1"]
    return "\n".join(lines), lay


def _call(p: NetworkPlan, bp, function: str, where: dict, var, indent: str, store: str) -> list[str]:
    """A block's call on the variables at their rows (`where`: owner -> row), and its results
    stored (`store` "=", or "+= _dt *" for an Euler step)."""
    outs = [f"_o{j}" for j in range(len(bp.results))]
    if not outs:
        return []
    lines = [f"{indent}{', '.join(outs)}, = {function}({', '.join(_gather(p, bp.block.reads, where, var))})"]
    j = 0
    for name, owner, _ in bp.block.writes:
        for c in range(len(p.layouts[(owner, name)])):
            lines.append(f"{indent}{var(owner, name)}[{where[owner]}, {c}] {store} _o{j}")
            j += 1
    return lines


def _gather(p: NetworkPlan, reads, where: dict, var) -> list[str]:
    """The arguments of a block: each variable it reads, every component, at its row."""
    out = []
    for name, owner in reads:
        out += [f"{var(owner, name)}[{where[owner]}, {c}]" for c in range(len(p.layouts[(owner, name)]))]
    return out


def network_source(p: NetworkPlan, helpers: dict, share) -> tuple[str, str]:
    """The block functions and kernel of a network, and its class."""
    net = p.network
    names, parts = {}, []
    for key, bp in p.blocks.items():
        names[key], text = block_function(net.name, bp, helpers, share)
        parts.append(text)
    text, lay = kernel(p, names)
    parts.append(text)
    sizes = {**net.inputs, **net.groups}
    rows = {owner: (sizes[src] * sizes[dst] if owner in net.synapses else sizes[owner])
            for owner in net.variables for src, dst in [net.synapses.get(owner, (owner, owner))]}
    alg = next(iter(net.blocks)).graph.algebra
    spec = {
        "name": net.name, "seed": net.seed, "dt": net.dt, "method": net.method,
        "variables": [[owner, name, rows[owner], len(p.layouts[(owner, name)]), p.initial[(owner, name)]]
                      for owner, name in lay.variables],
        "layouts": {owner: {name: [alg.blade_name(m) for m in p.layouts[(owner, name)]] for name, _ in names_}
                    for owner, names_ in net.variables.items()},
        "synapses": [[s, *net.synapses[s], sizes[net.synapses[s][0]] * sizes[net.synapses[s][1]]]
                     for s in lay.synapses],
        "exact": lay.exact,
        "linear": {g: [p.linear[g][0].tolist(), p.linear[g][1].tolist()] for g in lay.exact},
        "inputs": {name: net.inputs[name] for name in lay.inputs},
        "payloads": {name: [v, len(p.layouts[(name, v)])] for name in lay.inputs
                     for v, kind in net.variables.get(name, []) if kind == "payload"},
        "spiking": [[g, net.groups[g]] for g in lay.spiking],
        "groups": dict(net.groups),
    }
    doc = f"Network {net.name}: its variables, spike inputs and clock (LANGUAGE §16)."
    cls = "\n".join([f"class {global_name('network', net.name)}(_phg_NetworkBase):", f"    {ascii(doc)}",
                     f"    SPEC = {ascii(spec)}",
                     f"    _simulate_kernel = staticmethod({global_name('simulate', net.name)})"])
    return "\n\n\n".join(parts), cls
