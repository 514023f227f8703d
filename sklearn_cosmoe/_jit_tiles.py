"""Numba code of the kernels: the forward pass on a tile of rows, and the passes
over row blocks other than the forward pass and the loss (in
:mod:`sklearn_cosmoe._jit_loss`).

Everything here is a serial function compiled with ``nogil=True`` that works on
a range of row blocks ``[blk_start, blk_stop)`` of ``n_blk`` blocks
(:func:`block_bounds`) and writes only the rows, or the per-block partial
results, of those blocks.  :mod:`sklearn_cosmoe._kernels` checks the arguments,
runs the block ranges on threads and adds the partials in block order; the
compiled signatures are in :data:`SIGNATURES`.

Within a block, rows are processed in tiles of at most ``TILE`` rows laid
out with the rows last, ``(n_experts, rows)``: the products with ``X`` in the
loss and gradient are BLAS matrix products on the tile, small enough that
BLAS runs them in the calling thread whatever its thread count (see
:func:`sklearn_cosmoe._kernels.tile_rows`); :func:`gates_and_experts` (behind
``predict``) sums each row's dot products itself, in feature order, so that a
row's gates and outputs do not depend on the rows around it.  Every other
loop runs over the rows of a tile, which the compiler turns into SIMD code.

Notation (see the user guide, :ref:`routers`): for a row ``x``,
``dot_i = beta1_i . x`` and

* linear router: ``s_i = dot_i / T + beta0_i``;
* (perturbed) cosine router:
  ``s_i = dot_i / ((|beta1_i| + tau1)(|x| + tau2)) / T + beta0_i``, with
  ``tau1 = tau2 = 0`` for the plain cosine router.  A zero denominator (a
  zero row under the cosine router, or a zero ``beta1_i``) gives a cosine
  term of 0, never NaN.

Gates are the (top-K) softmax of the scores; the prediction is
``c + s * sum_i g_i h(a_i . x + b_i)``.  A NaN score gives NaN gates, never a
gate of 0.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

ROUTER_LINEAR = 0
ROUTER_COSINE = 1
ROUTER_PERTURBED_COSINE = 2

EXPERT_LINEAR = 0
EXPERT_TANH = 1
EXPERT_SIGMOID = 2
EXPERT_GELU = 3

TILE = 256
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Fused multiply-add is allowed (one rounding instead of two); nothing is
# reordered, so every sum keeps the order written here.  The numpy error
# model lets divisions vectorise (every divisor is checked where it can be 0).
JIT = dict(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")
INLINE = dict(inline="always", **JIT)


@njit(**JIT)
def block_bounds(block, n_samples, n_blk):
    """Rows ``[start, stop)`` of ``block`` out of ``n_blk`` equal blocks."""
    size = (n_samples + n_blk - 1) // n_blk
    start = min(block * size, n_samples)
    return start, min(start + size, n_samples)


@njit(**JIT)
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


@njit(**JIT)
def row_norm(A, row):
    """Euclidean norm of ``A[row]``, summed in column order."""
    sq = 0.0
    for j in range(A.shape[1]):
        sq += A[row, j] * A[row, j]
    return math.sqrt(sq)


@njit(**JIT)
def gate_inverse_norms(gate_coef, router, tau1):
    """``1 / (|beta1_i| + tau1)`` per expert (0 where that is 0) and ``|beta1_i|``."""
    k = gate_coef.shape[0]
    inv_q = np.zeros(k)
    norms = np.zeros(k)
    for i in range(k):
        norms[i] = row_norm(gate_coef, i)
        if router == ROUTER_LINEAR:
            inv_q[i] = 1.0
        else:
            q = norms[i] + (tau1 if router == ROUTER_PERTURBED_COSINE else 0.0)
            inv_q[i] = 1.0 / q if q != 0.0 else 0.0
    return inv_q, norms


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


@njit(**JIT)
def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0``, flushed to 0 below ``-708``; NaN gives NaN.

    SIMD-friendly: no call, no branch that the compiler cannot turn into a
    select.
    """
    below = x < _EXP_MIN
    xc = _EXP_MIN if below else x  # NaN stays NaN (a comparison with NaN is false)
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
    return 0.0 if below else p * two_n


@njit(**JIT)
def softmax_top_k(scores, top_k, gates):
    """Write the softmax over the ``top_k`` largest ``scores`` into ``gates``.

    ``0 < top_k < k``.  Ties are broken in favour of the lower index; the
    maximum is subtracted before ``exp``; a NaN score makes every gate NaN.
    """
    k = scores.shape[0]
    for i in range(k):
        if math.isnan(scores[i]):
            for j in range(k):
                gates[j] = np.nan
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


# -- the forward pass on a tile ------------------------------------------------
@njit(**INLINE)
def tile_scratch(k):
    """Work arrays for :func:`tile_forward`, allocated once per call of a kernel."""
    return (np.empty(k * TILE), np.empty(k * TILE), np.empty(TILE), np.empty(TILE),
            np.empty(TILE), np.empty(k), np.empty(k))


@njit(**INLINE)
def stacked_coef(gate_coef, expert_coef):
    """``W``: ``gate_coef`` over ``expert_coef``, column-major."""
    k, d = gate_coef.shape
    W = np.empty((d, 2 * k)).T
    for i in range(k):
        for j in range(d):
            W[i, j] = gate_coef[i, j]
            W[k + i, j] = expert_coef[i, j]
    return W


@njit(**INLINE)
def tile_dots(X, t0, m, W, XT, Z):
    """``Z[:, t] = W x_t`` for the rows ``t0 .. t0 + m - 1``, each summed in feature order.

    A row's result does not depend on the other rows (what
    :func:`gates_and_experts`, behind ``predict``, needs; a BLAS product may
    round a row differently by its place in the tile).  ``XT`` (``d, TILE``)
    receives the tile transposed, so that the loops run along the rows.
    """
    d = X.shape[1]
    for t in range(m):
        for j in range(d):
            XT[j, t] = X[t0 + t, j]
    for a in range(W.shape[0]):
        z = Z[a]
        for t in range(m):
            z[t] = 0.0
        for j in range(d):
            w = W[a, j]
            x = XT[j]
            for t in range(m):
                z[t] += w * x[t]


@njit(**INLINE)
def tile_forward(Z, t0, m, x_norms, gate_intercept, inv_q, expert_intercept, router,
                 expert, tau2, inv_temp, top_k, scratch):
    """Router and experts for the rows ``t0 .. t0 + m - 1`` of a tile (``m <= TILE``).

    ``Z`` (``2k, m``) holds the tile's dot products ``W x_t`` (from
    :func:`tile_dots` or a BLAS product), with ``W`` the stack of
    ``gate_coef`` over ``expert_coef``.  On return, for expert ``i`` and row
    ``t`` of the tile, ``Z[i, t] = beta1_i . x_t`` still;
    ``Z[k + i, t] = h(a_i . x_t + b_i)``; ``dH[i, t] = h'(a_i . x_t + b_i)``
    (feed-forward experts only); ``inv_c[t] = 1 / ((|x_t| + tau2) T)``
    (``1 / T`` for the linear router); the gate is ``E[i, t] * inv_sum[t]``.
    Returns ``E, dH, inv_c, inv_sum``, views of ``scratch``
    (:func:`tile_scratch`).
    """
    k = gate_intercept.shape[0]
    e_buf, dh_buf, inv_c, inv_sum, col_max, top_scores, top_gates = scratch
    E = e_buf[:k * m].reshape((k, m))
    dH = dh_buf[:k * m].reshape((k, m))
    if router == ROUTER_LINEAR:
        for t in range(m):
            inv_c[t] = inv_temp
    else:
        tau = tau2 if router == ROUTER_PERTURBED_COSINE else 0.0
        for t in range(m):
            c = x_norms[t0 + t] + tau
            inv_c[t] = inv_temp / c if c != 0.0 else 0.0
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
        if expert == EXPERT_LINEAR:
            for t in range(m):
                h[t] += bias
        else:
            dh = dH[i]
            for t in range(m):
                h[t], dh[t] = activation(h[t] + bias, expert)
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
            softmax_top_k(top_scores, top_k, top_gates)
            for i in range(k):
                E[i, t] = top_gates[i]
            inv_sum[t] = 1.0
    return E, dH, inv_c, inv_sum


# -- passes over row blocks ----------------------------------------------------
@njit(**JIT)
def row_norms(X, blk_start, blk_stop, n_blk, norms):
    """``norms[row] = |X[row]|`` for the rows of the blocks."""
    n = X.shape[0]
    for blk in range(blk_start, blk_stop):
        start, stop = block_bounds(blk, n, n_blk)
        for row in range(start, stop):
            norms[row] = row_norm(X, row)


@njit(**JIT)
def direction_cluster_sums(X, x_norms, sample_weight, centres, blk_start, blk_stop,
                           n_blk, partial):
    """Spherical k-means step: ``partial[blk]`` = sums of ``w_n x_n / |x_n|`` per centre.

    Each row goes to the centre ``c_i`` with the largest ``c_i . x_n`` (the
    lower index on ties); rows of norm 0 take no part.
    """
    n, d = X.shape
    k = centres.shape[0]
    for blk in range(blk_start, blk_stop):
        start, stop = block_bounds(blk, n, n_blk)
        sums = partial[blk]
        sums.fill(0.0)
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


@njit(**JIT)
def gated_features(X, y, sample_weight, gates, start, stop, features, rhs):
    """Weighted gated features of the rows ``[start, stop)``, for the normal equations.

    Writes ``features[:, t] = sqrt(w_n) z_n`` for row ``n = start + t``, with
    ``z_n = (g_1(x_n) [x_n, 1], ..., g_k(x_n) [x_n, 1])``, and adds
    ``sum_n w_n z_n y_nj`` to ``rhs[:, j]`` for each column ``j`` of ``y``
    (``n, m``), summing over the rows in order.
    """
    d = X.shape[1]
    k = gates.shape[1]
    p = d + 1
    n_cols = y.shape[1]
    # sqrt(w_n) y_n, one row per column of y: the rows run along the inner loops
    weighted_y = np.empty((n_cols, stop - start))
    for t in range(stop - start):
        row = start + t
        root_w = math.sqrt(sample_weight[row])
        for col in range(n_cols):
            weighted_y[col, t] = root_w * y[row, col]
        for i in range(k):
            g = root_w * gates[row, i]
            for j in range(d):
                features[i * p + j, t] = g * X[row, j]
            features[i * p + d, t] = g
    for a in range(k * p):
        f = features[a]
        for col in range(n_cols):
            wy = weighted_y[col]
            acc = 0.0
            for t in range(stop - start):
                acc += f[t] * wy[t]
            rhs[a, col] += acc
