"""The Gauss-Newton sums, the convergence test and the Levenberg-Marquardt solver."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._jacobian import finish_gauss_newton, gauss_newton_sums
from sklearn_cosmoe._model import MoEParams, MoESpec, objective, predict, row_norms
from sklearn_cosmoe._objective import ArrayObjective
from sklearn_cosmoe._routers import gate_atoms, gate_coef_of_atoms
from sklearn_cosmoe._solvers import QuadraticModel, lbfgs_with_restart
from sklearn_cosmoe.datasets import make_cosine_moe

N, D, K = 120, 3, 3


def random_problem(router, expert, top_k, n_outputs, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    X[0] = 0.0  # a zero row: the cosine scores' guard
    spec = MoESpec(router=router, expert=expert, tau1=0.7, tau2=0.3, temperature=0.8,
                   top_k=top_k, alpha=0.01, n_outputs=n_outputs)
    m = n_outputs
    params = MoEParams(rng.standard_normal((K, D)), rng.standard_normal(K),
                       rng.standard_normal((K, D) if m is None else (K, m, D)),
                       rng.standard_normal(K if m is None else (K, m)),
                       1.3 if m is None else np.linspace(0.7, 1.3, m),
                       0.2 if m is None else np.linspace(-0.1, 0.2, m))
    theta = params.to_vector(spec)
    params = MoEParams.from_vector(theta, params.shape, spec)
    y = np.asfortranarray(rng.standard_normal(N if m is None else (N, m)))
    return X, y, rng.uniform(0.5, 2.0, N), params, spec


def gauss_newton(X, y, w, params, spec, atoms=False, exact=False):
    return finish_gauss_newton(
        gauss_newton_sums(X, row_norms(X), y, w, params, spec, exact), params, spec, atoms)


@pytest.mark.parametrize("n_outputs", [None, 2])
@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("expert", ["linear", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("router", ["linear", "cosine", "perturbed_cosine"])
def test_gauss_newton_matrix_is_jt_w_j_of_finite_differences(router, expert, top_k,
                                                              n_outputs):
    X, y, w, params, spec = random_problem(router, expert, top_k, n_outputs)
    theta = params.to_vector(spec)
    loss, grad, hess = gauss_newton(X, y, w, params, spec)
    # the loss and gradient of the fused kernel
    kernel_loss, kernel_grad = objective(theta, X, y, w, params.shape, spec)
    assert_allclose(loss, kernel_loss, rtol=1e-13)
    assert_allclose(grad, kernel_grad, rtol=0, atol=1e-13 * np.max(np.abs(kernel_grad)))
    # J by central differences of predict, independent of the module's formulas
    eps = 1e-6
    columns = []
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = eps
        up = predict(X, MoEParams.from_vector(theta + step, params.shape, spec), spec)
        down = predict(X, MoEParams.from_vector(theta - step, params.shape, spec), spec)
        columns.append(((up - down) / (2 * eps)).reshape(N, -1))
    J = np.stack(columns, axis=-1)
    expected = np.einsum("n,nmp,nmq->pq", w, J, J) / w.sum()
    k, d = params.shape
    ridge = np.arange(k * d + k, k * d + k + params.expert_coef.size)
    expected[ridge, ridge] += spec.alpha
    if router == "linear":
        expected[np.arange(k * d), np.arange(k * d)] += spec.alpha
    assert_allclose(hess, expected, rtol=0, atol=1e-8 * np.max(np.abs(expected)))


@pytest.mark.parametrize("n_outputs", [None, 2])
@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("expert", ["linear", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("router", ["linear", "perturbed_cosine"])
def test_gauss_newton_matrix_plus_curvature_is_the_hessian_in_the_atoms(router, expert,
                                                                        top_k, n_outputs):
    # the Hessian by central differences of the gradient in the atoms u_i
    # (beta_1i = tau1 u_i / (1 - |u_i|)), independent of the curvature's formulas
    X, y, w, params, spec = random_problem(router, expert, top_k, n_outputs)
    params.gate_coef *= 0.5
    k, d = params.shape
    z = params.to_vector(spec)
    if router == "perturbed_cosine":
        z[:k * d] = gate_atoms(params.gate_coef, router, spec.tau1).ravel()

    def at(z):
        theta = z.copy()
        if router == "perturbed_cosine":
            theta[:k * d] = gate_coef_of_atoms(z[:k * d].reshape(k, d), spec.tau1).ravel()
        return MoEParams.from_vector(theta, params.shape, spec)

    _, grad, hess, curvature = gauss_newton(X, y, w, at(z), spec, atoms=True, exact=True)
    eps = 1e-6
    columns = []
    for i in range(z.size):
        step = np.zeros_like(z)
        step[i] = eps
        up = gauss_newton(X, y, w, at(z + step), spec, atoms=True)[1]
        down = gauss_newton(X, y, w, at(z - step), spec, atoms=True)[1]
        columns.append((up - down) / (2 * eps))
    expected = np.stack(columns, axis=1)
    assert_allclose(hess + curvature, expected, rtol=0, atol=1e-7 * np.max(np.abs(expected)))
    # the residuals' curvature is not negligible here: the Gauss-Newton matrix alone fails
    assert not np.allclose(hess, expected, rtol=0, atol=1e-3 * np.max(np.abs(expected)))


def test_exact_hessian_is_refused_where_the_chain_rule_would_bend_it():
    X, y, w, params, spec = random_problem("cosine", "linear", None, None)
    with pytest.raises(ValueError, match="in the atoms"):
        gauss_newton(X, y, w, params, spec, exact=True)


@pytest.mark.parametrize("router", ["linear", "cosine", "perturbed_cosine"])
def test_integer_weights_give_the_sums_of_repeated_rows(router):
    X, y, _, params, spec = random_problem(router, "tanh", None, None)
    w = np.random.default_rng(1).integers(0, 4, N).astype(float)
    weighted = gauss_newton(X, y, w, params, spec)
    repeated = gauss_newton(np.repeat(X, w.astype(int), axis=0),
                            np.repeat(y, w.astype(int)), np.ones(int(w.sum())), params, spec)
    for a, b in zip(weighted, repeated):
        assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # ignoring the weights would not pass
    assert not np.allclose(gauss_newton(X, y, np.ones(N), params, spec)[0], weighted[0])


def test_shift_of_the_atoms_is_invisible_to_the_gates():
    X, y, w, params, spec = random_problem("perturbed_cosine", "linear", None, None)
    # in the atoms, moving every u_i by the same c changes no score's softmax
    _, _, hess = gauss_newton(X, y, w, params, replace_alpha(spec), atoms=True)
    directions = np.zeros((hess.shape[0], D))
    directions[:K * D] = np.tile(np.eye(D), (K, 1))
    assert_allclose(hess @ directions, 0.0, atol=1e-12 * np.max(np.abs(hess)))
    assert np.max(np.abs(hess[:K * D, :K * D])) > 1e-3


def replace_alpha(spec):
    from dataclasses import replace

    return replace(spec, alpha=0.0)


def test_decrement_is_the_remaining_decrease_of_a_linear_least_squares():
    # L(t) = |A t - b|^2 / 2 has gradient A^T r and Gauss-Newton matrix A^T A:
    # g^T H^+ g / 2 is L(t) - min L exactly, whatever the parameters' units,
    # and a column that duplicates another (an unidentified direction) does
    # not change it
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 4))
    b = rng.standard_normal(40)
    t = rng.standard_normal(4)
    best = np.linalg.lstsq(A, b, rcond=None)[0]

    def decrease(A, t):
        r = A @ t - b
        return QuadraticModel(A.T @ r, A.T @ A).decrease

    exact = 0.5 * np.sum((A @ t - b) ** 2) - 0.5 * np.sum((A @ best - b) ** 2)
    assert_allclose(decrease(A, t), exact, rtol=1e-10)
    units = np.array([1e-4, 1.0, 1e3, 7.0])
    assert_allclose(decrease(A / units, t * units), exact, rtol=1e-8)
    doubled = np.column_stack([A, A[:, 0]])
    assert_allclose(decrease(doubled, np.r_[t, 0.0]), exact, rtol=1e-8)


def test_levenberg_marquardt_step_lowers_the_objective_as_predicted_when_small():
    X, y, w, params, spec = random_problem("linear", "tanh", None, None)
    theta = params.to_vector(spec)
    loss, grad, hess = gauss_newton(X, y, w, params, spec)
    model = QuadraticModel(grad, hess)
    step, predicted = model.step(1e3 * model.largest)
    actual = loss - objective(theta + step, X, y, w, params.shape, spec)[0]
    assert predicted > 0
    assert_allclose(actual, predicted, rtol=1e-2)


@pytest.mark.parametrize("router,expert", [("linear", "linear"), ("cosine", "linear"),
                                           ("perturbed_cosine", "linear"),
                                           ("linear", "tanh")])
def test_gauss_newton_fits_certify_one_stationary_point(router, expert):
    # equal problems, equal answers: integer weights and repeated rows fitted
    # to a certified stationary point agree to far better than the loss's
    # tolerance; the same start with a tol 100x smaller moves the objective
    # by less than the tol promises
    X, y, _ = make_cosine_moe(300, 4, 3, router=router, expert=expert, noise=0.1,
                              random_state=5)
    w = np.random.default_rng(0).integers(0, 4, len(y))
    fit = dict(router=router, expert=expert, n_experts=3, solver="gauss-newton",
               random_state=0)
    weighted = CosineMoERegressor(tol=1e-10, **fit).fit(X, y, sample_weight=w)
    repeated = CosineMoERegressor(tol=1e-10, **fit).fit(np.repeat(X, w, axis=0),
                                                        np.repeat(y, w))
    assert weighted.converged_ and repeated.converged_
    assert weighted.stationarity_ <= 1e-10
    assert_allclose(weighted.loss_, repeated.loss_, rtol=1e-9)
    loose = CosineMoERegressor(tol=1e-6, **fit).fit(X, y, sample_weight=w)
    assert loose.converged_ and loose.n_iter_ <= weighted.n_iter_
    # (loss_ is the objective without the eliminated experts' jitter term,
    # which the minimised function includes: it may end a hair either way)
    assert abs(loose.loss_ - weighted.loss_) <= 2e-6 * weighted.loss_


def test_lbfgs_stops_on_an_objective_unbounded_below():
    # a loss that keeps falling below 0 (as negative class weights would give)
    # once looped without end; the runs are bounded now
    calls = []

    def falling(t):
        calls.append(1)
        return -np.exp(t[0]) - 1.0, np.array([-np.exp(t[0])])

    with np.errstate(over="ignore"):
        theta, loss, n_iter, reason = lbfgs_with_restart(falling, np.zeros(1), 50, 1e-6)
    assert n_iter <= 50 and len(calls) < 10_000 and loss < -1.0


def test_dask_objective_gives_the_same_gauss_newton_sums():
    da = pytest.importorskip("dask.array")
    from sklearn_cosmoe._dask import DaskObjective

    X, y, w, params, spec = random_problem("perturbed_cosine", "tanh", None, None)
    rows = ArrayObjective(X, y, w)
    chunks = DaskObjective(da.from_array(X, chunks=(50, D)), da.from_array(y, chunks=50),
                           da.from_array(w, chunks=50))
    theta = params.to_vector(spec)
    for a, b in zip(rows.gauss_newton(theta, params.shape, spec),
                    chunks.gauss_newton(theta, params.shape, spec)):
        assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_auto_takes_newton_for_linear_experts_up_to_its_parameter_bound():
    from sklearn_cosmoe._solvers import NEWTON_MAX_PARAMETERS, default_solver

    assert default_solver("linear", NEWTON_MAX_PARAMETERS) == "gauss-newton"
    assert default_solver("linear", NEWTON_MAX_PARAMETERS + 1) == "lbfgs"
    assert default_solver("tanh", 10) == "lbfgs"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X[:, 0] * (X[:, 1] > 0)
    small = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y)
    assert np.isfinite(small.stationarity_) and small.stationarity_ <= small.tol
    # 2 * 4 experts * (62 features + 1) router and expert parameters: past the bound
    wide = np.hstack([X, rng.standard_normal((60, 59))])
    with pytest.warns(ConvergenceWarning, match="max_iter=5 L-BFGS iterations"):
        big = CosineMoERegressor(n_experts=4, max_iter=5, random_state=0).fit(wide, y)
    assert np.isnan(big.stationarity_)
    with pytest.warns(ConvergenceWarning, match="max_iter=2 Newton iterations"):
        CosineMoERegressor(n_experts=2, max_iter=2, random_state=0).fit(X, y)


def test_newton_matrices_count_in_the_memory_bound():
    from sklearn_cosmoe._memory import MEMORY_LIMIT, regressor_fit_bytes

    # 4 experts on 2000 features: 16008 parameters, 2 GiB per matrix of them
    newton = regressor_fit_bytes(3, 2000, 4, solver="gauss-newton")
    assert newton["newton"] >= 12 * 16008 ** 2 * 8 and newton["total"] > MEMORY_LIMIT
    assert regressor_fit_bytes(3, 2000, 4, solver="auto")["newton"] == 0
    X = np.zeros((3, 2000))
    X[:, 0] = 1.0
    with pytest.raises(ValueError, match="solver='lbfgs'"):
        CosineMoERegressor(n_experts=4, solver="gauss-newton").fit(X, np.arange(3.0))


@pytest.mark.parametrize("expert", ["linear", "tanh"])
def test_gauss_newton_sums_stay_within_their_memory_bound(expert):
    """The sums hold one block of rows and a few parameter-squared matrices,
    never an array of every row's outer products."""
    import tracemalloc

    from sklearn_cosmoe._jacobian import GN_BLOCK
    from sklearn_cosmoe._memory import _newton_block_entries

    rng = np.random.default_rng(0)
    n, d, k = 3 * GN_BLOCK, 30, 3
    X, y, w = rng.standard_normal((n, d)), rng.standard_normal(n), rng.uniform(0.5, 2, n)
    spec = MoESpec(expert=expert, alpha=0.01)
    params = MoEParams(rng.standard_normal((k, d)), rng.standard_normal(k),
                       rng.standard_normal((k, d)), rng.standard_normal(k), 1.0, 0.0)
    x_norms = row_norms(X)
    gauss_newton_sums(X, x_norms, y, w, params, spec, exact=True)  # compiled, cached
    tracemalloc.start()
    try:
        gauss_newton_sums(X, x_norms, y, w, params, spec, exact=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    width = k * (d + 1)
    size = 2 * width + 2
    bound = (GN_BLOCK * _newton_block_entries(width, d) + 6 * size ** 2) * 8
    assert peak <= bound
    # the rows' features' outer products of a block alone would not fit
    assert GN_BLOCK * (d + 1) ** 2 * 8 > bound - 6 * size ** 2 * 8


def test_a_dead_expert_neither_blocks_nor_moves_a_certified_fit():
    # a third expert whose gates are about e^-80 of the others': the objective
    # cannot see it, and its scaled gradient would promise a revival that no
    # quadratic step delivers; the fit certifies the other two and leaves it
    from sklearn_cosmoe._solver import fit_least_squares

    X, y, _ = make_cosine_moe(400, 3, 2, router="perturbed_cosine", noise=0.1,
                              random_state=3)
    rows = ArrayObjective(X, (y - y.mean()) / y.std(), np.ones(len(y)))
    spec = MoESpec(router="perturbed_cosine", alpha=1e-4)
    rng = np.random.default_rng(0)
    start = MoEParams(rng.standard_normal((3, 3)), np.array([0.0, 0.0, -80.0]),
                      np.zeros((3, 3)), np.zeros(3))
    result = fit_least_squares(rows, start, spec, solver="gauss-newton")
    assert result.converged and result.stationarity <= 1e-6
    assert result.params.gate_intercept[2] == -80.0
    assert_allclose(result.params.gate_coef[2], start.gate_coef[2], rtol=1e-12)


@pytest.mark.parametrize("router", ["linear", "perturbed_cosine"])
def test_gauss_newton_ends_one_step_past_the_first_certified_point(router):
    # the fit that passes the test at iteration m - 1 takes one more step and
    # ends where the test passes again: cut at m - 1 iterations it ends
    # certified at the first passing point, at m - 2 it has not passed yet,
    # and the step past the first passing point lowers the objective
    from sklearn_cosmoe._solver import initial_params
    from sklearn_cosmoe._solvers import gauss_newton, problem_for

    X, y, _ = make_cosine_moe(300, 4, 3, router=router, expert="linear", noise=0.1,
                              random_state=5)
    data = ArrayObjective(X, (y - y.mean()) / y.std(), np.ones(len(y)))
    spec = MoESpec(router=router, expert="linear", temperature=0.5, alpha=1e-4)
    start = initial_params(data, spec, 3, np.random.default_rng(0))

    def run(max_iter, tol=1e-6):
        theta = start.to_vector(spec)
        problem = problem_for("gauss-newton", data, theta, start.shape, spec)
        return gauss_newton(problem, max_iter, tol)

    full = run(1000)
    m = full.n_iter
    assert full.reason is None and full.stationarity <= 1e-6 and m >= 3
    first = run(m - 1)
    assert first.reason is None and first.stationarity <= 1e-6
    assert run(m - 2).reason == "max_iter"
    assert full.loss < first.loss
