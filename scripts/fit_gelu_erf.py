"""Fits the rational erf that GELU's vector code uses (kernels/math/f32_math_avx512.h, ErfForGelu):
erf(z) ~ z P(z^2) / Q(z^2) on 0 <= z <= CLAMP, P and Q of degree 5 in z^2, Q(0) = 1, minimizing the largest
absolute error (linearized least squares, reweighted towards the worst points). Prints the coefficients and the
error of a float32 evaluation with fused multiply-adds. Reference: the standard library's double erf.

usage: .venv/bin/python scripts/fit_gelu_erf.py
"""
import math

import numpy as np

CLAMP = 3.925  # erf(3.925) = 1 - 4.6e-8: at and beyond it, float32 erf is 1
DEG = 5


def fit(iterations=30):
    z = np.linspace(0.0, CLAMP, 20000)
    f = np.array([math.erf(v) for v in z])
    y = z * z
    weight, q_prev, best = np.ones_like(z), np.ones_like(z), None
    for _ in range(iterations):
        # z P(y) - f (Q(y) - 1) = f, linear in the unknown coefficients; dividing by the last Q approximates
        # the true error z P / Q - f.
        rows = np.concatenate([np.stack([z * y**i for i in range(DEG + 1)], 1),
                               np.stack([-f * y**i for i in range(1, DEG + 1)], 1)], 1)
        w = weight / np.abs(q_prev)
        sol = np.linalg.lstsq(rows * w[:, None], f * w, rcond=None)[0]
        p, q = sol[:DEG + 1], np.concatenate([[1.0], sol[DEG + 1:]])
        q_prev = np.polyval(q[::-1], y)
        err = z * np.polyval(p[::-1], y) / q_prev - f
        if best is None or np.abs(err).max() < best[0]:
            best = (np.abs(err).max(), p, q)
        weight = weight * np.abs(err) / np.abs(err).max() + 1e-3
        weight /= weight.max()
    return best


def float32_error(p, q):
    z = np.linspace(0.0, 5.0, 400001).astype(np.float32)
    y = z * z

    def horner(c):  # each step one rounding, as an FMA
        acc = np.float32(c[-1])
        for v in c[-2::-1]:
            acc = np.float32(np.float64(acc) * y + np.float64(np.float32(v)))
        return acc

    r = np.float32(z * np.float32(horner(p) / horner(q)))
    r = np.where(z >= np.float32(CLAMP), np.float32(1.0), r)
    ref = np.array([math.erf(float(v)) for v in z])
    return np.abs(r - ref).max()


if __name__ == "__main__":
    err, p, q = fit()
    print(f"fit: largest absolute error {err:.2e} (double); float32 evaluation: {float32_error(p, q):.2e}")
    print("P:", ", ".join(f"{v:.9e}f" for v in p))
    print("Q:", ", ".join(f"{v:.9e}f" for v in q))
