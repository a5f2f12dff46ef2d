"""How large a model may be: deterministic limits on the work later stages do, counted while lowering.

The verifier and the code generator walk chains of values recursively, so their time grows with
the longest chain; the verifier's work grows with the operations (its queries are per value, not
per channel) and, linearly, with the scalar coefficients (channels times blades) it evaluates;
loop kernels (phg.plan.loops) hold every channel in slabs of a workspace and loop over them, in
code whose size does not grow with the channels.  Fused kernels unroll every coefficient into
straight-line code, and build in a time that grows faster than their size; the kernel plan
takes them only while that size is small, or for a model whose loss depends on no input, which
has tighter limits here.  Each count is kept as each operation is made, and a model past a limit
is refused at the statement that crosses it, before any of that work starts.  Counting (not
timing) keeps the verdict the same on every machine and every run.
"""
from __future__ import annotations

import math

from phg.diagnostics import Span
from phg.operations import operation

# Operations on the longest chain of values (a sum of n terms is n deep; a let builds on the ones
# above it).  Later stages recurse this deep, within the stack phg.deep gives them.
MAX_DEPTH = 10_000
# Operations of all the models of a file together: the verifier's support, unit and versor
# queries are per value.  Measured (before the channels were priced apart; the limit then was on
# coefficients, which bound the operations too): five models each reducing 600 terms in a mix and
# a sixth of 840 rotor sandwiches over channels, phg check 56 s on two shared cores.
MAX_PROGRAM_OPERATIONS = 20_000
# Scalar coefficients (channels times blades, summed over the values, declared inputs and
# parameters included) of one model and of all the models of a file, and the terms one output
# coefficient of a reduction over channels adds up (mix(W, x) with x in [b] channels: b times the
# blades of W and x; sum(x): x's channels times its blades), alone and over a file.  The
# verifier's exact expansions and counterexample searches have budgets of their own, counted in
# scalar products, so its time grows with these only linearly.  Measured at these limits (phg
# check, two cores): a sum over an input of 999,999 scalar channels, refuted, 3.1-5.4 s; a mix
# of 120,000 x 4 weights 0.6 s; two models of sums over 333,332 vectors 4.0 s; 70 models of a
# square of a sum over 9,000 vectors, claimed Scalar (true, but past the exact expansion's budget,
# so every search runs to its end) 12.3 s, the file's search budget spent.
MAX_TERMS = 1_000_000
MAX_PROGRAM_TERMS = 2 * MAX_TERMS
MAX_REDUCTION_TERMS = MAX_TERMS
MAX_PROGRAM_REDUCTION_TERMS = 2 * MAX_REDUCTION_TERMS
# A model whose loss depends on no input trains fused (phg.plan.kernel's rule), every value
# unrolled, the samples' too: its coefficients and reductions have the limits that held for all
# models while every model was fused.  The fused strategy's sums are single polynomials, in time
# growing about as the square of their terms (measured, a whole check: 300 terms 5 s, 1,500 terms
# two minutes).
MAX_FUSED_TERMS = 20_000
MAX_FUSED_REDUCTION_TERMS = 600
# Expressions lowered inside one another (def calls inline their bodies, so nesting adds up).
MAX_LOWERING_NESTING = 5_000
# A spiking network's variables, every row (a neuron, a synapse: source channels times targets)
# times its components, together: what simulate holds in memory (8 bytes each), 400 MB at most.
MAX_NETWORK_COEFFICIENTS = 50_000_000


class ProgramBudget:
    """What the models of one file have used so far, together."""

    def __init__(self):
        self.terms = 0
        self.reduced = 0
        self.operations = 0
        self.models: list[str] = []          # the models counted, in the order they were lowered

    def over(self, model: str) -> str:
        """The models the file's count is over, for a message: this one and those before it."""
        before = [m for m in self.models if m != model]
        if not before:
            return f"model {model}"
        return f"model {model} and the {len(before)} model{'s' if len(before) > 1 else ''} before it " \
               f"({', '.join(before[:3])}{', ...' if len(before) > 3 else ''})"


class Budget:
    def __init__(self, model: str, program: ProgramBudget | None = None):
        self.model = model
        self.depth: dict[str, int] = {}
        self.terms = 0
        self.varying: set[str] = set()       # values that change with the samples
        self.widest = 0                      # the most terms of one reduction
        self.program = program or ProgramBudget()
        self.program.models.append(model)

    def operation(self, kind: str, sources: list, target, span: Span, error) -> None:
        """Counts one operation making `target` from `sources` (hypergraph Values); `error` makes
        the located PhgError."""
        depth = 1 + max((self.depth.get(s.id, 0) for s in sources), default=0)
        if depth > MAX_DEPTH:
            raise error("size", f"model {self.model} is too large: this value is {depth:,} operations deep",
                        span, expected=f"chains of at most {MAX_DEPTH:,} operations",
                        hint="split the model, or use channels and sum(...) instead of long chains")
        self.depth[target.id] = depth
        if any(s.id in self.varying for s in sources):
            self.varying.add(target.id)
        self.program.operations += 1
        if self.program.operations > MAX_PROGRAM_OPERATIONS:
            raise error("size", f"the file is too large: {self.program.over(self.model)} have "
                        f"{self.program.operations:,} operations by this {kind}", span,
                        expected=f"at most {MAX_PROGRAM_OPERATIONS:,} operations in all the models of a file "
                        "(each is checked)", hint="use channels instead of repeated statements, or put models "
                        "in files of their own")
        reduced = operation(kind).cost.reduced(sources, target)
        if reduced > MAX_REDUCTION_TERMS:
            raise error("size", f"model {self.model} is too large: this {kind} over channels adds up "
                        f"{reduced:,} scalar terms in each coefficient", span,
                        expected=f"at most {MAX_REDUCTION_TERMS:,} terms (channels reduced times blades)",
                        hint="use fewer or smaller channels")
        self.widest = max(self.widest, reduced)
        if reduced:
            self.program.reduced += reduced
            if self.program.reduced > MAX_PROGRAM_REDUCTION_TERMS:
                raise error("size", f"the file is too large: its reductions over channels add up "
                            f"{self.program.reduced:,} scalar terms by this {kind} in "
                            f"{self.program.over(self.model)}", span,
                            expected=f"at most {MAX_PROGRAM_REDUCTION_TERMS:,} terms in all the reductions "
                            "of a file (each is checked)", hint="use fewer or smaller channels, or put "
                            "models in files of their own")
        self.add_terms(max(_coefficients(target), 1), span, error)

    def renamed(self, old: str, new: str) -> None:
        if old in self.depth:
            self.depth[new] = self.depth.pop(old)
        if old in self.varying:
            self.varying.discard(old)
            self.varying.add(new)

    def trained_fused(self, loss: str, span: Span, error) -> None:
        """A loss of the parameters and constants alone trains fused (phg.plan.kernel's rule), every
        value unrolled: the fused limits then hold for the whole model.  Called once the model is
        lowered, at its loss statement."""
        if loss in self.varying:
            return
        self.fused(f"model {self.model} trains fused, since its loss depends on no input, and fused code "
                   "unrolls every value", "in a model whose loss depends on no input",
                   "make the loss depend on an input, or use fewer or smaller channels and parameters", span, error)

    def fused(self, why: str, where: str, hint: str, span: Span, error) -> None:
        """The fused limits over the whole model, for a model that runs fused whatever its size, or
        whose kernels write every sum of products out term by term (a numeric format's)."""
        if self.terms > MAX_FUSED_TERMS:
            raise error("size", f"{why}: unrolled over its channels it has {self.terms:,} scalar coefficients", span,
                        expected=f"at most {MAX_FUSED_TERMS:,} scalar coefficients (channels times blades, over all "
                        f"values and parameters) {where}", hint=hint)
        if self.widest > MAX_FUSED_REDUCTION_TERMS:
            raise error("size", f"{why}: one of its reductions over channels adds up {self.widest:,} "
                        "scalar terms in each coefficient", span,
                        expected=f"at most {MAX_FUSED_REDUCTION_TERMS:,} terms a reduction {where}", hint=hint)

    def leaf(self, value, span: Span, error) -> None:
        """A declared input or parameter."""
        if value.role == "input":
            self.varying.add(value.id)
        self.add_terms(_coefficients(value), span, error)

    def add_terms(self, n: int, span: Span, error) -> None:
        self.terms += n
        if self.terms > MAX_TERMS:
            raise error("size", f"model {self.model} is too large: over its channels it has "
                        f"{self.terms:,} scalar coefficients by this statement", span,
                        expected=f"at most {MAX_TERMS:,} scalar coefficients (channels times blades, "
                        "over all values, inputs and parameters)", hint="use fewer or smaller channels, or split the model")
        self.program.terms += n
        if self.program.terms > MAX_PROGRAM_TERMS:
            raise error("size", f"the file is too large: over their channels, "
                        f"{self.program.over(self.model)} have {self.program.terms:,} scalar coefficients "
                        "by this statement", span,
                        expected=f"at most {MAX_PROGRAM_TERMS:,} scalar coefficients in all the models of a "
                        "file (each is checked)", hint="use fewer or smaller channels, or put models in files "
                        "of their own")


def _blades(support: int) -> int:
    return support.bit_count()


def _coefficients(v) -> int:
    return math.prod(v.shape) * _blades(v.support) if v.support else math.prod(v.shape)
