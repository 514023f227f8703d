"""The package beside the parallelism a user brings: threads, forks, BLAS, caches."""

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

from sklearn_cosmoe import CosineMoERegressor, _jit_loss, _jit_tiles, _parallel
from sklearn_cosmoe.datasets import make_cosine_moe

# above SERIAL_ROWS, so that the kernels run on the package's threads
N_THREADED = 2 * _parallel.SERIAL_ROWS


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_cosine_moe(N_THREADED, n_features=3, n_experts=2, random_state=0)
    return X, y


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _fit(X, y, seed=0):
    return CosineMoERegressor(n_experts=2, max_iter=15, tol=0, random_state=seed).fit(X, y)


def _predict_in_child(args):
    reg, X = args
    return reg.predict(X)


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
def test_fork_pool_after_a_fit(data):
    """Forked children run the kernels on threads of their own, and return."""
    X, y = data
    reg = _fit(X, y)
    expected = reg.predict(X)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_predict_in_child, [(reg, X), (reg, X[::-1])]).get(120)
    assert_array_equal(results[0], expected)
    assert_array_equal(results[1], expected[::-1])


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
def test_joblib_multiprocessing_backend_after_a_fit(data):
    """joblib's ``multiprocessing`` backend after a threaded fit, inputs memory-mapped."""
    X, y = data
    reg = _fit(X, y)
    expected = reg.predict(X)
    # max_nbytes: X reaches the children as a read-only memory map
    parallel = joblib.Parallel(n_jobs=2, backend="multiprocessing", max_nbytes="1K",
                               timeout=120)
    results = parallel(joblib.delayed(reg.predict)(rows) for rows in (X, X[::-1]))
    assert_array_equal(results[0], expected)
    assert_array_equal(results[1], expected[::-1])


def _blas_threads():
    return [(info["filepath"], info["num_threads"]) for info in threadpool_info()]


def test_threads_fit_and_predict_concurrently(data):
    """Four threads: two predict with a shared estimator, two fit their own."""
    X, y = data
    blas_before = _blas_threads()
    shared = _fit(X, y)
    expected_predict = shared.predict(X)
    expected_fit = _fit(X, y, seed=1).predict(X)

    def predict(_):
        return shared.predict(X)

    def fit(_):
        return _fit(X, y, seed=1).predict(X)

    with ThreadPoolExecutor(4) as executor:
        futures = [executor.submit(f, i) for i, f in enumerate([predict, fit] * 2)]
        results = [future.result(timeout=300) for future in futures]
    for result, expected in zip(results, [expected_predict, expected_fit] * 2):
        assert_array_equal(result, expected)
    assert _blas_threads() == blas_before


def test_overlapping_blas_limits_restore_the_first_setting():
    """Fits in two threads that start and end in any order restore BLAS's threads."""
    def blas():
        return [info["num_threads"] for info in threadpool_info()
                if info["user_api"] == "blas"]

    before = blas()
    first, second = _parallel.single_threaded_blas(), _parallel.single_threaded_blas()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert blas() == [1] * len(before)  # the second fit is still running
    second.__exit__(None, None, None)
    assert blas() == before


def test_no_thread_setting_is_left_changed(data):
    X, y = data
    before = _blas_threads()
    _fit(X, y).predict(X)
    assert _blas_threads() == before
    with threadpool_limits(limits=1, user_api="blas"):
        limited = _blas_threads()
        _fit(X, y).predict(X)
        assert _blas_threads() == limited
    assert _blas_threads() == before


def test_threads_follow_the_openmp_limit():
    """Like scikit-learn's OpenMP code: threadpoolctl's limit, serial below a size."""
    n = 10 * _parallel.SERIAL_ROWS
    assert _parallel.n_threads(_parallel.SERIAL_ROWS - 1, 64) == 1
    assert _parallel.n_threads(n, 1) == 1
    with threadpool_limits(limits=1, user_api="openmp"):
        assert _parallel.n_threads(n, 64) == 1
    with threadpool_limits(limits=2, user_api="openmp"):
        assert _parallel.n_threads(n, 64) == min(2, os.cpu_count())


def test_run_blocks_covers_each_block_once_and_raises_errors():
    seen = []

    def kernel(start, stop):
        seen.extend(range(start, stop))

    _parallel.run_blocks(kernel, 37, 3)
    assert sorted(seen) == list(range(37))

    def failing(start, stop):
        if start > 0:
            raise RuntimeError("block failed")

    with pytest.raises(RuntimeError, match="block failed"):
        _parallel.run_blocks(failing, 8, 2)


def test_read_only_fortran_and_float32_inputs_need_no_new_compilation(data):
    """One machine code per kernel, whatever the layout or writability of X."""
    X, y = data
    reg = _fit(X, y)
    expected = reg.predict(X)
    frozen = X.copy()
    frozen.setflags(write=False)
    assert_array_equal(reg.predict(frozen), expected)
    assert_array_equal(reg.predict(np.asfortranarray(X)), expected)
    reg32 = _fit(X.astype(np.float32), y)
    reg32.predict(frozen)
    _fit(frozen, y)
    for kernel in (_jit_tiles.row_norms, _jit_tiles.direction_cluster_sums,
                   _jit_tiles.gated_features, _jit_loss.forward_blocks,
                   _jit_loss.loss_finish):
        assert len(kernel.overloads) == 1, kernel


# -- the same bits: fresh or cached kernels, 1 or 2 threads, 1 or 2 BLAS threads
_CHILD = textwrap.dedent("""
    import hashlib, json, logging, sys
    import numpy as np
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from sklearn_cosmoe import CosineMoERegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300_000, 4))
    y = np.tanh(X @ [1.0, -2.0, 0.5, 1.0]) + 0.1 * rng.standard_normal(300_000)
    reg = CosineMoERegressor(n_experts=3, max_iter=10, random_state=0).fit(X, y)
    out = reg.predict(X[:20_000])
    print(json.dumps({"predict": hashlib.sha256(out.tobytes()).hexdigest(),
                      "coef": hashlib.sha256(reg.gate_coef_.tobytes()).hexdigest()}))
""")


def _child(cache_dir, **env):
    environ = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), **env)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, environ.get("PYTHONPATH")]))
    run = subprocess.run([sys.executable, "-c", _CHILD], env=environ, capture_output=True,
                         text=True, timeout=600, check=True)
    return json.loads(run.stdout.splitlines()[-1]), run.stderr


def test_same_bits_fresh_or_cached_and_with_any_thread_count(tmp_path):
    """n = 3e5 rows: fits in fresh processes give bit-identical predictions.

    The first process compiles the kernels into an empty cache (and says so
    once in the log), the others load them; thread counts of the package (its
    OpenMP convention) and of BLAS vary.
    """
    fresh, log = _child(tmp_path, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    assert log.count("compiling its numba kernels") == 1
    runs = [_child(tmp_path, OMP_NUM_THREADS=omp, OPENBLAS_NUM_THREADS=blas)
            for omp, blas in [("2", "2"), ("1", "2"), ("2", "1")]]
    for result, log in runs:
        assert "compiling" not in log
        assert result == fresh
