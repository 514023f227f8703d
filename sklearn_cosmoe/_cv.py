"""The mixture chosen by cross-validation: paths of grown mixtures, warm across a grid."""

import warnings
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import fit_or_keep, r2_on_standardized_scale
from ._cv_fits import PathScore, as_fitted
from ._cv_path import (ROWS_PER_PARAMETER, FoldPath, choose, cv_results, expert_ceiling,
                       grid_points)
from ._estimator import CosineMoERegressor
from ._memory import check_regressor_memory
from ._experts import EXPERTS
from ._routers import ROUTERS
from ._validation import (check_candidates, check_no_booleans, check_numeric_target,
                          check_x_magnitude, check_y_magnitude)

# hyperparameters that must be numbers, never booleans
_NUMERIC_PARAMETERS = ("max_experts", "patience", "max_iter", "tol", "n_init", "n_jobs")


#: Experts the path adds without a change of its choice before it stops.
PATIENCE = 3


def _step(path, X, y, score, fit_params):
    return path.step(X, y, score, fit_params)


class CosineMoERegressorCV(RegressorMixin, BaseEstimator):
    """Mixture of experts with its number of experts, router, temperature,
    perturbation and ridge penalty chosen by cross-validation.

    In the way of :class:`~sklearn.linear_model.LassoCV`: on each training
    fold, for each router of ``router`` and each of the ``temperatures``,
    mixtures of ``1, 2, ...`` experts are grown one expert at a time (the
    expert that fits worst split in two, :ref:`solver`), and at each number
    of experts carried warm along the grid of ``alphas`` x ``tau1s`` x
    ``tau2s`` (each fit started from its neighbour's optimum, :ref:`cv-path`).
    Each mixture is scored on the fold's test rows.  The path grows until the
    chosen number of experts has not changed for ``patience`` experts, or up
    to ``max_experts``.  The candidate with the best mean score is then fitted on
    all the data by :class:`CosineMoERegressor` (its default fit), which
    predicts.

    Put a :class:`~sklearn.preprocessing.StandardScaler` in front, as for
    :class:`CosineMoERegressor`.

    Parameters
    ----------
    max_experts : int or None, default=None
        Largest number of experts of the path.  None is the data's ceiling:
        the most experts with at least ten training rows per parameter on
        every fold (:data:`~sklearn_cosmoe._cv_path.ROWS_PER_PARAMETER`).  A
        warning says when the best number is the ceiling.
    patience : int, default=3
        The path stops once this many more experts have not changed the
        chosen number of experts (``n_experts_``, chosen on the path so far).
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
    tau1s, tau2s : array-like of float, default=(1.0,)
        Candidate perturbations of the perturbed cosine router (the other
        routers have none).  Under the default solver a fit's model does not
        depend on ``tau1``, only its parametrisation (:ref:`cv-path`).
    alphas : array-like of float, default=(0.1, 1.0, 10.0)
        Candidate ridge penalties of the experts on the scale of
        :class:`~sklearn.linear_model.Ridge`'s ``alpha`` (a penalty on sums
        over the rows; the default is :class:`~sklearn.linear_model.RidgeCV`'s):
        a mixture fitted on ``n`` rows gets :class:`CosineMoERegressor`'s
        ``alpha = alphas / n``, so that the one-expert mixture is
        ``Ridge(alpha)``, on the folds as on all the data.
    expert, max_iter, tol : see :class:`CosineMoERegressor`
        Shared by every mixture of the paths and the final fit.
    n_init : int, default=3
        Starts of the final fit (:class:`CosineMoERegressor`'s ``n_init``):
        one fit against the search's hundreds, where a local minimum would
        cost what the search found.  The mixture grown on all the rows along
        the chosen candidate's path is one more start, kept when its objective
        is lower.
    n_jobs : int or None, default=None
        Paths (folds x routers x temperatures) fitted in parallel by joblib;
        None is 1 unless in a :func:`joblib.parallel_backend` context.  The
        results do not depend on it.
    random_state : int, RandomState instance or None, default=None
        Seeds the path's splits of experts and the final fit.
    verbose : int, default=0
        Print the best mean test score at each number of experts.

    Attributes
    ----------
    n_experts_ : int
        The chosen number of experts: that of the best mean test score,
        unless fewer experts trail it by at most one standard error of the
        per-split differences (then the fewest such;
        :func:`~sklearn_cosmoe._cv_path.choose`).
    router_ : str
        The router of the chosen candidate, as are the next four.
    temperature_ : float
    tau1_, tau2_ : float
        The best candidate's perturbations (the first of ``tau1s`` and
        ``tau2s`` for a router without them).
    alpha_ : float
        The chosen ridge penalty, on Ridge's scale: ``estimator_.alpha`` is
        ``alpha_ / n_samples``.
    estimator_ : CosineMoERegressor
        The final fit, on all the data, of the best candidate.
    max_experts_ : int
        The ceiling of the path: ``max_experts``, or the data's.
    n_experts_path_ : ndarray of shape (n_steps,)
        ``1, 2, ...``: the numbers of experts fitted before the path stopped.
    routers_ : tuple of str
    temperatures_, tau1s_, tau2s_, alphas_ : ndarray
        The candidates, in the order given.
    score_path_ : ndarray of shape (n_candidates, n_steps, n_splits)
        Test score of each candidate's mixture of each number of experts on
        each split; the candidates in the order of ``cv_results_``.
    best_score_ : float
        Mean test score of the best candidate.
    cv_results_ : dict of ndarrays
        One entry per candidate and number of experts, as in
        :class:`~sklearn.model_selection.GridSearchCV`: ``param_router``,
        ``param_temperature``, ``param_alpha``, ``param_tau1``,
        ``param_tau2`` (masked for routers without perturbations),
        ``param_n_experts``, ``params``, ``split{i}_test_score``,
        ``mean_test_score``, ``std_test_score``, ``rank_test_score`` and
        ``split{i}_train_loss`` (the training objective).  Nested in that
        order: router, temperature, alpha, tau1, tau2 (the last candidate
        varying fastest), then the number of experts.
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
    ...     max_experts=3, cv=3, temperatures=[0.2], alphas=[0.1],
    ...     random_state=0)).fit(X, y)
    >>> reg[-1].n_experts_ >= 2
    True
    """

    _parameter_constraints = {
        "max_experts": [Interval(Integral, 1, None, closed="left"), None],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "router": [StrOptions(set(ROUTERS)), tuple, list],
        "temperatures": ["array-like"],
        "tau1s": ["array-like"],
        "tau2s": ["array-like"],
        "alphas": ["array-like"],
        "expert": [StrOptions(set(EXPERTS))],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        max_experts=None,
        patience=PATIENCE,
        cv=5,
        scoring=None,
        temperatures=(1.0, 0.3, 0.1),
        router=("perturbed_cosine", "cosine", "linear"),
        tau1s=(1.0,),
        tau2s=(1.0,),
        alphas=(0.1, 1.0, 10.0),
        expert="linear",
        max_iter=1000,
        tol=1e-6,
        n_init=3,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.max_experts = max_experts
        self.patience = patience
        self.cv = cv
        self.scoring = scoring
        self.temperatures = temperatures
        self.router = router
        self.tau1s = tau1s
        self.tau2s = tau2s
        self.alphas = alphas
        self.expert = expert
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.n_jobs = n_jobs
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

    def _mixture(self, n_experts, router, temperature, tau1, tau2, alpha,
                 random_state=None):
        return CosineMoERegressor(
            n_experts=n_experts, router=router, tau1=tau1, tau2=tau2,
            temperature=temperature, expert=self.expert, alpha=alpha,
            max_iter=self.max_iter, tol=self.tol, n_init=self.n_init,
            random_state=random_state,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, groups=None):
        """Fit the paths on each training fold, choose the best candidate, refit.

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
        temperatures = check_candidates("temperatures", self.temperatures, positive=True)
        tau1s = check_candidates("tau1s", self.tau1s)
        tau2s = check_candidates("tau2s", self.tau2s)
        alphas = check_candidates("alphas", self.alphas)
        check_numeric_target(y)
        X, y = validate_data(self, X, y, y_numeric=True, multi_output=True,
                             dtype=np.float64, order="C")
        y = np.asarray(y, dtype=np.float64)
        check_x_magnitude(X)
        check_y_magnitude(y)
        cv = check_cv(self.cv, y, classifier=False)
        splits = list(cv.split(X, y, groups))
        n_outputs = None if y.ndim == 1 else y.shape[1]
        template = self._mixture(1, routers[0], temperatures[0], tau1s[0], tau2s[0],
                                 alphas[0] / len(y))
        template._check_params()
        base_spec = template._spec(n_outputs)
        ceiling = self.max_experts or expert_ceiling(
            min(len(train) for train, _ in splits), X.shape[1], base_spec)
        check_regressor_memory(type(self).__name__, *X.shape, ceiling, n_outputs,
                               self.expert, expert_parameter="max_experts")
        scorer = check_scoring(template, scoring=self.scoring)
        rng = check_random_state(self.random_state)
        # one seed for the paths of every split, one for the final fit
        path_seed, final_seed = rng.randint(np.iinfo(np.int32).max, size=2)

        # candidates: (router, temperature, (tau1, tau2, alpha)) in cv_results_ order
        candidates, paths, path_of = [], [], []
        for router in routers:
            points, order = grid_points(router, tau1s, tau2s, alphas)
            for T in temperatures:
                spec = replace(base_spec, router=router, temperature=float(T))
                first = len(candidates)
                candidates.extend((router, float(T), point) for point in points)
                for train, test in splits:
                    path_of.append(first)
                    paths.append(FoldPath(train, test, spec, points, order,
                                          np.random.RandomState(path_seed)))
        shared = {"expert": self.expert, "max_iter": self.max_iter, "tol": self.tol,
                  "n_init": self.n_init}
        score = PathScore(scorer, X, y, shared)
        fit_params = {"max_iter": self.max_iter, "tol": self.tol}
        n_splits = len(splits)
        steps_scores, steps_losses = [], []
        with Parallel(n_jobs=self.n_jobs) as parallel:
            for k in range(1, ceiling + 1):
                out = parallel(delayed(_step)(path, X, y, score, fit_params)
                               for path in paths)
                scores = np.empty((len(candidates), n_splits))
                losses = np.empty_like(scores)
                for p, (path, s, l) in enumerate(out):
                    paths[p] = path
                    c, j = path_of[p], p % n_splits
                    scores[c:c + len(s), j], losses[c:c + len(s), j] = s, l
                steps_scores.append(scores)
                steps_losses.append(losses)
                mean_k = scores.mean(axis=1)
                if not np.all(np.isfinite(mean_k)):
                    raise ValueError(
                        "Some test scores are not finite; check scoring and the data "
                        f"(mean test scores with {k} experts: {mean_k})."
                    )
                # the choice so far: the path stops once it has not moved for
                # `patience` experts (an improvement within noise does not move it)
                chosen_k = choose(np.stack(steps_scores, axis=1))[1] + 1
                if self.verbose:
                    print(f"[CosineMoECV] {k} experts: best mean test score "
                          f"{mean_k.max():.5f}; {chosen_k} experts chosen so far")
                if k - chosen_k >= self.patience:
                    break
        n_steps = len(steps_scores)
        score_path = np.stack(steps_scores, axis=1)  # (candidate, k, split)
        flat = score_path.reshape(-1, n_splits)
        mean, std = flat.mean(axis=1), flat.std(axis=1)
        c_best, k_best = choose(score_path)
        order = np.lexsort((np.arange(mean.size), -mean))
        router, temperature, (tau1, tau2, alpha) = candidates[c_best]
        if k_best + 1 == ceiling:
            warnings.warn(
                f"The best number of experts, {ceiling}, is the largest the path tried "
                + ("(max_experts); raise max_experts to try more."
                   if self.max_experts else
                   f"(the data's ceiling of {ROWS_PER_PARAMETER} training rows per "
                   f"parameter); pass max_experts > {ceiling} to try more."),
                UserWarning,
            )
        ranks = np.empty(mean.size, dtype=np.int32)
        ranks[order] = np.arange(1, mean.size + 1)
        fitted = {
            "n_experts_": k_best + 1, "router_": router, "temperature_": temperature,
            "tau1_": tau1, "tau2_": tau2, "alpha_": alpha, "max_experts_": ceiling,
            "n_experts_path_": np.arange(1, n_steps + 1), "routers_": routers,
            "temperatures_": temperatures, "tau1s_": tau1s, "tau2s_": tau2s,
            "alphas_": alphas, "score_path_": score_path, "best_score_": float(mean[c_best * n_steps + k_best]),
            "cv_results_": cv_results(candidates, n_steps, flat, mean, std, ranks,
                                       np.stack(steps_losses, axis=1).reshape(-1, n_splits)),
        }
        estimator = self._mixture(k_best + 1, router, temperature, tau1, tau2,
                                  alpha / len(y), int(final_seed)).fit(X, y)
        # the path grown on all the rows, the way the scores were earned; its
        # fit wins where it ends lower than the default fit's fresh starts
        path = FoldPath(np.arange(len(y)), None, replace(
            base_spec, router=router, temperature=temperature), [(tau1, tau2, alpha)],
            [0], np.random.RandomState(path_seed))
        for _ in range(k_best + 1):
            path, _, (loss,) = path.step(X, y, lambda *args: np.nan, fit_params)
        if loss < estimator.loss_:
            grown = as_fitted(path.last, replace(
                base_spec, router=router, temperature=temperature, tau1=tau1, tau2=tau2,
                alpha=alpha / len(y)), *path.target_scale, X.shape[1], shared)
            grown.set_params(warm_start=True, random_state=int(final_seed))
            grown.fit(X, y)  # from that point: the statistics of a fit
            estimator = grown.set_params(warm_start=False)
        fitted["estimator_"] = estimator
        fitted["n_iter_"] = estimator.n_iter_
        return fitted

    def predict(self, X, return_std=False):
        """Predict with the final fit ``estimator_``, and with ``return_std`` its
        predictive standard deviation (:ref:`uncertainty`).

        The standard deviation is that of the final fit at its chosen
        hyperparameters; it does not count the uncertainty of the choice.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        y_std : ndarray of the same shape
            Only with ``return_std=True``.
        """
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, dtype=np.float64, order="C")
        return self.estimator_.predict(X, return_std=return_std)

    def predict_interval(self, X, coverage=0.95):
        """Prediction intervals of the final fit ``estimator_`` (:ref:`uncertainty`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float, default=0.95
            The intervals' probability, strictly between 0 and 1.

        Returns
        -------
        lower, upper : ndarrays of the shape of ``predict(X)``
        """
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, dtype=np.float64, order="C")
        return self.estimator_.predict_interval(X, coverage)

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

