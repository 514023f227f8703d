"""What the regressor and the classifier do alike.

Both estimators share the router's hyperparameters and their checks, a ``fit``
that leaves the estimator as it was when it fails, the choice among several
starts, the warnings for unscaled features and for a fit that did not
converge, and :meth:`~MoEEstimatorMixin.apply`.  Each estimator keeps its own
``_fit``, which validates its data, runs its solver and returns the fitted
attributes as a dict, and its own ``_spec``.
"""

import functools
import warnings

import numpy as np
from sklearn.base import is_regressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import check_no_booleans, scaler_would_help, unscaled_features_message

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


def lazy_on_dask(method):
    """Run the decorated ``method(self, X)`` chunk by chunk when ``X`` is a Dask collection.

    The result is then a lazy Dask array (:func:`sklearn_cosmoe._dask.map_rows`).
    """
    @functools.wraps(method)
    def wrapper(self, X):
        if is_dask_collection(X):
            from ._dask import map_rows

            return map_rows(self, getattr(self, method.__name__), X)
        return method(self, X)
    return wrapper


class MoEEstimatorMixin:
    """Shared behaviour of :class:`CosineMoERegressor` and :class:`CosineMoEClassifier`."""

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
        """``X`` of a prediction: checked against the fit, float64, C-contiguous."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64, order="C")

    def _fit_or_keep(self, X, y, sample_weight):
        """Set the attributes that ``self._fit`` returns, or leave ``self`` as it was.

        ``validate_data(reset=True)`` inside ``_fit`` sets ``n_features_in_``
        (and ``feature_names_in_``) before anything can fail; on any
        failure, Ctrl-C included, those are put back.
        """
        before = {name: vars(self)[name] for name in _INPUT_ATTRIBUTES if name in vars(self)}
        try:
            fitted = self._fit(X, y, sample_weight)
        except BaseException:
            for name in _INPUT_ATTRIBUTES:
                vars(self).pop(name, None)
            vars(self).update(before)
            raise
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

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
            warnings.warn(self._convergence_advice(result.reason), ConvergenceWarning)

    def _convergence_advice(self, reason):
        """The ConvergenceWarning's message for why the fit stopped early."""
        name = type(self).__name__
        scale = getattr(self, "_scaler_would_help", True)
        if reason == "max_iter":
            return (
                f"{name} did not converge in max_iter={self.max_iter} "
                "L-BFGS iterations. Increase max_iter"
                + (", scale the features (StandardScaler)," if scale else "")
                + " or increase alpha."
            )
        if self.top_k is not None:
            return (
                f"{name} did not converge: the L-BFGS line search failed "
                f"on the top_k={self.top_k} objective, which jumps where two router "
                "scores cross. Use dense gates (top_k=None), a larger top_k, or "
                "n_init > 1 and compare init_losses_."
            )
        return (
            f"{name} did not converge: the L-BFGS line search failed "
            f"before the tolerance test (tol={self.tol}) passed; the objective is "
            "flat to rounding error along the search direction. Increase tol, "
            "or increase alpha (over-specified fits drift along flat directions)"
            + (", or scale the features (StandardScaler)." if scale else ".")
        )

    def score(self, X, y, sample_weight=None):
        """The default score of the predictions: R² (regressor) or accuracy (classifier).

        On Dask data, the regressor's R² is computed chunk by chunk on the
        workers (:ref:`dask`).

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
