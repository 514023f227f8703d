import numpy as np
import pytest
from sklearn.base import BaseEstimator

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._model import MoEParams, MoESpec
from sklearn_cosmoe.mixing import MixingMeasure

ROUTERS = ["perturbed_cosine", "cosine", "linear"]


def _arrays(rng, k=3, d=2):
    return (rng.standard_normal((k, d)), rng.standard_normal(k),
            rng.standard_normal((k, d)), rng.standard_normal(k))


def test_arrays_are_copied_and_caller_arrays_untouched():
    rng = np.random.default_rng(0)
    arrays = _arrays(rng)
    before = [a.copy() for a in arrays]
    G = MixingMeasure(*arrays, router="cosine")
    G.canonical()
    G.to_params().gate_coef[:] = 7.0
    arrays[0][:] = 5.0
    assert not np.shares_memory(G.gate_coef, arrays[0])
    np.testing.assert_array_equal(G.gate_coef, before[0])
    for a, b in zip(arrays[1:], before[1:]):
        np.testing.assert_array_equal(a, b)
    assert G.gate_coef.dtype == np.float64


@pytest.mark.parametrize("router", ROUTERS)
def test_canonical_matches_the_user_guide(router):
    rng = np.random.default_rng(1)
    b1, b0, a, b = _arrays(rng, k=4, d=3)
    tau1 = 0.7
    c = MixingMeasure(b1, b0, a, b, router=router, tau1=tau1).canonical()
    pi = np.exp(b0) / np.exp(b0).sum()
    norms = np.linalg.norm(b1, axis=1, keepdims=True)
    u = {"perturbed_cosine": b1 / (norms + tau1), "cosine": b1 / norms,
         "linear": b1}[router]
    np.testing.assert_allclose(c.weights, pi, rtol=1e-14)
    np.testing.assert_allclose(c.weights.sum(), 1.0, rtol=1e-15)
    np.testing.assert_allclose(c.gate_atoms, u - pi @ u, atol=1e-15)
    np.testing.assert_allclose(c.gate_atoms.T @ c.weights, 0.0, atol=1e-15)
    np.testing.assert_array_equal(c.atoms, np.hstack([c.gate_atoms, a, b[:, None]]))


def test_canonical_weights_survive_huge_intercepts():
    G = MixingMeasure(np.eye(2), [1000.0, 1000.0], np.eye(2), [0.0, 0.0])
    np.testing.assert_allclose(G.canonical().weights, [0.5, 0.5])


def test_params_round_trip():
    rng = np.random.default_rng(2)
    spec = MoESpec(router="perturbed_cosine", expert="tanh", tau1=0.5)
    params = MoEParams(*_arrays(rng), output_scale=1.7, output_intercept=-0.3)
    G = MixingMeasure.from_params(params, spec)
    assert (G.router, G.tau1, G.expert) == ("perturbed_cosine", 0.5, "tanh")
    back = G.to_params()
    for name in ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept"):
        np.testing.assert_array_equal(getattr(back, name), getattr(params, name))
    assert (back.output_scale, back.output_intercept) == (1.7, -0.3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_from_estimator():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (120, 2))
    y = np.tanh(X[:, 0]) + 0.1 * rng.standard_normal(120)
    est = CosineMoERegressor(n_experts=2, expert="tanh", router="cosine",
                             max_iter=30, random_state=0).fit(X, y)
    G = MixingMeasure.from_estimator(est)
    np.testing.assert_array_equal(G.gate_coef, est.gate_coef_)
    np.testing.assert_array_equal(G.expert_intercept, est.expert_intercept_)
    assert G.output_scale == est.output_scale_
    assert (G.router, G.expert, G.n_experts, G.n_features) == ("cosine", "tanh", 2, 2)
    assert not np.shares_memory(G.gate_coef, est.gate_coef_)


def test_from_estimator_errors():
    with pytest.raises(ValueError, match="estimator must be a fitted CosineMoERegressor"):
        MixingMeasure.from_estimator("not an estimator")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MixingMeasure.from_estimator(CosineMoERegressor())
    X = np.random.default_rng(0).standard_normal((50, 2))
    two_outputs = CosineMoERegressor(n_experts=2, max_iter=5, random_state=0).fit(
        X, np.c_[X[:, 0], X[:, 1]])
    with pytest.raises(ValueError, match="fitted to 2 outputs"):
        MixingMeasure.from_estimator(two_outputs)


@pytest.mark.parametrize("kwargs, match", [
    ({"router": "softmax"}, "router must be one of"),
    ({"expert": "relu"}, "expert must be one of"),
    ({"tau1": 0.0}, "tau1 must be > 0"),
    ({"output_scale": np.nan}, "output_scale must be finite"),
])
def test_option_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixingMeasure(np.eye(2), np.zeros(2), np.eye(2), np.zeros(2), **kwargs)


@pytest.mark.parametrize("arrays, match", [
    ((np.zeros(2), np.zeros(2), np.eye(2), np.zeros(2)), "gate_coef must be a 2-d"),
    ((np.eye(2), np.zeros(3), np.eye(2), np.zeros(2)), r"gate_intercept must have shape \(2,\)"),
    ((np.eye(2), np.zeros(2), np.ones((2, 3)), np.zeros(2)), r"expert_coef must have shape \(2, 2\)"),
    ((np.eye(2), np.zeros(2), np.eye(2), [0.0, np.inf]), "expert_intercept must be finite"),
    ((np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), np.zeros(0)), "both >= 1"),
])
def test_shape_errors(arrays, match):
    with pytest.raises(ValueError, match=match):
        MixingMeasure(*arrays)


def test_cosine_router_accepts_tau1_zero_and_zero_gate_rows():
    G = MixingMeasure(np.zeros((2, 2)), np.zeros(2), np.eye(2), np.zeros(2),
                      router="cosine", tau1=0.0)
    np.testing.assert_array_equal(G.canonical().gate_atoms, 0.0)
    assert "cosine" in repr(G)


class _Fitted(BaseEstimator):
    """Not a CosineMoERegressor: an estimator with the same fitted attributes."""

    def __init__(self, rng):
        self.gate_coef_, self.gate_intercept_, self.expert_coef_, \
            self.expert_intercept_ = _arrays(rng)
        self.output_scale_, self.output_intercept_ = -2.0, 0.5
        self.router, self.tau1, self.expert = "linear", 1.0, "tanh"

    def fit(self, X, y):
        return self


def test_from_estimator_reads_attributes_by_duck_typing():
    est = _Fitted(np.random.default_rng(4))
    G = MixingMeasure.from_estimator(est)
    np.testing.assert_array_equal(G.expert_coef, est.expert_coef_)
    assert (G.router, G.expert, G.output_scale) == ("linear", "tanh", -2.0)
    # negative output scale of a tanh expert: the canonical form flips the experts
    np.testing.assert_array_equal(G.canonical().expert_coef, -est.expert_coef_)
    np.testing.assert_array_equal(G.raw().expert_intercept, -est.expert_intercept_)
    del est.output_scale_
    with pytest.raises(ValueError, match=r"no attribute\(s\) \['output_scale_'\]"):
        MixingMeasure.from_estimator(est)


def test_raw_form():
    rng = np.random.default_rng(5)
    b1, b0, a, b = _arrays(rng)
    pi = np.exp(b0) / np.exp(b0).sum()
    for router in ROUTERS:
        raw = MixingMeasure(b1, b0, a, b, router=router).raw()
        np.testing.assert_allclose(raw.weights, pi, rtol=1e-14)
        want = b1 - pi @ b1 if router == "linear" else b1
        np.testing.assert_allclose(raw.gate_atoms, want, rtol=1e-14, atol=1e-15)
        np.testing.assert_array_equal(raw.expert_coef, a)
    # perturbed router: the gate atoms take the reference's weighted mean
    tau1 = 2.0
    G = MixingMeasure(b1, b0, a, b, tau1=tau1)
    ref = MixingMeasure(2 * b1[::-1], b0, a, b, tau1=tau1)
    raw = G.raw(reference=ref)
    u = raw.gate_atoms / (np.linalg.norm(raw.gate_atoms, axis=1, keepdims=True) + tau1)
    u_ref = 2 * b1[::-1] / (np.linalg.norm(2 * b1[::-1], axis=1, keepdims=True) + tau1)
    np.testing.assert_allclose(pi @ u, pi @ u_ref, rtol=1e-12)
    u_self = b1 / (np.linalg.norm(b1, axis=1, keepdims=True) + tau1)
    np.testing.assert_allclose(u - pi @ u, u_self - pi @ u_self, atol=1e-14)
    # a shift that would leave the unit ball is not made
    far = MixingMeasure(100 * b1, b0, a, b, tau1=0.01)
    np.testing.assert_array_equal(far.raw(reference=MixingMeasure(-100 * b1, b0, a, b,
                                                                  tau1=0.01)).gate_atoms,
                                  100 * b1)


@pytest.mark.parametrize("module", ["mixing", "metrics", "datasets"])
def test_no_estimator_import(module):
    # layering: these modules sit below the estimator and read it by attributes
    import ast
    import importlib

    source = importlib.import_module(f"sklearn_cosmoe.{module}").__file__
    tree = ast.parse(open(source).read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "_estimator" not in imported and "sklearn_cosmoe._estimator" not in imported
