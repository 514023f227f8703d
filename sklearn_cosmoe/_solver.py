"""Least-squares solvers for the mixture of experts.

The fit is L-BFGS-B on all parameters with the exact gradient of
:func:`sklearn_cosmoe._model.objective`.  Linear experts are, for fixed
gates, an exact weighted (ridge) least-squares problem
(:func:`update_linear_experts`): that step starts and ends their fit.

The start (:func:`initial_params`) uses the data: a weighted spherical
k-means on the directions of the rows gives the router, least squares given
those gates gives the experts.  Every step depends on ``sample_weight`` only
through weighted sums, so integer weights and repeated rows give the same fit.
"""

import numpy as np
from scipy import linalg
from scipy.optimize import minimize

from . import _kernels
from ._experts import LINEARISATION
from ._model import MoEParams, gates_and_experts, objective, row_norms
from ._parallel import single_threaded_blas

_KMEANS_ITER = 10


def spherical_kmeans(X, sample_weight, n_clusters, rng, x_norms=None):
    """Weighted k-means on the unit directions of the rows of ``X``.

    Starts from random directions drawn from ``rng`` (not from rows, so the
    result does not depend on how often a row is repeated); zero rows take
    no part.  An empty cluster keeps its previous centre.  ``X`` must be
    C-contiguous float64; ``x_norms`` (:func:`row_norms` of ``X``) is
    computed when not given.

    Returns
    -------
    centres : ndarray of shape (n_clusters, n_features), unit rows
    """
    if x_norms is None:
        x_norms = row_norms(X)
    centres = rng.standard_normal((n_clusters, X.shape[1]))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    for _ in range(_KMEANS_ITER):
        totals = _kernels.direction_cluster_sums(X, x_norms, sample_weight, centres)
        sizes = np.linalg.norm(totals, axis=1)
        filled = sizes > 0
        centres[filled] = totals[filled] / sizes[filled, None]
    return centres


def initial_params(X, y, sample_weight, spec, n_experts, rng):
    """A data-driven start for :func:`fit_least_squares` (module docstring)."""
    d = X.shape[1]
    x_norms = row_norms(X)  # for the k-means and the least-squares gates
    centres = spherical_kmeans(X, sample_weight, n_experts, rng, x_norms)
    if spec.router == "linear":
        # scores of order +-2 on rows of typical norm
        w = sample_weight / sample_weight.sum()
        rms = np.sqrt(np.sum(w * np.einsum("ij,ij->i", X, X))) or 1.0  # no BLAS: fixed order
        gate_coef = centres * (2.0 * spec.temperature / rms)
    elif spec.router == "perturbed_cosine":
        # |u_i| = 3/4, well inside the unit ball
        gate_coef = centres * (3.0 * spec.tau1)
    else:
        gate_coef = centres
    params = MoEParams(gate_coef, np.zeros(n_experts),
                       np.zeros((n_experts, d)), np.zeros(n_experts))
    update_linear_experts(X, y, sample_weight, params, spec, x_norms)
    if spec.learns_output_affine:
        # h(z) ~ h(0) + h'(0) z: choose s, c so that the feed-forward experts
        # start as the least-squares linear experts
        h0, h1 = LINEARISATION[spec.expert]
        params.output_scale = 1.0 / h1
        params.output_intercept = -h0 / h1
    return params


def update_linear_experts(X, y, sample_weight, params, spec, x_norms=None):
    """Set the expert parameters to the exact weighted ridge least squares.

    With the gates fixed, ``f(x) = sum_i g_i(x) (a_i . x + b_i)`` is linear in
    ``(a, b)``; the ridge term ``alpha/2 |a|^2`` matches the objective.
    Modifies ``params`` in place.
    """
    k, d = params.shape
    gates, _ = gates_and_experts(X, params, spec, x_norms)
    gram, rhs = _kernels.gated_gram(X, y, sample_weight, gates)
    total = sample_weight.sum()
    gram /= total
    rhs /= total
    p = d + 1
    penalty = np.zeros(k * p)
    for i in range(k):
        penalty[i * p:i * p + d] = spec.alpha
    # a tiny relative jitter keeps experts without data determined
    jitter = 1e-10 * max(np.trace(gram) / gram.shape[0], 1e-300)
    gram[np.diag_indices_from(gram)] += penalty + jitter
    try:
        coef = linalg.solve(gram, rhs, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        coef = linalg.lstsq(gram, rhs)[0]
    coef = coef.reshape(k, p)
    params.expert_coef = coef[:, :d].copy()
    params.expert_intercept = coef[:, d].copy()
    return params


def fit_least_squares(X, y, sample_weight, params, spec, *, max_iter=1000,
                      tol=1e-7, verbose=0, solve_experts_first=True):
    """Minimise the objective from ``params``.

    Linear experts first get their exact least-squares values (unless
    ``solve_experts_first`` is false: a start from :func:`initial_params`
    already has them), then L-BFGS-B moves all parameters, then a last
    least-squares update puts the experts at their optimum for the final
    gates (it cannot raise the objective).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
    y, sample_weight : ndarray of shape (n_samples,), float64
    params : MoEParams
        Start; not modified.
    spec : MoESpec
    max_iter : int
        Maximum number of L-BFGS iterations.
    tol : float
        L-BFGS-B ``ftol`` and ``gtol``.

    Returns
    -------
    params : MoEParams
    loss : float
    n_iter : int
    converged : bool
    """
    shape = params.shape
    params = params.copy()
    x_norms = row_norms(X)
    args = (X, y, sample_weight, shape, spec, x_norms)
    if spec.expert == "linear" and solve_experts_first:
        update_linear_experts(X, y, sample_weight, params, spec, x_norms)
    with single_threaded_blas():  # BLAS threads spin on L-BFGS-B's tiny operations
        result = minimize(
            objective, params.to_vector(spec), args=args, jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "ftol": tol, "gtol": tol},
        )
    params = MoEParams.from_vector(result.x, shape, spec)
    loss = result.fun
    if spec.expert == "linear":
        update_linear_experts(X, y, sample_weight, params, spec, x_norms)
        loss = objective(params.to_vector(spec), *args)[0]
    if verbose:
        print(f"[CosineMoE] {result.nit} L-BFGS iterations, {result.nfev} "
              f"evaluations, objective {loss:.10g}: {result.message}")
    # status 1: iteration limit; 2: line search failed (precision limit)
    return params, loss, result.nit, result.status != 1
