"""The solver: honest convergence, the starts, the grown path, the criteria."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._model import MoESpec, gates_and_experts, objective, predict
from sklearn_cosmoe._objective import ArrayObjective
from sklearn_cosmoe._solver import (
    _enter_linear_regime,
    fit_from_data,
    fit_least_squares,
    initial_params,
    split_worst_expert,
)
from sklearn_cosmoe.datasets import make_cosine_moe


def standardized(y):
    return (y - y.mean()) / y.std()


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_cosine_moe(300, 3, 3, temperature=0.3, inputs="normal",
                              random_state=0)
    return X, standardized(y), np.ones(len(y))


def test_a_failed_line_search_is_not_converged(data, monkeypatch):
    # L-BFGS-B's status 2 (its line search failed) used to count as
    # converged: now it gets one restart, then reports the cause
    from scipy.optimize import OptimizeResult

    from sklearn_cosmoe._solvers import _lbfgs

    calls = []

    def line_search_fails(fun, x0, **kwargs):
        calls.append(x0)
        loss, _ = fun(x0)
        return OptimizeResult(x=x0, fun=loss, nit=3, status=2,
                              message="ABNORMAL_TERMINATION_IN_LNSRCH")

    monkeypatch.setattr(_lbfgs, "minimize", line_search_fails)
    X, y, w = data
    spec = MoESpec(temperature=0.3, expert="tanh")
    rows = ArrayObjective(X, y, w)
    start = initial_params(rows, spec, 3, np.random.default_rng(0))
    result = fit_least_squares(rows, start, spec)
    assert (result.converged, result.reason, result.n_iter) == (False, "line_search", 6)
    assert len(calls) == 2
    with pytest.warns(ConvergenceWarning, match="line search failed.*Increase tol"):
        reg = CosineMoERegressor(n_experts=3, temperature=0.3, expert="tanh",
                                 random_state=0).fit(X, y)
    assert not reg.converged_


def test_iteration_limit_is_not_converged_and_says_so(data):
    X, y, w = data
    spec = MoESpec(temperature=0.3)
    rows = ArrayObjective(X, y, w)
    start = initial_params(rows, spec, 3, np.random.default_rng(0))
    result = fit_least_squares(rows, start, spec, max_iter=2)
    assert (result.converged, result.reason, result.n_iter) == (False, "max_iter", 2)


@pytest.mark.parametrize("router", ["perturbed_cosine", "cosine", "linear"])
@pytest.mark.parametrize("expert,n_experts,top_k", [
    ("linear", 3, 1), ("linear", 4, 2), ("tanh", 3, 1), ("tanh", 3, 2)])
def test_top_k_fits_converge_with_at_least_one_iteration(router, expert, n_experts,
                                                         top_k):
    X, y, _ = make_cosine_moe(400, 3, n_experts, router=router, expert=expert,
                              top_k=top_k, temperature=0.3, inputs="normal",
                              random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg = CosineMoERegressor(n_experts=n_experts, router=router, expert=expert,
                                 top_k=top_k, temperature=0.3, random_state=0).fit(X, y)
    assert reg.converged_ and reg.n_iter_ >= 1


@pytest.mark.parametrize("expert,order", [("tanh", 3), ("sigmoid", 3), ("gelu", 2)])
def test_feedforward_start_is_the_linear_fit_to_first_order(data, expert, order,
                                                           monkeypatch):
    from sklearn_cosmoe import _solver

    X, y, w = data
    rows = ArrayObjective(X, y, w)
    linear = initial_params(rows, MoESpec(), 3, np.random.default_rng(0))
    f_linear = predict(X, linear, MoESpec())
    spec = MoESpec(expert=expert)

    def linear_regime(rms):
        monkeypatch.setattr(_solver, "_LINEAR_REGIME_RMS", rms)
        start = linear.copy()
        _enter_linear_regime(rows, start, spec)
        _, z = gates_and_experts(X, start, MoESpec(expert="linear"))
        assert_allclose(np.sqrt((z ** 2).mean(axis=0)).max(), rms)
        assert_array_equal(start.gate_coef, linear.gate_coef)
        gap = np.sqrt(np.mean((predict(X, start, spec) - f_linear) ** 2))
        return start, gap / np.std(f_linear)

    # the remainder of h(0) + h'(0) z is of order 3 for tanh and sigmoid (odd
    # about 0) and 2 for gelu: the relative gap shrinks like rms^(order - 1)
    start, gap = linear_regime(0.25)
    _, half_gap = linear_regime(0.125)
    assert gap < (0.1 if order == 3 else 1.0)
    assert_allclose(gap / half_gap, 2.0 ** (order - 1), rtol=0.15)
    # the start then scales the pre-activations: never a worse objective
    chosen = initial_params(rows, spec, 3, np.random.default_rng(0))

    def loss(params):
        return objective(params.to_vector(spec), X, y, w, params.shape, spec)[0]

    assert loss(chosen) <= loss(start)


def test_split_worst_expert_splits_the_largest_gated_residual(data):
    X, y, w = data
    spec = MoESpec(temperature=0.3)
    rows = ArrayObjective(X, y, w)
    params = initial_params(rows, spec, 2, np.random.default_rng(0))
    gates, outputs = gates_and_experts(X, params, spec)
    residual = y - (gates * outputs).sum(axis=1)
    worst = np.argmax(((residual ** 2)[:, None] * gates).sum(axis=0))
    split = split_worst_expert(rows, params, spec, np.random.default_rng(1))
    assert split.shape == (3, 3)
    other = 1 - worst
    assert_allclose(split.gate_coef[other], params.gate_coef[other])
    assert_allclose(split.gate_intercept[[worst, 2]],
                    params.gate_intercept[worst] - np.log(2))


def _grow(rows, spec, rng, **fit_params):
    """One expert from the least-squares start, then two by splitting the worse."""
    first = fit_least_squares(rows, initial_params(rows, spec, 1, rng), spec,
                              solve_experts_first=False, **fit_params)
    second = fit_least_squares(rows, split_worst_expert(rows, first.params, spec, rng),
                               spec, solve_experts_first=False, **fit_params)
    return first, second


def test_one_expert_is_ridge_regression_and_a_split_lowers_the_objective(data):
    X, y, w = data
    alpha = 1e-2
    spec = MoESpec(alpha=alpha)
    first, second = _grow(ArrayObjective(X, y, w), spec, np.random.default_rng(0))
    # objective 1/2 mean squared error + alpha/2 |a|^2 = Ridge(alpha n) / n
    ridge = Ridge(alpha=alpha * len(y)).fit(X, y)
    assert_allclose(first.params.expert_coef[0], ridge.coef_, rtol=1e-8)
    assert_allclose(first.params.expert_intercept[0], ridge.intercept_, atol=1e-10)
    assert second.params.shape == (2, 3)
    assert second.loss < first.loss


@pytest.mark.parametrize("solver", ["lbfgs", "gauss-newton"])
def test_fit_from_data_fits_the_best_screened_start(data, solver):
    from sklearn_cosmoe._solver import N_STARTS, SCREEN_ITER

    X, y, w = data
    spec = MoESpec(temperature=0.3)
    rows = ArrayObjective(X, y, w)
    result = fit_from_data(rows, spec, 3, np.random.default_rng(0), solver=solver)
    rng = np.random.default_rng(0)
    screened = [fit_least_squares(rows, initial_params(rows, spec, 3, rng,
                                                       linear_regime=i == 0),
                                  spec, solver=solver, max_iter=SCREEN_ITER[solver])
                for i in range(N_STARTS)]
    assert N_STARTS > 1
    best = min(screened, key=lambda r: r.loss)
    assert not best.converged  # the fixture needs the polishing run
    polished = fit_least_squares(rows, best.params, spec, solver=solver)
    assert result.loss == polished.loss
    assert result.n_iter == best.n_iter + polished.n_iter
    assert result.converged and result.loss < min(r.loss for r in screened)


def test_the_stopping_rule_is_relative_to_the_objective():
    # L-BFGS-B's ftol test divides by max(|f|, 1): absolute below 1.  The
    # fit's rule reads the decrease relative to f, so scaling the objective
    # by any power of two leaves every iterate, and the stop, unchanged
    from sklearn_cosmoe._solvers import lbfgs_with_restart

    A = np.array([[1.0, 0.5, 0.0], [0.0, 10.0, 3.0], [0.0, 0.0, 100.0]])
    b = np.array([1.0, -2.0, 3.0])

    def quadratic(t, c):  # optimum c / 100 at t = A^-1 b
        r = A @ t - b
        return c * (0.5 * r @ r + 1e-2), c * (A.T @ r)

    scales = (1.0, 2.0 ** -6, 2.0 ** 20)  # optima above the rule's floor 1e-4
    runs = [lbfgs_with_restart(lambda t, c=c: quadratic(t, c), np.zeros(3), 1000, 1e-6)
            for c in scales]
    for (theta, loss, n_iter, reason), c in zip(runs, scales):
        assert_array_equal(theta, runs[0][0])
        assert n_iter == runs[0][2] and reason is None
        assert loss / c == runs[0][1]
    assert runs[0][1] <= 1e-2 * (1 + 1e-8)


@pytest.mark.parametrize("router,expert,expected", [
    # router k (d + 1) less 1 + d (linear, perturbed) or 1 + k + max(d - k, 0)
    # (cosine); experts k (d + 1), plus 2 for a feed-forward output
    ("perturbed_cosine", "linear", 3 * 4 - 4 + 3 * 4),
    ("linear", "tanh", 3 * 4 - 4 + 3 * 4 + 2),
    ("cosine", "linear", 3 * 4 - (1 + 3 + 0) + 3 * 4),
])
def test_bic_and_aic_against_the_gaussian_formula(data, router, expert, expected):
    X, y, _ = data
    y = 3.0 * y + 1.0
    reg = CosineMoERegressor(n_experts=3, router=router, expert=expert,
                             temperature=0.3, random_state=0).fit(X, y)
    n = len(y)
    mse = np.mean((y - reg.predict(X)) ** 2)
    minus_2_log_lik = n * np.log(2 * np.pi * mse) + n
    p = expected + 1  # and the noise variance
    assert_allclose(reg.bic(X, y), minus_2_log_lik + p * np.log(n))
    assert_allclose(reg.aic(X, y), minus_2_log_lik + 2 * p)


def test_one_expert_has_no_router_parameters(data):
    X, y, _ = data
    for router in ("perturbed_cosine", "cosine", "linear"):
        reg = CosineMoERegressor(n_experts=1, router=router).fit(X, y)
        n = len(y)
        mse = np.mean((y - reg.predict(X)) ** 2)
        assert_allclose(reg.bic(X, y),
                        n * np.log(2 * np.pi * mse) + n + (3 + 1 + 1) * np.log(n))


def test_top_1_passes_the_n_iter_check():
    # with one gate per row the router gets no gradient; n_iter_ was 0
    from sklearn.utils.estimator_checks import check_non_transformer_estimators_n_iter

    reg = CosineMoERegressor(n_experts=2, top_k=1, random_state=0)
    check_non_transformer_estimators_n_iter("CosineMoERegressor", reg)


def test_fit_result_unpacks_as_the_former_tuple(data):
    X, y, w = data
    spec = MoESpec()
    rows = ArrayObjective(X, y, w)
    start = initial_params(rows, spec, 2, np.random.default_rng(0))
    result = fit_least_squares(rows, start, spec, max_iter=2)
    params, loss, n_iter, converged = result
    assert (params, loss, n_iter, converged) == (
        result.params, result.loss, result.n_iter, result.converged)


class _OnlyTheInterface:
    """An objective that offers the solver its documented methods and nothing else."""

    _METHODS = ("loss_and_gradient", "gauss_newton", "expert_normal_equations",
                "direction_sums", "gated",
                "mean_square_norm", "preactivation_mean_squares", "output_moments",
                "gated_squared_residuals")

    def __init__(self, inner):
        self._inner = inner
        self.n_features = inner.n_features
        self.total_weight = inner.total_weight

    def __getattr__(self, name):
        if name not in self._METHODS:
            raise AttributeError(f"the solver asked the objective for {name!r}")
        method = getattr(self._inner, name)
        if name == "gated":
            return lambda *args: _OnlyTheInterface(method(*args))
        return method


@pytest.mark.parametrize("router,expert", [("linear", "tanh"), ("perturbed_cosine", "linear")])
def test_the_solver_sees_the_rows_only_through_the_objective(data, router, expert):
    # every pass over the rows is a method of the objective: the same fit
    # through a proxy that has no X, y or sample_weight
    X, y, w = data
    spec = MoESpec(router=router, expert=expert, temperature=0.3)
    rows = ArrayObjective(X, y, w)
    direct = _grow(rows, spec, np.random.default_rng(0), max_iter=30)
    proxied = _grow(_OnlyTheInterface(rows), spec, np.random.default_rng(0), max_iter=30)
    for a, b in zip(direct, proxied):
        assert_array_equal(a.params.to_vector(spec), b.params.to_vector(spec))
    result = fit_from_data(_OnlyTheInterface(rows), spec, 2, np.random.default_rng(0),
                           max_iter=30)
    assert_array_equal(result.params.to_vector(spec),
                       fit_from_data(rows, spec, 2, np.random.default_rng(0),
                                     max_iter=30).params.to_vector(spec))


def test_array_objective_moments_against_numpy(data):
    X, y, w = data
    w = w * np.linspace(0.5, 2.0, len(w))
    spec = MoESpec(expert="tanh", temperature=0.3)
    rows = ArrayObjective(X, y, w)
    params = initial_params(rows, spec, 3, np.random.default_rng(0))
    gates, h = gates_and_experts(X, params, spec)
    z = X @ params.expert_coef.T + params.expert_intercept
    p = w / w.sum()
    assert_allclose(rows.total_weight, w.sum())
    assert_allclose(rows.mean_square_norm(), p @ (X ** 2).sum(axis=1))
    assert_allclose(rows.preactivation_mean_squares(params, spec), p @ z ** 2)
    mix = (gates * h).sum(axis=1)
    y_mean, mix_mean, var, cov = rows.output_moments(params, spec)
    assert_allclose([y_mean, mix_mean, var, cov],
                    [p @ y, p @ mix, np.cov(mix, aweights=w, bias=True),
                     np.cov(mix, y, aweights=w, bias=True)[0, 1]])
    f = params.output_intercept + params.output_scale * mix
    assert_allclose(rows.gated_squared_residuals(params, spec), (w * (y - f) ** 2) @ gates)
    gated = rows.gated(params, spec, 1)
    assert_allclose(gated.sample_weight, w * gates[:, 1])
    assert gated.X is X


class _GramOnly:
    """The same rows without ``n_rows``: the experts' solve takes the Gram matrix."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        if name in ("n_rows", "expert_design"):
            raise AttributeError(name)
        return getattr(self._inner, name)


@pytest.mark.parametrize("n_outputs", [None, 2])
def test_row_space_solve_of_the_experts_equals_the_normal_equations(n_outputs):
    # 20 rows, 3 experts x 16 unknowns: the row space; zero weights included
    from sklearn_cosmoe._solvers import update_linear_experts

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 15))
    y = rng.standard_normal(20 if n_outputs is None else (20, n_outputs))
    w = rng.uniform(0.5, 2.0, 20)
    w[:3] = 0.0
    spec = MoESpec(alpha=0.01, n_outputs=n_outputs)
    rows = ArrayObjective(X, np.asfortranarray(y), w)
    start = initial_params(rows, spec, 3, np.random.default_rng(1))
    by_rows = update_linear_experts(rows, start.copy(), spec)
    by_gram = update_linear_experts(_GramOnly(rows), start.copy(), spec)
    # the Gram matrix of 17 weighted rows for 48 unknowns is singular but for
    # the ridge and the 1e-10 jitter: its solve is good to about 1e-6
    assert_allclose(by_rows.expert_coef, by_gram.expert_coef, rtol=1e-5, atol=1e-7)
    assert_allclose(by_rows.expert_intercept, by_gram.expert_intercept, rtol=1e-5, atol=1e-7)
    assert np.abs(by_rows.expert_coef).max() > 0.1
