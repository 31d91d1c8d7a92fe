"""Generators for the synthetic data sets, one `make_<name>` per set.

Every generator has the signature `make_<name>(samples, noise, rng)` and returns
`(x, y, feature_names, label_names)`: `x` float32 `(samples, features)`, `y` int64 class
indices (classification) or float32 targets (regression), `label_names` `None` for
regression. All randomness comes from `rng`, so a seed fixes the data.
"""

from __future__ import annotations

import numpy as np

_BINARY = ["0", "1"]
_XY = ["x1", "x2"]


def _balanced_labels(samples: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    # Equal class counts (up to one) keep small data sets stratifiable.
    return rng.permutation(np.arange(samples) % classes).astype(np.int64)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


def make_xor(samples, noise, rng):
    """Points around the corners (+-1, +-1); label 1 where the two signs differ.

    Args:
        samples: number of rows.
        noise: standard deviation of the Gaussian jitter around each corner.
        rng: the source of randomness.
    """
    corner = _balanced_labels(samples, 4, rng)
    signs = np.stack([corner % 2, corner // 2], axis=1) * 2.0 - 1.0
    x = signs + noise * rng.standard_normal((samples, 2))
    y = (signs[:, 0] != signs[:, 1]).astype(np.int64)
    return x.astype(np.float32), y, list(_XY), list(_BINARY)


def make_circles(samples, noise, rng):
    """A ring (label 0) around a disc of half its radius (label 1)."""
    from sklearn.datasets import make_circles as sk_circles

    x, y = sk_circles(samples, noise=noise, factor=0.5, random_state=_seed(rng))
    return x.astype(np.float32), y.astype(np.int64), list(_XY), list(_BINARY)


def make_moons(samples, noise, rng):
    """Two interleaved half-moons."""
    from sklearn.datasets import make_moons as sk_moons

    x, y = sk_moons(samples, noise=noise, random_state=_seed(rng))
    return x.astype(np.float32), y.astype(np.int64), list(_XY), list(_BINARY)


def make_spiral(samples, noise, rng):
    """Two spiral arms of 1.5 turns, radius 0.2 to 2, the second the first turned by pi.

    Args:
        noise: standard deviation of the jitter; the arms are 2/3 apart.
    """
    y = _balanced_labels(samples, 2, rng)
    t = rng.uniform(0.1, 1.0, samples)
    angle = 3 * np.pi * t + np.pi * y
    x = 2 * t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x += noise * rng.standard_normal((samples, 2))
    return x.astype(np.float32), y, list(_XY), list(_BINARY)


def make_gaussian(samples, noise, rng):
    """Two round Gaussian blobs centred at (-1, -1) and (1, 1).

    Args:
        noise: standard deviation of each blob (0.5: about 1% of points cross the line).
    """
    y = _balanced_labels(samples, 2, rng)
    x = (y[:, None] * 2.0 - 1.0) + noise * rng.standard_normal((samples, 2))
    return x.astype(np.float32), y, list(_XY), list(_BINARY)


def make_pass_fail(samples, noise, rng):
    """Lectures attended (0..30) and project hours (0..40) -> fail (0) or pass (1).

    A grade `40 * lectures/30 + 60 * hours/40` (0..100) decides: the pass probability is
    `sigmoid((grade - 50) / (20 * noise))`, so a single perceptron fits it and `noise`
    widens the fuzzy band around the boundary (0 makes it sharp).
    """
    lectures = rng.integers(0, 31, samples).astype(np.float64)
    hours = np.round(rng.uniform(0, 40, samples), 1)
    margin = 40 * lectures / 30 + 60 * hours / 40 - 50
    if noise > 0:
        p = 1 / (1 + np.exp(-margin / (20 * noise)))
        y = rng.random(samples) < p
    else:
        y = margin > 0
    x = np.stack([lectures, hours], axis=1)
    return x.astype(np.float32), y.astype(np.int64), ["lectures", "project_hours"], [
        "fail", "pass"]


# Fixed so the lesson can compare the learned kernel and bias with the truth.
LINEAR_WEIGHTS = (2.0, -1.0, 0.5)
LINEAR_BIAS = 1.0


def make_linear(samples, noise, rng):
    """`y = x . (2, -1, 0.5) + 1 + noise * N(0, 1)` with `x` standard normal, 3 features."""
    x = rng.standard_normal((samples, 3))
    y = x @ np.array(LINEAR_WEIGHTS) + LINEAR_BIAS + noise * rng.standard_normal(samples)
    return x.astype(np.float32), y.astype(np.float32), ["x1", "x2", "x3"], None


def make_sine(samples, noise, rng):
    """`y = sin(x) + noise * N(0, 1)` with `x` uniform on [-2pi, 2pi]."""
    x = rng.uniform(-2 * np.pi, 2 * np.pi, (samples, 1))
    y = np.sin(x[:, 0]) + noise * rng.standard_normal(samples)
    return x.astype(np.float32), y.astype(np.float32), ["x"], None


# TensorFlow Playground's recipes (its dataset.ts), ported: points in the square [-6, 6]^2,
# `noise` its slider / 100 (0 to 0.5), label 1 for its positive (blue) class.
PLAYGROUND_RADIUS = 5.0


def _uniform(rng, low, high, n):
    return rng.uniform(low, high, n)


def playground_circle(samples, noise, rng):
    """Playground's circle: a disc of radius 2.5 (label 1) inside a ring from 3.5 to 5.

    Noise moves the point the label is read at, not the point: labels near the rim flip.
    """
    r5 = PLAYGROUND_RADIUS
    n_in = samples - samples // 2
    r = np.concatenate([_uniform(rng, 0, r5 * 0.5, n_in), _uniform(rng, r5 * 0.7, r5, samples // 2)])
    angle = _uniform(rng, 0, 2 * np.pi, samples)
    x = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    moved = x + _uniform(rng, -r5, r5, (samples, 2)) * noise
    y = (np.hypot(moved[:, 0], moved[:, 1]) < r5 * 0.5).astype(np.int64)
    return x.astype(np.float32), y, list(_XY), list(_BINARY)


def playground_xor(samples, noise, rng):
    """Playground's xor: uniform on [-5.3, 5.3]^2 less a 0.3 band at the axes; label 1 where x1*x2 >= 0."""
    x = _uniform(rng, -5, 5, (samples, 2))
    x += np.where(x > 0, 0.3, -0.3)
    moved = x + _uniform(rng, -5, 5, (samples, 2)) * noise
    y = (moved[:, 0] * moved[:, 1] >= 0).astype(np.int64)
    return x.astype(np.float32), y, list(_XY), list(_BINARY)


def playground_gauss(samples, noise, rng):
    """Playground's gauss: blobs at (2, 2) (label 1) and (-2, -2), variance 0.5 + 7 * noise."""
    variance = 0.5 + noise * (4 - 0.5) / 0.5
    y = np.concatenate([np.ones(samples - samples // 2), np.zeros(samples // 2)]).astype(np.int64)
    x = (y[:, None] * 4.0 - 2.0) + np.sqrt(variance) * rng.standard_normal((samples, 2))
    return x.astype(np.float32), y, list(_XY), list(_BINARY)


def playground_spiral(samples, noise, rng):
    """Playground's spiral: two arms of 1.75 turns out to radius 5, jitter U(-1, 1) * noise."""
    arms = []
    for label, n, delta in ((1, samples - samples // 2, 0.0), (0, samples // 2, np.pi)):
        i = np.arange(n) / max(n, 1)
        r, t = i * PLAYGROUND_RADIUS, 1.75 * i * 2 * np.pi + delta
        xy = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
        arms.append((xy + _uniform(rng, -1, 1, (n, 2)) * noise, np.full(n, label, np.int64)))
    x = np.concatenate([a[0] for a in arms])
    return x.astype(np.float32), np.concatenate([a[1] for a in arms]), list(_XY), list(_BINARY)


def make_plane(samples, noise, rng):
    """Playground's plane: `y = (x1 + x2) / 10` on [-6, 6]^2, read at points moved by noise."""
    x = _uniform(rng, -6, 6, (samples, 2))
    moved = x + _uniform(rng, -6, 6, (samples, 2)) * noise
    y = moved.sum(axis=1) / 10
    return x.astype(np.float32), y.astype(np.float32), list(_XY), None


# Playground's six bumps: centre x1, x2 and sign; each reaches 0 at distance 2.
BUMPS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))


def make_bumps(samples, noise, rng):
    """Playground's Gaussian bumps: six cones of height +-1 on [-6, 6]^2; y is the tallest."""
    x = _uniform(rng, -6, 6, (samples, 2))
    moved = x + _uniform(rng, -6, 6, (samples, 2)) * noise
    y = np.zeros(samples)
    for cx, cy, sign in BUMPS:
        bump = sign * np.clip(1 - np.hypot(moved[:, 0] - cx, moved[:, 1] - cy) / 2, 0, 1)
        y = np.where(np.abs(bump) > np.abs(y), bump, y)
    return x.astype(np.float32), y.astype(np.float32), list(_XY), None


PLAYGROUND = {
    "circles": playground_circle,
    "xor": playground_xor,
    "gaussian": playground_gauss,
    "spiral": playground_spiral,
    "plane": make_plane,
    "bumps": make_bumps,
}

GENERATORS = {
    "xor": make_xor,
    "circles": make_circles,
    "moons": make_moons,
    "spiral": make_spiral,
    "gaussian": make_gaussian,
    "pass_fail": make_pass_fail,
    "linear": make_linear,
    "sine": make_sine,
    "plane": make_plane,
    "bumps": make_bumps,
}
