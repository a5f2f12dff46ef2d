"""Vector-Jacobian products of a model's outputs (LANGUAGE §19): given a cotangent c_o for each
output o, the gradients of

    L = sum_i sum_o <c_o(i), o(x_i)>          (the coefficients' dot product, over channels too)

with respect to every input, per sample, and every parameter, summed over the batch.

Both come from the generated kernels of the model's VJP program (phg.dsl.derive.vjp_source:
the model with its loss replaced by that dot product, its cotangents read as inputs; built once
into phg's kernel cache, codegen.derived), so every operation's adjoint is the one training
uses, and the parameters' sums are exact or float as the model's train block says:

- the parameters' gradient is its training step's gradient of the batch-mean loss times N (a
  rounding of the sum, a division by N and a product by N: within a few ulps of the sum);
- the inputs' gradient is its per-sample input adjoints (codegen.training.inputs_kernel,
  codegen.looped.inputs_source), each sample's own: no sum.

The cotangents are dimensionless: a cotangent of an output in metres is per metre, and the
gradients carry the units of output over input (over parameter).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from phg.dsl.derive import vjp_source

from .derived import derived_model
from .parameters import batch_of, declared
from .spread import SHARE, shares_of, spread


def vjp_model(cls) -> tuple[type, dict]:
    """The class of `cls`'s VJP program and the cotangent input of each output."""
    return derived_model(cls, "vjp", vjp_source)


class _Derived:
    """A model's instance of its VJP program, its parameters the model's own on every call."""

    def __init__(self, model):
        cls, self.names = vjp_model(type(model))
        self.instance = cls(seed=0)


def _derived(model) -> _Derived:
    held = model.__dict__.get("_vjp")
    if held is None:
        held = model.__dict__["_vjp"] = _Derived(model)
    return held


def vjp(model, cotangents: Mapping, inputs: Mapping, wrt_inputs=True, wrt_params: bool = True
        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """M.vjp (codegen.runtime).  `wrt_inputs`: True (every input predict reads), False, or the
    names of those wanted.  Returns ({input: [N, *channels, components]}, {param: declared
    shape}); an input no output depends on has a zero gradient."""
    spec = model.SPEC
    if not spec["outputs"]:
        raise ValueError(f"{spec['name']} has no outputs, so it has no vector-Jacobian product")
    if not isinstance(cotangents, Mapping):
        raise TypeError(f"vjp takes the cotangents as a mapping {{output name: array}}, got {type(cotangents).__name__}")
    needed = spec["predict"]["inputs"]
    wanted = _wanted(spec, wrt_inputs)
    arrays, n = model._inputs(dict(inputs), needed)
    if n == 0:
        raise ValueError("vjp needs at least one sample")
    unknown = sorted(set(map(str, cotangents)) - set(spec["outputs"]))
    if unknown:
        raise ValueError(f"{spec['name']} has no output {unknown[0]!r}; its outputs are {', '.join(spec['outputs'])}")
    derived = _derived(model)
    data = dict(zip(needed, arrays))
    for o, name in derived.names.items():
        if o not in cotangents:
            raise ValueError(f"missing the cotangent of output {o!r} (give zeros for an output that does not matter)")
        c = batch_of(o, cotangents[o], spec["outputs"][o], f"the cotangent of {o!r}")
        if c.shape[0] != n:
            raise ValueError(f"the cotangent of {o!r} has {c.shape[0]} samples, and the inputs {n}")
        data[name] = c
    student = derived.instance
    for p in spec["params"]:
        student._parameters.set_unnormalised(p, model._parameters[p])
    train = student._training()
    given = {k: data[k] for k in train["inputs"]}
    grads = {}
    if wrt_params and spec["params"]:
        student._run_train_kernel(given, versors=False)
        grads = {p: declared(spec["params"][p], g * n) for p, g in student._buffers["grads"].items()}
    bars = _input_adjoints(student, spec, given, n, wanted) if wanted else {}
    return bars, grads


def _wanted(spec: dict, wrt_inputs) -> list[str]:
    needed = spec["predict"]["inputs"]
    if wrt_inputs is True:
        return list(needed)
    if wrt_inputs is False or wrt_inputs is None:
        return []
    names = [wrt_inputs] if isinstance(wrt_inputs, str) else list(wrt_inputs)
    for name in names:
        if name not in spec["inputs"]:
            raise ValueError(f"{spec['name']} has no input {name!r}; its inputs are {', '.join(spec['inputs'])}")
    return names


def _input_adjoints(student, spec: dict, given: dict, n: int, wanted: list[str]) -> dict[str, np.ndarray]:
    """The per-sample adjoints of the VJP program's loss with respect to the wanted inputs."""
    train = student._training()
    bars = {name: np.zeros((n, *student.SPEC["inputs"][name]["shape"], len(student.SPEC["inputs"][name]["layout"])))
            for name in train["inputs"]}
    arrays = [given[k] for k in train["inputs"]]
    params = student._params(train["params"], versors=False)
    shares = shares_of(n, n * train["stack_symbols"] // SHARE)
    if train["strategy"] == "loops":       # a step's workspace per thread (phg.plan.buffers)
        words = next(shape for role, _, shape, _, _ in train["buffers"] if role == "tiles")
        shares = shares_of(n, shares)
        spread(student._inputs_kernel, (*arrays, *params, *bars.values(), np.zeros((shares, *words))),
               n, shares, blas=True, indexed=True)
    else:
        spread(student._inputs_kernel, (*arrays, *params, *bars.values()), n, shares)
    return {name: bars[name] if name in bars else
            np.zeros((n, *spec["inputs"][name]["shape"], len(spec["inputs"][name]["layout"]))) for name in wanted}


def input_grad(model, inputs: Mapping, of: str | None = None, wrt=None):
    """M.input_grad (codegen.runtime): per sample, the gradient of one output with one coefficient
    per sample (a Scalar or Pseudoscalar without channels) with respect to the inputs."""
    spec = model.SPEC
    outputs = spec["outputs"]
    if of is None:
        if len(outputs) != 1:
            raise ValueError(f"{spec['name']} has {len(outputs)} outputs ({', '.join(outputs) or 'none'}); "
                             "name the one to differentiate with of=")
        of = next(iter(outputs))
    if of not in outputs:
        raise ValueError(f"{spec['name']} has no output {of!r}; its outputs are {', '.join(outputs)}")
    o = outputs[of]
    if o["shape"] or len(o["layout"]) != 1:
        raise ValueError(f"input_grad differentiates an output of one coefficient per sample, and {of!r} has "
                         f"{int(np.prod(o['shape'], dtype=np.int64)) * len(o['layout'])} "
                         f"(shape {o['shape']}, blades {o['layout']}); use vjp with its cotangents")
    names = spec["predict"]["inputs"] if wrt is None else ([wrt] if isinstance(wrt, str) else list(wrt))
    arrays, n = model._inputs(dict(inputs), spec["predict"]["inputs"])
    cotangents = {k: (np.ones((n, 1)) if k == of else np.zeros((n, *v["shape"], len(v["layout"]))))
                  for k, v in outputs.items()}
    bars, _ = vjp(model, cotangents, dict(zip(spec["predict"]["inputs"], arrays)), names, wrt_params=False)
    return bars[wrt] if isinstance(wrt, str) else bars
