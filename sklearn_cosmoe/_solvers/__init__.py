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
    stationary point.  Under the cosine routers it moves the router's atoms
    on their sphere or in their closed ball (:mod:`._atoms`); with linear
    experts it eliminates them and takes Newton steps on the router.
``"lbfgs"``
    L-BFGS-B on all parameters (:mod:`._lbfgs`), ended by its relative
    decrease and gradient tests.
"""

from ._atoms import AtomProblem
from ._gauss_newton import gauss_newton
from ._linear_experts import update_linear_experts
from ._lbfgs import lbfgs, lbfgs_with_restart
from ._problem import Minimum, Problem
from ._stationarity import MIN_SCALE, QuadraticModel, relative_decrease

SOLVERS = {"gauss-newton": gauss_newton, "lbfgs": lbfgs}
#: Above this many parameters ``solver="auto"`` takes L-BFGS-B: a Newton-type
#: iteration forms matrices of ``n_parameters**2`` entries and costs ``n_rows *
#: n_parameters**2`` operations (4 experts on 60 features reach it).
NEWTON_MAX_PARAMETERS = 500


def default_solver(expert, n_parameters):
    """The minimiser of ``solver="auto"`` (user guide :ref:`solver`).

    ``"gauss-newton"`` for linear experts (eliminated, with Newton steps on
    the router, it certifies its fits in tens of iterations) up to
    :data:`NEWTON_MAX_PARAMETERS` parameters; else ``"lbfgs"``.  Feed-forward
    experts' least squares often lie at infinity (an output scale growing
    without end), where Gauss-Newton does not reach its test within the
    default iterations either.
    """
    if expert == "linear" and n_parameters <= NEWTON_MAX_PARAMETERS:
        return "gauss-newton"
    return "lbfgs"


def problem_for(solver, data, theta, shape, spec, free=None):
    """The :class:`Problem` that ``solver`` minimises.

    For Gauss-Newton: the router alone when the experts are linear and
    eliminated (variable projection), in the atoms under the cosine
    routers.  For L-BFGS-B: all free parameters ``theta``.
    """
    if solver != "gauss-newton":
        return Problem(data, theta, shape, spec, free)
    eliminate = spec.expert == "linear" and free is None
    kind = Problem if spec.router == "linear" else AtomProblem
    return kind(data, theta, shape, spec, free, eliminate)

__all__ = ["MIN_SCALE", "NEWTON_MAX_PARAMETERS", "AtomProblem", "Minimum", "Problem",
           "QuadraticModel", "SOLVERS", "default_solver", "lbfgs_with_restart", "problem_for",
           "relative_decrease", "update_linear_experts"]
