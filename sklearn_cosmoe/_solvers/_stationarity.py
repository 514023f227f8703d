"""The Gauss-Newton model of the objective around a point, and the convergence test.

At a point with gradient ``g`` and Gauss-Newton matrix ``H`` the objective's
quadratic model predicts a decrease of at most ``g^T H^+ g / 2`` (half the
squared Newton decrement), a number in the objective's units that no change
of the parameters' scale or linear reparametrisation alters.  A fit has
converged when that decrease is at most ``tol`` times the objective
(:data:`MIN_SCALE` at least): the test certifies that no Gauss-Newton step
can lower the objective by more than that fraction, whatever the path that
led there (user guide :ref:`solver`).

``H`` is taken in Jacobi scaling (its diagonal made 1) and decomposed once
per point; directions whose scaled eigenvalue is below :data:`RCOND` times
the largest are those the data do not determine (the common shift of the
gate intercepts, the lengths of a plain cosine router's coefficients, an
expert without rows) and take no part in the model: the pseudo-inverse on
the identified subspace.
"""

import numpy as np
from scipy import linalg

#: Objectives are compared with this floor, not with 0: below it (a training
#: R^2 above 0.9998 on the standardized target) a fit is as good as any score
#: can tell.
MIN_SCALE = 1e-4
#: Scaled eigenvalues below this fraction of the largest are directions the
#: data do not determine (rounding of a Gauss-Newton matrix J^T J is about
#: 1e-16 of its largest eigenvalue; this keeps a margin of a million).
RCOND = 1e-10


class QuadraticModel:
    """The Gauss-Newton model at a point: its decrement and its damped steps.

    Parameters
    ----------
    gradient : ndarray of shape (p,)
    hessian : ndarray of shape (p, p)
        Symmetric positive semi-definite (a Gauss-Newton matrix).
    gauge : ndarray of shape (p, r), default=None
        Directions known to leave the objective unchanged: they take no part
        in the model (their scaled span is projected out), however rounding
        or an added scaling has bent the matrix along them.
    """

    def __init__(self, gradient, hessian, gauge=None):
        diag = np.diag(hessian).copy()
        identified = diag > 0
        scale = np.zeros_like(diag)
        scale[identified] = 1.0 / np.sqrt(diag[identified])
        scaled = hessian * scale[:, None] * scale[None, :]
        if gauge is not None and gauge.size:
            # a direction v of the parameters is v / scale in the scaled ones
            basis = np.linalg.qr(gauge * np.sqrt(diag)[:, None])[0]
            project = np.eye(len(diag)) - basis @ basis.T
            scaled = project @ scaled @ project
            scale = scale.copy()
            gradient = gradient * 1.0  # copy before the projection below
            gradient = (project @ (gradient * scale)) / np.where(scale > 0, scale, 1.0)
        values, vectors = linalg.eigh(scaled, check_finite=False)
        keep = values > RCOND * max(values[-1], 0.0)
        self._values = values[keep]
        self._vectors = vectors[:, keep]
        self._scale = scale
        self._coef = self._vectors.T @ (gradient * scale)
        #: ``g^T H^+ g / 2``, the decrease a full Gauss-Newton step predicts
        self.decrease = 0.5 * float(np.sum(self._coef ** 2 / self._values))
        #: the largest scaled eigenvalue (0 for a model without identified directions)
        self.largest = float(self._values[-1]) if self._values.size else 0.0

    def step(self, damping):
        """The Levenberg-Marquardt step for ``damping`` (in the scaled metric) and the
        decrease the model predicts for it."""
        shrink = 1.0 / (self._values + damping)
        step = -self._scale * (self._vectors @ (self._coef * shrink))
        predicted = 0.5 * float(np.sum(self._coef ** 2 * (self._values + 2 * damping)
                                       * shrink ** 2))
        return step, predicted


def relative_decrease(model, loss):
    """The model's promised decrease relative to the objective: what the test reads."""
    return model.decrease / max(abs(loss), MIN_SCALE)
