"""The fused strategy's programs, made once in the kernel plan and printed by codegen: predict's
scalar program, and a training step's forward, loss, adjoint and sums.

Hoisting makes a step cheap: the coefficients that depend on parameters only (k0 = s^2 - a^2 ...,
the matrix of R x ~R) are computed before the sample loop, so the per-sample adjoint stops at them
(9 products for R x ~R), and the chain from their summed adjoints to the parameters runs once per
batch.  When a model hoists many more coefficients than it has parameter coefficients, the chain
runs per sample instead, so that a step keeps fewer sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy

from phg import support as sup
from phg.hypergraph import Hypergraph

from .adjoint import reverse
from .scalar import HelperCall, ScalarBuilder, ScalarProgram


@dataclass
class Sums:
    """What a step accumulates: the loss and the adjoints of the hoisted coefficients the
    per-sample code uses (hoisted), or the loss and the adjoints of the parameter coefficients."""
    hoisted: bool
    rows: int                  # accumulator rows, the loss included (an upper bound on those used)


@dataclass
class Adjoint:
    """A fused step's reverse pass: per slot of samples, the step's `per_sample` code and
    `backward` run for each sample and each of `quantities` is summed (the loss first); once per
    step, the sums' totals are read into `totals`, `epilogue` runs and each parameter
    coefficient's gradient is its `param_bars` entry over n."""
    backward: list
    quantities: list
    totals: dict                   # hoisted coefficient -> the symbol of its summed adjoint
    epilogue: list
    param_bars: dict               # parameter coefficient -> its adjoint summed over the batch
    invariant: list                # the parameters' hoisted coefficients, the chain's included
    helpers: list                  # every helper the step calls (exp, inv and their adjoints)
    stack_symbols: int             # scalars live in one sample's forward and adjoint
    inputs: dict                   # input coefficient -> one sample's adjoint of it (its loss's gradient)


class FusedStep:
    """A fused training step of g: its forward and loss program and what it sums, made with the
    plan (the verifier sizes the sums); its adjoint made when first asked for (the emitter)."""

    def __init__(self, g: Hypergraph, totals_name: str):
        self.g = g
        self.totals_name = totals_name     # the kernel's array of the sums' totals
        self.builder = ScalarBuilder(g, [g.loss])
        sp = self.program = self.builder.build()
        used = set()
        for sym, e in sp.assignments:
            if sym not in sp.invariant:
                args = e.args if isinstance(e, HelperCall) else [e]
                used |= {u for a in args for u in sympy.sympify(a).free_symbols if u in sp.invariant}
        self.loss = sp.values[g.loss][()].get(0, sympy.Integer(0))
        if self.loss in sp.invariant:          # a loss no sample changes: its own adjoint is summed
            used.add(self.loss)
        self.coefficients = [sym for p in g.params if p in sp.values for comp in sp.values[p].values()
                             for _, sym in sorted(comp.items(), key=lambda t: g.algebra.position[t[0]])]
        # Summing a hoisted adjoint costs one addition; chaining it per sample, one product-sum per
        # parameter coefficient it reaches: hoisting wins unless it needs many more sums.
        hoisted = len(used) <= 2 * max(len(self.coefficients), 1)
        self.sums = Sums(hoisted, 1 + (len(used) if hoisted else len(self.coefficients)))
        self.inputs = [v for v in g.inputs if v in self.builder.cone]      # in argument order
        self.per_sample = [(s, e) for s, e in sp.assignments if s not in sp.invariant]

    @cached_property
    def adjoint(self) -> Adjoint:
        g, sp, builder = self.g, self.program, self.builder
        helpers = list(sp.helpers.values())
        invariant = [(s, e) for s, e in sp.assignments if s in sp.invariant]
        seeds = {self.loss: sympy.Integer(1)} if isinstance(self.loss, sympy.Symbol) else {}
        backward, leaves = reverse(self.per_sample, seeds, builder.symbol, helpers)
        inputs = {sym: leaves.get(sym, sympy.Integer(0)) for v in self.inputs
                  for comp in sp.values[v].values() for sym in comp.values()}
        summed = [s for s in sorted(leaves, key=str) if s in sp.invariant]
        totals, epilogue = {}, []
        if not self.sums.hoisted:
            # Chain to the parameters per sample, so a step never sums more than
            # 1 + (parameter coefficients) quantities.
            chained, bars = reverse(invariant, {s: leaves[s] for s in summed}, builder.symbol, helpers)
            # The chain's factors depend on the parameters only: hoisted, like the forward's.
            backward += [(sym, builder.split(sympy.expand(e)) if sym is not None else e) for sym, e in chained]
            quantities = [self.loss] + [builder.split(sympy.expand(bars.get(sym, sympy.Integer(0))))
                                        for sym in self.coefficients]
            invariant = [(s, e) for s, e in sp.assignments if s in sp.invariant]
            param_bars = {sym: sympy.Symbol(f"{self.totals_name}[{q + 1}]") for q, sym in enumerate(self.coefficients)}
        else:
            quantities = [self.loss] + [leaves[s] for s in summed]
            totals = {s: builder.symbol(f"total_{s}") for s in summed}
            epilogue, param_bars = reverse(invariant, dict(totals), builder.symbol, helpers)
        assert len(quantities) <= self.sums.rows
        stack = len(self.per_sample) + len(backward) + sum(len(sup.blades_of(g.values[v].support)) for v in self.inputs)
        return Adjoint(backward, quantities, totals, epilogue, param_bars, invariant, helpers, stack, inputs)


def predict_program(g: Hypergraph, wanted: list[str]) -> ScalarProgram:
    return ScalarBuilder(g, wanted).build()
