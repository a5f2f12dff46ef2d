"""The numbers behind an equivariance claim: f(g . x) against chi(g) g . f(x) for random group
elements, with clifford's products (tests/cliffeval.py) and versors of its own."""
from __future__ import annotations

import numpy as np

from cliffeval import Reference


def element(ref: Reference, group, rng, reflect: bool | None = None):
    """A random element of the group as a versor V with V ~V = 1, and det(g)."""
    alg = group.alg
    euclidean = [1 << i for i, b in enumerate(alg.basis) if b.square == 1]

    def unit():
        v = ref.mv({m: rng.normal() for m in euclidean})
        return v / np.sqrt(float((v * v)(0)))

    v = ref.mv({0: 1.0})
    for _ in range(rng.choice([2, 4])):
        v = v * unit()
    if group.kind in ("E", "SE"):
        null = next(1 << i for i, b in enumerate(alg.basis) if b.square == 0)
        t = ref.mv({m: rng.normal() for m in euclidean})
        v = (ref.mv({0: 1.0}) + 0.5 * ref.mv({null: 1.0}) * t) * v
    det = 1
    if group.reflection is not None and (rng.random() < 0.5 if reflect is None else reflect):
        v, det = v * unit(), -1
    return v, det


def act(v, det: int, x):
    return v * (x.gradeInvol() if det < 0 else x) * ~v


def deviation(graph, value_id: str, parity: int, trials: int = 10, seed: int = 0) -> float:
    """The largest |f(g . x) - chi(g) g . f(x)| over random admissible inputs and group elements,
    relative to the size of f (reflections in half the trials where the group has them)."""
    ref = Reference(graph)
    rng = np.random.default_rng(seed)
    sym = graph.symmetry
    worst = 0.0
    leaves = [v for v in graph.values.values() if graph.producer(v.id) is None and v.const is None]
    for k in range(trials):
        inputs = {v.id: ref.random_value(v, rng) for v in leaves}
        v, det = element(ref, sym.group, rng, reflect=k % 2 == 1)
        moved = {vid: ({ch: act(v, det, m) for ch, m in val.items()}
                       if graph.values[vid].role == "input" and vid not in sym.fixed else val)
                 for vid, val in inputs.items()}
        try:
            before = ref.evaluate(inputs, {value_id})[value_id]
            after = ref.evaluate(moved, {value_id})[value_id]
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
            continue
        chi = det if parity == -1 else 1
        for ch, m in before.items():
            expected = chi * act(v, det, m)
            scale = 1.0 + float(np.abs(m.value).max()) + float(np.abs(after[ch].value).max())
            if not (np.all(np.isfinite(after[ch].value)) and np.all(np.isfinite(expected.value))):
                continue
            worst = max(worst, float(np.abs((after[ch] - expected).value).max()) / scale)
    return worst
