"""A prior's scale by empirical Bayes (LANGUAGE §13): the scale that maximises the Laplace
evidence of the labelled data (MacKay, Neural Computation 1992), so a teacher whose prior the
data contradict is trusted little.

fit(prior) minimises L(theta) + s / (2N) d^T P d (L the batch-mean loss over N samples).  Read
as a negative log posterior, with the loss a Gaussian negative log-likelihood of precision beta
per unit of loss (beta N / 2 L) and a prior of precision alpha P (s = 2 alpha / beta), the
evidence's stationary point in alpha is

    alpha = gamma / (d^T P d),   gamma = rank P - alpha tr(A^-1 P),   A = (beta N / 2) H + alpha P,

H the Hessian of L at the MAP (central differences of the gradient in the model's coordinates),
gamma the number of coordinates the data determine.  beta comes from the same samples by the
information identity E[g g^T] = E[Hessian] of a negative log-likelihood: the per-sample
gradients g_i of the loss give beta = 2 tr(H) / tr(mean g_i g_i^T).  Each round fits the MAP at
the current scale from the parameters fit was called with (optimizer restarted), re-estimates
alpha and beta there, and stops when the scale moves by less than 5%.
"""
from __future__ import annotations

import math

import numpy as np

ROUNDS = 6
STEP = 1e-5                # central differences of the gradient, in coordinates
SETTLED = 0.05             # relative change of the scale that ends the rounds
SAMPLES = 1_000            # per-sample gradients, at most (evenly spaced)


def choose_scale(model, data, prior, steps=None, epochs=None, batch=None, callback=None):
    """(scale, the final fit's history): fit with the prior at the evidence's scale."""
    from phg.prior import Prior

    start = {k: v.copy() for k, v in model.params.items()}
    arrays, n = model._inputs(data, model._training()["inputs"], training=True)
    names = model._training()["inputs"]
    n = n if names else 1
    values = np.linalg.eigvalsh(prior.precision)
    rank = int(np.sum(values > 1e-10 * max(values.max(initial=0.0), 1e-300)))
    scale = 1.0
    for _ in range(ROUNDS):
        model._restart(start)
        fixed = Prior(prior.model, prior.coordinates, prior.mean, prior.precision, scale, prior.info)
        history = model.fit(data, steps=steps, epochs=epochs, batch=batch, callback=callback, prior=fixed)
        h = hessian(model, arrays, n)
        beta = noise_precision(model, arrays, n, h)
        d = model._deviation(prior)
        spread = float(d @ prior.precision @ d)
        if not (math.isfinite(beta) and beta > 0) or rank == 0 or spread <= 0:
            break
        alpha = beta * scale / 2
        a = beta * n / 2 * h + alpha * prior.precision
        try:
            trace = float(np.trace(np.linalg.solve(a, prior.precision)))
        except np.linalg.LinAlgError:
            break
        gamma = min(max(rank - alpha * trace, 0.0), float(rank))
        new = max(2 * gamma / spread / beta, 0.0)
        settled = abs(new - scale) <= SETTLED * max(scale, 1e-300)
        scale = new
        if settled:
            break
    model._restart(start)
    fixed = Prior(prior.model, prior.coordinates, prior.mean, prior.precision, scale, prior.info)
    history = model.fit(data, steps=steps, epochs=epochs, batch=batch, callback=callback, prior=fixed)
    return scale, history


def coordinate_gradient(model, arrays, n: int) -> np.ndarray:
    """The batch-mean loss's gradient in the model's coordinates (a Rotor's body-frame bivector
    coordinates: the tangent its step uses)."""
    model._train_pass(arrays, n, versors=False)
    b = model._buffers
    coords = model._coordinates()
    out = np.empty(coords[-1][3])
    for name, kind, start, stop in coords:
        g = b["grads"][name]
        if kind == "tangent":
            r = model.params[name].reshape(-1, len(model.SPEC["params"][name]["layout"]))
            model._manifold[name][0](r, g.reshape(r.shape), out[start:stop].reshape(r.shape[0], -1))
        else:
            out[start:stop] = g.reshape(-1)
    return out


def hessian(model, arrays, n: int) -> np.ndarray:
    """The batch-mean loss's Hessian in the model's coordinates at its parameters, by central
    differences of coordinate_gradient, symmetrised."""
    coords = model._coordinates()
    size = coords[-1][3]
    base = {k: v.copy() for k, v in model.params.items()}
    # the coordinates of the parameters themselves: coefficients as they are, versors at 0
    here = np.concatenate([np.zeros(stop - start) if kind == "tangent" else base[name].reshape(-1)
                           for name, kind, start, stop in coords])
    out = np.empty((size, size))
    for j in range(size):
        sides = []
        for sign in (1.0, -1.0):
            x = here.copy()
            x[j] += sign * STEP
            model._set_coordinates(coords, x, base)
            sides.append(coordinate_gradient(model, arrays, n))
        out[:, j] = (sides[0] - sides[1]) / (2 * STEP)
    model.params = base
    return (out + out.T) / 2


def noise_precision(model, arrays, n: int, h: np.ndarray) -> float:
    """beta = 2 tr(H) / tr(mean over samples of g_i g_i^T), g_i the gradient of sample i's loss."""
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLES)).round().astype(np.int64))
    total = 0.0
    for i in rows:
        g = coordinate_gradient(model, [a[i:i + 1] for a in arrays], 1)
        total += float(g @ g)
    return 2 * float(np.trace(h)) / (total / len(rows)) if total > 0 else math.inf
