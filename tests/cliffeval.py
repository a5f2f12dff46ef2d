"""Direct evaluation of a Program Hypergraph with clifford's own products: the reference the
verifier's claims and (later) the kernels are compared against."""
from __future__ import annotations

import functools
import itertools

import clifford
import numpy as np

from phg import support as sup


@functools.lru_cache(maxsize=None)
def layout_of(signature: tuple[int, int, int]):
    """clifford's layout for Cl(p, q, r) and, per clifford blade index, our blade mask."""
    layout, _ = clifford.Cl(*signature)
    first = min((i for t in layout.bladeTupList for i in t), default=1)
    masks = [sum(1 << (k - first) for k in t) for t in layout.bladeTupList]
    return layout, masks


class Reference:
    def __init__(self, graph):
        self.g = graph
        self.alg = graph.algebra
        self.layout, self.masks = layout_of(self.alg.signature)
        self.index = {m: i for i, m in enumerate(self.masks)}

    def mv(self, coefs: dict[int, float]):
        v = np.zeros(self.layout.gaDims)
        for m, c in coefs.items():
            v[self.index[m]] = c
        return self.layout.MultiVector(v)

    def coefficients(self, x) -> dict[int, float]:
        return {self.masks[i]: float(x.value[i]) for i in range(self.layout.gaDims)}

    def random_value(self, value, rng):
        """An admissible value of a parameter or input, per its declared type."""
        kind = value.declared.versor if value.declared is not None else None
        out = {}
        for ch in itertools.product(*(range(s) for s in value.shape)):
            if kind in ("Rotor", "Motor"):
                out[ch] = self.random_rotor(rng)
            elif kind == "Versor":
                r = self.layout.scalar * 1.0
                for _ in range(rng.integers(1, 4)):
                    r = r * self.mv({b: rng.normal() for b in sup.blades_of(sup.of_grades(self.alg, [1]))})
                out[ch] = r
            else:
                out[ch] = self.mv({b: rng.normal() for b in sup.blades_of(value.support)})
        return out

    def unit_vector(self, rng, sign: int | None = None):
        """A random vector with v^2 = +1 or -1 (of the given sign, when asked)."""
        while True:
            v = self.mv({b: rng.normal() for b in sup.blades_of(sup.of_grades(self.alg, [1]))})
            sq = float((v * v)(0))
            if abs(sq) > 1e-3 and (sign is None or np.sign(sq) == sign):
                return v / np.sqrt(abs(sq)), int(np.sign(sq))

    def random_rotor(self, rng):
        """A product of 2 or 4 unit vectors taken in pairs of equal square: R ~R = 1 to rounding
        (a product of vectors is exact, where a series exp is not)."""
        while True:
            r = self.layout.scalar * 1.0
            for _ in range(rng.choice([1, 2])):
                a, sign = self.unit_vector(rng)
                b, _ = self.unit_vector(rng, sign)
                r = r * a * b
            # Large boosts (in indefinite signatures) only measure floating-point cancellation.
            if np.abs(r.value).max() < 3:
                return r

    def evaluate(self, inputs: dict, only: set[str] | None = None) -> dict:
        """Every value (or those `only` needs) at the given parameter and input values."""
        needed = None if only is None else {u for v in only for u in self.g.cone(v)}
        values = {}
        for vid, v in self.g.values.items():
            if self.g.producer(vid) is None and (needed is None or vid in needed):
                values[vid] = inputs[vid] if v.const is None else {(): self.mv(
                    {b: float(v.const[b]) for b in range(self.alg.dim) if v.const[b]})}
        for e in self.g.topological_edges():
            if needed is None or e.target in needed:
                values[e.target] = self.edge(e, [values[s] for s in e.sources])
        return values

    def edge(self, e, srcs):
        k = e.kind
        if k == "sum":
            return {(): functools.reduce(lambda a, b: a + b, srcs[0].values())}
        if k == "index":
            n = len(e.attrs["index"])
            return {ch[n:]: m for ch, m in srcs[0].items() if list(ch[:n]) == e.attrs["index"]}
        if k == "mix":
            w, x = srcs
            rows = sorted({ch[0] for ch in w})
            return {(i,): functools.reduce(lambda a, b: a + b, [w[(i, j)] * x[(j,)] for (ii, j) in w if ii == i])
                    for i in rows}
        if k == "gradegate":
            x, s = srcs
            return {ch: functools.reduce(lambda a, b: a + b, [m(g) * (1 / (1 + np.exp(-float(s[(*ch, i)](0)))))
                                                              for i, g in enumerate(e.attrs["grades"])])
                    for ch, m in x.items()}
        if k == "linear":                      # LANGUAGE §10, from its definition
            w, x = srcs
            grades, first = e.attrs["grades"], e.attrs.get("offset", 0)
            out = {}
            for (i, j, g), wm in w.items():
                if 0 <= g - first < len(grades):
                    out[(i,)] = out.get((i,), 0 * wm) + wm * x[(j,)](grades[g - first])
            return out
        if k == "bilinear":
            w, x, y = srcs
            out = {}
            for (c, p), wm in w.items():
                ga, gb, r = e.attrs["paths"][p]
                out[(c,)] = out.get((c,), 0 * wm) + wm * (x[(c,)](ga) * y[(c,)](gb))(r)
            return out
        shaped = [s for s in srcs if () not in s]
        channels = sorted(shaped[0]) if shaped else [()]
        return {ch: self.pointwise(e, [s[ch] if ch in s else s[()] for s in srcs]) for ch in channels}

    @staticmethod
    def exp(x):
        # clifford's exp is a Taylor series of fixed order; scaling and squaring keeps it accurate.
        size = float(np.abs(x.value).sum())
        halvings = max(0, int(np.ceil(np.log2(size))) + 2) if size > 0 else 0
        y = (x / 2 ** halvings).exp()
        for _ in range(halvings):
            y = y * y
        return y

    def log(self, x):
        """The bivector B with exp(B) = x / sqrt(x ~x) (for a versor x), by Newton's method on
        exp from x's bivector part, with exp's Jacobian by forward differences: no closed form,
        any algebra.  Where it does not converge (x has no logarithm, or is far from it) the last
        iterate is not a logarithm: ValueError (the value is undefined there, as for an inverse
        that does not exist)."""
        norm = float((x * ~x)(0))
        target = x / np.sqrt(abs(norm)) if norm else x
        basis = [self.mv({b: 1.0}) for b in sup.blades_of(sup.of_grades(self.alg, [2]))]
        b = target(2)
        size = np.sqrt(abs(float((b * ~b)(0))))
        if size > 0:                           # a simple rotor's log, to start from
            b = b * (np.arctan2(size, float(target(0))) / size)
        last = np.inf
        for _ in range(10):
            here = self.exp(b).value
            residual = target.value - here
            size = np.abs(residual).max()
            if size < 1e-13 or size > 0.5 * last:   # converged, or not converging as Newton does
                break
            last = size
            h = 1e-7                           # forward differences: each step gains about 7 digits
            jac = np.stack([(self.exp(b + h * e).value - here) / h for e in basis], axis=1)
            step = np.linalg.lstsq(jac, residual, rcond=None)[0]
            b = b + sum((float(s) * e for s, e in zip(step, basis)), 0 * b)
            if np.abs(step).max() < 1e-14 * (1 + np.abs(b.value).max()):
                break
        if not np.abs((target - self.exp(b)).value).max() <= 1e-9 * (1 + np.abs(target.value).max()):
            raise ValueError("log: no bivector whose exp is this value was found")
        return b

    def pointwise(self, e, a):
        k, x = e.kind, a[0]
        scalar = self.layout.scalar
        if k == "add":
            return x + a[1]
        if k == "sub":
            return x - a[1]
        if k == "neg":
            return -x
        if k == "copy":
            return x
        if k == "gp":
            return x * a[1]
        if k == "commutator":
            return (x * a[1] - a[1] * x) / 2
        if k == "op":
            return x ^ a[1]
        if k == "lc":
            return x.lc(a[1])
        if k == "regressive":
            return x & a[1]
        if k == "div":
            return x * a[1].inv()
        if k == "sandwich":
            return x * a[1] * x.inv()
        if k == "reverse":
            return ~x
        if k == "involute":
            return x.gradeInvol()
        if k == "dual":
            return x.right_complement()
        if k == "grade":
            return x(e.attrs["grades"][0])
        if k == "even":
            return x.even
        if k == "odd":
            return x.odd
        if k == "scalar":
            return x(0)
        if k == "inv":
            return x.inv()
        if k == "norm2":
            return (x * ~x)(0)
        if k == "norm":
            return scalar * np.sqrt(abs(float((x * ~x)(0))))
        if k == "normalize":
            return x / np.sqrt(abs(float((x * ~x)(0))))
        if k == "exp":
            return self.exp(x)
        if k == "log":
            return self.log(x)
        if k == "gate":
            return x * (1 / (1 + np.exp(-float(a[1](0)))))
        if k == "component":
            return scalar * (e.attrs["sign"] * float(x.value[self.index[e.attrs["blade"]]]))
        s = float(x(0))
        fn = {"sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "abs": abs,
              "sigmoid": lambda t: 1 / (1 + np.exp(-t)), "relu": lambda t: max(t, 0.0)}[k]
        return scalar * float(fn(s))
