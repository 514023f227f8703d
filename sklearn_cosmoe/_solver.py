"""The least-squares fit of the mixture of experts: starts, runs, paths.

The fit never touches a row of the data: it takes an *objective*
(:mod:`sklearn_cosmoe._objective`), whose methods are the sums over the rows
that it needs, so one fit works on data in memory
(:class:`~sklearn_cosmoe._objective.ArrayObjective`) and data spread over a
cluster alike.  The minimisers (Newton-type or L-BFGS-B) are in
:mod:`sklearn_cosmoe._solvers` (:func:`default_solver` picks one).  Linear
experts are, for fixed gates, an exact weighted (ridge) least-squares
problem (:func:`update_linear_experts`): that step starts their fit.  Top-K gates make the objective jump where two scores
cross, so a top-K fit first fits the dense mixture and then moves it to the
sparse one.

A fit from the data (:func:`fit_from_data`) keeps the best of a few k-means
starts (:func:`initial_params`).  A path of mixtures with 1, 2, ... experts
grows each from the last by splitting the expert that fits worst
(:func:`split_worst_expert`).  Every step depends on
``sample_weight`` only through weighted sums, so integer weights and repeated
rows give the same fit.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from ._experts import LINEARISATION
from ._model import MoEParams
from ._parallel import single_threaded_blas
from ._solvers import SOLVERS, default_solver, problem_for, update_linear_experts

_KMEANS_ITER = 10
# k-means starts of the default fit, each fitted to convergence
N_STARTS = 3
# root mean square of the pre-activations a_i . x + b_i of a feed-forward
# expert in its linear regime: tanh(z) = z (1 - z^2/3 + ...) is within 2% of
# z there, so the start is the least-squares linear fit to first order
_LINEAR_REGIME_RMS = 0.25
# then the pre-activations are scaled by the best of these on the objective
_PREACTIVATION_SCALES = (1.0, 2.0, 4.0, 8.0, 16.0)
#: Iterations each start of the default fit gets, by minimiser, before the
#: best one on the objective is fitted to convergence: a Gauss-Newton
#: iteration does the work of tens of L-BFGS ones.
SCREEN_ITER = {"gauss-newton": 5, "lbfgs": 30}


@dataclass
class FitResult:
    """Outcome of a fit: parameters, final objective, iterations, convergence.

    ``reason`` says why a fit that did not converge stopped: ``"max_iter"``
    (iteration limit) or ``"line_search"`` (no step of the minimiser could
    decrease the objective before the convergence test passed); ``None``
    when it converged.  ``stationarity`` is what the convergence test read
    where the fit stopped (:mod:`sklearn_cosmoe._solvers`).  It unpacks as
    ``params, loss, n_iter, converged``.
    """

    params: MoEParams
    loss: float
    n_iter: int
    converged: bool
    reason: str | None = None
    stationarity: float = float("nan")

    def __iter__(self):
        return iter((self.params, self.loss, self.n_iter, self.converged))


def spherical_kmeans(data, n_clusters, rng):
    """Weighted k-means on the unit directions of the rows of the objective ``data``.

    Starts from random directions drawn from ``rng`` (not from rows, so the
    result does not depend on how often a row is repeated); zero rows take
    no part.  An empty cluster keeps its previous centre.  Each step is one
    :meth:`direction_sums` of ``data``.

    Returns
    -------
    centres : ndarray of shape (n_clusters, n_features), unit rows
    """
    centres = rng.standard_normal((n_clusters, data.n_features))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    for _ in range(_KMEANS_ITER):
        totals = data.direction_sums(centres)
        sizes = np.linalg.norm(totals, axis=1)
        filled = sizes > 0
        centres[filled] = totals[filled] / sizes[filled, None]
    return centres


def _gate_length(data, spec):
    """Length of a starting gate coefficient ``beta_1i`` (unit direction times this)."""
    if spec.router == "linear":
        # scores of order +-2 on rows of typical norm
        rms = math.sqrt(data.mean_square_norm()) or 1.0
        return 2.0 * spec.temperature / rms
    if spec.router == "perturbed_cosine":
        return 3.0 * spec.tau1  # |u_i| = 3/4, well inside the unit ball
    return 1.0


def initial_params(data, spec, n_experts, rng, *, linear_regime=True):
    """A k-means start: spherical k-means gates, least-squares experts.

    The router's directions are the centres of :func:`spherical_kmeans`;
    the experts are the exact least-squares linear experts for those gates.
    With ``linear_regime``, feed-forward experts start in their linear
    regime: their pre-activations are scaled to a root mean square of 1/4
    and the output scale and intercept set so that, through ``h(z) ~ h(0) +
    h'(0) z``, the prediction equals the least-squares linear fit to first
    order; from there the pre-activations are scaled by the best of 1, 2, 4,
    8, 16 on the objective (with the exact output scale and intercept for
    each).  Without it, the least-squares pre-activations are kept as they
    are, with ``s = 1/h'(0)`` and ``c = -h(0)/h'(0)``: a start that is
    already saturated where the linear fit is large.  ``data`` is the
    objective (:mod:`sklearn_cosmoe._objective`).
    """
    d = data.n_features
    centres = spherical_kmeans(data, n_experts, rng)
    experts = (n_experts,) if spec.n_outputs is None else (n_experts, spec.n_outputs)
    params = MoEParams(centres * _gate_length(data, spec),
                       np.zeros(n_experts), np.zeros((*experts, d)), np.zeros(experts))
    update_linear_experts(data, params, spec)
    if spec.learns_output_affine:
        if linear_regime:
            _enter_linear_regime(data, params, spec)
            _choose_preactivation_scale(data, params, spec)
        else:
            h0, h1 = LINEARISATION[spec.expert]
            params.output_scale = 1.0 / h1
            params.output_intercept = -h0 / h1
    return params


def _enter_linear_regime(data, params, spec):
    """Map least-squares linear experts to feed-forward ones of the same first-order fit.

    ``params`` holds linear experts ``z_i = a_i . x + b_i`` (output scale 1,
    intercept 0).  With ``eps`` chosen so that the largest root mean square
    of the ``eps z_i`` is :data:`_LINEAR_REGIME_RMS`, ``c + s h(eps z) = z +
    O(eps^2 z^2)`` for ``s = 1 / (eps h'(0))`` and ``c = -s h(0)``; with
    several outputs, one ``eps`` per output.  Modifies ``params``.
    """
    # the largest root mean square over the experts (of each output)
    rms = np.sqrt(np.max(data.preactivation_mean_squares(params, spec), axis=0))
    eps = np.divide(_LINEAR_REGIME_RMS, rms, out=np.ones_like(rms), where=rms > 0)
    if params.n_outputs is None:
        eps = float(eps)
    h0, h1 = LINEARISATION[spec.expert]
    params.expert_coef = np.expand_dims(eps, -1) * params.expert_coef
    params.expert_intercept = eps * params.expert_intercept
    params.output_scale = 1.0 / (eps * h1)
    params.output_intercept = -h0 / (eps * h1)


def _choose_preactivation_scale(data, params, spec):
    """Scale the feed-forward pre-activations by the best of :data:`_PREACTIVATION_SCALES`.

    For each scale the output intercept and scale are the exact weighted
    least squares (the prediction is affine in them; each output's own with
    several outputs); the scale with the lowest objective is kept (the
    linear regime, scale 1, on a tie).  Modifies ``params``.
    """
    base = params.copy()
    best = None
    for scale in _PREACTIVATION_SCALES:
        trial = base.copy()
        trial.expert_coef = scale * base.expert_coef
        trial.expert_intercept = scale * base.expert_intercept
        y_mean, mix_mean, var, cov = data.output_moments(trial, spec)
        if params.n_outputs is None:
            if var > 0:
                trial.output_scale = cov / var
                trial.output_intercept = y_mean - trial.output_scale * mix_mean
        else:
            # outputs whose mixture is constant keep their scale and intercept
            varies = var > 0
            output_scale = np.divide(cov, var, out=trial.output_scale.copy(),
                                     where=varies)
            trial.output_intercept = np.where(varies, y_mean - output_scale * mix_mean,
                                              trial.output_intercept)
            trial.output_scale = output_scale
        loss = data.loss_and_gradient(trial.to_vector(spec), trial.shape, spec)[0]
        if best is None or loss < best[0]:
            best = (loss, trial)
    chosen = best[1]
    params.expert_coef, params.expert_intercept = chosen.expert_coef, chosen.expert_intercept
    params.output_scale, params.output_intercept = chosen.output_scale, chosen.output_intercept


def split_worst_expert(data, params, spec, rng):
    """A mixture of ``k + 1`` experts: the expert that fits worst split in two.

    The worst expert ``j`` has the largest gated squared residual
    :math:`\\sum_n w_n g_j(x_n) (y_n - f(x_n))^2`.  A weighted 2-means on the
    directions of its rows (weights :math:`w_n g_j(x_n)`) gives the two
    copies' gate directions; each copy keeps ``j``'s expert and gets its gate
    intercept minus :math:`\\log 2`.  Linear experts are then set to their
    exact least-squares values.  ``params`` is not modified.
    """
    worst = int(np.argmax(data.gated_squared_residuals(params, spec)))
    centres = spherical_kmeans(data.gated(params, spec, worst), 2, rng)
    k = params.shape[0]
    take = np.r_[np.arange(k), worst]
    split = MoEParams(params.gate_coef[take], params.gate_intercept[take],
                      params.expert_coef[take], params.expert_intercept[take],
                      params.output_scale, params.output_intercept).copy()
    split.gate_coef[[worst, k]] = centres * _gate_length(data, spec)
    split.gate_intercept[[worst, k]] -= math.log(2.0)
    if spec.expert == "linear":
        update_linear_experts(data, split, spec)
    return split


def _minimize(data, params, spec, solver, max_iter, tol, experts_only=False):
    """The minimiser ``solver`` (:data:`~sklearn_cosmoe._solvers.SOLVERS`) from ``params``.

    ``experts_only`` holds the router fixed and moves the expert parameters
    (and the output scale and intercept) alone.  BLAS is held to one thread
    meanwhile: its threads would spin on the minimisers' small matrices,
    and its bits would depend on their number.

    Returns
    -------
    params, Minimum
    """
    shape = params.shape
    theta = params.to_vector(spec)
    free = None
    if experts_only:
        k, d = shape
        free = np.ones(theta.size, dtype=bool)
        free[:k * d + k] = False
    problem = problem_for(solver, data, theta, shape, spec, free)
    with single_threaded_blas():
        minimum = SOLVERS[solver](problem, max_iter, tol)
        theta = problem.full(minimum.theta)
        if problem.eliminate:  # the objective, without the experts' jitter term
            minimum.loss = data.loss_and_gradient(theta, shape, spec)[0]
    return MoEParams.from_vector(theta, shape, spec), minimum


def fit_least_squares(data, params, spec, *, solver=None, max_iter=1000,
                      tol=1e-6, verbose=0, solve_experts_first=True):
    """Minimise the objective from ``params``.

    Linear experts first get their exact least-squares values (unless
    ``solve_experts_first`` is false: a start from :func:`initial_params`
    already has them), then ``solver`` moves all parameters.  With top-K
    gates the dense mixture is fitted first, its experts are refitted for
    the top-K gates of that optimum, and the sparse mixture is fitted from
    there; a sparse run stuck where two scores cross fits the experts for
    its gates (the exact least squares for linear experts).

    Parameters
    ----------
    data : objective
        The rows (:mod:`sklearn_cosmoe._objective`).
    params : MoEParams
        Start; not modified.
    spec : MoESpec
    solver : {"gauss-newton", "lbfgs"} or None
        The minimiser (:mod:`sklearn_cosmoe._solvers`); None is
        :func:`default_solver`.
    max_iter : int
        Maximum number of iterations of each run (dense, then sparse).
    tol : float
        The convergence test's tolerance (:mod:`sklearn_cosmoe._solvers`):
        the largest decrease a Gauss-Newton step may still promise, relative
        to the objective.

    Returns
    -------
    FitResult
        ``n_iter`` counts the iterations of all runs; ``converged`` is true
        only when the last run passed the convergence test.
    """
    params = params.copy()
    solver = solver or default_solver(spec.expert, spec.n_parameters(params.shape))
    linear = spec.expert == "linear"
    if linear and solve_experts_first:
        update_linear_experts(data, params, spec)
    specs = [spec] if spec.top_k is None else [replace(spec, top_k=None), spec]
    n_iter = 0
    for run_spec in specs:
        if run_spec.top_k is not None:
            # the dense optimum's experts were fitted for blended gates: refit
            # them for its top-K gates before the router moves (a feed-forward
            # mixture's sparse run from the dense optimum itself could stall far
            # above it, where its gates jump); Gauss-Newton eliminates linear
            # experts, solving them for every set of gates it tries, so they need none
            if linear and solver == "lbfgs":
                update_linear_experts(data, params, run_spec)
            elif not linear:
                params, refit = _minimize(data, params, run_spec, solver, max_iter, tol,
                                          experts_only=True)
                n_iter += refit.n_iter
        params, minimum = _minimize(data, params, run_spec, solver, max_iter, tol)
        n_iter += minimum.n_iter
        if minimum.reason == "line_search" and run_spec.top_k is not None:
            # stuck at a jump of the top-K objective: freeze the router
            # there and fit the experts, a smooth problem, for its gates
            if linear and solver == "lbfgs":
                minimum.reason = None  # the exact least squares below
            else:
                params, minimum = _minimize(data, params, run_spec, solver, max_iter, tol,
                                            experts_only=True)
                n_iter += minimum.n_iter
        if linear and solver == "lbfgs":
            # L-BFGS-B leaves the experts near their optimum for its last
            # gates; the exact least squares cannot raise the objective
            update_linear_experts(data, params, run_spec)
            minimum.loss = data.loss_and_gradient(params.to_vector(run_spec), params.shape,
                                                  run_spec)[0]
    if verbose:
        print(f"[CosineMoE] {n_iter} {solver} iterations, objective {minimum.loss:.10g}"
              + ("" if minimum.reason is None else f", stopped by {minimum.reason}"))
    return FitResult(params, minimum.loss, n_iter, minimum.reason is None, minimum.reason,
                     minimum.stationarity)


def fit_from_data(data, spec, n_experts, rng, *, solver=None, max_iter=1000,
                  tol=1e-6, verbose=0):
    """The default fit: the best of :data:`N_STARTS` screened k-means starts.

    Each start (:func:`initial_params`, its own k-means draw) gets
    :data:`SCREEN_ITER` iterations of ``solver`` on the dense mixture; the start with
    the lowest objective after them (the first on a tie) is fitted to
    convergence by :func:`fit_least_squares`.  Feed-forward experts get the
    linear-regime start first, then starts with the least-squares
    pre-activations kept as they are: on random truths those reach the
    optimum more often (user guide :ref:`solver`).

    Returns
    -------
    FitResult
        ``n_iter`` counts the iterations of the kept start, screening
        included.
    """
    solver = solver or default_solver(spec.expert,
                                      spec.n_parameters((n_experts, data.n_features)))
    screen_spec = replace(spec, top_k=None)
    best = None
    for i in range(N_STARTS):
        start = initial_params(data, screen_spec, n_experts, rng, linear_regime=i == 0)
        screened = fit_least_squares(data, start, screen_spec, solver=solver,
                                     max_iter=min(SCREEN_ITER[solver], max_iter), tol=tol,
                                     solve_experts_first=False)
        if best is None or screened.loss < best.loss:
            best = screened
    if best.converged and spec.top_k is None:
        return best
    result = fit_least_squares(data, best.params, spec, solver=solver,
                               max_iter=max(max_iter - best.n_iter, 1), tol=tol,
                               verbose=verbose, solve_experts_first=False)
    result.n_iter += best.n_iter
    return result
