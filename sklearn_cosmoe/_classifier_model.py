"""The mixture-of-experts classifier as plain data: parameters and objective.

The model (user guide :ref:`classifier`) is

.. math::

    p(c \\mid x) = \\sum_{i=1}^k g_i(x)\\,
                  \\operatorname{softmax}(A_i x + b_i)_c

with the gates of the regressor (:class:`sklearn_cosmoe._model.MoESpec`
fixes router, perturbations, temperature, top-K and ridge; its ``expert`` is
not used).  The objective is the weighted mean negative log-likelihood plus
:math:`\\frac{\\alpha}{2}\\|A\\|_F^2` (and :math:`\\frac{\\alpha}{2}\\|B_1\\|_F^2`
under the linear router), as for the regressor.
"""

from dataclasses import dataclass

import numpy as np

from . import _kernels, _kernels_classifier

_ARRAYS = ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept")


@dataclass
class ClassifierParams:
    """Parameters of a mixture of ``k`` softmax experts over ``C`` classes.

    ``gate_coef`` ``(k, d)``, ``gate_intercept`` ``(k,)``, ``expert_coef``
    ``(k, C, d)``, ``expert_intercept`` ``(k, C)``.
    """

    gate_coef: np.ndarray
    gate_intercept: np.ndarray
    expert_coef: np.ndarray
    expert_intercept: np.ndarray

    @property
    def shape(self):
        """``(n_experts, n_classes, n_features)``."""
        return self.expert_coef.shape

    def copy(self):
        return ClassifierParams(*(getattr(self, name).copy() for name in _ARRAYS))

    def to_vector(self):
        """The vector the optimiser sees (the kernel's gradient layout)."""
        return np.concatenate([getattr(self, name).ravel() for name in _ARRAYS])

    @classmethod
    def from_vector(cls, theta, shape):
        """Inverse of :meth:`to_vector` (the arrays are views of ``theta``)."""
        k, n_classes, d = shape
        kd, kc = k * d, k * n_classes
        return cls(theta[:kd].reshape(k, d), theta[kd:kd + k],
                   theta[kd + k:kd + k + kc * d].reshape(k, n_classes, d),
                   theta[kd + k + kc * d:kd + k + kc * d + kc].reshape(k, n_classes))

    def arrays(self):
        return tuple(getattr(self, name) for name in _ARRAYS)


def _router_args(spec):
    router, _, tau1, tau2, inv_temp, top_k = spec.kernel_args()
    return router, tau1, tau2, inv_temp, top_k


def gates_and_log_proba(X, params, spec, x_norms=None):
    """Gates ``(n, k)`` and class log-probabilities ``(n, C)`` for the rows of ``X``."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    if x_norms is None:
        x_norms = _kernels.row_norms(X)
    return _kernels_classifier.gates_and_log_proba(X, x_norms, *params.arrays(),
                                                   *_router_args(spec))


def objective(theta, X, y, sample_weight, shape, spec, x_norms=None):
    """Objective (module docstring) and its gradient at ``theta``.

    ``y`` holds class indices; ``sample_weight`` must sum to a positive
    number; ``x_norms`` (row norms of ``X``) is computed when not given.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if x_norms is None:
        x_norms = _kernels.row_norms(X)
    k, n_classes, d = shape
    theta = np.asarray(theta, dtype=np.float64)
    size = k * d + k + k * n_classes * (d + 1)
    if theta.shape != (size,):
        raise ValueError(f"theta has shape {theta.shape}; expected ({size},) for "
                         f"shape={shape}.")
    params = ClassifierParams.from_vector(theta, shape)
    loss, grad = _kernels_classifier.nll_and_gradient(
        X, x_norms, y, sample_weight, *params.arrays(), *_router_args(spec))
    if spec.alpha > 0:
        a = spec.alpha
        coef = params.expert_coef.ravel()
        loss += 0.5 * a * np.dot(coef, coef)
        grad[k * d + k:k * d + k + coef.size] += a * coef
        if spec.router == "linear":
            gate = params.gate_coef.ravel()
            loss += 0.5 * a * np.dot(gate, gate)
            grad[:k * d] += a * gate
    return loss, grad
