"""The path's fits as fitted :class:`CosineMoERegressor`, and their test scores."""

from ._cv_path import fitted_attributes
from ._estimator import CosineMoERegressor


def as_fitted(result, spec, y_mean, y_scale, n_features, hyperparameters):
    """A :class:`CosineMoERegressor` whose fitted attributes are those of ``result``.

    ``hyperparameters`` are the regressor's, but for the ones ``spec`` sets
    (router, temperature, perturbations, penalty) and the number of experts.
    """
    reg = CosineMoERegressor(
        n_experts=result.params.shape[0], router=spec.router, tau1=spec.tau1,
        tau2=spec.tau2, temperature=spec.temperature, alpha=spec.alpha, **hyperparameters)
    fitted = fitted_attributes(result, spec, y_mean, y_scale)
    fitted.update(reg._fitted_hyperparameters())
    for name, value in fitted.items():
        setattr(reg, name, value)
    reg.n_features_in_ = n_features
    reg.loss_, reg.n_iter_, reg.converged_ = result.loss, result.n_iter, result.converged
    return reg


class PathScore:
    """Test score of one fit of a path (:func:`as_fitted`).

    A picklable callable, so that the paths can run in joblib's worker
    processes.
    """

    def __init__(self, scorer, X, y, hyperparameters):
        self.scorer, self.X, self.y = scorer, X, y
        self.hyperparameters = hyperparameters

    def __call__(self, result, spec, y_mean, y_scale, test):
        reg = as_fitted(result, spec, y_mean, y_scale, self.X.shape[1],
                        self.hyperparameters)
        return self.scorer(reg, self.X[test], self.y[test])
