"""Numba code of the forward pass and of the fused loss and gradient.

:func:`forward_blocks` runs the router and the experts on the rows of its
blocks and then either writes their gates and outputs or, with
``with_loss``, adds up the loss and the gradient: one function, so that the
forward code is compiled once for ``predict`` and the fit (the largest part of
the first compilation).  With ``with_loss`` it writes, for each block of its
range, the block's sums into one row of ``partial``; :func:`loss_finish` adds
the rows in block order and applies the chain rule of the cosine router's
normalisation.  The layout of a row is the gradient's, ``[gate_coef (k*d, row
major), gate_intercept (k), expert_coef (k*d), expert_intercept (k),
output_scale, output_intercept]``, followed by the block's sum of
``w r^2 / 2`` and of the weights.
"""

import numpy as np
from numba import njit

from ._jit_tiles import (EXPERT_LINEAR, JIT, ROUTER_LINEAR, TILE, block_bounds,
                         gate_inverse_norms, stacked_coef, tile_dots, tile_forward,
                         tile_scratch)


@njit(**JIT)
def forward_blocks(X, x_norms, y, sample_weight, gate_coef, gate_intercept, expert_coef,
                   expert_intercept, output_scale, output_intercept, router, expert, tau1,
                   tau2, inv_temp, top_k, tile, with_loss, blk_start, blk_stop, n_blk,
                   gates, outputs, partial):
    """Gates and outputs, or sums of the loss, the weights and the gradient, per block.

    Without ``with_loss``: ``gates`` and ``outputs`` (``n, k``) get the rows of
    the blocks, each row's dot products summed in feature order
    (:func:`tile_dots`); ``y``, ``sample_weight``, ``output_*``, ``tile`` and
    ``partial`` are not used.  With ``with_loss``: ``partial`` gets one row per
    block (module docstring), the rows go through in tiles of ``tile <= TILE``
    rows, and ``gates`` and ``outputs`` are not used.  No ``(n, k, d)``
    temporary is formed: per tile, the gradients with respect to the rows of
    ``W = [gate_coef; expert_coef]`` are one matrix product of the ``(2k, m)``
    per-row derivatives with the tile of ``X``.
    """
    n, d = X.shape
    k = gate_coef.shape[0]
    kd = k * d
    off_b0 = kd
    off_a = kd + k
    off_b = 2 * kd + k
    off_s = 2 * kd + 2 * k
    off_c = off_s + 1
    inv_q, _ = gate_inverse_norms(gate_coef, router, tau1)
    # column-major W: OpenBLAS then takes W X_tile^T through its small-matrix
    # kernel, without packing X_tile first (twice as fast at d = 10)
    W = stacked_coef(gate_coef, expert_coef)
    scratch = tile_scratch(k)
    z_buf = np.empty(2 * k * TILE)
    XT = np.empty((0 if with_loss else d, TILE))
    if not with_loss:
        tile = TILE
    g_buf = np.empty(2 * k * TILE)
    mix = np.empty(TILE)
    delta = np.empty(TILE)
    # per-lane sums: b0 (k rows), b (k rows), then loss, s, c, weights
    lanes = np.empty((2 * k + 4, TILE))
    lane_loss = lanes[2 * k]
    lane_s = lanes[2 * k + 1]
    lane_c = lanes[2 * k + 2]
    lane_w = lanes[2 * k + 3]
    grad_w = np.empty((2 * k, d))
    tile_grad_w = np.empty((2 * k, d))
    sums = np.empty(2 * k + 4)
    for blk in range(blk_start, blk_stop):
        start, stop = block_bounds(blk, n, n_blk)
        lanes.fill(0.0)
        grad_w.fill(0.0)
        for t0 in range(start, stop, tile):
            m = min(tile, stop - t0)
            Xt = X[t0:t0 + m]
            Z = z_buf[:2 * k * m].reshape((2 * k, m))
            if with_loss:
                np.dot(W, Xt.T, Z)
            else:
                tile_dots(X, t0, m, W, XT, Z)
            E, dH, inv_c, inv_sum = tile_forward(
                Z, t0, m, x_norms, gate_intercept, inv_q, expert_intercept, router,
                expert, tau2, inv_temp, top_k, scratch)
            if not with_loss:
                for t in range(m):
                    for i in range(k):
                        gates[t0 + t, i] = E[i, t] * inv_sum[t]
                        outputs[t0 + t, i] = Z[k + i, t]
                continue
            G = g_buf[:2 * k * m].reshape((2 * k, m))
            for t in range(m):
                mix[t] = 0.0
            for i in range(k):
                e = E[i]
                h = Z[k + i]
                for t in range(m):
                    mix[t] += e[t] * h[t]
            for t in range(m):
                mix[t] *= inv_sum[t]
            # delta = dL/df = -w r, and the sums for the loss, s and c
            for t in range(m):
                w = sample_weight[t0 + t]
                r = y[t0 + t] - (output_intercept + output_scale * mix[t])
                delta[t] = -w * r
                lane_loss[t] += w * r * r
                lane_w[t] += w
            for t in range(m):
                lane_s[t] += delta[t] * mix[t]
                lane_c[t] += delta[t]
            # from here on delta * E[i] = dL/d(h_i) = s g_i dL/df
            for t in range(m):
                delta[t] *= output_scale * inv_sum[t]
            for i in range(k):
                e = E[i]
                h = Z[k + i]
                d_gate = G[i]
                d_expert = G[k + i]
                lane_b0 = lanes[i]
                lane_b = lanes[k + i]
                if expert == EXPERT_LINEAR:
                    for t in range(m):
                        v = delta[t] * e[t]
                        d_expert[t] = v
                        lane_b[t] += v
                else:
                    dh = dH[i]
                    for t in range(m):
                        v = delta[t] * e[t] * dh[t]
                        d_expert[t] = v
                        lane_b[t] += v
                # dL/ds_i = s g_i (h_i - mix) dL/df; ds_i/dbeta1_i = x inv_c q_i
                for t in range(m):
                    d_gate[t] = delta[t] * e[t] * (h[t] - mix[t])
                for t in range(m):
                    lane_b0[t] += d_gate[t]
                    d_gate[t] *= inv_c[t]
            np.dot(G, Xt, tile_grad_w)
            for a in range(2 * k):
                for j in range(d):
                    grad_w[a, j] += tile_grad_w[a, j]
        if not with_loss:
            continue
        part = partial[blk]
        for i in range(k):
            for j in range(d):
                part[i * d + j] = grad_w[i, j]
                part[off_a + i * d + j] = grad_w[k + i, j]
        for a in range(2 * k + 4):
            acc = 0.0
            for t in range(TILE):
                acc += lanes[a, t]
            sums[a] = acc
        for i in range(k):
            part[off_b0 + i] = sums[i]
            part[off_b + i] = sums[k + i]
        part[off_s] = sums[2 * k + 1]
        part[off_c] = sums[2 * k + 2]
        part[off_c + 1] = 0.5 * sums[2 * k]
        part[off_c + 2] = sums[2 * k + 3]


@njit(**JIT)
def loss_finish(partial, gate_coef, router, tau1, grad):
    """Add the blocks' partials in block order; write the gradient into ``grad``.

    Returns ``sum_n w_n r_n^2 / 2`` and ``sum_n w_n``; the gradient is of the
    loss ``sum_n w_n r_n^2 / (2 sum_n w_n)``, with the chain rule through
    ``q_i = 1 / (|beta1_i| + tau1)``.  It is left unset when the total weight
    is not positive (for the caller to reject).
    """
    n_blk, width = partial.shape
    size = width - 2
    k, d = gate_coef.shape
    loss = 0.0
    total_weight = 0.0
    for j in range(size):
        grad[j] = 0.0
    for blk in range(n_blk):
        loss += partial[blk, size]
        total_weight += partial[blk, size + 1]
        for j in range(size):
            grad[j] += partial[blk, j]
    if not total_weight > 0.0:
        return loss, total_weight
    for j in range(size):
        grad[j] /= total_weight
    # dL/dbeta1_i = q_i g_i - q_i^2 (beta1_i . g_i) beta1_i / |beta1_i|, where
    # g_i is the sum accumulated above (the gradient with q_i held fixed)
    inv_q, norms = gate_inverse_norms(gate_coef, router, tau1)
    for i in range(k):
        q = inv_q[i]
        corr = 0.0
        if router != ROUTER_LINEAR and norms[i] > 0.0:
            radial = 0.0
            for j in range(d):
                radial += gate_coef[i, j] * grad[i * d + j]
            corr = radial * q * q / norms[i]
        for j in range(d):
            grad[i * d + j] = grad[i * d + j] * q - corr * gate_coef[i, j]
    return loss, total_weight
