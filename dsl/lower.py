"""Lowering: syntax tree -> Program Hypergraph.

Resolves names and units, evaluates constants, inlines `def`s, checks channel shapes and makes each
operation one hyperedge annotated with its blade support.  Written types become claims for the
verifier; only parameter and input types are assumptions.
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np

from phg import deep
from phg import multivector as mv
from phg import support as sup
from phg.algebra import Algebra, AlgebraError
from phg.diagnostics import Note, PhgError, Span, did_you_mean
from phg.numeric import DEFAULT, FORMATS
from phg.evaluation import fold
from phg.hypergraph import Claim, Hypergraph, Value
from phg.hypergraph import Symmetry as HyperSymmetry
from phg.operations import (CALLS, Operand, ShapeClash, UnitClash, infer_support, operation, unit_rule,
                            versor_reason)
from phg.versors import constant_versor
from phg.network import METHODS, Network, NetworkBlock
from phg.program import OPTIMIZERS, Program, TrainSpec, hyper_problem
from phg.symmetry import SymmetryError, escapes
from phg.symmetry import group as symmetry_group
from phg.types import TypeProblem, ValueType, resolve
from phg.units import BASE_UNITS, DIMENSIONLESS, Unit, builtin_units

from . import ast
from .budget import MAX_LOWERING_NESTING, MAX_NETWORK_COEFFICIENTS, Budget, ProgramBudget
from .network import Deriver

# Built-in functions of LANGUAGE §5 and how many arguments each takes.
BUILTINS = CALLS                  # the built-in functions, with their arguments (phg.operations)
INITIALISERS = {"normal": 1, "uniform": 2}
BINARY_KINDS = {"add": "add", "sub": "sub", "mul": "gp", "div": "div", "wedge": "op",
                "lcontract": "lc", "regressive": "regressive", "sandwich": "sandwich"}
OPERATOR_TEXT = {"add": "+", "sub": "-", "gp": "*", "div": "/", "op": "^", "lc": "|",
                 "regressive": "&", "sandwich": ">>"}


def lower(file: ast.File) -> Program:
    return deep.call(lambda: _Lowerer(file).run())


def walk(expr):
    """Every sub-expression of expr, itself first, then each operand's in order (without recursion,
    so a sum of thousands of terms is walked too)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, ast.Unary):
            parts = [e.operand]
        elif isinstance(e, ast.Binary):
            parts = [e.left, e.right]
        elif isinstance(e, ast.Call):
            parts = e.args
        elif isinstance(e, ast.Index):
            parts = [e.base, *e.indices]
        elif isinstance(e, ast.Component):
            parts = [e.base]
        else:
            parts = []
        stack.extend(reversed(parts))


def refuse_ungenerated(graph: Hypergraph, source: str | None, why: str):
    """A located error at the first operation the code generator does not emit in the model's
    algebra (log where exp has no closed form)."""
    for e in graph.edges.values():
        reason = operation(e.kind).ungenerated(graph.algebra)
        if reason is not None:
            raise PhgError("type", f"{e.kind}() is not generated in {graph.algebra.name} ({reason}), and {why}", e.span,
                           expected=f"a model without {e.kind}() in {graph.algebra.name}; there it is checked only in "
                           "models without a loss that are not built", source=source)


class _Lowerer:
    def __init__(self, file: ast.File):
        self.file = file
        self.units = builtin_units()
        self.unit_decls: dict[str, ast.UnitDecl] = {}
        self._units_busy: list[str] = []
        self.algebras: dict[str, Algebra] = {}
        self.consts: dict[str, ast.ConstDecl] = {}
        self.defs: dict[str, ast.DefDecl] = {}
        self.models: dict[str, ast.ModelDecl] = {}
        self.trains: list[ast.TrainDecl] = []
        self.networks: dict[str, ast.NetworkDecl] = {}
        self.simulates: dict[str, ast.SimulateDecl] = {}
        self.evaluated_consts: set[str] = set()
        self.budget = ProgramBudget()          # the size of all models together (dsl.budget)

    def error(self, kind, message, span, expected=None, hint=None, notes=()) -> PhgError:
        return PhgError(kind, message, span, expected, hint, list(notes), self.file.source)

    # ---- declarations -------------------------------------------------------------------------
    def run(self) -> Program:
        self._collect()
        for decl in self.unit_decls.values():
            self.units[decl.name] = self.resolve_unit(decl.unit)
        algebra_decls = [d for d in self.file.decls if isinstance(d, ast.AlgebraDecl)]
        for decl in algebra_decls:
            self.algebras[decl.name] = self._algebra(decl)
        self._check_recursion()
        models = {name: _ModelBuilder(self, decl).build() for name, decl in self.models.items()}
        networks = {name: self._network(decl) for name, decl in self.networks.items()}
        for decl in self.simulates.values():
            self._simulate(decl, networks)
        self._check_unused_consts()
        trains = {}
        for decl in self.trains:
            spec = self._train(decl, models)
            trains[spec.model] = spec
        return Program(self.file.path, self.file.source, self.algebras, self.units, models, trains, networks)

    def _collect(self):
        namespaces = {"algebra": {}, "unit": {}, "value": {}, "model": {}, "train": {}, "simulate": {}}
        for d in self.file.decls:
            if isinstance(d, ast.AlgebraDecl):
                space, name, span = "algebra", d.name, d.name_span
            elif isinstance(d, ast.UnitDecl):
                space, name, span = "unit", d.name, d.span
                if d.name in self.units:
                    raise self.error("name", f"unit {d.name!r} is built in and cannot be redefined", d.span,
                                     expected="a new unit name")
                self.unit_decls[d.name] = d
            elif isinstance(d, ast.ConstDecl):
                space, name, span = "value", d.name, d.span
                self.consts[d.name] = d
            elif isinstance(d, ast.DefDecl):
                space, name, span = "value", d.name, d.span
                if d.name in BUILTINS or d.name in INITIALISERS:
                    raise self.error("name", f"def {d.name!r} would hide the built-in function {d.name}", d.span,
                                     expected="a name that is not a built-in")
                self.defs[d.name] = d
            elif isinstance(d, ast.ModelDecl):
                space, name, span = "model", d.name, d.span
                self.models[d.name] = d
            elif isinstance(d, ast.NetworkDecl):          # models and networks share one namespace
                space, name, span = "model", d.name, d.span
                self.networks[d.name] = d
            elif isinstance(d, ast.SimulateDecl):
                space, name, span = "simulate", d.network, d.span
                self.simulates[d.network] = d
            else:
                space, name, span = "train", d.model, d.span
                self.trains.append(d)
            previous = namespaces[space].get(name)
            if previous is not None:
                what = {"train": "a train block for", "simulate": "a simulate block for",
                        "model": "model or network"}.get(space, space)
                raise self.error("name", f"{what} {name!r} is declared twice", span,
                                 expected="each name declared once",
                                 notes=[Note(previous, "first declared here")])
            namespaces[space][name] = span

    def resolve_unit(self, u: ast.UnitExpr) -> Unit:
        if isinstance(u, ast.UnitName):
            if u.name in self.units:
                return self.units[u.name]
            if u.name in self.unit_decls:
                if u.name in self._units_busy:
                    cycle = " -> ".join(self._units_busy + [u.name])
                    raise self.error("recursion", f"unit {u.name!r} is defined in terms of itself ({cycle})", u.span,
                                     expected="a unit built from base units")
                self._units_busy.append(u.name)
                unit = self.resolve_unit(self.unit_decls[u.name].unit)
                self._units_busy.pop()
                self.units[u.name] = unit
                return unit
            known = list(self.units) + list(self.unit_decls)
            raise self.error("name", f"unknown unit {u.name!r}", u.span,
                             expected="a unit: " + " ".join(BASE_UNITS) + ", rad, 1 or a declared unit",
                             hint=did_you_mean(u.name, known))
        if isinstance(u, ast.UnitOne):
            if u.value != 1:
                raise self.error("syntax", f"the number {u.value} is not a unit", u.span,
                                 expected="a unit name or 1")
            return DIMENSIONLESS
        if isinstance(u, ast.UnitPower):
            return self.resolve_unit(u.base) ** u.exponent
        left, right = self.resolve_unit(u.left), self.resolve_unit(u.right)
        return left * right if u.op == "*" else left / right

    def _algebra(self, d: ast.AlgebraDecl) -> Algebra:
        units = {}
        for name, uexpr, span in d.units:
            if name in units:
                raise self.error("name", f"units() gives basis vector {name!r} twice", span, expected="each basis vector once")
            units[name] = self.resolve_unit(uexpr)
        try:
            if d.signature is not None:
                if len(d.signature) not in (2, 3):
                    raise self.error("algebra", f"Cl() takes 2 or 3 numbers, got {len(d.signature)}", d.span,
                                     expected="Cl(p, q, r)")
                alg = Algebra.from_signature(d.name, *d.signature, units=units)
            else:
                seen = {}
                for name, square, span in d.basis:
                    if name in seen:
                        raise self.error("algebra", f"basis vector {name!r} is declared twice", span,
                                         expected="distinct basis vector names",
                                         notes=[Note(seen[name], "first declared here")])
                    seen[name] = span
                alg = Algebra.from_basis(d.name, [(n, s) for n, s, _ in d.basis], units=units)
        except AlgebraError as exc:
            raise self.error("algebra", str(exc), d.span, expected="an algebra of at most 8 basis vectors, "
                             "squares +1, -1 or 0, at most one null vector") from None
        return alg

    def _check_recursion(self):
        calls = nx.DiGraph()
        calls.add_nodes_from(self.defs)
        for name, d in self.defs.items():
            for e in walk(d.body):
                if isinstance(e, ast.Call) and e.func in self.defs:
                    calls.add_edge(name, e.func)
        for cycle in sorted(nx.simple_cycles(calls), key=lambda c: self.defs[c[0]].span.line):
            start = min(cycle, key=lambda n: self.defs[n].span.line)
            i = cycle.index(start)
            ordered = cycle[i:] + cycle[:i] + [start]
            raise self.error("recursion", f"def {start!r} is recursive: {' -> '.join(ordered)}",
                             self.defs[start].span, expected="a def that does not call itself, directly or not",
                             hint="functions are inlined at each call, so recursion has no end")

    def _check_unused_consts(self):
        unused = [c for c in self.consts if c not in self.evaluated_consts]
        if not unused:
            return
        alg = next(iter(self.algebras.values()), None) or Algebra.from_signature("<scalar>", 0, 0, 0)
        builder = _ModelBuilder(self, None, alg)
        for name in unused:
            builder.const(name, self.consts[name].span)

    # ---- training -----------------------------------------------------------------------------
    def _once(self, items: list[ast.TrainItem]) -> list[ast.TrainItem]:
        """The settings of a train or simulate block, each key at most once."""
        seen: dict[str, Span] = {}
        for item in items:
            if item.key in seen:
                raise self.error("syntax", f"{item.key!r} is set twice", item.span, expected="each setting once",
                                 notes=[Note(seen[item.key], "first set here")])
            seen[item.key] = item.span
        return items

    def _network(self, d: ast.NetworkDecl) -> Network:
        """A network's blocks (phg.dsl.network), each lowered as a model."""
        if d.algebra not in self.algebras:
            raise self.error("name", f"unknown algebra {d.algebra!r}", d.algebra_span,
                             expected="an algebra declared with `algebra NAME = ...`",
                             hint=did_you_mean(d.algebra, self.algebras))
        deriver = Deriver(d, self.file.source)
        blocks = deep.call(deriver.run)
        sizing = _ModelBuilder(self, None, self.algebras[d.algebra])
        size = lambda item: math.prod(sizing.shape(item.shape))  # noqa: E731
        for item in d.body:
            if not isinstance(item, ast.Synapses) and len(item.shape) != 1:
                raise self.error("shape", f"{item.name} has {len(item.shape)} channel sizes", item.shape[-1][1],
                                 expected="one size: the number of spike trains or neurons")
        sizes = {k: size(v) for k, v in {**deriver.inputs, **deriver.groups}.items()}
        total = 0

        def count(n: int, what: str, span: Span):
            nonlocal total
            total += n
            if total > MAX_NETWORK_COEFFICIENTS:
                raise self.error("size", f"network {d.name} is too large: it holds {total:,} numbers by {what}", span,
                                 expected=f"at most {MAX_NETWORK_COEFFICIENTS:,} numbers (every variable's rows times "
                                 "components, a synapse group's row per source channel and target, 8 a neuron for "
                                 "its spikes)", hint="use fewer neurons or channels")
        for item in d.body:
            if isinstance(item, ast.Synapses):
                rows = sizes.get(item.source, 0) * sizes.get(item.target, 0)
                count(rows, f"synapses {item.name}", item.span)            # the time of each row's last event
            else:
                rows = sizes[item.name]
                count(8 * rows if isinstance(item, ast.Neurons) else 0, item.name, item.span)
            for v in deriver.variables.get(item.name, {}).values():
                count(rows * sup.popcount(sizing.value_type(v.type).support), f"{item.name}'s {v.name}", v.span)
        lowered = [NetworkBlock(b.role, b.owner, _ModelBuilder(self, b.model).build(), b.reads, b.writes)
                   for b in blocks]
        for b in (b for b in lowered if b.role == "init"):          # its outputs: the traces' time constants
            for name, vid in b.graph.outputs.items():
                tau = b.graph.values[vid]
                if tau.const is None or not tau.const[0] > 0:
                    what = "that is not a constant" if tau.const is None else f"of {tau.const[0]:g} s"
                    raise self.error("type", f"trace {name.removeprefix('tau ')} decays with a time constant {what}",
                                     tau.span, expected="a constant > 0 in s, such as 0.02[s] or a const")
        return Network(d.name, d.algebra, {k: size(v) for k, v in deriver.inputs.items()},
                       {k: size(v) for k, v in deriver.groups.items()},
                       {k: (v.source, v.target) for k, v in deriver.synapses.items()},
                       {owner: [(v.name, v.kind) for v in vs.values()] for owner, vs in deriver.variables.items()},
                       lowered)

    def _simulate(self, d: ast.SimulateDecl, networks: dict[str, Network]):
        if d.network not in networks:
            raise self.error("name", f"simulate names unknown network {d.network!r}", d.network_span,
                             expected="a declared network", hint=did_you_mean(d.network, networks))
        net = networks[d.network]
        net.simulate_span = d.span
        for item in self._once(d.items):
            if item.key == "dt":
                lit = item.value
                unit = self.resolve_unit(lit.unit) if lit.unit is not None else DIMENSIONLESS
                if unit != Unit.base("s"):
                    raise self.error("unit", f"dt is in {unit}", item.value_span, expected="a time step in s, "
                                     "such as 0.0001[s]")
                if not lit.value > 0:
                    raise self.error("type", f"dt must be positive, got {lit.value:g}", item.value_span,
                                     expected="a time step > 0")
                net.dt = lit.value
            elif item.key == "method":
                if item.value not in METHODS:
                    raise self.error("name", f"unknown integration method {item.value!r}", item.value_span,
                                     expected=" or ".join(METHODS), hint=did_you_mean(item.value, METHODS))
                net.method = item.value
            else:
                net.seed = item.value

    def _train(self, d: ast.TrainDecl, models: dict[str, Hypergraph]) -> TrainSpec:
        if d.model not in models:
            raise self.error("name", f"train names unknown model {d.model!r}", d.model_span,
                             expected="a declared model", hint=did_you_mean(d.model, models))
        if models[d.model].loss is None:
            raise self.error("type", f"model {d.model} has no loss to train", d.model_span,
                             expected="a `loss EXPR` statement in the model")
        spec = TrainSpec(d.model, span=d.span)
        seen = {item.key: item.span for item in self._once(d.items)}
        for item in d.items:
            self._train_item(spec, item)
        spec.written = tuple(seen)
        numeric = FORMATS[models[d.model].numeric]
        if numeric.is_posit and spec.accumulate == "float":
            raise self.error("type", f"model {d.model} computes in {numeric.name}, whose batch sums are fused in "
                             "its quire", seen["accumulate"], expected="accumulate exact (the default) for a posit "
                             "format", hint="remove `accumulate float`")
        if spec.steps is not None and spec.epochs is not None:
            raise self.error("syntax", "give either steps or epochs, not both", d.span, expected="steps N or epochs N")
        return spec

    def _train_item(self, spec: TrainSpec, item: ast.TrainItem):
        if item.key == "optimizer":
            if item.value not in OPTIMIZERS:
                raise self.error("name", f"unknown optimizer {item.value!r}", item.value_span,
                                 expected="sgd, adam, prm or cma", hint=did_you_mean(item.value, OPTIMIZERS))
            spec.optimizer = item.value
            spec.hyper = dict(OPTIMIZERS[item.value])
            for key, (value, span) in item.kwargs.items():
                if key not in spec.hyper:
                    raise self.error("name", f"{item.value} has no setting {key!r}", span,
                                     expected=", ".join(spec.hyper), hint=did_you_mean(key, spec.hyper))
                problem = hyper_problem(key, value)
                if problem is not None:
                    raise self.error("type", problem[0], span, expected=problem[1])
                spec.hyper[key] = value
        elif item.key in ("batch", "steps", "epochs"):
            if item.value < 1:
                raise self.error("type", f"{item.key} must be at least 1, got {item.value}", item.value_span,
                                 expected="a positive integer")
            setattr(spec, item.key, item.value)
        elif item.key == "accumulate":
            if item.value not in ("exact", "float"):
                raise self.error("name", f"unknown accumulation {item.value!r}", item.value_span,
                                 expected="exact or float", hint=did_you_mean(item.value, ["exact", "float"]))
            spec.accumulate = item.value
        elif item.key == "seed":
            spec.seed = item.value
        elif item.key == "memory":
            if not item.value > 0:
                raise self.error("type", f"the memory factor must be positive, got {item.value:g}", item.span,
                                 expected="memory <= K * inference with K > 0")
            spec.memory_factor = item.value
            spec.memory_span = item.span


class _ModelBuilder:
    """Lowers one model's statements (or, with decl None, constants alone) into a hypergraph."""

    def __init__(self, low: _Lowerer, decl: ast.ModelDecl | None, algebra: Algebra | None = None):
        self.low = low
        self.decl = decl
        if decl is not None:
            algebra = low.algebras.get(decl.algebra)
            if algebra is None:
                raise low.error("name", f"unknown algebra {decl.algebra!r}", decl.algebra_span,
                                expected="an algebra declared with `algebra NAME = ...`",
                                hint=did_you_mean(decl.algebra, low.algebras))
        self.alg = algebra
        self.g = Hypergraph(decl.name if decl else "<consts>", algebra, decl.span if decl else None)
        self.scope: dict[str, str] = {}          # model-level name -> value id
        self.scope_span: dict[str, Span] = {}
        self.const_ids: dict[str, str] = {}
        self.const_busy: list[str] = []
        self.loss_span: Span | None = None
        self.contexts: list[str] = []          # the const or def being lowered, innermost last
        self.budget = Budget(self.g.name, low.budget)
        self.nesting = 0                       # expressions being lowered inside one another

    def error(self, *args, **kwargs) -> PhgError:
        return self.low.error(*args, **kwargs)

    # ---- statements ---------------------------------------------------------------------------
    def build(self) -> Hypergraph:
        symmetries = []
        for i, stmt in enumerate(self.decl.body):
            if isinstance(stmt, ast.Numeric):
                self.numeric(stmt, i)
            elif isinstance(stmt, ast.Ensure):
                self.ensure(stmt)
            elif isinstance(stmt, ast.Symmetry):
                symmetries.append(stmt)
            else:
                getattr(self, stmt.kind)(stmt)
        for stmt in symmetries:                  # once every input is declared
            self.symmetry(stmt)
        if self.g.numeric != DEFAULT:
            self.numeric_fits(self.numeric_stmt)
        if self.g.loss is not None:
            self.budget.trained_fused(self.g.loss, self.loss_span, self.error)
            refuse_ungenerated(self.g, self.low.file.source, f"model {self.g.name} has a loss, whose training "
                               "and memory plan need it generated")
        return self.g

    def symmetry(self, stmt: ast.Symmetry):
        """`symmetry G(n) except ...` (LANGUAGE §20): the group, and the inputs that do not transform."""
        if self.g.symmetry is not None:
            raise self.error("syntax", f"model {self.g.name} declares its symmetry twice", stmt.span,
                             expected="one symmetry statement", notes=[Note(self.g.symmetry.span, "first declared here")])
        try:
            grp = symmetry_group(self.alg, stmt.group, stmt.n)
        except SymmetryError as exc:
            raise self.error("type", str(exc), stmt.group_span, expected=f"a group of {self.alg.name}") from None
        fixed = []
        for name, span in stmt.excepted:
            vid = self.scope.get(name)
            if vid is None or vid not in self.g.inputs:
                role = self.g.values[vid].role if vid is not None else ""
                found = "not a name of the model" if vid is None else \
                    f"{'an' if role[:1] in 'aeiou' else 'a'} {role}, not an input"
                raise self.error("name", f"`except {name}`: {name!r} is {found}; only inputs may be excepted", span,
                                 expected=f"an input of model {self.g.name}",
                                 hint=did_you_mean(name, [self.g.values[i].name for i in self.g.inputs]))
            fixed.append(vid)
        for vid in self.g.inputs:                # g . x must be an input of x's type again
            v = self.g.values[vid]
            outside = escapes(grp, v.support) if vid not in fixed else 0
            if outside:
                names = ", ".join(self.alg.blade_name(b) for b in self.alg.blades if outside >> b & 1)
                raise self.error("type", f"{grp.name} does not keep input {v.name}'s type: it takes it to {names}",
                                 v.span or stmt.span, expected=f"a type {grp.name} keeps (whole grades), or "
                                 f"`except {v.name}` for an input that does not transform",
                                 notes=[Note(stmt.group_span, f"the symmetry {grp.name} declared here")])
        self.g.symmetry = HyperSymmetry(grp, tuple(fixed), stmt.span)

    def numeric(self, stmt: ast.Numeric, position: int):
        if position != 0:
            raise self.error("syntax", f"`numeric {stmt.format}` must be the first statement of model {self.g.name}",
                             stmt.span, expected="numeric FORMAT before every param, input, let and output")
        if stmt.format not in FORMATS:
            raise self.error("name", f"unknown numeric format {stmt.format!r}", stmt.format_span,
                             expected=", ".join(FORMATS), hint=did_you_mean(stmt.format, FORMATS))
        self.g.numeric = stmt.format
        self.numeric_stmt = stmt

    def numeric_fits(self, stmt: ast.Numeric):
        """The model's constants are values of its format, and it is within the fused limits (a model
        in a format writes each sum of products out term by term, a fused dot product, in either
        strategy)."""
        fmt = FORMATS[self.g.numeric]
        lo, hi = fmt.range
        for v in self.g.values.values():
            if v.role != "const" or v.const is None:
                continue
            for c in np.asarray(v.const, dtype=float).ravel():
                if c != 0 and not lo <= abs(c) <= hi:
                    where = f"above {fmt.name}'s largest value, {hi:g}" if abs(c) > hi else \
                        f"below {fmt.name}'s smallest positive value, {lo:g}"
                    raise self.error("type", f"the constant {c:g} is {where}",
                                     v.span or stmt.span, expected=f"constants within {fmt.name}'s range",
                                     notes=[Note(stmt.span, f"the model computes in {fmt.name}")])
        self.budget.fused(f"model {self.g.name} computes in {fmt.name}, whose kernels write each sum of products out "
                          "term by term (a fused dot product), as fused code unrolls every value",
                          f"in a model that computes in {fmt.name}",
                          "use numeric float64 for a model this wide, or fewer or smaller channels", stmt.span, self.error)

    def declare(self, name: str, span: Span):
        if name in self.scope:
            raise self.error("name", f"{name!r} is already defined in model {self.g.name}", span,
                             expected="a new name", notes=[Note(self.scope_span[name], "first defined here")])
        if name in self.low.consts or name in self.low.defs:
            what = "const" if name in self.low.consts else "def"
            raise self.error("name", f"{name!r} would hide the {what} of the same name", span,
                             expected="a name not used by a const or def",
                             notes=[Note((self.low.consts.get(name) or self.low.defs[name]).span, "declared here")])
        if self.alg.parse_blade(name) is not None:
            raise self.error("name", f"{name!r} is a basis blade of {self.alg.name}", span,
                             expected="a name that is not a blade")
        self.scope_span[name] = span

    def value_type(self, t: ast.TypeExpr) -> ValueType:
        unit = self.low.resolve_unit(t.unit) if t.unit is not None else None
        args = [a[0] for a in t.args] if t.kind == "Blades" else t.args
        try:
            return resolve(self.alg, t.kind, args, unit)
        except TypeProblem as exc:
            span = t.args[exc.index][1] if t.kind == "Blades" and exc.index is not None else t.span
            hint = exc.hint or (did_you_mean(t.kind, ["Scalar", "Vector", "Bivector", "Trivector", "Pseudoscalar",
                                                      "Even", "Odd", "Multivector", "Rotor", "Motor", "Versor"])
                                if "unknown type" in str(exc) else None)
            raise self.error("type", str(exc), span, expected=exc.expected, hint=hint) from None

    def shape(self, dims) -> tuple[int, ...]:
        out = []
        for d, span in dims or []:
            if isinstance(d, str):
                if d not in self.low.consts:
                    raise self.error("name", f"unknown channel size {d!r}", span,
                                     expected="a positive integer or a declared const",
                                     hint=did_you_mean(d, self.low.consts))
                node = self.g.values[self.const(d, span)]
                value = float(node.const[0])
                if node.support & ~sup.SCALAR or value != int(value):
                    raise self.error("shape", f"channel size {d} is not an integer", span, expected="a positive integer")
                d = int(value)
            if d < 1:
                raise self.error("shape", f"channel size must be at least 1, got {d}", span, expected="a positive integer")
            out.append(d)
        return tuple(out)

    def check_shape(self, stmt: ast.Statement, node: Value):
        if stmt.shape is None:
            return
        declared = self.shape(stmt.shape)
        if declared != node.shape:
            raise self.error("shape", f"{stmt.name} is declared with channels {list(declared)} but its value has "
                             f"{list(node.shape)}", stmt.shape[0][1], expected=f"channels {list(node.shape)}")

    def param(self, stmt: ast.Statement):
        self.declare(stmt.name, stmt.span)
        t = self.value_type(stmt.type)
        shape = self.shape(stmt.shape)
        init = self.initialiser(stmt, t)
        v = self.g.add_value(Value(stmt.name, "param", t.support, shape, stmt.span, stmt.name, t.unit,
                                   "declared" if t.versor else None, t, init=init))
        self.budget.leaf(v, stmt.span, self.error)
        self.scope[stmt.name] = v.id
        self.g.params.append(v.id)

    def initialiser(self, stmt: ast.Statement, t: ValueType) -> dict:
        e = stmt.value
        if isinstance(e, ast.Call) and e.func in INITIALISERS:
            if t.versor:
                raise self.error("type", f"a {t.text} parameter cannot start at random", e.span,
                                 expected=f"a constant {t.text}, such as 1")
            args = self.constant_args(e, INITIALISERS[e.func], t.unit, f"param {stmt.name}")
            if e.func == "normal" and args[0] < 0:
                raise self.error("type", f"normal() needs a standard deviation >= 0, got {args[0]:g}", e.args[0].span,
                                 expected="a non-negative number")
            if e.func == "uniform" and not args[0] < args[1]:
                raise self.error("type", f"uniform(a, b) needs a < b, got {args[0]:g} and {args[1]:g}", e.span,
                                 expected="a < b")
            return {"kind": e.func, "args": args}
        if e is None:
            value = mv.blade(self.alg, 0, 1.0 if t.versor in ("Rotor", "Motor") else 0.0)
            span = stmt.span
        else:
            node = self.g.values[self.expr(e, None)]
            if node.const is None:
                raise self.error("type", f"the initial value of {stmt.name} is not a constant", e.span,
                                 expected="a constant expression, normal(std) or uniform(a, b)")
            value, span = node.const, e.span
            self.require_unit(node, t, span, f"param {stmt.name}", "its initial value")
            self.consumed(node.id)
        self.require_within(value, t, span, f"the initial value of {stmt.name}")
        if t.versor in ("Rotor", "Motor"):
            vv = mv.product(self.alg, "gp", value, mv.reverse(self.alg, value))
            if abs(vv[0] - 1) > 1e-12 or np.abs(vv[1:]).max(initial=0) > 1e-12:
                raise self.error("type", f"the initial value of {stmt.name} is not a normalised {t.text}", span,
                                 expected=f"a {t.text} V with V*~V = 1, such as 1")
        return {"kind": "const", "value": {self.alg.blade_name(b): float(value[b])
                                           for b in self.alg.blades if value[b] != 0}}

    def constant_args(self, call: ast.Call, arity: int, unit: Unit | None = None, owner: str = "") -> list[float]:
        """The numbers of normal(std) or uniform(a, b): bare, or in the parameter's unit where it has one."""
        self.check_arity(call, arity)
        out = []
        for a in call.args:
            node = self.g.values[self.expr(a, {})]
            if node.const is None or node.support & ~sup.SCALAR:
                raise self.error("type", f"{call.func}() needs constant numbers", a.span, expected="a number")
            if unit is not None and node.unit not in (unit, DIMENSIONLESS) and np.any(node.const):
                raise self.error("unit", f"{owner} is declared in {unit} but this argument of "
                                 f"{call.func}() is in {node.unit}", a.span,
                                 expected=f"a number in {unit}, or a bare number")
            out.append(float(node.const[0]))
            self.consumed(node.id)
        return out

    def require_unit(self, node: Value, t: ValueType, span: Span, what: str, whose: str):
        """A constant given for a declared unit must be in it: a const's value and a param's initial
        value alike (zero is in every unit)."""
        if t.unit is not None and node.unit != t.unit and np.any(node.const):
            raise self.error("unit", f"{what} is declared in {t.unit} but {whose} is in {node.unit}",
                             span, expected=f"a value in {t.unit}")

    def require_within(self, value: np.ndarray, t: ValueType, span: Span, what: str):
        outside = [b for b in self.alg.blades if value[b] != 0 and not t.support >> b & 1]
        if outside:
            raise self.error("type", f"{what} has blade {self.alg.blade_name(outside[0])} "
                             f"(coefficient {value[outside[0]]:g}), which a {t.text} does not have", span,
                             expected=f"a {t.text}")

    def input(self, stmt: ast.Statement):
        self.declare(stmt.name, stmt.span)
        t = self.value_type(stmt.type)
        v = self.g.add_value(Value(stmt.name, "input", t.support, self.shape(stmt.shape), stmt.span, stmt.name,
                                   t.unit, "declared" if t.versor else None, t))
        self.budget.leaf(v, stmt.span, self.error)
        self.scope[stmt.name] = v.id
        self.g.inputs.append(v.id)

    def name_value(self, value_id: str, name: str, role: str, span: Span) -> Value:
        """Give the result of an expression its statement's name (copying when it already has one)."""
        node = self.g.values[value_id]
        if node.name is not None or node.role in ("param", "input") or value_id in self.const_ids.values():
            copy = self.g.add_value(Value(self.g.fresh_id(), role, node.support, node.shape, span,
                                          unit=node.unit, versor="involution" if node.versor else None,
                                          const=node.const))
            self.budget.operation("copy", [node], copy, span, self.error)
            self.g.add_edge("copy", (value_id,), copy.id, span=span)
            node = copy
        node.name, node.role = name, role
        if name not in self.g.values:
            self.budget.renamed(node.id, name)
            self.g.rename(node.id, name)
        return node

    def typed(self, stmt: ast.Statement, node: Value, origin: str):
        self.check_shape(stmt, node)
        if stmt.type is not None:
            t = self.value_type(stmt.type)
            node.declared = t
            self.g.claims.append(Claim("type", node.id, stmt.type.span, origin, type=t))

    def let(self, stmt: ast.Statement):
        self.declare(stmt.name, stmt.span)
        node = self.name_value(self.expr(stmt.value, None), stmt.name, "let", stmt.span)
        self.typed(stmt, node, "let")
        self.scope[stmt.name] = node.id

    def output(self, stmt: ast.Statement):
        if stmt.name in self.g.outputs:
            raise self.error("name", f"output {stmt.name!r} is declared twice", stmt.span, expected="each output once")
        if stmt.value is None:
            if stmt.name not in self.scope or self.g.values[self.scope[stmt.name]].role != "let":
                raise self.error("name", f"output {stmt.name} has no value and exports no let of that name", stmt.span,
                                 expected=f"`let {stmt.name} = ...` earlier, or `output {stmt.name} = EXPR`",
                                 hint=did_you_mean(stmt.name, [n for n, i in self.scope.items()
                                                               if self.g.values[i].role == "let"]))
            node = self.g.values[self.scope[stmt.name]]
        else:
            self.declare(stmt.name, stmt.span)
            node = self.name_value(self.expr(stmt.value, None), stmt.name, "output", stmt.span)
            self.scope[stmt.name] = node.id
        self.typed(stmt, node, "output")
        self.g.outputs[stmt.name] = node.id

    def loss(self, stmt: ast.Statement):
        if self.g.loss is not None:
            raise self.error("name", "a model has at most one loss", stmt.span, expected="one `loss` statement",
                             notes=[Note(self.loss_span, "the first loss")])
        node = self.g.values[self.expr(stmt.value, None)]
        if node.shape:
            raise self.error("shape", f"the loss has channels {list(node.shape)}", stmt.value.span,
                             expected="a per-sample value without channels; reduce with sum(...)")
        node = self.name_value(node.id, "loss", "loss", stmt.span)
        self.g.loss, self.loss_span = node.id, stmt.span
        self.g.claims.append(Claim("scalar", node.id, stmt.value.span, "loss"))

    def ensure(self, stmt: ast.Ensure):
        node = self.expr(stmt.expr, None)
        if stmt.kind == "grade":
            bad = [g for g in stmt.grades if g > self.alg.n]
            if bad:
                raise self.error("type", f"grade {bad[0]} does not exist in {self.alg.name}", stmt.span,
                                 expected=f"grades 0 to {self.alg.n}")
            self.g.claims.append(Claim("grade", node, stmt.span, "ensure", grades=tuple(sorted(set(stmt.grades)))))
        elif stmt.kind == "unit":
            self.g.claims.append(Claim("unit", node, stmt.span, "ensure", unit=self.low.resolve_unit(stmt.unit)))
        else:
            self.g.claims.append(Claim("versor", node, stmt.span, "ensure"))

    # ---- constants ------------------------------------------------------------------------------
    def const(self, name: str, span: Span) -> str:
        if name in self.const_ids:
            return self.const_ids[name]
        d = self.low.consts[name]
        if name in self.const_busy:
            cycle = " -> ".join(self.const_busy[self.const_busy.index(name):] + [name])
            raise self.error("recursion", f"const {name!r} is defined in terms of itself: {cycle}", span,
                             expected="a constant built from literals, blades and other constants")
        self.const_busy.append(name)
        self.contexts.append(f"const {name}")
        node = self.g.values[self.expr(d.value, {})]
        self.contexts.pop()
        self.const_busy.pop()
        if node.const is None:
            raise self.error("type", f"const {name} is not a constant", d.value.span, expected="a constant expression")
        if d.type is not None:
            t = self.value_type(d.type)
            self.require_within(node.const, t, d.value.span, f"const {name}")
            self.require_unit(node, t, d.value.span, f"const {name}", "its value")
        self.low.evaluated_consts.add(name)
        self.const_ids[name] = node.id
        return node.id

    def consumed(self, value_id: str):
        """A literal used up at compile time leaves no node behind (a named const stays)."""
        if value_id not in self.const_ids.values():
            self.g.discard(value_id)

    def constant(self, value: np.ndarray, unit: Unit, span: Span, versor: str | None = None) -> str:
        support = sup.from_blades(b for b in range(self.alg.dim) if value[b] != 0)
        v = self.g.add_value(Value(self.g.fresh_id(), "const", support, (), span, unit=unit, versor=versor,
                                   const=value))
        return v.id

    # ---- expressions ------------------------------------------------------------------------------
    def expr(self, e: ast.Expr, env: dict[str, str] | None) -> str:
        """Lower e; env maps a def's arguments (None at model level, where model names are visible)."""
        self.nesting += 1
        try:
            if self.nesting > MAX_LOWERING_NESTING:
                raise self.error("size", f"too deeply nested: more than {MAX_LOWERING_NESTING:,} expressions "
                                 "inside one another, counting the bodies of the defs called", e.span,
                                 expected=f"at most {MAX_LOWERING_NESTING:,} levels",
                                 hint="name parts with `let`; defs calling defs inline their bodies")
            return self.lowered(e, env)
        finally:
            self.nesting -= 1

    def lowered(self, e: ast.Expr, env: dict[str, str] | None) -> str:
        if isinstance(e, ast.Literal):
            unit = self.low.resolve_unit(e.unit) if e.unit is not None else DIMENSIONLESS
            return self.constant(mv.blade(self.alg, 0, e.value), unit, e.span,
                                 versor="nonzero-scalar" if e.value != 0 else None)
        if isinstance(e, ast.Name):
            return self.name(e, env)
        if isinstance(e, ast.Unary):
            return self.apply(e.op, [self.expr(e.operand, env)], e.span, [e.operand.span])
        if isinstance(e, ast.Binary):
            srcs = [self.expr(e.left, env), self.expr(e.right, env)]
            return self.apply(BINARY_KINDS[e.op], srcs, e.span, [e.left.span, e.right.span])
        if isinstance(e, ast.Call):
            return self.call(e, env)
        if isinstance(e, ast.Index):
            return self.index(e, env)
        return self.component(e, env)

    def name(self, e: ast.Name, env: dict[str, str] | None) -> str:
        if env is not None and e.id in env:
            return env[e.id]
        if env is None and e.id in self.scope:
            return self.scope[e.id]
        if e.id in self.low.consts:
            return self.const(e.id, e.span)
        parsed = self.alg.parse_blade(e.id)
        if parsed is not None:
            sign, mask = parsed
            return self.constant(mv.blade(self.alg, mask, sign), self.alg.blade_unit(mask), e.span,
                                 versor=None if mask & self.alg.null_mask else "invertible-blade")
        if e.id in self.low.defs or e.id in BUILTINS:
            raise self.error("name", f"{e.id!r} is a function", e.span, expected=f"a value; call it as {e.id}(...)")
        if env is not None and e.id in self.scope:
            where = self.contexts[-1]
            raise self.error("name", f"{e.id!r} is a model value, which {where} cannot see", e.span,
                             expected="a def argument or a const" if where.startswith("def") else "a constant",
                             hint=f"pass {e.id} as an argument" if where.startswith("def") else None)
        visible = list(env or {}) + (list(self.scope) if env is None else []) + list(self.low.consts)
        hint = did_you_mean(e.id, visible + self.alg.blade_names[1:])
        raise self.error("name", f"unknown name {e.id!r}", e.span,
                         expected="a model value, a def argument, a const or a blade of " + self.alg.name,
                         hint=hint)

    def describe(self, node: Value) -> str:
        blades = [self.alg.blade_name(b) for b in self.alg.blades if node.support >> b & 1]
        if not blades:
            return "zero"
        return f"grades {sup.grades_of(node.support)} (blades {', '.join(blades)})"

    def apply(self, kind: str, srcs: list[str], span: Span, spans: list[Span], attrs: dict | None = None) -> str:
        attrs = attrs or {}
        vals = [self.g.values[s] for s in srcs]
        shape = self.combine_shapes(kind, vals, span, spans)
        self.check_argument(kind, vals, spans)
        ops = [Operand(v.support, v.versor, v.unit) for v in vals]
        support = infer_support(self.alg, kind, ops, attrs)
        versor = versor_reason(self.alg, kind, [v.versor for v in vals], [v.support for v in vals], support)
        if all(v.const is not None for v in vals):
            return self.fold(kind, vals, ops, attrs, support, versor, span, spans)
        v = self.g.add_value(Value(self.g.fresh_id(), "temp", support, shape, span, versor=versor))
        self.budget.operation(kind, vals, v, span, self.error)
        self.g.add_edge(kind, tuple(srcs), v.id, attrs, span, tuple(spans))
        return v.id

    def fold(self, kind, vals, ops, attrs, support, versor, span, spans) -> str:
        try:
            unit = unit_rule(self.alg, kind, ops, attrs)
        except UnitClash as exc:
            involved = [Note(spans[i], f"this is in {vals[i].unit}") for i in exc.operands]
            raise self.error("unit", str(exc), span, expected="operands in matching units", notes=involved) from None
        try:
            value = fold(self.alg, kind, [v.const for v in vals], attrs)
        except NotImplementedError:
            raise self.error("type", f"{kind}() of a constant is not supported", span,
                             expected="a model value as its argument",
                             hint="write the constant's result directly") from None
        except (ArithmeticError, ValueError) as exc:
            raise self.error("type", f"cannot evaluate this constant: {exc}", span, expected="a defined value") from None
        # Rounding may leave dust on blades the exact result cannot have.
        keep = np.array([support >> b & 1 for b in range(self.alg.dim)], dtype=bool)
        value = np.where(keep, value, 0.0)
        return self.constant(value, unit, span, versor or constant_versor(self.alg, value))

    def combine_shapes(self, kind: str, vals: list[Value], span: Span, spans: list[Span]) -> tuple[int, ...]:
        rule = operation(kind).shape
        if rule is not None:
            try:
                return rule([v.shape for v in vals])
            except ShapeClash as exc:
                raise self.error("shape", str(exc), span, expected=exc.expected) from None
        shapes = [v.shape for v in vals]
        out = ()
        for i, s in enumerate(shapes):
            if s and out and s != out:
                j = next(k for k in range(i) if shapes[k])
                raise self.error("shape", f"channels {list(out)} and {list(s)} do not match", span,
                                 expected="equal channel sizes, or a value without channels",
                                 notes=[Note(spans[j], f"channels {list(out)}"), Note(spans[i], f"channels {list(s)}")])
            out = s or out
        return out

    def check_argument(self, kind: str, vals: list[Value], spans: list[Span]):
        for arg in operation(kind).arguments:
            x = vals[arg.i]
            if not arg.admits(self.alg, x.support):
                raise self.error("type", f"{arg.says}, found {self.describe(x)}", spans[arg.i], expected=arg.expected,
                                 hint=arg.hint)

    def check_arity(self, call: ast.Call, arity: int):
        if len(call.args) != arity:
            raise self.error("type", f"{call.func}() takes {arity} argument{'s' * (arity != 1)}, "
                             f"got {len(call.args)}", call.span, expected=f"{arity} argument{'s' * (arity != 1)}")

    def constant_int(self, e: ast.Expr, env, what: str) -> int:
        node = self.g.values[self.expr(e, env)]
        value = float(node.const[0]) if node.const is not None and not node.support & ~sup.SCALAR else None
        if value is None or value != int(value):
            raise self.error("type", f"{what} must be a constant integer", e.span, expected="an integer such as 0")
        self.consumed(node.id)
        return int(value)

    def call(self, e: ast.Call, env) -> str:
        if e.func in self.low.defs:
            return self.inline(e, env)
        if e.func in INITIALISERS:
            raise self.error("type", f"{e.func}() only initialises a parameter", e.span,
                             expected=f"`param NAME: TYPE = {e.func}(...)`")
        if e.func not in BUILTINS:
            raise self.error("name", f"unknown function {e.func!r}", e.func_span,
                             expected="a built-in function or a def",
                             hint=did_you_mean(e.func, list(BUILTINS) + list(self.low.defs)))
        self.check_arity(e, BUILTINS[e.func])
        if e.func == "grade":
            k = self.constant_int(e.args[1], env, "the grade in grade(x, k)")
            if not 0 <= k <= self.alg.n:
                raise self.error("type", f"grade {k} does not exist in {self.alg.name}", e.args[1].span,
                                 expected=f"a grade from 0 to {self.alg.n}")
            return self.apply("grade", [self.expr(e.args[0], env)], e.span, [e.args[0].span], {"grades": [k]})
        srcs = [self.expr(a, env) for a in e.args]
        if e.func in ("linear", "bilinear"):
            return self.layer(e, srcs)
        if e.func == "gate":
            x, s = (self.g.values[v] for v in srcs)
            grades = sup.grades_of(x.support)
            if x.shape and s.shape == (*x.shape, len(grades)):      # a gate per grade (LANGUAGE §10)
                return self.apply("gradegate", srcs, e.span, [a.span for a in e.args], {"grades": grades})
            if x.shape and len(s.shape) == len(x.shape) + 1 and s.shape[:-1] == x.shape:
                raise self.error("shape", f"gate(x, s) per grade needs s with channels {[*x.shape, len(grades)]}: "
                                 f"one gate for each of x's grades {grades}; got {list(s.shape)}", e.args[1].span,
                                 expected=f"s with channels {[*x.shape, len(grades)]}")
        return self.apply(e.func, srcs, e.span, [a.span for a in e.args])

    def layer(self, e: ast.Call, srcs: list[str]) -> str:
        """linear(W, x) and bilinear(w, x, y) (LANGUAGE §10): their weights' channels follow from
        x's grades, or from the grade paths of x and y, fixed here (as the edge's attributes)."""
        vals = [self.g.values[s] for s in srcs]
        spans = [a.span for a in e.args]
        w = vals[0]
        if w.support & ~sup.SCALAR:
            raise self.error("type", f"{e.func}() takes Scalar weights, found {self.describe(w)}", spans[0],
                             expected="a Scalar")
        if e.func == "linear":
            x = vals[1]
            grades = sup.grades_of(x.support)
            want = (len(grades),)
            if len(w.shape) != 3 or len(x.shape) != 1 or w.shape[1] != x.shape[0] or w.shape[2:] != want:
                raise self.error("shape", f"linear(W, x) needs W with channels [Cout, Cin, K] and x with [Cin], K = "
                                 f"{len(grades)} for x's grades {grades}; got {list(w.shape)} and {list(x.shape)}",
                                 e.span, expected=f"W with channels [Cout, {x.shape[0] if x.shape else 'Cin'}, "
                                 f"{len(grades)}]")
            return self.apply("linear", srcs, e.span, spans, {"grades": grades})
        x, y = vals[1], vals[2]
        paths = sup.grade_paths(self.alg, x.support, y.support)
        if len(x.shape) == 1 and x.shape == y.shape and len(w.shape) == 3 and w.shape[1:] == (x.shape[0], len(paths)):
            return self.connected(srcs, paths, e.span, spans)
        if len(x.shape) != 1 or x.shape != y.shape:
            # the inputs disagree: name them, not the weights
            bad, other = (1, 2) if len(x.shape) != 1 else (2, 1)
            what = ["w", "x", "y"]
            raise self.error("shape", f"bilinear(w, x, y) needs x and y with the same channels [C], one axis; got "
                             f"x {list(x.shape)} and y {list(y.shape)}", spans[bad],
                             expected=f"{what[bad]} with channels " + (f"{list(vals[other].shape)}"
                                                                       if len(vals[other].shape) == 1 else "[C]"))
        if w.shape != (x.shape[0], len(paths)):
            c = x.shape[0]
            raise self.error("shape", f"bilinear(w, x, y) needs x and y with channels [C] and w with [C, P] (or "
                             f"[Cout, C, P], fully connected), P = {len(paths)} grade paths {paths}; got "
                             f"{list(w.shape)}, {list(x.shape)} and {list(y.shape)}", e.span,
                             expected=f"w with channels [{c}, {len(paths)}] or [Cout, {c}, {len(paths)}]")
        return self.apply("bilinear", srcs, e.span, spans, {"paths": [list(p) for p in paths]})

    def connected(self, srcs: list[str], paths: list, span: Span, spans: list[Span]) -> str:
        """bilinear(w, x, y) fully connected, w [Cout, Cin, P]: out[i] = sum over j and paths p of
        w[i, j, p] grade_r(grade_a(x[j]) grade_b(y[j])).  The paths of one grade pair (a, b) are
        consecutive (lexicographic order) and are the grades of grade_a(x) grade_b(y), so each
        pair is a product per channel followed by linear() over w's slice of that pair's paths:
        edges every stage already has, the slice an offset into w's last axis."""
        w, x, y = srcs
        terms = []
        first = 0
        while first < len(paths):
            a, b = paths[first][:2]
            grades = [r for pa, pb, r in paths if (pa, pb) == (a, b)]
            made = self.apply("gp", [self.apply("grade", [x], span, [spans[1]], {"grades": [a]}),
                                     self.apply("grade", [y], span, [spans[2]], {"grades": [b]})], span, spans[1:])
            assert sup.grades_of(self.g.values[made].support) == grades, (a, b, grades)
            terms.append(self.apply("linear", [w, made], span, [spans[0], span], {"grades": grades, "offset": first}))
            first += len(grades)
        out = terms[0]
        for t in terms[1:]:
            out = self.apply("add", [out, t], span, [span, span])
        return out

    def inline(self, e: ast.Call, env) -> str:
        d = self.low.defs[e.func]
        if len(e.args) != len(d.args):
            raise self.error("type", f"{d.name}() takes {len(d.args)} arguments, got {len(e.args)}", e.span,
                             expected=f"{len(d.args)} arguments", notes=[Note(d.span, "defined here")])
        local = {}
        for a, arg in zip(e.args, d.args):
            local[arg.name] = self.expr(a, env)
            if arg.type is not None:
                self.g.claims.append(Claim("type", local[arg.name], a.span, "def-arg", type=self.value_type(arg.type)))
        self.contexts.append(f"def {d.name}")
        result = self.expr(d.body, local)
        self.contexts.pop()
        if d.returns is not None:
            self.g.claims.append(Claim("type", result, e.span, "def-return", type=self.value_type(d.returns)))
        return result

    def index(self, e: ast.Index, env) -> str:
        base_id = self.expr(e.base, env)
        base = self.g.values[base_id]
        if len(e.indices) > len(base.shape):
            raise self.error("shape", f"{len(e.indices)} channel indices on a value with channels {list(base.shape)}",
                             e.span, expected=f"at most {len(base.shape)} indices")
        picks = []
        for i, size in zip(e.indices, base.shape):
            k = self.constant_int(i, env, "a channel index")
            if not 0 <= k < size:
                raise self.error("shape", f"channel index {k} is out of range for {size} channels", i.span,
                                 expected=f"an index from 0 to {size - 1}")
            picks.append(k)
        v = self.g.add_value(Value(self.g.fresh_id(), "temp", base.support, base.shape[len(picks):], e.span,
                                   versor="channel" if base.versor else None))
        self.budget.operation("index", [base], v, e.span, self.error)
        self.g.add_edge("index", (base_id,), v.id, {"index": picks}, e.span, (e.base.span,))
        return v.id

    def component(self, e: ast.Component, env) -> str:
        parsed = self.alg.parse_blade(e.blade)
        if parsed is None:
            raise self.error("name", f"{e.blade!r} is not a blade of {self.alg.name}", e.blade_span,
                             expected="a blade name such as " + ", ".join(self.alg.blade_names[1:4]),
                             hint=did_you_mean(e.blade, self.alg.blade_names))
        sign, mask = parsed
        base = self.expr(e.base, env)
        return self.apply("component", [base], e.span, [e.base.span], {"blade": mask, "sign": sign})
