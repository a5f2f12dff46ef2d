"""A prior's scale by empirical Bayes (LANGUAGE §13): the scale that maximises the Laplace
evidence of the labelled data (MacKay, Neural Computation 1992), on the parameters the data do
not contradict, so a poor teacher is trusted little and a teacher wrong about one parameter is
not trusted on it at all.

fit(prior) minimises L(theta) + 1/(2N) d^T S^1/2 P S^1/2 d (L the batch-mean loss over N
samples, S each coordinate's scale).  Read as a negative log posterior, with the samples' losses
a Gaussian negative log-likelihood of precision beta (beta/2 sum_i loss_i) and a prior of
precision Q = alpha P on the parameters kept (S = 2 alpha / beta there, 0 elsewhere), the
evidence is stationary where

    d . Q d = gamma,   gamma = sum over kept p of (rank P_pp - tr((A^-1 Q)_pp)),   A = (beta N / 2) H + Q,

H the Hessian of L at the MAP (central differences of the gradient in the model's coordinates)
and gamma the coordinates the data determine; each round rescales alpha by gamma / d . Q d.
beta = (N K - gamma) / (sum_i loss_i), K the label coefficients a sample has (the components of
the inputs the loss reads and no output does): a squared error's noise precision with the
coordinates the fit spent taken off.  Where the loss reads no such input, beta comes from the
information identity (E[g g^T] = E[Hessian] of a negative log-likelihood): 2 tr(H) / tr(mean
g_i g_i^T) over the per-sample gradients g_i.  Each round fits the MAP at the current scale
from the parameters fit was called with (the optimizer restarted) and ends the rounds when the
scale moves by less than 5%.  The evidence can have two stationary points, one that trusts the
teacher and one that hardly does, so the rounds start once from scale 1 and once from 100 N, and
the scale of the higher Laplace evidence (log_evidence) is taken.

One scale pools the evidence of every kept parameter's coordinates (with few labels, a scale
per parameter is estimated from too few coordinates to be steady); but a Gaussian prior pooled
over a parameter the teacher gets wrong pulls the fit its way.  So first the data are checked
against the prior, parameter by parameter (a prior-data conflict check, Evans and Moshonov,
Bayesian Analysis 2006): the fit without the prior, its Laplace covariance C = (beta N / 2 H)^-1,
and z_p^2 = d_p^T (C_pp)^-1 d_p, chi-square with rank P_pp degrees of freedom were the teacher
right about p.  Where z_p^2 passes its 99.9% quantile the data contradict the teacher on p, and p
has no prior (scale 0).  Where the data determine fewer coordinates than the model has (fewer
label coefficients than coordinates, a network's symmetries), H is singular: C_pp^-1 is then the
Schur complement of H (with a pseudo-inverse), the test counts the coordinates of p the data
determine, and beta spends the rank of H, not every coordinate.  In such a model each
parameter alone is hardly determined (the others make up for it), so the parameters left are
also tested jointly, and where the data contradict them together no parameter has a prior.

These tests read the loss near the fit without the prior (its Hessian); a network's loss can be
far from quadratic between there and the teacher.  So a last check reads the loss itself: the
likelihood ratio of the fit with the chosen prior (the MAP) against the fit without it,
beta N (L_MAP - L_0).  As the MAP minimises the loss plus a penalty that is 0 at the teacher's
parameters, L_MAP <= L_teacher, and the ratio is at most the one at the teacher, chi-square with
rank H degrees of freedom were the teacher right.  Beyond its 99.9% quantile the data reject the
MAP itself, and the fit has no prior at all.
"""
from __future__ import annotations

import math

import numpy as np

ROUNDS = 8
TRUSTING = 100.0          # the other start of the fixed point: 100 N (the prior worth 100 times the data)
CONFLICT = 0.999           # the chi-square quantile beyond which the data contradict the prior
STEP = 1e-5                # central differences of the gradient, in coordinates
SETTLED = 0.05             # relative change of the scale that ends the rounds
SAMPLES = 1_000            # per-sample gradients, at most (evenly spaced)
LIMITS = (1e-12, 1e12)     # the scales kept within these, relative to 1
RELATIVE = 1e-8           # eigenvalues of a Hessian below this fraction of its largest: undetermined


def choose_scale(model, data, prior, steps=None, epochs=None, batch=None, callback=None):
    """({parameter: scale}, the final fit's history): fit with the prior at the evidence's scale (0 on
    the parameters the data contradict)."""
    from phg.prior import Prior

    start = model.params.arrays()
    names = model._training()["inputs"]
    arrays, n = model._inputs(data, names, training=True)
    n = n if names else 1
    labels = label_coefficients(model)
    blocks = {}
    for name, _, a, b in prior.coordinates:
        blocks.setdefault(name, []).append((a, b))
    index = {name: np.concatenate([np.arange(a, b) for a, b in spans]) for name, spans in blocks.items()}
    rank = {name: _rank(prior.precision[np.ix_(i, i)]) for name, i in index.items()}

    def fit(scales):
        model._restart(start)
        fixed = Prior(prior.model, prior.coordinates, prior.mean, prior.precision, dict(scales), prior.info)
        return model.fit(data, steps=steps, epochs=epochs, batch=batch, callback=callback, prior=fixed)

    none = {name: 0.0 for name in index}
    history = fit(none)                           # without the prior: the conflict checks
    h0 = hessian(model, arrays, n)
    loss0 = model._train_pass(arrays, n, versors=False)
    beta0 = noise_precision(model, arrays, n, h0, labels, loss0, None)
    if not (math.isfinite(beta0) and beta0 > 0):
        beta0 = None
    contradicted = conflicts(model, prior, index, rank, n, h0, beta0)
    if all(name in contradicted for name in index):
        return none, history
    kept = [p for p in index if p not in contradicted]

    def rounds(initial: float) -> tuple[dict, float]:
        """MacKay's fixed point from the scale `initial`: (the scales, the log evidence there)."""
        scales = {p: 0.0 if p in contradicted else initial for p in index}
        evidence = -math.inf
        for _ in range(ROUNDS):
            fit(scales)
            h = hessian(model, arrays, n)
            loss = model._train_pass(arrays, n, versors=False)
            d = model._deviation(prior)
            beta_now = None
            for _ in range(2):                    # beta needs gamma, gamma beta: twice settles it
                beta = beta_now or noise_precision(model, arrays, n, h, labels, loss, None)
                alpha = {p: beta * s / 2 for p, s in scales.items()}
                root = np.sqrt(np.concatenate([np.full(len(index[p]), alpha[p]) for p in index])[_order(index)])
                q = root[:, None] * prior.precision * root[None, :]
                a = beta * n / 2 * h + q
                try:
                    inner = np.linalg.solve(a, q)
                except np.linalg.LinAlgError:
                    return scales, evidence
                gamma = {p: min(max(rank[p] - float(np.trace(inner[np.ix_(i, i)])), 0.0), float(rank[p]))
                         for p, i in index.items()}
                beta_now = noise_precision(model, arrays, n, h, labels, loss, sum(gamma.values()))
            if not (math.isfinite(beta_now) and beta_now > 0):
                break
            qd = q @ d
            evidence = log_evidence(beta, n, loss, labels, d, q, a, np.concatenate([index[p] for p in kept]))
            spread = sum(float(d[index[p]] @ qd[index[p]]) for p in kept)
            step = alpha[kept[0]] * sum(gamma[p] for p in kept) / spread if spread > 0 else alpha[kept[0]]
            shared = min(max(2 * step / beta_now, LIMITS[0]), LIMITS[1])
            if abs(shared - scales[kept[0]]) <= SETTLED * scales[kept[0]]:
                break
            scales = {p: 0.0 if p in contradicted else shared for p in index}
        return scales, evidence

    found = [rounds(1.0), rounds(TRUSTING * n)]
    scales = max(found, key=lambda f: f[1])[0]
    history = fit(scales)
    dof = _rank(h0)
    if beta0 is not None and dof and any(scales.values()):
        from scipy.stats import chi2
        ratio = beta0 * n * (model._train_pass(arrays, n, versors=False) - loss0)
        if ratio > chi2.ppf(CONFLICT, dof):   # the data reject the MAP itself: no prior at all
            return none, fit(none)
    return scales, history


def log_evidence(beta: float, n: int, loss: float, labels: int, d, q, a, kept) -> float:
    """The Laplace log evidence, up to terms equal at every scale: the fit (-beta/2 sum loss_i,
    and the noise's normaliser N K/2 log beta where the labels give K), the prior at the MAP
    (-1/2 d^T Q d and its normaliser 1/2 log det Q over the coordinates with a prior), and the
    posterior's volume (-1/2 log det A)."""
    sign, det_q = np.linalg.slogdet(q[np.ix_(kept, kept)])
    sign_a, det_a = np.linalg.slogdet(a)
    if sign <= 0 or sign_a <= 0:
        return -math.inf
    return (-beta * n / 2 * loss + (n * labels / 2 * math.log(beta) if labels else 0.0)
            - 0.5 * float(d @ q @ d) + 0.5 * det_q - 0.5 * det_a)


def conflicts(model, prior, index: dict, rank: dict, n: int, h: np.ndarray, beta: float | None) -> set[str]:
    """The parameters on which the data, fitted without the prior (the model's parameters now, H
    the Hessian there and beta the noise precision), contradict the prior's mean at CONFLICT (see
    the module's doc): each parameter's own test, then one joint test of the parameters left
    (all of them contradicted where it fails)."""
    from scipy.stats import chi2

    if beta is None:
        return set()
    d = model._deviation(prior)

    def contradicted(i: np.ndarray) -> bool:
        """d_i^T C_ii^-1 d_i beyond its quantile, C_ii^-1 the Schur complement of beta N/2 H
        (a pseudo-inverse on the rest: the marginal's precision, as range(H_ri) lies in range(H_rr)
        for a positive semi-definite H), counted over the directions the data determine."""
        rest = np.setdiff1d(np.arange(h.shape[0]), i)
        info = h[np.ix_(i, i)]
        if rest.size:
            info = info - h[np.ix_(i, rest)] @ _pinv(h[np.ix_(rest, rest)]) @ h[np.ix_(rest, i)]
        info = beta * n / 2 * (info + info.T) / 2
        dof = _rank(info)
        return bool(dof) and float(d[i] @ info @ d[i]) > chi2.ppf(CONFLICT, dof)

    out = {p for p, i in index.items() if rank[p] and contradicted(i)}
    kept = [index[p] for p in index if p not in out and rank[p]]
    if len(kept) > 1 and contradicted(np.concatenate(kept)):
        out = set(index)
    return out


def _determined(values: np.ndarray) -> np.ndarray:
    """Which eigenvalues of a Hessian (symmetrised central differences) carry information: above
    RELATIVE of the largest and above the largest negative one's size, the level at which the
    differences' error and the loss's indefiniteness away from an exact minimum are not told
    apart from curvature."""
    top = max(values.max(initial=0.0), 1e-300)
    return values > max(RELATIVE * top, -values.min(initial=0.0))


def _pinv(h: np.ndarray) -> np.ndarray:
    """The pseudo-inverse of a symmetric positive semi-definite H on its determined directions."""
    values, vectors = np.linalg.eigh(h)
    keep = _determined(values)
    return (vectors[:, keep] / values[keep]) @ vectors[:, keep].T


def _order(index: dict) -> np.ndarray:
    """The permutation from the blocks' concatenation back to coordinate order."""
    return np.argsort(np.concatenate(list(index.values())), kind="stable")


def _rank(p: np.ndarray) -> int:
    return int(np.sum(_determined(np.linalg.eigvalsh(p)))) if p.size else 0


def label_coefficients(model) -> int:
    """K: the coefficients per sample of the inputs the loss reads and no output does (labels)."""
    spec = model.SPEC
    seen = set(spec["predict"]["inputs"])
    return sum(math.prod(spec["inputs"][k]["shape"]) * len(spec["inputs"][k]["layout"])
               for k in model._training()["inputs"] if k not in seen)


def coordinate_gradient(model, arrays, n: int) -> np.ndarray:
    """The batch-mean loss's gradient in the model's coordinates (a Rotor's body-frame bivector
    coordinates: the tangent its step uses)."""
    model._train_pass(arrays, n, versors=False)
    return model._gradient_coordinates(model._coordinates())


def hessian(model, arrays, n: int) -> np.ndarray:
    """The batch-mean loss's Hessian in the model's coordinates at its parameters, by central
    differences of coordinate_gradient, symmetrised."""
    coords = model._coordinates()
    size = coords[-1][3]
    base = model.params.arrays()
    here = model._origin(coords)
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


def noise_precision(model, arrays, n: int, h: np.ndarray, labels: int, loss: float, gamma: float | None) -> float:
    """beta: (N K - gamma) / (N loss) with K label coefficients a sample (gamma None: every
    coordinate the data determine spent, the rank of H); without labels, 2 tr(H) / tr(mean
    g_i g_i^T) over per-sample gradients g_i of the loss."""
    if labels:
        spent = _rank(h) if gamma is None else gamma
        return max(n * labels - spent, 1.0) / (n * loss) if loss > 0 else math.inf
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLES)).round().astype(np.int64))
    total = 0.0
    for i in rows:
        g = coordinate_gradient(model, [a[i:i + 1] for a in arrays], 1)
        total += float(g @ g)
    return 2 * float(np.trace(h)) / (total / len(rows)) if total > 0 else math.inf
