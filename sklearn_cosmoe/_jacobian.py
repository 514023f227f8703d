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

from ._model import _outputs, _prepare, add_ridge, gates_and_experts
from ._parallel import single_threaded_blas

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


def _derivatives(X, params, spec, outputs):
    """``h'`` and ``h''`` at ``a_i . x + b_i`` of the rows, each ``(n, k)``;
    ``outputs`` are the ``h`` values."""
    h = outputs
    if spec.expert == "linear":
        return np.ones_like(h), np.zeros_like(h)
    if spec.expert == "tanh":
        first = 1.0 - h * h
        return first, -2.0 * h * first
    if spec.expert == "sigmoid":
        first = h * (1.0 - h)
        return first, first * (1.0 - 2.0 * h)
    z = X @ params.expert_coef.T + params.expert_intercept
    density = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    return ndtr(z) + z * density, (2.0 - z * z) * density


def jacobian(X, params, spec, x_norms=None):
    """Rows of the Jacobian of one output's ``f`` and ``f`` itself.

    ``params`` has one output (:meth:`~sklearn_cosmoe._model.MoEParams.output`
    for several).  Returns ``J`` of shape ``(n, 2 k d + 2 k + 2)`` in the
    fused kernel's gradient layout ``[u (k*d), beta_0 (k), a (k*d), b (k), s,
    c]`` (``u`` the router's coefficients with their norms held fixed:
    module docstring) and ``f`` of shape ``(n,)``.
    """
    J, f, _ = _jacobian_rows(X, params, spec, x_norms)
    return J, f


def _jacobian_rows(X, params, spec, x_norms):
    """:func:`jacobian`, and the gates, expert outputs and score scales it used."""
    X, x_norms = _prepare(X, x_norms)
    n, d = X.shape
    k = params.shape[0]
    gates, outputs = gates_and_experts(X, params, spec, x_norms)
    mix = np.einsum("nk,nk->n", gates, outputs)
    scale = float(params.output_scale)
    J = np.empty((n, 2 * k * d + 2 * k + 2))
    router = scale * gates * (outputs - mix[:, None])
    first, second = _derivatives(X, params, spec, outputs)
    expert = scale * gates * first
    kd = k * d
    rho = _score_scale(x_norms, spec)
    J[:, :kd].reshape(n, k, d)[:] = (router * rho[:, None])[:, :, None] * X[:, None, :]
    J[:, kd:kd + k] = router
    J[:, kd + k:2 * kd + k].reshape(n, k, d)[:] = expert[:, :, None] * X[:, None, :]
    J[:, 2 * kd + k:2 * kd + 2 * k] = expert
    J[:, -2] = mix
    J[:, -1] = 1.0
    return (J, float(params.output_intercept) + scale * mix,
            (gates, outputs, mix, rho, scale, first, second))


def residual_curvature(X, weighted_residuals, J, rows):
    """``-sum_n w_n r_n d^2 f_n``: the Hessian less the Gauss-Newton matrix.

    The scores ``s_i = u_i . psi + beta_0i`` (``psi = [x / (T p(x)), 1]``)
    and the pre-activations ``z_i = a_i . x + b_i`` (in ``phi = [x, 1]``) are
    linear in the parameters, so the second derivatives of ``f = c + S sum_i
    g_i h(z_i)`` are those in ``s``, ``z`` and ``S`` times the features
    (``m = sum_j g_j h_j``, ``u_i = g_i (h_i - m)``):

    * ``d^2 f / ds_i ds_j = S (delta_ij u_i - u_i g_j - g_i u_j)``,
    * ``d^2 f / ds_i dz_j = S (delta_ij g_i h'_i - g_i g_j h'_j)``,
    * ``d^2 f / dz_i dz_j = delta_ij S g_i h''_i``,
    * ``d^2 f / dS ds_i = u_i``, ``d^2 f / dS dz_i = g_i h'_i``, and none in
      ``c`` or twice in ``S``.

    The rows of ``J`` (:func:`_jacobian_rows`, which also gave ``rows``)
    hold ``S u_i psi`` for the router and ``S g_i h'_i phi`` for the
    experts, so with ``G`` the rows' ``g_i psi`` in the router's layout all
    the terms without a ``delta_ij`` are the one product ``G^T diag(-w r)
    [J_router, J_experts]``, and those with one are products with ``psi`` or
    ``phi``: no outer product of the features is formed.  Returns these sums
    (:func:`place_curvature` lays them out): ``cross`` ``(R, 2 R)``, the
    ``delta_ij`` terms ``diagonal`` ``(p, 2 R)`` and ``experts`` ``(p, R)``
    (zero for linear experts) and the output scale's row ``(2 k, p)``, with
    ``R = k d + k`` the router's columns and ``p = d + 1``.
    """
    gates, outputs, mix, rho, scale, first, second = rows
    n, d = X.shape
    k = gates.shape[1]
    kd = k * d
    router = kd + k
    minus_wr = -weighted_residuals[:, None]
    psi = np.empty((n, d + 1))
    psi[:, :d] = X * rho[:, None]
    psi[:, d] = 1.0
    phi = np.empty((n, d + 1))
    phi[:, :d] = X
    phi[:, d] = 1.0
    gated = np.empty((n, router))  # G: g_i psi, in the router's layout
    gated[:, :kd].reshape(n, k, d)[:] = gates[:, :, None] * psi[:, None, :d]
    gated[:, kd:] = gates
    experts = np.zeros((d + 1, router))
    if np.any(second):  # a linear expert has none
        factor = scale * gates * second
        curved = np.empty((n, router))  # S g_i h''_i phi, in the experts' layout
        curved[:, :kd].reshape(n, k, d)[:] = factor[:, :, None] * X[:, None, :]
        curved[:, kd:] = factor
        experts = (minus_wr * phi).T @ curved
    along_scale = np.concatenate([(minus_wr * gates * (outputs - mix[:, None])).T @ psi,
                                  (minus_wr * gates * first).T @ phi])
    columns = J[:, :2 * router]
    return (minus_wr * gated).T @ columns, (minus_wr * psi).T @ columns, experts, along_scale


def place_curvature(parts, k, d):
    """The ``(P, P)`` matrix, in :func:`jacobian`'s layout, of the sums of
    :func:`residual_curvature`."""
    cross, diagonal, experts, along_scale = parts
    kd = k * d
    router = kd + k
    # where (expert i, feature a; the last feature is the intercept) sits in the router's layout
    router_at = np.concatenate([np.arange(kd).reshape(k, d), kd + np.arange(k)[:, None]],
                               axis=1)
    size = 2 * router + 2
    curvature = np.zeros((size, size))
    with_router = cross[:, :router]  # sum_n -w_n r_n G_n J_router,n^T
    curvature[:router, :router] = -(with_router + with_router.T)
    curvature[:router, router:2 * router] = -cross[:, router:]
    for at in router_at:
        curvature[np.ix_(at, at)] += diagonal[:, at].T
        curvature[np.ix_(at, router + at)] += diagonal[:, router + at]
        curvature[np.ix_(router + at, router + at)] = experts[:, at]
    curvature[router:2 * router, :router] = curvature[:router, router:2 * router].T
    places = np.concatenate([router_at.ravel(), router + router_at.ravel()])
    curvature[size - 2, places] = along_scale.ravel()
    curvature[places, size - 2] = along_scale.ravel()
    return curvature


@single_threaded_blas()
def gauss_newton_sums(X, x_norms, y, sample_weight, params, spec, exact=False):
    """Un-normalised Gauss-Newton sums of each output, added in a fixed order.

    Returns ``(hessian, gradient, loss, weight, curvature)``: arrays of shape
    ``(m, P, P)``, ``(m, P)`` and ``(m,)`` with ``P = 2 k d + 2 k + 2`` and
    ``m`` the number of outputs (1 for a single output), in the coordinates
    and layout of :func:`jacobian`, the sum of the weights, and, with
    ``exact``, the :func:`residual_curvature` sums of
    shape ``(m, P, P)`` (else None).  ``y`` has shape ``(n,)``, or ``(n, m)``
    for parameters of ``m`` outputs.  BLAS runs on one thread wherever it is
    called (a Dask worker too): its products of a block's few hundred rows
    are several times slower on two threads than on one (at 8 experts on 10
    features, 1e5 rows: 1.5 s against 0.27 s on two cores).
    """
    X, x_norms = _prepare(X, x_norms)
    n = X.shape[0]
    per_output = _outputs(params)
    targets = np.reshape(y, (n, len(per_output)))
    size = 2 * params.shape[0] * X.shape[1] + 2 * params.shape[0] + 2
    hessian = np.zeros((len(per_output), size, size))
    gradient = np.zeros((len(per_output), size))
    loss = np.zeros(len(per_output))
    curvature = np.zeros((len(per_output), size, size)) if exact else None
    # unit weights multiply nothing (the same bits without the copies)
    root_weight = None if np.all(sample_weight == 1.0) else np.sqrt(sample_weight)
    k, d = params.shape
    for j, p in enumerate(per_output):
        upper = np.zeros((size, size), order="F")
        blocks = None
        for start in range(0, n, GN_BLOCK):
            rows = slice(start, min(start + GN_BLOCK, n))
            J, f, parts = _jacobian_rows(X[rows], p, spec, x_norms[rows])
            r = targets[rows, j] - f
            wr = sample_weight[rows] * r
            gradient[j] -= wr @ J
            loss[j] += 0.5 * np.dot(wr, r)
            weighted = J if root_weight is None else J * root_weight[rows, None]
            # upper += weighted.T @ weighted; weighted.T is Fortran-ordered: no copy
            upper = blas.dsyrk(1.0, weighted.T, beta=1.0, c=upper, trans=0, lower=0,
                               overwrite_c=1)
            if exact:
                sums = residual_curvature(X[rows], wr, J, parts)
                blocks = sums if blocks is None else [a + b for a, b in zip(blocks, sums)]
        hessian[j] = np.triu(upper) + np.triu(upper, 1).T
        if exact and blocks is not None:
            curvature[j] = place_curvature(blocks, k, d)
    return hessian, gradient, loss, float(np.sum(sample_weight)), curvature


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
    """The block-diagonal chain rule from ``u`` to ``beta_1`` (``C`` of the module docstring).

    Reads ``params.gate_coef`` alone (the classifier's parameters use it too).
    """
    k, d = params.gate_coef.shape
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


def check_sums(weight, exact, atoms, spec):
    """Refuse sums of no weight, and an exact Hessian that the chain rule to
    ``beta_1`` would bend (it is exact in the atoms, or under the linear router)."""
    if not weight > 0:
        raise ValueError(f"sample_weight must have a positive sum; got {weight}.")
    if exact and not (atoms or spec.router == "linear"):
        raise ValueError("the exact Hessian is in the atoms or under the linear router")


def to_gate_coef(gradient, matrix, params, spec):
    """The router's block of ``gradient`` and ``matrix`` taken from the atoms to
    ``beta_1`` by the chain rule ``C`` (:func:`_router_chain`), in place."""
    kd = params.gate_coef.size
    chain = _router_chain(params, spec)
    gradient[:kd] = chain @ gradient[:kd]
    matrix[:kd] = chain @ matrix[:kd]
    matrix[:, :kd] = matrix[:, :kd] @ chain


def finish_gauss_newton(sums, params, spec, atoms=False):
    """``(loss, gradient, hessian)`` of the objective from :func:`gauss_newton_sums`.

    The outputs' sums are placed in the layout of
    :meth:`~sklearn_cosmoe._model.MoEParams.to_vector` (the router's shared),
    divided by the total weight, taken through the router's chain rule to
    ``beta_1`` (unless ``atoms``: then the router's block stays in the atoms
    ``u``, the coordinates of :func:`jacobian`), and the ridge terms of
    :func:`~sklearn_cosmoe._model.penalised` are added; the output scale and
    intercept are dropped when ``spec`` does not learn them.  The loss and
    gradient are those of :func:`~sklearn_cosmoe._model.objective` up to
    rounding, the Hessian is the Gauss-Newton matrix.  Sums with the
    residual curvature (``exact``) give a fourth array, the curvature: the
    exact Hessian is ``hessian + curvature`` (in the atoms, or under the
    linear router, whose chain rule is the identity).
    """
    hessian_parts, gradient_parts, loss_parts, weight, curvature_parts = sums
    exact = curvature_parts is not None
    check_sums(weight, exact, atoms, spec)
    shape = params.shape
    k, d = shape
    kd = k * d
    m = 1 if spec.n_outputs is None else spec.n_outputs
    size = kd + k + m * (kd + k) + 2 * m
    keep = size if spec.learns_output_affine else size - 2 * m

    def placed(parts):
        whole = np.zeros((size, size))
        for j in range(m):
            columns = _output_columns(shape, spec, j)
            whole[np.ix_(columns, columns)] += parts[j]
        return whole[:keep, :keep] / weight

    hessian = placed(hessian_parts)
    gradient = np.zeros(size)
    for j in range(m):
        gradient[_output_columns(shape, spec, j)] += gradient_parts[j]
    gradient = gradient[:keep] / weight
    loss = float(np.sum(loss_parts)) / weight
    if not atoms:
        to_gate_coef(gradient, hessian, params, spec)
    loss = add_ridge(loss, gradient, params, spec, hessian)
    if exact:
        return loss, gradient, hessian, placed(curvature_parts)
    return loss, gradient, hessian
