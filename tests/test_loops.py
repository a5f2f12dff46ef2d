"""The loop strategy (phg.plan.loops, codegen.looped) against the fused one and against clifford:
the same predictions, losses and gradients, exact sums that do not depend on the samples' order or
their tiles, and the rule that picks a strategy."""
from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
from cliffeval import Reference
from interpreted import interpreted
from modelgen import models
from shards import sweep
from test_codegen import REL as CLIFFORD_REL
from test_codegen import as_outputs, compare
from test_training import REL as FD_REL
from test_training import gradient_error, random_inputs, with_loss

import phg
import phg.plan.kernel
from phg.codegen.compiling import compile_model, kernels
from phg.plan.loops import TILE

# Channels, a channel index, a sum over channels, gates by per-channel and by broadcast scalars,
# mixing by multivector weights, a Rotor parameter's sandwich and exp on every channel.
WIDE = """algebra G3 = Cl(3, 0, 0)

model Wide on G3 {
    input v[3]: Vector[m]
    input target: Pseudoscalar[m^3]
    param W1[5, 3]: Scalar = normal(0.5)
    param k1[5]: Scalar = normal(0.1)
    param M[2, 5]: Even = normal(0.3)
    param R: Rotor = 1
    param c: Scalar = 0.5
    let h[5]: Vector[m] = mix(W1, v)
    let g[5]: Vector[m] = gate(h, k1 + scalar(h * h) / 1[m^2])
    let q[5]: Vector[m] = gate(R >> g, c)
    let u[2]: Vector[m] = grade(mix(M, q), 1)
    let r: Rotor = exp(grade(u[0] ^ u[1], 2) / 4[m^2])
    let b: Bivector[m^2] = grade(u[0] * (r >> u[1]), 2)
    output volume: Pseudoscalar[m^3] = b ^ sum(q) + q[2] ^ q[3] ^ q[4]
    loss norm2(volume - target) / 1[m^6]
}
"""


def _build(source: str, tmp, monkeypatch, strategy: str, accumulate: str = "exact"):
    """The program and module of `source` built with every kernel in one strategy."""
    monkeypatch.setattr(phg.plan.kernel, "UNROLL_LIMIT", 0 if strategy == "loops" else 10**9)
    if "train " not in source and "loss" in source:
        name = source.split("model ")[1].split()[0]
        source += f"\ntrain {name} {{\n    accumulate {accumulate}\n}}\n"
    program = phg.loads(source, filename="wide.phg")
    module = phg.build(program, tmp, unverified=True)
    graph = next(iter(program.models.values()))
    spec = module.MODELS[graph.name].SPEC
    assert spec["predict"]["strategy"] == strategy
    if spec["train"] is not None:
        assert spec["train"]["strategy"] == strategy
    return program, module


def _data(graph, n: int, seed: int) -> dict:
    return random_inputs(Reference(graph), graph, np.random.default_rng(seed), n)


@pytest.mark.parametrize("accumulate", ["float", "exact"])
def test_loops_agree_with_fused(tmp_path, monkeypatch, accumulate):
    runs = {}
    for strategy in ("loops", "fused"):
        program, module = _build(WIDE, tmp_path / strategy, monkeypatch, strategy, accumulate)
        graph = program.models["Wide"]
        model = interpreted(module, "Wide", seed=5)
        data = _data(graph, TILE + 9, 1)              # a full tile and a short one, in several slots
        runs[strategy] = (model.predict(v=data["v"])["volume"], model.loss(**data), model.grad(**data))
    (p, loss, grad), (p0, loss0, grad0) = runs["loops"], runs["fused"]
    assert np.allclose(p, p0, rtol=1e-12, atol=1e-12)
    assert loss == pytest.approx(loss0, rel=1e-12)
    for name in grad0:
        assert np.allclose(grad[name], grad0[name], rtol=1e-10, atol=1e-12 * np.abs(grad0[name]).max()), name


def test_compiled_parts_are_called_by_address_and_agree_with_their_python(tmp_path, monkeypatch):
    """A loop plan's parts that touch only the workspace are compiled once, as C functions of
    their own (codegen.opaque): the kernels declare their symbols and define none of them, and the
    compiled model computes what its Python functions compute."""
    import numba.core.config

    monkeypatch.setattr(numba.core.config, "CACHE_DIR", str(tmp_path / "cache"))   # compiled here, not loaded
    program, module = _build(WIDE, tmp_path / "loops", monkeypatch, "loops", "float")
    cls = module.MODELS["Wide"]
    events = []
    compile_model(cls, lambda model, kernel, seconds: events.append((kernel, seconds is None)))
    assert events[:2] == [("parts", True), ("parts", False)]
    symbols = {symbol for symbol, *_ in cls._parts}
    assert symbols and all(symbol.startswith("phg_part_") for symbol in symbols)
    called = set()
    for label, dispatcher, types in kernels(cls):
        if label in ("predict", "train", "train sums"):
            ir = dispatcher.inspect_llvm(types)
            assert not re.search(r"^define [^\n]*@phg_part_", ir, re.M), label
            called |= set(re.findall(r"^declare [^\n]*@(phg_part_\w+)\(", ir, re.M))
    assert called == symbols
    # nests have their two views of the workspace noalias, and LLVM vectorises them
    from phg.codegen.opaque import _BOUND
    nests = [_BOUND[symbol]._library.get_llvm_str() for symbol, _, nest in cls._parts if nest]
    assert nests and all(re.search(r"double\* noalias|ptr noalias", ir) for ir in nests)
    assert any(re.search(r"<[248] x double>", ir) for ir in nests)
    # a program of other kernels never takes these symbols, even where a part's text is the same (it
    # names module constants, whose values are the program's); one of the same kernels, a comment
    # apart, binds the very same parts and compiles none
    _, other = _build(WIDE.replace("4[m^2]", "3[m^2]"), tmp_path / "other", monkeypatch, "loops", "float")
    assert {symbol for symbol, *_ in other.MODELS["Wide"]._parts}.isdisjoint(symbols)
    _, same = _build("# the same model\n" + WIDE, tmp_path / "same", monkeypatch, "loops", "float")
    assert same.SOURCE_SHA256 != module.SOURCE_SHA256 and same.KERNELS_SHA256 == module.KERNELS_SHA256
    assert {symbol for symbol, *_ in same.MODELS["Wide"]._parts} == symbols
    again = []

    def loaded(model, kernel, seconds, cached=False):
        if seconds is not None:
            again.append((kernel, cached))
    loaded.shows_cached = True
    compile_model(same.MODELS["Wide"], loaded)
    assert again and all(cached for _, cached in again) and "parts" not in dict(again), again
    data = _data(program.models["Wide"], TILE + 9, 1)
    compiled, python = cls(seed=5), interpreted(module, "Wide", seed=5)
    assert np.allclose(compiled.predict(v=data["v"])["volume"], python.predict(v=data["v"])["volume"],
                       rtol=1e-13, atol=1e-13)
    assert compiled.loss(**data) == pytest.approx(python.loss(**data), rel=1e-13)
    grad, expected = compiled.grad(**data), python.grad(**data)
    for name in expected:
        assert np.allclose(grad[name], expected[name], rtol=1e-12, atol=1e-13 * np.abs(expected[name]).max()), name


def test_loop_gradients_match_finite_differences(tmp_path, monkeypatch):
    program, module = _build(WIDE, tmp_path, monkeypatch, "loops")
    model = interpreted(module, "Wide", seed=2)
    assert gradient_error(model, _data(program.models["Wide"], 7, 3)) < FD_REL


def test_loop_exact_gradients_are_exact_means_in_any_order_and_tiling(tmp_path, monkeypatch):
    """Each sum is the correctly rounded sum of its per-sample terms, so neither the order of the
    samples nor which of them share a tile (and a matrix product) changes a bit."""
    program, module = _build(WIDE, tmp_path, monkeypatch, "loops")
    graph = program.models["Wide"]
    model = interpreted(module, "Wide", seed=0)
    data = _data(graph, 2 * TILE + 5, 4)
    data["v"] *= 10.0 ** np.random.default_rng(5).integers(-3, 4, size=(len(data["v"]), 1, 1))
    grad = model.grad(**data)
    perm = np.random.default_rng(6).permutation(len(data["v"]))
    shuffled = model.grad(**{k: a[perm] for k, a in data.items()})
    for name in grad:
        assert np.array_equal(grad[name], shuffled[name]), name
    n = 20
    per_sample = [model.grad(**{k: a[i:i + 1] for k, a in data.items()}) for i in range(n)]
    losses = [model.loss(**{k: a[i:i + 1] for k, a in data.items()}) for i in range(n)]
    head = {k: a[:n] for k, a in data.items()}
    assert model.loss(**head) == float(sum(Fraction(x) for x in losses)) / n
    # A parameter read by a per-sample op directly (W1: a matrix product, k1: a gate) sums its own
    # per-sample adjoints; one read only through parameter-only ops (R, c) sums theirs, and its
    # gradient follows from those exact sums.
    grad = model.grad(**head)
    for name in ("W1", "k1", "M"):
        for k in range(grad[name].size):
            mean = float(sum(Fraction(float(s[name].flat[k])) for s in per_sample)) / n
            assert grad[name].flat[k] == mean, (name, k)


@pytest.mark.parametrize("shard", range(2))
def test_random_models_in_loops_match_clifford(tmp_path_factory, monkeypatch, unshared, shard):
    def check(source):
        program = phg.loads(as_outputs(source), filename="random.phg")
        module = phg.build(program, tmp_path_factory.mktemp("random"), unverified=True)
        assert compare(program, module, np.random.default_rng(0), compiled=False) < CLIFFORD_REL, source

    monkeypatch.setattr(phg.plan.kernel, "UNROLL_LIMIT", 0)
    sweep(models(), 60, shard, 2, check)


@pytest.mark.parametrize("shard", range(2))
def test_random_model_gradients_in_loops_match_finite_differences(tmp_path_factory, monkeypatch, unshared, shard):
    def check(source):
        program = phg.loads(with_loss(source), filename="random.phg")
        module = phg.build(program, tmp_path_factory.mktemp("random"), unverified=True)
        graph = program.models["M"]
        train = module.MODELS["M"].SPEC["train"]
        if train["strategy"] != "loops":              # the rule's exception: a loss of parameters alone
            assert "depends on no sample" in train["rule"], source
            return
        model = interpreted(module, graph.name)
        rng = np.random.default_rng(0)
        r = rng.normal(size=model.params["R"].shape)
        model.params.set_unnormalised("R", r / np.linalg.norm(r))
        assert gradient_error(model, random_inputs(Reference(graph), graph, rng, 3)) < FD_REL, source

    monkeypatch.setattr(phg.plan.kernel, "UNROLL_LIMIT", 0)
    sweep(models(), 30, shard, 2, check)


def test_the_rule_keeps_small_models_fused_and_loops_wide_ones(built):
    for name, strategy in (("rigid_registration", "fused"), ("pga_pose", "fused"), ("signed_volume", "loops")):
        program, _ = built[name]
        for graph in program.models.values():
            plan = phg.plan.kernel.kernel_plan(graph, program.trains.get(graph.name))
            assert plan.strategy.startswith(strategy), (name, plan.reason)
            assert ("at most" if strategy == "fused" else "more than") in plan.reason, (name, plan.reason)
    wide = WIDE.replace("[5", "[24").replace("M[2, 5]", "M[8, 24]").replace("u[2]", "u[8]")
    program = phg.loads(wide, filename="wide.phg")
    phg.check(program)
    graph = program.models["Wide"]
    plan = phg.plan.kernel.kernel_plan(graph, program.trains.get("Wide"))
    assert plan.strategy.startswith("loops") and "more than" in plan.reason
    # The certificate's memory plan counts the threads' workspaces the runtime allocates: a step's
    # slabs, forward and adjoint, and predict's forward slabs alone.
    tiles = [b for b in plan.train.buffers if b.role == "tiles"]
    assert tiles and tiles[0].shape == (plan.loops.words,) and tiles[0].axis == "threads"
    forward = [b for b in plan.inference if b.role == "tiles"]
    assert forward and forward[0].shape == (plan.loops.forward_words,) and forward[0].axis == "threads"
    assert plan.loops.forward_words < plan.loops.words


def test_the_slabs_matrix_product_is_blas_on_the_workspace_as_it_lies():
    """codegen.slabs.gemm adds alpha op(A) op(B) into C at any offsets of the workspace, reading A
    and B transposed or not, as numpy computes it."""
    from phg.codegen.slabs import gemm
    rng = np.random.default_rng(3)
    for ta in (0, 1):
        for tb in (0, 1):
            m, n, k = rng.integers(1, 9, size=3)
            a_shape, b_shape = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
            ws = rng.normal(size=500)
            a, b, c = 7, 7 + a_shape[0] * a_shape[1] + 3, 300
            A = ws[a:a + m * k].reshape(a_shape).copy()
            B = ws[b:b + k * n].reshape(b_shape).copy()
            expected = ws[c:c + m * n].reshape(m, n) + -1.0 * ((A.T if ta else A) @ (B.T if tb else B))
            before = ws.copy()
            gemm(ws, ta, tb, m, n, k, -1.0, a, a_shape[1], b, b_shape[1], c)
            assert np.allclose(ws[c:c + m * n].reshape(m, n), expected, rtol=1e-14, atol=1e-14), (ta, tb)
            outside = np.ones(500, bool)
            outside[c:c + m * n] = False
            assert np.array_equal(ws[outside], before[outside])


def test_blade_pairs_run_together_where_blades_are_consecutive():
    """A scalar weight on a vector's three blades is one matrix product of three stacked tiles;
    pairs that change weights, sign or blade order start a new run; the order is kept."""
    from phg.plan.loops import runs
    assert runs([(0, 0, 0, 1), (0, 1, 1, 1), (0, 2, 2, 1)]) == [(0, 0, 0, 1, 3)]
    assert runs([(0, 0, 1, 1), (0, 1, 2, 1), (1, 2, 3, 1), (1, 3, 4, -1), (1, 4, 5, -1), (1, 6, 7, -1)]) == \
        [(0, 0, 1, 1, 2), (1, 2, 3, 1, 1), (1, 3, 4, -1, 2), (1, 6, 7, -1, 1)]
    assert runs([]) == []


def test_the_loop_strategys_exp_is_within_an_ulp_of_the_c_librarys():
    """codegen.vexp's exp, which the loop nests call so that LLVM vectorises them."""
    import math

    from phg.codegen.vexp import exp

    rng = np.random.default_rng(3)
    xs = np.concatenate([np.linspace(-760.0, 720.0, 100_001), rng.normal(0.0, 5.0, 50_000), rng.uniform(-1, 1, 50_000),
                         [0.0, -0.0, 5e-324, -5e-324, 1e-300, 709.78, 709.79, -708.39, -708.4, -745.13, -745.14]])
    for x in xs:
        got = exp(x)
        try:
            want = math.exp(x)
        except OverflowError:
            want = math.inf
        assert got == want or abs(got - want) <= math.ulp(want), (x, got, want)
    assert math.isnan(exp(math.nan)) and exp(math.inf) == math.inf and exp(-math.inf) == 0.0


def _tile_lives(graph, lp) -> None:
    """Runs a training tile's schedule (as codegen.looped prints it) over the loop plan's
    workspace, word by word: each slab written marks its words as its own, and every read must
    find them still its own, so no slab's words were taken by another while it was live."""
    owner = np.full(lp.words, -1, dtype=np.int64)
    ids: dict[tuple[str, str], int] = {}

    def words(vid: str, kind: str) -> range | None:
        s = lp.slabs[vid]
        if s.internal or s.const:
            return None
        if kind == "fw":
            return range(s.offset, s.offset + s.words)
        if kind == "ps":
            return None if s.per_sample is None else range(s.per_sample, s.per_sample + len(s.blades) * TILE * s.channels)
        return None if s.adjoint is None else range(s.adjoint, s.adjoint + s.words)

    def write(vid: str, kind: str):
        r = words(vid, kind)
        if r is not None:
            assert kind != "bw" or lp.slabs[vid].varying or not lp.exact, ("a tile writes an invariant adjoint", vid)
            owner[r.start:r.stop] = ids.setdefault((vid, kind), len(ids))

    def read(vid: str, kind: str):
        r = words(vid, kind)
        if r is not None:
            mine = ids.get((vid, kind))
            assert mine is not None and (owner[r.start:r.stop] == mine).all(), (vid, kind, "read after its words were taken")

    def bar(vid: str, op):                          # a source's adjoint, added to
        s = lp.slabs[vid]
        kind = "ps" if op.varying and not s.varying and s.per_sample is not None else "bw"
        if not s.varying and kind == "bw":
            return
        read(vid, kind)
        write(vid, kind)

    for s in lp.slabs.values():                     # the slot's invariant slabs, laid out first
        if not s.varying:
            write(s.vid, "fw")
    for vid in graph.inputs.values() if isinstance(graph.inputs, dict) else graph.inputs:
        if vid in lp.slabs:
            write(vid, "fw")
    tiled = [(i, grp) for i, grp in enumerate(lp.groups) if lp.ops[grp.ops[0]].varying and lp.ops[grp.ops[0]].trained]
    for _, grp in tiled:
        for n in grp.ops:
            op = lp.ops[n]
            made = {lp.ops[m].target for m in grp.ops if m < n}
            for src in op.sources:
                if src not in made and lp.slabs[src].varying:
                    read(src, "fw")
            write(op.target, "fw")
    write(graph.loss, "bw")
    if not lp.exact:
        read(graph.loss, "fw")
    for i, grp in reversed(tiled):
        for s in lp.slabs.values():
            if s.born == i:
                write(s.vid, "bw")
            if s.per_sample_born == i:              # zeroed where the first op that adds to it runs
                write(s.vid, "ps")
        made = {lp.ops[n].target for n in grp.ops}
        for n in reversed(grp.ops):
            op = lp.ops[n]
            if not lp.slabs[op.target].internal:
                read(op.target, "bw")
            for src in op.sources:
                if lp.slabs[src].varying and (src not in made or not grp.pointwise):
                    read(src, "fw")
                if src not in made or not grp.pointwise:
                    bar(src, op)
            if lp.deposit(op) == "adjoint":
                read(op.target, "bw")
                read(op.sources[1], "fw")
    if lp.exact:
        read(graph.loss, "fw")
        for op in lp.ops:
            if lp.deposit(op) == "end":
                read(op.target, "bw")
                read(op.sources[1], "fw")
        for vid in lp.boundary:
            read(vid, "ps")


@pytest.mark.parametrize("accumulate", ["float", "exact"])
def test_a_tiles_slabs_share_words_only_where_their_lives_do_not_meet(accumulate):
    """The adjoint slabs take the words of forward slabs the backward pass is done with, and of
    each other (phg.plan.loops); run over random models, the wide one and the widened network."""
    from bench.widths import source as widened

    def check(text):
        program = phg.loads(text, filename="lives.phg")
        phg.check(program)
        graph = next(iter(program.models.values()))
        if graph.loss is None or graph.loss not in phg.plan.loops.sample_dependent(graph):
            return                                  # a loss of parameters alone trains fused
        lp = phg.plan.loops.loop_plan(graph, [*graph.outputs.values(), graph.loss], True, accumulate == "exact")
        _tile_lives(graph, lp)

    check(WIDE)
    check(widened(16, accumulate))
    sweep(models(), 30, 0, 1, lambda text: check(with_loss(text)))
    # the widened network's step: its adjoints in words the forward pass is done with (and in
    # float sums, a tile's weight gradients beside them)
    program = phg.loads(widened(256, accumulate), filename="widened.phg")
    phg.check(program)
    graph = program.models["SignedVolume"]
    lp = phg.plan.loops.loop_plan(graph, [*graph.outputs.values(), graph.loss], True, accumulate == "exact")
    assert lp.words < (1.4 if accumulate == "exact" else 1.7) * lp.forward_words
