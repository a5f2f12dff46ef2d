"""phg models inside PyTorch (LANGUAGE §19): a model's predict as a `torch.autograd.Function`
whose backward is the model's generated vector-Jacobian product (M.vjp: the adjoints training
uses, per sample for the inputs, summed over the batch for the parameters), and a
`torch.nn.Module` holding the parameters as `torch.nn.Parameter`s in their declared shapes.

    import phg, phg.torch
    M = phg.build(phg.load("model.phg")).Model(seed=0)
    layer = phg.torch.Module(M)                     # layer.params["W"]: a torch.nn.Parameter
    out = layer(x=x)                                # {"p": tensor [N, *channels, components]}
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    layer.keep_on_manifold(opt)                     # Rotors and Motors renormalised after each step

Tensors are CPU tensors, float64 (float32 too; the outputs are float32 where the model's numeric
format is float32, float64 otherwise).  The kernels are Numba's, run outside PyTorch's autograd:
a call computes its outputs with the model's kernels, and the backward its VJP program's.

Rotors and Motors stay phg's: their Parameters hold the stored coefficients, which the forward
reads as they are (a Rotor's need not be normalised: finite differences and gradcheck step off
the manifold), and their gradient is the Euclidean one.  A PyTorch optimizer's step moves them
off the manifold; `retract()` (or `keep_on_manifold(optimizer)`, which calls it after every step)
maps each channel back by R <- R (s^-1/2 - p s^-3/2 I / 2) where R ~R = s + p I (I the null
pseudoscalar of a PGA, p = 0 otherwise), the generated renormalisation phg's own steps end with
(codegen.manifold): afterwards R ~R = 1 to rounding, whatever the step (s > 0), since
(u + w I)^2 (s + p I) = u^2 s + (u^2 p + 2 u w s) I = 1 for u = s^-1/2, w = -p u^3 / 2.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["Function", "Module", "apply"]


def _numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        if t.device.type != "cpu":
            raise ValueError(f"phg's kernels run on the CPU; got a tensor on {t.device}")
        return t.detach().numpy().astype(np.float64, copy=False)
    return np.asarray(t, dtype=np.float64)


def _dtype(model) -> torch.dtype:
    return torch.float32 if model.SPEC.get("numeric") == "float32" else torch.float64


def _set_params(model, names: tuple, values) -> None:
    for name, value in zip(names, values):
        model._parameters.set_unnormalised(name, _numpy(value))


class Function(torch.autograd.Function):
    """Function.apply(model, input_names, param_names, *input_tensors, *param_tensors) -> the
    outputs in model.SPEC["predict"]["outputs"] order.  The parameter tensors become the model's
    parameters for the call (the model is not for two threads at once)."""

    @staticmethod
    def forward(ctx, model, input_names: tuple, param_names: tuple, *tensors):
        inputs, params = tensors[:len(input_names)], tensors[len(input_names):]
        _set_params(model, param_names, params)
        outs = model._predict({n: _numpy(t) for n, t in zip(input_names, inputs)}, versors=False)
        ctx.model, ctx.names = model, (input_names, param_names)
        ctx.save_for_backward(*tensors)
        dtype = _dtype(model)
        return tuple(torch.from_numpy(outs[o]).to(dtype) for o in model.SPEC["predict"]["outputs"])

    @staticmethod
    def backward(ctx, *grads):
        model, (input_names, param_names) = ctx.model, ctx.names
        tensors = ctx.saved_tensors
        inputs, params = tensors[:len(input_names)], tensors[len(input_names):]
        needs = ctx.needs_input_grad[3:]
        wanted = [n for n, need in zip(input_names, needs) if need]
        want_params = any(needs[len(input_names):])
        spec = model.SPEC
        cotangents = {}
        for o, g in zip(spec["predict"]["outputs"], grads):
            shape = (inputs[0].shape[0] if inputs else 1, *spec["outputs"][o]["shape"], len(spec["outputs"][o]["layout"]))
            cotangents[o] = np.zeros(shape) if g is None else _numpy(g)
        _set_params(model, param_names, params)     # (the model may have changed since the forward)
        bars, pgrads = model.vjp(cotangents, wrt_inputs=wanted, wrt_params=want_params,
                                 **{n: _numpy(t) for n, t in zip(input_names, inputs)})
        out = []
        for n, t in zip(input_names, inputs):
            out.append(torch.from_numpy(bars[n].reshape(t.shape)).to(t.dtype) if n in bars else None)
        for n, t in zip(param_names, params):
            out.append(torch.from_numpy(np.ascontiguousarray(pgrads[n]).reshape(t.shape)).to(t.dtype)
                       if want_params and n in pgrads else None)
        return (None, None, None, *out)


def apply(model, params: Mapping | None = None, /, **inputs) -> dict[str, torch.Tensor]:
    """The model's outputs as tensors {name: [N, *channels, components]}, differentiable with
    respect to the input tensors and to `params` ({name: tensor}; by default the model's own
    parameters, as constants)."""
    spec = model.SPEC
    names = tuple(spec["predict"]["inputs"])
    _require(model, inputs, names)
    pnames = tuple(spec["predict"]["params"])
    given = params or {}
    unknown = sorted(set(given) - set(spec["params"]))
    if unknown:
        raise ValueError(f"{spec['name']} has no parameter {unknown[0]!r}; its parameters are {', '.join(spec['params'])}")
    values = [given[p] if p in given else torch.from_numpy(model.params[p].copy()) for p in pnames]
    tensors = [torch.as_tensor(inputs[n]) for n in names]
    outs = Function.apply(model, names, pnames, *tensors, *values)
    return dict(zip(spec["predict"]["outputs"], outs))


def _require(model, inputs: Mapping, names: tuple) -> None:
    spec = model.SPEC
    unknown = sorted(set(inputs) - set(spec["inputs"]))
    if unknown:
        raise ValueError(f"{spec['name']} has no input {unknown[0]!r}; its inputs are {', '.join(spec['inputs'])}")
    missing = [n for n in names if n not in inputs]
    if missing:
        raise ValueError(f"missing input {missing[0]!r} (needed: {', '.join(names)})")


class Module(torch.nn.Module):
    """A phg model instance as a torch.nn.Module: `params` holds its parameters as
    torch.nn.Parameters in their declared shapes (LANGUAGE §18), initialised from the model's;
    `forward(**inputs)` returns {output: tensor} as predict does.  Rotors and Motors: see
    `retract`."""

    def __init__(self, model):
        super().__init__()
        if not hasattr(model, "SPEC") or not hasattr(model, "vjp"):
            raise TypeError(f"phg.torch.Module wraps a phg model instance (built by phg.build), got {type(model).__name__}")
        self.model = model
        dtype = _dtype(model)
        try:
            self.params = torch.nn.ParameterDict({n: torch.nn.Parameter(torch.tensor(np.array(model.params[n]), dtype=dtype))
                                                  for n in model.SPEC["params"]})
        except KeyError as e:                   # a name ParameterDict keeps for itself
            raise ValueError(f"{model.SPEC['name']}'s parameter names cannot all be PyTorch parameter names: {e}") from None

    def forward(self, **inputs) -> dict[str, torch.Tensor]:
        return apply(self.model, dict(self.params), **inputs)

    def versors(self) -> list[str]:
        """The parameters on a manifold (Rotors and Motors)."""
        return [n for n in self.model.SPEC["params"] if self.model.SPEC["params"][n].get("versor")]

    @torch.no_grad()
    def retract(self) -> None:
        """Renormalise every Rotor and Motor parameter in place, channel by channel (the module's
        docstring says how and why R ~R = 1 after it)."""
        for n in self.versors():
            p = self.params[n]
            p.copy_(torch.from_numpy(self.model._renormalised(n, _numpy(p)).reshape(p.shape)).to(p.dtype))

    def keep_on_manifold(self, optimizer: torch.optim.Optimizer):
        """Calls retract() after each of the optimizer's steps; returns the hook's handle."""
        return optimizer.register_step_post_hook(lambda *_: self.retract())

    def load_into_model(self) -> None:
        """Copies the Parameters into the phg model (Rotors and Motors renormalised first), so
        its predict, fit, release and serve use what PyTorch trained."""
        self.retract()
        self.model.params.update({n: _numpy(p) for n, p in self.params.items()})
