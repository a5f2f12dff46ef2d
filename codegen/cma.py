"""The covariance matrix adaptation evolution strategy (LANGUAGE §12): a search distribution over
flat coordinates, asked for candidates and told their losses.

The (mu/mu_W, lambda)-CMA-ES with the active covariance update, as Hansen's tutorial (arXiv
1604.00772, table 1 and its active variant) defines it, with pycma's default constants (which
differ from the tutorial's table: c_sigma = (mu_eff + 2) / (n + mu_eff + 3) at most 1/2, c_1
scaled by min(1, lambda / 6), 0.25 added to c_mu's numerator, and d_sigma's mu_eff term scaled
by max(1, 3 (1 - 2^(-n/9)))): weighted
recombination of the best half, cumulative step-size adaptation, rank-one and rank-mu covariance
updates (the worst half of the population with negative weights), and the stall of the
rank-one path where the step-size path is long (h_sigma).  The coordinates are whatever the
caller says they are: a Euclidean parameter's coefficients, or a rotor's body-frame bivector,
whose candidates the caller maps through the exponential map at the mean (codegen.runtime), so
the distribution itself is always a Gaussian in a vector space.

Every random number comes from one numpy Generator seeded by the caller, so a search is the same
from run to run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from phg.plan.buffers import search_words
from phg.program import default_population


@dataclass(frozen=True)
class Constants:
    """The strategy parameters of a dimension n and population lambda (pycma's defaults)."""
    n: int
    population: int
    mu: int
    weights: np.ndarray           # lambda weights, the first mu positive (sum 1), the rest negative
    mueff: float
    c_sigma: float
    d_sigma: float
    c_c: float
    c_1: float
    c_mu: float
    chi_n: float                  # E |N(0, I)|

    @staticmethod
    def of(n: int, population: int = 0) -> "Constants":
        lam = population or default_population(n)
        if n < 1 or lam < 2:
            raise ValueError(f"a search needs at least 1 coordinate and a population of 2; got {n} and {lam}")
        mu = lam // 2
        raw = math.log((lam + 1) / 2) - np.log(np.arange(1, lam + 1))
        pos, neg = raw[:mu], raw[mu:]
        mueff = pos.sum() ** 2 / (pos ** 2).sum()
        mueff_neg = neg.sum() ** 2 / (neg ** 2).sum() if len(neg) and (neg ** 2).sum() > 0 else 0.0
        c_sigma = min(0.5, (mueff + 2) / (n + mueff + 3))
        inner = max(1.0, 3 * (1 - 0.5 ** (n / 9)))
        d_sigma = 1 + 2 * max(0.0, inner * math.sqrt((mueff - 1) / (n + 1)) - 1) + c_sigma
        c_c = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
        alpha_cov = 2.0
        c_1 = min(1.0, lam / 6) * alpha_cov / ((n + 1.3) ** 2 + mueff)
        c_mu = min(1 - c_1, alpha_cov * (0.25 + mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + alpha_cov * mueff / 2))
        alpha_mu = 1 + c_1 / c_mu if c_mu > 0 else 1.0
        alpha_mueff = 1 + 2 * mueff_neg / (mueff + 2)
        alpha_posdef = (1 - c_1 - c_mu) / (n * c_mu) if c_mu > 0 else 0.0
        weights = np.empty(lam)
        weights[:mu] = pos / pos.sum()
        if len(neg):
            weights[mu:] = min(alpha_mu, alpha_mueff, alpha_posdef) * neg / np.abs(neg).sum()
        chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        return Constants(n, lam, mu, weights, mueff, c_sigma, d_sigma, c_c, c_1, c_mu, chi_n)


class Search:
    """A CMA-ES search distribution N(mean, sigma^2 C) over n coordinates, held in one flat float64
    array of search_words(n, lambda) words (the memory plan's "search" buffer), so a generation
    allocates nothing but its eigendecomposition (the plan's "search temporaries").

    ask() gives lambda candidates (rows); tell(losses) moves the distribution.  The caller may
    take the mean out (recentre) after a tell: a rotor's mean step is folded into the rotor,
    since the paths and C are in body coordinates."""

    def __init__(self, mean, sigma: float, population: int = 0, seed: int = 0, storage: np.ndarray | None = None):
        mean = np.asarray(mean, dtype=np.float64).ravel()
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma}")
        self.k = k = Constants.of(len(mean), population)
        n, lam = len(mean), k.population
        words = search_words(n, lam)
        storage = np.zeros(words) if storage is None else storage
        if storage.shape != (words,):
            raise ValueError(f"a search over {n} coordinates with a population of {lam} keeps {words} words")
        cuts = iter(np.cumsum([0, n, n, n, n, n, n, n * n, n * n, n * n, lam * n, lam * n, lam * n, lam, lam, lam]))
        start = next(cuts)
        parts = []
        for end in cuts:
            parts.append(storage[start:end])
            start = end
        (self.mean, self.p_sigma, self.p_c, self.D, self._step, self._white, C, B, scratch, z, y, x,
         self.losses, order, self._weights) = parts
        self.C, self.B, self._nn = C.reshape(n, n), B.reshape(n, n), scratch.reshape(n, n)
        self._z, self._y, self._x = z.reshape(lam, n), y.reshape(lam, n), x.reshape(lam, n)
        self._order = order
        self.mean[:] = mean
        self.p_sigma[:] = 0.0
        self.p_c[:] = 0.0
        self.C[:] = np.eye(n)
        self.B[:] = np.eye(n)
        self.D[:] = 1.0
        self.sigma = float(sigma)
        self.generation = 0
        self.evaluations = 0
        self.rng = np.random.default_rng(seed)
        self._asked = False

    @property
    def n(self) -> int:
        return len(self.mean)

    @property
    def population(self) -> int:
        return self.k.population

    def ask(self) -> np.ndarray:
        """lambda candidates, rows of mean + sigma B D z with z ~ N(0, I) (a view, rewritten by
        the next ask)."""
        self.rng.standard_normal(out=self._z)
        np.multiply(self._z, self.D, out=self._y)
        np.matmul(self._y, self.B.T, out=self._x)
        self._y[:] = self._x                            # y = B D z
        np.multiply(self._y, self.sigma, out=self._x)
        self._x += self.mean
        self._asked = True
        return self._x

    def tell(self, losses) -> None:
        """Move the distribution by the losses of the candidates the last ask() gave."""
        k, n = self.k, self.n
        losses = np.asarray(losses, dtype=np.float64)
        if not self._asked or losses.shape != (k.population,):
            raise ValueError(f"tell takes the {k.population} losses of the last ask()")
        self._asked = False
        # a NaN loss ranks last (a candidate the loss cannot be taken at is the worst)
        np.copyto(self.losses, losses)
        self.losses[np.isnan(self.losses)] = np.inf
        order = np.argsort(self.losses, kind="stable")
        self._order[:] = order
        self._y[:] = self._y[order]
        self._z[:] = self._z[order]
        self.evaluations += k.population
        self.generation += 1
        w = k.weights
        np.matmul(w[:k.mu], self._y[:k.mu], out=self._step)                    # <y>_w
        self.mean += self.sigma * self._step
        spare = self._nn[0]
        np.matmul(self.B.T, self._step, out=spare)                              # C^-1/2 <y>_w
        spare /= self.D
        np.matmul(self.B, spare, out=self._white)
        self.p_sigma *= 1 - k.c_sigma
        self.p_sigma += math.sqrt(k.c_sigma * (2 - k.c_sigma) * k.mueff) * self._white
        norm = float(np.linalg.norm(self.p_sigma))
        h_sigma = norm / math.sqrt(1 - (1 - k.c_sigma) ** (2 * self.generation)) < (1.4 + 2 / (n + 1)) * k.chi_n
        self.p_c *= 1 - k.c_c
        if h_sigma:
            self.p_c += math.sqrt(k.c_c * (2 - k.c_c) * k.mueff) * self._step
        # the negative weights scaled so each of their vectors has the Mahalanobis length sqrt(n)
        # (|C^-1/2 y_i| = |z_i|)
        wo = self._weights
        wo[:] = w
        for i in range(k.mu, k.population):
            wo[i] = w[i] * n / max(float(self._z[i] @ self._z[i]), 1e-300)
        delta = (1 - h_sigma) * k.c_c * (2 - k.c_c)
        self.C *= 1 + k.c_1 * delta - k.c_1 - k.c_mu * w.sum()
        np.outer(self.p_c, self.p_c, out=self._nn)
        self.C += k.c_1 * self._nn
        np.multiply(self._y, wo[:, None], out=self._x)                          # rows w_i y_i
        np.matmul(self._x.T, self._y, out=self._nn)
        self.C += k.c_mu * self._nn
        self.sigma *= math.exp(min(1.0, (k.c_sigma / k.d_sigma) * (norm / k.chi_n - 1)))
        self._decompose()

    def _decompose(self) -> None:
        np.add(self.C, self.C.T, out=self._nn)
        np.multiply(self._nn, 0.5, out=self.C)
        values, vectors = np.linalg.eigh(self.C)                 # the search's one allocation
        np.maximum(values, 1e-300, out=values)
        np.sqrt(values, out=self.D)
        self.B[:] = vectors

    def recentre(self, coordinates) -> np.ndarray:
        """The mean's `coordinates` (an index array), handed to the caller to fold into its
        parameters, and set to zero here."""
        out = self.mean[coordinates].copy()
        self.mean[coordinates] = 0.0
        return out

    def state(self) -> dict:
        """What M.search shows: the fitted uncertainty."""
        return {"mean": self.mean.copy(), "sigma": self.sigma, "covariance": self.sigma ** 2 * self.C,
                "generation": self.generation, "evaluations": self.evaluations}
