"""The regression function's Jacobian and the Gauss-Newton sums over the rows.

For one output, ``f(x) = c + s sum_i g_i(x) h(a_i . x + b_i)``; its derivative
with respect to the parameters, row by row, is

* ``s g_i (h_i - m)`` times ``[x / (T p(x)), 1]`` for the router's ``u_i``
  and ``beta_0i``, with ``m = sum_j g_j h_j`` and ``p(x)`` the input's norm
  of the score (``|x| + tau2``, ``|x|``, or 1 for the linear router),
* ``s g_i h'_i`` times ``[x, 1]`` for the expert's ``a_i`` and ``b_i``,
* ``m`` and 1 for ``s`` and ``c``,

where ``u_i = beta_1i / q_i`` is the gate coefficient with the router's norm
``q_i`` (``|beta_1i| + tau1``, ``|beta_1i|``, or 1) held fixed -- the
coordinates in which the fused kernel accumulates its gradient.  The chain
rule to ``beta_1i`` is the symmetric ``C_i = q_i^{-1} I - q_i^{-2} beta_1i
beta_1i^T / |beta_1i|`` (:func:`finish_gauss_newton`).  With top-K gates,
``g_i = 0`` off the selected experts and the formulas hold piece by piece.

:func:`gauss_newton_sums` adds, over the rows, ``sum_n w_n J_n J_n^T`` (the
Gauss-Newton matrix), ``-sum_n w_n r_n J_n`` (the gradient) and ``sum_n w_n
r_n^2 / 2``, each output on its own and un-normalised, so that the sums of
chunks of rows spread over a cluster add up to those of all the rows;
:func:`finish_gauss_newton` divides by the total weight, applies the chain
rule, places each output's sums in the layout of
:meth:`~sklearn_cosmoe._model.MoEParams.to_vector` and adds the ridge terms.
Rows go through in blocks of :data:`GN_BLOCK` whose sums are added in block
order with BLAS on one thread, so the bits do not depend on any thread count.
"""

import numpy as np
from scipy.linalg import blas
from scipy.special import ndtr

from ._model import _outputs, _prepare, gates_and_experts

#: Rows per block of :func:`gauss_newton_sums`: one block's Jacobian (rows x
#: parameters) stays small beside the Gauss-Newton matrix it updates.
GN_BLOCK = 1024
_INV_SQRT_2PI = 0.3989422804014327


def _score_scale(x_norms, spec):
    """``1 / (T p(x))`` per row: the score's derivative along ``u_i . x``."""
    inv_temp = 1.0 / float(spec.temperature)
    if spec.router == "linear":
        return np.full(x_norms.shape, inv_temp)
    p = x_norms + (float(spec.tau2) if spec.router == "perturbed_cosine" else 0.0)
    return np.divide(inv_temp, p, out=np.zeros_like(p), where=p != 0)


def _derivative(X, params, spec, outputs):
    """``h'(a_i . x + b_i)`` of the rows, ``(n, k)``; ``outputs`` are the ``h`` values."""
    if spec.expert == "linear":
        return np.ones_like(outputs)
    if spec.expert == "tanh":
        return 1.0 - outputs * outputs
    if spec.expert == "sigmoid":
        return outputs * (1.0 - outputs)
    z = X @ params.expert_coef.T + params.expert_intercept
    return ndtr(z) + z * _INV_SQRT_2PI * np.exp(-0.5 * z * z)


def jacobian(X, params, spec, x_norms=None):
    """Rows of the Jacobian of one output's ``f`` and ``f`` itself.

    ``params`` has one output (:meth:`~sklearn_cosmoe._model.MoEParams.output`
    for several).  Returns ``J`` of shape ``(n, 2 k d + 2 k + 2)`` in the
    fused kernel's gradient layout ``[u (k*d), beta_0 (k), a (k*d), b (k), s,
    c]`` (``u`` the router's coefficients with their norms held fixed:
    module docstring) and ``f`` of shape ``(n,)``.
    """
    X, x_norms = _prepare(X, x_norms)
    n, d = X.shape
    k = params.shape[0]
    gates, outputs = gates_and_experts(X, params, spec, x_norms)
    mix = np.einsum("nk,nk->n", gates, outputs)
    scale = float(params.output_scale)
    J = np.empty((n, 2 * k * d + 2 * k + 2))
    router = scale * gates * (outputs - mix[:, None])
    expert = scale * gates * _derivative(X, params, spec, outputs)
    kd = k * d
    rho = _score_scale(x_norms, spec)
    J[:, :kd].reshape(n, k, d)[:] = (router * rho[:, None])[:, :, None] * X[:, None, :]
    J[:, kd:kd + k] = router
    J[:, kd + k:2 * kd + k].reshape(n, k, d)[:] = expert[:, :, None] * X[:, None, :]
    J[:, 2 * kd + k:2 * kd + 2 * k] = expert
    J[:, -2] = mix
    J[:, -1] = 1.0
    return J, float(params.output_intercept) + scale * mix


def gauss_newton_sums(X, x_norms, y, sample_weight, params, spec):
    """Un-normalised Gauss-Newton sums of each output, added in a fixed order.

    Returns ``(hessian, gradient, loss, weight)``: arrays of shape ``(m, P,
    P)``, ``(m, P)`` and ``(m,)`` with ``P = 2 k d + 2 k + 2`` and ``m`` the
    number of outputs (1 for a single output), in the coordinates and layout
    of :func:`jacobian`, and the sum of the weights.  ``y`` has shape
    ``(n,)``, or ``(n, m)`` for parameters of ``m`` outputs.
    """
    X, x_norms = _prepare(X, x_norms)
    n = X.shape[0]
    per_output = _outputs(params)
    targets = np.reshape(y, (n, len(per_output)))
    size = 2 * params.shape[0] * X.shape[1] + 2 * params.shape[0] + 2
    hessian = np.zeros((len(per_output), size, size))
    gradient = np.zeros((len(per_output), size))
    loss = np.zeros(len(per_output))
    root_weight = np.sqrt(sample_weight)
    for j, p in enumerate(per_output):
        upper = np.zeros((size, size), order="F")
        for start in range(0, n, GN_BLOCK):
            rows = slice(start, min(start + GN_BLOCK, n))
            J, f = jacobian(X[rows], p, spec, x_norms[rows])
            r = targets[rows, j] - f
            wr = sample_weight[rows] * r
            gradient[j] -= wr @ J
            loss[j] += 0.5 * np.dot(wr, r)
            weighted = J * root_weight[rows, None]
            # upper += weighted.T @ weighted; weighted.T is Fortran-ordered: no copy
            upper = blas.dsyrk(1.0, weighted.T, beta=1.0, c=upper, trans=0, lower=0,
                               overwrite_c=1)
        hessian[j] = np.triu(upper) + np.triu(upper, 1).T
    return hessian, gradient, loss, float(np.sum(sample_weight))


def _output_columns(shape, spec, j):
    """Where output ``j``'s single-output layout goes in the full parameter vector."""
    k, d = shape
    kd = k * d
    m = spec.n_outputs
    router = np.arange(kd + k)
    if m is None:
        return np.arange(2 * kd + 2 * k + 2)
    expert_coef = kd + k + (np.arange(k)[:, None] * m + j) * d + np.arange(d)
    expert_intercept = kd + k + m * kd + np.arange(k) * m + j
    affine = kd + k + m * (kd + k) + np.array([j, m + j])
    return np.concatenate([router, expert_coef.ravel(), expert_intercept, affine])


def _router_chain(params, spec):
    """The block-diagonal chain rule from ``u`` to ``beta_1`` (``C`` of the module docstring)."""
    k, d = params.shape
    beta = params.gate_coef
    if spec.router == "linear":
        return np.eye(k * d)
    norms = np.linalg.norm(beta, axis=1)
    q = norms + (float(spec.tau1) if spec.router == "perturbed_cosine" else 0.0)
    inv_q = np.divide(1.0, q, out=np.zeros_like(q), where=q != 0)
    chain = np.zeros((k * d, k * d))
    for i in range(k):
        block = inv_q[i] * np.eye(d)
        if norms[i] > 0:
            block -= inv_q[i] ** 2 / norms[i] * np.outer(beta[i], beta[i])
        chain[i * d:(i + 1) * d, i * d:(i + 1) * d] = block
    return chain


def finish_gauss_newton(sums, params, spec):
    """``(loss, gradient, hessian)`` of the objective from :func:`gauss_newton_sums`.

    The outputs' sums are placed in the layout of
    :meth:`~sklearn_cosmoe._model.MoEParams.to_vector` (the router's shared),
    divided by the total weight, taken through the router's chain rule, and
    the ridge terms of :func:`~sklearn_cosmoe._model.penalised` are added;
    the output scale and intercept are dropped when ``spec`` does not learn
    them.  The loss and gradient are those of
    :func:`~sklearn_cosmoe._model.objective` up to rounding, the Hessian is
    the Gauss-Newton matrix.
    """
    hessian_parts, gradient_parts, loss_parts, weight = sums
    if not weight > 0:
        raise ValueError(f"sample_weight must have a positive sum; got {weight}.")
    shape = params.shape
    k, d = shape
    kd = k * d
    m = 1 if spec.n_outputs is None else spec.n_outputs
    size = kd + k + m * (kd + k) + 2 * m
    hessian = np.zeros((size, size))
    gradient = np.zeros(size)
    for j in range(m):
        columns = _output_columns(shape, spec, j)
        hessian[np.ix_(columns, columns)] += hessian_parts[j]
        gradient[columns] += gradient_parts[j]
    hessian /= weight
    gradient /= weight
    loss = float(np.sum(loss_parts)) / weight
    chain = _router_chain(params, spec)
    gradient[:kd] = chain @ gradient[:kd]
    hessian[:kd] = chain @ hessian[:kd]
    hessian[:, :kd] = hessian[:, :kd] @ chain
    if spec.alpha > 0:
        a = spec.alpha
        coef = params.expert_coef.ravel()
        loss += 0.5 * a * np.dot(coef, coef)
        ridge = np.arange(kd + k, kd + k + coef.size)
        gradient[ridge] += a * coef
        hessian[ridge, ridge] += a
        if spec.router == "linear":
            beta = params.gate_coef.ravel()
            loss += 0.5 * a * np.dot(beta, beta)
            gradient[:kd] += a * beta
            hessian[np.arange(kd), np.arange(kd)] += a
    if not spec.learns_output_affine:
        keep = size - 2 * m
        hessian, gradient = hessian[:keep, :keep], gradient[:keep]
    return loss, gradient, hessian
