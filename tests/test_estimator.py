"""Behaviour of CosineMoERegressor: recovery, invariances, errors, attributes."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._model import MoESpec, predict

from . import reference
from .conftest import random_params

# Relative rounding allowed where two exact rearrangements of a prediction are
# compared: a few hundred float64 operations, measured on the predictions' scale.
_ROUNDING = 1e-12

NOISE = 0.1
# a recovered model: its squared error against the true regression function is
# under this share of the noise variance, and of a linear fit's error
RECOVERED_SHARE = 0.25


def model_data(router, n, seed, expert="linear", temperature=1.0, k=3, d=4):
    """Rows uniform on [-1, 1]^d, y = f(x) + N(0, 0.1^2) for a random true model."""
    rng = np.random.default_rng(seed)
    p = random_params(rng, k, d, scale=2.0)
    p.output_scale, p.output_intercept = 1.0, 0.0
    spec = MoESpec(router=router, expert=expert, temperature=temperature)
    X = rng.uniform(-1, 1, (n, d))
    f = predict(X, p, spec)
    return X, f + NOISE * rng.standard_normal(n), f


@pytest.mark.parametrize("router,expert,temperature", [
    ("perturbed_cosine", "linear", 1.0),
    ("cosine", "linear", 0.5),
    ("linear", "linear", 1.0),
    ("perturbed_cosine", "tanh", 1.0),
])
def test_recovers_data_drawn_from_its_own_model(router, expert, temperature):
    # one truth: the first 5000 rows train, the other 5000 test
    X, y, f = model_data(router, 10000, seed=0, expert=expert, temperature=temperature)
    X_test, f_test = X[5000:], f[5000:]
    reg = CosineMoERegressor(n_experts=3, router=router, expert=expert,
                             temperature=temperature, n_init=2, random_state=0)
    reg.fit(X[:5000], y[:5000])
    # the error against the true regression function, a small share of the
    # noise's variance, and far below that of a linear fit of the same rows
    error = np.mean((reg.predict(X_test) - f_test) ** 2)
    linear = LinearRegression().fit(X[:5000], y[:5000])
    linear_error = np.mean((linear.predict(X_test) - f_test) ** 2)
    assert error < RECOVERED_SHARE * NOISE**2
    assert error < RECOVERED_SHARE * linear_error


def test_predict_recomputed_by_hand_from_attributes():
    X, y, _ = model_data("perturbed_cosine", 300, seed=1, expert="sigmoid")
    reg = CosineMoERegressor(n_experts=2, expert="sigmoid", tau1=0.7, tau2=0.2,
                             random_state=0, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y * 100 + 5)
    s = reference.scores(X, reg.gate_coef_, reg.gate_intercept_, "perturbed_cosine", 0.7, 0.2)
    g = reference.gates(s)
    h = reference.experts(X, reg.expert_coef_, reg.expert_intercept_, "sigmoid")
    by_hand = reg.output_intercept_ + reg.output_scale_ * (g * h).sum(axis=1)
    assert_allclose(reg.predict(X), by_hand, rtol=1e-10)
    assert_allclose(reg.predict_gates(X), g, rtol=1e-10)
    assert_allclose((reg.predict_gates(X) * reg.predict_experts(X)).sum(axis=1),
                    reg.predict(X), rtol=1e-10)
    assert_array_equal(reg.apply(X), np.argmax(g, axis=1))


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = model_data("perturbed_cosine", 400, seed=2)
    return CosineMoERegressor(n_experts=3, random_state=0).fit(X, y), X


def test_permuting_experts_leaves_predict_unchanged(fitted):
    reg, X = fitted
    expected = reg.predict(X)
    perm = np.array([2, 0, 1])
    for name in ["gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_"]:
        setattr(reg, name, getattr(reg, name)[perm])
    try:
        # a permutation changes the order of the sums over experts: compare
        # to rounding on the scale of the predictions, not of each one
        assert_allclose(reg.predict(X), expected, rtol=0, atol=_ROUNDING * np.abs(expected).max())
    finally:
        inverse = np.argsort(perm)
        for name in ["gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_"]:
            setattr(reg, name, getattr(reg, name)[inverse])


def test_shifting_gate_intercepts_leaves_predict_unchanged(fitted):
    reg, X = fitted
    shifted = pickle.loads(pickle.dumps(reg))
    shifted.gate_intercept_ = reg.gate_intercept_ + 3.7
    expected = reg.predict(X)
    # the softmax's rounding differs after the shift: compare on the scale of
    # the predictions (a prediction near zero has no relative accuracy to keep)
    assert_allclose(shifted.predict(X), expected, rtol=0, atol=_ROUNDING * np.abs(expected).max())


def test_predict_does_not_depend_on_row_order_or_batch(fitted):
    reg, X = fitted
    full = reg.predict(X)
    perm = np.random.default_rng(0).permutation(len(X))
    assert_array_equal(reg.predict(X[perm]), full[perm])
    assert_array_equal(np.concatenate([reg.predict(X[:7]), reg.predict(X[7:])]), full)


def test_pickle_roundtrip_predicts_identically(fitted):
    reg, X = fitted
    assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), reg.predict(X))


def test_fit_is_bit_for_bit_repeatable_for_a_seed():
    X, y, _ = model_data("cosine", 500, seed=3)
    a = CosineMoERegressor(router="cosine", n_init=2, random_state=7).fit(X, y)
    b = CosineMoERegressor(router="cosine", n_init=2, random_state=7).fit(X, y)
    assert_array_equal(a.gate_coef_, b.gate_coef_)
    assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("router", ["perturbed_cosine", "cosine", "linear"])
def test_integer_weights_fit_as_repeated_rows(router):
    # equal in exact arithmetic; rounding differs (sums over other rows), so
    # only fits certified at a stationary point can be compared: the default
    # solver at a tight tol.  Ignoring the weights would move the objective
    # by several per cent.
    X, y, _ = model_data(router, 300, seed=5)
    w = np.random.default_rng(0).integers(0, 4, len(y))
    fit = dict(router=router, tol=1e-10, random_state=0)
    weighted = CosineMoERegressor(**fit).fit(X, y, sample_weight=w)
    repeated = CosineMoERegressor(**fit).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.converged_ and repeated.converged_
    assert_allclose(weighted.loss_, repeated.loss_, rtol=1e-9)
    assert_allclose(weighted.predict(X), repeated.predict(X), rtol=0, atol=1e-4 * y.std())
    unweighted = CosineMoERegressor(**fit).fit(X, y)
    assert abs(unweighted.loss_ / weighted.loss_ - 1) > 0.01


def test_fitted_attributes(fitted):
    reg, X = fitted
    assert reg.gate_coef_.shape == reg.expert_coef_.shape == (3, X.shape[1])
    assert reg.gate_intercept_.shape == reg.expert_intercept_.shape == (3,)
    assert (reg.output_scale_, reg.output_intercept_) == (1.0, 0.0)
    assert reg.init_losses_.shape == (1,)
    assert reg.converged_ and 0 < reg.n_iter_ <= reg.max_iter
    # loss_ is the objective of the fitted model on the standardized target,
    # recomputed here from its predictions and the ridge on its experts
    _, y, _ = model_data("perturbed_cosine", 400, seed=2)
    scale = y.std()
    expected = (0.5 * np.mean((y - reg.predict(X)) ** 2) / scale ** 2
                + 0.5 * reg.alpha * np.sum((reg.expert_coef_ / scale) ** 2))
    assert_allclose(reg.loss_, expected, rtol=1e-10)


def test_n_init_keeps_the_lowest_objective():
    X, y, _ = model_data("perturbed_cosine", 400, seed=4, temperature=0.2)
    reg = CosineMoERegressor(n_experts=3, temperature=0.2, n_init=3, random_state=0).fit(X, y)
    assert reg.init_losses_.shape == (3,)
    # the kept fit is the repetition whose fit alone gives its loss: one
    # repetition from the same random draws is the first of the three
    first = CosineMoERegressor(n_experts=3, temperature=0.2, random_state=0).fit(X, y)
    assert first.loss_ == reg.init_losses_[0]
    assert reg.loss_ == reg.init_losses_.min()


def test_top_k_gates_are_sparse():
    X, y, _ = model_data("perturbed_cosine", 300, seed=5)
    reg = CosineMoERegressor(n_experts=4, top_k=2, random_state=0).fit(X, y)
    gates = reg.predict_gates(X)
    assert_array_equal((gates > 0).sum(axis=1), 2)
    assert_allclose(gates.sum(axis=1), 1.0)


def test_warm_start_continues_from_previous_fit():
    X, y, _ = model_data("perturbed_cosine", 400, seed=6)
    reg = CosineMoERegressor(n_experts=3, max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = reg.fit(X, y).loss_
        second = reg.fit(X, y).loss_
    assert second < first


def test_not_converged_warns_with_advice():
    X, y, _ = model_data("perturbed_cosine", 300, seed=7)
    with pytest.warns(ConvergenceWarning, match="Increase max_iter"):
        reg = CosineMoERegressor(max_iter=1, random_state=0).fit(X, y)
    assert not reg.converged_


def test_works_in_pipeline_grid_search_and_cross_validation():
    X, y, _ = model_data("perturbed_cosine", 300, seed=8)
    pipe = make_pipeline(StandardScaler(), CosineMoERegressor(n_experts=2, random_state=0))
    search = GridSearchCV(pipe, {"cosinemoeregressor__tau2": [0.5, 2.0]}, cv=2).fit(X, y)
    # the search scored both candidates and refitted one of them on all rows
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_[-1].tau2 == search.best_params_["cosinemoeregressor__tau2"]
    # sharp gates: a mixture in a pipeline must beat a linear model in cross-validation
    X, y, _ = model_data("perturbed_cosine", 600, seed=8, temperature=0.2)
    mixture = cross_val_score(pipe, X, y, cv=3).mean()
    linear = cross_val_score(make_pipeline(StandardScaler(), LinearRegression()), X, y, cv=3)
    assert 1 - mixture < 0.5 * (1 - linear.mean())  # under half the unexplained variance


def test_feedforward_experts_fit_targets_of_any_scale_and_offset():
    """The target is standardized for the fit, so tanh experts (bounded by 1)
    fit a target in the thousands as well as the original one."""
    X, y, _ = model_data("perturbed_cosine", 300, seed=9, expert="tanh")
    # a tight tol: at the default, L-BFGS-B's ftol test (an absolute decrease,
    # since the objective is below 1) can stop the two fits, whose standardized
    # targets differ by rounding, at different points of a slow descent
    params = dict(n_experts=2, expert="tanh", random_state=0, tol=1e-10, max_iter=3000)
    a = CosineMoERegressor(**params).fit(X, y)
    b = CosineMoERegressor(**params).fit(X, 1e4 * y + 300)
    assert a.score(X, y) > 0.9
    assert b.score(X, 1e4 * y + 300) == pytest.approx(a.score(X, y), abs=5e-3)
    assert abs(b.output_scale_) > 1e3


# ---- bad input -------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_rejected(bad):
    X = np.ones((10, 2))
    X[3, 1] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        CosineMoERegressor().fit(X, np.arange(10.0))
    y = np.arange(10.0)
    y[2] = bad
    with pytest.raises(ValueError, match="Input y contains"):
        CosineMoERegressor().fit(np.ones((10, 2)), y)


def test_wrong_number_of_features_is_rejected(fitted):
    reg, X = fitted
    with pytest.raises(ValueError, match="features"):
        reg.predict(X[:, :2])


def test_empty_and_string_input_are_rejected():
    with pytest.raises(ValueError, match="0 sample"):
        CosineMoERegressor().fit(np.empty((0, 2)), np.empty(0))
    with pytest.raises(ValueError, match="(could not convert|dtype)"):
        CosineMoERegressor().fit([["a", "b"], ["c", "d"]], [1.0, 2.0])


@pytest.mark.parametrize("params,match", [
    ({"n_experts": 0}, "n_experts"),
    ({"router": "dot"}, "router"),
    ({"tau1": 0.0}, "tau1 must be > 0"),
    ({"tau1": -1.0}, "tau1"),
    ({"temperature": 0.0}, "temperature"),
    ({"expert": "relu"}, "expert"),
    ({"n_experts": 3, "top_k": 3}, "top_k must be smaller than n_experts=3"),
])
def test_bad_hyperparameters_are_rejected(params, match):
    with pytest.raises(ValueError, match=match):
        CosineMoERegressor(**params).fit(np.ones((5, 2)), np.arange(5.0))


def test_cosine_router_accepts_tau1_zero():
    X, y, _ = model_data("cosine", 100, seed=10)
    reg = CosineMoERegressor(router="cosine", tau1=0.0, n_experts=2, random_state=0).fit(X, y)
    # no division by a zero norm: finite gates that sum to 1, a useful fit
    gates = reg.predict_gates(X)
    assert np.all(np.isfinite(gates)) and np.all(np.isfinite(reg.predict(X)))
    assert_allclose(gates.sum(axis=1), 1.0)
    assert reg.score(X, y) > 0


def test_negative_or_zero_total_sample_weight_is_rejected():
    X = np.random.default_rng(0).standard_normal((5, 2))
    with pytest.raises(ValueError, match="[Nn]egative"):
        CosineMoERegressor().fit(X, np.arange(5.0), sample_weight=[1, 1, -1, 1, 1])
    with pytest.raises(ValueError, match="non-zero"):
        CosineMoERegressor().fit(X, np.arange(5.0), sample_weight=np.zeros(5))


def test_callers_arrays_are_not_modified():
    X, y, _ = model_data("cosine", 200, seed=11)
    X[0] = 0.0
    w = np.linspace(0.5, 2, 200)
    copies = X.copy(), y.copy(), w.copy()
    reg = CosineMoERegressor(router="cosine", n_experts=2, random_state=0)
    reg.fit(X, y, sample_weight=w)
    reg.predict(X)
    reg.score(X, y, sample_weight=w)
    for before, after in zip(copies, (X, y, w)):
        assert_array_equal(before, after)
    assert np.all(np.isfinite(reg.predict(X)))
