"""Kernels against the plain NumPy formulas of the user guide (tests/reference.py)."""

import math

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import check_grad

from sklearn_cosmoe import _jit_tiles, _kernels
from sklearn_cosmoe._model import MoESpec, gates_and_experts, objective, predict

from . import reference
from .conftest import EXPERTS, ROUTERS, random_params


@pytest.mark.parametrize("top_k", [None, 1, 2])
@pytest.mark.parametrize("router", ROUTERS)
def test_gates_match_numpy(small_data, router, top_k):
    X, _, _ = small_data
    rng = np.random.default_rng(1)
    p = random_params(rng, 4, 3)
    spec = MoESpec(router=router, tau1=0.5, tau2=0.3, temperature=0.7, top_k=top_k)
    gates, _ = gates_and_experts(X, p, spec)
    s = reference.scores(X, p.gate_coef, p.gate_intercept, router, 0.5, 0.3, 0.7)
    assert_allclose(gates, reference.gates(s, top_k), rtol=1e-12, atol=1e-15)
    assert_allclose(gates.sum(axis=1), 1.0, rtol=1e-14)
    if top_k is not None:
        assert_array_equal((gates > 0).sum(axis=1), top_k)


@pytest.mark.parametrize("expert", EXPERTS)
def test_experts_and_predict_match_numpy(small_data, expert):
    X, _, _ = small_data
    p = random_params(np.random.default_rng(2), 3, 3)
    spec = MoESpec(expert=expert, tau1=0.5, tau2=0.3)
    _, outputs = gates_and_experts(X, p, spec)
    assert_allclose(outputs, reference.experts(X, p.expert_coef, p.expert_intercept, expert),
                    rtol=1e-12, atol=1e-14)
    assert_allclose(predict(X, p, spec),
                    reference.predict(X, p, "perturbed_cosine", expert, 0.5, 0.3),
                    rtol=1e-12)


@numba.njit
def _exp_each(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _jit_tiles.exp_nonpositive(x[i])
    return out


def test_exp_nonpositive_is_within_an_ulp_of_numpy():
    rng = np.random.default_rng(9)
    x = np.concatenate([-rng.uniform(0, 1, 4000), -rng.uniform(0, 708, 4000),
                        [0.0, -0.0, -1e-300, -0.5 * np.log(2), -708.0]])
    # math.exp (the C library's), not np.exp: NumPy's exp is itself off by an
    # ulp in places, differently in each version (in 1.24 at 1878 of these x)
    assert_allclose(_exp_each(x), [math.exp(v) for v in x], rtol=2.3e-16, atol=0)
    # below -708 the result is flushed to 0 (the softmax needs no subnormals)
    assert_array_equal(_exp_each(np.array([-708.1, -745.2, -1e6, -np.inf])), 0.0)


@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("router", ROUTERS)
def test_kernels_match_numpy_across_blocks_and_tiles(router, top_k):
    """1301 rows: 3 blocks of 434 rows, each a full and a partial tile."""
    assert _kernels.TILE < 434 < 2 * _kernels.TILE
    rng = np.random.default_rng(10)
    X = rng.standard_normal((1301, 3))
    X[7] = 0.0
    y = rng.standard_normal(1301)
    w = rng.uniform(0.5, 2.0, 1301)
    p = random_params(rng, 5, 3)
    spec = MoESpec(router=router, expert="tanh", top_k=top_k, tau1=0.5, tau2=0.3,
                   temperature=0.7)
    gates, _ = gates_and_experts(X, p, spec)
    s = reference.scores(X, p.gate_coef, p.gate_intercept, router, 0.5, 0.3, 0.7)
    assert_allclose(gates, reference.gates(s, top_k), rtol=1e-12, atol=1e-15)
    loss, grad = objective(p.to_vector(spec), X, y, w, (5, 3), spec)
    r = y - reference.predict(X, p, router, "tanh", 0.5, 0.3, 0.7, top_k)
    expected = 0.5 * w @ r**2 / w.sum() + 0.5 * spec.alpha * np.sum(p.expert_coef**2)
    if router == "linear":
        expected += 0.5 * spec.alpha * np.sum(p.gate_coef**2)
    assert_allclose(loss, expected, rtol=1e-12)

    def loss_only(t):
        return objective(t, X, y, w, (5, 3), spec)[0]

    assert check_grad(loss_only, lambda t: objective(t, X, y, w, (5, 3), spec)[1],
                      p.to_vector(spec)) < 1e-6 * np.linalg.norm(grad)


@pytest.mark.parametrize("expert", ["linear", "gelu"])
def test_gates_and_experts_of_a_row_do_not_depend_on_the_other_rows(expert):
    """Bit for bit, whatever the row's place in its tile (k = 8, 3001 rows).

    A BLAS product rounds some rows differently by their place in a tile
    (seen with these 3001 rows), so the forward pass of ``predict`` sums
    each row's dot products itself.
    """
    rng = np.random.default_rng(11)
    X = rng.standard_normal((3001, 7))
    p = random_params(rng, 8, 7)
    spec = MoESpec(expert=expert)
    gates, outputs = gates_and_experts(X, p, spec)
    perm = rng.permutation(len(X))
    gates_perm, outputs_perm = gates_and_experts(X[perm], p, spec)
    assert_array_equal(gates_perm, gates[perm])
    assert_array_equal(outputs_perm, outputs[perm])
    head, _ = gates_and_experts(X[:7], p, spec)
    assert_array_equal(head, gates[:7])


def test_zero_row_under_cosine_router_scores_its_bias():
    """A zero row has cosine term 0: its gates are softmax(beta0), never NaN."""
    p = random_params(np.random.default_rng(3), 3, 2)
    X = np.zeros((2, 2))
    gates, _ = gates_and_experts(X, p, MoESpec(router="cosine"))
    expected = np.exp(p.gate_intercept) / np.exp(p.gate_intercept).sum()
    assert_allclose(gates, np.tile(expected, (2, 1)), rtol=1e-14)


def test_softmax_is_stable_for_huge_scores():
    p = random_params(np.random.default_rng(4), 3, 2)
    p.gate_intercept = np.array([1000.0, 999.0, -1000.0])
    gates, _ = gates_and_experts(np.ones((1, 2)), p, MoESpec(temperature=1e-3))
    assert np.all(np.isfinite(gates))
    assert_allclose(gates.sum(), 1.0)


@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("expert", EXPERTS)
@pytest.mark.parametrize("router", ROUTERS)
def test_gradient_matches_finite_differences(small_data, router, expert, top_k):
    X, y, w = small_data
    k, d = 4, X.shape[1]
    p = random_params(np.random.default_rng(5), k, d)
    spec = MoESpec(router=router, expert=expert, top_k=top_k, alpha=0.1,
                   temperature=0.5, tau1=0.5, tau2=0.3)
    theta = p.to_vector(spec)

    def loss(t):
        return objective(t, X, y, w, (k, d), spec)[0]

    def grad(t):
        return objective(t, X, y, w, (k, d), spec)[1]

    assert check_grad(loss, grad, theta) < 1e-6 * np.linalg.norm(grad(theta))


def test_loss_matches_numpy(small_data):
    X, y, w = small_data
    p = random_params(np.random.default_rng(6), 3, 3)
    spec = MoESpec(expert="tanh", alpha=0.2, tau1=0.5, tau2=0.3)
    loss, _ = objective(p.to_vector(spec), X, y, w, (3, 3), spec)
    r = y - reference.predict(X, p, "perturbed_cosine", "tanh", 0.5, 0.3)
    expected = 0.5 * w @ r**2 / w.sum() + 0.1 * np.sum(p.expert_coef**2)
    assert_allclose(loss, expected, rtol=1e-12)


def test_gated_gram_matches_numpy(small_data):
    X, y, w = small_data
    p = random_params(np.random.default_rng(7), 3, 3)
    gates, _ = gates_and_experts(X, p, MoESpec())
    gram, rhs = _kernels.gated_gram(X, y, w, gates)
    Xt = np.hstack([X, np.ones((len(X), 1))])
    Z = (gates[:, :, None] * Xt[:, None, :]).reshape(len(X), -1)
    assert_allclose(gram, Z.T @ (w[:, None] * Z), rtol=1e-12, atol=1e-13)
    assert_allclose(rhs, Z.T @ (w * y), rtol=1e-12, atol=1e-13)


def test_direction_cluster_sums_match_numpy():
    # 1301 rows: three row blocks; a zero row; centres 1 and 3 are equal, so
    # every row nearest to them goes to the lower index, 1
    rng = np.random.default_rng(9)
    X = rng.standard_normal((1301, 3))
    X[700] = 0.0
    w = rng.uniform(0.5, 2.0, 1301)
    centres = rng.standard_normal((4, 3))
    centres[3] = centres[1]
    sums = _kernels.direction_cluster_sums(X, np.linalg.norm(X, axis=1), w, centres)
    keep = np.arange(1301) != 700
    U = X[keep] / np.linalg.norm(X[keep], axis=1, keepdims=True)
    labels = np.argmax(U @ centres.T, axis=1)
    expected = np.array([(w[keep][labels == i, None] * U[labels == i]).sum(axis=0)
                         for i in range(4)])
    assert_array_equal(sums[3], 0.0)
    assert_allclose(sums, expected, rtol=1e-12, atol=1e-12)


def test_reductions_do_not_depend_on_thread_count(monkeypatch):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((5000, 4))
    y = rng.standard_normal(5000)
    w = np.ones(5000)
    p = random_params(rng, 3, 4)
    spec = MoESpec()
    norms = np.linalg.norm(X, axis=1)
    results = []
    for threads in [1, 2, 3]:
        monkeypatch.setattr(_kernels, "n_threads", lambda n, n_blk: threads)
        loss, grad = objective(p.to_vector(spec), X, y, w, (3, 4), spec)
        sums = _kernels.direction_cluster_sums(X, norms, w, p.gate_coef)
        gates, _ = gates_and_experts(X, p, spec)
        results.append((loss, grad, sums, gates, _kernels.row_norms(X)))
    for result in results[1:]:
        assert result[0] == results[0][0]
        for got, expected in zip(result[1:], results[0][1:]):
            assert_array_equal(got, expected)


def test_exp_nonpositive_propagates_nan():
    assert np.isnan(_exp_each(np.array([np.nan]))[0])


@pytest.mark.parametrize("top_k", [None, 1])
@pytest.mark.parametrize("router", ROUTERS)
def test_nan_parameter_gives_nan_gates_and_loss(small_data, router, top_k):
    """A NaN gate parameter must not become a gate of 0 (a finite prediction)."""
    X, y, w = small_data
    p = random_params(np.random.default_rng(12), 3, 3)
    p.gate_coef[1, 0] = np.nan
    spec = MoESpec(router=router, top_k=top_k)
    gates, _ = gates_and_experts(X, p, spec)
    nonzero_row = np.linalg.norm(X, axis=1) > 0
    assert np.all(np.isnan(gates[nonzero_row]))
    assert np.all(np.isnan(predict(X[nonzero_row], p, spec)))
    assert np.isnan(objective(p.to_vector(spec), X, y, w, (3, 3), spec)[0])


# the arguments of each entry point that _kernel_calls lets a test replace
_TAKES = {
    "row_norms": ("X",),
    "gates_and_experts": ("X", "x_norms", "params"),
    "loss_and_gradient": ("X", "x_norms", "y", "sample_weight", "params"),
    "direction_cluster_sums": ("X", "x_norms", "sample_weight", "centres"),
    "gated_gram": ("X", "y", "sample_weight", "gates"),
}


def _kernel_calls(X, y, w, p):
    n = len(X)
    codes = MoESpec().kernel_args()
    arrays = (p.gate_coef, p.gate_intercept, p.expert_coef, p.expert_intercept)
    return {
        "row_norms": lambda **kw: _kernels.row_norms(kw.get("X", X)),
        "gates_and_experts": lambda **kw: _kernels.gates_and_experts(
            kw.get("X", X), kw.get("x_norms", np.ones(n)), *kw.get("params", arrays),
            *codes),
        "loss_and_gradient": lambda **kw: _kernels.loss_and_gradient(
            kw.get("X", X), kw.get("x_norms", np.ones(n)), kw.get("y", y),
            kw.get("sample_weight", w), *kw.get("params", arrays), 1.0, 0.0, *codes),
        "direction_cluster_sums": lambda **kw: _kernels.direction_cluster_sums(
            kw.get("X", X), kw.get("x_norms", np.ones(n)), kw.get("sample_weight", w),
            kw.get("centres", p.gate_coef)),
        "gated_gram": lambda **kw: _kernels.gated_gram(
            kw.get("X", X), kw.get("y", y), kw.get("sample_weight", w),
            kw.get("gates", np.full((n, 3), 1 / 3))),
    }


@pytest.mark.parametrize("bad,match", [
    ({"X": np.ones(40)}, "X must be a 2-d array"),
    ({"x_norms": np.ones(39)}, "x_norms has shape"),
    ({"y": np.ones(41)}, "y has shape"),
    ({"sample_weight": np.ones((40, 1))}, "sample_weight has shape"),
    ({"gates": np.ones((39, 3))}, "gates has shape"),
    ({"centres": np.ones((3, 2))}, "centres has shape"),
    ({"params": (np.ones((3, 4)), np.ones(3), np.ones((3, 3)), np.ones(3))},
     "gate_coef has shape"),
    ({"params": (np.ones((3, 3)), np.ones(2), np.ones((3, 3)), np.ones(3))},
     "gate_intercept has shape"),
    ({"params": (np.ones((3, 3)), np.ones(3), np.ones((2, 3)), np.ones(3))},
     "expert_coef has shape"),
    ({"params": (np.ones((3, 3)), np.ones(3), np.ones((3, 3)), np.ones(4))},
     "expert_intercept has shape"),
    ({"params": (np.ones((0, 3)), np.ones(0), np.ones((0, 3)), np.ones(0))},
     "at least one row"),
])
def test_kernel_entry_points_check_shapes(small_data, bad, match):
    """Every entry point that a given argument reaches rejects a wrong shape."""
    X, y, w = small_data
    p = random_params(np.random.default_rng(13), 3, 3)
    calls = _kernel_calls(X, y, w, p)
    checked = 0
    for name, takes in _TAKES.items():
        calls[name]()  # the good arguments pass
        if set(bad) <= set(takes):
            with pytest.raises(ValueError, match=match):
                calls[name](**bad)
            checked += 1
    assert checked > 0


def test_zero_total_weight_is_rejected(small_data):
    X, y, _ = small_data
    p = random_params(np.random.default_rng(14), 3, 3)
    spec = MoESpec()
    with pytest.raises(ValueError, match="sample_weight must have a positive sum"):
        objective(p.to_vector(spec), X, y, np.zeros(len(X)), (3, 3), spec)


def test_codes_are_checked():
    X = np.ones((2, 2))
    args = (X, np.ones(2), np.ones((1, 2)), np.ones(1), np.ones((1, 2)), np.ones(1))
    with pytest.raises(ValueError, match="router must be"):
        _kernels.gates_and_experts(*args, 7, 0, 1.0, 1.0, 1.0, 0)
    with pytest.raises(ValueError, match="expert must be"):
        _kernels.gates_and_experts(*args, 0, 9, 1.0, 1.0, 1.0, 0)


def test_caller_arrays_are_not_written(small_data):
    X, y, w = small_data
    p = random_params(np.random.default_rng(15), 3, 3)
    copies = [a.copy() for a in (X, y, w, p.gate_coef, p.expert_coef)]
    for call in _kernel_calls(X, y, w, p).values():
        call()
    for a, b in zip(copies, (X, y, w, p.gate_coef, p.expert_coef)):
        assert_array_equal(a, b)
