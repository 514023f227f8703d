"""Fit, predict and grid-search on Dask: a real LocalCluster with worker processes."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
import dask  # noqa: E402
import joblib  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

from sklearn_cosmoe import CosineMoERegressor  # noqa: E402
from sklearn_cosmoe._dask import DaskObjective  # noqa: E402
from sklearn_cosmoe._model import MoESpec  # noqa: E402
from sklearn_cosmoe._objective import ArrayObjective  # noqa: E402
from sklearn_cosmoe._solver import initial_params  # noqa: E402
from sklearn_cosmoe.datasets import make_cosine_moe  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:CosineMoERegressor did not converge:sklearn.exceptions.ConvergenceWarning")

CHUNK = 250
PARAMS = ("gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_",
          "output_scale_", "output_intercept_")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's port and memory notices
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def in_this_process():
    """Dask's synchronous scheduler, even while the cluster's client is open."""
    with dask.config.set(scheduler="sync"):
        yield


def make_data(**kwargs):
    X, y, _ = make_cosine_moe(1000, 3, 2, inputs="normal", noise=0.1, random_state=0,
                              **kwargs)
    w = np.random.default_rng(1).integers(1, 4, len(y)).astype(float)
    return X, y, w


@pytest.fixture(scope="module")
def data():
    return make_data(temperature=0.3, expert="tanh")


def chunked(*arrays):
    return [da.from_array(a, chunks=(CHUNK,) + a.shape[1:]) for a in arrays]


def fitted(X, y, w, **kwargs):
    params = {"n_experts": 2, "temperature": 0.3, "random_state": 0, "tol": 1e-10,
              **kwargs}
    return CosineMoERegressor(**params).fit(X, y, sample_weight=w)


@pytest.mark.parametrize("kwargs", [{"expert": "tanh", "temperature": 0.3},
                                    {"expert": "linear", "temperature": 0.3},
                                    {"router": "linear", "expert": "linear",
                                     "temperature": 1.0}])
def test_fit_by_chunks_matches_the_fit_in_memory(data, kwargs):
    # fits certified at a stationary point (Gauss-Newton's test, in this
    # process: see the next test for the cluster); the chunks' sums are added
    # in another order than the kernel's blocks, so the objectives agree to
    # rounding, not to the bit
    X, y, w = make_data(**kwargs)
    kwargs = {**kwargs, "solver": "gauss-newton"}
    local = fitted(X, y, w, **kwargs)
    with dask.config.set(scheduler="sync"):
        chunks = fitted(*chunked(X, y, w), **kwargs)
    assert local.converged_ and chunks.converged_
    assert_allclose(chunks.loss_, local.loss_, rtol=1e-9)
    assert_allclose(chunks.predict(X), local.predict(X), atol=1e-5 * np.std(y))
    assert chunks.n_features_in_ == 3


def test_fits_on_the_cluster_are_bit_identical_to_one_thread(client, data):
    # the same chunks on two worker processes and in this process alone give
    # the same bits; a short fit keeps the cluster's round trips few
    X, y, w = data
    kwargs = {"router": "linear", "max_iter": 10}
    remote = fitted(*chunked(X, y, w), **kwargs)
    with dask.config.set(scheduler="sync"):
        alone = fitted(*chunked(X, y, w), **kwargs)
    for name in PARAMS:
        assert_array_equal(getattr(remote, name), getattr(alone, name))
    local = fitted(X, y, w, **kwargs)
    assert_allclose(remote.loss_, local.loss_, rtol=1e-8)


def test_objective_methods_match_the_in_memory_objective(client, data):
    X, y, w = data
    spec = MoESpec(expert="tanh", temperature=0.3)
    rows = ArrayObjective(X, y, w)
    chunks = DaskObjective(*chunked(X, y, w))
    assert chunks.n_chunks == 4
    params = initial_params(rows, spec, 3, np.random.default_rng(0))
    theta = params.to_vector(spec)
    for a, b in zip(chunks.loss_and_gradient(theta, params.shape, spec),
                    rows.loss_and_gradient(theta, params.shape, spec)):
        assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    pairs = [(chunks.total_weight, rows.total_weight),
             (chunks.mean_square_norm(), rows.mean_square_norm()),
             (chunks.preactivation_mean_squares(params, spec),
              rows.preactivation_mean_squares(params, spec)),
             (chunks.output_moments(params, spec), rows.output_moments(params, spec)),
             (chunks.gated_squared_residuals(params, spec),
              rows.gated_squared_residuals(params, spec)),
             (chunks.direction_sums(params.gate_coef), rows.direction_sums(params.gate_coef)),
             (chunks.gated(params, spec, 1).direction_sums(params.gate_coef),
              rows.gated(params, spec, 1).direction_sums(params.gate_coef))]
    pairs += list(zip(chunks.expert_normal_equations(params, spec),
                      rows.expert_normal_equations(params, spec)))
    for a, b in pairs:
        assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_chunks_are_computed_once_per_fit(data, tmp_path):
    # the fit makes hundreds of passes; the chunks of X are made once
    X, y, w = data
    calls = []

    def made(block):
        calls.append(len(block))
        return block

    Xd = chunked(X)[0].map_blocks(made, dtype=np.float64, meta=np.empty((0, 0)))
    with dask.config.set(scheduler="sync"):
        reg = fitted(Xd, *chunked(y, w), expert="tanh", max_iter=30)
    assert reg.n_iter_ > 10
    assert sorted(calls) == sorted([CHUNK] * 4)


def test_dataframes_fit_as_arrays_and_keep_feature_names(data, in_this_process):
    X, y, w = data
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    Xdf = dd.from_pandas(frame, npartitions=4)
    ydf = dd.from_pandas(pd.Series(y), npartitions=4)
    reg = fitted(Xdf, ydf, None, router="linear", max_iter=10)
    assert_array_equal(reg.feature_names_in_, ["a", "b", "c"])
    Xa = Xdf.to_dask_array(lengths=True)
    same = fitted(Xa, ydf.to_dask_array(lengths=True), None, router="linear", max_iter=10)
    assert_array_equal(reg.expert_coef_, same.expert_coef_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about missing feature names
        predicted = reg.predict(Xdf).compute()
    assert_allclose(predicted, reg.predict(frame))


def test_predictions_are_lazy_and_chunk_by_chunk(client, data):
    X, y, w = data
    reg = fitted(X, y, w, n_experts=3, expert="tanh", max_iter=50)
    Xd, yd, wd = chunked(X, y, w)
    for method in ("predict", "predict_gates", "predict_experts", "apply"):
        lazy = getattr(reg, method)(Xd)
        assert dask.is_dask_collection(lazy)
        assert lazy.chunks[0] == Xd.chunks[0]
        assert_array_equal(lazy.compute(), getattr(reg, method)(X))
    assert reg.predict_gates(Xd).shape == (1000, 3)
    assert_allclose(reg.score(Xd, yd), reg.score(X, y), rtol=1e-12)
    assert_allclose(reg.score(Xd, yd, wd), reg.score(X, y, w), rtol=1e-12)
    with pytest.raises(ValueError, match="X has 2 features"):
        reg.predict(Xd[:, :2])


def test_predictions_of_a_multi_output_fit_keep_their_shapes(data, in_this_process):
    X, y, w = data
    Y = np.c_[y, -2.0 * y + X[:, 0]]
    reg = fitted(X, Y, w, max_iter=50)
    Xd = chunked(X)[0]
    for method, shape in (("predict", (1000, 2)), ("predict_experts", (1000, 2, 2)),
                          ("predict_gates", (1000, 2)), ("apply", (1000,))):
        lazy = getattr(reg, method)(Xd)
        assert lazy.shape == shape and lazy.dtype == getattr(reg, method)(X[:5]).dtype
        assert_array_equal(lazy.compute(), getattr(reg, method)(X))


@pytest.mark.parametrize("make_inputs,match", [
    (lambda X, y: (X[:, 0], y), "X must be a 2-d Dask array"),
    (lambda X, y: (X, y.rechunk(300)), r"y's chunks of rows .* differ from X's"),
    (lambda X, y: (X[X[:, 0] > 0], y[X[:, 0] > 0]), "X has unknown chunk sizes"),
    (lambda X, y: (X.astype(str), y), "X must be numeric"),
    (lambda X, y: (X, y[:, None]), "y must be a 1-d Dask array"),
])
def test_bad_dask_inputs_get_clear_errors(data, make_inputs, match):
    Xd, yd = chunked(*data[:2])
    with pytest.raises(ValueError, match=match):
        CosineMoERegressor().fit(*make_inputs(Xd, yd))


def test_a_target_too_large_for_its_predictions_is_refused_as_in_memory(data):
    X, y, w = data
    y = y.copy()
    y[700] = 1e307
    message = "y's largest absolute value is 1e[+]307"
    with pytest.raises(ValueError, match=message):
        CosineMoERegressor().fit(X, y)
    with dask.config.set(scheduler="sync"):
        with pytest.raises(ValueError, match=message):
            CosineMoERegressor().fit(*chunked(X, y, w))


def test_numpy_inputs_are_chunked_as_the_dask_ones(data, in_this_process):
    X, y, w = data
    Xd, yd, wd = chunked(X, y, w)
    reg = fitted(Xd, yd, wd, router="linear", max_iter=5)
    for inputs in ((X, yd, w), (X, y, wd), (Xd, y, w)):
        same = fitted(*inputs, router="linear", max_iter=5)
        assert_array_equal(same.expert_coef_, reg.expert_coef_)


@pytest.mark.parametrize("name", ["X", "y", "sample_weight"])
def test_non_finite_values_are_found_chunk_by_chunk(data, name):
    inputs = dict(zip(("X", "y", "sample_weight"), (a.copy() for a in data)))
    inputs[name][700] = np.nan
    X, y, w = chunked(inputs["X"], inputs["y"], inputs["sample_weight"])
    reg = CosineMoERegressor()
    with dask.config.set(scheduler="sync"):
        with pytest.raises(ValueError, match=f"Input {name} contains NaN or infinity "
                                             f"\\(in a Dask chunk of {CHUNK} rows\\)"):
            reg.fit(X, y, sample_weight=w)
    assert not hasattr(reg, "n_features_in_")


def test_workers_run_the_kernels_on_one_thread(client):
    from sklearn_cosmoe import _parallel

    threads = client.run(lambda: _parallel.n_threads(10**6, 64))
    assert sorted(threads.values()) == [1, 1]


def test_grid_search_on_the_cluster_chooses_as_the_local_search(client):
    X, y, _ = make_cosine_moe(300, 2, 2, temperature=0.3, inputs="normal", noise=0.1,
                              random_state=2)
    grid = {"temperature": [0.3, 1.0], "n_experts": [1, 2], "tau1": [0.5, 1.0],
            "tau2": [1.0]}
    search = GridSearchCV(CosineMoERegressor(random_state=0, max_iter=100), grid,
                          cv=KFold(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = search.fit(X, y)
        best, scores = local.best_params_, local.cv_results_["mean_test_score"]
        with joblib.parallel_backend("dask"):
            remote = search.fit(X, y)
    assert remote.best_params_ == best
    assert_allclose(remote.cv_results_["mean_test_score"], scores, rtol=1e-12)


def test_the_package_imports_nothing_of_dask():
    code = ("import sys, numpy as np\n"
            "from sklearn_cosmoe import CosineMoERegressor\n"
            "X = np.random.default_rng(0).standard_normal((50, 2))\n"
            "CosineMoERegressor(n_experts=2, max_iter=5).fit(X, X[:, 0]).predict(X)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
