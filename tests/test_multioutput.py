"""Multi-output regression: shared gates, one set of experts per output.

The model, the objective and its gradient against the plain NumPy formulas of
tests/reference.py and their finite differences; the estimator's shapes,
invariances and errors (user guide, :ref:`multi-output`).
"""

import warnings
from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from sklearn_cosmoe import CosineMoERegressor, CosineMoERegressorCV, _kernels
from sklearn_cosmoe._model import (MoEParams, MoESpec, gate_weights, gates_and_experts,
                                   objective, predict)
from sklearn_cosmoe.datasets import make_cosine_moe

from . import reference
from .conftest import EXPERTS, ROUTERS


def multi_params(rng, k, d, m):
    return MoEParams(rng.standard_normal((k, d)), rng.standard_normal(k),
                     rng.standard_normal((k, m, d)), rng.standard_normal((k, m)),
                     output_scale=rng.uniform(0.5, 1.5, m),
                     output_intercept=rng.standard_normal(m))


def reference_loss(theta, X, Y, w, shape, spec):
    p = MoEParams.from_vector(theta, shape, spec)
    m = spec.n_outputs
    return reference.least_squares_loss(
        X, Y, w, p.gate_coef, p.gate_intercept, p.expert_coef, p.expert_intercept,
        np.broadcast_to(p.output_scale, (m,)), np.broadcast_to(p.output_intercept, (m,)),
        spec.router, spec.expert, alpha=spec.alpha, tau1=spec.tau1, tau2=spec.tau2,
        temperature=spec.temperature, top_k=spec.top_k)


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("expert", EXPERTS)
@pytest.mark.parametrize("top_k", [None, 2])
def test_objective_and_gradient_match_numpy_and_finite_differences(small_data, m, router,
                                                                   expert, top_k):
    X, _, w = small_data
    rng = np.random.default_rng(m)
    Y = rng.standard_normal((X.shape[0], m))
    shape = (3, X.shape[1])
    spec = MoESpec(router=router, expert=expert, tau1=0.5, tau2=0.8, temperature=0.7,
                   top_k=top_k, alpha=0.05, n_outputs=m)
    theta = multi_params(rng, *shape, m).to_vector(spec)
    loss, grad = objective(theta, X, Y, w, shape, spec)
    assert loss == pytest.approx(reference_loss(theta, X, Y, w, shape, spec), rel=1e-12)
    # central differences of the NumPy reference, coordinate by coordinate
    h = 1e-6
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = h
        numeric[i] = (reference_loss(theta + step, X, Y, w, shape, spec)
                      - reference_loss(theta - step, X, Y, w, shape, spec)) / (2 * h)
    assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7 * np.linalg.norm(numeric))


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("expert", ["linear", "tanh"])
def test_one_column_is_bit_for_bit_the_single_output_objective(small_data, router, expert):
    # the layouts of n_outputs=None and n_outputs=1 coincide, and so must every bit
    X, y, w = small_data
    spec = MoESpec(router=router, expert=expert, top_k=2, alpha=0.1)
    theta = multi_params(np.random.default_rng(0), 3, 3, 1).to_vector(
        replace(spec, n_outputs=1))
    single = objective(theta, X, y, w, (3, 3), spec)
    multi = objective(theta, X, y[:, None], w, (3, 3), replace(spec, n_outputs=1))
    assert single[0] == multi[0]
    assert_array_equal(single[1], multi[1])


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("expert", EXPERTS)
def test_predict_matches_numpy(small_data, router, expert):
    X = small_data[0]
    spec = MoESpec(router=router, expert=expert, temperature=0.6, top_k=2, n_outputs=4)
    p = multi_params(np.random.default_rng(1), 3, 3, 4)
    expected = reference.predict_outputs(
        X, p.gate_coef, p.gate_intercept, p.expert_coef, p.expert_intercept,
        p.output_scale, p.output_intercept, router, expert, temperature=0.6, top_k=2)
    assert_allclose(predict(X, p, spec), expected, rtol=1e-12, atol=1e-12)
    gates, outputs = gates_and_experts(X, p, spec)
    assert outputs.shape == (X.shape[0], 3, 4)
    assert_array_equal(gate_weights(X, p, spec), gates)
    expected_gates = reference.gates(
        reference.scores(X, p.gate_coef, p.gate_intercept, router, temperature=0.6), 2)
    assert_allclose(gates, expected_gates, rtol=1e-12, atol=1e-14)


def test_parameter_vector_round_trip():
    spec = MoESpec(expert="gelu", n_outputs=3)
    p = multi_params(np.random.default_rng(2), 4, 5, 3)
    theta = p.to_vector(spec)
    assert theta.shape == (spec.n_parameters((4, 5)),) == (4 * 5 + 4 + 3 * (4 * 5 + 4) + 6,)
    back = MoEParams.from_vector(theta, (4, 5), spec)
    for name in ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept",
                 "output_scale", "output_intercept"):
        assert_array_equal(getattr(back, name), getattr(p, name))
    one = back.output(1)
    assert_array_equal(one.expert_coef, p.expert_coef[:, 1])
    assert (one.output_scale, one.output_intercept) == (p.output_scale[1],
                                                        p.output_intercept[1])


def test_gated_gram_takes_one_right_hand_side_per_output(small_data):
    X, _, w = small_data
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((X.shape[0], 3))
    gates = rng.dirichlet(np.ones(2), X.shape[0])
    gram, rhs = _kernels.gated_gram(X, Y, w, gates)
    assert rhs.shape == (2 * 4, 3)
    for j in range(3):
        gram_j, rhs_j = _kernels.gated_gram(X, Y[:, j], w, gates)
        assert_array_equal(gram_j, gram)
        assert_array_equal(rhs_j, rhs[:, j])
    Z = np.concatenate([gates[:, [i]] * np.c_[X, np.ones(len(X))] for i in range(2)], axis=1)
    assert_allclose(rhs, Z.T @ (w[:, None] * Y), rtol=1e-12, atol=1e-12)


def test_objective_checks_the_target_shape(small_data):
    X, y, w = small_data
    spec = MoESpec(n_outputs=2)
    theta = multi_params(np.random.default_rng(0), 3, 3, 2).to_vector(spec)
    with pytest.raises(ValueError, match=r"y has shape \(40, 3\); expected \(40, 2\)"):
        objective(theta, X, np.c_[y, y, y], w, (3, 3), spec)
    with pytest.raises(ValueError, match=r"y has shape \(40,\); expected \(40, 2\)"):
        objective(theta, X, y, w, (3, 3), spec)


# -- the estimator ------------------------------------------------------------
@pytest.fixture(scope="module")
def two_outputs():
    X, y, _ = make_cosine_moe(240, 3, 2, temperature=0.3, inputs="normal",
                              random_state=0)
    rng = np.random.default_rng(0)
    Y = np.c_[y, 10.0 + 5.0 * np.sin(X[:, 0]) + 0.1 * rng.standard_normal(len(y))]
    return X, Y


@pytest.mark.parametrize("expert", ["linear", "tanh"])
def test_a_one_column_target_fits_bit_for_bit_like_a_1d_target(two_outputs, expert):
    X, Y = two_outputs
    y = Y[:, 0]
    params = dict(n_experts=2, expert=expert, top_k=1, max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        single = CosineMoERegressor(**params).fit(X, y)
        column = CosineMoERegressor(**params).fit(X, y[:, None])
    assert column.predict(X).shape == (len(y), 1)
    assert_array_equal(column.predict(X)[:, 0], single.predict(X))
    assert column.expert_coef_.shape == (2, 1, 3)
    assert_array_equal(column.expert_coef_[:, 0], single.expert_coef_)
    assert column.loss_ == single.loss_
    assert column.bic(X, y[:, None]) == single.bic(X, y)


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("expert", ["linear", "gelu"])
def test_predictions_are_the_formula_of_the_fitted_attributes(two_outputs, router, expert):
    X, Y = two_outputs
    reg = CosineMoERegressor(n_experts=3, router=router, expert=expert, tau1=0.5,
                             temperature=0.5, top_k=2, max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, Y)
    assert reg.expert_coef_.shape == (3, 2, 3)
    assert reg.expert_intercept_.shape == (3, 2)
    assert np.shape(reg.output_scale_) == np.shape(reg.output_intercept_) == (2,)
    expected = reference.predict_outputs(
        X, reg.gate_coef_, reg.gate_intercept_, reg.expert_coef_, reg.expert_intercept_,
        reg.output_scale_, reg.output_intercept_, router, expert, tau1=0.5,
        temperature=0.5, top_k=2)
    pred = reg.predict(X)
    assert pred.shape == Y.shape
    assert_allclose(pred, expected, rtol=1e-10, atol=1e-10)
    gates, experts = reg.predict_gates(X), reg.predict_experts(X)
    assert experts.shape == (len(X), 3, 2)
    assert_allclose(np.einsum("nk,nkj->nj", gates, experts), pred, rtol=1e-10, atol=1e-10)


def test_one_linear_expert_is_multi_output_ridge_regression(two_outputs):
    # one expert: the gate is 1 and each output is a ridge regression on its
    # standardized column, alpha scaled by the total weight (Ridge's objective)
    X, Y = two_outputs
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    alpha = 0.05
    reg = CosineMoERegressor(n_experts=1, alpha=alpha, random_state=0).fit(X, Y, w)
    mean = w @ Y / w.sum()
    std = np.sqrt(w @ (Y - mean) ** 2 / w.sum())
    ridge = Ridge(alpha=alpha * w.sum()).fit(X, (Y - mean) / std, sample_weight=w)
    assert_allclose(reg.predict(X), mean + std * ridge.predict(X), rtol=1e-7, atol=1e-7)


def test_outputs_that_are_affine_maps_of_each_other_get_the_same_experts(two_outputs):
    # each output is standardized, so the two standardized targets agree (up
    # to the sign) and so must the two outputs' experts, up to the map back
    X, Y = two_outputs
    Y = np.c_[Y[:, 0], 5.0 - 3.0 * Y[:, 0]]
    reg = CosineMoERegressor(n_experts=2, temperature=0.3, random_state=0).fit(X, Y)
    assert_allclose(reg.expert_coef_[:, 1], -3.0 * reg.expert_coef_[:, 0], rtol=1e-10)
    assert_allclose(reg.expert_intercept_[:, 1], 5.0 - 3.0 * reg.expert_intercept_[:, 0],
                    rtol=1e-10)
    pred = reg.predict(X)
    assert_allclose(pred[:, 1], 5.0 - 3.0 * pred[:, 0], rtol=1e-10, atol=1e-10)


def test_integer_weights_are_repeated_rows_with_several_outputs(two_outputs):
    X, Y = two_outputs
    counts = np.random.default_rng(2).integers(0, 3, len(X))
    X_rep, Y_rep = np.repeat(X, counts, axis=0), np.repeat(Y, counts, axis=0)
    spec = MoESpec(expert="tanh", alpha=0.01, n_outputs=2)
    theta = multi_params(np.random.default_rng(3), 2, 3, 2).to_vector(spec)
    weighted = objective(theta, X, Y, counts.astype(float), (2, 3), spec)
    repeated = objective(theta, X_rep, Y_rep, np.ones(len(X_rep)), (2, 3), spec)
    assert weighted[0] == pytest.approx(repeated[0], rel=1e-12)
    assert_allclose(weighted[1], repeated[1], rtol=1e-10, atol=1e-12)
    # the fits: the same objective at the end (the parameters agree only to
    # the precision of L-BFGS-B's stopping test on this flat objective)
    reg = CosineMoERegressor(n_experts=2, temperature=0.3, random_state=0)
    fit_weighted = clone(reg).fit(X, Y, sample_weight=counts)
    fit_repeated = clone(reg).fit(X_rep, Y_rep)
    assert fit_weighted.loss_ == pytest.approx(fit_repeated.loss_, rel=1e-5)
    difference = fit_weighted.predict(X) - fit_repeated.predict(X)
    assert np.max(np.abs(difference) / Y.std(axis=0)) < 1e-3


def test_criteria_count_every_output(two_outputs):
    X, Y = two_outputs
    reg = CosineMoERegressor(n_experts=2, expert="tanh", max_iter=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, Y)
    n, d, k, m = len(X), 3, 2, 2
    mse = np.mean((Y - reg.predict(X)) ** 2, axis=0)
    log_likelihood = -0.5 * n * np.sum(np.log(2 * np.pi * mse) + 1.0)
    # router k (d + 1) - 1 - d; per output k (d + 1) + 2; m noise variances
    p = k * (d + 1) - 1 - d + m * (k * (d + 1) + 2) + m
    assert reg.bic(X, Y) == pytest.approx(-2 * log_likelihood + p * np.log(n), rel=1e-12)
    assert reg.aic(X, Y) == pytest.approx(-2 * log_likelihood + 2 * p, rel=1e-12)
    with pytest.raises(ValueError, match=r"y has shape \(240,\); expected \(240, 2\)"):
        reg.bic(X, Y[:, 0])


def test_bad_targets_get_clear_errors(two_outputs):
    X, Y = two_outputs
    with pytest.raises(ValueError, match="dim 3"):
        CosineMoERegressor().fit(X, Y[:, :, None])
    with pytest.raises(ValueError, match="0 feature"):
        CosineMoERegressor().fit(X, Y[:, :0])
    reg = CosineMoERegressor(n_experts=2, max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, Y)
        with pytest.raises(ValueError, match="n_outputs=2, this y has n_outputs=None"):
            reg.fit(X, Y[:, 0])
        with pytest.raises(ValueError, match="n_outputs=2, this y has n_outputs=3"):
            reg.fit(X, np.c_[Y, Y[:, 0]])
        reg.fit(X, 2.0 * Y)  # the same shape: a warm start
    assert reg.predict(X).shape == Y.shape


def test_fit_leaves_the_target_unchanged(two_outputs):
    X, Y = two_outputs
    Y_fortran = np.asfortranarray(Y)
    before = Y_fortran.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        CosineMoERegressor(n_experts=2, max_iter=5, random_state=0).fit(X, Y_fortran)
    assert_array_equal(Y_fortran, before)


def test_cv_chooses_and_refits_with_several_outputs(two_outputs):
    X, Y = two_outputs
    cv = CosineMoERegressorCV(max_experts=2, cv=2, temperatures=[0.3], max_iter=50,
                              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cv.fit(X, Y)
    assert cv.predict(X).shape == Y.shape
    assert cv.estimator_.expert_coef_.shape == (cv.n_experts_, 2, 3)
    assert_allclose(cv.predict(X), cv.estimator_.predict(X))


def test_dask_inputs_with_several_outputs_are_refused_clearly(two_outputs):
    da = pytest.importorskip("dask.array")
    X, Y = two_outputs
    with pytest.raises(ValueError, match="y must be a 1-d Dask array; got 2 dimensions"):
        CosineMoERegressor(n_experts=2).fit(da.from_array(X, chunks=120),
                                            da.from_array(Y, chunks=120))
