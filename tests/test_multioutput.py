"""Multi-output regression: shared gates, one set of experts per output.

The model, the objective and its gradient against the plain NumPy formulas of
tests/reference.py and their finite differences; the estimator's shapes,
invariances and errors (user guide, :ref:`multi-output`).
"""

from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_cosmoe import _kernels
from sklearn_cosmoe._model import (MoEParams, MoESpec, gate_weights, gates_and_experts,
                                   objective, predict)

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
