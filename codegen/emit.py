"""Python source for a checked program: one Numba kernel per model's inference, helpers for the
non-polynomial operations, and one class per model (LANGUAGE §8).

The text depends only on the program (no clocks, no paths of the build machine beyond the
source's recorded path), so the same source gives a byte-identical module.
"""
from __future__ import annotations

import functools
import itertools

import sympy

from phg import support as sup
from phg.algebra import Algebra
from phg.hypergraph import Hypergraph, Value
from phg.numeric import DEFAULT
from phg.plan import kernel_plan
from phg.plan.kernel import PREDICT_ARGUMENTS, predicted
from phg.plan.loops import unrolled
from phg.plan.spiking import plan as plan_network
from phg.program import Program, TrainSpec

from .header import header
from .printers import code, format_printer, loop_code, loop_statement, statement
from .parameters import norm_table
from .manifold import source as manifold_source
from phg.plan.scalar import (
    Helper,
    HelperCall,
    ScalarProgram,
    array_name,
    global_name,
    identifier,
)
from . import looped
from .decorators import njit
from .kernel_cache import DIGEST, bind_symbols
from .kernel_cache import digest as kernel_digest
from .logarithm import Logarithm
from .population import population_source
from .spiking import network_source
from .relative import relative_source
from .training import TrainKernel, inputs_kernel, train_kernel

# Taylor terms after scaling the argument below 1/2: 0.5^18 / 18! is far below double rounding.
EXP_TERMS = 18


# ---- helpers --------------------------------------------------------------------------------------
def _product_lines(alg: Algebra, a: list[int], an: str, b: list[int], bn: str, out: list[int], on: str,
                   scale: str = "") -> list[str]:
    """Unrolled on[k] = (a * b)[k] for the blades of `out`, with a, b, out as lists of blade masks
    and an, bn, on as name prefixes."""
    terms: dict[int, list[str]] = {m: [] for m in out}
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            s, m = alg.product("gp", x, y)
            if s and m in terms:
                terms[m].append(f"{'-' if s < 0 else '+'} {an}{i} * {bn}{j}")
    lines = []
    for k, m in enumerate(out):
        body = " ".join(terms[m]).lstrip("+ ") or "0.0"
        if body.startswith("- "):
            body = "-" + body[2:]
        lines.append(f"{on}{k} = ({body}){scale}")
    return lines


def _scaling(n: int) -> list[str]:
    """x = a / 2^k with |x|_1 <= 1/2, for exp by scaling and squaring."""
    lines = ["size = " + " + ".join(f"abs(a{i})" for i in range(n))]
    # An infinite argument has no exp to scale towards: let it propagate as NaN.
    lines += ["if size == _phg_math.inf:", "    size = _phg_math.nan"]
    lines += ["k = 0", "while size > 0.5:", "    size *= 0.5", "    k += 1", "scale = _phg_math.ldexp(1.0, -k)"]
    return lines + [f"x{i} = a{i} * scale" for i in range(n)]


def _exp_lines(alg: Algebra, src: list[int], res: list[int], direction: int | None) -> list[str]:
    """y = exp(x) by Taylor terms and squarings; with a direction i, also dy = d exp(x) / d a_i
    (forward mode: each term and square carries its derivative)."""
    one = res.index(0)
    lines = [f"t{k} = {1.0 if k == one else 0.0}" for k in range(len(res))]
    lines += [f"y{k} = {1.0 if k == one else 0.0}" for k in range(len(res))]
    if direction is not None:
        lines += [f"dt{k} = 0.0" for k in range(len(res))] + [f"dy{k} = 0.0" for k in range(len(res))]
        lines.append("dx0 = scale")
    lines.append(f"for n in range(1, {EXP_TERMS + 1}):")
    step = _product_lines(alg, res, "t", src, "x", res, "u", " / n")
    if direction is not None:                          # d(t x) = dt x + t dx, before t changes
        step += _product_lines(alg, res, "dt", src, "x", res, "v")
        step += _product_lines(alg, res, "t", [src[direction]], "dx", res, "w")
        step += [f"dt{k} = (v{k} + w{k}) / n" for k in range(len(res))] + [f"dy{k} += dt{k}" for k in range(len(res))]
    lines += ["    " + ln for ln in step + [f"t{k} = u{k}" for k in range(len(res))] +
              [f"y{k} += t{k}" for k in range(len(res))]]
    lines.append("for _ in range(k):")
    square = _product_lines(alg, res, "y", res, "y", res, "u")
    if direction is not None:                          # d(y y) = dy y + y dy
        square += _product_lines(alg, res, "dy", res, "y", res, "v")
        square += _product_lines(alg, res, "y", res, "dy", res, "w")
        square += [f"dy{k} = v{k} + w{k}" for k in range(len(res))]
    lines += ["    " + ln for ln in square + [f"y{k} = u{k}" for k in range(len(res))]]
    return lines


def _inverse_lines(alg: Algebra, src: list[int], res: list[int]) -> list[str]:
    """y = a^-1 on the closure, solving a y = 1."""
    index = {m: k for k, m in enumerate(res)}
    lines = [f"m = _phg_np.zeros(({len(res)}, {len(res)}))"]
    for i, x in enumerate(src):
        for j, y in enumerate(res):
            s, m = alg.product("gp", x, y)
            if s and m in index:
                lines.append(f"m[{index[m]}, {j}] += {'-' if s < 0 else ''}a{i}")
    lines += [f"rhs = _phg_np.zeros({len(res)})", f"rhs[{res.index(0)}] = 1.0", "sol = _phg_np.linalg.solve(m, rhs)"]
    return lines + [f"y{k} = sol[{k}]" for k in range(len(res))]


def helper_source(alg: Algebra, h: Helper) -> str:
    """exp, inv and log on one support, and their adjoints (kind exp_grad, inv_grad, log_grad: the
    arguments followed by the result's adjoint g, returning the arguments' adjoints)."""
    src, res = sup.blades_of(h.source), sup.blades_of(h.result)
    args = [f"a{i}" for i in range(len(src))]
    if h.kind.endswith("_grad"):
        args += [f"g{k}" for k in range(len(res))]
    doc = f"{h.kind.replace('_grad', '')} of a multivector on {', '.join(alg.blade_name(b) for b in src)}"
    if h.kind.endswith("_grad"):
        doc = f"adjoint of {doc}: the arguments' adjoints for the result's adjoint g"
    lines = [njit(nogil=False), f"def {h.name}({', '.join(args)}):", f"    {ascii(doc)}"]
    body: list[str] = []
    if h.kind in ("log", "log_grad"):               # closed form and its derivative (codegen.logarithm)
        body += Logarithm(alg, h.source, h.result).lines(code, adjoint=h.kind == "log_grad")
        return "\n".join(lines + ["    " + ln for ln in body])
    if h.kind == "exp":
        body += _scaling(len(src)) + _exp_lines(alg, src, res, None)
        outs = [f"y{k}" for k in range(len(res))]
    elif h.kind == "inv":
        body += _inverse_lines(alg, src, res)
        outs = [f"y{k}" for k in range(len(res))]
    elif h.kind == "exp_grad":
        body += _scaling(len(src))
        for i in range(len(src)):
            body += _exp_lines(alg, src, res, i)
            body.append(f"r{i} = " + " + ".join(f"g{k} * dy{k}" for k in range(len(res))))
        outs = [f"r{i}" for i in range(len(src))]
    else:                                              # inv_grad: d(a^-1) = -y da y
        body += _inverse_lines(alg, src, res) + ["e0 = 1.0"]
        for i in range(len(src)):
            body += _product_lines(alg, res, "y", [src[i]], "e", res, "v")
            body += _product_lines(alg, res, "v", res, "y", res, "w")
            body.append(f"r{i} = -(" + " + ".join(f"g{k} * w{k}" for k in range(len(res))) + ")")
        outs = [f"r{i}" for i in range(len(src))]
    body.append("return (" + "".join(f"{o}, " for o in outs) + ")")
    return "\n".join(lines + ["    " + ln for ln in body])


# ---- kernels --------------------------------------------------------------------------------------
def _channels(shape) -> list[tuple]:
    return list(itertools.product(*(range(s) for s in shape)))


def _loads(g: Hypergraph, sp: ScalarProgram, vid: str, sample: str | None, rounding=None) -> list[str]:
    """The loads of a value's components; a sample's rounded to the model's format (`rounding`),
    parameters are stored in it."""
    v = g.values[vid]
    arr = array_name(v)
    lines = []
    for ch, comp in sp.values[vid].items():
        for k, (b, sym) in enumerate(sorted(comp.items(), key=lambda t: g.algebra.position[t[0]])):
            idx = ", ".join(([sample] if sample else []) + [str(i) for i in ch] + [str(k)])
            load = f"{arr}[{idx}]"
            lines.append(f"{sym} = {rounding(load) if rounding and sample else load}")
    return lines


def kernel_source(g: Hypergraph, sp: ScalarProgram, name: str, inputs: list[str], params: list[str],
                  outputs: list[str], code=code, statement=statement, loads=_loads) -> str:
    alg = g.algebra
    args = [array_name(g.values[v]) for v in inputs + params] + [f"_out_{identifier(o)}" for o in outputs]
    doc = (f"Inference of {g.name} for the samples _from to _to: per-sample scalar code over blade supports "
           "(threads run shares of a batch side by side, codegen.spread).")
    lines = [njit(), f"def {name}({', '.join(args + list(PREDICT_ARGUMENTS['fused']))}):",
             f"    {ascii(doc)}"]
    for p in params:
        lines += ["    " + ln for ln in loads(g, sp, p, None)]
    body = []
    for sym, expr in sp.assignments:
        if sym in sp.invariant:
            lines.append(f"    {statement(sym, expr)}")        # once per batch
        else:
            body.append(statement(sym, expr))
    if not outputs:                                   # a model with a loss only: nothing to infer
        return "\n".join(lines + ["    return"])
    lines.append("    for _i in range(_from, _to):")
    body = [ln for vid in inputs for ln in loads(g, sp, vid, "_i")] + body
    for o in outputs:
        v = g.values[g.outputs[o]]
        blades = sup.blades_of(v.support)
        for ch, comp in sp.values[v.id].items():
            for k, b in enumerate(sorted(blades, key=lambda m: alg.position[m])):
                idx = ", ".join(["_i"] + [str(c) for c in ch] + [str(k)])
                body.append(f"_out_{identifier(o)}[{idx}] = {code(comp.get(b, sympy.Integer(0)))}")
    lines += ["        " + ln for ln in body or ["pass"]]
    return "\n".join(lines)


# ---- the module -----------------------------------------------------------------------------------
def _layout(g: Hypergraph, vid: str) -> list[str]:
    alg = g.algebra
    return [alg.blade_name(b) for b in alg.blades if g.values[vid].support >> b & 1]


def _versor_spec(g: Hypergraph, vid: str) -> dict:
    """What the runtime checks a Rotor or Motor parameter against when one is assigned."""
    if vid not in g.manifold_params():
        return {}
    alg = g.algebra
    return {"versor": g.values[vid].declared.versor,
            "norm": norm_table(alg, [b for b in alg.blades if g.values[vid].support >> b & 1])}


def _unit(v: Value) -> str | None:
    """A value's unit as the language writes it (None: not inferred, or dimensionless)."""
    return None if v.unit is None or v.unit.dimensionless else str(v.unit)


def _share(helpers: dict, h: Helper) -> None:
    """Records a helper the module prints once: one per (algebra, kind, support)."""
    helpers.setdefault(h.key, h)


def _printing(printer, rounds: bool):
    """(code, statement, loads) of a printer; `rounds`: a format's, which rounds helpers' results
    and the samples it loads."""
    rounding = printer.round if rounds else None
    return (printer.doprint, functools.partial(statement, code=printer.doprint, rounding=rounding),
            functools.partial(_loads, rounding=rounding))


def model_source(g: Hypergraph, helpers: dict, train: TrainSpec | None = None) -> tuple[str, str]:
    """The kernels and the class of one model; helpers are shared across the module."""
    train = train or TrainSpec(g.name)
    kp = kernel_plan(g, train)
    inputs, params, outputs = predicted(g)
    # the model's format: every operation rounded (codegen.printers), samples rounded as loaded
    printer = format_printer(g.numeric)
    formatted = printer if g.numeric != DEFAULT else None
    fcode, fstatement, floads = _printing(printer, formatted is not None)
    wanted = [g.outputs[o] for o in outputs]
    kname = global_name("predict", g.name)
    module = None
    if kp.loops is not None:
        for h in kp.loops.helpers:
            _share(helpers, h)
        module = (looped.Module(g, kp.loops, loop_code, loop_statement) if formatted is None else
                  looped.Module(g, kp.loops, fcode, fstatement, formatted))
        kernels = [looped.predict_source(module, kname, inputs, params, outputs)]
        work = unrolled(g, wanted)
    else:
        sp = kp.predict
        for h in sp.helpers.values():
            _share(helpers, h)
        kernels = [kernel_source(g, sp, kname, inputs, params, outputs, fcode, fstatement, floads)]
        work = 1 + sum(sym not in sp.invariant for sym, _ in sp.assignments)
    name = lambda vid: g.values[vid].name  # noqa: E731
    spec = {
        "name": g.name,
        "algebra": g.algebra.name,
        **({"numeric": g.numeric} if g.numeric != DEFAULT else {}),
        "params": {name(p): {"shape": list(g.values[p].shape), "layout": _layout(g, p),
                             "init": g.values[p].init, **_versor_spec(g, p)} for p in g.params},
        "inputs": {name(v): {"shape": list(g.values[v].shape), "layout": _layout(g, v)} for v in g.inputs},
        "outputs": {o: {"shape": list(g.values[g.outputs[o]].shape), "layout": _layout(g, g.outputs[o]),
                        "unit": _unit(g.values[g.outputs[o]])} for o in outputs},
        "predict": {"inputs": [name(v) for v in inputs], "params": [name(p) for p in params], "outputs": outputs,
                    # scalar operations per sample: what a share of a batch is worth (codegen.spread)
                    "work": work, "strategy": kp.strategy, "rule": kp.reason,
                    "buffers": [b.to_list() for b in kp.inference]},
        "train": None,
    }
    attrs = [f"    _predict_kernel = staticmethod({kname})"]
    if g.loss is not None:
        planned = kp.train
        if module is not None:
            lp = kp.loops
            tinputs = [v for v in g.inputs if v in g.cone(g.loss)]
            tk = TrainKernel(looped.train_source(module, global_name("train", g.name), global_name("slot", g.name),
                                                 global_name("slots", g.name), tinputs),
                             global_name("train", g.name), global_name("slots", g.name), tinputs, list(g.params),
                             lp.rows, lp.rows, 2 * unrolled(g, [g.loss]))
            # per-sample input adjoints (codegen.vjp), compiled on their first call only
            kernels.append(looped.inputs_source(module, global_name("inputs", g.name), tinputs))
            attrs.append(f"    _inputs_kernel = staticmethod({global_name('inputs', g.name)})")
            if train.optimizer == "cma":
                kernels.append(looped.population_source(module, global_name("population", g.name),
                                                        global_name("candidate", g.name), tinputs))
                attrs.append(f"    _population_kernel = staticmethod({global_name('population', g.name)})")
        else:
            quick = format_printer(g.numeric, fast=True)      # a posit format's fast path, tried first
            fast = None if quick is None else _printing(quick, True)
            tk = train_kernel(g, planned, global_name("train", g.name), train.accumulate, fcode, fstatement, floads,
                              formatted, fast)
            for h in planned.fused.adjoint.helpers:
                _share(helpers, h)
            # per-sample input adjoints (codegen.vjp), compiled on their first call only
            kernels.append(inputs_kernel(g, planned, global_name("inputs", g.name), fcode, fstatement, floads))
            attrs.append(f"    _inputs_kernel = staticmethod({global_name('inputs', g.name)})")
            if train.optimizer == "cma":
                kernels.append(population_source(g, planned.fused, global_name("population", g.name), fcode,
                                                 fstatement, floads, formatted))
                attrs.append(f"    _population_kernel = staticmethod({global_name('population', g.name)})")
        kernels.append(tk.source)
        manifold, relatives = {}, {}
        for v in (g.values[p] for p in g.manifold_params()):
            text, mp = manifold_source(g.algebra, v, g.name, code)
            kernels.append(text)
            manifold[v.name] = {"tangent": [g.algebra.blade_name(b) for b in mp.tangent],
                                "functions": (mp.tangent_fn, mp.retract_fn)}
            relative = relative_source(g.algebra, v, g.name, code)      # a prior's coordinates (LANGUAGE §13)
            if relative is not None:
                text, relatives[v.name], needed = relative
                kernels.append(text)
                for h in needed:
                    _share(helpers, h)
        spec["train"] = {"inputs": [name(v) for v in tk.inputs], "params": [name(p) for p in tk.params],
                         "quantities": tk.quantities, "rows": tk.rows, "stack_symbols": tk.stack_symbols, "manifold": manifold,
                         # the most terms a sample gives one sum (a loop step's rounds: codegen.rounds)
                         "terms_per_sample": looped.terms_per_sample(kp.loops) if module is not None else 1,
                         "buffers": [b.to_list() for b in planned.buffers],
                         "strategy": planned.strategy, "rule": planned.reason,
                         "settings": train.to_dict()}
        attrs.append(f"    _train_kernel = staticmethod({tk.name})")
        attrs.append(f"    _slots_kernel = staticmethod({tk.slots})")
        attrs.append("    _manifold = {" + ", ".join(f"{ascii(k)}: ({a}, {b})" for k, m in manifold.items()
                                                  for a, b in [m["functions"]]) + "}")
        attrs.append("    _relative = {" + ", ".join(f"{ascii(k)}: ({a}, {b})" for k, (a, b) in relatives.items()) + "}")
    if module is not None:                    # the functions the loop kernels call come first
        kernels.insert(0, "\n\n\n".join(module.functions.values()))
        attrs.append("    _parts = (" + "".join(f"({s!r}, {f}, {nest}), " for s, f, nest in module.opaque) + ")")
    doc = f"{g.name} on {g.algebra.describe()}: parameters, inference and training (LANGUAGE §8)."
    cls = "\n".join([
        f"class {global_name('model', g.name)}(_phg_ModelBase):",
        f"    {ascii(doc)}",
        f"    SPEC = {ascii(spec)}",
        *attrs,
    ])
    return "\n\n\n".join(kernels), cls


def module_source(program: Program, status: str) -> str:
    helpers: dict = {}
    parts = [model_source(g, helpers, program.trains.get(g.name)) for g in program.models.values()]
    parts += [network_source(plan_network(n, program.source), helpers, _share) for n in program.networks.values()]
    helper_text = [helper_source(h.alg, h) for h in helpers.values()]
    imports = [
        "import math as _phg_math",
        "",
        "import numba as _phg_numba",
        "from numba import uint64 as _phg_index",
        "import numpy as _phg_np",
        "",
        "from phg.codegen.accumulate import " + ", ".join(f"{f} as _phg_{f}" for f in _ACCUMULATE),
        "from phg.codegen.deposits import deposit_products as _phg_deposit_products, "
        "deposit_rows as _phg_deposit_rows",
        "from phg.codegen.kernel_cache import kernel as _phg_kernel",
        "from phg.codegen.lie import RotorManifold as _phg_RotorManifold, exp_factors as _phg_exp_factors",
        "from phg.codegen.runtime import ModelBase as _phg_ModelBase",
        *(["from phg.codegen.network import NetworkBase as _phg_NetworkBase"] if program.networks else []),
        "from phg.codegen.slabs import add_runs as _phg_add_runs, contract as _phg_contract, "
        "contract_adjoint as _phg_contract_adjoint, copy_runs as _phg_copy_runs, divide_runs as _phg_divide_runs",
        "from phg.codegen.opaque import carray as _phg_carray, external as _phg_external",
        "from phg.codegen.vexp import exp as _phg_exp",
        *(["from phg.codegen.formats import " + ", ".join(f"{f} as _phg_{f}" for f in _FORMATS)]
          if any(g.numeric != DEFAULT for g in program.models.values()) else []),
    ]
    kernels = "\n\n\n".join(helper_text + [k for k, _ in parts])
    # What the kernels are compiled from, and nothing else (not the source, the specification, the
    # certificate): Numba's cache of them is keyed by it (codegen.kernel_cache).
    digest = kernel_digest("\n".join(imports) + "\n\n\n" + kernels)
    head = header(str(program.path), program.sha256, status) + [
        '"""Numba kernels and model classes generated by phg (their API: the README, section Python API)."""',
        *imports,
        "",
        f"{DIGEST} = {digest!r}",
        "SOURCE_SHA256 = " + repr(program.sha256),
        # the program itself, from which M.distill derives its distillation model (phg.dsl.derive)
        "SOURCE = " + ascii(program.source),
        "SOURCE_PATH = " + ascii(str(program.path)),
        "CERTIFICATE = " + ascii(status),
    ]
    models = "MODELS = {" + ", ".join([f"{ascii(g.name)}: {global_name('model', g.name)}"
                                       for g in program.models.values()]
                                      + [f"{ascii(n)}: {global_name('network', n)}" for n in program.networks]) + "}"
    body = "\n\n\n".join([kernels] + [c for _, c in parts] + [models + "\n" + _PUBLIC])
    return "\n".join(head) + "\n\n\n" + bind_symbols(body, digest) + "\n"


# The functions of codegen.formats a model in a numeric format calls (codegen.printers).
_FORMATS = ("fast", "fast_add", "fast_div", "fast_dot", "fast_mul", "fast_sqrt", "fast_sum",
            "posit", "posit_add", "posit_div", "posit_dot", "posit_mul", "posit_pair", "posit_sqrt", "posit_sum",
            "settle_pair", "single", "single_pair", "stack_flags")

# The functions of codegen.accumulate the training kernels call, imported as _phg_<name>.
_ACCUMULATE = ("begin_pass", "clear", "close", "deposit", "fits", "low_bits", "normalise",
               "pass_fits", "regrid", "regrid_pass", "settle", "settle_pass")

# A model class is an attribute of the module by its own name (kernels.RigidRegistration) without
# being bound in the module's globals, which the kernels read when Numba compiles them: a model
# named np, range or CERTIFICATE changes nothing the kernels see.  The module's own attributes
# (CERTIFICATE, SOURCE_SHA256, MODELS) come first; MODELS has every model by its name.
_PUBLIC = '''

def __getattr__(name):
    try:
        return MODELS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}; its models are {', '.join(MODELS)}") from None


def __dir__():
    return sorted({*globals(), *MODELS})'''
