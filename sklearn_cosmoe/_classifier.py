"""scikit-learn classifier: a thin shell over the classifier's model and solver."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, validate_data

from ._base import MoEEstimatorMixin, blas_held
from ._memory import check_classifier_memory
from ._classifier_model import ClassifierParams, gates_and_log_proba
from ._classifier_objective import ClassifierObjective
from ._classifier_solver import DEFAULT_SOLVER, fit_from_data, fit_likelihood
from ._model import MoESpec
from ._routers import ROUTERS
from ._solvers import SOLVERS
from ._validation import (check_class_weight, check_label_types,
                          check_positive_total_weight, check_x_magnitude,
                          normalize_sample_weight)


class CosineMoEClassifier(MoEEstimatorMixin, ClassifierMixin, BaseEstimator):
    r"""Mixture of softmax experts with a (perturbed) cosine router.

    The class probabilities are a gated sum of ``n_experts`` multinomial
    logistic models,

    .. math::

        p(y = c \mid x) = \sum_{i=1}^{k} g_i(x)\,
                          \operatorname{softmax}(A_i x + b_i)_c ,

    with the gates ``g`` of :class:`~sklearn_cosmoe.CosineMoERegressor` (same routers,
    perturbations, temperature and top-K).  The fit minimises the weighted
    mean negative log-likelihood plus a ridge penalty, by Fisher scoring to
    a certified stationary point or by L-BFGS-B (user guide
    :ref:`classifier-solver`).  Binary problems use two classes of the same
    model.

    Put a :class:`~sklearn.preprocessing.StandardScaler` in front: cosine
    routing depends on where the origin is, and ``fit`` warns (once, a
    ``UserWarning``) about features that cosine routing cannot use, as the
    regressor does.

    Parameters
    ----------
    n_experts : int, default=4
        Number of experts ``k``.
    router : {"perturbed_cosine", "cosine", "linear"}, default="perturbed_cosine"
        Router scores, as for :class:`~sklearn_cosmoe.CosineMoERegressor`.
    tau1 : float, default=1.0
        Added to :math:`\|\beta_{1i}\|` by the perturbed cosine router (> 0 there).
    tau2 : float, default=1.0
        Added to :math:`\|x\|` by the perturbed cosine router.
    temperature : float, default=1.0
        ``T``: the cosine term is divided by it.
    top_k : int or None, default=None
        ``None`` for dense gates; an int ``K < n_experts`` keeps the ``K``
        largest scores (the fit first fits the dense mixture).
    alpha : float, default=1e-4
        Ridge penalty :math:`\frac{\alpha}{2}\|A\|_F^2` on the expert
        coefficients (and on the gate coefficients under the linear router).
    solver : {"auto", "lbfgs", "gauss-newton"}, default="auto"
        ``"gauss-newton"``: Levenberg-Marquardt on the generalized
        Gauss-Newton matrix of the negative log-likelihood, the Fisher
        matrix (Fisher scoring), ended only where the decrease its model
        still promises is at most ``tol`` times the objective; ``"lbfgs"``:
        L-BFGS-B; ``"auto"``: L-BFGS-B, many times faster for no worse
        held-out log-loss on the data measured (:ref:`classifier-solver`).
    max_iter : int, default=500
        Maximum number of iterations of the solver, screening of the starts
        included.
    tol : float, default=1e-6
        Relative tolerance of the solver's convergence test, as
        :class:`CosineMoERegressor`'s.
    n_init : int, default=1
        Number of fits from the data, each the best of three screened
        k-means starts (:ref:`classifier-solver`); the fit with the lowest
        objective is kept.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``: a dict
        maps classes of ``y`` to finite weights >= 0 (classes it omits
        weigh 1); ``"balanced"`` weights each class by ``n_samples /
        (n_classes * count)``.
    random_state : int, RandomState instance or None, default=None
        Seeds the starts.  A given seed gives bit-identical fits whatever the
        number of threads.
    warm_start : bool, default=False
        Start from the previous fit's parameters (a single start).  The
        previous fit must have the same ``n_experts``, classes, number of
        features and ``router``.
    verbose : int, default=0
        Print the objective after each run of the solver.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    gate_coef_ : ndarray of shape (n_experts, n_features)
    gate_intercept_ : ndarray of shape (n_experts,)
    expert_coef_ : ndarray of shape (n_experts, n_classes, n_features)
    expert_intercept_ : ndarray of shape (n_experts, n_classes)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when ``X`` has feature names that are all strings.
    n_iter_ : int
        Iterations of the kept fit, its start's screening included; at least 1.
    loss_ : float
        Final training objective of the kept fit.
    init_losses_ : ndarray of shape (n_init,)
        Final training objective of each fit.
    converged_ : bool
        Whether the solver's convergence test (``tol``) passed for the kept
        fit; a fit that stopped otherwise warns with a
        :class:`~sklearn.exceptions.ConvergenceWarning`.
    stationarity_ : float
        The decrease the Newton-type model still promises where the kept fit
        stopped, relative to the objective (what the convergence test of
        ``"gauss-newton"`` reads); NaN for an L-BFGS-B fit.
    router_, tau1_, tau2_, temperature_, top_k_
        The hyperparameters of the fit that shape its predictions: predict
        reads these, so ``set_params`` changes only the next fit.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_cosmoe import CosineMoEClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(),
    ...                     CosineMoEClassifier(n_experts=2, random_state=0))
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    """

    _parameter_constraints = {
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "router": [StrOptions(set(ROUTERS))],
        "tau1": [Interval(Real, 0, None, closed="left")],
        "tau2": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "top_k": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"auto", *SOLVERS})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(self, *, n_experts=4, router="perturbed_cosine", tau1=1.0, tau2=1.0,
                 temperature=1.0, top_k=None, alpha=1e-4, solver="auto", max_iter=500,
                 tol=1e-6, n_init=1, class_weight=None, random_state=None,
                 warm_start=False, verbose=0):
        self.n_experts = n_experts
        self.router = router
        self.tau1 = tau1
        self.tau2 = tau2
        self.temperature = temperature
        self.top_k = top_k
        self.alpha = alpha
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.class_weight = class_weight
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # the experts are softmax models: no expert hyperparameter
    _FITTED_HYPERPARAMETERS = ("router", "tau1", "tau2", "temperature", "top_k")

    def _spec(self):
        return MoESpec(router=self.router, tau1=self.tau1, tau2=self.tau2,
                       temperature=self.temperature, top_k=self.top_k, alpha=self.alpha)

    def _fitted_spec(self):
        """The spec of the fitted model, from its fitted attributes only."""
        return MoESpec(router=self.router_, tau1=self.tau1_, tau2=self.tau2_,
                       temperature=self.temperature_, top_k=self.top_k_)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture by maximum likelihood.

        A fit that fails leaves the estimator as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (strings or numbers), at least two distinct ones.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative finite weights, not all zero; integer weights give
            the same fit as repeated rows.

        Returns
        -------
        self : CosineMoEClassifier
        """
        return self._fit_or_keep(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, order="C")
        check_label_types(y)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(
                "CosineMoEClassifier needs samples of at least 2 classes in the "
                f"data; got 1 class: {classes[0]!r}."
            )
        check_x_magnitude(X)
        check_class_weight(self.class_weight, classes)
        solver = self._solver()
        check_classifier_memory(type(self).__name__, *X.shape, self.n_experts, classes.size,
                                solver)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        if self.class_weight is not None:
            weights = compute_class_weight(self.class_weight, classes=classes, y=y)
            sample_weight = sample_weight * weights[y_index]
        check_positive_total_weight(sample_weight)
        sample_weight = normalize_sample_weight(sample_weight)
        y_index = y_index.astype(np.int64)

        spec = self._spec()
        data = ClassifierObjective(X, y_index, sample_weight, classes.size)
        options = dict(solver=solver, max_iter=self.max_iter, tol=self.tol,
                       verbose=self.verbose)
        if self.warm_start and hasattr(self, "gate_coef_"):
            start = self._warm_start_params(classes, X.shape[1])
            results = [fit_likelihood(data, start, spec, **options)]
        else:
            rng = check_random_state(self.random_state)
            # a generator: each fit draws its starts just before it runs
            results = (fit_from_data(data, spec, self.n_experts, rng, **options)
                       for _ in range(self.n_init))
        self._warn_if_unscaled(X, sample_weight)
        best, best_loss, losses = self._best_of(results)
        if not (np.isfinite(best_loss) and np.all(np.isfinite(best.params.to_vector()))):
            raise ValueError(
                "The fit diverged (non-finite objective); scale X (e.g. with "
                "StandardScaler) or increase alpha."
            )
        self._warn_if_not_converged(best)
        params = best.params
        return {"classes_": classes, "gate_coef_": params.gate_coef.copy(),
                "gate_intercept_": params.gate_intercept.copy(),
                "expert_coef_": params.expert_coef.copy(),
                "expert_intercept_": params.expert_intercept.copy(),
                "loss_": best_loss, "n_iter_": best.n_iter,
                "converged_": best.converged, "stationarity_": best.stationarity,
                "init_losses_": losses,
                **self._fitted_hyperparameters()}

    def _solver(self):
        """The minimiser: ``solver``, or for ``"auto"``
        :data:`~sklearn_cosmoe._classifier_solver.DEFAULT_SOLVER`."""
        return DEFAULT_SOLVER if self.solver == "auto" else self.solver

    def _warm_start_params(self, classes, n_features):
        shape = (self.n_experts, classes.size, n_features)
        if (self.expert_coef_.shape != shape
                or not np.array_equal(self.classes_, classes)
                or self.router_ != self.router):
            raise ValueError(
                "warm_start=True needs the same n_experts, classes, number of "
                "features and router as the previous fit: it had (n_experts, "
                f"n_classes, n_features) = {self.expert_coef_.shape} and "
                f"router={self.router_!r}, this fit has {shape} and "
                f"router={self.router!r}. Set warm_start=False to fit from scratch."
            )
        return self._params()

    def _params(self):
        return ClassifierParams(self.gate_coef_.copy(), self.gate_intercept_.copy(),
                                self.expert_coef_.copy(), self.expert_intercept_.copy())

    def _gates_and_log_proba(self, X):
        return gates_and_log_proba(self._validate_X(X), self._params(),
                                   self._fitted_spec())

    @blas_held
    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, computed by log-sum-exp.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._gates_and_log_proba(X)[1]

    def predict_proba(self, X):
        """Class probabilities ``p(y = c | x)``; rows sum to 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        proba = np.exp(self.predict_log_proba(X))
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """The most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        log_proba = self.predict_log_proba(X)  # checks that the estimator is fitted
        return self.classes_[np.argmax(log_proba, axis=1)]

    @blas_held
    def predict_gates(self, X):
        """Gate weights ``g(x)``: rows sum to 1, zeros outside the top K.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_experts)
        """
        return self._gates_and_log_proba(X)[0]
