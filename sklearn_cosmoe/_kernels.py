"""Numba kernels: router scores, gates, experts, fused loss/gradient, gated Gram.

The kernels know nothing of the Python objects of the model: they take float64
arrays and integer codes (``ROUTER_*``, ``EXPERT_*``).  Every kernel that
reduces over rows splits the rows into blocks whose size depends only on the
number of rows (:func:`n_blocks`), computes one partial result per block in
parallel and adds the partials in block order, so results are bit-for-bit the
same whatever the number of threads.

Notation (see ``model.md``): for a row ``x``, ``dot_i = beta1_i . x`` and

* linear router: ``s_i = dot_i / T + beta0_i``;
* (perturbed) cosine router:
  ``s_i = dot_i / ((|beta1_i| + tau1)(|x| + tau2)) / T + beta0_i``, with
  ``tau1 = tau2 = 0`` for the plain cosine router.  A zero denominator (a
  zero row under the cosine router, or a zero ``beta1_i``) gives a cosine
  term of 0, never NaN.

Gates are the (top-K) softmax of the scores; the prediction is
``c + s * sum_i g_i h(a_i . x + b_i)``.
"""

import math

import numpy as np
from numba import njit, prange

ROUTER_LINEAR = 0
ROUTER_COSINE = 1
ROUTER_PERTURBED_COSINE = 2

EXPERT_LINEAR = 0
EXPERT_TANH = 1
EXPERT_SIGMOID = 2
EXPERT_GELU = 3

_MIN_BLOCK = 512
_MAX_BLOCKS = 64
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True)
def n_blocks(n_samples):
    """Number of row blocks for ``n_samples`` rows (independent of threads)."""
    n = (n_samples + _MIN_BLOCK - 1) // _MIN_BLOCK
    return max(1, min(n, _MAX_BLOCKS))


@njit(cache=True, inline="always")
def _block_bounds(block, n_samples, n_blk):
    size = (n_samples + n_blk - 1) // n_blk
    start = min(block * size, n_samples)
    return start, min(start + size, n_samples)


@njit(cache=True, inline="always")
def activation(z, expert):
    """Expert activation ``h(z)`` and its derivative ``h'(z)``."""
    if expert == EXPERT_LINEAR:
        return z, 1.0
    if expert == EXPERT_TANH:
        t = math.tanh(z)
        return t, 1.0 - t * t
    if expert == EXPERT_SIGMOID:
        if z >= 0.0:
            e = math.exp(-z)
            s = 1.0 / (1.0 + e)
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
        return s, s * (1.0 - s)
    # GELU, exact form z * Phi(z)
    cdf = 0.5 * (1.0 + math.erf(z / _SQRT2))
    return z * cdf, cdf + z * _INV_SQRT_2PI * math.exp(-0.5 * z * z)


@njit(cache=True)
def gate_inverse_norms(gate_coef, router, tau1):
    """``1 / (|beta1_i| + tau1)`` per expert (0 where that is 0) and ``|beta1_i|``."""
    k, d = gate_coef.shape
    inv_q = np.zeros(k)
    norms = np.zeros(k)
    for i in range(k):
        acc = 0.0
        for j in range(d):
            acc += gate_coef[i, j] * gate_coef[i, j]
        norms[i] = math.sqrt(acc)
        if router == ROUTER_LINEAR:
            inv_q[i] = 1.0
        else:
            q = norms[i] + (tau1 if router == ROUTER_PERTURBED_COSINE else 0.0)
            inv_q[i] = 1.0 / q if q > 0.0 else 0.0
    return inv_q, norms


@njit(cache=True, inline="always")
def _row_scores(x, gate_coef_t, gate_intercept, inv_q, router, tau2, inv_temp,
                dots, scores):
    """Fill ``dots`` and ``scores`` for the row ``x``; return ``1 / (|x| + tau2)``.

    ``gate_coef_t`` is ``gate_coef.T`` (C-contiguous): the loops run over
    features outside and experts inside, so the k dot products advance
    together.  For the linear router the returned factor is 1.  Where
    ``|x| + tau2 == 0`` it is 0, which makes every cosine term 0.
    """
    d, k = gate_coef_t.shape
    for i in range(k):
        dots[i] = 0.0
    sq = 0.0
    for j in range(d):
        xj = x[j]
        sq += xj * xj
        for i in range(k):
            dots[i] += gate_coef_t[j, i] * xj
    inv_c = 1.0
    if router != ROUTER_LINEAR:
        c = math.sqrt(sq) + (tau2 if router == ROUTER_PERTURBED_COSINE else 0.0)
        inv_c = 1.0 / c if c > 0.0 else 0.0
    for i in range(k):
        scores[i] = dots[i] * inv_q[i] * inv_c * inv_temp + gate_intercept[i]
    return inv_c


@njit(cache=True, inline="always")
def _row_experts(x, expert_coef_t, expert_intercept, expert, h, dh):
    """Expert outputs ``h`` and derivatives ``dh`` for the row ``x``."""
    d, k = expert_coef_t.shape
    for i in range(k):
        h[i] = expert_intercept[i]
    for j in range(d):
        xj = x[j]
        for i in range(k):
            h[i] += expert_coef_t[j, i] * xj
    for i in range(k):
        h[i], dh[i] = activation(h[i], expert)


@njit(cache=True, inline="always")
def _softmax_top_k(scores, top_k, gates):
    """Write the (top-K) softmax of ``scores`` into ``gates``.

    ``top_k <= 0`` or ``top_k >= k`` is the dense softmax.  Ties are broken in
    favour of the lower index.  The maximum is subtracted before ``exp``.
    """
    k = scores.shape[0]
    if top_k <= 0 or top_k >= k:
        m = scores[0]
        for i in range(1, k):
            if scores[i] > m:
                m = scores[i]
        total = 0.0
        for i in range(k):
            gates[i] = math.exp(scores[i] - m)
            total += gates[i]
        for i in range(k):
            gates[i] /= total
        return
    # mark the top_k largest scores with gates[i] = 1, the rest 0
    for i in range(k):
        gates[i] = 0.0
    m = 0.0
    for pick in range(top_k):
        best = -1
        for i in range(k):
            if gates[i] == 0.0 and (best < 0 or scores[i] > scores[best]):
                best = i
        gates[best] = 1.0
        if pick == 0:
            m = scores[best]  # the first pick is the largest score
    total = 0.0
    for i in range(k):
        if gates[i] != 0.0:
            gates[i] = math.exp(scores[i] - m)
            total += gates[i]
    for i in range(k):
        gates[i] /= total


@njit(parallel=True, cache=True)
def gates_and_experts(X, gate_coef, gate_intercept, expert_coef, expert_intercept,
                      router, expert, tau1, tau2, inv_temp, top_k, gates, outputs):
    """Fill ``gates`` (n, k) and expert ``outputs`` (n, k) in place."""
    n, d = X.shape
    k = gate_coef.shape[0]
    inv_q, _ = gate_inverse_norms(gate_coef, router, tau1)
    gate_coef_t = np.ascontiguousarray(gate_coef.T)
    expert_coef_t = np.ascontiguousarray(expert_coef.T)
    n_blk = n_blocks(n)
    for blk in prange(n_blk):
        start, stop = _block_bounds(blk, n, n_blk)
        dots = np.empty(k)
        scores = np.empty(k)
        dh = np.empty(k)
        for row in range(start, stop):
            _row_scores(X[row], gate_coef_t, gate_intercept, inv_q, router, tau2,
                        inv_temp, dots, scores)
            _softmax_top_k(scores, top_k, gates[row])
            _row_experts(X[row], expert_coef_t, expert_intercept, expert,
                         outputs[row], dh)


@njit(parallel=True, cache=True)
def loss_and_gradient(X, y, sample_weight, gate_coef, gate_intercept, expert_coef,
                      expert_intercept, output_scale, output_intercept, router,
                      expert, tau1, tau2, inv_temp, top_k, grad):
    """Weighted sum of squares and its exact gradient, in one pass over ``X``.

    Returns ``sum_n w_n (y_n - f(x_n))^2 / 2`` (not normalised) and writes its
    gradient into ``grad`` (length ``2 k d + 2 k + 2``), laid out as
    ``[gate_coef (k*d, row major), gate_intercept (k), expert_coef (k*d),
    expert_intercept (k), output_scale, output_intercept]``.
    No ``(n, k, d)`` temporary is formed.
    """
    n, d = X.shape
    k = gate_coef.shape[0]
    kd = k * d
    off_b0 = kd
    off_a = kd + k
    off_b = 2 * kd + k
    off_s = 2 * kd + 2 * k
    off_c = off_s + 1
    width = off_c + 1 + k  # + k accumulators of the cosine radial term
    inv_q, norms = gate_inverse_norms(gate_coef, router, tau1)
    n_blk = n_blocks(n)
    partial = np.zeros((n_blk, width))
    partial_loss = np.zeros(n_blk)
    gate_coef_t = np.ascontiguousarray(gate_coef.T)
    expert_coef_t = np.ascontiguousarray(expert_coef.T)
    for blk in prange(n_blk):
        start, stop = _block_bounds(blk, n, n_blk)
        dots = np.empty(k)
        scores = np.empty(k)
        gates = np.empty(k)
        h = np.empty(k)
        dh = np.empty(k)
        t = np.empty(k)
        gx = np.empty(k)
        # block accumulators, features outside and experts inside
        acc_gate = np.zeros((d, k))
        acc_expert = np.zeros((d, k))
        acc = np.zeros(4 * k + 2)  # b0 | b | radial | s, c
        loss = 0.0
        for row in range(start, stop):
            x = X[row]
            inv_c = _row_scores(x, gate_coef_t, gate_intercept, inv_q, router,
                                tau2, inv_temp, dots, scores)
            _softmax_top_k(scores, top_k, gates)
            _row_experts(x, expert_coef_t, expert_intercept, expert, h, dh)
            mix = 0.0
            for i in range(k):
                mix += gates[i] * h[i]
            resid = y[row] - (output_intercept + output_scale * mix)
            w = sample_weight[row]
            loss += w * resid * resid
            delta = -w * resid
            acc[4 * k] += delta * mix
            acc[4 * k + 1] += delta
            delta *= output_scale
            for i in range(k):
                g = delta * gates[i]  # 0 outside the top K
                t[i] = g * dh[i]
                gam = g * (h[i] - mix)
                gx[i] = gam * inv_temp * inv_c
                acc[i] += gam
                acc[k + i] += t[i]
                acc[2 * k + i] += gx[i] * dots[i]
            for j in range(d):
                xj = x[j]
                for i in range(k):
                    acc_expert[j, i] += t[i] * xj
                    acc_gate[j, i] += gx[i] * xj
        part = partial[blk]
        for i in range(k):
            for j in range(d):
                part[i * d + j] = acc_gate[j, i]
                part[off_a + i * d + j] = acc_expert[j, i]
            part[off_b0 + i] = acc[i]
            part[off_b + i] = acc[k + i]
            part[off_c + 1 + i] = acc[2 * k + i]
        part[off_s] = acc[4 * k]
        part[off_c] = acc[4 * k + 1]
        partial_loss[blk] = 0.5 * loss
    total = 0.0
    for j in range(off_c + 1):
        grad[j] = 0.0
    radial = np.zeros(k)
    for blk in range(n_blk):
        total += partial_loss[blk]
        for j in range(off_c + 1):
            grad[j] += partial[blk, j]
        for i in range(k):
            radial[i] += partial[blk, off_c + 1 + i]
    # chain rule through 1 / (|beta1_i| + tau1): scale each beta1 gradient
    for i in range(k):
        iq = inv_q[i]
        corr = 0.0
        if router != ROUTER_LINEAR and norms[i] > 0.0:
            corr = radial[i] * iq * iq / norms[i]
        for j in range(d):
            grad[i * d + j] = grad[i * d + j] * iq - corr * gate_coef[i, j]
    return total


@njit(parallel=True, cache=True)
def gated_gram(X, y, sample_weight, gates):
    """Normal equations of linear experts with fixed gates.

    With ``z_n = (g_1(x_n) [x_n, 1], ..., g_k(x_n) [x_n, 1])`` returns
    ``sum_n w_n z_n z_n^T`` and ``sum_n w_n z_n y_n``; the unknowns are
    ordered ``(a_1, b_1, ..., a_k, b_k)``.  Only the upper triangle is
    accumulated; the lower one is copied from it.
    """
    n, d = X.shape
    k = gates.shape[1]
    p = d + 1
    m = k * p
    n_blk = n_blocks(n)
    partial = np.zeros((n_blk, m * m))
    partial_rhs = np.zeros((n_blk, m))
    for blk in prange(n_blk):
        start, stop = _block_bounds(blk, n, n_blk)
        blk_gram = partial[blk]
        blk_rhs = partial_rhs[blk]
        z = np.empty(m)
        for row in range(start, stop):
            w = sample_weight[row]
            if w == 0.0:
                continue
            for i in range(k):
                g = gates[row, i]
                for j in range(d):
                    z[i * p + j] = g * X[row, j]
                z[i * p + d] = g
            wy = w * y[row]
            for a in range(m):
                za = w * z[a]
                if za == 0.0:
                    continue
                blk_rhs[a] += z[a] * wy
                row_a = a * m
                for b in range(a, m):
                    blk_gram[row_a + b] += za * z[b]
    gram = np.zeros((m, m))
    rhs = np.zeros(m)
    for blk in range(n_blk):
        gram += partial[blk].reshape((m, m))
        rhs += partial_rhs[blk]
    for a in range(m):
        for b in range(a):
            gram[a, b] = gram[b, a]
    return gram, rhs
