"""Maximum-likelihood fit of the mixture-of-experts classifier.

L-BFGS-B on all parameters with the exact gradient of
:func:`sklearn_cosmoe._classifier_model.objective`, from a start whose gates
are the regressor's (spherical k-means directions,
:func:`sklearn_cosmoe._solver.spherical_kmeans`) and whose experts all
predict the weighted class frequencies (zero coefficients, intercepts the log
frequencies).  Top-K gates make the objective jump where two scores cross,
so a top-K fit first fits the dense mixture and then the sparse one from
there, as for the regressor.  Every step depends on ``sample_weight`` only
through weighted sums, so integer weights and repeated rows give the same
fit.
"""

from dataclasses import replace

import numpy as np

from ._classifier_model import ClassifierParams, objective
from ._model import row_norms
from ._objective import ArrayObjective
from ._parallel import single_threaded_blas
from ._solver import FitResult, _gate_length, spherical_kmeans
from ._solvers import lbfgs_with_restart


def initial_params(X, y, sample_weight, spec, n_experts, n_classes, rng, x_norms=None):
    """Spherical k-means gates; experts at the weighted log class frequencies."""
    d = X.shape[1]
    # the start's gates see only X and the weights: y (class indices) is not used
    rows = ArrayObjective(X, y, sample_weight, x_norms)
    centres = spherical_kmeans(rows, n_experts, rng)
    counts = np.bincount(y, weights=sample_weight, minlength=n_classes)
    # a class without weight starts well below the others, not at log(0)
    freq = np.maximum(counts / counts.sum(), 1e-3 / n_classes)
    log_freq = np.log(freq) - np.mean(np.log(freq))
    return ClassifierParams(centres * _gate_length(rows, spec),
                            np.zeros(n_experts), np.zeros((n_experts, n_classes, d)),
                            np.tile(log_freq, (n_experts, 1)))


def _lbfgs(params, args, max_iter, tol):
    """:func:`~sklearn_cosmoe._solvers.lbfgs_with_restart` on the objective.

    Returns ``params, loss, n_iter, reason`` with ``reason`` None when
    L-BFGS-B's tolerance tests passed, else ``"max_iter"`` or
    ``"line_search"``.
    """
    with single_threaded_blas():  # its threads would spin on L-BFGS-B's tiny products
        theta, loss, n_iter, reason = lbfgs_with_restart(
            lambda theta: objective(theta, *args), params.to_vector(), max_iter, tol)
    return ClassifierParams.from_vector(theta, params.shape), loss, n_iter, reason


def fit_likelihood(X, y, sample_weight, params, spec, *, max_iter=1000, tol=1e-6,
                   verbose=0, x_norms=None):
    """Minimise the objective from ``params`` (dense first under top-K gates).

    ``y`` holds class indices.  Returns a
    :class:`sklearn_cosmoe._solver.FitResult` whose ``n_iter`` counts the
    iterations of all runs and whose ``converged`` is that of the last run.
    """
    if x_norms is None:
        x_norms = row_norms(X)
    runs = [spec] if spec.top_k is None else [replace(spec, top_k=None), spec]
    n_iter, loss, reason = 0, np.inf, None
    for run_spec in runs:
        args = (X, y, sample_weight, params.shape, run_spec, x_norms)
        params, loss, nit, reason = _lbfgs(params, args, max(max_iter - n_iter, 1), tol)
        n_iter += nit
        if verbose:
            print(f"[CosineMoEClassifier] top_k={run_spec.top_k}: objective "
                  f"{loss:.6g} after {n_iter} iterations"
                  + ("" if reason is None else f", stopped by {reason}"))
    return FitResult(params, float(loss), n_iter, reason is None, reason)


def fit_from_data(X, y, sample_weight, spec, n_experts, n_classes, rng, *,
                  max_iter=1000, tol=1e-6, verbose=0):
    """A fit from a k-means start drawn from ``rng`` (:func:`initial_params`)."""
    x_norms = row_norms(X)
    start = initial_params(X, y, sample_weight, spec, n_experts, n_classes, rng, x_norms)
    return fit_likelihood(X, y, sample_weight, start, spec, max_iter=max_iter, tol=tol,
                          verbose=verbose, x_norms=x_norms)
