"""The Gaussian likelihood and the parameter count of the regressor's information criteria.

:meth:`CosineMoERegressor.bic` and :meth:`CosineMoERegressor.aic` read these
(user guide :ref:`criteria`).
"""

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from ._model import n_free_parameters, predict


def log_likelihood(estimator, X, y):
    """Gaussian log-likelihood of the fit on ``(X, y)`` at the maximum-likelihood
    noise variances: independent noise for each output, each with its own variance."""
    X = estimator._validate_X(X)
    y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    check_consistent_length(X, y)
    y_pred = predict(X, estimator._params(), estimator._fitted_spec())
    if y.shape != y_pred.shape:
        raise ValueError(f"y has shape {y.shape}; expected {y_pred.shape}, the "
                         "shape of the fit's target for these rows.")
    mse = np.mean((y - y_pred) ** 2, axis=0)
    n = X.shape[0]
    if not np.all(mse > 0):
        return np.inf
    return float(np.sum(-0.5 * n * (np.log(2 * np.pi * mse) + 1.0)))


def n_criterion_parameters(estimator):
    """Free parameters of the fit (:ref:`criteria`) and one noise variance per output."""
    check_is_fitted(estimator)
    spec = estimator._fitted_spec()
    return n_free_parameters(estimator.gate_coef_.shape, spec) + (spec.n_outputs or 1)
