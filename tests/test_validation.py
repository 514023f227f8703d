"""Bad input and failed fits: clear errors before any numerical work, and a
failed fit leaves the estimator as it was."""

import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from sklearn_cosmoe import CosineMoERegressor, _estimator
from sklearn_cosmoe._model import MoEParams
from sklearn_cosmoe._solver import FitResult
from sklearn_cosmoe._validation import standardize_target

from .test_estimator import model_data


@pytest.fixture(scope="module")
def data():
    X, y, _ = model_data("perturbed_cosine", 200, seed=20)
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return CosineMoERegressor(n_experts=2, random_state=0).fit(X, y)


def state(reg):
    """A deep copy of everything the estimator holds."""
    return {name: (value.copy() if isinstance(value, np.ndarray) else value)
            for name, value in vars(reg).items()}


def assert_same_state(reg, before):
    after = vars(reg)
    assert sorted(after) == sorted(before)
    for name, value in before.items():
        if isinstance(value, (np.ndarray, float)):  # NaN equals NaN here
            assert_array_equal(after[name], value, err_msg=name)
        else:
            assert after[name] == value, name


@pytest.fixture
def no_numerical_work(monkeypatch):
    """Make the start and the solver fail loudly: errors must come before them."""
    def fail(*args, **kwargs):
        raise AssertionError("numerical work started before the input was checked")
    monkeypatch.setattr(_estimator, "fit_from_data", fail)
    monkeypatch.setattr(_estimator, "fit_least_squares", fail)


# ---- bad input: the argument and the cause, before any numerical work ----

def _strings(y):
    return np.array([f"{v:.3f}" for v in y])


@pytest.mark.parametrize("change,match", [
    (lambda X, y, w: ({"n_experts": True}, X, y, w), "'n_experts' .* not a bool"),
    (lambda X, y, w: ({"max_iter": True}, X, y, w), "'max_iter' .* not a bool"),
    (lambda X, y, w: ({"tau2": False}, X, y, w), "'tau2' .* not a bool"),
    (lambda X, y, w: ({}, X * 1e300, y, w), "X's largest absolute value is 9.99e\\+299.*overflow"
                                            ".*StandardScaler"),
    (lambda X, y, w: ({}, X * 1e-200, y, w), "X's largest .* underflow.*StandardScaler"),
    (lambda X, y, w: ({}, X, _strings(y), w), "y must be numeric.*strings such as '"),
    (lambda X, y, w: ({}, X, list(_strings(y).astype(object)), w), "y must be numeric"),
    (lambda X, y, w: ({}, X, y, np.zeros(len(y))), "sample_weight|[Ss]ample weights"),
    (lambda X, y, w: ({}, X, y, np.where(np.arange(len(y)) == 3, np.nan, w)),
     "sample_weight contains NaN"),
    (lambda X, y, w: ({}, X, y, np.where(np.arange(len(y)) == 3, np.inf, w)),
     "sample_weight contains infinity"),
    (lambda X, y, w: ({}, X, y, -w), "[Nn]egative"),
])
def test_bad_input_is_refused_before_numerical_work(data, no_numerical_work, change, match):
    X, y = data
    params, X, y, w = change(X, y, np.ones(len(y)))
    reg = CosineMoERegressor(**params)
    with pytest.raises(ValueError, match=match):
        reg.fit(X, y, sample_weight=w)
    assert not hasattr(reg, "n_features_in_")


def test_all_zero_weights_message_names_sample_weight(data):
    # scikit-learn >= 1.9 says "Sample weights must contain at least one
    # non-zero number" itself; older versions let them through to our check
    X, y = data
    with pytest.raises(ValueError, match="non-zero"):
        CosineMoERegressor().fit(X, y, sample_weight=np.zeros(len(y)))


# ---- target standardization --------------------------------------------------

def test_standardize_target_matches_the_weighted_formula():
    rng = np.random.default_rng(0)
    y = rng.normal(3.0, 2.0, 50)
    w = rng.uniform(0, 2, 50)
    target, mean, scale = standardize_target(y, w)
    expected_mean = np.average(y, weights=w)
    expected_scale = np.sqrt(np.average((y - expected_mean) ** 2, weights=w))
    assert mean == pytest.approx(expected_mean, rel=1e-14)
    assert scale == pytest.approx(expected_scale, rel=1e-14)
    assert_allclose(target, (y - expected_mean) / expected_scale, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("power", [1000, -1000])
def test_standardize_target_is_exact_under_powers_of_two(power):
    """No overflow or underflow at the ends of the float64 range: scaling y by
    a power of two scales the mean and scale exactly and leaves the target."""
    rng = np.random.default_rng(1)
    y = rng.normal(1.0, 1.0, 30)
    w = rng.uniform(0, 1, 30)
    target, mean, scale = standardize_target(y, w)
    factor = 2.0 ** power
    target2, mean2, scale2 = standardize_target(y * factor, w)
    assert_array_equal(target2, target)
    assert (mean2, scale2) == (mean * factor, scale * factor)


def test_constant_target_gets_a_positive_scale():
    target, mean, scale = standardize_target(np.full(5, 7.0), np.ones(5))
    assert (mean, scale) == (7.0, 4.0)
    assert_array_equal(target, 0.0)


@pytest.mark.parametrize("factor", [2.0 ** 1000, 2.0 ** -1000])
def test_fit_scales_exactly_with_y_over_the_float_range(data, factor):
    """Was: y beyond 1.3e154 gave an all-NaN model, y times 1e-200 a scale reset to 1."""
    X, y = data
    base = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y)
    scaled = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y * factor)
    assert_array_equal(scaled.predict(X) / factor, base.predict(X))
    assert scaled.converged_ and scaled.n_iter_ == base.n_iter_


@pytest.mark.parametrize("factor", [1e300, 1e-300])
def test_fit_works_for_any_scale_of_y(data, factor):
    X, y = data
    base = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y)
    reg = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y * factor)
    pred = reg.predict(X) / factor
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r2 == pytest.approx(base.score(X, y), abs=0.01)


def test_weights_scale_free_up_to_the_largest_float(data):
    X, y = data
    w = np.random.default_rng(2).uniform(0.5, 2, len(y))
    base = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y, sample_weight=w)
    huge = CosineMoERegressor(n_experts=2, random_state=0).fit(
        X, y, sample_weight=w * 2.0 ** 1020)
    assert_array_equal(huge.predict(X), base.predict(X))
    big = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y, sample_weight=w * 1e300)
    assert np.all(np.isfinite(big.predict(X)))
    assert big.score(X, y) == pytest.approx(base.score(X, y), abs=0.01)


# ---- a failed fit leaves the estimator as it was ---------------------------

def _raise(exc):
    def solver(*args, **kwargs):
        raise exc
    return solver


def _diverge(data, spec, n_experts, rng, **kwargs):
    k, d = n_experts, data.n_features
    params = MoEParams(np.ones((k, d)), np.zeros(k), np.ones((k, d)), np.zeros(k))
    return FitResult(params, np.nan, 3, True)


@pytest.mark.parametrize("solver,error,match", [
    (_raise(KeyboardInterrupt()), KeyboardInterrupt, None),
    (_raise(MemoryError("simulated")), MemoryError, "simulated"),
    (_diverge, ValueError, "diverged"),
])
def test_failing_solver_leaves_fitted_estimator_unchanged(data, fitted, monkeypatch,
                                                          solver, error, match):
    X, y = data
    reg = CosineMoERegressor(**fitted.get_params()).fit(X, y)
    before, expected = state(reg), reg.predict(X)
    monkeypatch.setattr(_estimator, "fit_from_data", solver)
    with pytest.raises(error, match=match):
        reg.fit(X[:, :3], y)  # another number of features: n_features_in_ would change
    assert_same_state(reg, before)
    assert_array_equal(reg.predict(X), expected)
    with pytest.raises(ValueError, match="features"):
        reg.predict(X[:, :3])


@pytest.mark.parametrize("solver,error", [
    (_raise(KeyboardInterrupt()), KeyboardInterrupt),
    (_raise(MemoryError()), MemoryError),
    (_diverge, ValueError),
])
def test_failing_solver_leaves_new_estimator_unfitted(data, monkeypatch, solver, error):
    X, y = data
    reg = CosineMoERegressor(n_experts=2)
    before = state(reg)
    monkeypatch.setattr(_estimator, "fit_from_data", solver)
    with pytest.raises(error):
        reg.fit(X, y)
    assert_same_state(reg, before)
    with pytest.raises(NotFittedError):
        reg.predict(X)


def test_warm_start_with_other_features_fails_and_keeps_the_model(data, fitted):
    """Was: n_features_in_ = 7 beside (k, 4) coefficients, then out-of-bounds reads."""
    X, y = data
    reg = CosineMoERegressor(**fitted.get_params()).fit(X, y)
    reg.set_params(warm_start=True)
    before, expected = state(reg), reg.predict(X)
    X7 = np.hstack([X, X[:, :3]])
    with pytest.raises(ValueError, match=r"same n_experts and number of features.*\(2, 4\)"
                                         r".*\(2, 7\)"):
        reg.fit(X7, y)
    assert_same_state(reg, before)
    assert_array_equal(reg.predict(X), expected)
    with pytest.raises(ValueError, match="7 features"):
        reg.predict(X7)


@pytest.mark.parametrize("change,match", [
    ({"router": "linear"}, "same router and expert.*router='perturbed_cosine'"),
    ({"expert": "tanh"}, "same router and expert.*expert='linear'"),
    ({"n_experts": 3}, "same n_experts"),
])
def test_warm_start_refuses_another_model(data, fitted, change, match):
    X, y = data
    reg = CosineMoERegressor(**fitted.get_params()).fit(X, y)
    reg.set_params(warm_start=True, **change)
    before = state(reg)
    with pytest.raises(ValueError, match=match):
        reg.fit(X, y)
    assert_same_state(reg, before)


@pytest.mark.parametrize("name", ["gate_coef_", "expert_intercept_", "output_scale_"])
def test_warm_start_refuses_non_finite_parameters(data, fitted, no_numerical_work, name):
    X, y = data
    reg = CosineMoERegressor(**fitted.get_params())
    vars(reg).update(state(fitted))
    reg.set_params(warm_start=True)
    value = getattr(reg, name)
    if isinstance(value, np.ndarray):
        value[0] = np.nan
    else:
        setattr(reg, name, np.nan)
    with pytest.raises(ValueError, match=f"{name} contains NaN"):
        reg.fit(X, y)


def test_warm_start_may_change_other_hyperparameters(data, fitted):
    X, y = data
    reg = CosineMoERegressor(**fitted.get_params()).fit(X, y)
    reg.set_params(warm_start=True, tau2=0.5, alpha=1e-3).fit(X, y)
    assert reg.converged_


def test_overflow_on_the_scale_of_y_is_an_error_and_keeps_the_model(data, fitted):
    X, y = data
    reg = CosineMoERegressor(**fitted.get_params()).fit(X, y)
    before = state(reg)
    y_huge = np.where(y > np.median(y), 1.7e308, -1.7e308)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # may not converge on this step target
        with pytest.raises(ValueError, match="overflow on the scale of y"):
            reg.fit(X, y_huge)
    assert_same_state(reg, before)


# ---- the warning about features cosine routing cannot use ------------------

@pytest.mark.parametrize("router", ["perturbed_cosine", "cosine"])
@pytest.mark.parametrize("transform,match", [
    (lambda X: X + 1e4, "point nearly the same way"),
    (lambda X: X * np.array([1e-3, 1.0, 1e3, 1e6]), "factor 1.0e\\+09"),
])
def test_unscaled_features_warn_once_naming_standardscaler(data, router, transform, match):
    X, y = data
    reg = CosineMoERegressor(n_experts=2, router=router, n_init=2, max_iter=5,
                             random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.fit(transform(X), y)
    unscaled = [w for w in caught if "StandardScaler()" in str(w.message)]
    assert len(unscaled) == 1
    assert unscaled[0].category is UserWarning
    assert re.search(match, str(unscaled[0].message))


def test_short_rows_against_tau2_warn(data):
    X, y = data
    with pytest.warns(UserWarning, match=r"tiny against tau2=1.*StandardScaler"):
        CosineMoERegressor(n_experts=2, max_iter=5, random_state=0).fit(X * 1e-4, y)


@pytest.mark.parametrize("router,transform", [
    ("perturbed_cosine", lambda X: X),
    ("cosine", lambda X: X * 1e-4),  # no tau2: the scale does not matter
    ("linear", lambda X: X + 1e4),  # offsets move into the gate intercepts
    ("linear", lambda X: X * np.array([1e-3, 1.0, 1e3, 1e6])),
])
def test_no_scaling_warning_where_routing_works(data, router, transform):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        CosineMoERegressor(n_experts=2, router=router, max_iter=5,
                           random_state=0).fit(transform(X), y)


def test_convergence_advice_names_a_scaler_only_where_it_would_help():
    from sklearn.preprocessing import StandardScaler

    from sklearn_cosmoe import CosineMoERegressor
    from sklearn_cosmoe._validation import scaler_would_help

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [1.0, 50.0, 0.1] + [5.0, 0.0, 0.0]
    standardized = StandardScaler().fit_transform(X)
    assert scaler_would_help(X)
    assert not scaler_would_help(standardized)
    assert not scaler_would_help(np.ones((5, 2)))  # constant columns: nothing to scale
    reg = CosineMoERegressor()
    reg._scaler_would_help = scaler_would_help(standardized)
    assert "StandardScaler" not in reg._convergence_advice("max_iter")
    assert "StandardScaler" not in reg._convergence_advice("abnormal")
    reg._scaler_would_help = scaler_would_help(X)
    assert "StandardScaler" in reg._convergence_advice("max_iter")
    assert "StandardScaler" in reg._convergence_advice("abnormal")


def test_convergence_warning_in_a_scaled_pipeline_does_not_advise_a_scaler():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = model_data("perturbed_cosine", 300, 0)[:2]
    X = X * [1.0, 100.0, 0.01, 1.0] + 3.0  # offset and unequal scales
    model = make_pipeline(StandardScaler(), CosineMoERegressor(n_experts=3, max_iter=2))
    with pytest.warns(ConvergenceWarning) as record:
        model.fit(X, y)
    messages = [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]
    assert messages and not any("StandardScaler" in m for m in messages)
