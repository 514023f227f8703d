"""The number of experts chosen by cross-validation: a path of grown mixtures."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import fit_or_keep, r2_on_standardized_scale
from ._estimator import CosineMoERegressor
from ._memory import check_regressor_memory
from ._experts import EXPERTS
from ._routers import ROUTERS
from ._objective import ArrayObjective
from ._solver import grow_path
from ._validation import (check_no_booleans, check_numeric_target, check_temperatures,
                          check_x_magnitude, check_y_magnitude, params_on_target_scale,
                          standardize_target)

# hyperparameters that must be numbers, never booleans
_NUMERIC_PARAMETERS = ("max_experts", "tau1", "tau2", "alpha", "max_iter", "tol", "n_init")


class CosineMoERegressorCV(RegressorMixin, BaseEstimator):
    """Mixture of experts with the number of experts chosen by cross-validation.

    In the way of :class:`~sklearn.linear_model.LassoCV`: on each training
    fold and for each router of ``router`` and each of the ``temperatures``, a
    path of mixtures with ``1, 2, ..., max_experts`` experts is fitted, each
    started from the previous one with the expert that fits worst split in two
    (:ref:`solver`); each mixture of the path is scored on the fold's test
    rows; the router, number of experts and temperature with the best mean
    score are then fitted on all the data by :class:`CosineMoERegressor` (its
    default fit), which predicts.

    Put a :class:`~sklearn.preprocessing.StandardScaler` in front, as for
    :class:`CosineMoERegressor`.

    Parameters
    ----------
    max_experts : int, default=5
        Largest number of experts of the path.
    cv : int, cross-validation generator or iterable, default=5
        Splitting strategy, as in :func:`~sklearn.model_selection.check_cv`
        (an int is a :class:`~sklearn.model_selection.KFold` without
        shuffling: for rows stored in an order, sorted by the target for
        instance, pass ``KFold(n_splits, shuffle=True)``, or every fold's
        test rows differ from its training rows and the scores choose
        nothing; ``benchmarks/README.md`` shows it on ``fair``).
    scoring : str, callable or None, default=None
        Score of each mixture on the test rows
        (:func:`~sklearn.metrics.check_scoring`); None is R².
    temperatures : array-like of float, default=(1.0, 0.3, 0.1)
        Candidate temperatures ``T`` (:class:`CosineMoERegressor`'s
        ``temperature``), each with its own path; soft gates at 1, sharp ones
        at 0.1 (:ref:`tuning`).
    router : str or sequence of str, \
            default=("perturbed_cosine", "cosine", "linear")
        Candidate routers (:class:`CosineMoERegressor`'s ``router``), each
        with its own paths.  The cosine routers see only the directions of
        the rows; the linear router also their lengths, which wins where the
        regression function changes along a direction; the plain cosine
        router's scores do not shrink with short rows or short router
        vectors as the perturbed router's do (:ref:`tuning`).
    tau1, tau2, expert, alpha, max_iter, tol : \
            see :class:`CosineMoERegressor`
        Shared by every mixture of the paths and the final fit.
    n_init : int, default=1
        Starts of the final fit (:class:`CosineMoERegressor`'s ``n_init``).
    random_state : int, RandomState instance or None, default=None
        Seeds the path's splits of experts and the final fit.
    verbose : int, default=0
        Print the score of each number of experts.

    Attributes
    ----------
    n_experts_ : int
        The number of experts with the best mean test score (on a tie the
        smallest number, then the router and the temperature given first).
    router_ : str
        The router with the best mean test score.
    temperature_ : float
        The temperature with the best mean test score.
    estimator_ : CosineMoERegressor
        The final fit, on all the data, with ``n_experts_`` experts.
    n_experts_path_ : ndarray of shape (max_experts,)
        ``1, 2, ..., max_experts``.
    routers_ : tuple of str
        The candidate routers, in the order given.
    temperatures_ : ndarray of shape (n_temperatures,)
        The candidate temperatures, in the order given.
    score_path_ : ndarray of shape (n_routers, n_temperatures, max_experts, \
            n_splits)
        Test score of each mixture of each path on each split.
    best_score_ : float
        Mean test score of ``n_experts_``.
    cv_results_ : dict of ndarrays
        ``param_router``, ``param_temperature``, ``param_n_experts``,
        ``split{i}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score`` and ``split{i}_train_loss`` (the training
        objective of each mixture of the path), one entry per (router,
        temperature, number of experts), in that order of nesting, as in
        :class:`~sklearn.model_selection.GridSearchCV`.
    n_iter_ : int
        ``estimator_.n_iter_``.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when ``X`` has feature names that are all strings.

    See Also
    --------
    CosineMoERegressor.bic, CosineMoERegressor.aic : choose ``n_experts`` by
        an information criterion instead.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_cosmoe import CosineMoERegressorCV
    >>> from sklearn_cosmoe.datasets import make_cosine_moe
    >>> X, y, _ = make_cosine_moe(600, n_features=2, n_experts=2, temperature=0.2,
    ...                           noise=0.05, random_state=0)
    >>> reg = make_pipeline(StandardScaler(), CosineMoERegressorCV(
    ...     max_experts=3, cv=3, temperatures=[0.2], random_state=0)).fit(X, y)
    >>> reg[-1].n_experts_ >= 2
    True
    """

    _parameter_constraints = {
        "max_experts": [Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "router": [StrOptions(set(ROUTERS)), tuple, list],
        "tau1": [Interval(Real, 0, None, closed="left")],
        "tau2": [Interval(Real, 0, None, closed="left")],
        "temperatures": ["array-like"],
        "expert": [StrOptions(set(EXPERTS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        max_experts=5,
        cv=5,
        scoring=None,
        temperatures=(1.0, 0.3, 0.1),
        router=("perturbed_cosine", "cosine", "linear"),
        tau1=1.0,
        tau2=1.0,
        expert="linear",
        alpha=1e-4,
        max_iter=1000,
        tol=1e-6,
        n_init=1,
        random_state=None,
        verbose=0,
    ):
        self.max_experts = max_experts
        self.cv = cv
        self.scoring = scoring
        self.temperatures = temperatures
        self.router = router
        self.tau1 = tau1
        self.tau2 = tau2
        self.expert = expert
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _routers(self):
        """The candidate routers as a tuple, checked."""
        routers = (self.router,) if isinstance(self.router, str) else tuple(self.router)
        if not routers or len(set(routers)) < len(routers) or any(
                not isinstance(r, str) or r not in ROUTERS for r in routers):
            raise ValueError(
                f"router must be one of {sorted(ROUTERS)} or a non-empty sequence of "
                f"distinct ones; got {self.router!r}."
            )
        return routers

    def _mixture(self, n_experts, router, temperature, random_state):
        return CosineMoERegressor(
            n_experts=n_experts, router=router, tau1=self.tau1, tau2=self.tau2,
            temperature=temperature, expert=self.expert, alpha=self.alpha,
            max_iter=self.max_iter, tol=self.tol, n_init=self.n_init,
            random_state=random_state,
        )

    def _path(self, X, y, router, temperature, rng):
        """Fitted :class:`CosineMoERegressor` with 1, ..., ``max_experts`` experts.

        ``X`` is float64 and C-contiguous; each mixture starts from the
        previous one with its worst expert split (:func:`grow_path`).
        """
        template = self._mixture(1, router, temperature, None)
        template._check_params()
        weights = np.ones(len(y))
        target, y_mean, y_scale = standardize_target(y, weights)
        spec = template._spec(None if y.ndim == 1 else y.shape[1])
        path = grow_path(ArrayObjective(X, target, weights), spec, self.max_experts, rng,
                         max_iter=self.max_iter, tol=self.tol)
        for k, result in enumerate(path, start=1):
            reg = clone(template).set_params(n_experts=k)
            with np.errstate(over="ignore"):
                fitted = params_on_target_scale(result.params, y_mean, y_scale,
                                                self.expert)
            if not all(np.all(np.isfinite(value)) for value in fitted.values()):
                raise ValueError(
                    f"The fitted parameters of the path's mixture of {k} experts "
                    "overflow on the scale of y (standard deviation "
                    f"{np.max(y_scale):.3g}); scale y down first."
                )
            fitted.update(reg._fitted_hyperparameters())
            for name, value in fitted.items():
                setattr(reg, name, value)
            reg.n_features_in_ = X.shape[1]
            reg.loss_, reg.n_iter_, reg.converged_ = result.loss, result.n_iter, result.converged
            reg.init_losses_ = np.array([result.loss])
            yield reg

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, groups=None):
        """Fit the path on each training fold, choose ``n_experts_``, refit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            A 2-d ``y`` fits multi-output mixtures (:ref:`multi-output`).
        groups : array-like of shape (n_samples,), default=None
            Group labels for a group splitter such as
            :class:`~sklearn.model_selection.GroupKFold`.

        Returns
        -------
        self : CosineMoERegressorCV
        """
        return fit_or_keep(self, self._fit, X, y, groups)

    def _fit(self, X, y, groups):
        """Everything ``fit`` computes, as a dict of attributes; sets none but
        those of ``validate_data`` (which :func:`fit_or_keep` restores on failure)."""
        check_no_booleans(self, _NUMERIC_PARAMETERS)
        routers = self._routers()
        temperatures = check_temperatures(self.temperatures)
        check_numeric_target(y)
        X, y = validate_data(self, X, y, y_numeric=True, multi_output=True,
                             dtype=np.float64, order="C")
        y = np.asarray(y, dtype=np.float64)
        check_x_magnitude(X)
        check_y_magnitude(y)
        check_regressor_memory(type(self).__name__, *X.shape, self.max_experts,
                               None if y.ndim == 1 else y.shape[1], self.expert,
                               expert_parameter="max_experts")
        cv = check_cv(self.cv, y, classifier=False)
        splits = list(cv.split(X, y, groups))
        scorer = check_scoring(self._mixture(1, routers[0], 1.0, None),
                               scoring=self.scoring)
        rng = check_random_state(self.random_state)
        # one seed for the paths of every split, one for the final fit
        path_seed, final_seed = rng.randint(np.iinfo(np.int32).max, size=2)

        candidates = [(r, T) for r in routers for T in temperatures]
        shape = (len(candidates), self.max_experts, len(splits))
        scores, train_losses = np.empty(shape), np.empty(shape)
        for j, (train, test) in enumerate(splits):
            X_train = np.ascontiguousarray(X[train])
            for c, (router, temperature) in enumerate(candidates):
                path_rng = np.random.RandomState(path_seed)
                path = self._path(X_train, y[train], router, temperature, path_rng)
                for k, reg in enumerate(path):
                    scores[c, k, j] = scorer(reg, X[test], y[test])
                    train_losses[c, k, j] = reg.loss_

        flat = scores.reshape(-1, len(splits))
        mean, std = flat.mean(axis=1), flat.std(axis=1)
        if not np.all(np.isfinite(mean)):
            raise ValueError(
                "Some test scores are not finite; check scoring and the data "
                f"(mean test scores: {mean})."
            )
        # the smallest number of experts, then the first candidate, on a tie
        order = np.lexsort((np.repeat(np.arange(len(candidates)), self.max_experts),
                            np.tile(np.arange(self.max_experts), len(candidates)),
                            -mean))
        best = int(order[0])
        c_best, k_best = divmod(best, self.max_experts)
        fitted = {"n_experts_": k_best + 1}
        router, temperature = candidates[c_best]
        fitted["router_"], fitted["temperature_"] = router, float(temperature)
        fitted["routers_"] = routers
        fitted["temperatures_"] = temperatures
        fitted["n_experts_path_"] = path_sizes = np.arange(1, self.max_experts + 1)
        fitted["score_path_"] = scores.reshape(len(routers), len(temperatures),
                                               self.max_experts, len(splits))
        fitted["best_score_"] = float(mean[best])
        ranks = np.empty(mean.size, dtype=np.int32)
        ranks[order] = np.arange(1, mean.size + 1)
        fitted["cv_results_"] = results = {
            "param_router": np.repeat(np.array(routers, dtype=object),
                                      len(temperatures) * self.max_experts),
            "param_temperature": np.tile(np.repeat(temperatures, self.max_experts),
                                         len(routers)),
            "param_n_experts": np.tile(path_sizes, len(candidates)),
            **{f"split{j}_test_score": flat[:, j] for j in range(len(splits))},
            "mean_test_score": mean,
            "std_test_score": std,
            "rank_test_score": ranks,
            **{f"split{j}_train_loss": train_losses.reshape(-1, len(splits))[:, j]
               for j in range(len(splits))},
        }
        if self.verbose:
            for r, T, k, m, s in zip(results["param_router"],
                                     results["param_temperature"],
                                     results["param_n_experts"], mean, std):
                print(f"[CosineMoECV] {r}, T={T:g}, {k} experts: "
                      f"test score {m:.5f} +- {s:.5f}")

        estimator = self._mixture(k_best + 1, router, float(temperature), int(final_seed))
        fitted["estimator_"] = estimator.fit(X, y)
        fitted["n_iter_"] = estimator.n_iter_
        return fitted

    def predict(self, X):
        """Predict with the final fit ``estimator_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, dtype=np.float64, order="C")
        return self.estimator_.predict(X)

    def score(self, X, y, sample_weight=None):
        """R² of the predictions, computed so that it cannot overflow for any finite ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        return r2_on_standardized_scale(y, self.predict(X), sample_weight)

    def _check_fitted_model(self):
        """Raise a ``ValueError`` unless the fitted attributes make a model (a loaded file)."""
        check_is_fitted(self, "estimator_")
        if not isinstance(self.estimator_, CosineMoERegressor):
            raise ValueError(
                "The loaded CosineMoERegressorCV is not a valid fitted model: its "
                f"estimator_ is a {type(self.estimator_).__name__}, not a "
                "CosineMoERegressor. The file may have been altered; do not use it."
            )
        self.estimator_._check_fitted_model()
        if self.estimator_.n_features_in_ != getattr(self, "n_features_in_", None):
            raise ValueError(
                "The loaded CosineMoERegressorCV is not a valid fitted model: "
                "its n_features_in_ differs from its estimator_'s. The file may have "
                "been altered; do not use it."
            )
