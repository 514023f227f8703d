"""L-BFGS-B on the objective, ended by its own relative tests.

L-BFGS-B's tests (a small relative decrease, ``ftol``; a small projected
gradient, ``gtol``) can pass after one short step on a flat stretch of the
objective: they do not certify a stationary point, as the Gauss-Newton
solver's test does (:mod:`._stationarity`).
"""

import numpy as np
from scipy.optimize import minimize

from ._problem import Minimum
from ._stationarity import MIN_SCALE

#: Runs of L-BFGS-B from the point where the last stopped, at most (the
#: first included): rescaled runs and the restart after a failed line search.
MAX_RUNS = 4


def lbfgs_with_restart(fun, theta, max_iter, tol):
    """Minimise ``fun`` (loss and gradient) by L-BFGS-B from ``theta``.

    The stopping rule is relative: a run stops when an iteration lowers the
    objective by at most ``tol`` times its value (L-BFGS-B's ``ftol`` test),
    or when the projected gradient is at most ``tol`` times the objective
    (``gtol``).  L-BFGS-B divides by ``max(|f|, 1)``, which is an absolute
    test for the objectives here (below 1 on a standardized target), so it
    minimises ``f / scale`` with ``scale`` the objective where the run
    starts; a run that ends below half its scale is continued with the new
    scale (at most :data:`MAX_RUNS` runs in all), so the test that ends the
    fit reads a decrease relative to the final objective (to within a
    factor 2).  A failed line search often comes from a stale curvature
    memory, so it gets one restart from where the run stopped.

    Returns
    -------
    theta, loss, n_iter, reason
        ``reason`` is None when a test passed, else ``"max_iter"`` or
        ``"line_search"``; a start that already passes the tests counts as one
        iteration (the test).
    """
    loss = fun(theta)[0]
    n_iter, restarted = 0, False
    for _ in range(MAX_RUNS):
        scale = max(abs(loss), MIN_SCALE) if np.isfinite(loss) else 1.0

        def scaled(t, scale=scale):
            f, g = fun(t)
            return f / scale, g / scale

        result = minimize(scaled, theta, jac=True, method="L-BFGS-B",
                          options={"maxiter": max_iter - n_iter, "ftol": tol, "gtol": tol})
        n_iter += result.nit
        theta, loss = result.x, result.fun * scale
        if n_iter >= max_iter or result.status == 1:
            break
        if result.status == 0 and 0 < loss < 0.5 * scale and scale > MIN_SCALE:
            continue  # the test passed against an old scale: test again here
        if result.status == 2 and not restarted:
            restarted = True
            continue
        break
    reason = {0: None, 1: "max_iter"}.get(result.status, "line_search")
    return theta, loss, max(n_iter, 1), reason


def lbfgs(problem, max_iter, tol):
    """Minimise ``problem`` (:class:`._problem.Problem`) by L-BFGS-B from its start.

    L-BFGS-B's own tests end the fit (:func:`lbfgs_with_restart`): they do
    not certify a stationary point, so the returned ``stationarity`` is not
    computed (NaN); ``n_iter`` counts L-BFGS iterations (at least 1).
    """
    theta, loss, n_iter, reason = lbfgs_with_restart(problem.loss_and_gradient,
                                                     problem.start, max_iter, tol)
    return Minimum(theta, loss, n_iter, reason, float("nan"))
