"""Maximum-likelihood fit of the mixture-of-experts classifier: starts, runs.

The fit sees the rows through a
:class:`~sklearn_cosmoe._classifier_objective.ClassifierObjective`, which
offers the minimisers of :mod:`sklearn_cosmoe._solvers` the methods of the
regressor's objective, with the Fisher matrix (the generalized Gauss-Newton
matrix of the negative log-likelihood) in place of the Gauss-Newton one.
``"gauss-newton"`` is then Levenberg-Marquardt on Fisher-scoring steps
(saddle-free Newton steps on the exact Hessian) that ends only where the
decrease the model still promises is at most ``tol`` times the objective: a
certified stationary point, with the cosine routers' atoms on their sphere
or in their closed ball (:mod:`sklearn_cosmoe._solvers._atoms`).
``"lbfgs"`` is L-BFGS-B, ended by its relative tests.

A fit from the data (:func:`fit_from_data`) screens :data:`N_STARTS` k-means
starts (:func:`initial_params`), each with its own experts, and fits the
best to convergence.  Top-K gates make the objective jump where two scores
cross, so a top-K fit first fits the dense mixture and then the sparse one
from there; a sparse run stuck at a jump holds the router and fits the
experts.  Every step depends on ``sample_weight`` only through weighted
sums, so integer weights and repeated rows give the same fit.
"""

from dataclasses import replace

import numpy as np

from ._classifier_model import ClassifierParams
from ._parallel import single_threaded_blas
from ._solver import N_STARTS, SCREEN_ITER, FitResult, _gate_length, spherical_kmeans
from ._solvers import SOLVERS, AtomProblem, Problem

#: Iterations of each expert's start fit (its cluster's multinomial logistic
#: regression), by minimiser; a Newton-type fit's first iteration only tests,
#: so 3 are 2 Fisher-scoring steps.  Enough to leave the class frequencies, few
#: enough that an expert whose cluster is (nearly) separable stays moderate
#: (in trials on breast_cancer, 9 steps gave a worse held-out log-loss).
START_ITER = {"gauss-newton": 3, "lbfgs": 20}
#: A class without weight in a cluster starts this far below the others,
#: relative to ``1 / C`` (not at ``log 0``).
MIN_FREQUENCY = 1e-3


#: The minimiser of ``solver="auto"``: L-BFGS-B.  The Newton-type solver
#: certified every classifier fit measured, but took 20 to 60 times L-BFGS-B's
#: time per fit for no better held-out log-loss
#: (``benchmarks/results/classifier/classifier_solvers.md``); it stays an option.
DEFAULT_SOLVER = "lbfgs"


def _log_frequencies(data):
    counts = np.bincount(data.y, weights=data.sample_weight, minlength=data.n_classes)
    freq = np.maximum(counts / counts.sum(), MIN_FREQUENCY / data.n_classes)
    return np.log(freq) - np.mean(np.log(freq))


def _fit_one_expert(data, spec, solver, tol):
    """A multinomial logistic regression (ridge ``alpha``) on ``data``'s rows, from
    their class log-frequencies, by :data:`START_ITER` iterations of ``solver``.

    Returns ``(expert_coef (C, d), expert_intercept (C,))``.
    """
    d, n_classes = data.n_features, data.n_classes
    start = ClassifierParams(np.zeros((1, d)), np.zeros(1), np.zeros((1, n_classes, d)),
                             _log_frequencies(data)[None, :])
    theta = start.to_vector()
    free = np.ones(theta.size, dtype=bool)
    free[:d + 1] = False  # one expert: the gate is 1 whatever the router
    problem = Problem(data, theta, start.shape, replace(spec, top_k=None), free)
    minimum = SOLVERS[solver](problem, START_ITER[solver], tol)
    fitted = ClassifierParams.from_vector(problem.full(minimum.theta), start.shape)
    return fitted.expert_coef[0].copy(), fitted.expert_intercept[0].copy()


def initial_params(data, spec, n_experts, rng, solver="gauss-newton", tol=1e-6):
    """A k-means start whose experts are fitted to their clusters.

    The router's directions are the centres of
    :func:`~sklearn_cosmoe._solver.spherical_kmeans` (the regressor's start);
    each row belongs to the centre nearest its direction, and expert ``i``
    starts at a multinomial logistic regression on the rows of cluster ``i``
    (:func:`_fit_one_expert`; an empty cluster's expert at the class
    log-frequencies of all the rows).  ``data`` is a
    :class:`~sklearn_cosmoe._classifier_objective.ClassifierObjective`.
    """
    d, n_classes = data.n_features, data.n_classes
    centres = spherical_kmeans(data, n_experts, rng)
    cluster = data.nearest_centre(centres)
    coef = np.zeros((n_experts, n_classes, d))
    intercept = np.tile(_log_frequencies(data), (n_experts, 1))
    for i in range(n_experts):
        rows = (cluster == i) & (data.sample_weight > 0)
        if rows.any():
            coef[i], intercept[i] = _fit_one_expert(data.subset(rows), spec, solver, tol)
    return ClassifierParams(centres * _gate_length(data, spec), np.zeros(n_experts),
                            coef, intercept)


def _minimize(data, params, spec, solver, max_iter, tol, experts_only=False):
    """The minimiser ``solver`` from ``params``; ``experts_only`` holds the router.

    ``"gauss-newton"`` moves the cosine routers' atoms
    (:class:`~sklearn_cosmoe._solvers.AtomProblem`).  BLAS is held to one
    thread.  Returns ``params, Minimum``.
    """
    shape = params.shape
    theta = params.to_vector()
    free = None
    if experts_only:
        k, _, d = shape
        free = np.ones(theta.size, dtype=bool)
        free[:k * d + k] = False
    newton_in_atoms = solver == "gauss-newton" and spec.router != "linear"
    problem = (AtomProblem if newton_in_atoms else Problem)(data, theta, shape, spec, free)
    with single_threaded_blas():
        minimum = SOLVERS[solver](problem, max_iter, tol)
        theta = problem.full(minimum.theta)
    return ClassifierParams.from_vector(theta, shape), minimum


def fit_likelihood(data, params, spec, *, solver="gauss-newton", max_iter=1000, tol=1e-6,
                   verbose=0):
    """Minimise the objective from ``params`` (dense first under top-K gates).

    A sparse run that stops where no step lowers the objective (at a jump
    of the top-K objective) holds the router there and fits the experts, a
    smooth problem.  Returns a :class:`~sklearn_cosmoe._solver.FitResult`
    whose ``n_iter`` counts the iterations of all runs and whose
    ``converged`` and ``stationarity`` are those of the last run.
    """
    runs = [spec] if spec.top_k is None else [replace(spec, top_k=None), spec]
    n_iter = 0
    for run_spec in runs:
        params, minimum = _minimize(data, params, run_spec, solver,
                                    max(max_iter - n_iter, 1), tol)
        n_iter += minimum.n_iter
        if minimum.reason == "line_search" and run_spec.top_k is not None:
            params, minimum = _minimize(data, params, run_spec, solver,
                                        max(max_iter - n_iter, 1), tol, experts_only=True)
            n_iter += minimum.n_iter
        if verbose:
            print(f"[CosineMoEClassifier] top_k={run_spec.top_k}: objective "
                  f"{minimum.loss:.10g} after {n_iter} {solver} iterations"
                  + ("" if minimum.reason is None else f", stopped by {minimum.reason}"))
    return FitResult(params, float(minimum.loss), n_iter, minimum.reason is None,
                     minimum.reason, minimum.stationarity)


def fit_from_data(data, spec, n_experts, rng, *, solver="gauss-newton", max_iter=1000,
                  tol=1e-6, verbose=0):
    """The best of :data:`~sklearn_cosmoe._solver.N_STARTS` screened k-means starts.

    Each start (:func:`initial_params`, its own k-means draw) gets
    :data:`~sklearn_cosmoe._solver.SCREEN_ITER` iterations of ``solver`` on
    the dense mixture; the start with the lowest objective after them (the
    first on a tie) is fitted to convergence by :func:`fit_likelihood`.
    ``n_iter`` counts the kept start's iterations, screening included (not
    its experts' start fits).
    """
    screen_spec = replace(spec, top_k=None)
    best = None
    for _ in range(N_STARTS):
        start = initial_params(data, spec, n_experts, rng, solver, tol)
        screened = fit_likelihood(data, start, screen_spec, solver=solver,
                                  max_iter=min(SCREEN_ITER[solver], max_iter), tol=tol)
        if best is None or screened.loss < best.loss:
            best = screened
    if best.converged and spec.top_k is None:
        return best
    result = fit_likelihood(data, best.params, spec, solver=solver,
                            max_iter=max(max_iter - best.n_iter, 1), tol=tol,
                            verbose=verbose)
    result.n_iter += best.n_iter
    return result
