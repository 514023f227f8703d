"""Hostile input and misuse: every case ends in a correct fit or a clear error
before heavy work, and a fitted model's predictions never change without a fit.

Covers: class weights that make the objective unbounded, predictions that
must read the fitted hyperparameters only, configurations whose memory would
exceed the documented bound, bits that must not depend on BLAS's thread
count, huge finite X at prediction, the CV estimator's failed fits and files,
and targets or parameters that used to fail late with misleading errors.
"""

import contextlib
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from scipy import sparse
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from sklearn_cosmoe import (CosineMoEClassifier, CosineMoERegressor, CosineMoERegressorCV,
                            _classifier, _cv, _cv_path, _estimator, _memory,
                            persistence)

RNG = np.random.default_rng(0)
X = RNG.standard_normal((200, 4))
Y = X[:, 0].copy()
YC = np.arange(200) % 3


def quiet_fit(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(*args, **kwargs)


@pytest.fixture(scope="module")
def reg():
    return quiet_fit(CosineMoERegressor(n_experts=3, random_state=0, max_iter=60), X, Y)


@pytest.fixture(scope="module")
def clf():
    return quiet_fit(CosineMoEClassifier(n_experts=3, random_state=0, max_iter=60), X, YC)


@pytest.fixture(scope="module")
def cv():
    return quiet_fit(CosineMoERegressorCV(max_experts=2, cv=2, temperatures=[1.0],
                                          router="perturbed_cosine", max_iter=30,
                                          random_state=0), X, Y)


@pytest.fixture
def no_numerical_work(monkeypatch):
    """Make every solver entry point fail: errors must come before them."""
    def fail(*args, **kwargs):
        raise AssertionError("numerical work started before the input was checked")
    for module, names in ((_estimator, ("fit_from_data", "fit_least_squares")),
                          (_classifier, ("fit_from_data", "fit_likelihood")),
                          (_cv_path, ("fit_least_squares", "initial_params"))):
        for name in names:
            monkeypatch.setattr(module, name, fail)


# ---- class weights -------------------------------------------------------------

@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.one_of(st.floats(max_value=-1e-300), st.just(float("nan")),
                     st.just(float("inf"))),
       which=st.integers(0, 2))
def test_negative_or_non_finite_class_weight_is_refused(no_numerical_work, bad, which):
    """Was: a weight of -1 made the likelihood unbounded and the fit never returned."""
    weights = {0: 1.0, 1: 1.0, 2: 1.0}
    weights[which] = bad
    clf = CosineMoEClassifier(class_weight=weights)
    with pytest.raises(ValueError, match="class_weight must map classes to finite weights"):
        clf.fit(X, YC)
    assert not hasattr(clf, "n_features_in_")


def test_class_weight_naming_an_unknown_class_is_refused(no_numerical_work):
    with pytest.raises(ValueError, match=r"class_weight names classes that are not in y: \[7\]"):
        CosineMoEClassifier(class_weight={0: 1.0, 7: 2.0}).fit(X, YC)


# ---- predictions read the fitted attributes only --------------------------------

CHANGES = [{"router": "linear"}, {"router": "cosine"}, {"tau2": float("nan")},
           {"tau1": 0.0}, {"temperature": 0}, {"router": "bogus"}, {"top_k": 2},
           {"top_k": 50}]


def _regressor_outputs(model):
    return [model.predict(X), model.predict_gates(X), model.predict_experts(X),
            model.apply(X), model.score(X, Y), model.bic(X, Y), model.aic(X, Y)]


def _classifier_outputs(model):
    return [model.predict(X), model.predict_proba(X), model.predict_log_proba(X),
            model.predict_gates(X), model.apply(X), model.score(X, YC)]


def _assert_same(before, after):
    for a, b in zip(before, after):
        assert_array_equal(a, b)


def _assert_outputs_survive(model, change, outputs):
    """``set_params(**change)`` leaves ``outputs(model)`` as they were; the
    parameters are restored afterwards (the fitted fixture is shared)."""
    before = outputs(model)
    params = model.get_params()
    try:
        model.set_params(**change)
        _assert_same(before, outputs(model))
    finally:
        model.set_params(**params)


@pytest.mark.parametrize("change", CHANGES + [{"expert": "tanh"}, {"expert": "bogus"}])
def test_set_params_does_not_change_regressor_predictions(reg, change):
    """Was: tau2=nan gave all-NaN predictions, router='linear' moved them by 13."""
    _assert_outputs_survive(reg, change, _regressor_outputs)


@pytest.mark.parametrize("change", CHANGES)
def test_set_params_does_not_change_classifier_predictions(clf, change):
    _assert_outputs_survive(clf, change, _classifier_outputs)


@pytest.mark.parametrize("change", [{"router": "bogus"}, {"temperatures": [0.0]},
                                    {"tau2s": [float("nan")]}, {"expert": "tanh"}])
def test_set_params_does_not_change_cv_predictions(cv, change):
    _assert_outputs_survive(cv, change, lambda model: [model.predict(X), model.score(X, Y)])


@pytest.mark.parametrize("Estimator,y", [(CosineMoERegressor, Y), (CosineMoEClassifier, YC)])
def test_refused_warm_start_keeps_predictions(Estimator, y):
    model = quiet_fit(Estimator(n_experts=2, random_state=0, max_iter=30), X, y)
    before = model.predict_gates(X)
    model.set_params(warm_start=True, router="linear")
    with pytest.raises(ValueError, match="warm_start=True needs the same"):
        model.fit(X, y)
    assert_array_equal(model.predict_gates(X), before)
    assert model.router_ == "perturbed_cosine"


def test_lazy_dask_prediction_is_a_snapshot_of_the_fitted_model(reg):
    da = pytest.importorskip("dask.array")
    model = CosineMoERegressor(**reg.get_params())
    model.__dict__.update({k: v for k, v in vars(reg).items() if k.endswith("_")})
    lazy = model.predict(da.from_array(X, chunks=50))
    quiet_fit(model.set_params(n_experts=2, router="linear"), X, Y * 2)
    assert_array_equal(lazy.compute(), reg.predict(X))


# ---- memory bound ------------------------------------------------------------------

@pytest.mark.parametrize("model,y,match", [
    (CosineMoERegressor(n_experts=10**6), Y, "n_experts=1000000 .* would need about"),
    (CosineMoEClassifier(n_experts=10**6), YC, "n_experts=1000000 .* would need about"),
    (CosineMoERegressorCV(max_experts=10**6), Y, "max_experts=1000000 .* would need about"),
])
def test_configurations_beyond_the_memory_bound_fail_at_once(no_numerical_work, model, y,
                                                              match):
    with pytest.raises(ValueError, match=match + ".*GiB.*MEMORY_LIMIT.*fewer experts"):
        model.fit(X, y)
    assert not hasattr(model, "n_features_in_")


def test_many_features_name_the_gram_matrix_and_tanh(no_numerical_work):
    """14500 rows x 600 features, 24 experts: the Gram matrix alone is 1.5 GiB, 3 copies."""
    X_wide = np.ones((14500, 600))
    X_wide[0, 0] = 2.0
    y = np.zeros(14500)
    y[0] = 1.0
    with pytest.raises(ValueError, match="Gram matrix.*expert='tanh'.*fewer features"):
        CosineMoERegressor(n_experts=24).fit(X_wide, y)


def test_newton_matrices_beyond_the_bound_advise_lbfgs(no_numerical_work):
    """3 rows x 1e5 features: a Newton-type fit's matrices of 8e5 parameters squared."""
    X_wide = np.ones((3, 10**5))
    X_wide[0, 0] = 2.0
    with pytest.raises(ValueError, match="Newton-type solver's matrices.*solver='lbfgs'"):
        CosineMoERegressor(solver="gauss-newton").fit(X_wide, [0.0, 1.0, 2.0])


def test_memory_estimate_follows_the_gram_matrix_and_the_rows():
    linear = _memory.regressor_fit_bytes(10_000, 2000, 4)
    assert linear["gram"] >= 3 * (4 * 2001) ** 2 * 8
    # fewer rows than the experts' unknowns: the row space, no Gram matrix
    few_rows = _memory.regressor_fit_bytes(200, 2000, 4)["gram"]
    assert 200 ** 2 * 8 < few_rows < 2 * 4 * 2001 * 201 * 8 + 2 * 200 ** 2 * 8 + 1
    assert _memory.regressor_fit_bytes(200, 2000, 4, expert="tanh")["gram"] == 0
    rows = _memory.classifier_fit_bytes(10**6, 4, 8, 3)["rows"]
    assert rows >= 10**6 * 8 * 3 * 8
    # the regressor fit that peaked at 1.8 GB is allowed under the bound
    assert linear["total"] < _memory.MEMORY_LIMIT


def test_fewer_rows_than_unknowns_fit_without_the_gram_matrix():
    """200 rows x 2000 features, 4 experts: the Gram path peaked at 1.8 GB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    X_wide = rng.standard_normal((200, 2000))
    y = X_wide[:, 0] + np.abs(X_wide[:, 1])
    tracemalloc.start()
    try:
        model = quiet_fit(CosineMoERegressor(n_experts=4, max_iter=5, random_state=0),
                          X_wide, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20
    assert model.score(X_wide, y) > 0.99  # 16008 parameters on 200 rows interpolate


def test_the_experts_gram_matrix_is_solved_in_its_own_memory():
    """One Gram matrix of the experts' unknowns at a time: made symmetric,
    regularised and factorised in place (three copies were alive at once)."""
    import tracemalloc

    from sklearn_cosmoe._model import MoESpec
    from sklearn_cosmoe._objective import ArrayObjective
    from sklearn_cosmoe._solver import initial_params
    from sklearn_cosmoe._solvers._linear_experts import update_linear_experts

    rng = np.random.default_rng(0)
    n, d, k = 1664, 400, 4
    X_wide = rng.standard_normal((n, d))
    data = ArrayObjective(X_wide, X_wide[:, 0] + np.abs(X_wide[:, 1]), np.ones(n))
    spec = MoESpec(router="perturbed_cosine")
    params = initial_params(data, spec, k, np.random.RandomState(0))
    gram_bytes = (k * (d + 1)) ** 2 * 8
    expected = update_linear_experts(data, params.copy(), spec)
    tracemalloc.start()
    try:
        solved = update_linear_experts(data, params.copy(), spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_array_equal(solved.expert_coef, expected.expert_coef)
    assert peak < 2 * gram_bytes  # one block of rows' features beside the matrix


def test_memory_limit_is_read_when_a_fit_starts(monkeypatch, no_numerical_work):
    need = _memory.regressor_fit_bytes(*X.shape, 4)["total"]
    monkeypatch.setattr(_memory, "MEMORY_LIMIT", need - 1)
    with pytest.raises(ValueError, match="would need about .* more than the limit"):
        CosineMoERegressor(n_experts=4).fit(X, Y)


# ---- the same bits whatever BLAS's thread count ------------------------------------

@pytest.mark.parametrize("n_features", [4, 40, 200])
def test_fits_are_bit_identical_for_one_and_two_blas_threads(n_features):
    """Was: 8e-11 apart at 300 rows x 40 features (0.0062 at 1000 rows)."""
    rng = np.random.default_rng(1)
    X_d = rng.standard_normal((300, n_features))
    y = np.tanh(X_d[:, 0]) + X_d[:, 1]
    fits = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            model = quiet_fit(CosineMoERegressor(n_experts=4, random_state=0, max_iter=40),
                              X_d, y)
            fits.append((model.gate_coef_, model.expert_coef_, model.predict(X_d)))
    for a, b in zip(*fits):
        assert_array_equal(a, b)


# ---- huge finite X at prediction -----------------------------------------------------

def _huge():
    X_new = X[:5].copy()
    X_new[0, 0] = 1.7e308
    return X_new


@pytest.mark.parametrize("method", ["predict", "predict_gates", "predict_experts", "apply",
                                    "score", "bic", "aic"])
def test_huge_x_in_regressor_prediction_is_refused(reg, method):
    """Was: a NaN prediction without a warning."""
    args = (_huge(), Y[:5]) if method in ("score", "bic", "aic") else (_huge(),)
    with pytest.raises(ValueError, match="X's largest absolute value is 1.7e\\+308.*overflow"):
        getattr(reg, method)(*args)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba",
                                    "predict_gates", "apply", "score"])
def test_huge_x_in_classifier_prediction_is_refused(clf, method):
    """Was: NaN probabilities and class 0 predicted."""
    args = (_huge(), YC[:5]) if method == "score" else (_huge(),)
    with pytest.raises(ValueError, match="X's largest absolute value"):
        getattr(clf, method)(*args)


def test_huge_x_in_cv_prediction_is_refused(cv):
    with pytest.raises(ValueError, match="X's largest absolute value"):
        cv.predict(_huge())


# ---- CosineMoERegressorCV: failed fits, files --------------------------------------

def test_cv_first_fit_that_fails_leaves_it_unfitted():
    cv = CosineMoERegressorCV(max_experts=2, cv=2, temperatures=[1.0])
    with pytest.raises(ValueError):
        cv.fit(X, np.where(np.arange(200) == 3, np.nan, Y))
    assert not hasattr(cv, "n_features_in_")
    with pytest.raises(NotFittedError):
        cv.predict(X)


def test_cv_failed_refit_keeps_the_model(cv):
    pd = pytest.importorskip("pandas")
    before = cv.predict(X)
    bad = pd.DataFrame(np.c_[X, X[:, :1]], columns=list("abcde"))
    bad.iloc[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cv.fit(bad, Y)
    assert cv.n_features_in_ == 4 and not hasattr(cv, "feature_names_in_")
    assert_array_equal(cv.predict(X), before)


def test_cv_file_written_by_dump_loads_and_predicts_identically(cv, tmp_path):
    pytest.importorskip("skops.io")
    persistence.dump(cv, tmp_path / "cv.skops")
    loaded = persistence.load(tmp_path / "cv.skops")
    assert_array_equal(loaded.predict(X), cv.predict(X))


@pytest.mark.parametrize("attribute,value,match", [
    ("temperature_", 0.0, "temperature_ must be a finite number > 0"),
    ("tau2_", -1.0, "tau2_ must be a finite number >= 0"),
    ("router_", "bogus", "router_='bogus' is not one of"),
    ("expert_", "bogus", "expert_='bogus' is not one of"),
    ("top_k_", 50, "top_k_=50 must be None or an int"),
    ("gate_intercept_", np.zeros(7), "the parameter arrays' shapes disagree"),
    ("expert_coef_", np.zeros((3, 9)), "the parameter arrays' shapes disagree"),
    ("gate_coef_", np.zeros((3, 9)), "gate_coef_ has shape"),
    ("expert_intercept_", np.full(3, np.nan), "expert_intercept_ contains NaN"),
])
def test_altered_file_of_trusted_types_fails_at_load(reg, tmp_path, attribute, value, match):
    """Was: accepted, then ZeroDivisionError, KeyError or IndexError at predict."""
    pytest.importorskip("skops.io")
    altered = CosineMoERegressor(**reg.get_params())
    altered.__dict__.update(vars(reg))
    setattr(altered, attribute, value)
    persistence.dump({"model": [altered]}, tmp_path / "altered.skops")
    with pytest.raises(ValueError, match="not a valid fitted model: " + match):
        persistence.load(tmp_path / "altered.skops")


def test_altered_classifier_file_fails_at_load(clf, tmp_path):
    pytest.importorskip("skops.io")
    altered = CosineMoEClassifier(**clf.get_params())
    altered.__dict__.update(vars(clf))
    altered.classes_ = clf.classes_[:2]
    persistence.dump(altered, tmp_path / "altered.skops")
    with pytest.raises(ValueError, match="shapes disagree"):
        persistence.load(tmp_path / "altered.skops")


# ---- errors that used to mislead or arrive late ---------------------------------------

def test_cv_fits_and_scores_a_target_times_1e300():
    """Was: "Some test scores are not finite" (R² overflowed)."""
    cv = quiet_fit(CosineMoERegressorCV(max_experts=2, cv=2, temperatures=[1.0],
                                        router="perturbed_cosine", max_iter=30,
                                        random_state=0), X, Y * 1e300)
    assert np.all(np.isfinite(cv.cv_results_["mean_test_score"]))
    assert cv.score(X, Y * 1e300) > 0.9


@pytest.mark.parametrize("Estimator", [CosineMoERegressor, CosineMoERegressorCV])
def test_target_near_the_largest_float_is_refused_before_fitting(no_numerical_work,
                                                                 Estimator):
    """Was: "Input contains infinity" for a finite y (CV)."""
    y = np.where(Y > 0, 1.7e308, -1.7e308)
    with pytest.raises(ValueError, match="y's largest absolute value is 1.7e\\+308.*overflow "
                                         "on the scale of y"):
        Estimator().fit(X, y)


def test_score_on_a_huge_target_is_finite_and_scale_free(reg):
    """Was: NaN for y * 1e200 (the squares of the residuals overflowed)."""
    scaled = quiet_fit(CosineMoERegressor(**reg.get_params()), X, Y * 2.0 ** 660)
    assert scaled.score(X, Y * 2.0 ** 660) == reg.score(X, Y)
    big = quiet_fit(CosineMoERegressor(**reg.get_params()), X, Y * 1e200)
    assert big.score(X, Y * 1e200) == pytest.approx(reg.score(X, Y), abs=1e-6)


@pytest.mark.parametrize("Estimator", [CosineMoERegressor, CosineMoERegressorCV])
@pytest.mark.parametrize("y,match", [
    (np.where(np.arange(200) == 5, None, Y).astype(object), "y contains None"),
    (sparse.csr_matrix(Y[:, None]), "y is a sparse csr_matrix.*toarray"),
])
def test_bad_targets_are_refused_before_fitting(no_numerical_work, Estimator, y, match):
    with pytest.raises(ValueError, match=match):
        Estimator().fit(X, y)


def test_labels_mixing_int_and_str_are_refused(no_numerical_work):
    """Was: a TypeError from sorting the labels."""
    labels = np.array([0, "1", 2] * 66 + [0, "1"], dtype=object)
    with pytest.raises(ValueError, match="y mixes strings and numbers"):
        CosineMoEClassifier().fit(X, labels)


@pytest.mark.parametrize("params,match", [
    ({"max_experts": True}, "'max_experts' .* not a bool"),
    ({"n_init": True}, "'n_init' .* not a bool"),
    ({"temperatures": ["a"]}, "temperatures must be .*\\('a' is not a number\\)"),
    ({"temperatures": [[1.0, 0.5]]}, "temperatures must be a non-empty 1-d .* shape \\(1, 2\\)"),
    ({"temperatures": []}, "temperatures must be a non-empty"),
    ({"temperatures": [True]}, "True is not a number"),
    ({"temperatures": [1.0, float("nan")]}, "temperatures must be"),
    ({"temperatures": "1.0"}, "'temperatures' parameter"),
])
def test_cv_parameters_are_refused_before_fitting(no_numerical_work, params, match):
    cv = CosineMoERegressorCV(**params)
    with pytest.raises(ValueError, match=match):
        cv.fit(X, Y)
    assert not hasattr(cv, "n_features_in_")


def test_no_blas_hold_is_left_behind(reg):
    """Fits and predictions restore BLAS's thread limit, even when they fail."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        reg.predict(X)
        with contextlib.suppress(ValueError):
            CosineMoERegressor(n_experts=10**6).fit(X, Y)
        assert blas_threads() == before
