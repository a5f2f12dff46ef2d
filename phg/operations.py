"""The operations of the language, one specification per hyperedge kind (the registry): its
sources, its support rule (a term of phg.rules, read over integers here and over Z3 bit-vectors
by verifier.smt), its unit rule, its versor rule (phg.versors), its meaning (what it computes, in
any number system: phg.evaluation), and the built-in function that writes it, with the arguments it
takes.  A stage that meets a kind the registry lacks raises; a kind registered without a support,
unit or versor rule or a meaning is refused when this module is imported.

The support rule must over-approximate: a blade outside the computed support has a zero
coefficient for every input of the given supports (tests check this against clifford).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from . import rules as r
from . import sparse as sp
from . import support as sup
from . import symmetry as sym
from . import versors
from .algebra import Algebra
from .bivectors import closed_form
from .units import DIMENSIONLESS, Unit


@dataclass(frozen=True)
class Operand:
    """What the rules need to know of a source value."""
    support: int
    versor: str | None = None              # why it is a versor (phg.versors), if it is one
    unit: Unit | None = None


class UnitClash(ValueError):
    """Operands whose units cannot combine; `operands` are the source positions involved."""

    def __init__(self, message: str, operands: tuple[int, ...]):
        super().__init__(message)
        self.operands = operands


# ---- units ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitRule:
    """An operation's unit rule, linear in the exponent vectors: unit(target) = prod unit(source_i)
    ** powers[i] * offset, provided the operands in `equal` have one unit and those in
    `dimensionless` have none.  The unit checker solves these; constants evaluate them."""
    powers: tuple[Fraction, ...]
    offset: Unit = DIMENSIONLESS
    equal: tuple[int, ...] = ()
    dimensionless: tuple[int, ...] = ()


def _units(*powers, offset=None, equal=(), dimensionless=()) -> Callable[[Algebra, dict], UnitRule]:
    """A unit rule of fixed powers; `offset` (of the algebra and the attributes) a unit beside them."""
    ks = tuple(Fraction(k) for k in powers)
    return lambda alg, attrs: UnitRule(ks, offset(alg, attrs) if offset else DIMENSIONLESS, tuple(equal),
                                       tuple(dimensionless))


SAME_UNIT = _units(1)
PRODUCT_UNIT = _units(1, 1)
DIMENSIONLESS_ARGUMENT = _units(0, dimensionless=(0,))
_PSEUDOSCALAR = lambda alg, attrs: alg.blade_unit(alg.full) ** -1  # noqa: E731


# ---- arguments ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Argument:
    """What an argument's support must lie within (any one of `within`), and how a violation is
    reported by the lowering: "<says>, found <what it is>", the expected thing, a hint."""
    i: int
    within: tuple[r.Mask, ...]
    says: str
    expected: str
    hint: str | None = None

    def admits(self, alg: Algebra, support: int) -> bool:
        return any(support & ~m(alg, {}) == 0 for m in self.within)


# ---- channels and costs -----------------------------------------------------------------------------
class ShapeClash(ValueError):
    """Sources whose channels an operation cannot combine; `expected` says what would do."""

    def __init__(self, message: str, expected: str):
        super().__init__(message)
        self.expected = expected


def _mix_shape(shapes: list[tuple]) -> tuple:
    w, x = shapes
    if len(w) != 2 or x != w[1:]:
        raise ShapeClash(f"mix(W, x) needs W with channels [a, b] and x with [b]; got {list(w)} and {list(x)}",
                         f"x with channels [{w[1]}]" if len(w) == 2 else "W with two channel sizes")
    return w[:1]


def blades(v) -> int:
    """A value's blades, one at least (a zero value is one coefficient)."""
    return max(1, v.support.bit_count())


def channels(v) -> int:
    return math.prod(v.shape)


@dataclass(frozen=True)
class Cost:
    """What an operation costs the size budgets, from its sources' and target's values (channels
    and blades): `reduced`, the scalar terms one coefficient of its result adds up over channels
    (dsl.budget); `unrolled`, the scalar products the fused strategy unrolls for it per sample
    (phg.plan.loops.unrolled, the code size that strategy's build time grows with)."""
    reduced: Callable[[list, object], int] = lambda srcs, t: 0
    unrolled: Callable[[list, object, dict], int] = lambda srcs, t, attrs: channels(t) * blades(t)


PRODUCT_COST = Cost(unrolled=lambda s, t, a: channels(t) * blades(s[0]) * blades(s[1]))
SUM_COST = Cost(reduced=lambda s, t: channels(s[0]) * blades(s[0]), unrolled=lambda s, t, a: channels(s[0]) * blades(s[0]))


# ---- the registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    kind: str
    sources: int                                   # the hyperedge's sources
    support: r.Rule
    unit: Callable[[Algebra, dict], UnitRule]
    versor: Callable[[Algebra, list, list, int], str | None]     # a rule of phg.versors
    # what it computes (phg.evaluation): meaning(evaluator, edge, args), args one channel's sources
    # (multivectors; a grouped source's a list of them), or with `whole` every channel of each source
    meaning: Callable[[object, object, list], dict] | None = None
    whole: bool = False
    folds: bool = True                             # whether constants of this kind are folded
    call: int | None = None                        # the arguments of its built-in function, if it has one
    arguments: tuple[Argument, ...] = ()
    # its result's channels from its sources' (None: theirs, broadcast); may raise ShapeClash
    shape: Callable[[list[tuple]], tuple] | None = None
    cost: Cost = Cost()
    # its op in the loop plan (phg.plan.loops): pointwise (one channel's scalar code), contract (a
    # channel mix), linear, reduce (a sum over channels), select (a channel index)
    loop: str = "pointwise"
    # why the code generator does not emit it in an algebra, or None where it does
    ungenerated: Callable[[Algebra], str | None] = lambda alg: None
    # a pointwise op's sources read as groups of coefficients per channel: source -> group size
    grouped: Callable[[dict], dict] = lambda attrs: {}
    # its equivariance rule (phg.symmetry): (group, attrs, the sources' parities) -> (parity, theorem)
    # or (None, why not)
    equivariance: Callable | None = None


OPERATIONS: dict[str, Operation] = {}


def register(op: Operation) -> Operation:
    """Adds op to the registry; refuses an entry without a support, unit or versor rule or a meaning."""
    if not isinstance(op.support, r.Rule):
        raise TypeError(f"operation {op.kind!r} has no support rule (a term of phg.rules)")
    if not callable(op.unit):
        raise TypeError(f"operation {op.kind!r} has no unit rule")
    if not callable(op.versor):
        raise TypeError(f"operation {op.kind!r} has no versor rule (phg.versors.never where none applies)")
    if not callable(op.meaning):
        raise TypeError(f"operation {op.kind!r} has no meaning (a function of phg.evaluation's evaluator)")
    if not callable(op.equivariance):
        raise TypeError(f"operation {op.kind!r} has no equivariance rule (phg.symmetry)")
    if op.kind in OPERATIONS:
        raise TypeError(f"operation {op.kind!r} is registered twice")
    OPERATIONS[op.kind] = op
    return op


def operation(kind: str) -> Operation:
    """The registry's entry for kind; a KeyError naming it where there is none."""
    try:
        return OPERATIONS[kind]
    except KeyError:
        raise KeyError(f"no operation {kind!r} in the registry (phg.operations)") from None


# ---- meanings (phg.evaluation): ev the evaluator, e the hyperedge, a its sources ------------------
def _product(kind: str):
    return lambda ev, e, a: ev.product(kind, a[0], a[1])


def _keep(mask: r.Mask):
    return lambda ev, e, a: sp.keep(a[0], mask(ev.alg, e.attrs))


def _div(ev, e, a) -> dict:
    return ev.product("gp", a[0], ev.inverse(e, 1, a[1]))


def _sandwich(ev, e, a) -> dict:
    inverse = ev.inverse(e, 0, a[0])
    return ev.product("gp", ev.product("gp", a[0], a[1]), inverse)


def _norm2(ev, e, a) -> dict:
    return sp.keep(ev.product("gp", a[0], sp.reverse(ev.alg, a[0])), sup.SCALAR)


def _component(ev, e, a) -> dict:
    c = a[0].get(e.attrs["blade"], 0)
    return {0: c if e.attrs["sign"] > 0 else -c}


def _sum(ev, e, srcs) -> dict:
    total: dict = {}
    for m in srcs[0].values():
        total = sp.add(total, m)
    return {(): total}


def _index(ev, e, srcs) -> dict:
    n = len(e.attrs["index"])
    return {ch[n:]: m for ch, m in srcs[0].items() if list(ch[:n]) == e.attrs["index"]}


def _mix(ev, e, srcs) -> dict:
    w, x = srcs
    out: dict = {}
    for (i, j), wm in sorted(w.items()):           # row by row, each row's terms in order
        out[(i,)] = sp.add(out.get((i,), {}), ev.product("gp", wm, x[(j,)]))
    return out


def _linear(ev, e, srcs) -> dict:
    w, x = srcs
    grades, first = e.attrs["grades"], e.attrs.get("offset", 0)
    out: dict = {}
    for (i, j, g), wm in w.items():
        if 0 <= g - first < len(grades):             # else another grade pair's weights
            part = ev.product("gp", wm, sp.project(ev.alg, x[(j,)], [grades[g - first]]))
            out[(i,)] = sp.add(out.get((i,), {}), part)
    return out


def _gradegate(ev, e, a) -> dict:
    """One channel: x's grade g_k times sigmoid(s_k)."""
    out: dict = {}
    for g, s in zip(e.attrs["grades"], a[1]):
        out = sp.add(out, ev.n.gate(sp.project(ev.alg, a[0], [g]), s))
    return out


def _bilinear(ev, e, a) -> dict:
    """One channel: each grade path's product of x's and y's grades, weighted by its Scalar."""
    out: dict = {}
    for (ga, gb, k), w in zip(e.attrs["paths"], a[0]):
        made = ev.product("gp", sp.project(ev.alg, a[1], [ga]), sp.project(ev.alg, a[2], [gb]))
        out = sp.add(out, ev.product("gp", w, sp.project(ev.alg, made, [k])))
    return out


def _scalar_argument(kind: str) -> tuple[Argument, ...]:
    return (Argument(0, (r.SCALAR,), f"{kind} takes a Scalar", "a Scalar", "take scalar(...) or norm(...) first"),)


_GATE_ARGUMENT = (Argument(1, (r.SCALAR,), "gate(x, s) needs a Scalar s", "a Scalar"),)

register(Operation("add", 2, r.Union(r.Arg(0), r.Arg(1)), _units(1, 0, equal=(0, 1)), versors.plus_zero,
                   lambda ev, e, a: sp.add(a[0], a[1]), equivariance=sym.same("add")))
register(Operation("sub", 2, r.Union(r.Arg(0), r.Arg(1)), _units(1, 0, equal=(0, 1)), versors.plus_zero,
                   lambda ev, e, a: sp.add(a[0], a[1], -1), equivariance=sym.same("sub")))
for _kind in ("gp", "op", "lc"):
    register(Operation(_kind, 2, r.Product(_kind, r.Arg(0), r.Arg(1)), PRODUCT_UNIT,
                       versors.product if _kind == "gp" else versors.never, _product(_kind), cost=PRODUCT_COST, equivariance=sym.bilinear(_kind)))
# (x y - y x) / 2, the Lie bracket: Bivectors with Bivectors give Bivectors (phg.algebra's table)
register(Operation("commutator", 2, r.Product("commutator", r.Arg(0), r.Arg(1)), PRODUCT_UNIT, versors.never,
                   _product("commutator"), call=2, cost=PRODUCT_COST, equivariance=sym.bilinear("commutator")))
# The meet removes one copy of the pseudoscalar's basis vectors.
register(Operation("regressive", 2, r.Product("regressive", r.Arg(0), r.Arg(1)), _units(1, 1, offset=_PSEUDOSCALAR),
                   versors.never, _product("regressive"), cost=PRODUCT_COST, equivariance=sym.bilinear("regressive")))
register(Operation("div", 2, r.Product("gp", r.Arg(0), r.Inverse(1)), _units(1, -1), versors.product, _div,
                   cost=PRODUCT_COST, equivariance=sym.times()))
register(Operation("sandwich", 2, r.Sandwich(0, 1), _units(0, 1), versors.product, _sandwich,   # V x V^-1: V's unit cancels
                   cost=Cost(unrolled=lambda s, t, a: channels(t) * blades(s[0]) ** 2 * blades(s[1])), equivariance=sym.sandwich))
register(Operation("neg", 1, r.Arg(0), SAME_UNIT, versors.involution, lambda ev, e, a: sp.scale(a[0], -1), equivariance=sym.keeps("the action is linear")))
register(Operation("reverse", 1, r.Arg(0), SAME_UNIT, versors.involution, lambda ev, e, a: sp.reverse(ev.alg, a[0]), equivariance=sym.linear("reverse")))
register(Operation("involute", 1, r.Arg(0), SAME_UNIT, versors.involution,
                   lambda ev, e, a: sp.involute(ev.alg, a[0]), call=1, equivariance=sym.linear("involute")))
register(Operation("copy", 1, r.Arg(0), SAME_UNIT, versors.involution, lambda ev, e, a: dict(a[0]), folds=False, equivariance=sym.keeps("a copy")))
register(Operation("inv", 1, r.Inverse(0), _units(-1), versors.involution, lambda ev, e, a: ev.inverse(e, 0, a[0]),
                   call=1, equivariance=sym.keeps()))
register(Operation("grade", 1, r.Keep(r.Arg(0), r.grades()), SAME_UNIT, versors.projection, _keep(r.grades()), call=2, equivariance=sym.projection(r.grades())))
register(Operation("even", 1, r.Keep(r.Arg(0), r.parity(0)), SAME_UNIT, versors.projection, _keep(r.parity(0)), call=1, equivariance=sym.projection(r.parity(0))))
register(Operation("odd", 1, r.Keep(r.Arg(0), r.parity(1)), SAME_UNIT, versors.projection, _keep(r.parity(1)), call=1, equivariance=sym.projection(r.parity(1))))
register(Operation("scalar", 1, r.Keep(r.Arg(0), r.SCALAR), SAME_UNIT, versors.projection, _keep(r.SCALAR), call=1, equivariance=sym.projection(r.SCALAR)))
register(Operation("dual", 1, r.Dual(r.Arg(0)), _units(1, offset=_PSEUDOSCALAR), versors.never,
                   lambda ev, e, a: sp.dual(ev.alg, a[0]), call=1, equivariance=sym.linear("dual")))
register(Operation("norm2", 1, r.Keep(r.Product("gp", r.Arg(0), r.Arg(0)), r.SCALAR), _units(2), versors.never, _norm2,
                   call=1, equivariance=sym.invariant("x ~x is invariant: the action commutes with reverse and products, and fixes scalars")))
register(Operation("norm", 1, r.Keep(r.Product("gp", r.Arg(0), r.Arg(0)), r.SCALAR), SAME_UNIT, versors.never,
                   lambda ev, e, a: ev.norm(e, a[0]), call=1, equivariance=sym.invariant("|x ~x|^(1/2) is invariant: the action commutes with reverse and products, and fixes scalars")))
register(Operation("normalize", 1, r.Arg(0), _units(0), versors.normalised, lambda ev, e, a: ev.n.normalize(a[0]),
                   call=1, equivariance=sym.keeps("x / |x|: the action keeps |x| and is linear")))
register(Operation("exp", 1, r.IfSupport(0, lambda s: s & ~sup.SCALAR == 0, r.Blades(r.SCALAR), r.Closure(r.Arg(0))),
                   DIMENSIONLESS_ARGUMENT, versors.exponential, lambda ev, e, a: ev.exp(e, a[0]), call=1,
                   arguments=(Argument(0, (r.SCALAR, r.of_grades(2)), "exp takes a Scalar or a Bivector",
                                       "a Scalar or a Bivector"),), equivariance=sym.series("exp")))
def _log_ungenerated(alg: Algebra) -> str | None:
    return None if closed_form(alg) else "only where exp has a closed form: G2, G3, 2D and 3D PGA"


register(Operation("log", 1, r.Keep(r.Closure(r.Arg(0)), r.of_grades(2)), DIMENSIONLESS_ARGUMENT, versors.never,
                   lambda ev, e, a: ev.log(e, a[0]), call=1, folds=False, ungenerated=_log_ungenerated,
                   arguments=(Argument(0, (r.parity(0),), "log takes a Rotor or Motor",
                                       "an even value (a Rotor or Motor)"),), equivariance=sym.series("log")))
register(Operation("sum", 1, r.Arg(0), SAME_UNIT, versors.never, _sum, whole=True, call=1,
                   shape=lambda shapes: (), cost=SUM_COST, loop="reduce", equivariance=sym.keeps("a sum over channels: the action is linear and acts on every channel alike")))
register(Operation("index", 1, r.Arg(0), SAME_UNIT, versors.channel, _index, whole=True, loop="select", equivariance=sym.keeps("a channel: the action acts on every channel alike")))
register(Operation("component", 1, r.IfBlade(0, r.BLADE, r.Blades(r.SCALAR), r.Blades(r.NOTHING)),
                   _units(1, offset=lambda alg, attrs: alg.blade_unit(attrs["blade"]) ** -1), versors.never, _component, equivariance=sym.linear("component", lambda alg, attrs: attrs["blade"])))
register(Operation("mix", 2, r.Product("gp", r.Arg(0), r.Arg(1)), PRODUCT_UNIT, versors.never, _mix, whole=True,
                   folds=False, call=2, shape=_mix_shape, loop="contract",
                   cost=Cost(reduced=lambda s, t: s[0].shape[1] * blades(s[0]) * blades(s[1]),
                             unrolled=lambda s, t, a: channels(t) * s[0].shape[1] * blades(s[0]) * blades(s[1])), equivariance=sym.times("mix(W, x): products of the weights and the channels, summed: the parities multiply")))
register(Operation("gate", 2, r.Arg(0), _units(1, 0, dimensionless=(1,)), versors.scaled,
                   lambda ev, e, a: ev.n.gate(a[0], a[1]), call=2, arguments=_GATE_ARGUMENT, equivariance=sym.gate))
register(Operation("gradegate", 2, r.Arg(0), _units(1, 0, dimensionless=(1,)), versors.never,   # s: [*x's channels, K]
                   _gradegate, folds=False, arguments=_GATE_ARGUMENT, shape=lambda shapes: shapes[0],
                   grouped=lambda attrs: {1: len(attrs["grades"])}, equivariance=sym.gate))
# scalar weights per grade of x
register(Operation("linear", 2, r.Keep(r.Product("gp", r.Arg(0), r.Arg(1)), r.grades(), mask_first=True), PRODUCT_UNIT,
                   versors.never, _linear, whole=True, folds=False, call=2, shape=lambda shapes: shapes[0][:1],
                   loop="linear",   # [Cout], by layer()
                   cost=Cost(reduced=lambda s, t: s[0].shape[1] * blades(s[1]),
                             unrolled=lambda s, t, a: channels(t) * s[0].shape[1] * blades(s[1])), equivariance=sym.times("linear(W, x): the weights times grade projections of the channels, summed: the action keeps grades, the parities multiply")))
register(Operation("bilinear", 3, r.IfBlade(0, r.SCALAR_BLADE, r.Paths(1, 2), r.Blades(r.NOTHING)), _units(1, 1, 1),
                   versors.never, _bilinear, folds=False, call=3, shape=lambda shapes: shapes[1],  # x's [C], by layer()
                   cost=Cost(unrolled=lambda s, t, a: channels(t) * len(a["paths"]) * blades(s[1]) * blades(s[2])),
                   grouped=lambda attrs: {0: len(attrs["paths"])}, equivariance=sym.times("bilinear(w, x, y): weights times grade projections of geometric products: the action keeps grades and commutes with products, the parities multiply")))
# whether each function of a Scalar is odd or even (its equivariance rule, phg.symmetry)
_SYMMETRY = {"sqrt": "neither", "sin": "odd", "cos": "even", "tanh": "odd", "sigmoid": "neither", "relu": "neither",
             "gelu": "neither", "abs": "even"}
for _kind in ("sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "gelu", "abs"):
    register(Operation(_kind, 1, r.Blades(r.SCALAR),
                       _units(Fraction(1, 2)) if _kind == "sqrt" else SAME_UNIT if _kind == "abs" else DIMENSIONLESS_ARGUMENT,
                       versors.never, lambda ev, e, a: {0: ev.n.function(e.kind, a[0].get(0, 0))}, call=1,
                       arguments=_scalar_argument(_kind), equivariance=sym.scalar_function(_kind, _SYMMETRY[_kind])))

# The language's built-in functions that write an operation, with their arguments.
CALLS = {op.kind: op.call for op in OPERATIONS.values() if op.call is not None}


# ---- readings -----------------------------------------------------------------------------------
def infer_support(alg: Algebra, kind: str, ops: list[Operand], attrs: dict) -> int:
    return r.support(operation(kind).support, alg, [o.support for o in ops], [o.versor for o in ops], attrs)


def unit_rule_of(alg: Algebra, kind: str, attrs: dict) -> UnitRule:
    return operation(kind).unit(alg, attrs)


def versor_reason(alg: Algebra, kind: str, versors_: list[str | None], supports: list[int], result: int) -> str | None:
    """The theorem making the result of `kind` a versor, given its sources' versor marks (and the
    result's support, for projections)."""
    return operation(kind).versor(alg, versors_, supports, result)


def unit_rule(alg: Algebra, kind: str, ops: list[Operand], attrs: dict) -> Unit | None:
    """The unit of an operation on operands of known units (None if one is unknown)."""
    units = [o.unit for o in ops]
    if any(u is None for u in units):
        return None
    rule = unit_rule_of(alg, kind, attrs)
    if rule.equal and len({units[i] for i in rule.equal}) > 1:
        i, j = rule.equal
        raise UnitClash(f"cannot {'add' if kind == 'add' else 'subtract'} {units[j]} and {units[i]}", rule.equal)
    for i in rule.dimensionless:
        if not units[i].dimensionless:
            raise UnitClash(f"{kind} needs a dimensionless argument, not {units[i]}", (i,))
    out = rule.offset
    for u, k in zip(units, rule.powers):
        out = out * u ** k
    return out
