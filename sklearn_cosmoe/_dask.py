"""Fit and predict on Dask arrays and dataframes: the rows stay on the workers.

Imported only when an estimator meets a Dask collection (the package itself
imports nothing of Dask).  :class:`DaskObjective` is the objective of
:mod:`sklearn_cosmoe._objective` for rows spread over a cluster: its chunks
of rows are persisted on the workers once per fit, and each of its methods
sends every chunk one small task -- the package's kernels on that chunk,
returning un-normalised, parameter-sized sums -- and adds the chunks' sums
on the client in chunk order.  The division by the total weight and the
ridge terms are applied once, on the client.  For a fixed chunking the
results are therefore bit-for-bit the same whatever the number of workers
or of threads; they differ from an in-memory fit only by the order of the
additions (user guide :ref:`dask`).

:func:`fit_inputs` checks and standardizes the estimator's inputs lazily
(non-finite values raise in the chunk that holds them), and
:func:`map_rows` and :func:`r2_score` predict and score chunk by chunk, in
the way of dask-ml's ``ParallelPostFit``.
"""

import functools
from dataclasses import replace

import dask
import dask.array as da
import numpy as np

from . import _kernels
from ._jacobian import finish_gauss_newton, gauss_newton_sums
from ._model import (gates_and_experts, loss_kernel_args, params_of_vector, penalised,
                     row_norms)
from ._objective import ArrayObjective
from ._sandwich import sandwich_sums
from ._validation import (_power_of_two_below, check_positive_total_weight,
                          check_x_magnitude, check_y_magnitude)


def _sum_in_order(parts):
    """``parts[0] + parts[1] + ...`` from left to right (a fixed order)."""
    total = np.array(parts[0], dtype=np.float64, copy=True)
    for part in parts[1:]:
        total += part
    return total


def _chunks_of(*arrays):
    """Per chunk of rows, the tuple of its blocks of each array (Dask delayed)."""
    return list(zip(*(a.to_delayed().ravel() for a in arrays)))


def _per_chunk(chunks, task, *args):
    """``task(*blocks, *args)`` for the blocks of each chunk, results in chunk order."""
    call = dask.delayed(task, pure=True)
    # the arguments once in the graph, not once per chunk
    shared = [dask.delayed(arg, traverse=False) for arg in args]
    return dask.compute(*(call(*chunk, *shared) for chunk in chunks))


# ---- the tasks that run on the workers, one per chunk of rows ----------------

def _loss_sums(X, x_norms, y, w, args):
    # one row: the chunk's blocks added in block order
    return _sum_in_order(_kernels.loss_and_gradient_sums(X, x_norms, y, w, *args))


def _unnormalised_sums(X, x_norms, y, w, method, *args):
    # the in-memory objective's method on one chunk: for the methods whose
    # results are plain sums over the rows (not divided by the total weight)
    return getattr(ArrayObjective(X, y, w, x_norms), method)(*args)


def _square_norm_sum(X, x_norms, y, w):
    return np.sum(w * np.einsum("ij,ij->i", X, X))


def _preactivation_sums(X, x_norms, y, w, params, spec):
    _, z = gates_and_experts(X, params, spec, x_norms)
    return np.einsum("n,nk->k", w, z * z)


def _mixture(X, x_norms, params, spec):
    gates, outputs = gates_and_experts(X, params, spec, x_norms)
    return np.einsum("nk,nk->n", gates, outputs)


def _first_moments(X, x_norms, y, w, params, spec):
    return np.array([np.einsum("n,n->", w, y),
                     np.einsum("n,n->", w, _mixture(X, x_norms, params, spec))])


def _second_moments(X, x_norms, y, w, params, spec, y_mean, mix_mean):
    mix = _mixture(X, x_norms, params, spec) - mix_mean
    return np.array([np.einsum("n,n->", w, mix * mix),
                     np.einsum("n,n->", w, mix * (y - y_mean))])


def _gate_weights(X, x_norms, w, params, spec, expert):
    gates, _ = gates_and_experts(X, params, spec, x_norms)
    return w * gates[:, expert]


class DaskObjective:
    """The least-squares objective on rows held in Dask arrays.

    The methods and their results are those of
    :class:`~sklearn_cosmoe._objective.ArrayObjective`; each is one round of
    per-chunk tasks on the workers.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features), float64
        One chunk across the columns.
    y, sample_weight : dask arrays of shape (n_samples,), float64
        Chunked as the rows of ``X``; the weights are non-negative with a
        positive sum.
    x_norms : dask array of shape (n_samples,), default=None
        Row norms of ``X`` (computed on the workers when not given).

    The arrays, and the row norms, are persisted (on the workers, with a
    ``distributed`` client) when the objective is made.
    """

    def __init__(self, X, y, sample_weight, x_norms=None):
        if x_norms is None:
            x_norms = X.map_blocks(row_norms, drop_axis=1, dtype=np.float64,
                                   meta=np.empty(0))
        self.X, self.x_norms, self.y, self.sample_weight = dask.persist(
            X, x_norms, y, sample_weight)
        self._chunks = _chunks_of(self.X, self.x_norms, self.y, self.sample_weight)
        self.total_weight = float(_sum_in_order(self._per_chunk(_weight_sum)))

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def n_chunks(self):
        return len(self._chunks)

    def _per_chunk(self, task, *args):
        """``task(X, x_norms, y, w, *args)`` on every chunk, results in chunk order."""
        return _per_chunk(self._chunks, task, *args)

    def loss_and_gradient(self, theta, shape, spec):
        """Objective and gradient at ``theta`` (:func:`~sklearn_cosmoe._model.objective`)."""
        params = params_of_vector(theta, shape, spec)
        partial = np.stack(self._per_chunk(_loss_sums, loss_kernel_args(params, spec)))
        router, _, tau1 = spec.kernel_args()[:3]
        loss, grad = _kernels.finish_loss_and_gradient(partial, params.gate_coef, router,
                                                       tau1)
        return penalised(loss, grad, params, spec)

    def gauss_newton(self, theta, shape, spec, atoms=False, exact=False):
        """``(loss, gradient, hessian)`` at ``theta``, the Hessian Gauss-Newton's
        (with ``atoms``, in the router's atoms rather than ``beta_1``; with
        ``exact``, and the residual curvature)."""
        params = params_of_vector(theta, shape, spec)
        parts = self._per_chunk(gauss_newton_sums, params, spec, exact)
        sums = tuple(None if parts[0][i] is None else _sum_in_order([part[i] for part in parts])
                     for i in range(5))
        return finish_gauss_newton(sums, params, spec, atoms)

    def sandwich_sums(self, params, spec, covariance=True):
        """:func:`~sklearn_cosmoe._sandwich.sandwich_sums`: the chunks' sums added in order."""
        parts = self._per_chunk(sandwich_sums, params, spec, covariance)
        return tuple(None if parts[0][i] is None else _sum_in_order([part[i] for part in parts])
                     for i in range(6))

    def expert_normal_equations(self, params, spec):
        """``(gram, rhs)`` of linear experts under the gates of ``params``, un-normalised."""
        parts = self._per_chunk(_unnormalised_sums, "expert_normal_equations", params,
                                spec)
        return (_sum_in_order([gram for gram, _ in parts]),
                _sum_in_order([rhs for _, rhs in parts]))

    def direction_sums(self, centres):
        """``(k, d)`` sums of ``w_n x_n / |x_n|`` over the rows nearest each centre."""
        return _sum_in_order(self._per_chunk(_unnormalised_sums, "direction_sums", centres))

    def gated(self, params, spec, expert):
        """The same rows weighted by ``w_n g_expert(x_n)`` under ``params``."""
        weights = da.blockwise(_gate_weights, "i", self.X, "ij", self.x_norms, "i",
                               self.sample_weight, "i", params, None, spec, None, expert,
                               None, concatenate=True, dtype=np.float64)
        return DaskObjective(self.X, self.y, weights, self.x_norms)

    def mean_square_norm(self):
        """Weighted mean of ``|x_n|^2``."""
        return float(_sum_in_order(self._per_chunk(_square_norm_sum)) / self.total_weight)

    def preactivation_mean_squares(self, params, spec):
        """``(k,)`` weighted means of the squared pre-activations ``(a_i . x_n + b_i)^2``."""
        linear = replace(spec, expert="linear")
        sums = _sum_in_order(self._per_chunk(_preactivation_sums, params, linear))
        return sums / self.total_weight

    def output_moments(self, params, spec):
        """Weighted means of ``y`` and of the mixture, its variance and covariance with ``y``.

        Two rounds, as in memory: the means, then the centred sums.
        """
        y_mean, mix_mean = (_sum_in_order(self._per_chunk(_first_moments, params, spec))
                            / self.total_weight)
        var, cov = (_sum_in_order(self._per_chunk(_second_moments, params, spec,
                                                  y_mean, mix_mean))
                    / self.total_weight)
        return float(y_mean), float(mix_mean), float(var), float(cov)

    def gated_squared_residuals(self, params, spec):
        """``(k,)`` sums ``sum_n w_n g_i(x_n) (y_n - f(x_n))^2`` (not normalised)."""
        return _sum_in_order(self._per_chunk(_unnormalised_sums, "gated_squared_residuals",
                                             params, spec))


def _weight_sum(X, x_norms, y, w):
    return np.sum(w)


# ---- the estimator's inputs and outputs --------------------------------------

def is_dataframe(obj):
    return hasattr(obj, "columns") and hasattr(obj, "to_dask_array")


def _column_names(X):
    """An empty pandas frame with the columns of a Dask dataframe (else ``X``), for
    scikit-learn's checks of feature names."""
    if not is_dataframe(X):
        return X
    import pandas as pd

    return pd.DataFrame(columns=X.columns)


def _checked_chunk(block, name):
    """A chunk as float64, C-contiguous, after checking that it is finite."""
    block = np.ascontiguousarray(block, dtype=np.float64)
    if not np.all(np.isfinite(block)):
        raise ValueError(
            f"Input {name} contains NaN or infinity (in a Dask chunk of {len(block)} "
            "rows). Remove or impute those values first."
        )
    return block


def as_rows(data, name, ndim, row_chunks=None, lengths=True):
    """``data`` as a Dask array of ``ndim`` dimensions, checked, rows chunked as given.

    Dataframes and series become arrays (their partitions' lengths computed
    when ``lengths``); NumPy data with ``row_chunks`` is chunked like them;
    a Dask array must already have those row chunks.  The dtype must be
    numeric; the chunks of a 2-d array are merged across its columns.
    Non-finite values are checked lazily, chunk by chunk, when the array is
    computed (a ``ValueError``).
    """
    if hasattr(data, "to_dask_array"):  # a dataframe or a series
        data = data.to_dask_array(lengths=lengths or None)
    elif not dask.is_dask_collection(data):
        data = np.asarray(data)
        if row_chunks is None:
            raise ValueError(f"{name} must be a Dask array or dataframe.")
        if len(data) != sum(row_chunks):
            raise ValueError(f"{name} has {len(data)} rows; X has {sum(row_chunks)}.")
        data = da.from_array(data, chunks=(row_chunks,) + data.shape[1:])
    if data.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d Dask array; got {data.ndim} "
                         f"dimensions (shape {data.shape}).")
    if data.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric; got dtype {data.dtype}.")
    if lengths and any(np.isnan(size) for size in data.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes; compute them first "
            f"({name}.compute_chunk_sizes(), or to_dask_array(lengths=True)).")
    known = not any(np.isnan(size) for size in data.chunks[0] + tuple(row_chunks or ()))
    if row_chunks is not None and known and tuple(data.chunks[0]) != tuple(row_chunks):
        raise ValueError(
            f"{name}'s chunks of rows {data.chunks[0]} differ from X's {row_chunks}; "
            f"rechunk it first: {name}.rechunk({{0: X.chunks[0]}}).")
    if ndim == 2:
        data = data.rechunk({1: -1})
    return data.map_blocks(_checked_chunk, name, dtype=np.float64,
                           meta=np.empty((0,) * ndim))


def fit_inputs(estimator, X, y, sample_weight):
    """Check and standardize a fit's Dask inputs: what ``fit`` does in memory.

    Sets ``n_features_in_`` (and ``feature_names_in_`` for a dataframe) as
    ``validate_data`` does.  Returns ``(objective, y_mean, y_scale)``
    with a :class:`DaskObjective` on the standardized target and the
    normalized weights.
    """
    from sklearn.utils.validation import _check_feature_names, _check_n_features

    _check_feature_names(estimator, _column_names(X), reset=True)
    row_chunks = None
    if not dask.is_dask_collection(X):  # chunked as the Dask y or weights
        name, other = (("y", y) if dask.is_dask_collection(y)
                       else ("sample_weight", sample_weight))
        row_chunks = as_rows(other, name, 1).chunks[0]
    X = as_rows(X, "X", 2, row_chunks)
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}; a fit needs at least one row and one "
                         "column.")
    _check_n_features(estimator, X, reset=True)
    y = as_rows(y, "y", 1, X.chunks[0])
    if sample_weight is None:
        w = da.ones(X.shape[0], chunks=(X.chunks[0],))
    else:
        w = as_rows(sample_weight, "sample_weight", 1, X.chunks[0])
    X, y, w = dask.persist(X, y, w)
    chunks = _chunks_of(X, y, w)
    # per chunk: min X, min w, then max X, max w, max |y|
    ranges = np.array(_per_chunk(chunks, _ranges))
    x_min, w_min = ranges[:, :2].min(axis=0)
    x_max, w_max, y_largest = ranges[:, 2:].max(axis=0)
    check_x_magnitude(np.array([x_min, x_max]))
    check_y_magnitude(np.array([y_largest]))
    if w_min < 0:
        raise ValueError("Negative values in data passed to sample_weight.")
    check_positive_total_weight(np.array([w_max]))
    w = w / _power_of_two_below(w_max)  # normalize_sample_weight
    target, y_mean, y_scale = _standardized_target(y, w, y_largest)
    return DaskObjective(X, target, w), y_mean, y_scale


def _ranges(X, y, w):
    if len(X) == 0:
        return np.array([np.inf, np.inf, -np.inf, -np.inf, 0.0])
    return np.array([X.min(), w.min(), X.max(), w.max(), np.max(np.abs(y))])


def _standardized_target(y, w, largest):
    """:func:`~sklearn_cosmoe._validation.standardize_target`, with sums over chunks.

    ``largest`` is the largest ``|y|``; ``w`` has a positive sum.
    """
    if largest == 0:
        return da.zeros_like(y), 0.0, 1.0
    unit = _power_of_two_below(largest)
    chunks = _chunks_of(y, w)
    total, scaled_sum, _ = _sum_in_order(_per_chunk(chunks, _weighted_sums, unit, 0.0))
    mean = scaled_sum / total
    std = np.sqrt(_sum_in_order(_per_chunk(chunks, _weighted_sums, unit, mean))[2] / total)
    centred = y / unit - mean
    if not std > 0:  # a constant target: keep the power-of-two scale
        return centred, float(mean * unit), float(unit)
    return centred / std, float(mean * unit), float(std * unit)


def _weighted_sums(y, w, unit, mean):
    centred = y / unit - mean
    return np.array([np.sum(w), np.sum(w * (y / unit)), np.sum(w * centred * centred)])


def first_chunk(data):
    """The first chunk of rows of a :class:`DaskObjective`'s ``X`` and weights, in memory."""
    return dask.compute(data.X.blocks[0], data.sample_weight.blocks[0])


def _call_on_rows(method, columns, block):
    if columns is not None:
        import pandas as pd

        block = pd.DataFrame(block, columns=columns)
    return method(block)


def map_rows(estimator, method, X):
    """``method(X)`` as a lazy Dask array, computed chunk by chunk.

    ``method`` is a bound method of the fitted ``estimator`` (pickled into
    each task); its result has one row per row of ``X``.  The shape of a row
    of it (a number, one column per expert or per output, or both) and its
    dtype are those of ``method`` on one row of zeros.  The number of
    features, and a dataframe's column names, are checked now, the values
    chunk by chunk.
    """
    from sklearn.utils.validation import (_check_feature_names, _check_n_features,
                                          check_is_fitted)

    check_is_fitted(estimator)
    _check_feature_names(estimator, _column_names(X), reset=False)
    columns = list(X.columns) if is_dataframe(X) else None
    X = as_rows(X, "X", 2, lengths=False)
    _check_n_features(estimator, X, reset=False)
    call = functools.partial(_call_on_rows, method, columns)
    probe = np.asarray(call(np.zeros((1, X.shape[1]))))
    meta = np.empty((0,) * probe.ndim, dtype=probe.dtype)
    if probe.ndim == 1:
        return X.map_blocks(call, drop_axis=1, dtype=probe.dtype, meta=meta)
    chunks = (X.chunks[0],) + tuple((size,) for size in probe.shape[1:])
    new_axis = list(range(2, probe.ndim))
    return X.map_blocks(call, chunks=chunks, new_axis=new_axis or None,
                        dtype=probe.dtype, meta=meta)


def r2_score(estimator, X, y, sample_weight=None):
    """R² of ``estimator.predict`` on Dask data, as scikit-learn's ``r2_score``.

    Computed chunk by chunk on the workers; one float comes back.
    """
    f = estimator.predict(X)
    y = as_rows(y, "y", 1, f.chunks[0], lengths=False)
    w = (da.ones_like(y) if sample_weight is None
         else as_rows(sample_weight, "sample_weight", 1, f.chunks[0], lengths=False))
    y_mean = (w * y).sum() / w.sum()
    sse, sst = dask.compute((w * (y - f) ** 2).sum(), (w * (y - y_mean) ** 2).sum())
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return float(1.0 - sse / sst)
