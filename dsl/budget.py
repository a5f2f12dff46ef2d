"""How large a model may be: deterministic limits on the work later stages do, counted while lowering.

The verifier and the code generator walk chains of values recursively and unroll every channel into
scalar expressions, so their time grows with the longest chain and with the unrolled terms.  Both
are counted here as each operation is made, and a model past either limit is refused at the
statement that crosses it, before any of that work starts.  Counting (not timing) keeps the verdict
the same on every machine and every run.
"""
from __future__ import annotations

import math

from phg.diagnostics import Span

# Operations on the longest chain of values (a sum of n terms is n deep; a let builds on the ones
# above it).  Later stages recurse this deep, within the stack phg.deep gives them.
MAX_DEPTH = 10_000
# Scalar coefficients of the unrolled model (channels times blades, summed over its values), and
# the terms one output coefficient of a reduction over channels adds up (mix(W, x) with x in [b]
# channels: b times the blades of W and x; sum(x): x's channels times its blades).  The symbolic
# analysis behind the memory plan and the kernels makes each such sum one polynomial, in time
# growing about as the square of its terms (measured, a whole check: 300 terms 5 s, 1,500 terms
# two minutes), so one may have 600.
MAX_REDUCTION_TERMS = 600
MAX_TERMS = 20_000
# The same work summed over every model of a file (a file may hold any number of models, and each
# is checked): the coefficients of all its models together, and the terms of all its reductions
# together.  Every operation makes at least one coefficient, so the first bounds the operations
# too.  Measured at both limits (five models each reducing 600 terms in a mix, and a sixth of 840
# rotor sandwiches over channels, 19,980 coefficients in all): phg check took 56 s on two shared
# cores; before, a file of 4 MiB could take a day.
MAX_PROGRAM_TERMS = MAX_TERMS
MAX_PROGRAM_REDUCTION_TERMS = 5 * MAX_REDUCTION_TERMS
# Expressions lowered inside one another (def calls inline their bodies, so nesting adds up).
MAX_LOWERING_NESTING = 5_000


class ProgramBudget:
    """What the models of one file have used so far, together."""

    def __init__(self):
        self.terms = 0
        self.reduced = 0
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
        reduced = _reduction_terms(kind, sources, target)
        if reduced > MAX_REDUCTION_TERMS:
            raise error("size", f"model {self.model} is too large: this {kind} over channels adds up "
                        f"{reduced:,} scalar terms in each coefficient", span,
                        expected=f"at most {MAX_REDUCTION_TERMS:,} terms (channels reduced times blades)",
                        hint="use fewer or smaller channels")
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

    def leaf(self, value, span: Span, error) -> None:
        self.add_terms(_coefficients(value), span, error)

    def add_terms(self, n: int, span: Span, error) -> None:
        self.terms += n
        if self.terms > MAX_TERMS:
            raise error("size", f"model {self.model} is too large: unrolled over its channels it has "
                        f"{self.terms:,} scalar coefficients by this statement", span,
                        expected=f"at most {MAX_TERMS:,} scalar coefficients (channels times blades, "
                        "over all values)", hint="use fewer or smaller channels, or split the model")
        self.program.terms += n
        if self.program.terms > MAX_PROGRAM_TERMS:
            raise error("size", f"the file is too large: unrolled over their channels, "
                        f"{self.program.over(self.model)} have {self.program.terms:,} scalar coefficients "
                        "by this statement", span,
                        expected=f"at most {MAX_PROGRAM_TERMS:,} scalar coefficients in all the models of a "
                        "file (each is checked)", hint="use fewer or smaller channels, or put models in files "
                        "of their own")


def _blades(support: int) -> int:
    return support.bit_count()


def _coefficients(v) -> int:
    return math.prod(v.shape) * _blades(v.support) if v.support else math.prod(v.shape)


def _reduction_terms(kind: str, sources: list, target) -> int:
    if kind == "mix":
        w, x = sources
        return w.shape[1] * max(_blades(w.support), 1) * max(_blades(x.support), 1)
    if kind == "linear":
        w, x = sources
        return w.shape[1] * max(_blades(x.support), 1)
    if kind == "sum":
        return math.prod(sources[0].shape) * max(_blades(sources[0].support), 1)
    return 0
