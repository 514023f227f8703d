"""Least-squares solvers for the mixture of experts.

The solvers never touch a row of the data: they take an *objective*
(:mod:`sklearn_cosmoe._objective`), whose methods are the sums over the rows
that they need, so one solver fits data in memory
(:class:`~sklearn_cosmoe._objective.ArrayObjective`) and data spread over a
cluster alike.  The fit is L-BFGS-B on all parameters with the exact gradient
of :func:`sklearn_cosmoe._model.objective`.  Linear experts are, for fixed
gates, an exact weighted (ridge) least-squares problem
(:func:`update_linear_experts`): that step starts and ends their fit.
Top-K gates make the objective jump where two scores cross, so a top-K fit
first fits the dense mixture and then moves it to the sparse one.

A fit from the data (:func:`fit_from_data`) keeps the best of a few k-means
starts (:func:`initial_params`).  A path of mixtures with 1, 2, ... experts
grows each from the last by splitting the expert that fits worst
(:func:`grow_path`, :func:`split_worst_expert`).  Every step depends on
``sample_weight`` only through weighted sums, so integer weights and repeated
rows give the same fit.
"""

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import linalg
from scipy.optimize import minimize

from ._experts import LINEARISATION
from ._model import MoEParams
from ._parallel import single_threaded_blas

_KMEANS_ITER = 10
# k-means starts of the default fit, each fitted to convergence
N_STARTS = 3
# root mean square of the pre-activations a_i . x + b_i of a feed-forward
# expert in its linear regime: tanh(z) = z (1 - z^2/3 + ...) is within 2% of
# z there, so the start is the least-squares linear fit to first order
_LINEAR_REGIME_RMS = 0.25
# then the pre-activations are scaled by the best of these on the objective
_PREACTIVATION_SCALES = (1.0, 2.0, 4.0, 8.0, 16.0)
# L-BFGS iterations each start of the default fit gets before the best one,
# on the objective, is fitted to convergence
SCREEN_ITER = 30
# the relative stopping rule reads decreases against the objective or this
# floor, whichever is larger: below it (a training R^2 above 0.9998 on the
# standardized target) a fit is as good as any score can tell
_MIN_SCALE = 1e-4


@dataclass
class FitResult:
    """Outcome of a fit: parameters, final objective, iterations, convergence.

    ``reason`` says why a fit that did not converge stopped: ``"max_iter"``
    (iteration limit) or ``"line_search"`` (L-BFGS-B could not decrease the
    objective along its search direction before its tolerance test passed);
    ``None`` when it converged.  It unpacks as ``params, loss, n_iter,
    converged``, the tuple that :func:`fit_least_squares` used to return.
    """

    params: MoEParams
    loss: float
    n_iter: int
    converged: bool
    reason: str | None = None

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


def update_linear_experts(data, params, spec):
    """Set the expert parameters to the exact weighted ridge least squares.

    With the gates fixed, ``f(x) = sum_i g_i(x) (a_i . x + b_i)`` is linear in
    ``(a, b)``; the ridge term ``alpha/2 |a|^2`` matches the objective.  With
    several outputs, one Gram matrix and one right-hand side per output: the
    outputs' problems are solved together.  Modifies ``params`` in place.
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
    # a tiny relative jitter keeps experts without data determined
    jitter = 1e-10 * max(np.trace(gram) / gram.shape[0], 1e-300)
    gram[np.diag_indices_from(gram)] += penalty + jitter
    try:
        coef = linalg.solve(gram, rhs, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        coef = linalg.lstsq(gram, rhs)[0]
    # one column per output: (k, d + 1) or (k, d + 1, m)
    coef = coef.reshape(k, p, *rhs.shape[1:])
    params.expert_coef = np.moveaxis(coef[:, :d], 1, -1).copy()
    params.expert_intercept = coef[:, d].copy()
    return params


def lbfgs_with_restart(fun, theta, max_iter, tol):
    """Minimise ``fun`` (loss and gradient) by L-BFGS-B from ``theta``.

    The stopping rule is relative: a run stops when an iteration lowers the
    objective by at most ``tol`` times its value (L-BFGS-B's ``ftol`` test),
    or when the projected gradient is at most ``tol`` times the objective
    (``gtol``).  L-BFGS-B divides by ``max(|f|, 1)``, which is an absolute
    test for the objectives here (below 1 on a standardized target), so it
    minimises ``f / scale`` with ``scale`` the objective where the run
    starts; a run that ends below half its scale is continued with the new
    scale, so the test that ends the fit reads a decrease relative to the
    final objective (to within a factor 2).  A failed line search often
    comes from a stale curvature memory, so it gets one restart from where
    the run stopped.  BLAS is held to one thread meanwhile: its threads
    would spin on L-BFGS-B's tiny operations.

    Returns
    -------
    theta, loss, n_iter, reason
        ``reason`` is None when a test passed, else ``"max_iter"`` or
        ``"line_search"``; a start that already passes the tests counts as one
        iteration (the test).
    """
    loss = fun(theta)[0]
    n_iter, restarted = 0, False
    while True:
        scale = max(abs(loss), _MIN_SCALE) if np.isfinite(loss) else 1.0

        def scaled(t, scale=scale):
            f, g = fun(t)
            return f / scale, g / scale

        with single_threaded_blas():
            result = minimize(scaled, theta, jac=True, method="L-BFGS-B",
                              options={"maxiter": max_iter - n_iter, "ftol": tol,
                                       "gtol": tol})
        n_iter += result.nit
        theta, loss = result.x, result.fun * scale
        if n_iter >= max_iter or result.status == 1:
            break
        if result.status == 0 and loss < 0.5 * scale and scale > _MIN_SCALE:
            continue  # the test passed against an old scale: test again here
        if result.status == 2 and not restarted:
            restarted = True
            continue
        break
    reason = {0: None, 1: "max_iter"}.get(result.status, "line_search")
    return theta, loss, max(n_iter, 1), reason


def _lbfgs(data, params, spec, max_iter, tol, experts_only=False):
    """:func:`lbfgs_with_restart` on the objective, from ``params``.

    ``experts_only`` holds the router fixed and moves the expert parameters
    (and the output scale and intercept) alone.

    Returns
    -------
    params, loss, n_iter, reason
    """
    shape = params.shape
    theta = params.to_vector(spec)
    free = np.ones(theta.size, dtype=bool)
    if experts_only:
        k, d = shape
        free[:k * d + k] = False

    def fun(sub):
        full = theta.copy()
        full[free] = sub
        loss, grad = data.loss_and_gradient(full, shape, spec)
        return loss, grad[free]

    theta[free], loss, n_iter, reason = lbfgs_with_restart(fun, theta[free], max_iter, tol)
    return MoEParams.from_vector(theta, shape, spec), loss, n_iter, reason


def fit_least_squares(data, params, spec, *, max_iter=1000,
                      tol=1e-6, verbose=0, solve_experts_first=True):
    """Minimise the objective from ``params``.

    Linear experts first get their exact least-squares values (unless
    ``solve_experts_first`` is false: a start from :func:`initial_params`
    already has them), then L-BFGS-B moves all parameters, then a last
    least-squares update puts the experts at their optimum for the final
    gates (it cannot raise the objective).  With top-K gates the dense
    mixture is fitted first and the sparse one from there.

    Parameters
    ----------
    data : objective
        The rows (:mod:`sklearn_cosmoe._objective`).
    params : MoEParams
        Start; not modified.
    spec : MoESpec
    max_iter : int
        Maximum number of L-BFGS iterations of each run (dense, then sparse).
    tol : float
        L-BFGS-B ``ftol`` and ``gtol``.

    Returns
    -------
    FitResult
        ``n_iter`` counts the iterations of all runs; ``converged`` is true
        only when the last run passed L-BFGS-B's tolerance test.
    """
    params = params.copy()
    if spec.expert == "linear" and solve_experts_first:
        update_linear_experts(data, params, spec)
    specs = [spec] if spec.top_k is None else [replace(spec, top_k=None), spec]
    n_iter = 0
    for run_spec in specs:
        params, loss, nit, reason = _lbfgs(data, params, run_spec, max_iter, tol)
        n_iter += nit
        if reason == "line_search" and run_spec.top_k is not None:
            # stuck at a jump of the top-K objective: freeze the router
            # there and fit the experts, a smooth problem, for its gates
            if spec.expert == "linear":
                reason = None  # the exact least squares below
            else:
                params, loss, nit, reason = _lbfgs(data, params, run_spec,
                                                   max_iter, tol, experts_only=True)
                n_iter += nit
        if spec.expert == "linear":
            update_linear_experts(data, params, run_spec)
            loss = data.loss_and_gradient(params.to_vector(run_spec), params.shape,
                                          run_spec)[0]
    if verbose:
        print(f"[CosineMoE] {n_iter} L-BFGS iterations, objective {loss:.10g}"
              + ("" if reason is None else f", stopped by {reason}"))
    return FitResult(params, loss, n_iter, reason is None, reason)


def grow_path(data, spec, max_experts, rng, **fit_params):
    """Fits with 1, 2, ..., ``max_experts`` experts, each split from the last.

    The one-expert fit starts from the least-squares linear fit
    (:func:`initial_params`); each further fit starts from the previous one
    with its worst expert split (:func:`split_worst_expert`).  Top-K gates
    apply once the mixture has more than ``top_k`` experts.  ``fit_params``
    go to :func:`fit_least_squares`.

    Yields
    ------
    FitResult
        For 1, 2, ..., ``max_experts`` experts.
    """
    def spec_for(k):
        return spec if spec.top_k is None or spec.top_k < k else replace(spec, top_k=None)

    params = initial_params(data, spec_for(1), 1, rng)
    for k in range(1, max_experts + 1):
        if k > 1:
            params = split_worst_expert(data, result.params, spec_for(k), rng)
        result = fit_least_squares(data, params, spec_for(k), solve_experts_first=False,
                                   **fit_params)
        yield result


def fit_from_data(data, spec, n_experts, rng, *, max_iter=1000, tol=1e-6, verbose=0):
    """The default fit: the best of :data:`N_STARTS` screened k-means starts.

    Each start (:func:`initial_params`, its own k-means draw) gets
    :data:`SCREEN_ITER` L-BFGS iterations of the dense mixture; the start with
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
    screen_spec = replace(spec, top_k=None)
    best = None
    for i in range(N_STARTS):
        start = initial_params(data, screen_spec, n_experts, rng, linear_regime=i == 0)
        screened = fit_least_squares(data, start, screen_spec,
                                     max_iter=min(SCREEN_ITER, max_iter), tol=tol,
                                     solve_experts_first=False)
        if best is None or screened.loss < best.loss:
            best = screened
    if best.converged and spec.top_k is None:
        return best
    result = fit_least_squares(data, best.params, spec,
                               max_iter=max(max_iter - best.n_iter, 1), tol=tol,
                               verbose=verbose, solve_experts_first=False)
    result.n_iter += best.n_iter
    return result
