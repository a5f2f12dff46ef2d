"""The syntax tree of a .phg file: what was written, with where it was written."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from phg.diagnostics import Span


# ---- units --------------------------------------------------------------------------------
@dataclass
class UnitName:
    name: str
    span: Span


@dataclass
class UnitOne:
    value: int
    span: Span


@dataclass
class UnitBinary:
    op: str            # "*" or "/"
    left: "UnitExpr"
    right: "UnitExpr"
    span: Span


@dataclass
class UnitPower:
    base: "UnitExpr"
    exponent: Fraction
    span: Span


UnitExpr = UnitName | UnitOne | UnitBinary | UnitPower


# ---- expressions --------------------------------------------------------------------------
@dataclass
class Literal:
    value: float
    unit: UnitExpr | None
    span: Span


@dataclass
class Name:
    id: str
    span: Span


@dataclass
class Unary:
    op: str            # neg, reverse
    operand: "Expr"
    span: Span


@dataclass
class Binary:
    op: str            # add sub mul div wedge lcontract regressive sandwich
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass
class Call:
    func: str
    args: list["Expr"]
    span: Span
    func_span: Span


@dataclass
class Index:
    base: "Expr"
    indices: list["Expr"]
    span: Span


@dataclass
class Component:
    base: "Expr"
    blade: str
    span: Span
    blade_span: Span


Expr = Literal | Name | Unary | Binary | Call | Index | Component


# ---- types --------------------------------------------------------------------------------
@dataclass
class TypeExpr:
    kind: str                    # a type name, "Grades" or "Blades"
    args: list                   # grades (int) or blade names (str) with their spans
    unit: UnitExpr | None
    span: Span


# ---- declarations -------------------------------------------------------------------------
@dataclass
class AlgebraDecl:
    name: str
    signature: tuple[int, ...] | None          # Cl(p, q, r)
    basis: list[tuple[str, int, Span]] | None  # basis(g0: +1, ...)
    units: list[tuple[str, UnitExpr, Span]]
    span: Span
    name_span: Span


@dataclass
class UnitDecl:
    name: str
    unit: UnitExpr
    span: Span


@dataclass
class ConstDecl:
    name: str
    type: TypeExpr | None
    value: Expr
    span: Span


@dataclass
class DefArg:
    name: str
    type: TypeExpr | None
    span: Span


@dataclass
class DefDecl:
    name: str
    args: list[DefArg]
    returns: TypeExpr | None
    body: Expr
    span: Span


@dataclass
class Statement:
    kind: str                    # param input let output loss
    name: str | None
    shape: list[tuple[int | str, Span]] | None
    type: TypeExpr | None
    value: Expr | None
    span: Span


@dataclass
class Ensure:
    kind: str                    # grade, unit, versor
    expr: Expr
    grades: list[int] | None
    unit: UnitExpr | None
    span: Span


@dataclass
class Numeric:
    format: str                  # numeric FORMAT (LANGUAGE §11)
    format_span: Span
    span: Span


@dataclass
class Symmetry:
    group: str                   # symmetry O(3) except a, b (LANGUAGE §20): O, SO, E, SE
    n: int
    group_span: Span
    excepted: list[tuple[str, Span]]     # inputs that do not transform
    span: Span


@dataclass
class ModelDecl:
    name: str
    algebra: str
    algebra_span: Span
    body: list[Statement | Ensure | Numeric | Symmetry]
    span: Span


@dataclass
class TrainItem:
    key: str                     # optimizer batch steps epochs accumulate seed memory
    value: object
    span: Span
    kwargs: dict[str, tuple[float, Span]] = field(default_factory=dict)
    value_span: Span | None = None


@dataclass
class TrainDecl:
    model: str
    items: list[TrainItem]
    span: Span
    model_span: Span


@dataclass
class Assignment:
    """`target = expr`, `target += expr` or `target -= expr` in a reset or an `on` block."""
    target: str
    op: str                      # "=", "+=", "-="
    value: Expr
    span: Span
    target_span: Span


@dataclass
class SpikesInput:
    """`input NAME[N]: spikes [carrying X: TYPE]`: a spike train per channel, each spike with a
    value of X (a payload) where it carries one."""
    name: str
    shape: list[tuple[int | str, Span]]
    span: Span
    payload: Statement | None = None


@dataclass
class Neurons:
    """`neurons NAME[N] { state ...; dX/dt = ...; spike A > B; reset { ... } }`."""
    name: str
    shape: list[tuple[int | str, Span]]
    states: list[Statement]                      # kind "state": the type and the initial value
    odes: list[tuple[str, Expr, Span]]           # (state, derivative, span of the statement)
    spike: tuple[Expr, str, Expr, Span] | None   # (left, ">" or "<", right, span)
    reset: list[Assignment]
    span: Span
    reset_span: Span | None = None


@dataclass
class Trace:
    """`trace NAME: TYPE = init decays TAU`: a synapse's trace, decaying exactly between events."""
    name: str
    type: TypeExpr
    value: Expr | None
    tau: Expr
    span: Span


@dataclass
class OnBlock:
    """`on pre { ... }` or `on post { ... }`: what a spike of that side does."""
    side: str
    side_span: Span
    body: list[Assignment]
    span: Span


@dataclass
class Synapses:
    """`synapses NAME from SOURCE to TARGET { param ...; trace ...; on pre {...}; on post {...} }`."""
    name: str
    source: str
    source_span: Span
    target: str
    target_span: Span
    params: list[Statement]
    traces: list[Trace]
    on: list[OnBlock]
    span: Span


@dataclass
class NetworkDecl:
    name: str
    algebra: str
    algebra_span: Span
    body: list[SpikesInput | Neurons | Synapses]
    span: Span


@dataclass
class SimulateDecl:
    network: str
    items: list[TrainItem]       # dt (a Literal), method (a name), seed
    span: Span
    network_span: Span


Decl = AlgebraDecl | UnitDecl | ConstDecl | DefDecl | ModelDecl | TrainDecl | NetworkDecl | SimulateDecl


@dataclass
class File:
    path: str
    source: str
    decls: list[Decl]
