"""Generated kernels against a direct clifford evaluation, the generated class's API and errors,
determinism and the build cache."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from claimcheck import cone_scale
from cliffeval import Reference
from shards import sweep
from interpreted import interpreted
from builtfile import model_examples
from modelgen import models

import phg
import phg.codegen.caches
from phg.shell.cli import main
from phg.diagnostics import PhgError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = model_examples()
REL = 1e-12
N = 6


def compare(program, module, rng, compiled: bool = True):
    """predict() against clifford on N random admissible samples; returns the largest error
    relative to the size of the terms each output was computed from."""
    worst = 0.0
    for graph in program.models.values():
        ref = Reference(graph)
        # not compiled: the same source, run by Python (no compile per model)
        model = interpreted(module, graph.name) if not compiled else \
            getattr(module, re.sub(r"\W", "_", graph.name))(seed=1)
        params = {p: ref.random_value(graph.values[p], rng) for p in graph.params}
        for p, value in params.items():
            model.params[p] = _array(ref, graph.values[p], [value])[0]
        samples = [{v: ref.random_value(graph.values[v], rng) for v in graph.inputs} for _ in range(N)]
        inputs = {graph.values[v].name: _array(ref, graph.values[v], [s[v] for s in samples]) for v in graph.inputs}
        out = model.predict(**inputs)
        for i, s in enumerate(samples):
            values = ref.evaluate({**params, **s})
            for name, vid in graph.outputs.items():
                expected = _array(ref, graph.values[vid], [values[vid]])[0]
                scale = cone_scale(graph, values, vid)
                if not np.isfinite(expected).all() or scale > 1e8:
                    continue                      # overflow in the reference, not a kernel question
                worst = max(worst, float(np.abs(out[name][i] - expected).max(initial=0)) / scale)
    return worst


def _array(ref, value, per_sample):
    """[samples, *channels, components] in the value's layout, from clifford values per channel."""
    blades = [b for b in ref.alg.blades if value.support >> b & 1]
    out = np.zeros((len(per_sample), *value.shape, len(blades)))
    for i, chans in enumerate(per_sample):
        for ch, x in chans.items():
            out[(i, *ch)] = [x.value[ref.index[b]] for b in blades]
    return out


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_examples_match_clifford(built, name):
    program, module = built[name]
    assert compare(program, module, np.random.default_rng(3)) < REL


def as_outputs(source: str) -> str:
    """A random verifier model with its lets made outputs (their claims dropped)."""
    return re.sub(r"    let (l\d): [^=]+= ", r"    output \1 = ", source)


@pytest.mark.parametrize("shard", range(2))
def test_random_models_match_clifford(tmp_path_factory, unshared, shard):
    def check(source):
        program = phg.loads(as_outputs(source), filename="random.phg")
        # A fresh directory each time, sharing no cache: a cache hit (or a copy of an earlier
        # build of the source) would skip the check that narrows `program`'s supports.
        module = phg.build(program, tmp_path_factory.mktemp("random"), unverified=True)
        assert compare(program, module, np.random.default_rng(0), compiled=False) < REL, source

    sweep(models(), 300, shard, 2, check)


def test_module_is_deterministic_and_says_what_it_was_built_from(tmp_path, monkeypatch):
    texts = []
    for run in ("a", "b"):           # two builds from scratch (neither finds the other's in a shared cache)
        monkeypatch.setattr(phg.codegen.caches, "cache_dir", lambda: tmp_path / f"{run}-cache")
        texts.append(Path(phg.build(phg.load(ROOT / "examples" / "pga_pose.phg"), tmp_path / run).__file__).read_text())
    a, b = texts
    assert a == b
    assert f"# source sha256: {phg.load(ROOT / 'examples' / 'pga_pose.phg').sha256}" in a and "# certificate: all proven" in a
    assert "def _phg_predict_PgaPose(" in a and "@_phg_kernel(nogil=True, error_model='numpy')" in a


def test_a_module_from_another_generator_is_rebuilt(tmp_path):
    """The cache is keyed by the source and by the code generator that wrote the module."""
    from phg.codegen.build import cached
    from phg.codegen.header import generator

    program = phg.load(ROOT / "examples" / "rigid_registration.phg")
    path = Path(phg.build(program, tmp_path).__file__)
    assert f"(generator {generator()}, " in path.read_text().splitlines()[0]
    assert cached(program, tmp_path) is not None
    path.write_text(path.read_text().replace(f"(generator {generator()}, ", "(generator 0000000000000000, ", 1))
    assert cached(program, tmp_path) is None
    phg.build(phg.load(ROOT / "examples" / "rigid_registration.phg"), tmp_path)
    assert f"(generator {generator()}, " in path.read_text().splitlines()[0]


def test_layouts_params_and_input_errors(built):
    _, module = built["rigid_registration"]
    m = module.RigidRegistration(seed=0)
    assert m.layout("R") == ["1", "e12", "e13", "e23"] and m.layout("p") == ["e1", "e2", "e3"]
    assert m.params["R"].tolist() == [1.0, 0.0, 0.0, 0.0] and m.params["t"].shape == (3,)
    x = np.random.default_rng(0).normal(size=(10, 3))
    assert np.allclose(m.predict(x=x)["p"], x)                        # R = 1, t = 0
    assert np.allclose(m.predict(x=x.astype(np.float32))["p"], x.astype(np.float32))
    assert np.allclose(m.predict(x=np.asfortranarray(x[:, ::-1]))["p"], x[:, ::-1])
    assert np.allclose(m.predict(x=x, y=x)["p"], x)                   # an input no output needs
    for kwargs, message in [({"z": x}, "no input 'z'"), ({}, "missing input 'x'"),
                            ({"x": x[:, :2]}, "input 'x' has shape [10, 2]; expected [N, 3] (components e1, e2, e3)"),
                            ({"x": x.astype(complex)}, "dtype complex128"),
                            ({"x": x, "y": x[:5]}, "inputs disagree on the number of samples")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            m.predict(**kwargs)
    with pytest.raises(KeyError, match="has no value 'q'"):
        m.layout("q")


def test_channels_and_seeded_initialisation(built):
    _, module = built["signed_volume"]
    a, b = module.SignedVolume(seed=0), module.SignedVolume(seed=0)
    assert a.params["W1"].shape == (8, 3) and a.params.arrays()["W1"].shape == (8, 3, 1) and np.array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W1"], module.SignedVolume(seed=1).params["W1"])
    v = np.random.default_rng(1).normal(size=(4, 3, 3))
    assert a.predict(v=v)["volume"].shape == (4, 1)


def test_build_into_a_file_is_refused_not_a_traceback(tmp_path, capsys):
    src = tmp_path / "ok.phg"
    src.write_text("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x: Vector\n    output q: Vector = 2 * x\n}\n")
    target = tmp_path / "module.py"
    target.write_text("keep")
    assert main(["build", str(src), "-o", str(target)]) == 2
    assert f"-o {target} is a file; expected a folder" in capsys.readouterr().err
    assert target.read_text() == "keep"


def test_unproven_models_are_refused_unless_unverified(tmp_path, capsys):
    src = tmp_path / "bad.phg"
    src.write_text("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x: Vector\n    output q: Vector = x * x\n}\n")
    with pytest.raises(PhgError, match="not proven"):
        phg.build(phg.load(src), tmp_path / "out")
    assert main(["build", str(src), "-o", str(tmp_path / "out")]) == 1
    assert "bad.phg:4:15: build error" in capsys.readouterr().err
    assert main(["build", str(src), "-o", str(tmp_path / "out"), "--unverified"]) == 1
    text = (tmp_path / "out" / "bad.py").read_text()
    assert "# certificate: NOT all proven (built with --unverified)" in text
    assert (tmp_path / "out" / "bad.cert.json").exists()
