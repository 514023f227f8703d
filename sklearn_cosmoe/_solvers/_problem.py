"""What every minimiser is given: the objective on the parameters it may move."""

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from .._model import MoEParams
from ._linear_experts import expert_jitter, solve_linear_experts
from ._stationarity import QuadraticModel, relative_decrease

#: Relative Gauss-Newton curvature of a gate intercept below which its expert is
#: dead (gates of about 1e-12 of the others', squared): its router takes no part.
DEAD_EXPERT = 1e-24


@dataclass
class Minimum:
    """Where a minimiser stopped.

    ``reason`` is None when the convergence test passed
    (:mod:`._stationarity`), else ``"max_iter"`` (iteration limit) or
    ``"line_search"`` (no step along the solver's directions lowered the
    objective before the test passed); ``stationarity`` is what the test read
    there.
    """

    theta: np.ndarray
    loss: float
    n_iter: int
    reason: str | None
    stationarity: float


def router_shape(shape):
    """The router's ``(k, d)`` of a model's ``shape``: its first and last entries
    (``(k, d)`` for the regressor, ``(k, C, d)`` for the classifier, whose
    parameter vectors also begin with the router's ``k d + k``)."""
    return shape[0], shape[-1]


class Problem:
    """The objective ``data`` restricted to the free entries of ``theta``.

    ``free`` (a boolean mask, default all) names the parameters a minimiser
    moves; the others stay as in ``theta``.  The minimisers see vectors of
    the free entries only.

    With ``eliminate`` (linear experts, router free), the experts are not
    the minimiser's: at every point they are the exact weighted least
    squares for its gates (variable projection), the minimiser sees the
    router's parameters alone, and the model is the Gauss-Newton matrix's
    Schur complement on them (Kaufman's approximation of the projected
    problem's).  The function minimised is then the objective plus the
    experts' solve's jitter term (:func:`~._linear_experts.expert_jitter`,
    the same at every point): with it, its
    gradient is the objective's gradient in the router exactly (the experts
    minimise it), however badly the data determine some expert direction.
    """

    def __init__(self, data, theta, shape, spec, free=None, eliminate=False):
        self.data, self.shape, self.spec = data, shape, spec
        self._theta = np.array(theta, dtype=np.float64)
        self.free = np.ones(self._theta.size, bool) if free is None else free
        self.eliminate = eliminate
        k, d = self.router_shape = router_shape(shape)
        self._router = k * d + k
        if eliminate:
            if spec.expert != "linear" or not self.free[:self._router].all():
                raise ValueError("only linear experts under a free router are eliminated")
            self.free = np.zeros(self._theta.size, bool)
            self.free[:self._router] = True
        self._solved = None  # (the free entries, theta with their experts, jitter)
        self._jitter = expert_jitter(data) if eliminate else None

    @property
    def start(self):
        return self._theta[self.free].copy()

    def full(self, sub):
        """All parameters at the free entries ``sub``: ``theta``'s layout."""
        return self._solve(sub)[0]

    def _solve(self, sub):
        """``full(sub)`` and the jitter its experts were solved with (0 if not eliminated)."""
        if self._solved is not None and np.array_equal(self._solved[0], sub):
            return self._solved[1].copy(), self._solved[2]
        theta = self._parameters(self._place(sub))
        if not self.eliminate:
            return theta, 0.0
        # one jitter for every point: the function minimised must not change
        params, jitter = solve_linear_experts(
            self.data, MoEParams.from_vector(theta, self.shape, self.spec), self.spec,
            self._jitter)
        theta = params.to_vector(self.spec)
        self._solved = (sub.copy(), theta.copy(), jitter)
        return theta, jitter

    def _place(self, sub):
        theta = self._theta.copy()
        theta[self.free] = sub
        return theta

    def _parameters(self, theta):
        """``theta`` with the minimiser's coordinates mapped to the parameters'."""
        return theta

    def loss(self, sub):
        """The function minimised at ``sub`` (the objective, plus the jitter
        term when the experts are eliminated)."""
        with np.errstate(all="ignore"):
            if not (np.all(np.isfinite(sub))
                    and np.all(np.isfinite(self._parameters(self._place(sub))))):
                return math.inf  # a step too long for floating point
        theta, jitter = self._solve(sub)
        loss = self.data.loss_and_gradient(theta, self.shape, self.spec)[0]
        experts = theta[self._router:]
        return loss + 0.5 * jitter * float(experts @ experts)

    def loss_and_gradient(self, sub):
        loss, grad = self.data.loss_and_gradient(self.full(sub), self.shape, self.spec)
        return loss, grad[self.free]

    def model(self, sub):
        """The objective and its :class:`QuadraticModel` at ``sub``."""
        return self._model(sub, atoms=False)

    def _model(self, sub, atoms, subspace=None):
        """The model on the free entries; ``subspace(sub, grad)``, when given and
        not None, gives an orthonormal ``basis`` for the steps and a diagonal
        ``sphere`` added to both the model's matrices along it."""
        exact = atoms or self.spec.router == "linear"
        sums = self.data.gauss_newton(self.full(sub), self.shape, self.spec, atoms, exact)
        loss, grad, hess = sums[:3]
        curvature = sums[3] if exact else None
        grad, hess, curvature = self._on_free(sub, grad, hess, curvature)
        along = None if subspace is None else subspace(sub, grad)
        dead = self._dead_router(hess)
        if dead is not None:  # the steps keep off the dead experts' router
            basis, sphere = along if along is not None else (np.eye(grad.size),
                                                             np.zeros(grad.size))
            alive = ~np.any(basis[dead] != 0, axis=0)
            along = basis[:, alive], sphere[alive]
        if along is None:
            return loss, QuadraticModel(grad, hess, None, curvature)
        basis, sphere = along
        grad, hess = basis.T @ grad, basis.T @ hess @ basis
        # a positive curvature joins the Gauss-Newton matrix, a negative one
        # only the exact Hessian: the test's metric stays positive semi-definite
        hess[np.diag_indices_from(hess)] += np.maximum(sphere, 0.0)
        if curvature is not None:
            curvature = basis.T @ curvature @ basis
            curvature[np.diag_indices_from(curvature)] += np.minimum(sphere, 0.0)
        return loss, QuadraticModel(grad, hess, basis, curvature)

    def _dead_router(self, hess):
        """Mask of the free entries of dead experts' router parameters, or None if none.

        An expert is dead when the Gauss-Newton curvature of its gate intercept
        is below :data:`DEAD_EXPERT` times the largest intercept's (its gates
        are about ``1e-12`` of the others' or less: the objective does not see
        it to rounding, and its scaled gradient would promise a revival that a
        quadratic model cannot deliver).  Intercepts are in the scores' units
        whatever the features', so the test does not depend on them.
        """
        k, d = self.shape[0], self.shape[-1]
        if not self.free[:k * d + k].all():
            return None
        intercepts = np.diag(hess)[k * d:k * d + k]
        dead = intercepts <= DEAD_EXPERT * intercepts.max()
        if not dead.any():
            return None
        mask = np.zeros(hess.shape[0], bool)
        for i in np.flatnonzero(dead):
            mask[i * d:(i + 1) * d] = True
            mask[k * d + i] = True
        return mask

    def _on_free(self, sub, grad, hess, curvature=None):
        """The gradient, Gauss-Newton matrix and residual curvature on the free
        entries (minimised over the eliminated experts)."""
        if not self.eliminate:
            block = np.ix_(self.free, self.free)
            return (grad[self.free], hess[block],
                    None if curvature is None else curvature[block])
        r = self._router
        experts = hess[r:, r:].copy()  # the curvature has no expert-expert block
        experts[np.diag_indices_from(experts)] += self._solve(sub)[1]
        try:
            factor = linalg.cho_factor(experts, check_finite=False)

            def solve(b):
                return linalg.cho_solve(factor, b, check_finite=False)
        except linalg.LinAlgError:
            def solve(b):
                return linalg.lstsq(experts, b, check_finite=False)[0]

        def schur(matrix):
            reduced = matrix[:r, :r] - matrix[:r, r:] @ solve(matrix[r:, :r])
            return 0.5 * (reduced + reduced.T)

        reduced = schur(hess)
        if curvature is not None:
            curvature = schur(hess + curvature) - reduced
        # the experts minimise the function: its gradient in the router is the objective's
        return grad[:r], reduced, curvature

    def move(self, sub, step):
        """Where ``step`` from ``sub`` leads (``sub + step``: no bounds)."""
        return sub + step

    def stationarity(self, sub):
        loss, model = self.model(sub)
        return relative_decrease(model, loss)
