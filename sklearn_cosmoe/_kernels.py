"""Numba kernels: router scores, gates, experts, fused loss/gradient, gated Gram.

The kernels know nothing of the Python objects of the model: they take float64
arrays and integer codes (``ROUTER_*``, ``EXPERT_*``).  Every kernel that
reduces over rows splits the rows into blocks whose size depends only on the
number of rows (:func:`n_blocks`), computes one partial result per block in
parallel and adds the partials in block order, so results are bit-for-bit the
same whatever the number of threads.

Within a block, rows are processed in tiles of ``TILE`` rows laid out with the
rows last, ``(n_experts, rows)``: the products with ``X`` in the loss and
gradient are matrix products (BLAS; :func:`gates_and_experts` sums each row's
dot products itself, see :func:`_tile_forward`), and every other loop runs
over the rows of a tile, which the compiler turns into SIMD code.  Sums over
the rows of a block are kept per lane of a tile and added in lane order at the
end of the block.

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
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

ROUTER_LINEAR = 0
ROUTER_COSINE = 1
ROUTER_PERTURBED_COSINE = 2

EXPERT_LINEAR = 0
EXPERT_TANH = 1
EXPERT_SIGMOID = 2
EXPERT_GELU = 3

TILE = 256
_MIN_BLOCK = 512
_MAX_BLOCKS = 64
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Fused multiply-add is allowed (one rounding instead of two); nothing is
# reordered, so every sum keeps the order written here.
_FASTMATH = {"contract"}


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


@njit(cache=True, inline="always")
def _row_norm(A, row):
    """Euclidean norm of ``A[row]``, summed in column order."""
    sq = 0.0
    for j in range(A.shape[1]):
        sq += A[row, j] * A[row, j]
    return math.sqrt(sq)


@njit(cache=True)
def gate_inverse_norms(gate_coef, router, tau1):
    """``1 / (|beta1_i| + tau1)`` per expert (0 where that is 0) and ``|beta1_i|``."""
    k = gate_coef.shape[0]
    inv_q = np.zeros(k)
    norms = np.zeros(k)
    for i in range(k):
        norms[i] = _row_norm(gate_coef, i)
        if router == ROUTER_LINEAR:
            inv_q[i] = 1.0
        else:
            q = norms[i] + (tau1 if router == ROUTER_PERTURBED_COSINE else 0.0)
            inv_q[i] = 1.0 / q if q > 0.0 else 0.0
    return inv_q, norms


# -- vector width -------------------------------------------------------------
# On CPUs with AVX-512 (Skylake-X, Cascade Lake, ...) LLVM vectorises with
# 256-bit registers unless a function asks for more, because 512-bit code can
# lower the clock.  The loops over the rows of a tile are long and bound by
# arithmetic: 512-bit registers make :func:`loss_and_gradient` 18% faster at
# k = 8 (5% at k = 4) on such a CPU; ``predict``'s kernel gains nothing and
# keeps the default.  On a CPU without AVX-512 the request changes nothing.
# Each lane still does the same operations in the same order, so the results
# do not change.
_WIDE_VECTORS = '"prefer-vector-width"="512"'


@intrinsic
def _prefer_wide_vectors(typingctx):
    """Ask LLVM for 512-bit vectors in the function that calls this.

    Called inside a ``prange`` loop, it marks the function that runs the loop
    body.  llvmlite's attribute set only accepts LLVM's keyword attributes, so
    the string attribute goes in through ``set.add``; should a later llvmlite
    store attributes otherwise, the request is skipped, never an error.
    """
    def codegen(context, builder, signature, args):
        attributes = builder.function.attributes
        if isinstance(attributes, set):
            set.add(attributes, _WIDE_VECTORS)
        return context.get_dummy_value()
    return types.none(), codegen


# -- exp for the softmax ------------------------------------------------------
# math.exp is a call that stops the loops around it from running as SIMD code.
# exp(x) = 2**n exp(r) with x = n log(2) + r, |r| <= log(2) / 2: n by rounding
# with a shifter constant, r by Cody-Waite (log(2) in two parts, the first with
# trailing zero bits so that n * _LN2_HI is exact), exp(r) by its Taylor
# polynomial of degree 13 (remainder below 1e-17 relative), 2**n by writing
# the exponent bits.  Within 1 ulp of the correctly rounded result.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_SHIFTER_BITS = int(np.float64(_SHIFTER).view(np.int64))
_EXP_MIN = -708.0  # exp(-708) is the smallest power of e above the normals


@intrinsic
def _float_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(cache=True, inline="always", fastmath=_FASTMATH)
def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0``, flushed to 0 below ``-708`` (SIMD-friendly)."""
    xc = max(x, _EXP_MIN)
    shifted = xc * _LOG2E + _SHIFTER
    n = shifted - _SHIFTER
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    two_n = _bits_float((_float_bits(shifted) - _SHIFTER_BITS + 1023) << 52)
    return p * two_n if x >= _EXP_MIN else 0.0


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


# -- tiles ---------------------------------------------------------------------
@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def row_norms(X):
    """Euclidean norm of each row of ``X``.

    The data's part of the cosine scores: a fit computes it once, not at each
    of its hundreds of evaluations.
    """
    n = X.shape[0]
    norms = np.empty(n)
    for row in prange(n):
        norms[row] = _row_norm(X, row)
    return norms


@njit(cache=True, inline="always")
def _tile_scratch(k):
    """Work arrays for :func:`_tile_forward`, allocated once per block."""
    return (np.empty(2 * k * TILE), np.empty(k * TILE), np.empty(k * TILE),
            np.empty(TILE), np.empty(TILE), np.empty(TILE), np.empty(k), np.empty(k))


@njit(cache=True, inline="always", fastmath=_FASTMATH)
def _tile_forward(Xt, x_norms, W, gate_intercept, inv_q, expert_intercept, router,
                  expert, tau2, inv_temp, top_k, use_blas, scratch):
    """Router and experts for the rows ``Xt`` (m, d) of one tile.

    Returns ``Z, E, dH, inv_c, inv_sum``, views of ``scratch``
    (:func:`_tile_scratch`) described below.

    ``x_norms`` holds their Euclidean norms (unused by the linear router).
    With ``use_blas`` the dot products are one BLAS product, whose rounding
    can depend on where a row falls in the tile; without it each row's dot
    products are summed in feature order, so a row's result does not depend
    on the other rows (what :func:`gates_and_experts`, behind ``predict``,
    needs).

    On return, for expert ``i`` and row ``t`` of the tile:
    ``Z[i, t] = beta1_i . x_t``; ``Z[k + i, t] = h(a_i . x_t + b_i)``;
    ``dH[i, t] = h'(a_i . x_t + b_i)`` (feed-forward experts only);
    ``inv_c[t] = 1 / ((|x_t| + tau2) T)`` (``1 / T`` for the linear router);
    the gate is ``E[i, t] * inv_sum[t]``.  ``W`` stacks ``gate_coef`` over
    ``expert_coef``.
    """
    m, d = Xt.shape
    k = gate_intercept.shape[0]
    z_buf, e_buf, dh_buf, inv_c, inv_sum, col_max, top_scores, top_gates = scratch
    Z = z_buf[:2 * k * m].reshape((2 * k, m))
    E = e_buf[:k * m].reshape((k, m))
    dH = dh_buf[:k * m].reshape((k, m))
    if use_blas:
        np.dot(W, Xt.T, Z)
    else:
        for t in range(m):
            for i in range(2 * k):
                acc = 0.0
                for j in range(d):
                    acc += W[i, j] * Xt[t, j]
                Z[i, t] = acc
    if router == ROUTER_LINEAR:
        for t in range(m):
            inv_c[t] = inv_temp
    else:
        tau = tau2 if router == ROUTER_PERTURBED_COSINE else 0.0
        for t in range(m):
            c = x_norms[t] + tau
            inv_c[t] = inv_temp / c if c > 0.0 else 0.0
    # scores, and their maximum over experts
    for t in range(m):
        col_max[t] = -np.inf
    for i in range(k):
        dots = Z[i]
        scores = E[i]
        q = inv_q[i]
        bias = gate_intercept[i]
        for t in range(m):
            s = dots[t] * q * inv_c[t] + bias
            scores[t] = s
            col_max[t] = max(col_max[t], s)
    for i in range(k):
        h = Z[k + i]
        bias = expert_intercept[i]
        for t in range(m):
            h[t] += bias
        if expert != EXPERT_LINEAR:
            dh = dH[i]
            for t in range(m):
                h[t], dh[t] = activation(h[t], expert)
    if top_k <= 0 or top_k >= k:
        # E <- exp(scores - max); inv_sum <- 1 / sum_i E
        for t in range(m):
            inv_sum[t] = 0.0
        # two experts per pass: their two exp chains overlap in the pipeline
        for i in range(0, k - 1, 2):
            e = E[i]
            e_next = E[i + 1]
            for t in range(m):
                v = exp_nonpositive(e[t] - col_max[t])
                v_next = exp_nonpositive(e_next[t] - col_max[t])
                e[t] = v
                e_next[t] = v_next
                inv_sum[t] += v
                inv_sum[t] += v_next
        if k % 2 == 1:
            e = E[k - 1]
            for t in range(m):
                v = exp_nonpositive(e[t] - col_max[t])
                e[t] = v
                inv_sum[t] += v
        for t in range(m):
            inv_sum[t] = 1.0 / inv_sum[t]
    else:
        for t in range(m):
            for i in range(k):
                top_scores[i] = E[i, t]
            _softmax_top_k(top_scores, top_k, top_gates)
            for i in range(k):
                E[i, t] = top_gates[i]
            inv_sum[t] = 1.0
    return Z, E, dH, inv_c, inv_sum


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def gates_and_experts(X, x_norms, gate_coef, gate_intercept, expert_coef,
                      expert_intercept, router, expert, tau1, tau2, inv_temp, top_k,
                      gates, outputs):
    """Fill ``gates`` (n, k) and expert ``outputs`` (n, k) in place.

    ``X`` must be C-contiguous; ``x_norms`` is :func:`row_norms` of ``X``.
    """
    n, d = X.shape
    k = gate_coef.shape[0]
    inv_q, _ = gate_inverse_norms(gate_coef, router, tau1)
    W = np.vstack((gate_coef, expert_coef))
    n_blk = n_blocks(n)
    for blk in prange(n_blk):
        start, stop = _block_bounds(blk, n, n_blk)
        scratch = _tile_scratch(k)
        for t0 in range(start, stop, TILE):
            m = min(TILE, stop - t0)
            Z, E, _, _, inv_sum = _tile_forward(
                X[t0:t0 + m], x_norms[t0:t0 + m], W, gate_intercept, inv_q,
                expert_intercept, router, expert, tau2, inv_temp, top_k, False,
                scratch)
            for t in range(m):
                for i in range(k):
                    gates[t0 + t, i] = E[i, t] * inv_sum[t]
                    outputs[t0 + t, i] = Z[k + i, t]


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def loss_and_gradient(X, x_norms, y, sample_weight, gate_coef, gate_intercept,
                      expert_coef, expert_intercept, output_scale, output_intercept,
                      router, expert, tau1, tau2, inv_temp, top_k, grad):
    """Weighted mean of squares and its exact gradient, in one pass over ``X``.

    Returns ``sum_n w_n (y_n - f(x_n))^2 / (2 sum_n w_n)`` and writes its
    gradient into ``grad`` (length ``2 k d + 2 k + 2``), laid out as
    ``[gate_coef (k*d, row major), gate_intercept (k), expert_coef (k*d),
    expert_intercept (k), output_scale, output_intercept]``.  ``X`` must be
    C-contiguous; ``x_norms`` is :func:`row_norms` of ``X``.  No ``(n, k, d)``
    temporary is formed: per tile, the gradients with respect to the rows of
    ``W`` are one matrix product of the ``(2k, m)`` per-row derivatives with the
    tile of ``X``.
    """
    n, d = X.shape
    k = gate_coef.shape[0]
    kd = k * d
    off_b0 = kd
    off_a = kd + k
    off_b = 2 * kd + k
    off_s = 2 * kd + 2 * k
    off_c = off_s + 1
    inv_q, norms = gate_inverse_norms(gate_coef, router, tau1)
    # column-major W: OpenBLAS then takes W X_tile^T through its small-matrix
    # kernel, without packing X_tile first (twice as fast at d = 10)
    W = np.asfortranarray(np.vstack((gate_coef, expert_coef)))
    n_blk = n_blocks(n)
    partial = np.zeros((n_blk, off_c + 1))
    partial_loss = np.zeros(n_blk)
    partial_weight = np.zeros(n_blk)
    for blk in prange(n_blk):
        _prefer_wide_vectors()
        start, stop = _block_bounds(blk, n, n_blk)
        scratch = _tile_scratch(k)
        g_buf = np.empty(2 * k * TILE)
        mix = np.empty(TILE)
        delta = np.empty(TILE)
        # per-lane sums: b0 (k rows), b (k rows), then loss, s, c, weights
        lanes = np.zeros((2 * k + 4, TILE))
        lane_loss = lanes[2 * k]
        lane_s = lanes[2 * k + 1]
        lane_c = lanes[2 * k + 2]
        lane_w = lanes[2 * k + 3]
        grad_w = np.zeros((2 * k, d))
        tile_grad_w = np.empty((2 * k, d))
        for t0 in range(start, stop, TILE):
            m = min(TILE, stop - t0)
            Xt = X[t0:t0 + m]
            Z, E, dH, inv_c, inv_sum = _tile_forward(
                Xt, x_norms[t0:t0 + m], W, gate_intercept, inv_q, expert_intercept,
                router, expert, tau2, inv_temp, top_k, True, scratch)
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
            yt = y[t0:t0 + m]
            wt = sample_weight[t0:t0 + m]
            # delta = dL/df = -w r, and the sums for the loss, s and c
            for t in range(m):
                r = yt[t] - (output_intercept + output_scale * mix[t])
                delta[t] = -wt[t] * r
                lane_loss[t] += wt[t] * r * r
                lane_w[t] += wt[t]
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
        part = partial[blk]
        for i in range(k):
            for j in range(d):
                part[i * d + j] = grad_w[i, j]
                part[off_a + i * d + j] = grad_w[k + i, j]
        sums = np.zeros(2 * k + 4)
        for a in range(2 * k + 4):
            for t in range(TILE):
                sums[a] += lanes[a, t]
        part[off_b0:off_b0 + k] = sums[:k]
        part[off_b:off_b + k] = sums[k:2 * k]
        partial_loss[blk] = 0.5 * sums[2 * k]
        part[off_s] = sums[2 * k + 1]
        part[off_c] = sums[2 * k + 2]
        partial_weight[blk] = sums[2 * k + 3]
    loss = 0.0
    total_weight = 0.0
    for j in range(off_c + 1):
        grad[j] = 0.0
    for blk in range(n_blk):
        loss += partial_loss[blk]
        total_weight += partial_weight[blk]
        for j in range(off_c + 1):
            grad[j] += partial[blk, j]
    for j in range(off_c + 1):
        grad[j] /= total_weight
    # chain rule through q_i = 1 / (|beta1_i| + tau1):
    # dL/dbeta1_i = q_i g_i - q_i^2 (beta1_i . g_i) beta1_i / |beta1_i|, where
    # g_i is the sum accumulated above (the gradient with q_i held fixed)
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
    return loss / total_weight


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def direction_cluster_sums(X, x_norms, sample_weight, centres):
    """One step of weighted spherical k-means on the directions of the rows.

    Each row ``x_n`` goes to the centre ``c_i`` with the largest ``c_i . x_n``
    (the lower index on ties); returns the ``(k, d)`` sums of
    ``w_n x_n / |x_n|`` over the rows of each centre.  Rows of norm 0 take no
    part.  ``X`` must be C-contiguous; ``x_norms`` is :func:`row_norms` of ``X``.
    """
    n, d = X.shape
    k = centres.shape[0]
    n_blk = n_blocks(n)
    partial = np.zeros((n_blk, k, d))
    for blk in prange(n_blk):
        start, stop = _block_bounds(blk, n, n_blk)
        sums = partial[blk]
        for row in range(start, stop):
            if x_norms[row] == 0.0:
                continue
            best = 0
            best_dot = -np.inf
            for i in range(k):
                dot = 0.0
                for j in range(d):
                    dot += centres[i, j] * X[row, j]
                if dot > best_dot:
                    best = i
                    best_dot = dot
            scale = sample_weight[row] / x_norms[row]
            for j in range(d):
                sums[best, j] += scale * X[row, j]
    sums = np.zeros((k, d))
    for blk in range(n_blk):
        sums += partial[blk]
    return sums


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def gated_gram(X, y, sample_weight, gates):
    """Normal equations of linear experts with fixed gates.

    With ``z_n = (g_1(x_n) [x_n, 1], ..., g_k(x_n) [x_n, 1])`` returns
    ``sum_n w_n z_n z_n^T`` and ``sum_n w_n z_n y_n``; the unknowns are
    ordered ``(a_1, b_1, ..., a_k, b_k)``.  Per tile, the ``z_n`` are the rows
    of a matrix ``Z`` and the sums are matrix products with ``w * Z``; the
    lower triangle is then copied from the upper one.
    """
    n, d = X.shape
    k = gates.shape[1]
    p = d + 1
    width = k * p
    n_blk = n_blocks(n)
    partial = np.zeros((n_blk, width, width))
    partial_rhs = np.zeros((n_blk, width))
    for blk in prange(n_blk):
        start, stop = _block_bounds(blk, n, n_blk)
        z_buf = np.empty(TILE * width)
        wz_buf = np.empty(TILE * width)
        tile_gram = np.empty((width, width))
        tile_rhs = np.empty(width)
        gram = partial[blk]
        rhs = partial_rhs[blk]
        for t0 in range(start, stop, TILE):
            m = min(TILE, stop - t0)
            Z = z_buf[:m * width].reshape((m, width))
            WZ = wz_buf[:m * width].reshape((m, width))
            for t in range(m):
                w = sample_weight[t0 + t]
                for i in range(k):
                    g = gates[t0 + t, i]
                    for j in range(d):
                        Z[t, i * p + j] = g * X[t0 + t, j]
                    Z[t, i * p + d] = g
                for a in range(width):
                    WZ[t, a] = w * Z[t, a]
            np.dot(Z.T, WZ, tile_gram)
            np.dot(y[t0:t0 + m], WZ, tile_rhs)
            for a in range(width):
                rhs[a] += tile_rhs[a]
                for b in range(width):
                    gram[a, b] += tile_gram[a, b]
    gram = np.zeros((width, width))
    rhs = np.zeros(width)
    for blk in range(n_blk):
        gram += partial[blk]
        rhs += partial_rhs[blk]
    for a in range(width):  # exactly symmetric: the lower triangle from the upper
        for b in range(a):
            gram[a, b] = gram[b, a]
    return gram, rhs
