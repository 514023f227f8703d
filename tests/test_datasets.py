import numpy as np
import pytest

from sklearn_cosmoe._model import MoESpec, predict
from sklearn_cosmoe.datasets import make_cosine_moe
from sklearn_cosmoe.mixing import MixingMeasure

from .reference import predict as reference_predict


def _truth(router="perturbed_cosine", expert="tanh"):
    return MixingMeasure([[2.0, 1.0], [-1.0, -2.0]], [0.0, 0.3],
                         [[1.5, -1.0], [-0.5, 2.0]], [0.5, -0.3],
                         router=router, expert=expert)


def test_defaults_shapes_and_input_law():
    X, y, G = make_cosine_moe(random_state=0)
    assert X.shape == (1000, 2) and y.shape == (1000,)
    assert (G.n_experts, G.n_features) == (3, 2)
    assert (G.router, G.expert, G.tau1) == ("perturbed_cosine", "linear", 1.0)
    assert X.min() >= -1 and X.max() <= 1
    # uniform on [-1, 1]: mean 0, variance 1/3
    np.testing.assert_allclose(X.mean(0), 0, atol=0.06)
    np.testing.assert_allclose(X.var(0), 1 / 3, atol=0.03)
    assert X.dtype == y.dtype == np.float64 and X.flags.c_contiguous


def test_normal_inputs():
    X, _, _ = make_cosine_moe(20000, 3, 2, inputs="normal", random_state=0)
    np.testing.assert_allclose(X.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(X.std(0), 1, atol=0.03)


def test_reproducible_with_random_state():
    a = make_cosine_moe(300, 3, 2, expert="tanh", random_state=7)
    b = make_cosine_moe(300, 3, 2, expert="tanh", random_state=np.random.RandomState(7))
    c = make_cosine_moe(300, 3, 2, expert="tanh", random_state=8)
    for x, y in zip(a[:2], b[:2]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[2].gate_coef, b[2].gate_coef)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[2].gate_coef, c[2].gate_coef)


@pytest.mark.parametrize("router", ["perturbed_cosine", "cosine", "linear"])
@pytest.mark.parametrize("expert", ["tanh", "linear"])
def test_y_is_regression_function_plus_noise(router, expert):
    G = MixingMeasure(*(getattr(_truth(), name) for name in (
        "gate_coef", "gate_intercept", "expert_coef", "expert_intercept")),
        router=router, expert=expert, tau1=0.5)
    kwargs = dict(router=router, expert=expert, tau1=0.5, tau2=0.7, temperature=0.4,
                  params=G)
    X, y0, _ = make_cosine_moe(20000, noise=0.0, random_state=1, **kwargs)
    X1, y, true = make_cosine_moe(20000, noise=0.25, random_state=1, **kwargs)
    np.testing.assert_array_equal(X, X1)
    # noise=0 gives the regression function itself, as an independent formula computes it
    f = reference_predict(X, G.to_params(), router, expert, tau1=0.5, tau2=0.7,
                          temperature=0.4)
    np.testing.assert_allclose(y0, f, rtol=1e-12, atol=1e-12)
    residual = y - f
    assert abs(residual.mean()) < 4 * 0.25 / np.sqrt(20000)
    assert residual.std() == pytest.approx(0.25, rel=0.03)


def test_sparse_gates():
    G = _truth(expert="linear")
    X, y, _ = make_cosine_moe(500, params=G, expert="linear", top_k=1, noise=0.0,
                              random_state=0)
    spec = MoESpec(router="perturbed_cosine", expert="linear", top_k=1)
    np.testing.assert_array_equal(y, predict(X, G.to_params(), spec))
    dense = predict(X, G.to_params(), MoESpec(router="perturbed_cosine"))
    assert not np.allclose(y, dense)


def test_explicit_params_as_dict_and_measure():
    arrays = {"gate_coef": np.array([[1.0, 0.0]]), "gate_intercept": np.array([0.0]),
              "expert_coef": np.array([[2.0, -1.0]]), "expert_intercept": np.array([0.5]),
              "output_scale": 2.0}
    before = {key: np.copy(value) for key, value in arrays.items()}
    X, y, G = make_cosine_moe(50, params=arrays, noise=0.0, random_state=0)
    for key, value in before.items():
        np.testing.assert_array_equal(arrays[key], value)  # not modified
    # one expert: the gate is 1, f(x) = s (a . x + b)
    np.testing.assert_allclose(y, 2.0 * (X @ [2.0, -1.0] + 0.5), rtol=1e-12)
    assert G.output_scale == 2.0 and G.n_experts == 1
    G.gate_coef[:] = 9.0  # the returned measure is a copy
    truth = _truth()
    _, _, G2 = make_cosine_moe(10, params=truth, expert="tanh", random_state=0)
    assert G2 is not truth
    np.testing.assert_array_equal(G2.gate_coef, truth.gate_coef)


def test_same_seed_same_inputs_and_noise_across_routers():
    ys = {}
    for router in ("cosine", "perturbed_cosine"):
        X, y, G = make_cosine_moe(100, params=_truth(router), router=router,
                                  expert="tanh", random_state=3)
        f = predict(X, G.to_params(), MoESpec(router=router, expert="tanh"))
        ys[router] = (X, y - f)
    np.testing.assert_array_equal(ys["cosine"][0], ys["perturbed_cosine"][0])
    np.testing.assert_allclose(ys["cosine"][1], ys["perturbed_cosine"][1], atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_samples": 0}, "n_samples must be an integer >= 1"),
    ({"n_features": 0}, "n_features must be an integer >= 1"),
    ({"n_experts": 1.5}, "n_experts must be an integer >= 1"),
    ({"noise": -1.0}, "noise must be a finite number >= 0"),
    ({"router": "softmax"}, "router must be one of"),
    ({"expert": "relu"}, "expert must be one of"),
    ({"inputs": "sphere"}, "inputs must be one of"),
    ({"tau1": 0.0}, "tau1 must be > 0"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"params": [1, 2]}, "params must be None, a MixingMeasure or a dict"),
    ({"params": {"gate_coef": np.eye(2)}}, "missing"),
    ({"params": _truth(expert="tanh")}, "params must match the router, tau1 and expert"),
    ({"params": _truth(), "expert": "tanh", "n_features": 3}, "n_features=3 does not match"),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_cosine_moe(**kwargs)
