"""Minimisers of the least-squares objective, behind one interface.

A minimiser is a function ``solver(problem, max_iter, tol)`` of a
:class:`Problem` (the objective restricted to the parameters it may move)
that returns a :class:`Minimum`.  It sees the rows only through the
objective's sums (:mod:`sklearn_cosmoe._objective`), so it fits data in
memory and on a cluster alike.

``"gauss-newton"``
    Levenberg-Marquardt on all parameters (:mod:`._gauss_newton`); a fit
    has converged when the Gauss-Newton model predicts no decrease above
    ``tol`` times the objective (:mod:`._stationarity`): a certificate of a
    stationary point.
``"lbfgs"``
    L-BFGS-B on all parameters (:mod:`._lbfgs`), ended by its relative
    decrease and gradient tests.
"""

from ._gauss_newton import gauss_newton
from ._lbfgs import lbfgs, lbfgs_with_restart
from ._problem import Minimum, Problem
from ._stationarity import MIN_SCALE, QuadraticModel, relative_decrease

SOLVERS = {"gauss-newton": gauss_newton, "lbfgs": lbfgs}

__all__ = ["MIN_SCALE", "Minimum", "Problem", "QuadraticModel", "SOLVERS",
           "lbfgs_with_restart", "relative_decrease"]
