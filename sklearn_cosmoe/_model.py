"""The mixture of experts as plain data: its specification, its parameters, its loss.

This module knows nothing of scikit-learn.  :class:`MoESpec` holds the fixed
choices (router, expert, perturbations, temperature, top-K, ridge);
:class:`MoEParams` holds the parameters as named float64 arrays.  The
objective minimised by the solvers is

.. math::

    L(\\theta) = \\frac{1}{2} \\frac{\\sum_n w_n (y_n - f_\\theta(x_n))^2}{\\sum_n w_n}
               + \\frac{\\alpha}{2} \\|A\\|_F^2 \\;(+ \\frac{\\alpha}{2}\\|B_1\\|_F^2
               \\text{ for the linear router})

with ``A`` the expert coefficients and ``B1`` the gate coefficients.  Under a
cosine router the scale of ``B1`` is bounded or irrelevant, so it is not
penalised; under the linear router it is the gates' sharpness.
"""

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._experts import EXPERTS
from ._routers import ROUTERS


@dataclass(frozen=True)
class MoESpec:
    """Fixed structure of the model (everything but the fitted parameters)."""

    router: str = "perturbed_cosine"
    expert: str = "linear"
    tau1: float = 1.0
    tau2: float = 1.0
    temperature: float = 1.0
    top_k: int | None = None
    alpha: float = 0.0

    @property
    def learns_output_affine(self):
        """Feed-forward experts learn an output scale and intercept."""
        return self.expert != "linear"

    def kernel_args(self):
        """Integer codes and scalars in the order the kernels take them."""
        return (
            ROUTERS[self.router],
            EXPERTS[self.expert],
            float(self.tau1),
            float(self.tau2),
            1.0 / float(self.temperature),
            0 if self.top_k is None else int(self.top_k),
        )


_ARRAYS = ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept")


@dataclass
class MoEParams:
    """Parameters of a mixture of ``k`` experts on ``d`` features.

    ``f(x) = output_intercept + output_scale * sum_i g_i(x) h(expert_coef[i] @ x
    + expert_intercept[i])`` with gates from ``gate_coef`` and ``gate_intercept``.
    """

    gate_coef: np.ndarray
    gate_intercept: np.ndarray
    expert_coef: np.ndarray
    expert_intercept: np.ndarray
    output_scale: float = 1.0
    output_intercept: float = 0.0

    @property
    def shape(self):
        """``(n_experts, n_features)``."""
        return self.gate_coef.shape

    def copy(self):
        return MoEParams(
            *(getattr(self, name).copy() for name in _ARRAYS),
            self.output_scale,
            self.output_intercept,
        )

    def to_vector(self, spec):
        """Flatten to the vector the optimiser sees (the kernels' gradient layout).

        The output scale and intercept are included only when ``spec`` learns
        them.
        """
        parts = [getattr(self, name).ravel() for name in _ARRAYS]
        if spec.learns_output_affine:
            parts.append([self.output_scale, self.output_intercept])
        return np.concatenate(parts)

    @classmethod
    def from_vector(cls, theta, shape, spec):
        """Inverse of :meth:`to_vector` (the arrays are views of ``theta``)."""
        k, d = shape
        kd = k * d
        arrays = {"gate_coef": theta[:kd].reshape(k, d),
                  "gate_intercept": theta[kd:kd + k],
                  "expert_coef": theta[kd + k:2 * kd + k].reshape(k, d),
                  "expert_intercept": theta[2 * kd + k:2 * kd + 2 * k]}
        start = 2 * kd + 2 * k
        if spec.learns_output_affine:
            return cls(**arrays, output_scale=theta[start],
                       output_intercept=theta[start + 1])
        return cls(**arrays)


def row_norms(X):
    """Euclidean norm of each row of ``X``, for the ``x_norms`` arguments below."""
    return _kernels.row_norms(X)


def _param_arrays(params):
    return (params.gate_coef, params.gate_intercept, params.expert_coef,
            params.expert_intercept)


def gates_and_experts(X, params, spec, x_norms=None):
    """Gate weights and expert outputs, each of shape ``(n_samples, n_experts)``.

    ``x_norms`` (:func:`row_norms` of ``X``) is computed when not given.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if x_norms is None:
        x_norms = _kernels.row_norms(X)
    return _kernels.gates_and_experts(X, x_norms, *_param_arrays(params),
                                      *spec.kernel_args())


def predict(X, params, spec):
    """The regression function ``f(x)`` for each row of ``X``."""
    gates, outputs = gates_and_experts(X, params, spec)
    mix = np.einsum("nk,nk->n", gates, outputs)
    return params.output_intercept + params.output_scale * mix


def objective(theta, X, y, sample_weight, shape, spec, x_norms=None):
    """Objective ``L`` (module docstring) and its gradient at ``theta``.

    ``theta`` is the vector of :meth:`MoEParams.to_vector`; ``sample_weight``
    must sum to a positive number.  ``x_norms`` (:func:`row_norms` of ``X``)
    is computed when not given; a fit passes it to save that pass over ``X``
    at every evaluation.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if x_norms is None:
        x_norms = _kernels.row_norms(X)
    params = params_of_vector(theta, shape, spec)
    loss, grad = _kernels.loss_and_gradient(X, x_norms, y, sample_weight,
                                            *loss_kernel_args(params, spec))
    return penalised(loss, grad, params, spec)


def params_of_vector(theta, shape, spec):
    """:meth:`MoEParams.from_vector` after checking the length of ``theta``."""
    k, d = shape
    theta = np.asarray(theta, dtype=np.float64)
    size = 2 * k * d + 2 * k + (2 if spec.learns_output_affine else 0)
    if theta.shape != (size,):
        raise ValueError(f"theta has shape {theta.shape}; expected ({size},) for "
                         f"shape={shape}.")
    return MoEParams.from_vector(theta, shape, spec)


def loss_kernel_args(params, spec):
    """The arguments after the data of :func:`sklearn_cosmoe._kernels.loss_and_gradient`."""
    return (*_param_arrays(params), float(params.output_scale),
            float(params.output_intercept), *spec.kernel_args())


def penalised(loss, grad, params, spec):
    """The objective from the data's mean loss and gradient (all parameters' layout).

    Adds the ridge terms (module docstring) and drops the output scale's and
    intercept's gradient when ``spec`` does not learn them.  ``grad`` is
    modified.
    """
    k, d = params.shape
    if spec.alpha > 0:
        a = spec.alpha
        loss += 0.5 * a * np.dot(params.expert_coef.ravel(), params.expert_coef.ravel())
        grad[k * d + k: 2 * k * d + k] += a * params.expert_coef.ravel()
        if spec.router == "linear":
            loss += 0.5 * a * np.dot(params.gate_coef.ravel(), params.gate_coef.ravel())
            grad[:k * d] += a * params.gate_coef.ravel()
    if not spec.learns_output_affine:
        grad = grad[:-2]
    return loss, grad
