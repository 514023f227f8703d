"""scikit-learn estimator: a thin shell over the model and its solver."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._experts import EXPERTS
from ._model import MoEParams, MoESpec, gates_and_experts, predict
from ._routers import ROUTERS
from ._solver import fit_least_squares, initial_params


class CosineMoERegressor(RegressorMixin, BaseEstimator):
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
    :class:`~sklearn.preprocessing.StandardScaler` in front.

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
    max_iter : int, default=1000
        Maximum number of L-BFGS iterations per start.
    tol : float, default=1e-7
        Tolerance of L-BFGS-B (``ftol`` and ``gtol``) and of the alternation
        with exact least-squares updates of linear experts.
    n_init : int, default=1
        Number of starts; the one with the lowest training objective is kept.
    random_state : int, RandomState instance or None, default=None
        Seeds the starts.  A given seed gives bit-identical fits whatever the
        number of threads.
    warm_start : bool, default=False
        Start from the previous fit's parameters (a single start).
    verbose : int, default=0
        Print the objective after each round of L-BFGS.

    Attributes
    ----------
    gate_coef_ : ndarray of shape (n_experts, n_features)
        :math:`\beta_1`.
    gate_intercept_ : ndarray of shape (n_experts,)
        :math:`\beta_0`.
    expert_coef_ : ndarray of shape (n_experts, n_features)
        :math:`a`.
    expert_intercept_ : ndarray of shape (n_experts,)
        :math:`b`.
    output_scale_ : float
        :math:`s` (1.0 for linear experts).
    output_intercept_ : float
        :math:`c` (0.0 for linear experts).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when ``X`` has feature names that are all strings.
    n_iter_ : int
        L-BFGS iterations of the kept start.
    loss_ : float
        Final training objective of the kept start: half the weighted mean
        squared error of the standardized target, plus the ridge term.
    init_losses_ : ndarray of shape (n_init,)
        Final training objective of each start.
    converged_ : bool
        Whether the kept start met ``tol`` within ``max_iter``.

    Notes
    -----
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
        max_iter=1000,
        tol=1e-7,
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
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def _spec(self):
        return MoESpec(router=self.router, expert=self.expert, tau1=self.tau1,
                       tau2=self.tau2, temperature=self.temperature,
                       top_k=self.top_k, alpha=self.alpha)

    def _check_params_against_each_other(self):
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture by least squares.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights give the same fit as
            repeated rows.

        Returns
        -------
        self : CosineMoERegressor
        """
        self._check_params_against_each_other()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64,
                             order="C")
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        total = sample_weight.sum()  # > 0: checked non-negative and not all zero
        # np.sum, not BLAS: its order does not depend on BLAS's thread count
        y_mean = np.sum(sample_weight * y) / total
        y_scale = np.sqrt(np.sum(sample_weight * (y - y_mean) ** 2) / total)
        if not y_scale > 0:
            y_scale = 1.0
        target = (y - y_mean) / y_scale

        spec = self._spec()
        rng = check_random_state(self.random_state)
        if self.warm_start and hasattr(self, "gate_coef_"):
            if self.gate_coef_.shape != (self.n_experts, X.shape[1]):
                raise ValueError(
                    "warm_start=True needs the same n_experts and number of "
                    f"features as the previous fit {self.gate_coef_.shape}."
                )
            starts = [self._standardized_params(y_mean, y_scale)]
            warm = True
        else:
            # a generator: each start is drawn just before it is fitted
            starts = (initial_params(X, target, sample_weight, spec, self.n_experts, rng)
                      for _ in range(self.n_init))
            warm = False

        best, losses = None, []
        for start in starts:
            result = fit_least_squares(
                X, target, sample_weight, start, spec, max_iter=self.max_iter,
                tol=self.tol, verbose=self.verbose, solve_experts_first=warm,
            )
            losses.append(result[1])
            if best is None or result[1] < best[1]:
                best = result
        params, self.loss_, self.n_iter_, self.converged_ = best
        self.init_losses_ = np.asarray(losses)
        if not np.isfinite(self.loss_):
            raise ValueError(
                "The fit diverged (non-finite objective); scale X (e.g. with "
                "StandardScaler) or increase alpha."
            )
        if not self.converged_:
            warnings.warn(
                f"CosineMoERegressor did not converge in max_iter={self.max_iter} "
                "L-BFGS iterations. Increase max_iter, scale the features "
                "(StandardScaler), or increase alpha.",
                ConvergenceWarning,
            )
        self._set_fitted_params(params, y_mean, y_scale)
        return self

    def _set_fitted_params(self, params, y_mean, y_scale):
        """Store ``params`` (fitted to the standardized target) on y's scale."""
        self.gate_coef_ = params.gate_coef.copy()
        self.gate_intercept_ = params.gate_intercept.copy()
        if self.expert == "linear":
            # the gates sum to one, so the affine map passes into each expert
            self.expert_coef_ = y_scale * params.expert_coef
            self.expert_intercept_ = y_scale * params.expert_intercept + y_mean
            self.output_scale_, self.output_intercept_ = 1.0, 0.0
        else:
            self.expert_coef_ = params.expert_coef.copy()
            self.expert_intercept_ = params.expert_intercept.copy()
            self.output_scale_ = float(y_scale * params.output_scale)
            self.output_intercept_ = float(y_scale * params.output_intercept + y_mean)

    def _standardized_params(self, y_mean, y_scale):
        """The fitted parameters, mapped to a target standardized by ``y_mean, y_scale``."""
        params = self._params()
        if self.expert == "linear":
            params.expert_coef = params.expert_coef / y_scale
            params.expert_intercept = (params.expert_intercept - y_mean) / y_scale
        else:
            params.output_scale /= y_scale
            params.output_intercept = (params.output_intercept - y_mean) / y_scale
        return params

    def _params(self):
        return MoEParams(self.gate_coef_.copy(), self.gate_intercept_.copy(),
                         self.expert_coef_.copy(), self.expert_intercept_.copy(),
                         self.output_scale_, self.output_intercept_)

    def _gates_and_outputs(self, X):
        return gates_and_experts(self._validate_X(X), self._params(), self._spec())

    def _validate_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64, order="C")

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

    def predict_experts(self, X):
        """Each expert's prediction ``c + s h(a_i . x + b_i)``.

        ``predict(X)`` equals ``(predict_gates(X) * predict_experts(X)).sum(1)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_experts)
        """
        outputs = self._gates_and_outputs(X)[1]
        return self.output_intercept_ + self.output_scale_ * outputs

    def predict(self, X):
        """Predict the target.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return predict(self._validate_X(X), self._params(), self._spec())

    def apply(self, X):
        """Index of the expert with the largest gate weight for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), dtype int
        """
        return np.argmax(self.predict_gates(X), axis=1)
