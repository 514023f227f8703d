"""Numba code of the classifier: class log-probabilities, and the fused
negative log-likelihood with its gradient.

The classifier's mixture is ``p(c | x) = sum_i g_i(x) pi_ic(x)`` with
``pi_i = softmax(A_i x + b_i)`` over the ``C`` classes, and the same router
and gates as the regressor (:func:`sklearn_cosmoe._jit_tiles.tile_forward`).
Logarithms are taken through log-sum-exp, finite even where every
``g_i pi_ic`` underflows: for the class log-probabilities, with
``lp_ic = log pi_ic``, ``log p(c | x) = logsumexp_i (log g_i + lp_ic)``; the
loss needs only ``log p(y | x)``, which :func:`_tile_loss_gradient` computes
from the scores and logits with one logarithm per row.

The gradient of ``-w log p(y | x)``, with responsibilities
``r_i = g_i pi_iy / p(y | x)``: ``-w (r_i - g_i)`` with respect to the
score ``s_i`` and ``-w r_i (1[c = y] - pi_ic)`` with respect to the logit
``A_ic x + b_ic``.  A row of ``partial`` is the gradient's layout,
``[gate_coef (k*d), gate_intercept (k), expert_coef (k*C*d, expert-major),
expert_intercept (k*C)]``, followed by the block's sums of ``-w log p`` and
of ``w``: the layout that :func:`sklearn_cosmoe._jit_loss.loss_finish`
reduces in block order (with the cosine router's chain rule).
"""

import math

import numpy as np
from numba import njit

from ._jit_tiles import (EXPERT_LINEAR, INLINE, JIT, TILE, block_bounds,
                         exp_nonpositive, gate_inverse_norms, tile_dots, tile_forward,
                         tile_scratch)


@njit(**JIT)
def _log_gate(g):
    return math.log(g) if g > 0.0 else -np.inf


@njit(**JIT)
def classifier_blocks(X, x_norms, y, sample_weight, gate_coef, gate_intercept,
                      expert_coef, expert_intercept, router, tau1, tau2, inv_temp,
                      top_k, tile, with_loss, blk_start, blk_stop, n_blk, gates,
                      log_proba, partial):
    """Gates and class log-probabilities, or the loss and gradient sums, per block.

    ``expert_coef`` is ``(k*C, d)`` and ``expert_intercept`` ``(k*C,)``, expert
    ``i``'s class ``c`` at row ``i*C + c``; ``y`` holds class indices.
    Without ``with_loss``: ``gates`` (``n, k``) and ``log_proba`` (``n, C``)
    get the rows of the blocks, each row computed from that row alone
    (:func:`tile_dots`); ``y``, ``sample_weight``, ``tile`` and ``partial``
    are not used.  With ``with_loss``: ``partial`` gets one row per block
    (module docstring); tiles of ``tile <= TILE`` rows go through two BLAS
    products each, and no temporary is larger than a tile.
    """
    n, d = X.shape
    k = gate_coef.shape[0]
    kc = expert_coef.shape[0]
    n_classes = kc // k
    rows = k + kc
    inv_q, _ = gate_inverse_norms(gate_coef, router, tau1)
    # W = [gate_coef; expert_coef], column-major (as stacked_coef)
    W = np.empty((d, rows)).T
    for a in range(k):
        for j in range(d):
            W[a, j] = gate_coef[a, j]
    for a in range(kc):
        for j in range(d):
            W[k + a, j] = expert_coef[a, j]
    # tile_forward adds these to its "expert" rows Z[k:2k], which here are the
    # first k logit rows: zeros leave them as they are
    no_intercept = np.zeros(k)
    scratch = tile_scratch(k)
    z_buf = np.empty(rows * TILE)
    g_buf = np.empty(rows * TILE)
    XT = np.empty((0 if with_loss else d, TILE))
    if not with_loss:
        tile = TILE
    log_g = np.empty((k, TILE))
    inv_s = np.empty((k, TILE))
    acc_max = np.empty(TILE)
    acc_sum = np.empty(TILE)
    lanes = np.empty((rows + 2, TILE))  # b0 (k), b (k*C), loss, weight
    grad_w = np.empty((rows, d))
    tile_grad_w = np.empty((rows, d))
    for blk in range(blk_start, blk_stop):
        start, stop = block_bounds(blk, n, n_blk)
        lanes.fill(0.0)
        grad_w.fill(0.0)
        for t0 in range(start, stop, tile):
            m = min(tile, stop - t0)
            Xt = X[t0:t0 + m]
            Z = z_buf[:rows * m].reshape((rows, m))
            if with_loss:
                np.dot(W, Xt.T, Z)
            else:
                tile_dots(X, t0, m, W, XT, Z)
            E, _, inv_c, inv_sum = tile_forward(
                Z[:2 * k], t0, m, x_norms, gate_intercept, inv_q, no_intercept,
                router, EXPERT_LINEAR, tau2, inv_temp, top_k, scratch)
            if not with_loss:
                _tile_log_proba(Z, E, inv_sum, expert_intercept, k, n_classes, m,
                                log_g, acc_max, acc_sum)
                for t in range(m):
                    for i in range(k):
                        gates[t0 + t, i] = E[i, t]
                for c in range(n_classes):
                    _mixture_log(Z, log_g, k, n_classes, c, m, acc_max, acc_sum)
                    for t in range(m):
                        log_proba[t0 + t, c] = acc_sum[t]
                continue
            G = g_buf[:rows * m].reshape((rows, m))
            _tile_loss_gradient(Z, E, inv_c, inv_sum, scratch[4], y, sample_weight, t0,
                                gate_intercept, inv_q, expert_intercept, k, n_classes, m,
                                log_g, inv_s, acc_max, acc_sum, G, lanes)
            np.dot(G, Xt, tile_grad_w)
            for a in range(rows):
                for j in range(d):
                    grad_w[a, j] += tile_grad_w[a, j]
        if not with_loss:
            continue
        part = partial[blk]
        kd = k * d
        for i in range(k):
            for j in range(d):
                part[i * d + j] = grad_w[i, j]
        for a in range(kc):
            for j in range(d):
                part[kd + k + a * d + j] = grad_w[k + a, j]
        off_b = kd + k + kc * d
        for a in range(rows + 2):
            acc = 0.0
            for t in range(TILE):
                acc += lanes[a, t]
            if a < k:
                part[kd + a] = acc
            elif a < rows:
                part[off_b + a - k] = acc
            else:
                part[off_b + kc + a - rows] = acc


@njit(**JIT)
def _mixture_log(Z, log_g, k, n_classes, c, m, acc_max, out):
    """``out[t] = logsumexp_i (log_g[i, t] + Z[k + i*C + c, t])`` for ``t < m``."""
    for t in range(m):
        acc_max[t] = -np.inf
    for i in range(k):
        lp = Z[k + i * n_classes + c]
        lg = log_g[i]
        for t in range(m):
            acc_max[t] = max(acc_max[t], lg[t] + lp[t])
    for t in range(m):
        out[t] = 0.0
    for i in range(k):
        lp = Z[k + i * n_classes + c]
        lg = log_g[i]
        for t in range(m):
            out[t] += exp_nonpositive(lg[t] + lp[t] - acc_max[t])
    for t in range(m):
        out[t] = acc_max[t] + math.log(out[t])


@njit(**INLINE)
def _add_class_bias_and_max(Z, expert_intercept, i, k, n_classes, m, acc_max):
    """Add expert ``i``'s class intercepts to its logit rows of ``Z``, and put
    their maximum over the classes into ``acc_max``, for the ``m`` rows of a tile."""
    base = k + i * n_classes
    for t in range(m):
        acc_max[t] = -np.inf
    for c in range(n_classes):
        z = Z[base + c]
        bias = expert_intercept[i * n_classes + c]
        for t in range(m):
            z[t] += bias
            acc_max[t] = max(acc_max[t], z[t])


@njit(**JIT)
def _tile_log_proba(Z, E, inv_sum, expert_intercept, k, n_classes, m, log_g, acc_max,
                    acc_sum):
    """Gates into ``E``, their logarithms into ``log_g`` and the experts' class
    log-probabilities into the logit rows of ``Z``, for the ``m`` rows of a tile."""
    for i in range(k):
        lg = log_g[i]
        e = E[i]
        for t in range(m):
            e[t] *= inv_sum[t]  # E is now the gates
            lg[t] = _log_gate(e[t])
    # logits -> log-softmax over the classes of each expert, in place
    for i in range(k):
        base = k + i * n_classes
        _add_class_bias_and_max(Z, expert_intercept, i, k, n_classes, m, acc_max)
        for t in range(m):
            acc_sum[t] = 0.0
        for c in range(n_classes):
            z = Z[base + c]
            for t in range(m):
                acc_sum[t] += exp_nonpositive(z[t] - acc_max[t])
        for t in range(m):
            acc_sum[t] = acc_max[t] + math.log(acc_sum[t])
        for c in range(n_classes):
            z = Z[base + c]
            for t in range(m):
                z[t] -= acc_sum[t]


@njit(**JIT)
def _tile_loss_gradient(Z, E, inv_c, inv_sum, col_max, y, sample_weight, t0,
                        gate_intercept, inv_q, expert_intercept, k, n_classes, m, b,
                        inv_s, acc_max, acc_sum, G, lanes):
    """Loss and gradient of the ``m`` rows of a tile at ``t0``: ``G`` (``k + kC, m``)
    gets the gradient with respect to the scores (times ``inv_c``) and the logits;
    ``lanes`` adds it up per row of the tile, with the loss and the weight.

    ``Z`` and ``E`` are as :func:`tile_forward` leaves them (``col_max`` is its
    maximum score per row).  The gates are ``g_i = h exp(s_i - max_j s_j)``,
    with ``h`` the gate of the largest score (``g_i = 0`` off the top K), and
    ``pi_iy = e_iy / S_i``, with ``e_ic = exp(z_ic - max_c z_ic)`` and
    ``S_i = sum_c e_ic``; then
    ``p(y | x) = h exp(M) sum_i u_i`` with ``b_i = s_i - max_j s_j + z_iy -
    max_c z_ic``, ``M = max_i b_i`` and ``u_i = exp(b_i - M) / S_i``; the
    responsibilities are ``r_i = u_i / sum_j u_j``.  Since ``h >= 1/k`` and
    ``sum_i u_i >= 1/C``, one logarithm per row, ``log p = M + log(h sum_i u_i)``,
    is finite even where every ``g_i pi_iy`` underflows; and the ``e_ic``, kept
    in ``G``, give the ``pi_ic`` of the backward pass.
    """
    rows = k + k * n_classes
    lane_loss = lanes[rows]
    lane_w = lanes[rows + 1]
    # the experts' softmax over the classes: e_ic into G, 1 / S_i into inv_s;
    # then b_i (-inf where the gate is 0)
    for i in range(k):
        base = k + i * n_classes
        _add_class_bias_and_max(Z, expert_intercept, i, k, n_classes, m, acc_max)
        for t in range(m):
            acc_sum[t] = 0.0
        for c in range(n_classes):
            z = Z[base + c]
            e = G[base + c]
            for t in range(m):
                v = exp_nonpositive(z[t] - acc_max[t])
                e[t] = v
                acc_sum[t] += v
        s_inv = inv_s[i]
        for t in range(m):
            s_inv[t] = 1.0 / acc_sum[t]
        dots = Z[i]
        q = inv_q[i]
        bias = gate_intercept[i]
        gate = E[i]
        bi = b[i]
        for t in range(m):
            s = dots[t] * q * inv_c[t] + bias
            z_y = Z[base + y[t0 + t], t]
            bi[t] = (s - col_max[t]) + (z_y - acc_max[t]) if gate[t] != 0.0 else -np.inf
    # h into acc_sum (for dense gates max_i E_i = 1 and h = inv_sum)
    for t in range(m):
        acc_sum[t] = 0.0
    for i in range(k):
        gate = E[i]
        for t in range(m):
            acc_sum[t] = max(acc_sum[t], gate[t])
    for t in range(m):
        acc_sum[t] *= inv_sum[t]
    # M into acc_max, u_i into b, and the loss
    for t in range(m):
        acc_max[t] = -np.inf
    for i in range(k):
        bi = b[i]
        for t in range(m):
            acc_max[t] = max(acc_max[t], bi[t])
    total = col_max  # col_max is not needed any more: sum_i u_i
    for t in range(m):
        total[t] = 0.0
    for i in range(k):
        bi = b[i]
        s_inv = inv_s[i]
        for t in range(m):
            u = exp_nonpositive(bi[t] - acc_max[t]) * s_inv[t]
            bi[t] = u
            total[t] += u
    for t in range(m):
        w = sample_weight[t0 + t]
        lane_loss[t] -= w * (acc_max[t] + math.log(acc_sum[t] * total[t]))
        lane_w[t] += w
        total[t] = 1.0 / total[t]
    # backward: w r_i into b, w r_i / S_i into inv_s
    for i in range(k):
        gate = E[i]
        d_gate = G[i]
        lane_b0 = lanes[i]
        a = b[i]
        s_inv = inv_s[i]
        for t in range(m):
            w = sample_weight[t0 + t]
            wr = w * (a[t] * total[t])
            a[t] = wr
            s_inv[t] *= wr
            v = -(wr - w * (gate[t] * inv_sum[t]))
            lane_b0[t] += v
            d_gate[t] = v * inv_c[t]
        for c in range(n_classes):
            row = k + i * n_classes + c
            d_logit = G[row]
            lane_b = lanes[row]
            for t in range(m):
                v = s_inv[t] * d_logit[t]
                if y[t0 + t] == c:
                    v -= a[t]
                d_logit[t] = v
                lane_b[t] += v
