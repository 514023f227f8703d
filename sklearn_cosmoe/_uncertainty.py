"""What :class:`~sklearn_cosmoe.CosineMoERegressor` calls for its uncertainty.

At the end of a fit, :func:`fit_statistics` puts the experts in their
canonical order (decreasing total gate weight on the training rows) and
computes the parameters' sandwich covariance and the noise variance
(:mod:`sklearn_cosmoe._sandwich`) in one more pass over the rows; the
estimator keeps them as ``_covariance``.  :func:`predict_with_std` and
:func:`predict_interval` read them (user guide :ref:`uncertainty`).
"""

import copy
import functools
from numbers import Real

import numpy as np
from scipy.stats import norm
from sklearn.utils.validation import check_is_fitted

from ._base import is_dask_collection
from ._model import predict
from ._objective import ArrayObjective
from ._parallel import single_threaded_blas
from ._sandwich import (COVARIANCE_MAX_PARAMETERS, canonical_order, finish_sandwich,
                        on_target_scale, permuted_params, permuted_sums,
                        predictive_variance)
from ._validation import params_on_standardized_scale, standardize_target


def fit_statistics(data, params, spec, y_scale):
    """The fitted ``params`` (standardized target) in canonical order, and their statistics.

    ``data`` is the fit's objective (in memory or on a cluster).  Returns the
    permuted parameters, :func:`~sklearn_cosmoe._sandwich.on_target_scale`'s
    dict (None above :data:`~sklearn_cosmoe._sandwich.COVARIANCE_MAX_PARAMETERS`
    parameters: then the pass over the rows computes the gates alone) and the
    noise variance on ``y``'s scale (a float for one output; NaN without a
    covariance).
    """
    wanted = spec.n_parameters(params.shape) <= COVARIANCE_MAX_PARAMETERS
    sums = data.sandwich_sums(params, spec, wanted)
    order = canonical_order(sums[2])
    params = permuted_params(params, order)
    noise = np.full(spec.n_outputs or 1, np.nan)
    statistics = None
    if wanted:
        statistics = on_target_scale(
            finish_sandwich(permuted_sums(sums, params.shape, spec, order), params, spec),
            params.shape, spec, y_scale)
        noise = statistics["noise_variance"].copy()
    return params, statistics, float(noise[0]) if spec.n_outputs is None else noise


def statistics_on_rows(estimator, X, y, sample_weight=None, robust=True):
    """The statistics of a fitted estimator's parameters on the rows ``(X, y)``.

    On its training rows, ``robust=True`` gives what the fit computed
    (``estimator._covariance``); ``robust=False`` the classical covariance
    (:func:`~sklearn_cosmoe._sandwich.finish_sandwich`), which the
    benchmarks set beside the sandwich under heteroscedastic noise.  In
    memory; the experts stay in their fitted order.
    """
    X = estimator._validate_X(X)
    y = np.asarray(y, dtype=np.float64)
    weight = np.ones(X.shape[0]) if sample_weight is None else np.asarray(
        sample_weight, dtype=np.float64)
    target, y_mean, y_scale = standardize_target(y, weight)
    spec = estimator._fitted_spec()
    params = params_on_standardized_scale(estimator._params(), y_mean, y_scale, spec.expert)
    with single_threaded_blas():
        sums = ArrayObjective(X, target, weight).sandwich_sums(params, spec)
        statistics = finish_sandwich(sums, params, spec, robust)
    return on_target_scale(statistics, params.shape, spec, y_scale)


def check_return_std(return_std):
    """``return_std`` as a bool, or a ``TypeError`` that names it."""
    if not isinstance(return_std, (bool, np.bool_)):
        raise TypeError(f"return_std must be True or False; got {return_std!r}.")
    return bool(return_std)


def _check_coverage(coverage):
    if (isinstance(coverage, (bool, np.bool_)) or not isinstance(coverage, Real)
            or not 0.0 < float(coverage) < 1.0):
        raise ValueError("coverage must be a number strictly between 0 and 1 (0.95 for "
                         f"95% intervals); got {coverage!r}.")
    return float(coverage)


def fitted_statistics(estimator):
    """The estimator's ``_covariance``, after checking that it can give a variance."""
    check_is_fitted(estimator)
    name = type(estimator).__name__
    if "_covariance" not in vars(estimator):
        raise ValueError(
            f"This {name} was fitted by a version of sklearn_cosmoe that kept no "
            "covariance of its parameters: refit it to get return_std=True, "
            "predict_interval or inference.summary.")
    statistics = estimator._covariance
    if statistics is None:
        n_parameters = estimator._fitted_spec().n_parameters(estimator.gate_coef_.shape)
        raise ValueError(
            f"This {name} has {n_parameters} parameters, more than "
            f"{COVARIANCE_MAX_PARAMETERS}: its fit computed no covariance (its matrices "
            "would have n_parameters**2 entries). Use fewer experts or features.")
    if not np.all(np.isfinite(statistics["noise_variance"])):
        raise ValueError(
            f"This {name} was fitted on {statistics['n_rows']} rows of positive weight, "
            f"not more than the {statistics['n_identified']} parameters they identify: "
            "no residual is left to estimate the noise. Fit on more rows, or with "
            "fewer experts.")
    return statistics


def _mean_and_std(estimator, X):
    """``predict(X)`` and the predictive standard deviation, in memory."""
    statistics = fitted_statistics(estimator)
    X = estimator._validate_X(X)
    params, spec = estimator._params(), estimator._fitted_spec()
    mean = predict(X, params, spec)
    variance = predictive_variance(X, params, spec, statistics)
    noise = statistics["noise_variance"]
    return mean, np.sqrt((noise[0] if params.n_outputs is None else noise) + variance)


def _stacked(estimator, X):
    """:func:`_mean_and_std` as one array, the mean and the std along a last axis."""
    with single_threaded_blas():
        return np.stack(_mean_and_std(estimator, X), axis=-1)


def predict_with_std(estimator, X):
    """``(mean, std)`` of :meth:`CosineMoERegressor.predict` with ``return_std=True``.

    Lazy Dask arrays for a Dask ``X``, computed together chunk by chunk (of
    a copy of the estimator as it is now).
    """
    if is_dask_collection(X):
        from ._dask import map_rows

        fitted_statistics(estimator)  # the errors now, not in the workers
        snapshot = copy.deepcopy(estimator)
        both = map_rows(snapshot, functools.partial(_stacked, snapshot), X)
        return both[..., 0], both[..., 1]
    with single_threaded_blas():
        return _mean_and_std(estimator, X)


def predict_interval(estimator, X, coverage):
    """``(lower, upper)``: ``mean -+ z std`` with ``z`` the normal quantile of ``coverage``."""
    coverage = _check_coverage(coverage)
    mean, std = predict_with_std(estimator, X)
    z = float(norm.ppf(0.5 + 0.5 * coverage))
    return mean - z * std, mean + z * std
