"""The classifier's kernels: class log-probabilities, and the fused negative
log-likelihood with its exact gradient.

As in :mod:`sklearn_cosmoe._kernels`, each function checks the shapes of its
arguments against each other (a ``ValueError`` names the argument), converts
them to float64 C-contiguous arrays without writing the caller's, runs the
numba code of :mod:`sklearn_cosmoe._jit_classifier` on row blocks and adds
the blocks' partials in block order, so that results are bit-for-bit the same
whatever the number of threads.
"""

import numpy as np
from numba import types

from . import _jit_classifier, _jit_loss
from ._kernels import (_SIG_FINISH, _TILE_PRODUCT, _codes, _gate_params, _matrix, _run,
                       _vector, n_blocks)
from ._jit_tiles import EXPERT_LINEAR, TILE
from ._parallel import compiled

_IN1 = types.Array(types.float64, 1, "C", readonly=True)
_IN2 = types.Array(types.float64, 2, "C", readonly=True)
_INT1 = types.Array(types.int64, 1, "C", readonly=True)
_OUT2 = types.Array(types.float64, 2, "C")
_I, _F = types.int64, types.float64
_SIG_CLASSIFIER = types.void(_IN2, _IN1, _INT1, _IN1, _IN2, _IN1, _IN2, _IN1,
                             _I, _F, _F, _F, _I, _I, types.boolean, _I, _I, _I,
                             _OUT2, _OUT2, _OUT2)


def _params(X, gate_coef, gate_intercept, expert_coef, expert_intercept):
    d = X.shape[1]
    gate_coef, gate_intercept = _gate_params(X, gate_coef, gate_intercept)
    k = gate_coef.shape[0]
    expert_coef = np.asarray(expert_coef)
    if expert_coef.ndim != 3 or expert_coef.shape[0] != k or expert_coef.shape[2] != d:
        raise ValueError(f"expert_coef has shape {expert_coef.shape}; expected "
                         f"({k}, n_classes, {d}).")
    n_classes = expert_coef.shape[1]
    if n_classes < 2:
        raise ValueError(f"expert_coef must have at least 2 classes; got {n_classes}.")
    expert_intercept = _matrix("expert_intercept", expert_intercept, k, n_classes)
    return (gate_coef, gate_intercept,
            _matrix("expert_coef", expert_coef.reshape(k * n_classes, d)),
            expert_intercept.reshape(-1)), n_classes


def _router_codes(router, tau1, tau2, inv_temp, top_k):
    router, _, tau1, tau2, inv_temp, top_k = _codes(router, EXPERT_LINEAR, tau1, tau2,
                                                    inv_temp, top_k)
    return router, tau1, tau2, inv_temp, top_k


def tile_rows(n_rows, n_features):
    """Rows per tile: each of a tile's two BLAS products stays below
    ``_TILE_PRODUCT`` multiply-adds, so BLAS runs it in the calling thread."""
    rows = _TILE_PRODUCT // (n_rows * max(n_features, 1))
    return int(min(TILE, max(8, rows - rows % 8)))


def gates_and_log_proba(X, x_norms, gate_coef, gate_intercept, expert_coef,
                        expert_intercept, router, tau1, tau2, inv_temp, top_k):
    """Gates ``(n, k)`` and class log-probabilities ``(n, C)``.

    ``expert_coef`` is ``(k, C, d)``, ``expert_intercept`` ``(k, C)``;
    ``x_norms`` is :func:`sklearn_cosmoe._kernels.row_norms` of ``X``.  Each
    row's values are computed from that row alone.
    """
    X = _matrix("X", X)
    n = X.shape[0]
    x_norms = _vector("x_norms", x_norms, n)
    params, n_classes = _params(X, gate_coef, gate_intercept, expert_coef,
                                expert_intercept)
    codes = _router_codes(router, tau1, tau2, inv_temp, top_k)
    gates = np.empty((n, params[0].shape[0]))
    log_proba = np.empty((n, n_classes))
    inputs = (X, x_norms, np.empty(0, dtype=np.int64), np.empty(0), *params, *codes,
              TILE, False)
    _run(_jit_classifier.classifier_blocks, _SIG_CLASSIFIER, n, inputs,
         (gates, log_proba, np.empty((0, 0))))
    return gates, log_proba


def nll_and_gradient(X, x_norms, y, sample_weight, gate_coef, gate_intercept,
                     expert_coef, expert_intercept, router, tau1, tau2, inv_temp, top_k):
    """Weighted mean negative log-likelihood and its exact gradient, in one pass.

    Returns ``-sum_n w_n log p(y_n | x_n) / sum_n w_n`` and its gradient
    (length ``k d + k + k C d + k C``), laid out as ``[gate_coef, gate_intercept,
    expert_coef, expert_intercept]``, each raveled in C order.  ``y`` holds
    class indices in ``[0, C)``; ``sample_weight`` must have a positive sum.
    """
    X = _matrix("X", X)
    n = X.shape[0]
    x_norms = _vector("x_norms", x_norms, n)
    params, n_classes = _params(X, gate_coef, gate_intercept, expert_coef,
                                expert_intercept)
    y = np.ascontiguousarray(y, dtype=np.int64)
    if y.shape != (n,):
        raise ValueError(f"y has shape {y.shape}; expected ({n},).")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must hold class indices in [0, {n_classes}); got values "
                         f"in [{y.min()}, {y.max()}].")
    sample_weight = _vector("sample_weight", sample_weight, n)
    codes = _router_codes(router, tau1, tau2, inv_temp, top_k)
    k, d = params[0].shape
    rows = k + k * n_classes
    size = rows * d + rows
    partial = np.empty((n_blocks(n), size + 2))
    inputs = (X, x_norms, y, sample_weight, *params, *codes, tile_rows(rows, d), True)
    unused = np.empty((0, 0))
    _run(_jit_classifier.classifier_blocks, _SIG_CLASSIFIER, n, inputs,
         (unused, unused, partial))
    grad = np.empty(size)
    finish = compiled(_jit_loss.loss_finish, _SIG_FINISH)
    loss, total_weight = finish(partial, params[0], codes[0], codes[1], grad)
    if not total_weight > 0:
        raise ValueError(f"sample_weight must have a positive sum; got {total_weight}.")
    return loss / total_weight, grad
