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
    (intercepts included); ``jitter`` None is :func:`expert_jitter`.  With
    fewer rows than unknowns (and the rows in memory) the solve is in the row
    space (:func:`_row_space_solve`): no Gram matrix of the unknowns is formed.
    """
    k, d = params.shape
    p = d + 1
    if jitter is None:  # a tiny relative jitter keeps experts without data determined
        jitter = max(expert_jitter(data), 1e-300)
    penalty = np.full(k * p, jitter)
    for i in range(k):
        penalty[i * p:i * p + d] += spec.alpha
    if getattr(data, "n_rows", np.inf) < k * p:
        coef = _row_space_solve(*data.expert_design(params, spec), penalty,
                                data.total_weight)
    else:
        gram, rhs = _normal_equations(data, params, spec, penalty)
        coef = _solve_normal_equations(gram, rhs, lambda: _normal_equations(
            data, params, spec, penalty))
    # one column per output: (k, d + 1) or (k, d + 1, m)
    coef = coef.reshape(k, p, *coef.shape[1:])
    params.expert_coef = np.moveaxis(coef[:, :d], 1, -1).copy()
    params.expert_intercept = coef[:, d].copy()
    return params, jitter


def _normal_equations(data, params, spec, penalty):
    """The experts' normal equations divided by the total weight, ``penalty`` on
    the diagonal."""
    gram, rhs = data.expert_normal_equations(params, spec)
    total = data.total_weight
    gram /= total
    rhs /= total
    gram[np.diag_indices_from(gram)] += penalty
    return gram, rhs


def _solve_normal_equations(gram, rhs, again):
    """Solve ``gram c = rhs`` by Cholesky in ``gram``'s own memory (it is
    overwritten: a Gram matrix of ``k (d + 1)`` unknowns is the largest array
    of the step), or by least squares on ``again()``'s fresh copy of the
    equations where Cholesky fails."""
    try:
        return linalg.solve(gram, rhs, assume_a="pos", overwrite_a=True)
    except (linalg.LinAlgError, ValueError):
        gram, rhs = again()
        return linalg.lstsq(gram, rhs)[0]


def _row_space_solve(features, targets, penalty, total):
    """``argmin_c |F c - t|^2 / (2 W) + c^T D c / 2`` through the ``n x n`` system.

    ``features`` is ``F^T`` (unknowns x rows), ``targets`` is ``t``, ``penalty``
    the diagonal ``D`` (positive) and ``total`` is ``W``.  The identity
    ``(F^T F / W + D)^{-1} F^T t / W = D^{-1} F^T (F D^{-1} F^T + W I)^{-1} t``
    needs the rows' Gram matrix ``n x n`` only.
    """
    scaled = features / penalty[:, None]
    system = features.T @ scaled
    system[np.diag_indices_from(system)] += total
    try:
        dual = linalg.solve(system, targets, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        dual = linalg.lstsq(system, targets)[0]
    return scaled @ dual
