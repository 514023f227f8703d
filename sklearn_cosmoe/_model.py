"""The mixture of experts as plain data: its specification, its parameters, its loss.

This module knows nothing of scikit-learn.  :class:`MoESpec` holds the fixed
choices (router, expert, perturbations, temperature, top-K, ridge, number of
outputs); :class:`MoEParams` holds the parameters as named float64 arrays.
The objective minimised by the solvers is

.. math::

    L(\\theta) = \\frac{1}{2} \\frac{\\sum_n w_n \\sum_j (y_{nj} - f_{\\theta,j}(x_n))^2}
                              {\\sum_n w_n}
               + \\frac{\\alpha}{2} \\|A\\|_F^2 \\;(+ \\frac{\\alpha}{2}\\|B_1\\|_F^2
               \\text{ for the linear router})

with ``A`` the expert coefficients (of every output) and ``B1`` the gate
coefficients; a single output (``n_outputs=None``, ``y`` of shape ``(n,)``)
has one term ``j``.  Under a cosine router the scale of ``B1`` is bounded or
irrelevant, so it is not penalised; under the linear router it is the gates'
sharpness.  With ``m`` outputs the gates are shared and each output has its
own experts, so ``L`` is the sum over the outputs of the single-output
objectives of :math:`(B_1, \\beta_0, A_{:,j}, b_{:,j}, s_j, c_j)`, with the
ridge counted once (user guide, :ref:`multi-output`): :func:`objective` calls
the fused kernel once per output and adds up.
"""

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._experts import EXPERTS
from ._routers import ROUTERS


@dataclass(frozen=True)
class MoESpec:
    """Fixed structure of the model (everything but the fitted parameters).

    ``n_outputs`` is ``None`` for a single output (``y`` of shape ``(n,)``)
    and ``m`` for ``m`` outputs (``y`` of shape ``(n, m)``; ``m = 1`` too).
    """

    router: str = "perturbed_cosine"
    expert: str = "linear"
    tau1: float = 1.0
    tau2: float = 1.0
    temperature: float = 1.0
    top_k: int | None = None
    alpha: float = 0.0
    n_outputs: int | None = None

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

    def n_parameters(self, shape):
        """Length of the vector of :meth:`MoEParams.to_vector` for ``shape = (k, d)``."""
        k, d = shape
        m = 1 if self.n_outputs is None else self.n_outputs
        return k * d + k + m * (k * d + k) + (2 * m if self.learns_output_affine else 0)


_ARRAYS = ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept")


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value


@dataclass
class MoEParams:
    """Parameters of a mixture of ``k`` experts on ``d`` features.

    ``f(x) = output_intercept + output_scale * sum_i g_i(x) h(expert_coef[i] @ x
    + expert_intercept[i])`` with gates from ``gate_coef`` and ``gate_intercept``.

    With one output ``expert_coef`` is ``(k, d)``, ``expert_intercept``
    ``(k,)`` and the output scale and intercept are floats.  With ``m``
    outputs they are ``(k, m, d)``, ``(k, m)`` and, for the output scale and
    intercept, arrays of shape ``(m,)`` (or floats common to every output):
    output ``j`` is the single-output mixture :meth:`output` ``(j)``.
    """

    gate_coef: np.ndarray
    gate_intercept: np.ndarray
    expert_coef: np.ndarray
    expert_intercept: np.ndarray
    output_scale: float | np.ndarray = 1.0
    output_intercept: float | np.ndarray = 0.0

    @property
    def shape(self):
        """``(n_experts, n_features)``."""
        return self.gate_coef.shape

    @property
    def n_outputs(self):
        """``None`` for the single-output layout, else the number of outputs ``m``."""
        return None if self.expert_coef.ndim == 2 else self.expert_coef.shape[1]

    def copy(self):
        return MoEParams(
            *(getattr(self, name).copy() for name in _ARRAYS),
            _copy(self.output_scale),
            _copy(self.output_intercept),
        )

    def output(self, j):
        """The single-output parameters of output ``j`` (the gates are shared views)."""
        if self.n_outputs is None:
            raise ValueError("output(j) needs parameters with several outputs.")
        scale, intercept = (np.broadcast_to(v, (self.n_outputs,))[j]
                            for v in (self.output_scale, self.output_intercept))
        return MoEParams(self.gate_coef, self.gate_intercept, self.expert_coef[:, j],
                         self.expert_intercept[:, j], float(scale), float(intercept))

    def to_vector(self, spec):
        """Flatten to the vector the optimiser sees.

        ``[gate_coef (k*d, row major), gate_intercept (k), expert_coef (row
        major), expert_intercept, output_scale, output_intercept]``: with one
        output, the fused kernel's gradient layout.  The output scale and
        intercept (``m`` each) are included only when ``spec`` learns them.
        """
        parts = [getattr(self, name).ravel() for name in _ARRAYS]
        if spec.learns_output_affine:
            m = 1 if spec.n_outputs is None else spec.n_outputs
            parts += [np.broadcast_to(self.output_scale, (m,)),
                      np.broadcast_to(self.output_intercept, (m,))]
        return np.concatenate(parts)

    @classmethod
    def from_vector(cls, theta, shape, spec):
        """Inverse of :meth:`to_vector` (the arrays are views of ``theta``)."""
        k, d = shape
        kd = k * d
        m = spec.n_outputs
        if m is None:
            off_b, start = 2 * kd + k, 2 * kd + 2 * k
            expert_coef = theta[kd + k:off_b].reshape(k, d)
            expert_intercept = theta[off_b:start]
        else:
            off_b, start = kd + k + m * kd, kd + k + m * (kd + k)
            expert_coef = theta[kd + k:off_b].reshape(k, m, d)
            expert_intercept = theta[off_b:start].reshape(k, m)
        arrays = {"gate_coef": theta[:kd].reshape(k, d),
                  "gate_intercept": theta[kd:kd + k],
                  "expert_coef": expert_coef,
                  "expert_intercept": expert_intercept}
        if not spec.learns_output_affine:
            return cls(**arrays)
        if m is None:
            return cls(**arrays, output_scale=theta[start],
                       output_intercept=theta[start + 1])
        return cls(**arrays, output_scale=theta[start:start + m],
                   output_intercept=theta[start + m:start + 2 * m])


def row_norms(X):
    """Euclidean norm of each row of ``X``, for the ``x_norms`` arguments below."""
    return _kernels.row_norms(X)


def _param_arrays(params):
    return (params.gate_coef, params.gate_intercept, params.expert_coef,
            params.expert_intercept)


def _outputs(params):
    """The single-output parameters of each output, in order."""
    if params.n_outputs is None:
        return [params]
    return [params.output(j) for j in range(params.n_outputs)]


def _prepare(X, x_norms):
    X = np.ascontiguousarray(X, dtype=np.float64)
    if x_norms is None:
        x_norms = _kernels.row_norms(X)
    return X, x_norms


def gates_and_experts(X, params, spec, x_norms=None):
    """Gate weights ``(n_samples, n_experts)`` and expert outputs.

    The expert outputs ``h(a_i . x + b_i)`` have shape ``(n_samples,
    n_experts)`` with one output and ``(n_samples, n_experts, n_outputs)``
    with several (one pass of the kernel per output).  ``x_norms``
    (:func:`row_norms` of ``X``) is computed when not given.
    """
    X, x_norms = _prepare(X, x_norms)
    if params.n_outputs is None:
        return _kernels.gates_and_experts(X, x_norms, *_param_arrays(params),
                                          *spec.kernel_args())
    columns = [_kernels.gates_and_experts(X, x_norms, *_param_arrays(p),
                                          *spec.kernel_args())
               for p in _outputs(params)]
    return columns[0][0], np.stack([h for _, h in columns], axis=2)


def gate_weights(X, params, spec, x_norms=None):
    """Gate weights ``(n_samples, n_experts)``: one pass of the kernel whatever the outputs."""
    if params.n_outputs is not None:
        params = params.output(0)
    return gates_and_experts(X, params, spec, x_norms)[0]


def combine_outputs(gates, outputs, params):
    """``c + s sum_i g_i h_i`` from the gates and expert outputs of :func:`gates_and_experts`."""
    if params.n_outputs is None:
        mix = np.einsum("nk,nk->n", gates, outputs)
        return params.output_intercept + params.output_scale * mix
    # output by output, with the single-output formula (the same bits for m = 1)
    return np.stack([p.output_intercept
                     + p.output_scale * np.einsum("nk,nk->n", gates, outputs[:, :, j])
                     for j, p in enumerate(_outputs(params))], axis=1)


def predict(X, params, spec):
    """The regression function ``f(x)``: shape ``(n,)`` with one output, ``(n, m)`` with ``m``."""
    return combine_outputs(*gates_and_experts(X, params, spec), params)


def n_free_parameters(shape, spec):
    """Free parameters of a mixture of ``shape = (k, d)`` net of its identifiability.

    The router's ``k (d + 1)`` less what leaves every gate unchanged -- the
    common shift of the gate intercepts (1) and of the gate atoms (d), or for
    the cosine router the ``k`` lengths and the ``(d - k)``-dimensional shifts
    of the unit directions that keep them on the sphere -- and the experts'
    ``k (d + 1)`` (and ``s, c`` for feed-forward experts) per output (user
    guide, :ref:`criteria`).
    """
    k, d = shape
    if spec.router == "cosine":
        invisible = 1 + k + max(d - k, 0)
    else:
        invisible = 1 + d
    n_router = max(k * (d + 1) - invisible, 0)
    m = spec.n_outputs or 1
    return n_router + m * (k * (d + 1) + (2 if spec.learns_output_affine else 0))


def _target_columns(y, n, spec):
    """``y`` as a list of its columns, each float64 and contiguous, after checking its shape."""
    y = np.asarray(y, dtype=np.float64)
    expected = (n,) if spec.n_outputs is None else (n, spec.n_outputs)
    if y.shape != expected:
        raise ValueError(f"y has shape {y.shape}; expected {expected} for "
                         f"n_outputs={spec.n_outputs}.")
    if y.ndim == 1:
        return [y]
    # a Fortran-ordered y gives its columns without a copy
    return [np.ascontiguousarray(y[:, j]) for j in range(y.shape[1])]


def objective(theta, X, y, sample_weight, shape, spec, x_norms=None):
    """Objective ``L`` (module docstring) and its gradient at ``theta``.

    ``theta`` is the vector of :meth:`MoEParams.to_vector`; ``y`` has shape
    ``(n,)`` or, with ``spec.n_outputs = m``, ``(n, m)`` (Fortran order saves
    a copy of each column per evaluation); ``sample_weight`` must sum to a
    positive number.  ``x_norms`` (:func:`row_norms` of ``X``) is computed
    when not given; a fit passes it to save that pass over ``X`` at every
    evaluation.  With ``m`` outputs the fused kernel runs once per output
    (:func:`sum_outputs`).
    """
    X, x_norms = _prepare(X, x_norms)
    params = params_of_vector(theta, shape, spec)
    columns = _target_columns(y, X.shape[0], spec)
    results = [_kernels.loss_and_gradient(X, x_norms, column, sample_weight,
                                          *loss_kernel_args(p, spec))
               for column, p in zip(columns, _outputs(params))]
    return penalised(*sum_outputs(results, shape), params, spec)


def params_of_vector(theta, shape, spec):
    """:meth:`MoEParams.from_vector` after checking the length of ``theta``."""
    theta = np.asarray(theta, dtype=np.float64)
    size = spec.n_parameters(shape)
    if theta.shape != (size,):
        raise ValueError(f"theta has shape {theta.shape}; expected ({size},) for "
                         f"shape={shape}.")
    return MoEParams.from_vector(theta, shape, spec)


def loss_kernel_args(params, spec):
    """The arguments after the data of :func:`sklearn_cosmoe._kernels.loss_and_gradient`.

    ``params`` has one output: with several, pass each :meth:`MoEParams.output`.
    """
    return (*_param_arrays(params), float(params.output_scale),
            float(params.output_intercept), *spec.kernel_args())


def sum_outputs(results, shape):
    """The data's mean loss and gradient of ``m`` outputs from those of each output.

    ``results`` holds, for each output in order, the loss and the gradient of
    :func:`sklearn_cosmoe._kernels.loss_and_gradient` (the single-output
    layout).  The objective of ``m`` outputs is the sum of the outputs'
    objectives, which share the router's parameters: the loss and the
    router's gradient are the sums over the outputs (added in output order),
    and each output's expert, output scale and intercept gradients are its
    own.  Returns the loss and the gradient in the layout of
    :meth:`MoEParams.to_vector` with the output scales and intercepts; one
    output's result is returned as it is (the layouts coincide).
    """
    if len(results) == 1:
        return results[0]
    k, d = shape
    kd = k * d
    m = len(results)
    loss = 0.0
    grad = np.zeros(kd + k + m * (kd + k) + 2 * m)
    expert_grad = grad[kd + k:kd + k + m * kd].reshape(k, m, d)
    intercept_grad = grad[kd + k + m * kd:kd + k + m * (kd + k)].reshape(k, m)
    affine_grad = grad[kd + k + m * (kd + k):].reshape(2, m)
    for j, (loss_j, grad_j) in enumerate(results):
        loss += loss_j
        grad[:kd + k] += grad_j[:kd + k]
        expert_grad[:, j] = grad_j[kd + k:2 * kd + k].reshape(k, d)
        intercept_grad[:, j] = grad_j[2 * kd + k:2 * kd + 2 * k]
        affine_grad[:, j] = grad_j[-2:]
    return loss, grad


def penalised(loss, grad, params, spec):
    """The objective from the data's mean loss and gradient (all parameters' layout).

    Adds the ridge terms (module docstring), counted once whatever the number
    of outputs, and drops the output scales' and intercepts' gradient when
    ``spec`` does not learn them.  ``grad`` is modified.
    """
    loss = add_ridge(loss, grad, params, spec)
    if not spec.learns_output_affine:
        grad = grad[:-2 * (params.n_outputs or 1)]
    return loss, grad


def ridge_positions(params, spec):
    """``(positions, values)``: where the ridge terms of the objective sit in the
    parameter vector, and the parameters they penalise (module docstring)."""
    k, d = params.shape
    kd = k * d
    coef = params.expert_coef.ravel()
    positions, values = [np.arange(kd + k, kd + k + coef.size)], [coef]
    if spec.router == "linear":
        positions.append(np.arange(kd))
        values.append(params.gate_coef.ravel())
    return np.concatenate(positions), np.concatenate(values)


def add_ridge(loss, grad, params, spec, hessian=None):
    """The ridge terms ``alpha / 2 |.|^2`` added to ``grad`` (and to ``hessian``'s
    diagonal), in place; returns the loss with them.  Counted once whatever the
    number of outputs."""
    if not spec.alpha > 0:
        return loss
    positions, values = ridge_positions(params, spec)
    grad[positions] += spec.alpha * values
    if hessian is not None:
        hessian[positions, positions] += spec.alpha
    return loss + 0.5 * spec.alpha * float(np.dot(values, values))
