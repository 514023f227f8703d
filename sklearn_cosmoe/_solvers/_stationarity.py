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
gate intercepts or of the perturbed router's atoms, the lengths of a plain cosine router's coefficients, an
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
    """The model at a point: its decrement, and damped steps.

    Parameters
    ----------
    gradient : ndarray of shape (r,)
    hessian : ndarray of shape (r, r)
        Symmetric positive semi-definite (a Gauss-Newton matrix): the
        convergence test's metric, and the steps' scaling.
    basis : ndarray of shape (p, r), default=None
        Orthonormal columns: the model is of the objective along ``basis @
        y`` (the subspace a constrained step may take), ``gradient`` and
        ``hessian`` are in ``y`` and the steps come back in the ``p``
        parameters.  None: ``y`` are the parameters.
    curvature : ndarray of shape (r, r), default=None
        Symmetric: the steps are those of the exact Hessian ``hessian +
        curvature`` with its eigenvalues taken in absolute value (a
        direction of negative curvature is a direction of descent, not of
        ascent: the saddle-free Newton step), and its model predicts their
        decrease; the decrement is the larger of the two models'.  None:
        Gauss-Newton steps.
    """

    def __init__(self, gradient, hessian, basis=None, curvature=None):
        diag = np.diag(hessian).copy()
        identified = diag > 0
        scale = np.zeros_like(diag)
        scale[identified] = 1.0 / np.sqrt(diag[identified])
        self._scale = scale
        self._basis = basis
        values, vectors, coef = _scaled_eigen(hessian, gradient, scale)
        #: ``g^T H^+ g / 2``, the decrease a full Gauss-Newton step predicts (or
        #: the exact Hessian's, ``g^T |H|^+ g / 2``, where it is larger)
        self.decrease = 0.5 * float(np.sum(coef ** 2 / values))
        self._gauss_newton = (values, vectors, coef)
        #: the largest scaled eigenvalue of the Gauss-Newton matrix (0 for a
        #: model without identified directions): the unit of the damping
        self.largest = float(values[-1]) if values.size else 0.0
        if curvature is not None:
            values, vectors, coef = _scaled_eigen(hessian + curvature, gradient, scale,
                                                  self.largest)
            self.decrease = max(self.decrease,
                                0.5 * float(np.sum(coef ** 2 / np.abs(values))))
        self._values, self._vectors, self._coef = values, vectors, coef

    @property
    def has_curvature(self):
        """Whether the steps are the exact Hessian's (a Gauss-Newton fallback exists)."""
        return self._gauss_newton[0] is not self._values

    def step(self, damping, gauss_newton=False):
        """The Levenberg-Marquardt step for ``damping`` (in the scaled metric) and the
        decrease the model predicts for it; the Gauss-Newton matrix's step with
        ``gauss_newton``."""
        values, vectors, coef = (self._gauss_newton if gauss_newton
                                 else (self._values, self._vectors, self._coef))
        size = np.abs(values) + damping
        step = -self._scale * (vectors @ (coef / size))
        # g^T s + s^T H s / 2 along each eigenvector, with s = -c / (|lambda| + damping)
        predicted = float(np.sum(coef ** 2 * (1.0 - 0.5 * values / size) / size))
        if self._basis is not None:
            step = self._basis @ step
        return step, predicted


def _scaled_eigen(matrix, gradient, scale, reference=None):
    """Eigenvalues, eigenvectors and gradient coordinates of ``matrix`` in the
    scaling ``scale``, without the directions the data do not determine:
    eigenvalues below :data:`RCOND` times ``reference`` (default the largest)
    in absolute value."""
    values, vectors = symmetric_eigen(matrix * scale[:, None] * scale[None, :])
    if reference is None:
        reference = max(float(values[-1]), 0.0) if values.size else 0.0
    keep = np.abs(values) > RCOND * reference
    return values[keep], vectors[:, keep], vectors[:, keep].T @ (gradient * scale)


def relative_decrease(model, loss):
    """The model's promised decrease relative to the objective: what the test reads."""
    return model.decrease / max(abs(loss), MIN_SCALE)


def symmetric_eigen(matrix):
    """``scipy.linalg.eigh`` of a symmetric matrix, an empty one included (every
    direction of a model may be fixed or dead; SciPy before 1.11 refuses 0 x 0)."""
    if matrix.shape[0] == 0:
        return np.zeros(0), np.zeros((0, 0))
    return linalg.eigh(matrix, check_finite=False)
