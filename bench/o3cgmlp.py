"""O3CGMLP in PyTorch (float64): the Clifford-group equivariant MLP of Ruhe, Brandstetter and
Forre (NeurIPS 2023, arXiv 2305.11141) for the O(3) signed-volume task, written from the paper's
equations as the peer, for speed and accuracy, of the same network written in phg's language.

The algebra is G3 = Cl(3, 0, 0): 8 blades in the order 1, e1, e2, e3, e12, e13, e23, e123
(grades 0, 1, 1, 1, 2, 2, 2, 3).  A multivector tensor here has shape [batch, 8, channels]
(blades before channels, so that channel mixing is a matrix product per blade).

The network (num_layers = 4, as in the paper's O(3) command):

    x[B, 3] vectors  ->  product layer (3 -> C)  ->  gated SiLU (C), three times in a row
                     ->  product layer (C -> 1)  ->  e123 coefficient of the one output channel

and the loss is the mean squared error against det(v0, v1, v2) / 10.

Layers, with grade_g the projection on grade g:

- GradeLinear(Cin -> Cout), weights W[Cout, Cin, 4] and an optional bias b[Cout] on the scalar:
  y[m] = sum_n sum_g W[m, n, g] grade_g(x[n]) (+ b[m] on the scalar blade).
  Init W ~ normal(0, 1/sqrt(Cin)), b = 0.
- GradeNormalize(C), a[C, 4] = 0 at init: x[g] / (sigmoid(a[c, g]) (|x[g]| - 1) + 1 + 1e-6), with
  |x[g]| = (q_g^2 + 1e-16)^(1/4), q_g the quadratic form of grade g (in G3 the sum of the squares
  of its coefficients): the square root of |q_g|, smoothed at zero as the authors' algebra does.
- GradeSiLU(C), a[C, 4] = 1 and b[C, 4] = 0 at init: grade g of the output is
  sigmoid(a[c, g] s_g + b[c, g]) x[g], with s_0 the scalar coefficient itself and s_g = q_g for
  g = 1, 2, 3.
- SteerableProduct(Cin -> Cout), the fully connected steerable geometric product layer:
  r = normalize(GradeLinear(Cin -> Cin, no bias)(x)), weights w[Cout, Cin, 20] over the 20 grade
  paths p = (i, j, k) of G3 (those for which grade_k(grade_i(a) grade_j(b)) can be non-zero),
  ordered lexicographically by (i, j, k) = (grade of the left factor, grade of the right factor,
  grade of the product), which is phg's order:
  out[m] = (GradeLinear(Cin -> Cout, bias)(x)[m]
            + sum_n sum_p w[m, n, p] grade_k(grade_i(x[n]) grade_j(r[n]))) / sqrt(2).
  Init w ~ normal(0, 1/sqrt(4 Cin)).  (The authors' code enumerates the same 20 paths
  lexicographically by (left, product, right) grades instead: the same layer, its w[..., p]
  permuted.)

The product term is evaluated sparsely: for each output blade o and left blade e_i there is one
right blade e_k with e_i e_k = +-e_o, so the term is a batched matrix product over the 8 output
blades of [B, 8 * Cin] gathered products by [8 * Cin, Cout] signed path weights.

Parameter count: 8,145 at C = 32, 48,913 at C = 96.

    python bench/o3cgmlp.py [WIDTH ...] [--batches 128,1024] [--threads 2] [--compile] [--check]

prints, per width, the parameter count and the median time of one forward + backward
(`loss_and_grad`) at each batch size, eagerly and (with --compile) under torch.compile;
--check runs `self_check()` first.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# The algebra G3, from bit masks (bit 0 = e1, bit 1 = e2, bit 2 = e3; every e_i squares to +1).

BLADE_NAMES = ("1", "e1", "e2", "e3", "e12", "e13", "e23", "e123")
BLADE_MASKS = (0b000, 0b001, 0b010, 0b100, 0b011, 0b101, 0b110, 0b111)
N_BLADES = 8
N_GRADES = 4
BLADE_GRADE = tuple(bin(m).count("1") for m in BLADE_MASKS)
_INDEX_OF_MASK = {m: i for i, m in enumerate(BLADE_MASKS)}


def _reorder_sign(a: int, b: int) -> int:
    """Sign of the permutation that sorts the basis vectors of blade a followed by blade b."""
    swaps, a = 0, a >> 1
    while a:
        swaps += bin(a & b).count("1")
        a >>= 1
    return -1 if swaps & 1 else 1


def product_table() -> tuple[np.ndarray, np.ndarray]:
    """(index, sign), each [8, 8]: blade_a * blade_b = sign[a, b] * blade_{index[a, b]} in G3."""
    index = np.zeros((N_BLADES, N_BLADES), dtype=np.int64)
    sign = np.zeros((N_BLADES, N_BLADES), dtype=np.int64)
    for a, ma in enumerate(BLADE_MASKS):
        for b, mb in enumerate(BLADE_MASKS):
            index[a, b] = _INDEX_OF_MASK[ma ^ mb]
            sign[a, b] = _reorder_sign(ma, mb)  # metric all +1: no factor from repeated vectors
    return index, sign


def grade_paths() -> list[tuple[int, int, int]]:
    """The grade paths (i, j, k) of G3's geometric product, lexicographic: some blade of grade i
    times some blade of grade j is a blade of grade k."""
    index, _ = product_table()
    found = {(BLADE_GRADE[a], BLADE_GRADE[b], BLADE_GRADE[index[a, b]])
             for a in range(N_BLADES) for b in range(N_BLADES)}
    return sorted(found)


PRODUCT_INDEX, PRODUCT_SIGN = product_table()
PATHS = grade_paths()
N_PATHS = len(PATHS)
_PATH_OF = {p: n for n, p in enumerate(PATHS)}

# For output blade o and left blade i: the right blade k with e_i e_k = +-e_o, that sign, and
# the grade path (grade i, grade k, grade o) the pair belongs to.
RIGHT_OF = np.zeros((N_BLADES, N_BLADES), dtype=np.int64)
PAIR_SIGN = np.zeros((N_BLADES, N_BLADES))
PAIR_PATH = np.zeros((N_BLADES, N_BLADES), dtype=np.int64)
for _o, _mo in enumerate(BLADE_MASKS):
    for _i, _mi in enumerate(BLADE_MASKS):
        _k = _INDEX_OF_MASK[_mi ^ _mo]
        assert PRODUCT_INDEX[_i, _k] == _o
        RIGHT_OF[_o, _i] = _k
        PAIR_SIGN[_o, _i] = PRODUCT_SIGN[_i, _k]
        PAIR_PATH[_o, _i] = _PATH_OF[(BLADE_GRADE[_i], BLADE_GRADE[_k], BLADE_GRADE[_o])]

EPS_NORM = 1e-6        # added to the normalisation's denominator
EPS_SMOOTH = 1e-16     # |x| = (q^2 + EPS_SMOOTH)^(1/4)


def _grade_sums(x: torch.Tensor) -> torch.Tensor:
    """q_g, the per-grade sums of squares [B, 4, C] of a multivector tensor [B, 8, C]."""
    sq = x * x
    return torch.cat([sq[:, :1], sq[:, 1:4].sum(1, keepdim=True), sq[:, 4:7].sum(1, keepdim=True),
                      sq[:, 7:]], dim=1)


# ----------------------------------------------------------------------------------------------
# Layers.

class _G3Module(torch.nn.Module):
    """Holds the grade of each blade as a (non-persistent) index buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("blade_grade", torch.tensor(BLADE_GRADE, dtype=torch.long),
                             persistent=False)


class GradeLinear(_G3Module):
    """y[m] = sum_n sum_g W[m, n, g] grade_g(x[n]), plus b[m] on the scalar blade if bias."""

    def __init__(self, cin: int, cout: int, bias: bool):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.weight = torch.nn.Parameter(torch.empty(cout, cin, N_GRADES, dtype=torch.float64))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(cout, dtype=torch.float64))
        else:
            self.register_parameter("bias", None)
        scalar = torch.zeros(N_BLADES, dtype=torch.float64)
        scalar[0] = 1.0
        self.register_buffer("scalar_blade", scalar, persistent=False)

    @torch.no_grad()
    def reset(self, gen: torch.Generator):
        self.weight.normal_(0.0, 1.0 / math.sqrt(self.cin), generator=gen)
        if self.bias is not None:
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_blade = self.weight.permute(2, 1, 0)[self.blade_grade]   # [8, Cin, Cout]
        y = torch.bmm(x.transpose(0, 1), per_blade).transpose(0, 1)  # [B, 8, Cout]
        if self.bias is not None:
            y = y + self.scalar_blade[:, None] * self.bias
        return y


class GradeNormalize(_G3Module):
    """x[g] / (sigmoid(a[c, g]) (|x[g]| - 1) + 1 + 1e-6), per channel c and grade g."""

    def __init__(self, channels: int, init: float = 0.0):
        super().__init__()
        self.init = init
        self.a = torch.nn.Parameter(torch.empty(channels, N_GRADES, dtype=torch.float64))

    @torch.no_grad()
    def reset(self, gen: torch.Generator):
        self.a.fill_(self.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = _grade_sums(x)                                            # [B, 4, C]
        norm = (q * q + EPS_SMOOTH) ** 0.25
        denom = torch.sigmoid(self.a.T) * (norm - 1.0) + 1.0 + EPS_NORM
        return x / denom[:, self.blade_grade]


class GradeSiLU(_G3Module):
    """Grade g gated by sigmoid(a[c, g] s_g + b[c, g]); s_0 = the scalar, s_g = q_g (g >= 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.a = torch.nn.Parameter(torch.empty(channels, N_GRADES, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.empty(channels, N_GRADES, dtype=torch.float64))

    @torch.no_grad()
    def reset(self, gen: torch.Generator):
        self.a.fill_(1.0)
        self.b.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = _grade_sums(x)
        s = torch.cat([x[:, :1], q[:, 1:]], dim=1)                    # [B, 4, C]
        gate = torch.sigmoid(self.a.T * s + self.b.T)
        return gate[:, self.blade_grade] * x


class SteerableProduct(_G3Module):
    """(left(x) + sum_n sum_p w[m, n, p] grade_k(grade_i(x[n]) grade_j(r[n]))) / sqrt(2), with
    r = normalize(right(x)); paths p = (i, j, k) in lexicographic order (see `PATHS`)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.right = GradeLinear(cin, cin, bias=False)
        self.normalize = GradeNormalize(cin, init=0.0)
        self.left = GradeLinear(cin, cout, bias=True)
        self.weight = torch.nn.Parameter(torch.empty(cout, cin, N_PATHS, dtype=torch.float64))
        self.register_buffer("right_of", torch.from_numpy(RIGHT_OF), persistent=False)
        self.register_buffer("pair_sign", torch.from_numpy(PAIR_SIGN), persistent=False)
        self.register_buffer("pair_path", torch.from_numpy(PAIR_PATH), persistent=False)

    @torch.no_grad()
    def reset(self, gen: torch.Generator):
        self.right.reset(gen)
        self.normalize.reset(gen)
        self.left.reset(gen)
        self.weight.normal_(0.0, 1.0 / math.sqrt(self.cin * N_GRADES), generator=gen)

    def product_term(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """sum_n sum_p w[m, n, p] grade_k(grade_i(x[n]) grade_j(r[n])), [B, 8, Cout]."""
        b, n = x.shape[0], x.shape[2]
        # pairs[b, o, i, n] = x[b, i, n] * r[b, k(o, i), n]
        pairs = r[:, self.right_of] * x[:, None]
        # the signed path weight of each pair, [o, (i, n), Cout]
        v = (self.weight[:, :, self.pair_path] * self.pair_sign).permute(2, 3, 1, 0)
        v = v.reshape(N_BLADES, N_BLADES * n, self.cout)
        out = torch.bmm(pairs.view(b, N_BLADES, N_BLADES * n).transpose(0, 1), v)
        return out.transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.normalize(self.right(x))
        return (self.left(x) + self.product_term(x, r)) * (1.0 / math.sqrt(2.0))


class O3CGMLP(torch.nn.Module):
    """points [B, 3, 3] (rows are the three vectors) -> [B], the predicted det / 10."""

    def __init__(self, hidden: int = 32, seed: int = 0, layers: int = 4):
        super().__init__()
        self.hidden = hidden
        blocks = [SteerableProduct(3, hidden)]
        blocks += [GradeSiLU(hidden) for _ in range(layers - 1)]
        blocks += [SteerableProduct(hidden, 1)]
        self.net = torch.nn.Sequential(*blocks)
        gen = torch.Generator().manual_seed(seed)
        for block in self.net:
            block.reset(gen)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        # vector j of a sample is channel j, its coordinates the coefficients of blades 1..3
        mv = F.pad(points.transpose(1, 2), (0, 0, 1, N_BLADES - 4))  # [B, 8, 3]
        return self.net(mv)[:, N_BLADES - 1, 0]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------------------------
# Data, training, evaluation.

def o3_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(points [n, 3, 3], target [n]) as float64 tensors: standard normal points from
    numpy.random.default_rng(seed), target = det(points) / 10 (rows are the vectors)."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, 3, 3))
    target = np.linalg.det(points) / 10.0
    return torch.from_numpy(points), torch.from_numpy(target)


def loss_and_grad(model, points: torch.Tensor, target: torch.Tensor) -> float:
    """One forward and backward of the mean squared error; the gradients are left in .grad."""
    model.zero_grad(set_to_none=True)
    loss = torch.mean((model(points) - target) ** 2)
    loss.backward()
    return loss.item()


def train(model, points: torch.Tensor, target: torch.Tensor, steps: int, batch: int = 128,
          lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Adam for `steps` steps on mini-batches of `batch`, a fresh seeded shuffle each epoch, the
    last incomplete batch dropped; the per-step losses."""
    n = points.shape[0]
    per_epoch = n // batch
    if per_epoch == 0:
        raise ValueError(f"{n} samples make no full batch of {batch}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses, order = [], None
    for step in range(steps):
        k = step % per_epoch
        if k == 0:
            order = torch.from_numpy(rng.permutation(n))
        idx = order[k * batch:(k + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(points[idx]) - target[idx]) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def predict(model, points: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    return torch.cat([model(points[s:s + chunk]) for s in range(0, points.shape[0], chunk)])


def test_mse(model, points: torch.Tensor, target: torch.Tensor) -> float:
    return float(torch.mean((predict(model, points) - target) ** 2))


def random_orthogonal(rng: np.random.Generator, det: float) -> np.ndarray:
    """A Haar-random 3x3 orthogonal matrix with determinant det (+1 or -1)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) * det > 0 else -q


def equivariance_error(model, points: torch.Tensor, seed: int, transforms: int = 3) -> float:
    """max |f(Q x) - det(Q) f(x)| over `transforms` random rotations and as many reflections,
    each Q applied to all three vectors of every sample."""
    rng = np.random.default_rng(seed)
    base = predict(model, points)
    worst = 0.0
    for det in [1.0] * transforms + [-1.0] * transforms:
        q = torch.from_numpy(random_orthogonal(rng, det))
        moved = predict(model, torch.einsum("ij,bnj->bni", q, points))
        worst = max(worst, float(torch.max(torch.abs(moved - det * base))))
    return worst


# ----------------------------------------------------------------------------------------------
# Self-check.

def _dense_product_term(layer: SteerableProduct, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The product term by the dense route (a full [8, 8, 8] table with per-path weights), as a
    check of `SteerableProduct.product_term`."""
    table = torch.zeros(N_BLADES, N_BLADES, N_BLADES, dtype=torch.float64)   # [left, right, out]
    path = torch.zeros(N_BLADES, N_BLADES, N_BLADES, dtype=torch.long)
    for a in range(N_BLADES):
        for b in range(N_BLADES):
            o = PRODUCT_INDEX[a, b]
            table[a, b, o] = PRODUCT_SIGN[a, b]
            path[a, b, o] = _PATH_OF[(BLADE_GRADE[a], BLADE_GRADE[b], BLADE_GRADE[o])]
    w = layer.weight[:, :, path] * table                                  # [m, n, i, k, o]
    return torch.einsum("zin,mniko,zkn->zom", x, w, r)


def self_check(verbose: bool = True) -> None:
    """Asserts the facts of the port; prints what it measured."""
    def say(*a):
        if verbose:
            print(*a, flush=True)

    import clifford
    layout, _ = clifford.Cl(3)
    assert [tuple(t) for t in layout.bladeTupList] == [
        tuple(int(c) for c in name[1:]) for name in BLADE_NAMES], "clifford's blade order differs"
    for a, ba in enumerate(layout.blades_list):
        for b, bb in enumerate(layout.blades_list):
            want = np.zeros(N_BLADES)
            want[PRODUCT_INDEX[a, b]] = PRODUCT_SIGN[a, b]
            assert np.array_equal(np.asarray((ba * bb).value, dtype=float), want), (a, b)
    say("product table of G3: matches clifford.Cl(3)")
    assert N_PATHS == 20 and N_GRADES == 3 + 1, (N_PATHS, N_GRADES)
    say(f"grade paths: {N_PATHS}, lexicographic: {PATHS}")

    for width, count in ((32, 8145), (96, 48913)):
        got = O3CGMLP(width).parameter_count()
        assert got == count, (width, got, count)
        say(f"parameters at C = {width}: {got}")

    torch.manual_seed(0)
    layer = SteerableProduct(5, 4)
    layer.reset(torch.Generator().manual_seed(1))
    x = torch.randn(7, N_BLADES, 5, dtype=torch.float64)
    r = torch.randn(7, N_BLADES, 5, dtype=torch.float64)
    with torch.no_grad():
        gap = float(torch.max(torch.abs(layer.product_term(x, r) - _dense_product_term(layer, x, r))))
    assert gap < 1e-13, gap
    say(f"sparse product term vs dense table: max difference {gap:.2g}")

    model = O3CGMLP(8, seed=0)
    pts, _ = o3_data(64, seed=5)
    err = equivariance_error(model, pts, seed=6)
    scale = float(torch.max(torch.abs(predict(model, pts))))
    assert err < 1e-12, err
    say(f"equivariance at C = 8 on 64 samples: max |f(Qx) - det(Q) f(x)| = {err:.2g} "
        f"(outputs up to {scale:.2g})")

    tiny = O3CGMLP(2, seed=3)
    names = [name for name, _ in tiny.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in tiny.parameters())
    pts3, _ = o3_data(3, seed=7)
    pts3 = pts3.clone().requires_grad_(True)

    def f(points, *ps):
        return torch.func.functional_call(tiny, dict(zip(names, ps)), (points,))

    assert torch.autograd.gradcheck(f, (pts3, *params), eps=1e-6, atol=1e-8, rtol=1e-6)
    say(f"gradcheck at C = 2, 3 samples, {sum(p.numel() for p in params)} parameters + inputs: ok")

    model = O3CGMLP(8, seed=0)
    xs, ys = o3_data(1024, seed=1)
    t0 = time.perf_counter()
    losses = train(model, xs, ys, steps=200)
    took = time.perf_counter() - t0
    assert losses[-1] < losses[0], (losses[0], losses[-1])
    say(f"200 Adam steps at C = 8 on 1,024 samples ({took:.1f} s): loss {losses[0]:.4g} -> "
        f"{losses[-1]:.4g} (mean of the last 10: {statistics.mean(losses[-10:]):.4g})")


# ----------------------------------------------------------------------------------------------
# Timing.

def _median_ms(fn, seconds: float, most: int = 50, least: int = 3) -> tuple[float, int]:
    """Median wall time of fn() in ms over repeats bounded by `seconds` (at least `least`)."""
    times, spent = [], 0.0
    while len(times) < most and (len(times) < least or spent < seconds):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return statistics.median(times) * 1e3, len(times)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("widths", nargs="*", type=int, default=[8, 16, 32, 96])
    ap.add_argument("--batches", default="128,1024", help="comma-separated batch sizes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the forward")
    ap.add_argument("--seconds", type=float, default=2.0, help="time bound of one measurement")
    ap.add_argument("--check", action="store_true", help="run self_check() first")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b]
    torch.set_num_threads(args.threads)

    if args.check:
        self_check()
        print()

    points, target = o3_data(max(batches), seed=0)
    print(f"O3CGMLP loss_and_grad, float64, torch {torch.__version__}, {args.threads} threads, "
          f"median ms (repeats)")
    head = f"{'width':>5} {'params':>7}" + "".join(f" {'eager@' + str(b):>16}" for b in batches)
    if args.compile:
        head += "".join(f" {'compiled@' + str(b):>18}" for b in batches)
    print(head)
    for width in args.widths:
        model = O3CGMLP(width, seed=0)
        row = f"{width:>5} {model.parameter_count():>7}"
        for b in batches:
            xs, ys = points[:b], target[:b]
            loss_and_grad(model, xs, ys)                       # warm-up
            ms, reps = _median_ms(lambda: loss_and_grad(model, xs, ys), args.seconds)
            row += f" {ms:>10.3f} ({reps:>3})"
        notes = []
        if args.compile:
            for b in batches:
                xs, ys = points[:b], target[:b]
                try:
                    torch._dynamo.reset()
                    compiled = torch.compile(model, dynamic=False)
                    t0 = time.perf_counter()
                    loss_and_grad(compiled, xs, ys)            # compiles forward and backward
                    first = time.perf_counter() - t0
                    ms, reps = _median_ms(lambda: loss_and_grad(compiled, xs, ys), args.seconds)
                    row += f" {ms:>12.3f} ({reps:>3})"
                    notes.append(f"compile+first call at batch {b}: {first:.1f} s")
                except Exception as exc:                      # report, do not crash
                    row += f" {'failed':>18}"
                    text = str(exc).strip().splitlines()
                    notes.append(f"torch.compile failed at batch {b}: {type(exc).__name__}: "
                                 f"{text[0] if text else ''}")
        print(row, flush=True)
        for note in notes:
            print(f"      {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
