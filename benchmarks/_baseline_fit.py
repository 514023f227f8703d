"""The fit as it was before the multi-start default (commit d55a4fc): the baseline of bench_fit_quality.py.

A copy of that commit's start (one spherical k-means draw, exact least squares
for the linear experts, feed-forward experts mapped through
``h(z) ~ h(0) + h'(0) z`` without rescaling ``z``) and of its single L-BFGS-B
run, on the package's objective.  Never imported by the package.
"""

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from sklearn_cosmoe._experts import LINEARISATION
from sklearn_cosmoe._model import MoEParams, objective, row_norms
from sklearn_cosmoe._objective import ArrayObjective
from sklearn_cosmoe._solver import spherical_kmeans, update_linear_experts


def baseline_start(X, y, sample_weight, spec, n_experts, rng):
    """The start of commit d55a4fc."""
    d = X.shape[1]
    data = ArrayObjective(X, y, sample_weight)
    centres = spherical_kmeans(data, n_experts, rng)
    if spec.router == "linear":
        w = sample_weight / sample_weight.sum()
        rms = np.sqrt(w @ np.einsum("ij,ij->i", X, X)) or 1.0
        gate_coef = centres * (2.0 * spec.temperature / rms)
    elif spec.router == "perturbed_cosine":
        gate_coef = centres * (3.0 * spec.tau1)
    else:
        gate_coef = centres
    params = MoEParams(gate_coef, np.zeros(n_experts),
                       np.zeros((n_experts, d)), np.zeros(n_experts))
    update_linear_experts(data, params, spec)
    if spec.learns_output_affine:
        h0, h1 = LINEARISATION[spec.expert]
        params.output_scale = 1.0 / h1
        params.output_intercept = -h0 / h1
    return params


def baseline_fit(X, y, sample_weight, spec, n_experts, rng, *, max_iter=1000, tol=1e-7):
    """Start and fit as ``CosineMoERegressor(n_init=1)`` did at d55a4fc.

    ``y`` is the standardized target.  Returns the final objective.  BLAS is
    held to one thread, as that commit's fit did.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _baseline_fit(X, y, sample_weight, spec, n_experts, rng, max_iter, tol)


def _baseline_fit(X, y, sample_weight, spec, n_experts, rng, max_iter, tol):
    params = baseline_start(X, y, sample_weight, spec, n_experts, rng)
    shape = params.shape
    x_norms = row_norms(X)
    args = (X, y, sample_weight, shape, spec, x_norms)
    result = minimize(objective, params.to_vector(spec), args=args, jac=True,
                      method="L-BFGS-B",
                      options={"maxiter": max_iter, "ftol": tol, "gtol": tol})
    params = MoEParams.from_vector(result.x, shape, spec)
    loss = result.fun
    if spec.expert == "linear":
        update_linear_experts(ArrayObjective(X, y, sample_weight, x_norms), params, spec)
        loss = objective(params.to_vector(spec), *args)[0]
    return loss
