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
# Expressions lowered inside one another (def calls inline their bodies, so nesting adds up).
MAX_LOWERING_NESTING = 5_000


class Budget:
    def __init__(self, model: str):
        self.model = model
        self.depth: dict[str, int] = {}
        self.terms = 0

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


def _blades(support: int) -> int:
    return support.bit_count()


def _coefficients(v) -> int:
    return math.prod(v.shape) * _blades(v.support) if v.support else math.prod(v.shape)


def _reduction_terms(kind: str, sources: list, target) -> int:
    if kind == "mix":
        w, x = sources
        return w.shape[1] * max(_blades(w.support), 1) * max(_blades(x.support), 1)
    if kind == "sum":
        return math.prod(sources[0].shape) * max(_blades(sources[0].support), 1)
    return 0
