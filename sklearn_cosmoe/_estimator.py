"""scikit-learn estimator: a thin shell over the model and its solver."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, _num_samples, validate_data

from . import _uncertainty
from ._base import MoEEstimatorMixin, any_dask, blas_held, lazy_on_dask
from ._criteria import log_likelihood, n_criterion_parameters
from ._experts import EXPERTS
from ._memory import check_regressor_memory
from ._model import MoEParams, MoESpec, gates_and_experts, predict
from ._routers import ROUTERS
from ._objective import ArrayObjective
from ._solver import fit_from_data, fit_least_squares
from ._solvers import SOLVERS
from ._validation import (check_numeric_target, check_positive_total_weight,
                          check_warm_start, check_x_magnitude, check_y_magnitude,
                          normalize_sample_weight,
                          params_on_target_scale, warm_start_on_standardized_scale,
                          standardize_target)

_PARAMETER_ATTRIBUTES = ("gate_coef_", "gate_intercept_", "expert_coef_",
                         "expert_intercept_", "output_scale_", "output_intercept_")


class CosineMoERegressor(MoEEstimatorMixin, RegressorMixin, BaseEstimator):
    r"""Mixture of experts with a (perturbed) cosine router, fitted by least squares.

    The prediction is a gated sum of ``n_experts`` small models,

    .. math::

        f(x) = c + s \sum_{i=1}^{k} g_i(x)\, h(a_i^\top x + b_i),
        \qquad g(x) = \operatorname{softmax}(s_1(x), \dots, s_k(x)),

    with router scores

    .. math::

        s_i(x) = \frac{\beta_{1i}^\top x}{(\|\beta_{1i}\| + \tau_1)(\|x\| + \tau_2)}
                 \frac{1}{T} + \beta_{0i}

    for the default perturbed cosine router (Nguyen et al., ICLR 2025).  The
    plain cosine router drops ``tau1`` and ``tau2``; the linear router uses
    :math:`\beta_{1i}^\top x / T + \beta_{0i}`.

    Cosine routing depends on where the origin is: put a
    :class:`~sklearn.preprocessing.StandardScaler` in front.  Under the cosine
    routers, ``fit`` warns (once, a ``UserWarning``) when the rows of ``X`` all
    point nearly the same way, when the columns' scales differ by more than
    a factor 1000, or (perturbed cosine) when the rows are much shorter than
    ``tau2``.  The linear router is not checked: its gates are the same
    family under any affine map of the columns.

    Parameters
    ----------
    n_experts : int, default=4
        Number of experts ``k``.
    router : {"perturbed_cosine", "cosine", "linear"}, default="perturbed_cosine"
        Router scores, as in the formulas above.
    tau1 : float, default=1.0
        Added to :math:`\|\beta_{1i}\|` by the perturbed cosine router; must be
        > 0 there (ignored by the other routers).  Any positive value gives the
        same family of gates (:math:`\beta_{1i}/(\|\beta_{1i}\|+\tau_1)` covers
        the open unit ball); 1.0 keeps the gate parameters of order one.
    tau2 : float, default=1.0
        Added to :math:`\|x\|` by the perturbed cosine router (ignored by the
        other routers).  It does change the model: rows near the origin get
        softer gates instead of an arbitrary direction.  1.0 is small against
        the norm :math:`\sqrt{d}` of a standardized row and removes the
        singularity at zero.
    temperature : float, default=1.0
        ``T``: the cosine term is divided by it.  A cosine term is at most 1
        in size, so gates can be sharp only with ``T < 1``; 1.0 is the
        paper's model.
    expert : {"linear", "tanh", "sigmoid", "gelu"}, default="linear"
        Expert ``h``: identity (linear experts) or a feed-forward unit.  For the
        feed-forward experts the output scale ``s`` and intercept ``c`` are
        learned, so they fit targets of any scale and offset; for linear
        experts ``s = 1`` and ``c = 0``.
    top_k : int or None, default=None
        ``None`` for dense gates; an int ``K < n_experts`` takes the softmax
        over the ``K`` largest scores and sets the other gates to 0.
    alpha : float, default=1e-4
        Ridge penalty :math:`\frac{\alpha}{2}\|A\|_F^2` on the expert
        coefficients (and on the gate coefficients under the linear router),
        on the scale of the standardized target.  Keeps over-specified fits
        from drifting to huge, saturated weights.
    solver : {"auto", "lbfgs", "gauss-newton"}, default="auto"
        Newton-type steps ended only at a certified stationary point, or
        L-BFGS-B (:ref:`solver`); ``"auto"``: the first for linear experts.
    max_iter : int, default=1000
        Maximum number of iterations per run (per start; with top-K gates,
        of the dense and of the sparse run).
    tol : float, default=1e-6
        Relative tolerance of the solver's convergence test (:ref:`solver`).
    n_init : int, default=1
        Number of repetitions of the default fit, itself the best of three
        k-means starts (:ref:`solver`); the fit with the lowest training
        objective is kept.
    random_state : int, RandomState instance or None, default=None
        Seeds the starts.  A given seed gives bit-identical fits whatever the
        number of threads.
    warm_start : bool, default=False
        Start from the previous fit's parameters (a single start); it must
        have the same ``n_experts``, features, ``router`` and ``expert``.
    verbose : int, default=0
        Print the objective after each run of the solver.

    Attributes
    ----------
    gate_coef_ : ndarray of shape (n_experts, n_features)
        :math:`\beta_1`.
    gate_intercept_ : ndarray of shape (n_experts,)
        :math:`\beta_0`.
    expert_coef_ : ndarray of shape (n_experts, n_features) or (n_experts, n_outputs, n_features)
        :math:`a`; with a 2-d ``y``, ``expert_coef_[i, j]`` is expert ``i``'s
        coefficients for output ``j`` (:ref:`multi-output`).
    expert_intercept_ : ndarray of shape (n_experts,) or (n_experts, n_outputs)
        :math:`b`.
    output_scale_ : float or ndarray of shape (n_outputs,)
        :math:`s` (1.0 for linear experts).
    output_intercept_ : float or ndarray of shape (n_outputs,)
        :math:`c` (0.0 for linear experts).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when ``X`` has feature names that are all strings.
    n_iter_ : int
        Iterations of the kept fit, screening included (its dense and sparse
        runs together with top-K gates); at least 1.
    loss_ : float
        Final training objective of the kept start: half the weighted mean
        squared error of the standardized target (summed over the outputs
        of a 2-d ``y``, each standardized), plus the ridge term.
    init_losses_ : ndarray of shape (n_init,)
        Final training objective of each repetition.
    converged_ : bool
        Whether the solver's convergence test (``tol``) passed for the kept
        fit within ``max_iter``; a fit that stopped otherwise warns with a
        :class:`~sklearn.exceptions.ConvergenceWarning` that says why.
    stationarity_ : float
        The decrease the Gauss-Newton model still predicts where the kept
        fit stopped, relative to the objective (what the convergence test
        of ``"gauss-newton"`` reads); NaN for an L-BFGS-B fit.
    noise_variance_ : float or ndarray of shape (n_outputs,)
        Weighted mean squared residual with ``n / (n - p)`` degrees of freedom
        (:ref:`uncertainty`); NaN where no covariance could be estimated.
    router_, expert_, tau1_, tau2_, temperature_, top_k_
        The hyperparameters of the fit that shape its predictions: predict
        reads these, so ``set_params`` changes only the next fit.

    Notes
    -----
    The experts are numbered by decreasing total gate weight on the training
    rows.  ``fit`` also estimates the parameters' covariance, which
    ``predict(X, return_std=True)``, :meth:`predict_interval` and
    :func:`sklearn_cosmoe.inference.summary` read (:ref:`uncertainty`).
    The target is standardized for the fit (weighted mean and standard
    deviation) and the parameters are mapped back, so the attributes give the
    prediction on the original scale directly::

        f(x) = output_intercept_ + output_scale_
               * sum_i predict_gates(x)[i] * h(expert_coef_[i] @ x + expert_intercept_[i])

    References
    ----------
    H. Nguyen, P. Akbarian, T. Pham, T. Nguyen, S. Zhang, N. Ho.  Statistical
    advantages of perturbing cosine router in mixture of experts.  ICLR 2025.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_cosmoe import CosineMoERegressor
    >>> from sklearn_cosmoe.datasets import make_cosine_moe
    >>> X, y, _ = make_cosine_moe(500, n_features=2, n_experts=2, temperature=0.2,
    ...                           noise=0.05, random_state=0)
    >>> reg = make_pipeline(StandardScaler(),
    ...                     CosineMoERegressor(n_experts=2, temperature=0.2, random_state=0))
    >>> reg.fit(X, y).score(X, y) > 0.95
    True
    """

    _parameter_constraints = {
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "router": [StrOptions(set(ROUTERS))],
        "tau1": [Interval(Real, 0, None, closed="left")],
        "tau2": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "expert": [StrOptions(set(EXPERTS))],
        "top_k": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"auto", *SOLVERS})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        n_experts=4,
        router="perturbed_cosine",
        tau1=1.0,
        tau2=1.0,
        temperature=1.0,
        expert="linear",
        top_k=None,
        alpha=1e-4,
        solver="auto",
        max_iter=1000,
        tol=1e-6,
        n_init=1,
        random_state=None,
        warm_start=False,
        verbose=0,
    ):
        self.n_experts = n_experts
        self.router = router
        self.tau1 = tau1
        self.tau2 = tau2
        self.temperature = temperature
        self.expert = expert
        self.top_k = top_k
        self.alpha = alpha
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _solver(self):
        return None if self.solver == "auto" else self.solver  # None: the default

    def _spec(self, n_outputs=None):
        return MoESpec(router=self.router, expert=self.expert, tau1=self.tau1,
                       tau2=self.tau2, temperature=self.temperature,
                       top_k=self.top_k, alpha=self.alpha, n_outputs=n_outputs)

    def _fitted_spec(self):
        """The spec of the fitted model, from its fitted attributes only (its number
        of outputs included): ``set_params`` without a fit changes no prediction."""
        coef = self.expert_coef_
        return MoESpec(router=self.router_, expert=self.expert_, tau1=self.tau1_,
                       tau2=self.tau2_, temperature=self.temperature_, top_k=self.top_k_,
                       n_outputs=None if coef.ndim == 2 else coef.shape[1])

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture by least squares.

        A fit that fails (an error, or an interruption) leaves the estimator
        as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Entries of absolute value at most 1e100 (the largest at least
            1e-100 unless ``X`` is zero).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Finite numbers of absolute value at most 1e306.  The target is
            standardized for the fit (each output on its own), so its scale
            does not matter as long as the fitted parameters on its scale do
            not overflow (an error says so).  A 2-d ``y`` fits shared gates and experts with one output
            per column (:ref:`multi-output`).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative finite weights, not all zero; integer weights give
            the same fit as repeated rows.

        Returns
        -------
        self : CosineMoERegressor
        """
        return self._fit_or_keep(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        """Everything ``fit`` computes, as a dict of attributes; sets none but
        those of ``validate_data``."""
        self._check_params()
        if any_dask(X, y, sample_weight):
            from ._dask import first_chunk, fit_inputs

            data, y_mean, y_scale = fit_inputs(self, X, y, sample_weight)
            # the rows stay on the workers, in chunks: what the client holds counts
            check_regressor_memory(type(self).__name__, 0, data.n_features,
                                   self.n_experts, None if np.ndim(y_mean) == 0
                                   else len(y_mean), self.expert, self.solver)
            return self._fit_data(data, y_mean, y_scale, *first_chunk(data))
        check_numeric_target(y)
        X, y = validate_data(self, X, y, y_numeric=True, multi_output=True,
                             dtype=np.float64, order="C")
        y = np.asarray(y, dtype=np.float64)
        check_x_magnitude(X)
        check_y_magnitude(y)
        check_regressor_memory(type(self).__name__, *X.shape, self.n_experts,
                               None if y.ndim == 1 else y.shape[1], self.expert, self.solver)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        check_positive_total_weight(sample_weight)
        sample_weight = normalize_sample_weight(sample_weight)
        target, y_mean, y_scale = standardize_target(y, sample_weight)
        data = ArrayObjective(X, target, sample_weight)
        return self._fit_data(data, y_mean, y_scale, X, sample_weight)

    def _fit_data(self, data, y_mean, y_scale, X_check, weight_check):
        """The fit on the objective ``data`` of the standardized target.

        ``X_check`` and ``weight_check`` (all the rows, or a sample of them)
        go to the check for unscaled features.  ``y_mean`` and ``y_scale`` are
        arrays with one entry per output for a 2-d ``y``.
        """
        spec = self._spec(None if np.ndim(y_mean) == 0 else len(y_mean))
        warm = self.warm_start and hasattr(self, "gate_coef_")
        if warm:
            start = self._warm_start_params(data.n_features, spec, y_mean, y_scale)
            results = [fit_least_squares(data, start, spec, solver=self._solver(),
                                         max_iter=self.max_iter, tol=self.tol,
                                         verbose=self.verbose)]
        else:
            rng = check_random_state(self.random_state)
            # a generator: each start is drawn just before it is fitted
            results = (fit_from_data(data, spec, self.n_experts, rng,
                                     solver=self._solver(), max_iter=self.max_iter,
                                     tol=self.tol,
                                     verbose=self.verbose)
                       for _ in range(self.n_init))
        self._warn_if_unscaled(X_check, weight_check)
        best, loss, losses = self._best_of(results)
        params = best.params
        if not (np.isfinite(loss) and np.all(np.isfinite(params.to_vector(spec)))):
            raise ValueError(
                "The fit diverged (non-finite objective); scale X (e.g. with "
                "StandardScaler) or increase alpha."
            )
        with np.errstate(over="ignore"):  # experts in canonical order, their covariance
            params, statistics, noise = _uncertainty.fit_statistics(data, params, spec,
                                                                    y_scale)
            fitted = params_on_target_scale(params, y_mean, y_scale, self.expert)
        if not all(np.all(np.isfinite(value)) for value in fitted.values()):
            raise ValueError(
                "The fitted parameters overflow on the scale of y (mean "
                f"{np.max(np.abs(y_mean)):.3g}, standard deviation {np.max(y_scale):.3g}"
                f"{', the largest over the outputs' if np.ndim(y_mean) else ''}); "
                "scale y down first."
            )
        self._warn_if_not_converged(best)
        fitted.update(loss_=loss, n_iter_=best.n_iter, converged_=best.converged,
                      stationarity_=best.stationarity, _covariance=statistics,
                      init_losses_=losses, noise_variance_=noise,
                      **self._fitted_hyperparameters())
        return fitted

    def _warm_start_params(self, n_features, spec, y_mean, y_scale):
        """The previous fit's parameters as a start, after checking they fit."""
        check_warm_start(self, (self.n_experts, n_features), self._fitted_spec().n_outputs,
                         spec.n_outputs, _PARAMETER_ATTRIBUTES)
        return warm_start_on_standardized_scale(self._params(), spec, y_mean, y_scale)

    def _params(self):
        return MoEParams(self.gate_coef_, self.gate_intercept_, self.expert_coef_,
                         self.expert_intercept_, self.output_scale_,
                         self.output_intercept_).copy()

    def _gates_and_outputs(self, X):
        return gates_and_experts(self._validate_X(X), self._params(), self._fitted_spec())

    @lazy_on_dask
    def predict_gates(self, X):
        """Gate weights ``g(x)``: rows sum to 1, zeros outside the top K.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_experts)
        """
        return self._gates_and_outputs(X)[0]

    @lazy_on_dask
    def predict_experts(self, X):
        """Each expert's prediction ``c + s h(a_i . x + b_i)``.

        ``predict(X)`` equals ``(predict_gates(X) * predict_experts(X)).sum(1)``
        for a 1-d ``y``; for a 2-d ``y`` it equals
        ``np.einsum("nk,nkj->nj", predict_gates(X), predict_experts(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_experts) or (n_samples, n_experts, n_outputs)
        """
        outputs = self._gates_and_outputs(X)[1]
        return self.output_intercept_ + self.output_scale_ * outputs

    def predict(self, X, return_std=False):
        """Predict the target, and with ``return_std`` the predictive standard deviation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the standard deviation of a new observation at ``X``,
            ``sqrt(noise variance + J(x) Cov J(x)^T)`` (:ref:`uncertainty`).

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The shape of the ``y`` of ``fit`` (a ``y`` of shape
            ``(n_samples, 1)`` gives ``(n_samples, 1)``).
        y_std : ndarray of the shape of ``y_mean``
            Only with ``return_std=True``.
        """
        if _uncertainty.check_return_std(return_std):
            return _uncertainty.predict_with_std(self, X)
        return self._predict(X)

    @lazy_on_dask
    def _predict(self, X):
        return predict(self._validate_X(X), self._params(), self._fitted_spec())

    def predict_interval(self, X, coverage=0.95):
        """Prediction intervals of new observations, for Gaussian noise (:ref:`uncertainty`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float, default=0.95
            The intervals' probability, strictly between 0 and 1.

        Returns
        -------
        lower, upper : ndarrays of the shape of ``predict(X)``
            ``predict(X, return_std=True)``'s mean minus and plus ``z`` times
            its std, ``z`` the normal quantile of ``(1 + coverage) / 2``.
        """
        return _uncertainty.predict_interval(self, X, coverage)

    @blas_held
    def bic(self, X, y):
        r"""Bayesian information criterion of the fit on ``(X, y)``: lower is better.

        :math:`-2 \log \hat L + p \log n` with Gaussian noise of variance
        the mean squared residual (independent, one variance per output for a
        2-d ``y``), and ``p`` the number of free parameters net of the
        mixture's identifiability, plus one per noise variance
        (:ref:`criteria`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The shape of the ``y`` of ``fit``.

        Returns
        -------
        float
        """
        n = _num_samples(X)
        return -2.0 * log_likelihood(self, X, y) + n_criterion_parameters(self) * np.log(n)

    @blas_held
    def aic(self, X, y):
        r"""Akaike information criterion of the fit on ``(X, y)``: lower is better.

        :math:`-2 \log \hat L + 2 p`, with the likelihood and ``p`` of
        :meth:`bic`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The shape of the ``y`` of ``fit``.

        Returns
        -------
        float
        """
        return -2.0 * log_likelihood(self, X, y) + 2.0 * n_criterion_parameters(self)
