"""Inference throughput of generated kernels against peers, as ratios taken in one run:

- a rotor sandwich plus a translation over N vectors in G3 (R >> x + t);
- a PGA motor applied to N points (M >> p).

Peers: a hand-fused Numba kernel for the same maths (the practical limit; same thread count),
kingdon's generated code on numpy arrays, and clifford's per-element products (timed on a slice and
scaled, since a million Python-level products take minutes).  kingdon is optional.
"""
from __future__ import annotations

import os
import tempfile
import time

import numba
import numpy as np

import phg

N = 1_000_000
CLIFFORD_SLICE = 2_000

G3_MODEL = """algebra G3 = Cl(3, 0, 0)
model Sandwich on G3 {
    param R: Rotor
    param t: Vector
    input x: Vector
    output y: Vector = R >> x + t
}
"""
PGA_MODEL = """algebra PGA = Cl(3, 0, 1)
model Move on PGA {
    param M: Motor
    input p: Trivector
    output q: Trivector = M >> p
}
"""


@numba.njit(cache=True, parallel=True)
def hand_rotor(x, r, t, out):
    """R x ~R + t with R = s + a e12 + b e13 + c e23, as a rotation matrix (the fused limit)."""
    s, a, b, c = r[0], r[1], r[2], r[3]
    m00, m01, m02 = s * s - a * a - b * b + c * c, 2 * (s * a - b * c), 2 * (s * b + a * c)
    m10, m11, m12 = -2 * (s * a + b * c), s * s - a * a + b * b - c * c, 2 * (s * c - a * b)
    m20, m21, m22 = 2 * (a * c - s * b), -2 * (s * c + a * b), s * s + a * a - b * b - c * c
    for i in numba.prange(x.shape[0]):
        x0, x1, x2 = x[i, 0], x[i, 1], x[i, 2]
        out[i, 0] = m00 * x0 + m01 * x1 + m02 * x2 + t[0]
        out[i, 1] = m10 * x0 + m11 * x1 + m12 * x2 + t[1]
        out[i, 2] = m20 * x0 + m21 * x1 + m22 * x2 + t[2]


@numba.njit(cache=True, parallel=True)
def hand_motor(p, m, out):
    """M p ~M for a PGA motor and a point (e012, e013, e023, e123), as a 4x4 matrix per batch."""
    # The matrix of the linear map p -> M p ~M, columns the images of the four basis trivectors.
    mat = np.empty((4, 4))
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1.0
        mat[:, j] = _motor_point(m, e)
    for i in numba.prange(p.shape[0]):
        a, b, c, d = p[i, 0], p[i, 1], p[i, 2], p[i, 3]
        for k in range(4):
            out[i, k] = mat[k, 0] * a + mat[k, 1] * b + mat[k, 2] * c + mat[k, 3] * d


@numba.njit(cache=True)
def _motor_point(m, p):
    # Dense geometric products on the 16 blades of PGA, only to build the 4x4 matrix above once.
    full = np.zeros(16)
    full[0], full[5], full[6], full[7], full[8], full[9], full[10], full[15] = m
    x = np.zeros(16)
    x[11], x[12], x[13], x[14] = p
    rev = full.copy()
    for k in (5, 6, 7, 8, 9, 10):
        rev[k] = -rev[k]
    y = _gp(_gp(full, x), rev)
    return np.array([y[11], y[12], y[13], y[14]])


MASKS = np.array([0, 1, 2, 4, 8, 3, 5, 9, 6, 10, 12, 7, 11, 13, 14, 15])   # canonical order, e0 = bit 0


@numba.njit(cache=True)
def _gp(a, b):
    out = np.zeros(16)
    pos = np.zeros(16, dtype=np.int64)
    for k in range(16):
        pos[MASKS[k]] = k
    for i in range(16):
        for j in range(16):
            ma, mb = MASKS[i], MASKS[j]
            if ma & mb & 1:
                continue                   # e0 e0 = 0
            swaps, x = 0, ma >> 1
            while x:
                swaps += bin_count(x & mb)
                x >>= 1
            out[pos[ma ^ mb]] += (-1.0 if swaps & 1 else 1.0) * a[i] * b[j]
    return out


@numba.njit(cache=True)
def bin_count(x):
    n = 0
    while x:
        n += x & 1
        x >>= 1
    return n


def best(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        g3 = phg.build(phg.loads(G3_MODEL, "sandwich.phg"), tmp + "/g3").Sandwich()
        pga = phg.build(phg.loads(PGA_MODEL, "move.phg"), tmp + "/pga").Move()
    r = rng.normal(size=4)
    g3.params["R"] = r / np.linalg.norm(r)
    g3.params["t"] = rng.normal(size=3)
    x = rng.normal(size=(N, 3))
    motor = _random_motor(rng)
    pga.params["M"] = motor
    p = np.column_stack([rng.normal(size=(N, 3)), np.ones(N)])        # e012, e013, e023, e123

    out3, out4 = np.empty((N, 3)), np.empty((N, 4))
    # The hand-fused kernels allocate their results, as predict() does.
    cases = [("rotor sandwich + translation, G3", lambda: g3.predict(x=x),
              lambda: hand_rotor(x, g3.params["R"], g3.params["t"], np.empty((N, 3))),
              _kingdon_rotor(g3.params["R"], g3.params["t"], x), _clifford_rotor(g3.params["R"], g3.params["t"], x)),
             ("motor applied to points, PGA", lambda: pga.predict(p=p), lambda: hand_motor(p, motor, np.empty((N, 4))),
              _kingdon_motor(motor, p), _clifford_motor(motor, p))]
    assert np.allclose(g3.predict(x=x)["y"][:10], (hand_rotor(x, g3.params["R"], g3.params["t"], out3), out3)[1][:10])
    assert np.allclose(pga.predict(p=p)["q"][:10], (hand_motor(p, motor, out4), out4)[1][:10])
    for name, ours, hand, king, cliff in cases:
        t_ours, t_hand = best(ours), best(hand)
        t_king = best(king) if king else None
        t_cliff = best(cliff, 1) * N / CLIFFORD_SLICE
        rows.append({"case": name, "phg_ms": 1e3 * t_ours, "vs_hand": t_hand / t_ours,
                     "vs_kingdon": t_king / t_ours if t_king else None, "vs_clifford": t_cliff / t_ours,
                     "hand_ms": 1e3 * t_hand, "kingdon_ms": 1e3 * t_king if t_king else None,
                     "clifford_ms": 1e3 * t_cliff})
    return rows


def _random_motor(rng) -> np.ndarray:
    """A normalised PGA motor T R, on the Motor layout (1, e01, e02, e03, e12, e13, e23, e0123)."""
    from phg import multivector as mv
    from phg.algebra import Algebra
    alg = Algebra.from_signature("PGA", 3, 0, 1)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    rotor, translator = mv.zero(alg), mv.blade(alg, 0)
    for mask, c in zip([0, 0b0110, 0b1010, 0b1100], q):               # 1, e12, e13, e23
        rotor[mask] = c
    for mask, c in zip([0b0011, 0b0101, 0b1001], rng.normal(size=3) / 2):   # e01, e02, e03: e0 u / 2
        translator[mask] = c
    motor = mv.product(alg, "gp", translator, rotor)
    return np.array([motor[m] for m in (0, 0b0011, 0b0101, 0b1001, 0b0110, 0b1010, 0b1100, 0b1111)])


def _kingdon_rotor(r, t, x):
    try:
        from kingdon import Algebra
    except ImportError:
        return None
    alg = Algebra(3, 0, 0)
    xs, rr, tt = alg.vector(np.ascontiguousarray(x.T)), alg.evenmv(r), alg.vector(t)
    return lambda: (rr >> xs) + tt


def _kingdon_motor(m, p):
    try:
        from kingdon import Algebra
    except ImportError:
        return None
    alg = Algebra(3, 0, 1)
    mm = alg.evenmv(m)
    ps = alg.trivector(np.ascontiguousarray(p.T))
    return lambda: mm >> ps


def _clifford_rotor(r, t, x):
    import clifford
    layout, blades = clifford.Cl(3)
    e1, e2, e3 = blades["e1"], blades["e2"], blades["e3"]
    R = r[0] + r[1] * blades["e12"] + r[2] * blades["e13"] + r[3] * blades["e23"]
    T = t[0] * e1 + t[1] * e2 + t[2] * e3
    pts = [a * e1 + b * e2 + c * e3 for a, b, c in x[:CLIFFORD_SLICE]]
    return lambda: [R * v * ~R + T for v in pts]


def _clifford_motor(m, p):
    import clifford
    layout, blades = clifford.Cl(3, 0, 1, firstIdx=0)
    names = ["", "e01", "e02", "e03", "e12", "e13", "e23", "e0123"]
    M = sum(c * (blades[n] if n else 1) for c, n in zip(m, names))
    pts = [a * blades["e012"] + b * blades["e013"] + c * blades["e023"] + d * blades["e123"]
           for a, b, c, d in p[:CLIFFORD_SLICE]]
    return lambda: [M * q * ~M for q in pts]


def main(argv: list[str]) -> int:
    rows = run()
    print(f"threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}), "
          f"N = {N:,}")
    print("| case | phg predict ms | phg / hand-fused Numba (>= 0.9) | phg / kingdon (>= 3) | phg / clifford (>= 50) |")
    print("|---|---|---|---|---|")
    for r in rows:
        king = f"{r['vs_kingdon']:.1f}x" if r["vs_kingdon"] else "kingdon not installed"
        print(f"| {r['case']} | {r['phg_ms']:.1f} | {r['vs_hand']:.2f}x | {king} | {r['vs_clifford']:.0f}x |")
    return 0
