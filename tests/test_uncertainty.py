"""Predictive standard deviations, prediction intervals, standard errors, canonical order."""

import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.linalg import null_space
from scipy.stats import norm
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoERegressor, _sandwich, _uncertainty, inference
from sklearn_cosmoe._model import MoEParams, MoESpec, predict, row_norms
from sklearn_cosmoe._routers import gate_atoms
from sklearn_cosmoe.datasets import make_cosine_moe
from sklearn_cosmoe.inference import summary


def ols_data(seed=0, n=200, d=3):
    """Heteroscedastic linear data with non-uniform weights."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    noise = rng.standard_normal(n) * (0.2 + 0.5 * np.abs(X[:, 0]))
    return X, X @ np.linspace(1.0, -1.0, d) + 0.3 + noise, rng.uniform(0.5, 2.0, n)


def test_one_expert_is_weighted_least_squares_with_hc1_errors():
    # one expert's gate is 1 everywhere: the mixture is a linear regression,
    # whose HC1 covariance is (X1' W X1)^-1 (sum w^2 e^2 x x') (X1' W X1)^-1 n / (n - p)
    X, y, w = ols_data()
    n, d = X.shape
    reg = CosineMoERegressor(n_experts=1, alpha=0.0, random_state=0).fit(X, y, sample_weight=w)
    X1 = np.column_stack([X, np.ones(n)])
    bread = X1.T @ (w[:, None] * X1)
    coef = np.linalg.solve(bread, X1.T @ (w * y))
    assert_allclose(np.r_[reg.expert_coef_[0], reg.expert_intercept_[0]], coef, rtol=1e-9)
    e = y - X1 @ coef
    p = d + 1
    meat = X1.T @ ((w ** 2 * e ** 2)[:, None] * X1)
    cov = n / (n - p) * np.linalg.solve(bread, np.linalg.solve(bread, meat).T)
    table = summary(reg)
    experts = table[table["kind"] == "expert"]
    assert_allclose(experts["estimate"], coef, rtol=1e-9)
    assert_allclose(experts["std_error"], np.sqrt(np.diag(cov)), rtol=1e-8)
    # the router has nothing to do: its rows are not identified, the gate's weight is 1
    gates = table[table["kind"] == "gate"].set_index("parameter")
    assert gates.loc["weight", "estimate"] == 1.0 and gates.loc["weight", "std_error"] == 0.0
    assert not gates.loc["direction[x0]", "identified"]
    # predictive std: the noise variance with p degrees of freedom, plus x' Cov x
    X_new = np.random.default_rng(1).standard_normal((6, d))
    X1_new = np.column_stack([X_new, np.ones(6)])
    noise = np.sum(w * e ** 2) / np.sum(w) * n / (n - p)
    assert_allclose(reg.noise_variance_, noise, rtol=1e-9)
    std = np.sqrt(noise + np.einsum("np,pq,nq->n", X1_new, cov, X1_new))
    mean, reg_std = reg.predict(X_new, return_std=True)
    assert_array_equal(mean, reg.predict(X_new))
    assert_allclose(reg_std, std, rtol=1e-9)


def test_classical_covariance_of_one_expert_is_weighted_least_squares():
    # the classical covariance of weighted least squares: s^2 (X1' W X1)^-1 with
    # s^2 = sum w e^2 / (n - p); on the training rows the robust one is the fit's own
    X, y, w = ols_data(seed=1)
    n, d = X.shape
    reg = CosineMoERegressor(n_experts=1, alpha=0.0, random_state=0).fit(X, y, sample_weight=w)
    X1 = np.column_stack([X, np.ones(n)])
    bread = X1.T @ (w[:, None] * X1)
    e = y - X1 @ np.linalg.solve(bread, X1.T @ (w * y))
    expected = np.sum(w * e ** 2) / (n - d - 1) * np.linalg.inv(bread)
    at = MoEParams.from_vector(np.arange(reg._covariance["covariance"].shape[0], dtype=float),
                               (1, d), reg._fitted_spec())
    experts = np.r_[at.expert_coef[0], at.expert_intercept[0]].astype(int)
    classical = _uncertainty.statistics_on_rows(reg, X, y, w, robust=False)["covariance"]
    assert_allclose(classical[np.ix_(experts, experts)], expected, rtol=1e-8)
    robust = _uncertainty.statistics_on_rows(reg, X, y, w)["covariance"]
    assert_allclose(robust[np.ix_(experts, experts)],
                    reg._covariance["covariance"][np.ix_(experts, experts)], rtol=1e-8)
    # the noise of ols_data grows with |x0|: the two differ
    assert not np.allclose(classical[np.ix_(experts, experts)],
                           robust[np.ix_(experts, experts)], rtol=0.05)


def finite_difference_check(router, temperature, k, d, seed=3):
    """The fitted model, and the sandwich of its Jacobian by central differences of
    ``predict`` in the atoms (a sphere's tangent coordinates for atoms on it),
    with the bread's eigenvalues relative to the largest."""
    X, y, _ = make_cosine_moe(400, n_features=d, n_experts=k, router=router,
                              temperature=temperature, noise=0.2, random_state=seed)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    # fitted far past the default tol: some directions' curvature vanishes at
    # the stationary point itself and shrinks with the distance to it, so
    # only a fit close to it tells them apart from the identified ones
    reg = CosineMoERegressor(n_experts=k, router=router, temperature=temperature,
                             tol=1e-12, random_state=0).fit(X, y, sample_weight=w)
    spec, fit = reg._fitted_spec(), reg._params()
    atoms = gate_atoms(fit.gate_coef, router, 1.0)
    norms = np.linalg.norm(atoms, axis=1)
    on_sphere = {"linear": norms < 0, "cosine": norms > 0,
                 "perturbed_cosine": norms >= 1.0 - 2e-9}[router]
    tangents = [null_space(a[None, :]) for a in atoms]

    def unpack(z):
        gate, position = [], 0
        for i in range(k):
            if on_sphere[i]:
                moved = atoms[i] + tangents[i] @ z[position:position + d - 1]
                gate.append(moved * norms[i] / np.linalg.norm(moved))
                position += d - 1
            else:
                gate.append(z[position:position + d])
                position += d
        gate = np.array(gate)
        if router == "perturbed_cosine":  # beta_1 = tau1 u / (1 - |u|), tau1 = 1
            gate = gate / (1.0 - np.linalg.norm(gate, axis=1, keepdims=True))
        rest = z[position:]
        return MoEParams(gate, rest[:k], rest[k:k + k * d].reshape(k, d), rest[k + k * d:])

    z0 = np.concatenate([np.zeros(d - 1) if on_sphere[i] else atoms[i] for i in range(k)]
                        + [fit.gate_intercept, fit.expert_coef.ravel(), fit.expert_intercept])

    def jacobian(X, eps=1e-6):
        columns = []
        for i in range(z0.size):
            step = np.zeros_like(z0)
            step[i] = eps
            columns.append((predict(X, unpack(z0 + step), spec)
                            - predict(X, unpack(z0 - step), spec)) / (2 * eps))
        return np.column_stack(columns)

    J = jacobian(X)
    r = y - reg.predict(X)
    A = J.T @ (w[:, None] * J)
    B = J.T @ ((w ** 2 * r ** 2)[:, None] * J)
    spectrum = np.linalg.eigvalsh(A)
    largest = spectrum[-1]
    # A is symmetric: its singular values are the eigenvalues' magnitudes
    rank = int(np.sum(np.abs(spectrum) > 1e-9 * largest))
    n = len(y)
    cov = n / (n - rank) * np.linalg.pinv(A, rcond=1e-9, hermitian=True) @ B @ np.linalg.pinv(
        A, rcond=1e-9, hermitian=True)
    noise = np.sum(w * r ** 2) / np.sum(w) * n / (n - rank)
    return reg, jacobian, cov, noise, rank, on_sphere, spectrum / largest


@pytest.mark.parametrize("router,temperature,k,d", [
    ("perturbed_cosine", 0.3, 3, 3),  # two atoms on the ball's boundary, one inside
    ("perturbed_cosine", 0.5, 2, 3),  # both inside
    ("cosine", 0.5, 2, 3),
    ("linear", 0.5, 2, 3),
])
def test_delta_method_matches_finite_differences(router, temperature, k, d):
    # an independent sandwich: J of predict by central differences, the
    # Moore-Penrose inverse; the predictive variance J(x) Cov J(x)' does not
    # depend on the generalised inverse taken on the identified subspace
    reg, jacobian, cov, noise, rank, on_sphere, spectrum = finite_difference_check(
        router, temperature, k, d)
    # the comparison needs identified and unidentified directions far apart:
    # no relative eigenvalue within a factor 1000 of the threshold 1e-9 (one
    # near it would be counted differently by two thresholds in different
    # metrics)
    assert not np.any((spectrum > 1e-12) & (spectrum < 1e-6))
    # the two computations see the same identified subspace (differences of
    # 1e-6 leave directions of relative eigenvalue below 1e-9 to rounding)
    assert rank == reg._covariance["n_identified"]
    if router == "perturbed_cosine" and temperature == 0.3:
        assert on_sphere.sum() == 2  # the case this parameter is for
    assert_allclose(reg._covariance["noise_variance"], [noise], rtol=1e-9)
    X_new = np.random.default_rng(5).standard_normal((7, d))
    J = jacobian(X_new)
    std = np.sqrt(noise + np.einsum("np,pq,nq->n", J, cov, J))
    assert_allclose(reg.predict(X_new, return_std=True)[1], std, rtol=1e-6)


def leverage_bound(reg, X, y):
    """``sum_n var_f(x_n) <= n / (n - p) * max_n r_n^2 * p`` (unit weights): the
    training rows' leverages under the identified subspace sum to ``p``, each at most 1."""
    stats = reg._covariance
    n, p = stats["n_rows"], stats["n_identified"]
    variance = reg.predict(X, return_std=True)[1] ** 2 - stats["noise_variance"]
    r = y - reg.predict(X)
    return np.sum(variance), n / (n - p) * np.max(r ** 2) * p


@pytest.mark.parametrize("kwargs", [
    {"router": "cosine"},
    {"router": "perturbed_cosine", "n_experts": 5},  # over-specified: 5 experts for 2
    {"router": "linear", "n_experts": 5},
    {"router": "perturbed_cosine", "n_experts": 4, "top_k": 2},
])
def test_no_blow_up_or_nan_where_parameters_are_not_identified(kwargs):
    X, y, _ = make_cosine_moe(300, n_features=3, n_experts=2, temperature=0.5, noise=0.1,
                              random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # top-K fits may stop short: not read here
        reg = CosineMoERegressor(**{"n_experts": 2, "temperature": 0.5, "random_state": 0,
                                    **kwargs}).fit(X, y)
    X_new = np.random.default_rng(2).standard_normal((50, 3))
    mean, std = reg.predict(X_new, return_std=True)
    assert np.all(np.isfinite(std)) and np.all(std > 0)
    total, bound = leverage_bound(reg, X, y)
    assert total <= bound * (1 + 1e-9)
    table = summary(reg)
    assert not table[["estimate", "std_error"]].isna().to_numpy().any(axis=1)[
        table["identified"].to_numpy()].any()
    assert table[~table["identified"]][["estimate", "std_error"]].isna().all().all()
    if kwargs["router"] == "cosine":  # the gates do not see beta_1's length
        lengths = table[table["parameter"] == "coef_norm"]
        assert len(lengths) == reg.n_experts and not lengths["identified"].any()
        others = table[(table["kind"] == "gate") & (table["parameter"] != "coef_norm")]
        assert others["identified"].all() and np.all(np.isfinite(others["std_error"]))


def test_an_expert_without_rows_is_not_identified_and_changes_nothing():
    # expert 2's gate intercept of -800 gives it gates of exp(-800) = 0 on
    # every row: its parameters have no column in the Jacobian
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    spec = MoESpec(router="perturbed_cosine", temperature=0.5)
    params = MoEParams(rng.standard_normal((3, 2)), np.array([0.0, 0.3, -800.0]),
                       rng.standard_normal((3, 2)), rng.standard_normal(3))
    y = predict(X, params, spec) + 0.1 * rng.standard_normal(200)
    w = np.ones(200)
    sums = _sandwich.sandwich_sums(X, row_norms(X), y, w, params, spec)
    stats = _sandwich.finish_sandwich(sums, params, spec)
    assert np.all(np.isfinite(stats["covariance"]))
    # 18 parameters less the common shifts (2 + 1) and the dead expert's 2 + 1 + 2 + 1
    assert stats["n_identified"] == 18 - 3 - 6
    at = MoEParams.from_vector(np.arange(18.0), (3, 2), spec)
    for position in (at.expert_coef[2, 0], at.expert_intercept[2], at.expert_coef[0, 1]):
        gradient = np.zeros(18)
        gradient[int(position)] = 1.0
        assert _sandwich.is_identified(stats, gradient) == (position == at.expert_coef[0, 1])
    # the same covariance as the two live experts' alone
    alive = MoEParams(params.gate_coef[:2], params.gate_intercept[:2],
                      params.expert_coef[:2], params.expert_intercept[:2])
    two = _sandwich.finish_sandwich(
        _sandwich.sandwich_sums(X, row_norms(X), y, w, alive, spec), alive, spec)
    X_new = rng.standard_normal((20, 2))
    assert_allclose(_sandwich.predictive_variance(X_new, params, spec, stats),
                    _sandwich.predictive_variance(X_new, alive, spec, two), rtol=1e-6)


def test_multi_output_shapes_and_a_duplicated_output():
    X, y, _ = make_cosine_moe(300, n_features=2, n_experts=2, temperature=0.5, noise=0.2,
                              random_state=0)
    kwargs = {"n_experts": 2, "temperature": 0.5, "random_state": 0, "tol": 1e-12}
    single = CosineMoERegressor(**kwargs).fit(X, y)
    both = CosineMoERegressor(**kwargs).fit(X, np.c_[y, 2.0 * y + 3.0])
    column = CosineMoERegressor(**kwargs).fit(X, y[:, None])
    X_new = np.random.default_rng(3).standard_normal((9, 2))
    for reg, shape in ((single, (9,)), (both, (9, 2)), (column, (9, 1))):
        mean, std = reg.predict(X_new, return_std=True)
        lower, upper = reg.predict_interval(X_new)
        assert mean.shape == std.shape == lower.shape == upper.shape == shape
    # the two outputs' standardized targets are one: the joint fit is the single
    # fit twice, its covariance the single one's but for the HC1 factor
    # n m / (n m - p) with m = 2 and p the joint count
    n = 300
    p1, p2 = single._covariance["n_identified"], both._covariance["n_identified"]
    factor = (2 * n / (2 * n - p2)) / (n / (n - p1))
    variance = single.predict(X_new, return_std=True)[1] ** 2 - single._covariance[
        "noise_variance"]
    joint = both.predict(X_new, return_std=True)[1] ** 2 - both._covariance["noise_variance"]
    assert_allclose(joint[:, 0], factor * variance, rtol=1e-5)
    assert_allclose(joint[:, 1], 4.0 * joint[:, 0], rtol=1e-9)
    assert_allclose(both.noise_variance_, single.noise_variance_ * np.array([1.0, 4.0]),
                    rtol=1e-6)
    assert np.shape(single.noise_variance_) == () and column.noise_variance_.shape == (1,)


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = make_cosine_moe(300, n_features=2, n_experts=2, temperature=0.5,
                              random_state=0)
    return CosineMoERegressor(n_experts=2, temperature=0.5, random_state=0).fit(X, y), X


@pytest.mark.parametrize("value", ["yes", 1, None, np.array([True])])
def test_return_std_must_be_a_bool(fitted, value):
    reg, X = fitted
    with pytest.raises(TypeError, match="return_std must be True or False"):
        reg.predict(X, return_std=value)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, 1.5, np.nan, "0.9", True, None])
def test_coverage_must_be_a_probability(fitted, value):
    reg, X = fitted
    with pytest.raises(ValueError, match="coverage must be a number strictly between 0 and 1"):
        reg.predict_interval(X, coverage=value)


def test_uncertainty_errors_name_their_cause(fitted, monkeypatch):
    reg, X = fitted
    with pytest.raises(NotFittedError):
        CosineMoERegressor().predict(X, return_std=True)
    old = CosineMoERegressor(**reg.get_params())
    vars(old).update({k: v for k, v in vars(reg).items() if k != "_covariance"})
    for call in (lambda: old.predict(X, return_std=True), lambda: old.predict_interval(X),
                 lambda: summary(old)):
        with pytest.raises(ValueError, match="kept no covariance.*refit it"):
            call()
    assert_array_equal(old.predict(X), reg.predict(X))  # the mean still works
    monkeypatch.setattr(_sandwich, "COVARIANCE_MAX_PARAMETERS", 5)
    monkeypatch.setattr("sklearn_cosmoe._uncertainty.COVARIANCE_MAX_PARAMETERS", 5)
    big = CosineMoERegressor(n_experts=2, random_state=0).fit(X, X[:, 0])
    assert big._covariance is None and np.isnan(big.noise_variance_)
    with pytest.raises(ValueError, match="12 parameters, more than 5"):
        big.predict(X, return_std=True)
    monkeypatch.undo()
    small = X[:8]  # 8 rows identify at most 8 of the 9 parameters that could be
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny = CosineMoERegressor(n_experts=2, random_state=0, router="linear").fit(
            small, small[:, 0] ** 2)
    with pytest.raises(ValueError, match="8 rows of positive weight, not more than"):
        tiny.predict_interval(small)
    with pytest.raises(TypeError, match="summary needs a fitted CosineMoERegressor"):
        summary(StandardScaler().fit(X))


def test_interval_is_the_normal_quantile_of_the_std(fitted):
    reg, X = fitted
    mean, std = reg.predict(X, return_std=True)
    for coverage in (0.5, 0.9, 0.99):
        lower, upper = reg.predict_interval(X, coverage=coverage)
        assert_allclose((upper - lower) / 2, norm.ppf(0.5 + coverage / 2) * std, rtol=1e-12)
        assert_allclose((upper + lower) / 2, mean, rtol=1e-12, atol=1e-12)


def test_intervals_cover_fresh_points_from_the_model():
    # Gaussian noise, a well-specified model: the 95% intervals' coverage of
    # 2000 fresh points per seed over 5 seeds (10000 points).  With independent
    # points the coverage's sd is sqrt(0.95 * 0.05 / 10000) = 0.0022; each fit's
    # errors move all its points together: its noise sd, estimated from 2000
    # rows, is off by about 1 / sqrt(2 * 2000) = 1.6%, which moves the coverage
    # by 2 * 1.96 * phi(1.96) * 0.016 = 0.0037 per seed (0.0017 over 5), and the
    # parameters' error adds about p / n = 0.5% of the noise variance, which the
    # std holds.  The sd of the mean coverage is then about 0.003: the
    # tolerance 0.015 is 5 of them (a chance below 1e-6 for a correct method),
    # while a noise sd 10% too small (coverage 0.922) misses it.
    coverages = []
    for seed in range(5):
        X, y, truth = make_cosine_moe(4000, n_features=2, n_experts=2, temperature=0.5,
                                      noise=0.3, inputs="normal", random_state=seed)
        reg = CosineMoERegressor(n_experts=2, temperature=0.5, random_state=0).fit(
            X[:2000], y[:2000])
        lower, upper = reg.predict_interval(X[2000:], coverage=0.95)
        coverages.append(np.mean((lower <= y[2000:]) & (y[2000:] <= upper)))
    assert abs(np.mean(coverages) - 0.95) < 0.015, coverages


def test_experts_are_in_canonical_order():
    X, y, _ = make_cosine_moe(1500, n_features=2, n_experts=3, temperature=0.3, noise=0.05,
                              inputs="normal", random_state=4)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    fits = [CosineMoERegressor(n_experts=3, temperature=0.3, random_state=seed).fit(
        X, y, sample_weight=w) for seed in (0, 1)]
    for reg in fits:
        totals = w @ reg.predict_gates(X)
        assert np.all(np.diff(totals) <= 0)
    # on clear data two starts reach one optimum: the same experts in the same
    # order, each nearest its namesake (up to the fits' tolerance)
    assert_allclose(fits[0].loss_, fits[1].loss_, rtol=1e-6)
    experts = [np.c_[reg.expert_coef_, reg.expert_intercept_] for reg in fits]
    distances = np.linalg.norm(experts[0][:, None] - experts[1][None, :], axis=2)
    assert_array_equal(np.argmin(distances, axis=1), [0, 1, 2])
    assert np.all(np.diag(distances) < 0.1 * np.sort(distances, axis=1)[:, 1])
    # permuting the experts changes no prediction (of the mean: the covariance
    # is laid out in the fit's order)
    reg = fits[0]
    permuted = CosineMoERegressor(**reg.get_params())
    vars(permuted).update(vars(reg))
    for name in ("gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_"):
        setattr(permuted, name, getattr(reg, name)[[2, 0, 1]])
    assert_allclose(permuted.predict(X), reg.predict(X), rtol=1e-12, atol=1e-12)


def test_summary_without_pandas_is_a_structured_array_that_prints_as_a_table(
        fitted, monkeypatch):
    reg, X = fitted
    frame = summary(make_pipeline(StandardScaler(), reg).fit(X, reg.predict(X) + X[:, 1]))
    assert list(frame.columns) == [name for name, _ in inference.COLUMNS]
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    table = summary(reg)
    assert isinstance(table, np.ndarray) and table.dtype.names == tuple(frame.columns)
    lines = str(table).splitlines()
    assert len(lines) == len(table) + 1
    assert lines[0].split() == list(frame.columns)
    assert lines[1].split()[:4] == ["gate", "0", "-1", "weight"]


def test_summary_errors_are_the_delta_method_of_the_covariance(fitted):
    # the gates' weights, directions and lengths by central differences of
    # their definitions (canonical form), against the table's errors
    reg, X = fitted
    spec, params = reg._fitted_spec(), reg._params()
    k, d = params.shape
    stats = reg._covariance
    theta = params.to_vector(spec)
    theta[:k * d] = gate_atoms(params.gate_coef, spec.router, 1.0).ravel()

    def canonical(theta):
        u, b = theta[:k * d].reshape(k, d), theta[k * d:k * d + k]
        weights = np.exp(b - b.max()) / np.exp(b - b.max()).sum()
        centred = u - weights @ u
        lengths = np.linalg.norm(centred, axis=1)
        experts = np.c_[theta[k * d + k:2 * k * d + k].reshape(k, d), theta[2 * k * d + k:]]
        return np.concatenate([np.c_[weights, centred / lengths[:, None],
                                     lengths / spec.temperature].ravel(), experts.ravel()])

    eps = 1e-7
    gradient = np.column_stack([(canonical(theta + eps * e) - canonical(theta - eps * e))
                                / (2 * eps) for e in np.eye(theta.size)])
    # a move along the ball's boundary only, for an atom held there
    tangent = stats["basis"] @ np.linalg.pinv(stats["basis"])
    errors = np.sqrt(np.einsum("qp,pr,qr->q", gradient @ tangent, stats["covariance"],
                               gradient @ tangent))
    table = summary(reg)
    assert_allclose(table["estimate"], canonical(theta), rtol=1e-12, atol=1e-15)
    assert_allclose(table["std_error"], errors, rtol=1e-6)


def test_dask_predictions_are_lazy_and_match(fitted):
    pytest.importorskip("dask.array")
    import dask
    import dask.array as da

    reg, X = fitted
    Xd = da.from_array(X, chunks=(70, 2))
    with dask.config.set(scheduler="sync"):
        mean, std = reg.predict(Xd, return_std=True)
        lower, upper = reg.predict_interval(Xd)
        assert all(dask.is_dask_collection(a) for a in (mean, std, lower, upper))
        expected = reg.predict(X, return_std=True)
        assert_allclose(mean.compute(), expected[0], rtol=1e-14)
        assert_allclose(std.compute(), expected[1], rtol=1e-12)
        assert_allclose(upper.compute(), reg.predict_interval(X)[1], rtol=1e-12)
        # a fit by chunks gets the covariance of the fit in memory
        y = reg.predict(X) + 0.1 * np.random.default_rng(0).standard_normal(len(X))
        kwargs = {"n_experts": 2, "temperature": 0.5, "random_state": 0, "tol": 1e-10}
        local = CosineMoERegressor(**kwargs).fit(X, y)
        chunks = CosineMoERegressor(**kwargs).fit(Xd, da.from_array(y, chunks=70))
    assert_allclose(chunks.predict(X, return_std=True)[1],
                    local.predict(X, return_std=True)[1], rtol=1e-5)


def test_a_saved_model_keeps_its_covariance(fitted, tmp_path):
    skops_io = pytest.importorskip("skops.io")
    from sklearn_cosmoe import persistence

    reg, X = fitted
    persistence.dump(reg, tmp_path / "reg.skops")
    assert skops_io.get_untrusted_types(file=tmp_path / "reg.skops") == [
        "sklearn_cosmoe._estimator.CosineMoERegressor"]
    loaded = persistence.load(tmp_path / "reg.skops")
    for a, b in zip(loaded.predict(X, return_std=True), reg.predict(X, return_std=True)):
        assert_array_equal(a, b)
