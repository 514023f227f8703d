"""Levenberg-Marquardt: Gauss-Newton steps in a trust region.

The objective is a weighted mean of squared residuals (plus ridge terms), so
its Gauss-Newton matrix ``H = sum_n w_n J_n J_n^T / sum_n w_n`` is the
Hessian less the residuals' curvature: exact for the linear experts' part,
positive semi-definite everywhere, and one pass over the rows
(:meth:`gauss_newton` of the objective).  Each iteration forms it at the
current point, tests for convergence (:mod:`._stationarity`), and tries the
damped steps ``(H + mu D) s = -g`` (``D`` the diagonal of ``H``: Marquardt's
scaling, so the steps do not depend on the parameters' units) with the
damping ``mu`` raised until a step lowers the objective by a fair share of
what the model predicts, and lowered after steps that do (Nielsen's rule).
A rejected step costs one evaluation of the loss, not a new matrix.

The first point that passes the test is not where a fit ends: it takes one
more step and ends at the next point that passes.  Near a minimum that step
is nearly a Newton step, so the fit ends far closer to the stationary point
than the test's bound (which the model may misjudge by a small factor), and
fits with different tolerances that pass at the same point end at the same
objective.  A fit ends at the first certified point only where no step from
it lowers the objective, or at ``max_iter``.
"""

import math

import numpy as np

from ._problem import Minimum
from ._stationarity import relative_decrease

#: First damping, relative to the largest eigenvalue of the scaled matrix.
INITIAL_DAMPING = 1e-3
#: A step is taken when it lowers the objective by at least this fraction of
#: the decrease the model predicts.
ACCEPT_RATIO = 1e-4
#: Damped steps tried at one point before the fit stops (each rejection
#: doubles the damping's growth: 2, 4, 8, ... times, so 40 tries span
#: far more than the float range).
MAX_TRIES = 40


def gauss_newton(problem, max_iter, tol):
    """Minimise ``problem`` (:class:`._problem.Problem` or
    :class:`._atoms.AtomProblem`) from its start.

    Returns a :class:`._problem.Minimum` whose ``n_iter`` counts the
    Gauss-Newton matrices formed (at least 1: the start's test).
    """
    theta = problem.start
    loss = problem.loss(theta)
    damping, growth = None, 2.0
    certified = False  # whether a point before this one passed the test
    for n_iter in range(1, max_iter + 1):
        gn_loss, model = problem.model(theta)
        stationarity = relative_decrease(model, gn_loss)
        passed = stationarity <= tol
        if passed and (certified or n_iter == max_iter):
            return Minimum(theta, loss, n_iter, None, stationarity)
        certified = passed
        if n_iter == max_iter:
            return Minimum(theta, loss, n_iter, "max_iter", stationarity)
        if damping is None:
            damping = INITIAL_DAMPING * model.largest
        # the exact Hessian's steps first; where none is taken (a direction whose
        # curvature the quadratic model misjudges, such as a dead expert's gate,
        # which grows exponentially), the Gauss-Newton matrix's from the same damping
        for gauss_newton_steps in ((False, True) if model.has_curvature else (True,)):
            tried, tried_growth = damping, growth
            for _ in range(MAX_TRIES):
                step, predicted = model.step(tried, gauss_newton_steps)
                trial = problem.move(theta, step)
                trial_loss = problem.loss(trial)
                ratio = (loss - trial_loss) / predicted if predicted > 0 else -math.inf
                if np.isfinite(trial_loss) and ratio > ACCEPT_RATIO:
                    break
                tried *= tried_growth
                tried_growth *= 2.0
            else:
                continue
            theta, loss = trial, trial_loss
            damping = tried * max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
            growth = 2.0
            break
        else:
            return Minimum(theta, loss, n_iter, None if passed else "line_search",
                           stationarity)
    raise AssertionError("unreachable: the loop returns at max_iter")
