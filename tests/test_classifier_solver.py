"""The classifier's Fisher matrix and exact Hessian, its starts, and its certified fits."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from sklearn_cosmoe import CosineMoEClassifier
from sklearn_cosmoe._classifier_model import ClassifierParams, objective
from sklearn_cosmoe._classifier_objective import (ClassifierObjective, finish_fisher,
                                                  fisher_sums)
from sklearn_cosmoe._classifier_solver import initial_params
from sklearn_cosmoe._memory import MEMORY_LIMIT, classifier_fit_bytes
from sklearn_cosmoe._model import MoESpec
from sklearn_cosmoe._routers import gate_atoms, gate_coef_of_atoms

from . import reference

N, D, K, C = 40, 3, 3, 3
TAU1, TAU2, TEMPERATURE, ALPHA = 0.7, 1.3, 0.8, 0.3


def random_problem(router, top_k, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    X[4] = 0.0  # a zero row: the cosine scores' guard
    y = rng.integers(0, C, N)
    params = ClassifierParams(0.5 * rng.standard_normal((K, D)), rng.standard_normal(K),
                              rng.standard_normal((K, C, D)), rng.standard_normal((K, C)))
    spec = MoESpec(router=router, tau1=TAU1, tau2=TAU2, temperature=TEMPERATURE,
                   top_k=top_k, alpha=ALPHA)
    return X, y, rng.uniform(0.5, 2.0, N), params, spec


def sums(X, y, w, params, spec, atoms=False, exact=False):
    return finish_fisher(fisher_sums(X, np.linalg.norm(X, axis=1), y, w, params, spec,
                                     exact), params, spec, atoms)


def _probabilities(X, theta, shape, spec, atoms):
    """``p(c | x)`` of the NumPy reference; with ``atoms`` the router's block of
    ``theta`` holds ``u_i`` and the scores are ``u_i . x / (T p(x)) + beta_0i``:
    the reference's linear router on the rows divided by ``p(x)``."""
    p = ClassifierParams.from_vector(theta, shape)
    router, rows = spec.router, X
    if atoms and spec.router != "linear":
        norms = np.linalg.norm(X, axis=1) + (TAU2 if spec.router == "perturbed_cosine"
                                             else 0.0)
        rows = X / np.where(norms > 0, norms, 1.0)[:, None]
        router = "linear"
    g = reference.gates(reference.scores(rows, p.gate_coef, p.gate_intercept, router,
                                         TAU1, TAU2, TEMPERATURE), spec.top_k)
    logits = np.einsum("kcd,nd->nkc", p.expert_coef, X) + p.expert_intercept
    pi = np.exp(logits - logits.max(axis=2, keepdims=True))
    pi /= pi.sum(axis=2, keepdims=True)
    return np.einsum("nk,nkc->nc", g, pi)


@pytest.mark.parametrize("atoms", [False, True])
@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("router", ["linear", "cosine", "perturbed_cosine"])
def test_fisher_matrix_is_sum_of_grad_p_grad_p_over_p(router, top_k, atoms):
    """The Fisher matrix against ``sum_n w_n sum_c J_nc J_nc^T / p_nc / sum w``
    (plus the ridge), ``J`` by central differences of the reference's class
    probabilities; in ``beta_1`` or in the router's ``u``."""
    X, y, w, params, spec = random_problem(router, top_k)
    theta = params.to_vector()
    k, d = K, D
    if atoms:
        theta[:k * d] = gate_atoms(params.gate_coef, router, TAU1).ravel()
    loss, grad, fisher = sums(X, y, w, params, spec, atoms=atoms)
    kernel_loss, kernel_grad = objective(params.to_vector(), X, y, w, params.shape, spec)
    assert_allclose(loss, kernel_loss, rtol=1e-13)
    if not atoms:
        assert_allclose(grad, kernel_grad, rtol=0, atol=1e-13 * np.max(np.abs(kernel_grad)))
    eps = 1e-6
    columns = []
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = eps
        columns.append((_probabilities(X, theta + step, params.shape, spec, atoms)
                        - _probabilities(X, theta - step, params.shape, spec, atoms))
                       / (2 * eps))
    J = np.stack(columns, axis=-1)
    p = _probabilities(X, theta, params.shape, spec, atoms)
    expected = np.einsum("n,nc,ncp,ncq->pq", w, 1.0 / p, J, J) / w.sum()
    # the gradient of the mean negative log-likelihood: -sum w J_ny / p_ny / sum w
    likelihood_grad = -np.einsum("n,np->p", w / p[np.arange(N), y],
                                 J[np.arange(N), y]) / w.sum()
    ridge = np.arange(k * d + k, theta.size - k * C)
    expected[ridge, ridge] += ALPHA
    likelihood_grad[ridge] += ALPHA * theta[ridge]
    if router == "linear":
        expected[np.arange(k * d), np.arange(k * d)] += ALPHA
        likelihood_grad[:k * d] += ALPHA * theta[:k * d]
    assert_allclose(fisher, expected, rtol=0, atol=1e-8 * np.max(np.abs(expected)))
    assert_allclose(grad, likelihood_grad, rtol=0, atol=1e-8 * np.max(np.abs(grad)))


@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("router", ["linear", "perturbed_cosine"])
def test_metric_plus_curvature_is_the_hessian_and_bounds_it_and_the_fisher(router, top_k):
    """``metric + curvature`` against central differences of the gradient in
    the atoms (``beta_1i = tau1 u_i / (1 - |u_i|)``); the metric is at least
    the exact Hessian and at least the Fisher matrix."""
    X, y, w, params, spec = random_problem(router, top_k, seed=1)
    k, d = K, D
    z = params.to_vector()
    if router == "perturbed_cosine":
        z[:k * d] = gate_atoms(params.gate_coef, router, TAU1).ravel()

    def at(z):
        theta = z.copy()
        if router == "perturbed_cosine":
            theta[:k * d] = gate_coef_of_atoms(z[:k * d].reshape(k, d), TAU1).ravel()
        return ClassifierParams.from_vector(theta, params.shape)

    _, _, metric, curvature = sums(X, y, w, at(z), spec, atoms=True, exact=True)
    fisher = sums(X, y, w, at(z), spec, atoms=True)[2]
    eps = 1e-6
    columns = []
    for j in range(z.size):
        step = np.zeros_like(z)
        step[j] = eps
        columns.append((sums(X, y, w, at(z + step), spec, atoms=True)[1]
                        - sums(X, y, w, at(z - step), spec, atoms=True)[1]) / (2 * eps))
    hessian = np.stack(columns, axis=1)
    scale = np.max(np.abs(hessian))
    assert_allclose(metric + curvature, hessian, rtol=0, atol=1e-7 * scale)
    assert np.linalg.eigvalsh(metric - fisher).min() >= -1e-12 * scale
    assert np.linalg.eigvalsh(metric - hessian).min() >= -1e-7 * scale
    # the Fisher matrix alone is not the Hessian here
    assert not np.allclose(fisher, hessian, rtol=0, atol=1e-3 * scale)


@pytest.mark.parametrize("router", ["linear", "perturbed_cosine"])
def test_top_1_gates_give_the_router_no_metric_and_no_curvature(router):
    """Under top-1 gates every gate is 0 or 1 and moves with no score: the
    router's rows of the metric, the curvature and the gradient are exactly 0
    (not rounding), so they take no part in the model."""
    X, y, w, params, spec = random_problem(router, 1, seed=2)
    spec = MoESpec(router=router, tau1=TAU1, tau2=TAU2, temperature=TEMPERATURE,
                   top_k=1, alpha=0.0)
    _, grad, metric, curvature = sums(X, y, w, params, spec, atoms=True, exact=True)
    router_block = slice(0, K * D + K)
    assert np.all(metric[router_block] == 0.0) and np.all(curvature[router_block] == 0.0)
    assert np.all(grad[router_block] == 0.0)
    assert np.max(np.abs(metric[K * D + K:, K * D + K:])) > 1e-3


def test_exact_hessian_is_refused_where_the_chain_rule_would_bend_it():
    X, y, w, params, spec = random_problem("cosine", None)
    with pytest.raises(ValueError, match="in the atoms"):
        sums(X, y, w, params, spec, exact=True)


def test_integer_weights_give_the_sums_of_repeated_rows():
    X, y, _, params, spec = random_problem("perturbed_cosine", None)
    w = np.random.default_rng(1).integers(0, 4, N)
    weighted = sums(X, y, w.astype(float), params, spec, atoms=True, exact=True)
    repeated = sums(np.repeat(X, w, axis=0), np.repeat(y, w), np.ones(w.sum()), params,
                    spec, atoms=True, exact=True)
    for a, b in zip(weighted, repeated):
        assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def _clusters(n=600, seed=0):
    """Four directions, each with its own linear rule between three classes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    quadrant = 2 * (X[:, 0] > 0) + (X[:, 1] > 0)
    rules = np.array([[1.0, 0, 2], [-1, 1, 0], [0, -2, 1], [2, 1, -1]])
    score = np.einsum("nd,nd->n", X, rules[quadrant])
    y = np.digitize(score, [-0.5, 0.5])
    return X, y


def test_start_experts_differ_and_each_sees_its_cluster_only():
    X, y = _clusters()
    w = np.ones(len(y))
    spec = MoESpec()
    data = ClassifierObjective(X, y, w, 3)
    start = initial_params(data, spec, 4, np.random.default_rng(0))
    coef = np.concatenate([start.expert_coef.reshape(4, -1), start.expert_intercept], axis=1)
    for i in range(4):
        for j in range(i):
            assert np.max(np.abs(coef[i] - coef[j])) > 0.1
    # expert 0 depends on the labels of its own cluster's rows alone
    centres = start.gate_coef / np.linalg.norm(start.gate_coef, axis=1, keepdims=True)
    cluster = np.argmax(X @ centres.T, axis=1)
    relabelled = np.where(cluster == 0, y, (y + 1) % 3)
    again = initial_params(ClassifierObjective(X, relabelled, w, 3), spec, 4,
                           np.random.default_rng(0))
    assert_allclose(again.gate_coef, start.gate_coef, rtol=0, atol=0)
    assert_allclose(again.expert_coef[0], start.expert_coef[0], rtol=1e-12, atol=1e-14)
    assert_allclose(again.expert_intercept[0], start.expert_intercept[0], rtol=1e-12,
                    atol=1e-14)
    assert not np.allclose(again.expert_coef[1], start.expert_coef[1])


@pytest.mark.parametrize("router", ["linear", "cosine", "perturbed_cosine"])
def test_integer_weights_and_repeated_rows_certify_the_same_objective(router):
    X, y = _clusters(300, seed=1)
    w = np.random.default_rng(0).integers(0, 4, len(y))
    fit = dict(n_experts=3, router=router, solver="gauss-newton", tol=1e-10,
               random_state=0)
    weighted = CosineMoEClassifier(**fit).fit(X, y, sample_weight=w)
    repeated = CosineMoEClassifier(**fit).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.converged_ and repeated.converged_
    assert weighted.stationarity_ <= 1e-10 and repeated.stationarity_ <= 1e-10
    assert_allclose(weighted.loss_, repeated.loss_, rtol=1e-9)
    # ignoring the weights would not pass
    plain = CosineMoEClassifier(**fit).fit(X, y)
    assert abs(plain.loss_ - weighted.loss_) > 1e-6 * weighted.loss_


@pytest.mark.parametrize("router", ["linear", "cosine", "perturbed_cosine"])
def test_a_certified_fit_moves_by_at_most_what_its_test_promised(router):
    """Refitted from where it stopped with a tol 100x smaller, a certified fit's
    objective falls by no more than ``tol`` times itself."""
    X, y = _clusters(400, seed=2)
    clf = CosineMoEClassifier(n_experts=3, router=router, solver="gauss-newton",
                              tol=1e-6, warm_start=True, random_state=0).fit(X, y)
    assert clf.converged_ and 0 <= clf.stationarity_ <= 1e-6
    loose = clf.loss_
    clf.set_params(tol=1e-8).fit(X, y)
    assert clf.converged_ and clf.stationarity_ <= 1e-8
    assert 0 <= loose - clf.loss_ <= 1e-6 * loose


def test_stationarity_is_read_by_newton_fits_and_nan_for_lbfgs():
    X, y = _clusters(200, seed=3)
    newton = CosineMoEClassifier(n_experts=2, solver="gauss-newton", random_state=0).fit(X, y)
    assert newton.converged_ and 0 <= newton.stationarity_ <= newton.tol
    lbfgs = CosineMoEClassifier(n_experts=2, solver="lbfgs", random_state=0).fit(X, y)
    assert np.isnan(lbfgs.stationarity_)
    auto = CosineMoEClassifier(n_experts=2, random_state=0).fit(X, y)
    assert np.isnan(auto.stationarity_) and auto.loss_ == lbfgs.loss_
    with pytest.warns(ConvergenceWarning, match="max_iter=2 Newton iterations"):
        short = CosineMoEClassifier(n_experts=2, solver="gauss-newton", max_iter=2,
                                    random_state=0).fit(X, y)
    assert not short.converged_ and short.stationarity_ > short.tol


@pytest.mark.parametrize("router", ["cosine", "perturbed_cosine"])
@pytest.mark.parametrize("n_experts,top_k", [(3, 2), (4, 1)])
def test_top_k_fit_certifies_its_last_run(n_experts, top_k, router):
    X, y = _clusters(300, seed=4)
    clf = CosineMoEClassifier(n_experts=n_experts, top_k=top_k, router=router,
                              solver="gauss-newton", random_state=0).fit(X, y)
    assert clf.converged_ and clf.stationarity_ <= clf.tol
    assert np.all(np.count_nonzero(clf.predict_gates(X), axis=1) <= top_k)


def test_newton_matrices_count_in_the_classifier_memory_bound():
    # 4 experts on 2000 features and 3 classes: 32016 parameters
    newton = classifier_fit_bytes(10, 2000, 4, 3, "gauss-newton")
    assert newton["newton"] >= 24 * 32016 ** 2 * 8 > MEMORY_LIMIT
    assert classifier_fit_bytes(10, 2000, 4, 3)["newton"] == 0
    with pytest.raises(ValueError, match="solver='lbfgs'"):
        CosineMoEClassifier(solver="gauss-newton").fit(np.ones((3, 2000)), [0, 1, 2])
