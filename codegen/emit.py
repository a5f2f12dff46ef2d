"""Python source for a checked program: one Numba kernel per model's inference, helpers for the
non-polynomial operations, and one class per model (LANGUAGE §8).

The text depends only on the program (no clocks, no paths of the build machine beyond the
source's recorded path), so the same source gives a byte-identical module.
"""
from __future__ import annotations

import itertools

import sympy
from sympy.printing.pycode import PythonCodePrinter

from phg import __version__
from phg import support as sup
from phg.algebra import Algebra
from phg.hypergraph import Hypergraph
from phg.program import Program

from .scalar import Helper, HelperCall, ScalarProgram, identifier, scalar_program

# Taylor terms after scaling the argument below 1/2: 0.5^18 / 18! is far below double rounding.
EXP_TERMS = 18


class _Printer(PythonCodePrinter):
    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return repr(float(expr))


_PRINTER = _Printer()


def code(expr) -> str:
    return _PRINTER.doprint(expr)


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


def helper_source(alg: Algebra, h: Helper) -> str:
    src, res = sup.blades_of(h.source), sup.blades_of(h.result)
    args = ", ".join(f"a{i}" for i in range(len(src)))
    doc = f"{h.kind} of a multivector on {', '.join(alg.blade_name(b) for b in src)}"
    lines = ["@numba.njit(cache=True)", f"def {h.name}({args}):", f'    """{doc}"""']
    body: list[str] = []
    if h.kind == "exp":
        body.append("size = " + " + ".join(f"abs(a{i})" for i in range(len(src))))
        # An infinite argument has no exp to scale towards: let it propagate as NaN.
        body += ["if size == math.inf:", "    size = math.nan"]
        body += ["k = 0", "while size > 0.5:", "    size *= 0.5", "    k += 1", "scale = math.ldexp(1.0, -k)"]
        body += [f"x{i} = a{i} * scale" for i in range(len(src))]
        one = res.index(0)
        body += [f"t{k} = {1.0 if k == one else 0.0}" for k in range(len(res))]
        body += [f"y{k} = {1.0 if k == one else 0.0}" for k in range(len(res))]
        body.append(f"for n in range(1, {EXP_TERMS + 1}):")
        body += ["    " + ln for ln in _product_lines(alg, res, "t", src, "x", res, "u", " / n")]
        body += [f"    t{k} = u{k}" for k in range(len(res))]
        body += [f"    y{k} += t{k}" for k in range(len(res))]
        body.append("for _ in range(k):")
        body += ["    " + ln for ln in _product_lines(alg, res, "y", res, "y", res, "u")]
        body += [f"    y{k} = u{k}" for k in range(len(res))]
    else:                                              # inv: solve a y = 1 on the closure
        index = {m: k for k, m in enumerate(res)}
        body.append(f"m = np.zeros(({len(res)}, {len(res)}))")
        for i, x in enumerate(src):
            for j, y in enumerate(res):
                s, m = alg.product("gp", x, y)
                if s and m in index:
                    body.append(f"m[{index[m]}, {j}] += {'-' if s < 0 else ''}a{i}")
        body += [f"rhs = np.zeros({len(res)})", f"rhs[{res.index(0)}] = 1.0", "sol = np.linalg.solve(m, rhs)"]
        body += [f"y{k} = sol[{k}]" for k in range(len(res))]
    body.append("return (" + "".join(f"y{k}, " for k in range(len(res))) + ")")
    return "\n".join(lines + ["    " + ln for ln in body])


# ---- kernels --------------------------------------------------------------------------------------
def _channels(shape) -> list[tuple]:
    return list(itertools.product(*(range(s) for s in shape)))


def _loads(g: Hypergraph, sp: ScalarProgram, vid: str, sample: str | None) -> list[str]:
    v = g.values[vid]
    arr = identifier(v.name)
    lines = []
    for ch, comp in sp.values[vid].items():
        for k, (b, sym) in enumerate(sorted(comp.items(), key=lambda t: g.algebra.position[t[0]])):
            idx = ", ".join(([sample] if sample else []) + [str(i) for i in ch] + [str(k)])
            lines.append(f"{sym} = {arr}[{idx}]")
    return lines


def kernel_source(g: Hypergraph, sp: ScalarProgram, name: str, inputs: list[str], params: list[str],
                  outputs: list[str]) -> str:
    alg = g.algebra
    args = [identifier(g.values[v].name) for v in inputs + params] + [f"out_{identifier(o)}" for o in outputs]
    lines = ["@numba.njit(cache=True, parallel=True)", f"def {name}({', '.join(args)}):",
             f'    """Inference of {g.name} for every sample: per-sample scalar code over blade supports."""']
    for p in params:
        lines += ["    " + ln for ln in _loads(g, sp, p, None)]
    body = []
    for sym, expr in sp.assignments:
        if isinstance(expr, HelperCall):
            targets = ", ".join(str(t) for t in expr.targets) + ("," if len(expr.targets) == 1 else "")
            body.append(f"{targets} = {expr.helper.name}({', '.join(code(a) for a in expr.args)})")
        elif sym in sp.invariant:
            lines.append(f"    {sym} = {code(expr)}")        # once per batch
        else:
            body.append(f"{sym} = {code(expr)}")
    first = identifier(g.values[inputs[0]].name) if inputs else f"out_{identifier(outputs[0])}"
    lines.append(f"    for i in numba.prange({first}.shape[0]):")
    body = [ln for vid in inputs for ln in _loads(g, sp, vid, "i")] + body
    for o in outputs:
        v = g.values[g.outputs[o]]
        blades = sup.blades_of(v.support)
        for ch, comp in sp.values[v.id].items():
            for k, b in enumerate(sorted(blades, key=lambda m: alg.position[m])):
                idx = ", ".join(["i"] + [str(c) for c in ch] + [str(k)])
                body.append(f"out_{identifier(o)}[{idx}] = {code(comp.get(b, sympy.Integer(0)))}")
    lines += ["        " + ln for ln in body or ["pass"]]
    return "\n".join(lines)


# ---- the module -----------------------------------------------------------------------------------
def _layout(g: Hypergraph, vid: str) -> list[str]:
    alg = g.algebra
    return [alg.blade_name(b) for b in alg.blades if g.values[vid].support >> b & 1]


def model_source(g: Hypergraph, helpers: dict) -> tuple[str, str]:
    """The kernel and the class of one model; helpers are shared across the module."""
    wanted = [g.outputs[o] for o in sorted(g.outputs)]
    sp = scalar_program(g, wanted)
    for key, h in sp.helpers.items():
        key = (g.algebra.name, *key)
        if key not in helpers:
            h.name = f"_{h.kind}_{identifier(g.algebra.name)}_{len(helpers)}"
            helpers[key] = h
        else:
            h.name = helpers[key].name
    cone = {u for w in wanted for u in g.cone(w)}
    inputs = [v for v in g.inputs if v in cone]
    params = [v for v in g.params if v in cone]
    outputs = sorted(g.outputs)
    kname = f"{identifier(g.name).lower()}_predict"
    kernel = kernel_source(g, sp, kname, inputs, params, outputs)
    spec = {
        "name": g.name,
        "algebra": g.algebra.name,
        "params": {g.values[p].name: {"shape": list(g.values[p].shape), "layout": _layout(g, p),
                                      "init": g.values[p].init} for p in g.params},
        "inputs": {g.values[v].name: {"shape": list(g.values[v].shape), "layout": _layout(g, v)} for v in g.inputs},
        "outputs": {o: {"shape": list(g.values[g.outputs[o]].shape), "layout": _layout(g, g.outputs[o])}
                    for o in outputs},
        "predict": {"inputs": [g.values[v].name for v in inputs], "params": [g.values[p].name for p in params],
                    "outputs": outputs},
    }
    cls = "\n".join([
        f"class {identifier(g.name)}(ModelBase):",
        f'    """{g.name} on {g.algebra.describe()}: parameters, inference (LANGUAGE §8)."""',
        f"    SPEC = {spec!r}",
        f"    _predict_kernel = staticmethod({kname})",
    ])
    return kernel, cls


def module_source(program: Program, status: str) -> str:
    helpers: dict = {}
    parts = [model_source(g, helpers) for g in program.models.values()]
    helper_text = [helper_source(h.alg, h) for h in helpers.values()]
    head = [
        f"# Generated by phg {__version__} from {program.path}; do not edit.",
        f"# source sha256: {program.sha256}",
        f"# certificate: {status}",
        '"""Numba kernels and model classes generated by phg (see LANGUAGE §8 for the API)."""',
        "import math",
        "",
        "import numba",
        "import numpy as np",
        "",
        "from codegen.runtime import ModelBase",
        "",
        "SOURCE_SHA256 = " + repr(program.sha256),
        "CERTIFICATE = " + repr(status),
    ]
    body = helper_text + [k for k, _ in parts] + [c for _, c in parts]
    return "\n".join(head) + "\n\n\n" + "\n\n\n".join(body) + "\n"
