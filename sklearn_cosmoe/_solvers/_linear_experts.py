"""The exact weighted least squares of linear experts for fixed gates."""

import numpy as np
from scipy import linalg

#: Relative jitter on the experts' normal equations: it keeps an expert
#: without rows determined (at zero) and costs nothing measurable elsewhere.
JITTER = 1e-10


def expert_jitter(data):
    """:data:`JITTER` times the mean of ``|x|^2 + 1`` over the features and the
    intercept: the scale of the normal equations' diagonal, the same at every
    gate (so the function a solver minimises does not change as the gates move)."""
    return JITTER * (data.mean_square_norm() + 1.0) / (data.n_features + 1)


def update_linear_experts(data, params, spec):
    """Set the expert parameters to the exact weighted ridge least squares.

    With the gates fixed, ``f(x) = sum_i g_i(x) (a_i . x + b_i)`` is linear in
    ``(a, b)``; the ridge term ``alpha/2 |a|^2`` matches the objective.  With
    several outputs, one Gram matrix and one right-hand side per output: the
    outputs' problems are solved together.  Modifies ``params`` in place.
    """
    return solve_linear_experts(data, params, spec)[0]


def solve_linear_experts(data, params, spec, jitter=None):
    """:func:`update_linear_experts` with a given jitter, and the jitter.

    Returns ``(params, jitter)``: the experts minimise the objective plus
    ``jitter / 2`` times the squared norm of all their parameters
    (intercepts included); ``jitter`` None is :func:`expert_jitter`.
    """
    k, d = params.shape
    gram, rhs = data.expert_normal_equations(params, spec)
    total = data.total_weight
    gram /= total
    rhs /= total
    p = d + 1
    penalty = np.zeros(k * p)
    for i in range(k):
        penalty[i * p:i * p + d] = spec.alpha
    if jitter is None:  # a tiny relative jitter keeps experts without data determined
        jitter = max(expert_jitter(data), 1e-300)
    gram[np.diag_indices_from(gram)] += penalty + jitter
    try:
        coef = linalg.solve(gram, rhs, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        coef = linalg.lstsq(gram, rhs)[0]
    # one column per output: (k, d + 1) or (k, d + 1, m)
    coef = coef.reshape(k, p, *rhs.shape[1:])
    params.expert_coef = np.moveaxis(coef[:, :d], 1, -1).copy()
    params.expert_intercept = coef[:, d].copy()
    return params, jitter
