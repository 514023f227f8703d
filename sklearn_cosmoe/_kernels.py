"""The kernels: router scores, gates, experts, fused loss/gradient, gated Gram.

The kernels know nothing of the Python objects of the model: they take float64
arrays and integer codes (``ROUTER_*``, ``EXPERT_*``).  Each function here
checks the shapes of its arguments against each other (a ``ValueError`` names
the argument), converts them to float64 C-contiguous arrays (a copy only when
needed; the caller's arrays are never written), runs the numba code of
:mod:`sklearn_cosmoe._jit_tiles` and :mod:`sklearn_cosmoe._jit_loss` and
returns new arrays.

Every pass over the rows splits them into blocks whose size depends only on
the number of rows (:func:`n_blocks`); blocks run on the package's threads
(:mod:`sklearn_cosmoe._parallel`), sums over rows are kept per block and the
blocks' partials are added in block order, so results are bit-for-bit the
same whatever the number of threads.  BLAS is called on small tiles inside
:func:`loss_and_gradient` (:func:`tile_rows`) and by :func:`gated_gram` (from
the calling thread, one symmetric rank-k update per block).
"""

import numpy as np
from numba import types
from scipy.linalg import blas

from . import _jit_loss, _jit_tiles
from ._jit_tiles import (EXPERT_GELU, EXPERT_LINEAR, EXPERT_SIGMOID,  # noqa: F401
                         EXPERT_TANH, ROUTER_COSINE, ROUTER_LINEAR,
                         ROUTER_PERTURBED_COSINE, TILE)
from ._parallel import compiled, n_threads, run_blocks

_MIN_BLOCK = 512
_MAX_BLOCKS = 64
# columns of a Gram matrix copied per step when it is made symmetric
_SYMMETRIZE_COLUMNS = 256
# BLAS (OpenBLAS) runs a matrix product in the calling thread below about
# 2**18 multiply-adds: the loss kernel's tiles stay below half that
_TILE_PRODUCT = 2**17

# signatures: read-only arrays for inputs, writable ones for outputs
_IN1 = types.Array(types.float64, 1, "C", readonly=True)
_IN2 = types.Array(types.float64, 2, "C", readonly=True)
_OUT1 = types.Array(types.float64, 1, "C")
_OUT2 = types.Array(types.float64, 2, "C")
_OUT3 = types.Array(types.float64, 3, "C")
_I, _F = types.int64, types.float64
_PARAMS = (_IN2, _IN1, _IN2, _IN1)
_CODES = (_I, _I, _F, _F, _F, _I)
_BLOCKS = (_I, _I, _I)
_SIG_ROW_NORMS = types.void(_IN2, *_BLOCKS, _OUT1)
_SIG_FORWARD = types.void(_IN2, _IN1, _IN1, _IN1, *_PARAMS, _F, _F, *_CODES, _I,
                          types.boolean, *_BLOCKS, _OUT2, _OUT2, _OUT2)
_SIG_FINISH = types.UniTuple(_F, 2)(_IN2, _IN2, _I, _F, _OUT1)
_SIG_CLUSTERS = types.void(_IN2, _IN1, _IN1, _IN2, *_BLOCKS, _OUT3)
_SIG_FEATURES = types.void(_IN2, _IN2, _IN1, _IN2, _I, _I, _OUT2, _OUT2)


def n_blocks(n_samples):
    """Number of row blocks for ``n_samples`` rows (independent of threads)."""
    n = (n_samples + _MIN_BLOCK - 1) // _MIN_BLOCK
    return max(1, min(n, _MAX_BLOCKS))


def _matrix(name, a, n_rows=None, n_cols=None):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array; got shape {a.shape}.")
    for axis, size in enumerate((n_rows, n_cols)):
        if size is not None and a.shape[axis] != size:
            raise ValueError(
                f"{name} has shape {a.shape}; expected {size} "
                f"{'rows' if axis == 0 else 'columns'}."
            )
    return a


def _vector(name, a, size):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.shape != (size,):
        raise ValueError(f"{name} has shape {a.shape}; expected ({size},).")
    return a


def _gate_params(X, gate_coef, gate_intercept):
    """The router's parameters, checked against ``X``'s width and each other."""
    gate_coef = _matrix("gate_coef", gate_coef, n_cols=X.shape[1])
    k = gate_coef.shape[0]
    if k < 1:
        raise ValueError("gate_coef must have at least one row (one expert).")
    return gate_coef, _vector("gate_intercept", gate_intercept, k)


def _params(X, gate_coef, gate_intercept, expert_coef, expert_intercept):
    d = X.shape[1]
    gate_coef, gate_intercept = _gate_params(X, gate_coef, gate_intercept)
    k = gate_coef.shape[0]
    return (gate_coef, gate_intercept,
            _matrix("expert_coef", expert_coef, k, d),
            _vector("expert_intercept", expert_intercept, k))


def _codes(router, expert, tau1, tau2, inv_temp, top_k):
    if router not in (ROUTER_LINEAR, ROUTER_COSINE, ROUTER_PERTURBED_COSINE):
        raise ValueError(f"router must be a ROUTER_* code; got {router!r}.")
    if expert not in (EXPERT_LINEAR, EXPERT_TANH, EXPERT_SIGMOID, EXPERT_GELU):
        raise ValueError(f"expert must be an EXPERT_* code; got {expert!r}.")
    return int(router), int(expert), float(tau1), float(tau2), float(inv_temp), int(top_k)


def _run(dispatcher, signature, n, inputs, outputs):
    """Call ``dispatcher(*inputs, blk_start, blk_stop, n_blk, *outputs)`` on ``n`` rows."""
    kernel = compiled(dispatcher, signature)
    n_blk = n_blocks(n)
    run_blocks(lambda start, stop: kernel(*inputs, start, stop, n_blk, *outputs),
               n_blk, n_threads(n, n_blk))


def tile_rows(n_experts, n_features):
    """Rows per tile of the loss kernel, at most ``TILE``.

    Each tile makes two BLAS products of ``2 k d m`` multiply-adds; with
    fewer than ``_TILE_PRODUCT`` of them BLAS runs them in the thread that
    calls it, so the kernel's speed and bits do not depend on BLAS's thread
    count.
    """
    rows = _TILE_PRODUCT // (2 * n_experts * max(n_features, 1))
    return int(min(TILE, max(8, rows - rows % 8)))


def row_norms(X):
    """Euclidean norm of each row of ``X``.

    The data's part of the cosine scores: a fit computes it once, not at each
    of its hundreds of evaluations.
    """
    X = _matrix("X", X)
    norms = np.empty(X.shape[0])
    _run(_jit_tiles.row_norms, _SIG_ROW_NORMS, X.shape[0], (X,), (norms,))
    return norms


def gates_and_experts(X, x_norms, gate_coef, gate_intercept, expert_coef,
                      expert_intercept, router, expert, tau1, tau2, inv_temp, top_k):
    """Gates and expert outputs ``h(a_i . x + b_i)``, each of shape ``(n, k)``.

    ``x_norms`` is :func:`row_norms` of ``X``.  Each row's values are computed
    from that row alone, in the same order whatever rows surround it.
    """
    X = _matrix("X", X)
    n = X.shape[0]
    x_norms = _vector("x_norms", x_norms, n)
    params = _params(X, gate_coef, gate_intercept, expert_coef, expert_intercept)
    codes = _codes(router, expert, tau1, tau2, inv_temp, top_k)
    k = params[0].shape[0]
    gates = np.empty((n, k))
    outputs = np.empty((n, k))
    unused = np.empty(0)
    inputs = (X, x_norms, unused, unused, *params, 1.0, 0.0, *codes, TILE, False)
    _run(_jit_loss.forward_blocks, _SIG_FORWARD, n, inputs,
         (gates, outputs, np.empty((0, 0))))
    return gates, outputs


def loss_and_gradient(X, x_norms, y, sample_weight, gate_coef, gate_intercept,
                      expert_coef, expert_intercept, output_scale, output_intercept,
                      router, expert, tau1, tau2, inv_temp, top_k):
    """Weighted mean of squares and its exact gradient, in one pass over ``X``.

    Returns ``sum_n w_n (y_n - f(x_n))^2 / (2 sum_n w_n)`` and its gradient
    (length ``2 k d + 2 k + 2``), laid out as ``[gate_coef (k*d, row major),
    gate_intercept (k), expert_coef (k*d), expert_intercept (k), output_scale,
    output_intercept]``.  ``x_norms`` is :func:`row_norms` of ``X``;
    ``sample_weight`` must have a positive sum.  It is
    :func:`finish_loss_and_gradient` of :func:`loss_and_gradient_sums`.
    """
    partial = loss_and_gradient_sums(
        X, x_norms, y, sample_weight, gate_coef, gate_intercept, expert_coef,
        expert_intercept, output_scale, output_intercept, router, expert, tau1, tau2,
        inv_temp, top_k)
    return finish_loss_and_gradient(partial, gate_coef, router, tau1)


def loss_and_gradient_sums(X, x_norms, y, sample_weight, gate_coef, gate_intercept,
                           expert_coef, expert_intercept, output_scale, output_intercept,
                           router, expert, tau1, tau2, inv_temp, top_k):
    """Sums over the rows of each block for :func:`loss_and_gradient`, not yet added.

    Returns an array of shape ``(n_blocks(n), 2 k d + 2 k + 4)``: per block,
    the sums of the gradient's terms with the cosine router's norms held
    fixed (the gradient's layout), of ``w r^2 / 2`` and of the weights.  Rows
    of several such arrays, stacked in a fixed order, are what
    :func:`finish_loss_and_gradient` adds up: so do the chunks of data spread
    over several machines.
    """
    X = _matrix("X", X)
    n = X.shape[0]
    x_norms = _vector("x_norms", x_norms, n)
    y = _vector("y", y, n)
    sample_weight = _vector("sample_weight", sample_weight, n)
    params = _params(X, gate_coef, gate_intercept, expert_coef, expert_intercept)
    codes = _codes(router, expert, tau1, tau2, inv_temp, top_k)
    k, d = params[0].shape
    partial = np.empty((n_blocks(n), 2 * k * d + 2 * k + 4))
    inputs = (X, x_norms, y, sample_weight, *params, float(output_scale),
              float(output_intercept), *codes, tile_rows(k, d), True)
    unused = np.empty((0, 0))
    _run(_jit_loss.forward_blocks, _SIG_FORWARD, n, inputs, (unused, unused, partial))
    return partial


def finish_loss_and_gradient(partial, gate_coef, router, tau1):
    """Loss and gradient of :func:`loss_and_gradient` from its per-block sums.

    ``partial`` stacks rows of :func:`loss_and_gradient_sums`; they are added
    in row order, then divided by the total weight, and the chain rule
    through the cosine router's norms of ``gate_coef`` is applied.
    """
    gate_coef = _matrix("gate_coef", gate_coef)
    k, d = gate_coef.shape
    partial = _matrix("partial", partial, n_cols=2 * k * d + 2 * k + 4)
    if router not in (ROUTER_LINEAR, ROUTER_COSINE, ROUTER_PERTURBED_COSINE):
        raise ValueError(f"router must be a ROUTER_* code; got {router!r}.")
    grad = np.empty(2 * k * d + 2 * k + 2)
    finish = compiled(_jit_loss.loss_finish, _SIG_FINISH)
    loss, total_weight = finish(partial, gate_coef, int(router), float(tau1), grad)
    if not total_weight > 0:
        raise ValueError(f"sample_weight must have a positive sum; got {total_weight}.")
    return loss / total_weight, grad


def direction_cluster_sums(X, x_norms, sample_weight, centres):
    """One step of weighted spherical k-means on the directions of the rows.

    Each row ``x_n`` goes to the centre ``c_i`` with the largest ``c_i . x_n``
    (the lower index on ties); returns the ``(k, d)`` sums of
    ``w_n x_n / |x_n|`` over the rows of each centre.  Rows of norm 0 take no
    part.  ``x_norms`` is :func:`row_norms` of ``X``.
    """
    X = _matrix("X", X)
    n, d = X.shape
    x_norms = _vector("x_norms", x_norms, n)
    sample_weight = _vector("sample_weight", sample_weight, n)
    centres = _matrix("centres", centres, n_cols=d)
    partial = np.empty((n_blocks(n), centres.shape[0], d))
    _run(_jit_tiles.direction_cluster_sums, _SIG_CLUSTERS, n,
         (X, x_norms, sample_weight, centres), (partial,))
    sums = partial[0].copy()
    for block_sums in partial[1:]:
        sums += block_sums
    return sums


def gated_design(X, y, sample_weight, gates):
    """The weighted gated features of every row, for the experts' least squares
    in the row space when the rows are fewer than the unknowns.

    Returns ``(features, targets)``: ``features[:, n] = sqrt(w_n) z_n`` of
    shape ``(k (d + 1), n)`` (``z_n`` of :func:`gated_gram`) and
    ``sqrt(w_n) y_n`` of shape ``(n,)`` or ``(n, m)``.
    """
    X = _matrix("X", X)
    n, d = X.shape
    y = np.asarray(y)
    targets = _vector("y", y, n)[:, None] if y.ndim == 1 else _matrix("y", y, n_rows=n)
    sample_weight = _vector("sample_weight", sample_weight, n)
    gates = _matrix("gates", gates, n_rows=n)
    features = np.empty((gates.shape[1] * (d + 1), n))
    rhs = np.zeros((features.shape[0], targets.shape[1]))
    compiled(_jit_tiles.gated_features, _SIG_FEATURES)(X, targets, sample_weight, gates, 0, n,
                                                       features, rhs)
    root_weight = np.sqrt(sample_weight)
    return features, (root_weight * y.T).T


def gated_gram(X, y, sample_weight, gates):
    """Normal equations of linear experts with fixed gates.

    With ``z_n = (g_1(x_n) [x_n, 1], ..., g_k(x_n) [x_n, 1])`` returns
    ``sum_n w_n z_n z_n^T`` (exactly symmetric) and ``sum_n w_n z_n y_n``;
    the unknowns are ordered ``(a_1, b_1, ..., a_k, b_k)``.  ``y`` of shape
    ``(n,)`` gives a right-hand side of shape ``(k (d + 1),)``; ``y`` of
    shape ``(n, m)`` gives one column per output, ``(k (d + 1), m)``, for the
    same Gram matrix.  Per block, the rows ``sqrt(w_n) z_n`` go through one
    BLAS symmetric rank-k update of the Gram matrix, so the extra memory is
    one block's features and one Gram matrix, whatever the number of blocks.
    """
    X = _matrix("X", X)
    n, d = X.shape
    y = np.asarray(y)
    if y.ndim == 1:
        targets = _vector("y", y, n)[:, None]
    else:
        targets = _matrix("y", y, n_rows=n)
    sample_weight = _vector("sample_weight", sample_weight, n)
    gates = _matrix("gates", gates, n_rows=n)
    width = gates.shape[1] * (d + 1)
    features_kernel = compiled(_jit_tiles.gated_features, _SIG_FEATURES)
    upper = np.zeros((width, width), order="F")
    rhs = np.zeros((width, targets.shape[1]))
    n_blk = n_blocks(n)
    size = (n + n_blk - 1) // n_blk
    for start in range(0, n, size):
        stop = min(start + size, n)
        features = np.empty((width, stop - start))
        features_kernel(X, targets, sample_weight, gates, start, stop, features, rhs)
        # upper += features @ features.T; features.T is Fortran-ordered: no copy
        upper = blas.dsyrk(1.0, features.T, beta=1.0, c=upper, trans=1, lower=0,
                           overwrite_c=1)
    return _symmetrized(upper), (rhs[:, 0] if y.ndim == 1 else rhs)


def _symmetrized(upper):
    """``upper`` (its strict lower triangle zero) made symmetric in place: the
    upper triangle copied below the diagonal, :data:`_SYMMETRIZE_COLUMNS`
    columns at a time, so no second matrix of its size is allocated."""
    width = upper.shape[0]
    for start in range(0, width, _SYMMETRIZE_COLUMNS):
        stop = min(start + _SYMMETRIZE_COLUMNS, width)
        block = upper[start:stop, start:stop]
        block += np.triu(block, 1).T
        upper[stop:, start:stop] = upper[start:stop, stop:].T
    return upper
