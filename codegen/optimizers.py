"""The optimizers of LANGUAGE §6 as one in-place Numba step over flat coordinates.

Coordinates are a Euclidean parameter's coefficients or a Rotor/Motor parameter's tangent
bivector (codegen.manifold), so Adam's and prm's moments live in the tangent space in body
coordinates.  The step writes the direction d to subtract (R <- R exp(-d) on the manifold) and
allocates nothing.

prm is Adam gated per coordinate by its signal-to-noise ratio: with m-hat, v-hat Adam's
bias-corrected moments and s-hat the bias-corrected running mean (rate beta2) of (g - m)^2, m
the first moment after this step's update, the step is scaled by m-hat^2 / (m-hat^2 + softness
s-hat + eps).
"""
from __future__ import annotations

import math

import numba

KINDS = {"sgd": 0, "adam": 1, "prm": 2}


@numba.njit(cache=True)
def direction(kind, g, state, t, lr, beta1, beta2, eps, softness, out):
    """out = the step for gradient g at step t >= 1; state [moments, coords] is updated."""
    if kind == 0:
        for i in range(g.shape[0]):
            out[i] = lr * g[i]
        return
    c1 = 1.0 - beta1 ** t
    c2 = 1.0 - beta2 ** t
    for i in range(g.shape[0]):
        m = beta1 * state[0, i] + (1.0 - beta1) * g[i]
        v = beta2 * state[1, i] + (1.0 - beta2) * g[i] * g[i]
        state[0, i], state[1, i] = m, v
        mh = m / c1
        d = lr * mh / (math.sqrt(v / c2) + eps)
        if kind == 2:
            s = beta2 * state[2, i] + (1.0 - beta2) * (g[i] - m) ** 2
            state[2, i] = s
            d *= mh * mh / (mh * mh + softness * (s / c2) + eps)
        out[i] = d
