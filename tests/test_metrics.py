import itertools

import numpy as np
import pytest

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._model import MoESpec, predict
from sklearn_cosmoe.metrics import voronoi_loss
from sklearn_cosmoe.mixing import MixingMeasure

ROUTERS = ["perturbed_cosine", "cosine", "linear"]
TAU1 = 0.8


# --- an independent brute-force reference of the user guide (identifiability.rst) ---

def _reference_canonical(b1, b0, a, b, router, tau1):
    k = len(b0)
    w = [np.exp(v) for v in b0]
    pi = np.array([wi / sum(w) for wi in w])
    u = []
    for i in range(k):
        norm = np.sqrt(sum(v * v for v in b1[i]))
        if router == "linear":
            u.append(np.array(b1[i], dtype=float))
        elif router == "cosine":
            u.append(np.array(b1[i]) / norm)
        else:
            u.append(np.array(b1[i]) / (norm + tau1))
    mean = sum(pi[i] * u[i] for i in range(k))
    atoms = [np.concatenate([u[i] - mean, a[i], [b[i]]]) for i in range(k)]
    return pi, atoms


def _reference_loss(fitted, true, kind, router, tau1):
    pi, atoms = _reference_canonical(*fitted, router, tau1)
    pi_true, atoms_true = _reference_canonical(*true, router, tau1)
    dist = lambda x, y: np.sqrt(sum((p - q) ** 2 for p, q in zip(x, y)))  # noqa: E731
    cells = {j: [] for j in range(len(atoms_true))}
    for i, w in enumerate(atoms):
        best = min(range(len(atoms_true)), key=lambda j: (dist(w, atoms_true[j]), j))
        cells[best].append(i)
    total = 0.0
    for j, members in cells.items():
        total += abs(sum(pi[i] for i in members) - pi_true[j])
        for i in members:
            d = dist(atoms[i], atoms_true[j])
            total += pi[i] * (d ** 2 if kind == "D2" and len(members) > 1 else d)
    return total


def _random(rng, k, d, scale=1.0):
    return (scale * rng.standard_normal((k, d)), rng.standard_normal(k),
            rng.standard_normal((k, d)), rng.standard_normal(k))


def _measure(arrays, router, expert="linear", tau1=TAU1):
    return MixingMeasure(*arrays, router=router, tau1=tau1, expert=expert)


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("kind", ["D1", "D2"])
def test_agrees_with_brute_force_on_random_cases(router, kind):
    rng = np.random.default_rng(0)
    for _ in range(25):
        d = int(rng.integers(1, 4))
        k_true = int(rng.integers(1, 4))
        k = k_true + int(rng.integers(0, 3))
        true = _random(rng, k_true, d)
        # fitted atoms: noisy copies of true atoms (so cells hold 0, 1 or more)
        pick = rng.integers(0, k_true, k)
        fitted = tuple(t[pick] + 0.3 * rng.standard_normal(t[pick].shape) for t in true)
        got = voronoi_loss(_measure(fitted, router), _measure(true, router), kind)
        want = _reference_loss(fitted, true, kind, router, TAU1)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-14)


def _transformations(router, arrays, rng):
    """Parameter sets that give the same model (user guide, identifiability, section 1)."""
    b1, b0, a, b = (x.copy() for x in arrays)
    k = len(b0)
    perm = rng.permutation(k)
    out = {
        "permutation": (b1[perm], b0[perm], a[perm], b[perm]),
        "bias shift": (b1, b0 + 3.7, a, b),
    }
    if router == "linear":
        out["gate shift"] = (b1 + rng.standard_normal(b1.shape[1]), b0, a, b)
    elif router == "cosine":
        out["rescaling"] = (b1 * rng.uniform(0.1, 10, (k, 1)), b0, a, b)
        # k = 2: t = -(u1 + u2) maps u1 -> -u2 and u2 -> -u1, both on the sphere
        u = b1 / np.linalg.norm(b1, axis=1, keepdims=True)
        out["gate shift on the sphere"] = (u - u.sum(0), b0, a, b)
    else:
        norms = np.linalg.norm(b1, axis=1, keepdims=True)
        u = b1 / (norms + TAU1)
        t = 0.05 * rng.standard_normal(b1.shape[1])
        v = u + t
        assert np.all(np.linalg.norm(v, axis=1) < 1)
        # invert u = beta / (|beta| + tau1): beta = v tau1 / (1 - |v|)
        beta = v * TAU1 / (1 - np.linalg.norm(v, axis=1, keepdims=True))
        out["gate shift in the ball"] = (beta, b0, a, b)
    return out


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("kind", ["D1", "D2"])
def test_zero_for_truth_and_every_invariance(router, kind):
    rng = np.random.default_rng(1)
    truth = _random(rng, 2, 3)
    if router == "perturbed_cosine":
        truth = (truth[0] * 0.5,) + truth[1:]  # gate atoms well inside the ball
    spec = MoESpec(router=router, expert="tanh", tau1=TAU1)
    X = rng.uniform(-1, 1, (50, 3))
    G_true = _measure(truth, router, "tanh")
    f_true = predict(X, G_true.to_params(), spec)
    assert voronoi_loss(G_true, G_true, kind) == 0.0
    for name, arrays in _transformations(router, truth, rng).items():
        G = _measure(arrays, router, "tanh")
        # it really is the same model ...
        np.testing.assert_allclose(predict(X, G.to_params(), spec), f_true,
                                   rtol=1e-12, atol=1e-12, err_msg=name)
        # ... and the loss sees no difference
        assert voronoi_loss(G, G_true, kind) == pytest.approx(0.0, abs=1e-12), name
        # while the raw parameters did change (except a permutation may fix them)
        if name != "permutation":
            assert not all(np.allclose(x, y) for x, y in zip(arrays, truth)), name


def test_positive_when_the_model_changes():
    rng = np.random.default_rng(2)
    truth = _random(rng, 3, 2)
    for i, j in itertools.product(range(4), range(3)):
        arrays = [x.copy() for x in truth]
        arrays[i][j] += 0.1
        for router in ROUTERS:
            assert voronoi_loss(_measure(arrays, router), _measure(truth, router)) > 0


def _cell_case(far):
    """Two true atoms; three fitted atoms, two of them in the first cell.

    Linear router with gate_coef = 0, so the gate atoms are 0 and the atoms are
    the expert parameters, which we place by hand.  ``far`` puts the singleton
    fitted atom at distance 2 (> 1) from its true atom.
    """
    true = (np.zeros((2, 1)), np.log([0.4, 0.6]), np.array([[0.0], [10.0]]),
            np.zeros(2))
    fitted = (np.zeros((3, 1)), np.log([0.25, 0.2, 0.55]),
              np.array([[0.5], [-0.3], [10.0 + (2.0 if far else 0.4)]]), np.zeros(3))
    return [_measure(x, "linear") for x in (fitted, true)]


@pytest.mark.parametrize("far", [False, True])
def test_d2_squares_exactly_the_cells_with_more_than_one_atom(far):
    fitted, true = _cell_case(far)
    singleton = 2.0 if far else 0.4
    mass = abs(0.25 + 0.2 - 0.4) + abs(0.55 - 0.6)
    d1 = mass + 0.25 * 0.5 + 0.2 * 0.3 + 0.55 * singleton
    d2 = mass + 0.25 * 0.5 ** 2 + 0.2 * 0.3 ** 2 + 0.55 * singleton
    assert voronoi_loss(fitted, true, "D1") == pytest.approx(d1, rel=1e-12)
    assert voronoi_loss(fitted, true, "D2") == pytest.approx(d2, rel=1e-12)


def test_d1_equals_d2_when_every_cell_has_one_atom():
    rng = np.random.default_rng(3)
    truth = _random(rng, 3, 2)
    fitted = tuple(x + 0.05 * rng.standard_normal(x.shape) for x in truth)
    G, G_true = _measure(fitted, "cosine"), _measure(truth, "cosine")
    assert voronoi_loss(G, G_true, "D1") == voronoi_loss(G, G_true, "D2") > 0


def test_empty_cell_costs_its_weight():
    truth = (np.zeros((2, 1)), np.log([0.3, 0.7]), np.array([[0.0], [5.0]]), np.zeros(2))
    fitted = (np.zeros((1, 1)), np.zeros(1), np.array([[5.0]]), np.zeros(1))
    loss = voronoi_loss(_measure(fitted, "linear"), _measure(truth, "linear"))
    assert loss == pytest.approx(0.3 + 0.3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_accepts_fitted_estimators():
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (150, 2))
    y = X[:, 0] + 0.1 * rng.standard_normal(150)
    est = CosineMoERegressor(n_experts=2, max_iter=20, random_state=0).fit(X, y)
    G = MixingMeasure.from_estimator(est)
    assert voronoi_loss(est, est) == 0.0
    truth = _measure(_random(rng, 2, 2), "perturbed_cosine", tau1=1.0)
    assert voronoi_loss(est, truth, "D2") == voronoi_loss(G, truth, "D2")


def test_errors():
    rng = np.random.default_rng(5)
    arrays = _random(rng, 2, 2)
    G = _measure(arrays, "cosine")
    with pytest.raises(ValueError, match="kind must be one of"):
        voronoi_loss(G, G, kind="D3")
    with pytest.raises(ValueError, match="fitted must be a fitted CosineMoERegressor"):
        voronoi_loss(arrays, G)
    with pytest.raises(ValueError, match="true must be a fitted CosineMoERegressor"):
        voronoi_loss(G, {"gate_coef": arrays[0]})
    with pytest.raises(ValueError, match="same router"):
        voronoi_loss(G, _measure(arrays, "linear"))
    with pytest.raises(ValueError, match="same tau1"):
        voronoi_loss(_measure(arrays, "perturbed_cosine", tau1=1.0),
                     _measure(arrays, "perturbed_cosine", tau1=2.0))
    with pytest.raises(ValueError, match="same expert"):
        voronoi_loss(G, _measure(arrays, "cosine", expert="tanh"))
    with pytest.raises(ValueError, match="same number of features"):
        voronoi_loss(G, _measure(_random(rng, 2, 3), "cosine"))
    # tau1 does not matter to the other routers
    assert voronoi_loss(_measure(arrays, "cosine", tau1=1.0),
                        _measure(arrays, "cosine", tau1=3.0)) == 0.0


EXPERTS = ["linear", "tanh", "sigmoid", "gelu"]


def _with_output(arrays, router, expert, scale, intercept):
    return MixingMeasure(*arrays, router=router, tau1=TAU1, expert=expert,
                         output_scale=scale, output_intercept=intercept)


@pytest.mark.parametrize("expert", EXPERTS)
@pytest.mark.parametrize("router", ROUTERS)
def test_zero_for_every_symmetric_copy_of_every_expert(router, expert):
    rng = np.random.default_rng(6)
    truth = _random(rng, 2, 2)  # the shift on the sphere is written for k = 2
    if router == "perturbed_cosine":
        truth = (truth[0] * 0.3,) + truth[1:]
    s, c = (1.0, 0.0) if expert == "linear" else (1.3, -0.4)
    G_true = _with_output(truth, router, expert, s, c)
    spec = MoESpec(router=router, expert=expert, tau1=TAU1, temperature=0.5)
    X = rng.uniform(-1, 1, (60, 2))
    f_true = predict(X, G_true.to_params(), spec)
    copies = {name: _with_output(arrays, router, expert, s, c)
              for name, arrays in _transformations(router, truth, rng).items()}
    b1, b0, a, b = truth
    if expert in ("linear", "tanh"):  # h odd (a linear expert's s is 1 when fitted)
        copies["sign"] = _with_output((b1, b0, -a, -b), router, expert, -s, c)
    elif expert == "sigmoid":  # h(-z) = 1 - h(z)
        copies["sign"] = _with_output((b1, b0, -a, -b), router, expert, -s, c + s)
    for name, G in copies.items():
        np.testing.assert_allclose(predict(X, G.to_params(), spec), f_true,
                                   rtol=1e-12, atol=1e-12, err_msg=name)
        for kind in ("D1", "D2"):
            assert voronoi_loss(G, G_true, kind) == pytest.approx(0.0, abs=1e-12), name
        if name in ("permutation", "bias shift", "sign", "gate shift",
                    "gate shift in the ball"):
            # the raw form removes these symmetries, not those of the cosine router
            assert voronoi_loss(G, G_true, form="raw") == pytest.approx(0.0, abs=1e-12), name


@pytest.mark.parametrize("expert, scale", [("gelu", -1.0), ("linear", 1.0)])
def test_sign_flip_is_no_symmetry_otherwise(expert, scale):
    # gelu is not odd; a linear expert with its fixed s = 1 cannot flip
    rng = np.random.default_rng(7)
    b1, b0, a, b = _random(rng, 2, 2)
    G = _with_output((b1, b0, a, b), "cosine", expert, 1.0, 0.0)
    flipped = _with_output((b1, b0, -a, -b), "cosine", expert, scale, 0.0)
    spec = MoESpec(router="cosine", expert=expert)
    X = rng.uniform(-1, 1, (40, 2))
    assert not np.allclose(predict(X, G.to_params(), spec),
                           predict(X, flipped.to_params(), spec))
    assert voronoi_loss(flipped, G) > 0.5


def test_raw_form_sees_the_length_of_cosine_gates():
    rng = np.random.default_rng(8)
    truth = _random(rng, 2, 2)
    longer = (truth[0] * np.array([[2.0], [1.0]]),) + truth[1:]
    G, G_true = _measure(longer, "cosine"), _measure(truth, "cosine")
    assert voronoi_loss(G, G_true) == pytest.approx(0.0, abs=1e-12)
    pi = np.exp(truth[1]) / np.exp(truth[1]).sum()
    # one atom moved by |beta1_0| in its gate coordinates, nothing else changed
    want = pi[0] * np.linalg.norm(truth[0][0])
    assert voronoi_loss(G, G_true, form="raw") == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="form must be one of"):
        voronoi_loss(G, G_true, form="paper")
