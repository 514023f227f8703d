"""CosineMoERegressorCV: the path, the choice of n_experts, the refit."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import GroupKFold, KFold

from sklearn_cosmoe import CosineMoERegressor, CosineMoERegressorCV
from sklearn_cosmoe.datasets import make_cosine_moe


@pytest.fixture(scope="module")
def mixture_data():
    return make_cosine_moe(600, 2, 3, temperature=0.1, noise=0.05, inputs="normal",
                           random_state=0)[:2]


@pytest.fixture(scope="module")
def fitted(mixture_data):
    X, y = mixture_data
    return CosineMoERegressorCV(max_experts=4, cv=3, router="perturbed_cosine",
                                temperatures=[1.0, 0.1], random_state=0).fit(X, y)


def test_chooses_several_experts_and_sharp_gates_for_a_sharp_mixture(fitted):
    assert fitted.n_experts_ >= 3 and fitted.temperature_ == 0.1
    # the path's score rises steeply from one expert
    scores = fitted.score_path_[0].mean(axis=2)
    assert scores[1, fitted.n_experts_ - 1] > scores[1, 0] + 0.1


def test_chooses_one_expert_for_linear_data():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3 + rng.standard_normal(300)
    reg = CosineMoERegressorCV(max_experts=3, cv=5, temperatures=[1.0],
                               random_state=0).fit(X, y)
    assert reg.n_experts_ == 1


def test_results_are_consistent(fitted, mixture_data):
    X, _ = mixture_data
    results = fitted.cv_results_
    assert_array_equal(results["param_router"], ["perturbed_cosine"] * 8)
    assert_array_equal(results["param_temperature"], [1.0] * 4 + [0.1] * 4)
    assert_array_equal(results["param_n_experts"], [1, 2, 3, 4] * 2)
    assert_array_equal(fitted.n_experts_path_, np.arange(1, 5))
    assert_array_equal(fitted.temperatures_, [1.0, 0.1])
    assert fitted.routers_ == ("perturbed_cosine",)
    assert fitted.score_path_.shape == (1, 2, 4, 3)
    flat = fitted.score_path_.reshape(8, 3)
    for j in range(3):
        assert_array_equal(results[f"split{j}_test_score"], flat[:, j])
    assert_allclose(results["mean_test_score"], flat.mean(axis=1))
    assert_allclose(results["std_test_score"], flat.std(axis=1))
    best = np.argmax(results["mean_test_score"])
    assert results["rank_test_score"][best] == 1
    assert_array_equal(np.sort(results["rank_test_score"]), np.arange(1, 9))
    assert (fitted.n_experts_, fitted.temperature_) == (
        results["param_n_experts"][best], results["param_temperature"][best])
    assert fitted.best_score_ == results["mean_test_score"][best]
    assert isinstance(fitted.estimator_, CosineMoERegressor)
    assert fitted.estimator_.n_experts == fitted.n_experts_
    assert fitted.estimator_.temperature == fitted.temperature_
    assert fitted.estimator_.router == fitted.router_ == "perturbed_cosine"
    assert_array_equal(fitted.predict(X), fitted.estimator_.predict(X))
    assert fitted.n_iter_ == fitted.estimator_.n_iter_ >= 1


def test_one_expert_scores_are_ridge_on_each_fold_for_any_splitter_and_scoring():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((120, 3))
    y = np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(120)
    groups = np.repeat(np.arange(6), 20)
    reg = CosineMoERegressorCV(max_experts=2, cv=GroupKFold(3), alpha=1e-2,
                               temperatures=[0.5], scoring="neg_mean_squared_error",
                               random_state=0)
    reg.fit(X, y, groups=groups)
    assert reg.routers_ == ("perturbed_cosine", "cosine", "linear")  # the default
    for j, (train, test) in enumerate(GroupKFold(3).split(X, y, groups)):
        # one expert: 1/2 mean squared error + alpha/2 |a|^2 on the
        # standardized target is Ridge(alpha * n_train) on any scale of y,
        # under every router
        ridge = Ridge(alpha=1e-2 * len(train)).fit(X[train], y[train])
        assert_allclose(reg.score_path_[:, 0, 0, j],
                        -mean_squared_error(y[test], ridge.predict(X[test])), rtol=1e-6)


def test_chooses_the_router_that_sees_the_lengths_of_the_rows():
    # experts by the length of x only: a cosine router, which sees the
    # direction alone, cannot route them; the linear router can
    rng = np.random.default_rng(3)
    t = rng.uniform(0.5, 4.0, 600)
    X = np.c_[t, 0.1 * rng.standard_normal(600)]  # rows of almost one direction
    y = np.minimum(t, 4.0 - t) + 0.05 * rng.standard_normal(600)  # a tent at t = 2
    reg = CosineMoERegressorCV(max_experts=2, cv=3, temperatures=[0.3],
                               router=("cosine", "linear"), random_state=0).fit(X, y)
    assert reg.router_ == "linear" and reg.n_experts_ == 2
    scores = reg.score_path_.mean(axis=-1)[:, 0, 1]  # two experts, per router
    assert scores[1] > 0.95 > 0.5 > scores[0]
    results = reg.cv_results_
    assert_array_equal(results["param_router"], ["cosine"] * 2 + ["linear"] * 2)
    assert reg.estimator_.router == "linear"


def test_splitter_object_and_int_agree(mixture_data):
    X, y = mixture_data
    X, y = X[:200], y[:200]
    a = CosineMoERegressorCV(max_experts=2, cv=3, temperatures=[0.3],
                             random_state=0).fit(X, y)
    b = CosineMoERegressorCV(max_experts=2, cv=KFold(3), temperatures=[0.3],
                             random_state=0).fit(X, y)
    assert_array_equal(a.score_path_, b.score_path_)


@pytest.mark.parametrize("params,match", [
    ({"max_experts": 0}, "max_experts"),
    ({"temperatures": []}, "temperatures must be a non-empty"),
    ({"temperatures": [1.0, -0.1]}, "temperatures must be a non-empty"),
    ({"router": []}, "router must be one of"),
    ({"router": ["cosine", "cosine"]}, "router must be one of"),
    ({"router": ["cosine", "sine"]}, "router must be one of"),
])
def test_bad_parameters_are_rejected(mixture_data, params, match):
    X, y = mixture_data
    with pytest.raises(ValueError, match=match):
        CosineMoERegressorCV(**params).fit(X, y)


def test_chooses_the_plain_cosine_router_where_short_rows_must_route_sharply():
    # two regimes by the direction of x alone, rows of lengths 0.05 to 3: the
    # perturbed router's scores shrink with |x| (x . beta / ((|beta| + tau1)(|x| + tau2))), so
    # its gates go soft near the origin; the plain cosine router's do not
    rng = np.random.default_rng(0)
    angle = rng.uniform(-np.pi, np.pi, 600)
    radius = rng.uniform(0.05, 3.0, 600)
    X = np.c_[radius * np.cos(angle), radius * np.sin(angle)]
    y = np.where(np.cos(angle) > 0, 1.0, -1.0) + 0.05 * rng.standard_normal(600)
    reg = CosineMoERegressorCV(max_experts=2, cv=3, temperatures=[0.1],
                               router=("perturbed_cosine", "cosine"),
                               random_state=0).fit(X, y)
    assert reg.router_ == "cosine" and reg.n_experts_ == 2
    scores = reg.cv_results_["mean_test_score"].reshape(2, 2)  # router x n_experts
    assert scores[1, 1] > scores[0, 1] + 0.02
