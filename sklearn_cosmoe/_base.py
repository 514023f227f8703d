"""What the regressor and the classifier do alike.

Both estimators share the router's hyperparameters and their checks, a ``fit``
that leaves the estimator as it was when it fails, the choice among several
starts, the warnings for unscaled features and for a fit that did not
converge, and :meth:`~MoEEstimatorMixin.apply`.  Each estimator keeps its own
``_fit``, which validates its data, runs its solver and returns the fitted
attributes as a dict, and its own ``_spec``.

A fitted estimator predicts from its fitted attributes only
(:mod:`sklearn_cosmoe._fitted`), and fits and predictions hold BLAS to one
thread (:func:`~sklearn_cosmoe._parallel.single_threaded_blas`), so that
their bits do not depend on BLAS's thread count.
"""

import copy
import functools
import warnings

import numpy as np
from sklearn.base import is_regressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data

from ._fitted import (FITTED_HYPERPARAMETERS, add_missing_fitted_hyperparameters,
                      check_fitted_model, fitted_hyperparameters)
from ._parallel import single_threaded_blas
from ._validation import (check_no_booleans, check_x_magnitude, scaler_would_help,
                          unscaled_features_message)

# set by validate_data(reset=True) at the start of fit (and, from the features,
# whether to advise a StandardScaler), restored if fit fails
_INPUT_ATTRIBUTES = ("n_features_in_", "feature_names_in_", "_scaler_would_help")
# hyperparameters that must be numbers, never booleans
_NUMERIC_PARAMETERS = ("n_experts", "tau1", "tau2", "temperature", "top_k", "alpha",
                       "max_iter", "tol", "n_init")


def is_dask_collection(obj):
    """Whether ``obj`` is a Dask collection (Dask is imported only if it may be)."""
    if not hasattr(obj, "__dask_graph__"):
        return False
    import dask

    return dask.is_dask_collection(obj)


def any_dask(*objs):
    return any(is_dask_collection(obj) for obj in objs)


def blas_held(method):
    """Run the decorated ``method`` with BLAS held to one thread (the same bits on any)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with single_threaded_blas():
            return method(self, *args, **kwargs)
    return wrapper


def lazy_on_dask(method):
    """Run the decorated ``method(self, X)`` chunk by chunk when ``X`` is a Dask collection.

    The result is then a lazy Dask array (:func:`sklearn_cosmoe._dask.map_rows`)
    of a copy of the estimator as it is now: a later fit or ``set_params``
    does not change it.  In memory, ``method`` runs with BLAS on one thread.
    """
    held = blas_held(method)

    @functools.wraps(method)
    def wrapper(self, X):
        if is_dask_collection(X):
            from ._dask import map_rows

            snapshot = copy.deepcopy(self)
            return map_rows(snapshot, getattr(snapshot, method.__name__), X)
        return held(self, X)
    return wrapper


def fit_or_keep(estimator, fit, *args):
    """Set the attributes that ``fit(*args)`` returns on ``estimator``, or leave it as it was.

    ``validate_data(reset=True)`` inside ``fit`` sets ``n_features_in_``
    (and ``feature_names_in_``) before anything can fail; on any failure,
    Ctrl-C included, those are put back.  ``fit`` runs with BLAS on one
    thread, so that its bits do not depend on BLAS's thread count.
    """
    before = {name: vars(estimator)[name] for name in _INPUT_ATTRIBUTES
              if name in vars(estimator)}
    try:
        with single_threaded_blas():
            fitted = fit(*args)
    except BaseException:
        for name in _INPUT_ATTRIBUTES:
            vars(estimator).pop(name, None)
        vars(estimator).update(before)
        raise
    for name, value in fitted.items():
        setattr(estimator, name, value)
    return estimator


def r2_on_standardized_scale(y_true, y_pred, sample_weight=None):
    """:func:`sklearn.metrics.r2_score` of each output divided by a power of two.

    R² does not change when an output and its prediction are scaled alike;
    dividing by the power of two near their largest absolute value is exact
    and keeps the squares of the residuals far from overflow, so
    ``y * 1e200`` scores as ``y`` does.
    """
    y_true = check_array(y_true, ensure_2d=False, dtype=np.float64, input_name="y")
    y_pred = np.asarray(y_pred, dtype=np.float64)
    n = y_true.shape[0]
    if y_pred.shape[:1] == (n,) and y_true.size == y_pred.size and n > 0:
        columns = y_true.reshape(n, -1), y_pred.reshape(n, -1)
        largest = np.maximum(np.max(np.abs(columns[0]), axis=0),
                             np.max(np.abs(columns[1]), axis=0))
        unit = np.where(np.isfinite(largest) & (largest > 0), largest, 1.0)
        unit = np.ldexp(1.0, np.frexp(unit)[1] - 1)
        y_true = (columns[0] / unit).reshape(y_true.shape)
        y_pred = (columns[1] / unit).reshape(y_pred.shape)
    return float(r2_score(y_true, y_pred, sample_weight=sample_weight))


class MoEEstimatorMixin:
    """Shared behaviour of :class:`CosineMoERegressor` and :class:`CosineMoEClassifier`."""

    #: hyperparameters the prediction reads, copied to fitted attributes by ``fit``
    _FITTED_HYPERPARAMETERS = FITTED_HYPERPARAMETERS

    def _fitted_hyperparameters(self):
        """``router_``, ``tau1_``, ...: this fit's values of what prediction reads."""
        return fitted_hyperparameters(self, self._FITTED_HYPERPARAMETERS)

    def __setstate__(self, state):
        # a model saved before the fitted hyperparameters were attributes
        super().__setstate__(state)
        add_missing_fitted_hyperparameters(self, self._FITTED_HYPERPARAMETERS)
        if "solver" in self._get_param_names():  # saved before the solver was a choice
            vars(self).setdefault("solver", "auto")

    def _check_fitted_model(self):
        """Raise a ``ValueError`` unless the fitted attributes make a model (a loaded file)."""
        check_is_fitted(self)
        check_fitted_model(self, self._FITTED_HYPERPARAMETERS)

    def _check_params(self):
        """Checks that ``_parameter_constraints`` cannot express."""
        check_no_booleans(self, _NUMERIC_PARAMETERS)
        if self.router == "perturbed_cosine" and self.tau1 <= 0:
            raise ValueError(
                "tau1 must be > 0 with router='perturbed_cosine' (the perturbation "
                f"is what distinguishes it from router='cosine'); got tau1={self.tau1}."
            )
        if self.top_k is not None and self.top_k >= self.n_experts:
            raise ValueError(
                f"top_k must be smaller than n_experts={self.n_experts} "
                f"(use top_k=None for dense gates); got top_k={self.top_k}."
            )

    def _validate_X(self, X):
        """``X`` of a prediction: checked against the fit, float64, C-contiguous.

        Entries beyond ``X_MAX`` are refused as in ``fit``: they would give
        NaN predictions.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, order="C")
        check_x_magnitude(X, lower=False)
        return X

    def _fit_or_keep(self, X, y, sample_weight):
        """``self._fit(X, y, sample_weight)``'s attributes set, or ``self`` as it was
        (:func:`fit_or_keep`)."""
        return fit_or_keep(self, self._fit, X, y, sample_weight)

    def _warn_if_unscaled(self, X, sample_weight):
        # read by _convergence_advice: advise a StandardScaler only where it would help
        self._scaler_would_help = scaler_would_help(X)
        message = unscaled_features_message(X, sample_weight, self.router, self.tau2)
        if message is not None:
            warnings.warn(message.replace("CosineMoERegressor", type(self).__name__),
                          UserWarning)

    @staticmethod
    def _best_of(results):
        """The result with the lowest loss (the first on a tie; a NaN loss is never kept).

        Returns
        -------
        best : FitResult
        best_loss : float
            ``best.loss``, or ``inf`` when no loss is finite.
        losses : ndarray
            Every result's final loss, in order.
        """
        best, best_loss, losses = None, np.inf, []
        for result in results:
            losses.append(result.loss)
            if best is None or result.loss < best_loss:
                best = result
                best_loss = result.loss if np.isfinite(result.loss) else np.inf
        return best, best_loss, np.asarray(losses)

    def _warn_if_not_converged(self, result):
        if not result.converged:
            # a Newton-type fit reads its stationarity, an L-BFGS-B one does not
            lbfgs = not np.isfinite(getattr(result, "stationarity", np.nan))
            warnings.warn(self._convergence_advice(result.reason, lbfgs), ConvergenceWarning)

    def _convergence_advice(self, reason, lbfgs=True):
        """The ConvergenceWarning's message for why the fit stopped early."""
        name = type(self).__name__
        scale = getattr(self, "_scaler_would_help", True)
        search = ("the L-BFGS line search failed" if lbfgs
                  else "no damped Newton step lowered the objective")
        if reason == "max_iter":
            return (
                f"{name} did not converge in max_iter={self.max_iter} "
                f"{'L-BFGS' if lbfgs else 'Newton'} iterations. "
                "Increase max_iter"
                + (", scale the features (StandardScaler)," if scale else "")
                + " or increase alpha."
            )
        if self.top_k is not None:
            return (
                f"{name} did not converge: {search} "
                f"on the top_k={self.top_k} objective, which jumps where two router "
                "scores cross. Use dense gates (top_k=None), a larger top_k, or "
                "n_init > 1 and compare init_losses_."
            )
        return (
            f"{name} did not converge: {search} "
            f"before the tolerance test (tol={self.tol}) passed; the objective is "
            "flat to rounding error along the search direction. Increase tol, "
            "or increase alpha (over-specified fits drift along flat directions)"
            + (", or scale the features (StandardScaler)." if scale else ".")
        )

    def score(self, X, y, sample_weight=None):
        """The default score of the predictions: R² (regressor) or accuracy (classifier).

        The regressor's R² is computed after dividing each output and its
        prediction by a power of two near their largest size (exactly), so
        that it cannot overflow for any finite target.  On Dask data it is
        computed chunk by chunk on the workers (:ref:`dask`).

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)
        y : array-like or Dask collection of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        if is_regressor(self) and any_dask(X, y, sample_weight):
            from ._dask import r2_score

            return r2_score(self, X, y, sample_weight)
        if is_regressor(self):
            return r2_on_standardized_scale(y, self.predict(X), sample_weight)
        return super().score(X, y, sample_weight=sample_weight)

    def apply(self, X):
        """Index of the expert with the largest gate weight for each row.

        A lazy Dask array for Dask input, as ``predict_gates``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), dtype int
        """
        return np.argmax(self.predict_gates(X), axis=1)
