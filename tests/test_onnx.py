"""ONNX export (sklearn_cosmoe.onnx): ONNX Runtime predicts what the estimators predict.

Each test converts a fitted model and compares ONNX Runtime's output with the
same model's ``predict`` / ``predict_proba`` on the same input (float32 rows
are given to ``predict`` as float64 copies of the float32 values), so how far
the fits converged does not matter.  The rows include an all-zero row, rows of
norm 1e-8 and rows of norm 1e6.
"""

import copy
import math
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX export tests need the onnx extra")
pytest.importorskip("skl2onnx", reason="ONNX export tests need the onnx extra")

import onnxruntime as ort  # noqa: E402
import skl2onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_cosmoe import (CosineMoEClassifier, CosineMoERegressor,  # noqa: E402
                            CosineMoERegressorCV)
from sklearn_cosmoe import _onnx_graph  # noqa: E402
from sklearn_cosmoe.onnx import _fitted, to_onnx  # noqa: E402

ROUTERS = ["linear", "cosine", "perturbed_cosine"]
EXPERTS = ["linear", "tanh", "sigmoid", "gelu"]
# relative tolerance of each graph's float type
RTOL = {np.float32: 1e-5, np.float64: 1e-10}
N_TRAIN, N_FEATURES, N_EXPERTS = 60, 3, 3
SHORT_NORM, LONG_NORM = 1e-8, 1e6


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_TRAIN, N_FEATURES))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]
    return X, y


def _rows():
    """Ordinary rows, then a zero row, two short rows and two long ones."""
    rng = np.random.default_rng(1)
    ordinary = rng.standard_normal((6, N_FEATURES))
    unit = ordinary[:4] / np.linalg.norm(ordinary[:4], axis=1, keepdims=True)
    return np.vstack([ordinary, np.zeros((1, N_FEATURES)), SHORT_NORM * unit[:2],
                      LONG_NORM * unit[2:]])


def _run(model, X):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged: irrelevant here
        return estimator.fit(X, y)


_FITTED = {}


def _regressor(router, expert, top_k, multi):
    key = (router, expert, top_k, multi)
    if key not in _FITTED:
        X, y = _data()
        Y = np.column_stack([y, X[:, 0] - X[:, 2]]) if multi else y
        _FITTED[key] = _fit(CosineMoERegressor(n_experts=N_EXPERTS, router=router,
                                               expert=expert, top_k=top_k, max_iter=3,
                                               random_state=0), X, Y)
    return _FITTED[key]


def _classifier(router, top_k, n_classes):
    key = ("classifier", router, top_k, n_classes)
    if key not in _FITTED:
        X, y = _data()
        labels = np.digitize(y, np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1]))
        _FITTED[key] = _fit(CosineMoEClassifier(n_experts=N_EXPERTS, router=router,
                                                top_k=top_k, max_iter=3, random_state=0),
                            X, labels)
    return _FITTED[key]


def _assert_regression_close(got, want, reg, rtol):
    """``|got - want| <= rtol (|want| + |c| + |s|)``: relative to the size of the
    terms that ``c + s sum_i g_i h_i`` adds up (``s = 1, c = 0`` for linear experts)."""
    want = want.reshape(len(want), -1)
    assert got.shape == want.shape
    size = np.abs(reg.output_intercept_) + np.abs(reg.output_scale_)
    bound = rtol * (np.abs(want) + size)
    excess = np.abs(got - want) - bound
    assert np.all(excess <= 0), (
        f"rows {np.nonzero((excess > 0).any(axis=1))[0]}: got {got}, want {want}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("multi", [False, True], ids=["1-output", "2-outputs"])
@pytest.mark.parametrize("top_k", [None, 1])
@pytest.mark.parametrize("expert", EXPERTS)
@pytest.mark.parametrize("router", ROUTERS)
def test_regressor_matches_predict(router, expert, top_k, multi, dtype):
    reg = _regressor(router, expert, top_k, multi)
    X = _rows().astype(dtype)
    (got,) = _run(to_onnx(reg, X[:1]), X)
    assert got.dtype == dtype
    _assert_regression_close(got, reg.predict(X.astype(np.float64)), reg, RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("top_k", [None, 1])
@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_matches_predict_proba(n_classes, router, top_k, dtype):
    clf = _classifier(router, top_k, n_classes)
    X = _rows().astype(dtype)
    model = to_onnx(clf, X[:1], options={CosineMoEClassifier: {"zipmap": False}})
    labels, proba = _run(model, X)
    X64 = X.astype(np.float64)
    assert proba.dtype == dtype and proba.shape == (len(X), n_classes)
    # probabilities are on the scale of 1
    np.testing.assert_allclose(proba, clf.predict_proba(X64), rtol=RTOL[dtype],
                               atol=RTOL[dtype])
    np.testing.assert_array_equal(labels, clf.predict(X64))


def test_classifier_string_labels_and_zipmap():
    X, y = _data()
    names = np.array(["low", "mid", "high"])[np.digitize(y, [-0.5, 0.5])]
    clf = _fit(CosineMoEClassifier(n_experts=2, max_iter=3, random_state=0), X, names)
    rows = _rows().astype(np.float32)
    labels, proba = _run(to_onnx(clf, rows[:1]), rows)  # zipmap: a dict per row
    np.testing.assert_array_equal(labels, clf.predict(rows.astype(np.float64)))
    want = clf.predict_proba(rows.astype(np.float64))
    got = np.array([[row[c] for c in clf.classes_] for row in proba])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # nocl: labels are the indices of the classes
    model = to_onnx(clf, rows[:1], options={id(clf): {"zipmap": False, "nocl": True}})
    labels, _ = _run(model, rows)
    np.testing.assert_array_equal(labels, np.argmax(want, axis=1))


def test_top_k_ties_go_to_the_lower_index():
    """Two experts with the same router parameters: the kernels keep the first."""
    reg = _regressor("cosine", "linear", 1, False)
    tied = CosineMoERegressor(n_experts=N_EXPERTS, router="cosine", top_k=1)
    vars(tied).update({name: np.copy(value) for name, value in vars(reg).items()
                       if name.endswith("_") and isinstance(value, np.ndarray)})
    vars(tied).update(n_features_in_=reg.n_features_in_,
                      output_scale_=reg.output_scale_,
                      output_intercept_=reg.output_intercept_)
    vars(tied).update({name: value for name, value in vars(reg).items()
                       if name in ("router_", "expert_", "tau1_", "tau2_", "temperature_",
                                   "top_k_")})
    tied.gate_coef_[1] = tied.gate_coef_[0]
    tied.gate_intercept_[1] = tied.gate_intercept_[0]
    tied.gate_coef_[2] = 0.0  # a zero gate vector: a cosine term of 0
    tied.gate_intercept_[2] = -10.0
    tied.expert_intercept_[1] = tied.expert_intercept_[0] + 5.0  # the tie matters
    X = _rows()
    assert np.all(tied.predict_gates(X[:6])[:, 0] == 1.0)
    (got,) = _run(to_onnx(tied, X[:1]), X)
    _assert_regression_close(got, tied.predict(X), tied, RTOL[np.float64])


def test_pipeline_with_scaler_is_one_graph():
    X, y = _data()
    pipe = _fit(make_pipeline(StandardScaler(),
                              CosineMoERegressor(n_experts=2, expert="tanh", max_iter=3,
                                                 random_state=0)), X, 3 * y + 10)
    import sklearn_cosmoe.onnx  # noqa: F401  (registers the converters)

    rows = 5 * _rows() + 2
    model = skl2onnx.to_onnx(pipe, rows[:1])
    assert [i.name for i in model.graph.input] == ["X"]
    assert {"Tanh", "ReduceL2"} <= {node.op_type for node in model.graph.node}
    # the scaler is in the graph: rows far from the training data's mean and scale
    (got,) = _run(model, rows)
    _assert_regression_close(got, pipe.predict(rows), pipe[-1], RTOL[np.float64])


def test_cv_converts_as_its_final_estimator():
    X, y = _data()
    cv = _fit(CosineMoERegressorCV(max_experts=2, cv=2, temperatures=(1.0,),
                                   router=("cosine",), max_iter=3, random_state=0), X, y)
    rows = _rows()
    (got,) = _run(to_onnx(cv, rows[:1]), rows)
    _assert_regression_close(got, cv.predict(rows), cv.estimator_, RTOL[np.float64])


def test_erf_double_matches_math_erf():
    from skl2onnx.common._container import ModelComponentContainer
    from skl2onnx.common._topology import Scope

    opset = 18
    container = ModelComponentContainer(opset)
    builder = _onnx_graph.GraphBuilder(Scope("erf", target_opset=opset), container,
                                       np.float64, opset)
    out = _onnx_graph.erf_double(builder, "x")
    graph = helper.make_graph(
        container.nodes, "erf", [helper.make_tensor_value_info("x", TensorProto.DOUBLE,
                                                               [None])],
        [helper.make_tensor_value_info(out, TensorProto.DOUBLE, [None])],
        initializer=container.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    x = np.concatenate([np.linspace(-30.0, 30.0, 6001), np.geomspace(1e-300, 1.0, 300),
                        [0.46875, 4.0, -4.0, np.inf, -np.inf]])
    (got,) = _run(model, x)
    want = np.array([math.erf(v) for v in x])
    # within 8 units in the last place (of the result, or of 1e-300 near 0); the
    # largest seen is 4
    ulp = np.spacing(np.maximum(np.abs(want), 1e-300))
    assert np.all(np.abs(got - want) <= 8 * ulp)


def test_fitted_prefers_the_fitted_attribute():
    params_only = SimpleNamespace(top_k=2)
    assert _fitted(params_only, "top_k") == 2
    assert _fitted(SimpleNamespace(top_k=2, top_k_=None), "top_k") is None


def test_unsupported_cases_raise_clear_errors():
    X, y = _data()
    reg = _regressor("perturbed_cosine", "linear", None, False)
    with pytest.raises(TypeError, match="X_sample must be float32"):
        to_onnx(reg, X[:1].astype(np.int64))
    from skl2onnx.common.data_types import Int64TensorType

    with pytest.raises(TypeError, match="takes a float or double tensor"):
        skl2onnx.to_onnx(reg, initial_types=[("X", Int64TensorType([None, N_FEATURES]))])
    with pytest.raises(RuntimeError, match="target_opset >= 11"):
        to_onnx(reg, X[:1], target_opset=10)
    with pytest.raises(Exception, match="not fitted"):
        to_onnx(CosineMoERegressor(), X[:1])
    clf = copy.deepcopy(_classifier("cosine", None, 2))
    clf.classes_ = np.array([0.5, 1.5])  # scikit-learn's fit refuses such labels
    with pytest.raises(NotImplementedError, match="non-integer floats"):
        to_onnx(clf, X[:1].astype(np.float32), options={id(clf): {"zipmap": False}})
    clf = _classifier("cosine", None, 2)
    with pytest.raises(NotImplementedError, match="ZipMap"):
        to_onnx(clf, X[:1])  # double graph with the default zipmap=True


def test_import_of_the_package_does_not_import_skl2onnx():
    code = ("import sys, sklearn_cosmoe; "
            "bad = [m for m in ('skl2onnx', 'onnx', 'onnxruntime', 'sklearn_cosmoe.onnx') "
            "if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
