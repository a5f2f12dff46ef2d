"""The loop plan of a model: channels as loops, samples in tiles, channel mixing as matrix products.

Each value of the kernel's cone gets a slab of one workspace: `[K, TILE, C]` (K blades of its
support in canonical order, TILE samples, C channels flattened) if it changes with the samples,
`[K, C]` if it depends on parameters and constants only.  Each hyperedge becomes one op over
slabs, whatever the number of channels:

- `pointwise`: a loop over the tile's samples and the channels whose body is one channel's
  straight-line scalar code (phg.plan.scalar on that channel's blades, its adjoint by
  phg.plan.adjoint), so code size grows with the distinct operations, not with the channels;
- `contract` (mix): per pair of blades, y[m] += s · x[b] @ W[a]ᵀ over a tile, a matrix product
  Numba hands to BLAS when the weights are the same for every sample, or loops when they are not;
- `reduce` (sum over channels) and `select` (a channel index: a range of channels).

A short last tile writes the first rows of its slabs only; a matrix product reads whole tiles (a
row's rounding then does not depend on the other rows), and the adjoint slabs, zeroed per tile,
are zero past the tile's samples, so the rows past them add nothing to a sum.

The plan lists the workspace's words, which the runtime allocates per thread (phg.plan.buffers)
and the verifier counts; the emitter (codegen.looped) only prints it.  A step's adjoint slabs take
the words of forward slabs the backward pass is done with, and of each other, by their lives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from phg import support as sup
from phg.hypergraph import Edge, Hypergraph
from phg.numeric import DEFAULT
from phg.operations import blades, channels, operation

from .adjoint import reverse
from .scalar import Helper, ScalarBuilder

TILE = 64                      # samples per tile: a tile's slabs of a 96-channel layer stay in L2


@dataclass
class Slab:
    vid: str
    blades: list[int]          # canonical order (the layout of the value's arrays)
    shape: tuple[int, ...]     # the value's channels
    varying: bool              # changes with the sample
    offset: int = 0            # forward slab, words into the workspace
    adjoint: int | None = None  # adjoint slab (training), words into the workspace
    born: int | None = None     # varying adjoint: the group before whose adjoint it is zeroed (-1: the tile's start)
    per_sample: int | None = None   # exact training: the per-sample adjoint of a boundary slab
    per_sample_born: int | None = None  # the group before whose adjoint that is zeroed
    internal: bool = False     # read only inside its own group: kept in registers, no slab
    const: bool = False        # a constant's (no adjoint)

    @property
    def channels(self) -> int:
        return math.prod(self.shape)

    @property
    def words(self) -> int:
        return len(self.blades) * (TILE if self.varying else 1) * self.channels



@dataclass
class Body:
    """One channel's code: the scalars it loads per source (symbols, or numbers of a constant),
    its assignments, and the expression of each target blade; for training, the adjoint
    assignments from the target blades' adjoint symbols and each loaded scalar's adjoint."""
    loads: list[list]                      # per source, per blade: Symbol or number
    lines: list                            # (symbol, expr | HelperCall)
    outs: list                             # per target blade: expr (Symbol or number)
    seeds: list = field(default_factory=list)          # per target blade: adjoint Symbol or None
    backward: list = field(default_factory=list)       # adjoint assignments
    bars: list[list] = field(default_factory=list)     # per source, per blade: adjoint expr


@dataclass
class Op:
    kind: str                              # pointwise, contract, reduce, select
    edge: Edge
    varying: bool
    body: Body | None = None
    pairs: list[tuple[int, int, int, int]] = field(default_factory=list)   # contract: (a, b, m, sign)
    blas: bool = False                     # contract with per-batch weights: matrix products
    start: int = 0                         # select: the first channel taken
    trained: bool = False                  # in the loss's cone: its adjoint is run
    sources: list[str] = field(default_factory=list)     # slabs read (the edge's sources by default)
    target: str = ""                                      # slab written (the edge's target)
    grouped: dict[int, int] = field(default_factory=dict)  # source position -> coefficients per channel

    def __post_init__(self):
        self.sources = self.sources or list(self.edge.sources)
        self.target = self.target or self.edge.target


@dataclass
class Group:
    """Ops run in one loop nest: consecutive pointwise ops over the same channels, all of them
    per sample or all once per batch (and alike in whether inference and training run them),
    passing their values in registers; any other op is a group of its own."""
    ops: list[int]
    pointwise: bool
    key: tuple = ()


@dataclass
class LoopPlan:
    model: str
    slabs: dict[str, Slab]                 # cone, in the graph's order
    ops: list[Op]                          # forward order
    words: int                             # workspace words per thread
    invariant_adjoint_range: tuple[int, int]
    helpers: list[Helper]
    exact: bool = False
    # Training: a step's sums are the loss and the adjoint of every boundary slab (an invariant
    # one that a varying op reads) blade by blade, channel by channel, each from its first row;
    # the chain from those sums to the parameters runs once per step.
    boundary: list[str] = field(default_factory=list)
    first_row: dict[str, int] = field(default_factory=dict)
    rows: int = 1
    groups: list[Group] = field(default_factory=list)
    scratch: int = 0                       # exact training: words of a deposit's row of terms (codegen.deposits)
    forward_words: int = 0                 # the forward slabs, first: what inference needs

    def deposit(self, op: Op) -> str:
        """Where op's weight terms are deposited (`deposited`)."""
        if not self.exact:
            return ""
        return deposited(op, self.boundary, [v for v in self.boundary if self.slabs[v].per_sample is not None])


def _ordered(g: Hypergraph, support: int) -> list[int]:
    return sorted(sup.blades_of(support), key=lambda b: g.algebra.position[b])


def _body(g: Hypergraph, e: Edge, train: bool, helpers: list[Helper], taken: set[str]) -> Body:
    """One channel of a pointwise edge, as phg.plan.scalar builds a channel of the fused code; its
    scalars take no name in `taken` (the other bodies'), so a loop nest may run several bodies."""
    b = ScalarBuilder(g, [])
    b._names |= taken
    target = g.values[e.target]
    loads = []
    for n, s in enumerate(e.sources):
        v = g.values[s]
        if s in e.sources[:n]:                 # x * x: one channel's scalars, loaded once
            loads.append(loads[e.sources.index(s)])
        elif v.const is not None:
            loads.append([sympy.Float(float(v.const[m]), 17) if v.const[m] != int(v.const[m])
                          else sympy.Integer(int(v.const[m])) for m in _ordered(g, v.support)])
        else:
            loads.append([b.symbol(f"{b.value_name(v)}_{i}") for i, _ in enumerate(_ordered(g, v.support))])
    grouped = operation(e.kind).grouped(e.attrs)
    for n, size in grouped.items():            # a group of Scalars a channel (gates per grade, weights per path)
        loads[n] = [b.symbol(f"{b.value_name(g.values[e.sources[n]])}_{i}") for i in range(size)]
    comps = [[{0: s} for s in syms] if n in grouped else dict(zip(_ordered(g, g.values[s].support), syms))
             for n, (s, syms) in enumerate(zip(e.sources, loads))]
    out = b.assign(target, (), b.evaluator.channel(e, comps))
    helpers.extend(b.p.helpers.values())
    body = Body(loads, list(b.p.assignments), [out.get(m, sympy.Integer(0)) for m in _ordered(g, target.support)])
    if not train:
        taken |= b._names
        return body
    seeds = {}
    for x in body.outs:
        if isinstance(x, sympy.Symbol) and x not in seeds:
            seeds[x] = b.symbol(f"g_{x}")
    body.seeds = [seeds.get(x) if isinstance(x, sympy.Symbol) else None for x in body.outs]
    # A target blade that is a source's scalar (a grade projection) passes its adjoint straight on.
    backward, leaves = reverse(body.lines, dict(seeds), b.symbol, helpers)
    body.backward = backward
    body.bars = [[leaves.get(x, sympy.Integer(0)) if isinstance(x, sympy.Symbol) and s not in e.sources[:n]
                  else sympy.Integer(0) for x in syms] for n, (s, syms) in enumerate(zip(e.sources, loads))]
    taken |= b._names
    return body


def _linear(g: Hypergraph, e: Edge, slabs: dict[str, Slab], moving: bool, trained: bool) -> list[Op]:
    """linear(W, x) as a contraction whose weights are W regrouped by grade, [K, Cout, Cin] (a
    slab of its own, `regrade` laying it out once per batch): y's blade m takes x's blade m through
    the weights of m's grade."""
    w, x, y = (slabs[s] for s in (*e.sources, e.target))
    grades = e.attrs["grades"]
    cout, cin, _ = g.values[e.sources[0]].shape
    k = len(grades)
    regrouped = f"{e.target}~by-grade"
    slabs[regrouped] = Slab(regrouped, list(range(k)), (cout, cin), w.varying, const=w.const)
    pairs = [(grades.index(bin(m).count("1")), b, y.blades.index(m), 1) for b, m in enumerate(x.blades)
             if m in y.blades]
    return [Op("regrade", e, w.varying, trained=trained, sources=[e.sources[0]], target=regrouped),
            Op("contract", e, moving, pairs=pairs, blas=_products(g, w, x), trained=trained,
               sources=[regrouped, e.sources[1]])]


def _products(g: Hypergraph, w: Slab, x: Slab) -> bool:
    """Whether a contraction runs as matrix products (BLAS): per-sample values through weights of
    the batch, in float64; in a numeric format each output is a fused sum over the channels, which
    codegen.looped writes out (LANGUAGE §11)."""
    return x.varying and not w.varying and g.numeric == DEFAULT


def runs(pairs: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int, int]]:
    """A matrix-product contraction's blade pairs (a, b, m, s) as runs (a, b, m, s, count): count
    consecutive blades b, b+1, ... of x taken to m, m+1, ... of y through the same weights W[a]
    with the same sign.  Blades are the outer axis of a slab, so a run is one matrix product of
    count tiles stacked (a scalar weight on a vector's three blades: one product of 3 x 64 rows,
    which BLAS runs faster than three of 64), in the pairs' order."""
    out: list[list[int]] = []
    for a, b, m, s in pairs:
        last = out[-1] if out else None
        if last is not None and (last[0], last[3]) == (a, s) and (last[1] + last[4], last[2] + last[4]) == (b, m):
            last[4] += 1
        else:
            out.append([a, b, m, s, 1])
    return [tuple(r) for r in out]


def sample_dependent(g: Hypergraph) -> set[str]:
    """The values that change with the sample: the inputs and everything computed from one."""
    varying = set()
    for vid in g.values:                       # the graph's order is a topological one
        e = g.producer(vid)
        if g.values[vid].role == "input" or (e is not None and any(s in varying for s in e.sources)):
            varying.add(vid)
    return varying


def loop_plan(g: Hypergraph, wanted: list[str], train: bool, exact: bool = False) -> LoopPlan:
    """The loop plan of the values `wanted` (the outputs and the loss), with the loss's adjoint
    when `train`, its sums exact or float."""
    cone = set()
    for w in wanted:
        cone.update(g.cone(w))
    trained = set(g.cone(g.loss)) if train else set()
    varying = sample_dependent(g)
    slabs = {vid: Slab(vid, _ordered(g, g.values[vid].support), g.values[vid].shape, vid in varying,
                       const=g.values[vid].const is not None)
             for vid in g.values if vid in cone}
    ops: list[Op] = []
    helpers: list[Helper] = []
    taken: set[str] = set()
    for e in g.topological_edges():
        if e.target not in cone:
            continue
        moving = e.target in varying
        train_op = train and e.target in trained
        loop = operation(e.kind).loop
        if loop == "contract":
            w, x, y = (slabs[s] for s in (*e.sources, e.target))
            pairs = []
            for a, ma in enumerate(w.blades):
                for bi, mb in enumerate(x.blades):
                    s, m = g.algebra.product("gp", ma, mb)
                    if s and m in y.blades:
                        pairs.append((a, bi, y.blades.index(m), int(s)))
            ops.append(Op("contract", e, moving, pairs=pairs, blas=_products(g, w, x), trained=train_op))
        elif loop == "linear":
            ops += _linear(g, e, slabs, moving, train_op)
        elif loop == "reduce":
            ops.append(Op("reduce", e, moving, trained=train_op))
        elif loop == "select":
            start = sum(i * math.prod(g.values[e.sources[0]].shape[k + 1:]) for k, i in enumerate(e.attrs["index"]))
            ops.append(Op("select", e, moving, start=start, trained=train_op))
        else:
            ops.append(Op("pointwise", e, moving, body=_body(g, e, train_op, helpers, taken), trained=train_op,
                          grouped=operation(e.kind).grouped(e.attrs)))
    trained |= {op.target for op in ops if op.trained}      # the slabs ops add (linear's regrouped weights)
    groups = _groups(g, wanted, ops, slabs)
    # Workspace: invariant forward slabs, then varying forward slabs (inference needs no more);
    # the varying adjoints share words with each other and with the forward slabs the backward
    # pass has read for the last time, and so do the exact sums' per-sample adjoints; then a
    # deposit's scratch; then the invariant adjoints, which in exact sums only the step's epilogue
    # writes, after every tile: they take the varying slabs' words.
    words = 0

    def place(n: int) -> int:
        nonlocal words
        words += n
        return words - n

    for s in slabs.values():
        if not s.varying and not s.internal:
            s.offset = place(s.words)
    varying_start = words
    for s in slabs.values():
        if s.varying and not s.internal:
            s.offset = place(s.words)
    forward = words
    boundary = [vid for vid, s in slabs.items() if not s.varying and not s.const
                and any(op.trained and op.varying and vid in op.sources for op in ops)] if train else []
    # An exact sum needs each sample's term: a boundary slab's adjoint from a varying op is kept
    # per sample, but for a matrix product's weights, whose terms the deposit computes.
    per_sample = [vid for vid in boundary if exact and any(
        op.trained and op.varying and vid in op.sources and not (op.blas and vid == op.sources[0]) for op in ops)]
    if train:
        words = max(words, _adjoints(g, ops, groups, slabs, trained, boundary if exact else [], per_sample,
                                     varying_start))
    scratch = 0
    if exact:                                   # a matrix product's weight terms, a row of input channels
        widest = [slabs[op.sources[1]].channels for op in ops if op.blas and op.trained and op.sources[0] in boundary]
        scratch = place(max(widest)) if widest else 0
    end = words
    if exact:
        words = varying_start
    start = words
    if train:
        for s in slabs.values():
            if not s.varying and not s.const and s.vid in trained and not s.internal:
                s.adjoint = place(s.words)
    invariant_adjoint_range = (start, words)
    words = max(words, end)
    first, row = {}, 1
    for vid in boundary:
        first[vid] = row
        row += slabs[vid].words
    return LoopPlan(g.name, slabs, ops, words, invariant_adjoint_range,
                    helpers, exact, boundary, first, row, groups, scratch, forward)


def deposited(op: Op, boundary: list[str], per_sample: list[str]) -> str:
    """Where a matrix product's weight terms (exact sums) are deposited: "" (none: float sums, or
    weights that take no sum), "end" (at the tile's end, its dy kept until then: its weights have
    a per-sample part too, which the first product's terms take in, codegen.deposits) or "adjoint"
    (as the product's adjoint runs, so that its dy's words are free from there)."""
    if not (op.blas and op.trained and op.sources[0] in boundary):
        return ""
    return "end" if op.sources[0] in per_sample else "adjoint"


def _adjoints(g: Hypergraph, ops: list[Op], groups: list[Group], slabs: dict[str, Slab], trained: set[str],
              boundary: list[str], per_sample: list[str], base: int) -> int:
    """The varying adjoint slabs of a tile's backward pass, and the per-sample adjoints of the
    boundary slabs in `per_sample` (exact sums), placed first-fit by their lives among the varying
    forward slabs from word `base` (where those start): a life runs from the first group (in the
    backward order codegen.looped runs them) that writes or reads the slab to the last that reads
    it; the loss's adjoint from the tile's start, a per-sample adjoint to the tile's end (its
    terms are deposited there).  A forward slab keeps its words
    until the backward pass reads it for the last time (a group's adjoint reads its sources); the
    loss's and, in exact sums, the ones a deposit at the tile's end reads (a matrix product's dy
    and x whose weights have a per-sample part) until the tile's end.  Each adjoint slab is zeroed
    as its life starts (`born`), so that words an earlier slab left are never read.  Returns the
    end of the words used."""
    def kept(vid: str) -> bool:
        s = slabs.get(vid)
        return s is not None and s.varying and not s.internal and not s.const and vid in trained

    def forward(vid: str) -> bool:
        s = slabs.get(vid)
        return s is not None and s.varying and not s.internal

    events: dict[str, list[int]] = {}            # adjoint slab -> [birth, death] in backward positions
    reads: dict[str, int] = {}                   # forward slab -> its last read in the backward pass

    def touch(vid: str, at: int):
        if kept(vid):
            life = events.setdefault(vid, [at, at])
            life[0], life[1] = min(life[0], at), max(life[1], at)

    def read(vid: str, at: int):
        if forward(vid):
            reads[vid] = max(reads.get(vid, at), at)

    touch(g.loss, -1)                            # seeded at the tile's start
    sample_terms: dict[str, list[int]] = {}      # per-sample adjoint -> [birth, the tile's end]
    order = [i for i in reversed(range(len(groups)))
             if ops[groups[i].ops[0]].varying and ops[groups[i].ops[0]].trained]
    end = len(order)
    for at, i in enumerate(order):
        targets = {ops[n].target for n in groups[i].ops}         # their adjoints read
        sources = {src for n in groups[i].ops for src in ops[n].sources}
        for vid in targets | sources:            # and the sources' written
            touch(vid, at)
        for vid in sources:
            read(vid, at)
            if vid in per_sample and any(ops[n].varying and vid in ops[n].sources for n in groups[i].ops):
                sample_terms.setdefault(vid, [at, 0])
    read(g.loss, end)                            # summed after the pass (float) or deposited at the end (exact)
    for op in ops:
        if deposited(op, boundary, per_sample) == "end":
            touch(op.target, end)
            read(op.sources[1], end)
    # (offset from base, words, death): the forward slabs first, then each adjoint as its life starts
    live: list[tuple[int, int, int]] = [(slabs[vid].offset - base, slabs[vid].words, reads.get(vid, -2))
                                        for vid in slabs if forward(vid)]
    used = max((at + words for at, words, _ in live), default=0)
    lives = [(vid, birth, death, slabs[vid].words, False) for vid, (birth, death) in events.items()]
    lives += [(vid, birth, end, len(slabs[vid].blades) * TILE * slabs[vid].channels, True)
              for vid, (birth, _) in sample_terms.items()]
    for vid, birth, death, size, terms in sorted(lives, key=lambda x: (x[1], -x[3], x[0], x[4])):
        live = [x for x in live if x[2] >= birth]      # a slab read last at `birth` keeps its words there
        at = 0
        for offset, words, _ in sorted(live):
            if offset - at >= size:
                break
            at = max(at, offset + words)
        born = order[birth] if birth >= 0 else -1
        if terms:
            slabs[vid].per_sample, slabs[vid].per_sample_born = base + at, born
        else:
            slabs[vid].adjoint, slabs[vid].born = base + at, born
        live.append((at, size, death))
        used = max(used, at + size)
    return base + used


def _groups(g: Hypergraph, wanted: list[str], ops: list[Op], slabs: dict[str, Slab]) -> list[Group]:
    """The ops' loop nests, and which values never leave theirs (marked internal)."""
    predicting = {u for w in wanted if w != g.loss for u in g.cone(w)}
    groups: list[Group] = []
    for n, op in enumerate(ops):
        key = (op.varying, slabs[op.target].channels, op.edge.target in predicting, op.trained)
        if op.kind == "pointwise" and groups and groups[-1].pointwise and groups[-1].key == key:
            groups[-1].ops.append(n)
        else:
            groups.append(Group([n], op.kind == "pointwise", key))
    home = {ops[n].target: i for i, grp in enumerate(groups) for n in grp.ops}
    readers: dict[str, set[int]] = {}
    for op in ops:
        for src in op.sources:
            readers.setdefault(src, set()).add(home[op.target])
    for i, grp in enumerate(groups):
        if grp.pointwise:
            for n in grp.ops:
                vid = ops[n].target
                slabs[vid].internal = vid not in wanted and readers.get(vid, set()) <= {i}
    return groups


def unrolled(g: Hypergraph, wanted: list[str]) -> int:
    """The scalar products the fused strategy would unroll for `wanted`, per sample: what its
    code size, and so its build time, grows with (each operation's cost, phg.operations).  A
    parameter in the cone counts its coefficients too: the fused code loads each and stores its
    gradient, used or not."""
    cone = set()
    for w in wanted:
        cone.update(g.cone(w))
    total = sum(channels(g.values[p]) * blades(g.values[p]) for p in g.params if p in cone)
    for e in g.edges.values():
        if e.target in cone:
            total += operation(e.kind).cost.unrolled([g.values[s] for s in e.sources], g.values[e.target], e.attrs)
    return total
