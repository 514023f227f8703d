"""CosineMoEClassifier: the kernel against plain NumPy, gradients, and the estimator."""

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sklearn_cosmoe import CosineMoEClassifier
from sklearn_cosmoe._classifier_model import ClassifierParams, objective
from sklearn_cosmoe._kernels import row_norms
from sklearn_cosmoe._kernels_classifier import gates_and_log_proba, nll_and_gradient
from sklearn_cosmoe._model import MoESpec
from sklearn_cosmoe._routers import ROUTERS

from . import reference

ROUTER_NAMES = ["linear", "cosine", "perturbed_cosine"]
TAU1, TAU2, TEMPERATURE = 0.7, 1.3, 0.8


def _fixture(n_classes, n=23, d=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[4] = 0.0  # a zero row: the cosine term is 0 there, never NaN
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)
    w = rng.uniform(0.5, 2.0, n)
    params = ClassifierParams(rng.standard_normal((k, d)), rng.standard_normal(k),
                              rng.standard_normal((k, n_classes, d)),
                              rng.standard_normal((k, n_classes)))
    return X, y, w, params


def _codes(router, top_k):
    return ROUTERS[router], TAU1, TAU2, 1.0 / TEMPERATURE, top_k or 0


def _ref_kwargs(router, top_k):
    return dict(router=router, tau1=TAU1, tau2=TAU2, temperature=TEMPERATURE, top_k=top_k)


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("router", ROUTER_NAMES)
def test_forward_and_loss_match_numpy(router, top_k, n_classes):
    X, y, w, params = _fixture(n_classes)
    X_before = X.copy()
    gates, log_proba = gates_and_log_proba(X, row_norms(X), *params.arrays(),
                                           *_codes(router, top_k))
    ref_log_proba, ref_gates = reference.classifier_log_proba(
        X, *params.arrays(), **_ref_kwargs(router, top_k))
    np.testing.assert_allclose(gates, ref_gates, rtol=0, atol=1e-14)
    np.testing.assert_allclose(log_proba, ref_log_proba, rtol=1e-13, atol=1e-13)
    loss, _ = nll_and_gradient(X, row_norms(X), y, w, *params.arrays(),
                               *_codes(router, top_k))
    expected = reference.classifier_nll(X, y, w, *params.arrays(),
                                        **_ref_kwargs(router, top_k))
    assert loss == pytest.approx(expected, rel=1e-13)
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("router", ROUTER_NAMES)
def test_gradient_matches_central_differences(router, top_k, n_classes):
    """The objective's gradient (ridge included) against central differences
    of the NumPy reference objective."""
    X, y, w, params = _fixture(n_classes, seed=1)
    alpha = 0.3
    spec = MoESpec(router=router, tau1=TAU1, tau2=TAU2, temperature=TEMPERATURE,
                   top_k=top_k, alpha=alpha)
    theta = params.to_vector()
    shape = params.shape

    def reference_objective(vector):
        p = ClassifierParams.from_vector(vector, shape)
        ridge = np.sum(p.expert_coef ** 2)
        if router == "linear":
            ridge += np.sum(p.gate_coef ** 2)
        return (reference.classifier_nll(X, y, w, *p.arrays(),
                                         **_ref_kwargs(router, top_k))
                + 0.5 * alpha * ridge)

    loss, grad = objective(theta, X, y, w, shape, spec)
    assert loss == pytest.approx(reference_objective(theta), rel=1e-13)
    eps = 1e-6
    numeric = np.empty_like(theta)
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = eps
        numeric[j] = (reference_objective(theta + step)
                      - reference_objective(theta - step)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_many_blocks_and_extreme_logits():
    """Several row blocks add up to the one-pass reference; logits of 1e3 give
    finite log-probabilities (log-sum-exp) where the direct sum underflows."""
    X, y, w, params = _fixture(3, n=1500, seed=2)
    codes = _codes("perturbed_cosine", None)
    loss, _ = nll_and_gradient(X, row_norms(X), y, w, *params.arrays(), *codes)
    expected = reference.classifier_nll(X, y, w, *params.arrays(),
                                        **_ref_kwargs("perturbed_cosine", None))
    assert loss == pytest.approx(expected, rel=1e-12)
    big = params.copy()
    big.expert_coef = 1e3 * big.expert_coef
    _, log_proba = gates_and_log_proba(X, row_norms(X), *big.arrays(), *codes)
    assert np.all(np.isfinite(log_proba))
    assert np.all(log_proba <= 0)
    np.testing.assert_allclose(np.exp(log_proba).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("top_k", [None, 2])
def test_loss_is_finite_where_every_term_underflows(top_k):
    """The loss takes ``log p(y | x)`` from the scores and logits with one
    logarithm per row: it equals the class log-probabilities (a log-sum-exp
    over the experts) at the labels, also on rows where every
    ``g_i pi_iy`` underflows (logits of 1e3)."""
    X, y, w, params = _fixture(3, n=300, seed=3)
    params.expert_coef = 1e3 * params.expert_coef
    codes = _codes("perturbed_cosine", top_k)
    loss, grad = nll_and_gradient(X, row_norms(X), y, w, *params.arrays(), *codes)
    _, log_proba = gates_and_log_proba(X, row_norms(X), *params.arrays(), *codes)
    picked = log_proba[np.arange(len(y)), y]
    assert np.min(picked) < -800  # p(y | x) < exp(-800): every term is 0 in float64
    assert loss == pytest.approx(-np.sum(w * picked) / np.sum(w), rel=1e-13)
    assert np.all(np.isfinite(grad))


def test_kernel_rejects_bad_labels_and_shapes():
    X, y, w, params = _fixture(3)
    codes = _codes("cosine", None)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 3\)"):
        nll_and_gradient(X, row_norms(X), y + 1, w, *params.arrays(), *codes)
    with pytest.raises(ValueError, match="expert_coef has shape"):
        gates_and_log_proba(X, row_norms(X), params.gate_coef, params.gate_intercept,
                            params.expert_coef[:, :, :2], params.expert_intercept, *codes)


def _checkerboard(n=400, seed=0):
    """Class = sign(x0) in the upper half plane, -sign(x0) in the lower one:
    no linear classifier does better than chance, two experts are exact."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    X = X[np.abs(X[:, 0]) > 0.2]
    X = X[np.abs(X[:, 1]) > 0.2]
    y = ((X[:, 0] > 0) == (X[:, 1] > 0)).astype(int)
    return X, y


@pytest.mark.parametrize("router", ROUTER_NAMES)
def test_recovers_a_problem_no_linear_model_fits(router):
    X, y = _checkerboard()
    linear = LogisticRegression().fit(X, y).score(X, y)
    clf = CosineMoEClassifier(n_experts=4, router=router, temperature=0.2,
                              random_state=0).fit(X, y)
    assert linear < 0.7
    assert clf.score(X, y) > 0.95


def test_probabilities_rows_sum_to_one_and_predict_is_their_argmax():
    X, y = _checkerboard(seed=1)
    clf = CosineMoEClassifier(n_experts=3, top_k=2, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.log(proba), clf.predict_log_proba(X), atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    gates = clf.predict_gates(X)
    assert np.all(np.count_nonzero(gates, axis=1) <= 2)
    np.testing.assert_array_equal(clf.apply(X), gates.argmax(axis=1))


def test_string_labels_give_the_integer_fit():
    X, y = _checkerboard(seed=2)
    y3 = y + (X[:, 0] > 1.0)  # three classes
    names = np.array(["ant", "bee", "cat"])
    by_index = CosineMoEClassifier(n_experts=2, random_state=0).fit(X, y3)
    by_name = CosineMoEClassifier(n_experts=2, random_state=0).fit(X, names[y3])
    np.testing.assert_array_equal(by_name.classes_, names)
    np.testing.assert_array_equal(by_name.predict(X), names[by_index.predict(X)])
    np.testing.assert_array_equal(by_name.predict_proba(X), by_index.predict_proba(X))


def test_class_weight_equals_sample_weight():
    X, y = _checkerboard(seed=3)
    weights = {0: 3.0, 1: 0.5}
    by_class = CosineMoEClassifier(n_experts=2, class_weight=weights,
                                   random_state=0).fit(X, y)
    by_sample = CosineMoEClassifier(n_experts=2, random_state=0).fit(
        X, y, sample_weight=np.where(y == 0, 3.0, 0.5))
    np.testing.assert_array_equal(by_class.predict_proba(X), by_sample.predict_proba(X))
    balanced = CosineMoEClassifier(n_experts=2, class_weight="balanced",
                                   random_state=0).fit(X, y)
    counts = np.bincount(y)
    by_counts = CosineMoEClassifier(n_experts=2, random_state=0).fit(
        X, y, sample_weight=(len(y) / (2 * counts))[y])
    np.testing.assert_allclose(balanced.predict_proba(X), by_counts.predict_proba(X),
                               rtol=1e-10, atol=1e-12)


def test_errors_and_warnings():
    X, y = _checkerboard(seed=4)
    with pytest.raises(ValueError, match="at least 2 classes.*got 1 class"):
        CosineMoEClassifier().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        CosineMoEClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="top_k must be smaller than n_experts=2"):
        CosineMoEClassifier(n_experts=2, top_k=2).fit(X, y)
    with pytest.warns(UserWarning, match=r"point nearly the same way.*CosineMoEClassifier"):
        CosineMoEClassifier(n_experts=2, random_state=0).fit(X + 10.0, y)
    with pytest.warns(ConvergenceWarning, match="max_iter=1 "):
        CosineMoEClassifier(max_iter=1, random_state=0).fit(X, y)


def test_warm_start_continues_the_previous_fit():
    X, y = _checkerboard(seed=5)
    clf = CosineMoEClassifier(n_experts=2, warm_start=True, random_state=0).fit(X, y)
    loss = clf.loss_
    clf.fit(X, y)
    assert clf.loss_ <= loss + 1e-12
    assert clf.n_iter_ < 10
    clf.set_params(n_experts=3)
    with pytest.raises(ValueError, match="warm_start=True needs the same n_experts"):
        clf.fit(X, y)
    assert clf.gate_coef_.shape == (2, 2)  # a failed fit leaves the previous one


def test_results_do_not_depend_on_thread_count(monkeypatch):
    from sklearn_cosmoe import _kernels

    X, y, w, params = _fixture(3, n=5000, d=4, seed=6)
    spec = MoESpec(alpha=0.1)
    results = []
    for threads in [1, 2, 3]:
        monkeypatch.setattr(_kernels, "n_threads", lambda n, n_blk: threads)
        loss, grad = objective(params.to_vector(), X, y, w, params.shape, spec)
        gates, log_proba = gates_and_log_proba(X, row_norms(X), *params.arrays(),
                                               *_codes("perturbed_cosine", None))
        results.append((loss, grad, gates, log_proba))
    for result in results[1:]:
        assert result[0] == results[0][0]
        for got, expected in zip(result[1:], results[0][1:]):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("top_k", [None, 1])
def test_nan_gate_parameter_gives_nan_not_a_finite_loss(top_k):
    X, y, w, params = _fixture(3, seed=7)
    params.gate_coef[1, 0] = np.nan
    codes = _codes("perturbed_cosine", top_k)
    loss, grad = nll_and_gradient(X, row_norms(X), y, w, *params.arrays(), *codes)
    assert np.isnan(loss)
    _, log_proba = gates_and_log_proba(X, row_norms(X), *params.arrays(), *codes)
    assert np.all(np.isnan(log_proba[np.linalg.norm(X, axis=1) > 0]))


def test_fit_leaves_the_callers_arrays_alone():
    X, y = _checkerboard(seed=8)
    w = np.linspace(0.5, 2.0, len(y))
    copies = X.copy(), y.copy(), w.copy()
    CosineMoEClassifier(n_experts=2, class_weight="balanced", random_state=0).fit(
        X, y, sample_weight=w)
    for got, before in zip((X, y, w), copies):
        np.testing.assert_array_equal(got, before)
