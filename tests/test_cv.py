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
                                temperatures=[1.0, 0.1], alphas=[0.1],
                                random_state=0).fit(X, y)


def test_chooses_several_experts_and_sharp_gates_for_a_sharp_mixture(fitted):
    assert fitted.n_experts_ >= 3 and fitted.temperature_ == 0.1
    # the path's score rises steeply from one expert
    scores = fitted.score_path_.mean(axis=2)  # (temperature, n_experts)
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
    n_steps = len(fitted.n_experts_path_)
    n = 2 * n_steps  # two temperatures x the numbers of experts
    assert_array_equal(fitted.n_experts_path_, np.arange(1, n_steps + 1))
    assert fitted.max_experts_ == 4 and n_steps <= 4
    assert_array_equal(results["param_router"], ["perturbed_cosine"] * n)
    assert_array_equal(results["param_temperature"], [1.0] * n_steps + [0.1] * n_steps)
    assert_array_equal(results["param_n_experts"], list(range(1, n_steps + 1)) * 2)
    assert_array_equal(results["param_alpha"], [0.1] * n)
    assert not np.ma.getmaskarray(results["param_tau1"]).any()
    assert results["params"][n_steps] == {"router": "perturbed_cosine", "temperature": 0.1,
                                          "alpha": 0.1, "tau1": 1.0, "tau2": 1.0,
                                          "n_experts": 1}
    assert_array_equal(fitted.temperatures_, [1.0, 0.1])
    assert fitted.routers_ == ("perturbed_cosine",)
    assert fitted.score_path_.shape == (2, n_steps, 3)
    flat = fitted.score_path_.reshape(n, 3)
    for j in range(3):
        assert_array_equal(results[f"split{j}_test_score"], flat[:, j])
    assert_allclose(results["mean_test_score"], flat.mean(axis=1))
    assert_allclose(results["std_test_score"], flat.std(axis=1))
    best = np.argmax(results["mean_test_score"])
    assert results["rank_test_score"][best] == 1
    assert_array_equal(np.sort(results["rank_test_score"]), np.arange(1, n + 1))
    chosen = results["params"].index({"router": "perturbed_cosine",
                                      "temperature": fitted.temperature_,
                                      "alpha": fitted.alpha_, "tau1": fitted.tau1_,
                                      "tau2": fitted.tau2_,
                                      "n_experts": fitted.n_experts_})
    assert fitted.best_score_ == results["mean_test_score"][chosen]
    assert isinstance(fitted.estimator_, CosineMoERegressor)
    assert fitted.estimator_.n_experts == fitted.n_experts_
    assert fitted.estimator_.temperature == fitted.temperature_
    assert fitted.estimator_.router == fitted.router_ == "perturbed_cosine"
    assert fitted.estimator_.alpha == fitted.alpha_ / len(X)  # Ridge's scale
    assert_array_equal(fitted.predict(X), fitted.estimator_.predict(X))
    assert fitted.n_iter_ == fitted.estimator_.n_iter_ >= 1


def test_one_expert_scores_are_ridge_on_each_fold_for_any_splitter_and_scoring():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((120, 3))
    y = np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(120)
    groups = np.repeat(np.arange(6), 20)
    alphas = [0.5, 20.0]
    reg = CosineMoERegressorCV(max_experts=2, cv=GroupKFold(3), alphas=alphas,
                               temperatures=[0.5], scoring="neg_mean_squared_error",
                               random_state=0)
    reg.fit(X, y, groups=groups)
    assert reg.routers_ == ("perturbed_cosine", "cosine", "linear")  # the default
    assert_array_equal(reg.cv_results_["param_alpha"][:4], [0.5, 0.5, 20.0, 20.0])
    one_expert = reg.score_path_[:, 0].reshape(3, 2, 3)  # router x alpha x split
    for j, (train, test) in enumerate(GroupKFold(3).split(X, y, groups)):
        for a, alpha in enumerate(alphas):
            # one expert: 1/2 mean squared error + alpha / (2 n_train) |a|^2 on
            # the standardized target is Ridge(alpha) on any scale of y, under
            # every router
            ridge = Ridge(alpha=alpha).fit(X[train], y[train])
            assert_allclose(one_expert[:, a, j],
                            -mean_squared_error(y[test], ridge.predict(X[test])),
                            rtol=1e-6)


def test_chooses_the_router_that_sees_the_lengths_of_the_rows():
    # experts by the length of x only: a cosine router, which sees the
    # direction alone, cannot route them; the linear router can
    rng = np.random.default_rng(3)
    t = rng.uniform(0.5, 4.0, 600)
    X = np.c_[t, 0.1 * rng.standard_normal(600)]  # rows of almost one direction
    y = np.minimum(t, 4.0 - t) + 0.05 * rng.standard_normal(600)  # a tent at t = 2
    reg = CosineMoERegressorCV(max_experts=2, cv=3, temperatures=[0.3], alphas=[0.1],
                               router=("cosine", "linear"), random_state=0).fit(X, y)
    assert reg.router_ == "linear" and reg.n_experts_ == 2
    scores = reg.score_path_.mean(axis=-1)[:, 1]  # two experts, per router
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
    ({"temperatures": [1.0, 0.0]}, "temperatures must be .* finite numbers > 0"),
    ({"tau2s": [1.0, -0.1]}, "tau2s must be .* finite numbers >= 0"),
    ({"tau1s": [[1.0]]}, r"tau1s must be .* \(of shape \(1, 1\)\)"),
    ({"alphas": [np.nan]}, "alphas must be .* finite numbers >= 0"),
    ({"alphas": ["1"]}, "alphas must be .* is not a number"),
    ({"patience": 0}, "patience"),
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
    reg = CosineMoERegressorCV(max_experts=2, cv=3, temperatures=[0.1], alphas=[0.1],
                               router=("perturbed_cosine", "cosine"),
                               random_state=0).fit(X, y)
    assert reg.router_ == "cosine" and reg.n_experts_ == 2
    scores = reg.cv_results_["mean_test_score"].reshape(2, 2)  # router x n_experts
    assert scores[1, 1] > scores[0, 1] + 0.02


def test_the_path_stops_after_patience_steps_without_a_new_choice():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 2))
    y = X @ [1.0, -2.0] + rng.standard_normal(400)  # linear: no expert helps
    for patience in (1, 2):
        reg = CosineMoERegressorCV(patience=patience, cv=3, router="linear",
                                   temperatures=[1.0], alphas=[1.0],
                                   random_state=0).fit(X, y)
        assert len(reg.n_experts_path_) == reg.n_experts_ + patience
        assert reg.max_experts_ > reg.n_experts_ + patience  # stopped before the ceiling


def test_the_data_ceiling_is_ten_rows_per_parameter_and_is_announced(mixture_data):
    X, y = mixture_data
    X, y = X[:330], y[:330]
    # 3 folds of 220 training rows; one linear expert in 2 dimensions has
    # 2 + 1 router and 2 + 1 expert parameters: 220 / (10 * 6) -> 3 experts
    with pytest.warns(UserWarning, match=r"best number of experts, 3, is the largest "
                      r".*10 training rows per parameter.*max_experts > 3"):
        reg = CosineMoERegressorCV(cv=3, router="perturbed_cosine", temperatures=[0.1],
                                   alphas=[0.1], random_state=0).fit(X, y)
    assert reg.max_experts_ == 3 and reg.n_experts_ == 3
    with pytest.warns(UserWarning, match="raise max_experts"):
        CosineMoERegressorCV(max_experts=2, cv=3, router="perturbed_cosine",
                             temperatures=[0.1], alphas=[0.1], random_state=0).fit(X, y)


def test_results_do_not_depend_on_n_jobs(mixture_data):
    X, y = mixture_data
    params = dict(max_experts=3, cv=3, router=("perturbed_cosine", "linear"),
                  temperatures=[0.3], tau2s=[0.5, 1.0], alphas=[0.1, 1.0], random_state=0)
    one = CosineMoERegressorCV(n_jobs=1, **params).fit(X, y)
    two = CosineMoERegressorCV(n_jobs=2, **params).fit(X, y)
    assert_array_equal(one.score_path_, two.score_path_)
    for j in range(3):
        assert_array_equal(one.cv_results_[f"split{j}_train_loss"],
                           two.cv_results_[f"split{j}_train_loss"])
    assert_array_equal(one.predict(X), two.predict(X))


def test_the_warm_path_reaches_the_objectives_of_independent_fits():
    X, y = make_cosine_moe(300, 2, 2, temperature=0.3, noise=0.1, inputs="normal",
                           random_state=4)[:2]
    tau1s, tau2s, alphas = [0.3, 3.0], [0.5, 2.0], [0.1, 10.0]
    reg = CosineMoERegressorCV(max_experts=2, cv=3, router="perturbed_cosine",
                               temperatures=[0.3], tau1s=tau1s, tau2s=tau2s,
                               alphas=alphas, tol=1e-10, random_state=0).fit(X, y)
    results = reg.cv_results_
    train, _ = next(KFold(3).split(X))
    losses = results["split0_train_loss"].reshape(2, 2, 2, 2)  # alpha, tau1, tau2, k
    for a, alpha in enumerate(alphas):
        for i, tau1 in enumerate(tau1s):
            for j, tau2 in enumerate(tau2s):
                alone = CosineMoERegressor(
                    n_experts=2, temperature=0.3, tau1=tau1, tau2=tau2,
                    alpha=alpha / len(train), tol=1e-10, random_state=0,
                ).fit(X[train], y[train])
                assert alone.converged_
                assert_allclose(losses[a, i, j, 1], alone.loss_, rtol=1e-7)
    # the perturbed router's gates see beta_1 / (|beta_1| + tau1): the model,
    # and so the optimum, does not depend on tau1
    assert_allclose(losses[:, 0], losses[:, 1], rtol=1e-9)


def test_the_intervals_are_those_of_the_final_fit(fitted, mixture_data):
    X, _ = mixture_data
    mean, std = fitted.predict(X[:50], return_std=True)
    final_mean, final_std = fitted.estimator_.predict(X[:50], return_std=True)
    assert_array_equal(mean, final_mean)
    assert_array_equal(std, final_std)
    assert np.all(std > 0)
    lower, upper = fitted.predict_interval(X[:50], coverage=0.9)
    assert_allclose(upper - mean, 1.6448536269514722 * std, rtol=1e-12)  # z of 0.95
    assert_allclose(mean - lower, upper - mean, rtol=1e-12)
    with pytest.raises(ValueError, match="coverage"):
        fitted.predict_interval(X[:5], coverage=1.0)


def test_the_final_fit_is_no_worse_than_the_default_fit_of_the_choice(fitted, mixture_data):
    X, y = mixture_data
    final_seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=2)[1]
    default = CosineMoERegressor(
        n_experts=fitted.n_experts_, router=fitted.router_, tau1=fitted.tau1_,
        tau2=fitted.tau2_, temperature=fitted.temperature_, alpha=fitted.alpha_ / len(y),
        n_init=3, random_state=int(final_seed)).fit(X, y)
    assert fitted.estimator_.loss_ <= default.loss_ * (1 + 1e-12)
    assert fitted.estimator_.warm_start is False and fitted.estimator_.n_init == 3
