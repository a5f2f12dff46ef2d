"""phg inside PyTorch (LANGUAGE §19): gradcheck of every example as a torch.autograd.Function,
a model mixing a phg Module with PyTorch layers trained by a PyTorch optimizer, Rotors and Motors
kept on their manifold, and the wrapper's errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import phg.torch as pt

from test_vjp import SMALL


def _tensors(model, n: int, rng) -> dict:
    spec = model.SPEC
    return {k: torch.tensor(rng.normal(size=(n, *spec["inputs"][k]["shape"], len(spec["inputs"][k]["layout"]))),
                            requires_grad=True) for k in spec["predict"]["inputs"]}


@pytest.mark.parametrize("stem", SMALL)
def test_gradcheck(built, stem):
    """With respect to every input and parameter (Rotors and Motors off their manifold too)."""
    model = next(iter(built[stem][1].MODELS.values()))(seed=0)
    rng = np.random.default_rng(0)
    inputs = _tensors(model, 3, rng)
    params = {k: torch.tensor(v + 0.1 * rng.normal(size=v.shape), requires_grad=True)
              for k, v in ((k, np.array(model.params[k])) for k in model.SPEC["predict"]["params"])}

    def f(*tensors):
        given = dict(zip(inputs, tensors[:len(inputs)]))
        return tuple(pt.apply(model, dict(zip(params, tensors[len(inputs):])), **given).values())

    assert torch.autograd.gradcheck(f, (*inputs.values(), *params.values()), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_of_the_paper_network(built):
    """O3CGMLP at 96 channels, with respect to its inputs and all its 32,854 parameter coefficients:
    gradcheck's fast mode (the Jacobian against finite differences along random directions),
    and its full mode, entry by entry, for the inputs."""
    model = built["cgenn_volume"][1].O3CGMLP(seed=0)
    rng = np.random.default_rng(1)
    inputs = _tensors(model, 2, rng)
    params = {k: torch.tensor(np.array(model.params[k]) + 0.1 * rng.normal(size=model.params[k].shape),
                              requires_grad=True) for k in model.SPEC["predict"]["params"]}

    def f(*tensors):
        given = dict(zip(inputs, tensors[:len(inputs)]))
        return tuple(pt.apply(model, dict(zip(params, tensors[len(inputs):])), **given).values())

    assert torch.autograd.gradcheck(f, (*inputs.values(), *params.values()), eps=1e-6, atol=1e-6, rtol=1e-5,
                                    fast_mode=True)
    fixed = {k: p.detach() for k, p in params.items()}
    g = lambda *xs: tuple(pt.apply(model, fixed, **dict(zip(inputs, xs))).values())  # noqa: E731
    assert torch.autograd.gradcheck(g, tuple(inputs.values()), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_a_float32_model_gives_float32_tensors(built, tmp_path):
    """numeric float32: outputs and gradients are float32 tensors, the float64 model's to float32's
    precision."""
    import phg

    text = (Path(__file__).resolve().parents[1] / "examples" / "pair_energy.phg").read_text()
    text = text.replace("model PairEnergy on G3 {\n", "model PairEnergy on G3 {\n    numeric float32\n", 1)
    (tmp_path / "pair32.phg").write_text(text)
    single = pt.Module(phg.build(phg.load(tmp_path / "pair32.phg"), tmp_path / "out").PairEnergy(seed=0))
    double = pt.Module(built["pair_energy"][1].PairEnergy(seed=0))
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    got = {}
    for name, layer in (("single", single), ("double", double)):
        xs = x.clone().requires_grad_()
        energy = layer(x=xs)["energy"]
        energy.sum().backward()
        got[name] = (energy, xs.grad, layer.params["k"].grad)
    assert [t.dtype for t in got["single"]] == [torch.float32, torch.float64, torch.float32]
    for a, b in zip(got["single"], got["double"]):
        assert torch.allclose(a.double(), b, rtol=1e-4, atol=1e-5)


def test_a_phg_module_trains_inside_a_pytorch_model(built):
    """A PyTorch linear layer (meant to learn a scale) feeding rigid registration's phg Module,
    trained together by torch.optim.Adam on a PyTorch loss; the rotor stays a rotor."""
    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    layer = pt.Module(built["rigid_registration"][1].RigidRegistration(seed=0))
    scale = torch.nn.Linear(3, 3, bias=False, dtype=torch.float64)
    with torch.no_grad():
        scale.weight.copy_(torch.eye(3, dtype=torch.float64))
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    truth = built["rigid_registration"][1].RigidRegistration(seed=0)
    truth.params.update(R=q, t=[0.5, -1.0, 2.0])
    x = rng.normal(size=(256, 3))
    y = torch.tensor(truth.predict(x=2.0 * x)["p"])
    model = torch.nn.ModuleDict({"scale": scale, "phg": layer})
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    layer.keep_on_manifold(opt)
    xt = torch.tensor(x)
    losses = []
    for _ in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x=scale(xt))["p"], y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-6 * losses[0]
    w = scale.weight.detach().numpy()       # the rotor and the layer share the rotation: W is 2 times one
    assert np.allclose(w.T @ w, 4.0 * np.eye(3), atol=1e-3)
    r = layer.params["R"].detach().numpy()
    assert abs((r * r).sum() - 1.0) < 1e-12
    layer.load_into_model()                  # phg's own predict now gives what the module gives
    scaled = scale(xt).detach()
    assert np.array_equal(layer.model.predict(x=scaled.numpy())["p"], layer(x=scaled)["p"].detach().numpy())


@pytest.mark.parametrize("stem, name", [("rigid_registration", "R"), ("pga_pose", "M")])
def test_retraction_keeps_versors_on_their_manifold(built, stem, name):
    model = next(iter(built[stem][1].MODELS.values()))(seed=0)
    layer = pt.Module(model)
    opt = torch.optim.SGD(layer.parameters(), lr=0.3)
    layer.keep_on_manifold(opt)
    rng = np.random.default_rng(5)
    for _ in range(5):
        with torch.no_grad():               # a large step off the manifold, as a gradient might take
            for p in layer.params.values():
                p.grad = torch.tensor(rng.normal(size=p.shape))
        opt.step()
        model.params.update({name: layer.params[name].detach().numpy()})   # refused unless a versor
    assert layer.versors() == [name]


def test_float32_tensors_and_errors(built):
    model = built["pair_energy"][1].PairEnergy(seed=0)
    layer = pt.Module(model)
    x = torch.randn(4, 3, 3, dtype=torch.float32, requires_grad=True)
    energy = layer(x=x)["energy"]
    assert energy.dtype == torch.float64 and energy.shape == (4, 1)
    (forces,) = torch.autograd.grad(-energy.sum(), x)
    assert forces.dtype == torch.float32 and forces.shape == x.shape
    expected = -model.input_grad(x=x.detach().numpy().astype(np.float64), wrt="x")
    assert np.allclose(forces.numpy(), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="wraps a phg model instance"):
        pt.Module(object())
    with pytest.raises(ValueError, match="no input 'y'"):
        layer(x=x, y=x)
    with pytest.raises(ValueError, match="missing input 'x'"):
        layer()
    with pytest.raises(ValueError, match="no parameter 'q'"):
        pt.apply(model, {"q": torch.zeros(3)}, x=x)


def test_a_model_without_a_loss_keeps_its_rotor_on_the_manifold(tmp_path):
    """Its manifold maps come from its VJP program, which has a loss."""
    import phg

    (tmp_path / "turn.phg").write_text("algebra G3 = Cl(3, 0, 0)\n\nmodel Turn on G3 {\n    param R: Rotor = 1\n"
                                       "    input x: Vector\n    output p: Vector = R >> x\n}\n")
    layer = pt.Module(phg.build(phg.load(tmp_path / "turn.phg"), tmp_path / "out").Turn(seed=0))
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer.keep_on_manifold(opt)
    layer(x=torch.randn(5, 3, dtype=torch.float64))["p"].sum().backward()
    opt.step()
    r = layer.params["R"].detach()
    assert abs((r ** 2).sum().item() - 1.0) < 1e-12 and not torch.equal(r, torch.tensor([1.0, 0, 0, 0], dtype=r.dtype))
