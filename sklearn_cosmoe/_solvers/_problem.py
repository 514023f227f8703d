"""What every minimiser is given: the objective on the parameters it may move."""

from dataclasses import dataclass

import numpy as np

from ._stationarity import QuadraticModel, relative_decrease


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


class Problem:
    """The objective ``data`` restricted to the free entries of ``theta``.

    ``free`` (a boolean mask, default all) names the parameters a minimiser
    moves; the others stay as in ``theta``.  The minimisers see vectors of
    the free entries only.
    """

    def __init__(self, data, theta, shape, spec, free=None):
        self.data, self.shape, self.spec = data, shape, spec
        self._theta = np.array(theta, dtype=np.float64)
        self.free = np.ones(self._theta.size, bool) if free is None else free

    @property
    def start(self):
        return self._theta[self.free].copy()

    def full(self, sub):
        theta = self._theta.copy()
        theta[self.free] = sub
        return theta

    def loss_and_gradient(self, sub):
        loss, grad = self.data.loss_and_gradient(self.full(sub), self.shape, self.spec)
        return loss, grad[self.free]

    def model(self, sub):
        """The objective and its :class:`QuadraticModel` at the free entries ``sub``.

        The model's matrix is the Gauss-Newton matrix; under the perturbed
        cosine router, plus the affine scaling of the atoms' bound
        (:func:`add_boundary_scaling`), and without the common shift of the
        atoms, which leaves every gate unchanged (:func:`shift_directions`).
        """
        theta = self.full(sub)
        loss, grad, hess = self.data.gauss_newton(theta, self.shape, self.spec)
        gauge = None
        if self.spec.router == "perturbed_cosine":
            add_boundary_scaling(hess, grad, theta, self.shape, self.spec.tau1)
            gauge = shift_directions(theta, self.shape, self.spec.tau1)[self.free]
        model = QuadraticModel(grad[self.free], hess[np.ix_(self.free, self.free)], gauge)
        return loss, model

    def stationarity(self, sub):
        loss, model = self.model(sub)
        return relative_decrease(model, loss)


def add_boundary_scaling(hessian, gradient, theta, shape, tau1):
    """Add the affine scaling of the bound ``|u_i| < 1`` to ``hessian`` (in place).

    The perturbed cosine router sees ``beta_1i`` through its atom ``u_i =
    beta_1i / (|beta_1i| + tau1)``, a point of the open unit ball (user guide
    :ref:`canonical-form`), and the least squares often lie on its boundary:
    sharper and sharper gates, reached only as ``|beta_1i|`` grows without
    end.  There the objective keeps a slope in ``s_i = 1 - |u_i|`` at ``s_i
    = 0``, and an unconstrained model would promise the decrease of a step
    past the boundary.  As for a bound constraint (Coleman and Li's affine
    scaling), the curvature along ``s_i`` gets ``|dL/ds_i| / s_i`` wherever
    the slope points at the boundary: in the radial direction ``e_i`` of
    ``beta_1i`` that is ``|e_i . g| / (|beta_1i| + tau1)``.  A step then at
    most doubles ``|beta_1i| + tau1``, and the decrease the model promises
    along ``e_i`` is at most ``|dL/ds_i| s_i / 2``: what is left to gain by
    going to the boundary, to first order.
    """
    k, d = shape
    beta = theta[:k * d].reshape(k, d)
    for i in range(k):
        norm = np.linalg.norm(beta[i])
        if norm == 0:
            continue
        radial = beta[i] / norm
        rows = slice(i * d, (i + 1) * d)
        slope = float(radial @ gradient[rows])
        if slope < 0:  # the objective falls as |beta_1i| grows
            hessian[rows, rows] += (-slope / (norm + tau1)) * np.outer(radial, radial)


def shift_directions(theta, shape, tau1):
    """``(p, d)``: the directions of ``theta`` that move every atom ``u_i`` by the same vector.

    Under the perturbed cosine router every score gets the same ``c . x /
    (T p(x))`` when every atom moves by ``c``: the gates do not change.  In
    ``beta_1i`` that move is ``dbeta_1i = (du_i / dbeta_1i)^{-1} c``, with the
    inverse ``q_i (I - e_i e_i^T) + (q_i^2 / tau1) e_i e_i^T`` (``q_i = |beta_1i|
    + tau1``, ``e_i`` the unit direction of ``beta_1i``).
    """
    k, d = shape
    beta = theta[:k * d].reshape(k, d)
    directions = np.zeros((theta.size, d))
    for i in range(k):
        norm = np.linalg.norm(beta[i])
        q = norm + tau1
        block = q * np.eye(d)
        if norm > 0:
            e = beta[i] / norm
            block += (q * q / tau1 - q) * np.outer(e, e)
        directions[i * d:(i + 1) * d] = block
    return directions
