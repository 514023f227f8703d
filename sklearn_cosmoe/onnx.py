"""Export fitted mixtures to ONNX, to run them in ONNX Runtime.

Importing this module registers shape calculators and converters with
`skl2onnx <https://onnx.ai/sklearn-onnx/>`_ for
:class:`~sklearn_cosmoe.CosineMoERegressor`,
:class:`~sklearn_cosmoe.CosineMoERegressorCV` (converted as its
``estimator_``) and :class:`~sklearn_cosmoe.CosineMoEClassifier`, so that
``skl2onnx.to_onnx`` converts them alone or inside a pipeline.  It needs the
``onnx`` extra (``pip install "sklearn-cosmoe[onnx]"``); ``import
sklearn_cosmoe`` never imports it.

Every router, expert, top-K setting and number of outputs converts.  A
``float32`` sample gives a float graph, a ``float64`` sample a double graph;
``target_opset`` and ``options`` follow skl2onnx's conventions (from opset
11).  The classifier gives labels and probabilities as skl2onnx's own
classifiers do, with the options ``zipmap``, ``nocl`` and
``output_class_labels``.  See the user guide, :ref:`deployment`.

Examples
--------
>>> import numpy as np
>>> import onnxruntime as ort
>>> from sklearn_cosmoe import CosineMoERegressor
>>> from sklearn_cosmoe.onnx import to_onnx
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(80, 3))
>>> y = np.sin(X[:, 0]) + X[:, 1]
>>> reg = CosineMoERegressor(n_experts=2, random_state=0).fit(X, y)
>>> model = to_onnx(reg, X[:1])
>>> session = ort.InferenceSession(model.SerializeToString(),
...                                providers=["CPUExecutionProvider"])
>>> onnx_pred = session.run(None, {"X": X})[0]
>>> onnx_pred.shape
(80, 1)
>>> bool(np.allclose(onnx_pred[:, 0], reg.predict(X), rtol=1e-10, atol=1e-10))
True
"""

import numbers

import numpy as np

try:
    import skl2onnx
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (DoubleTensorType, FloatTensorType,
                                            Int64TensorType, StringTensorType)
    from skl2onnx.common.utils_classifier import get_label_classes
except ImportError as error:  # pragma: no cover - the extra is missing
    raise ImportError(
        "sklearn_cosmoe.onnx needs skl2onnx, onnx and onnxruntime: "
        'pip install "sklearn-cosmoe[onnx]".'
    ) from error
from sklearn.utils.validation import check_is_fitted

from . import _onnx_graph as graph
from ._classifier import CosineMoEClassifier
from ._cv import CosineMoERegressorCV
from ._estimator import CosineMoERegressor

__all__ = ["to_onnx", "register_converters"]

_ALIASES = {
    CosineMoERegressor: "SklearnCosmoeCosineMoERegressor",
    CosineMoERegressorCV: "SklearnCosmoeCosineMoERegressorCV",
    CosineMoEClassifier: "SklearnCosmoeCosineMoEClassifier",
}
_CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False],
                       "output_class_labels": [False, True]}


def _fitted(estimator, name):
    """The value of hyperparameter ``name`` that the fitted model predicts with.

    ``name + "_"`` (a fitted attribute) when the estimator has it, else the
    constructor parameter ``name``.
    """
    return getattr(estimator, name + "_", getattr(estimator, name))


def _regressor_of(estimator):
    """The :class:`CosineMoERegressor` that predicts for ``estimator``."""
    check_is_fitted(estimator)
    if isinstance(estimator, CosineMoERegressorCV):
        return estimator.estimator_
    return estimator


def _router_args(estimator):
    return {name: _fitted(estimator, name)
            for name in ("router", "tau1", "tau2", "temperature")}


def _graph_dtype(operator, what):
    """The numpy float type of the operator's input, or a clear error."""
    input_type = operator.inputs[0].type
    if isinstance(input_type, DoubleTensorType):
        return np.float64
    if isinstance(input_type, FloatTensorType):
        return np.float32
    raise TypeError(
        f"The ONNX converter of {what} takes a float or double tensor; got "
        f"{type(input_type).__name__}. Cast X to float32 (a float graph) or "
        "float64 (a double graph) first."
    )


def _builder(scope, operator, container):
    opset = container.target_opset
    if opset is None:
        opset = skl2onnx.get_latest_tested_opset_version()
    name = type(operator.raw_operator).__name__
    if opset < graph.MIN_OPSET:
        raise RuntimeError(
            f"The ONNX converter of {name} needs target_opset >= {graph.MIN_OPSET} "
            f"(TopK and ScatterElements for top-K gates); got target_opset={opset}."
        )
    return graph.GraphBuilder(scope, container, _graph_dtype(operator, name), opset)


# -- regressor -----------------------------------------------------------------
def _n_outputs(regressor):
    coef = regressor.expert_coef_
    return None if coef.ndim == 2 else coef.shape[1]


def regressor_shape_calculator(operator):
    """Output ``(N, 1)`` for one output, ``(N, m)`` for ``m``, in the input's float type."""
    regressor = _regressor_of(operator.raw_operator)
    cls = DoubleTensorType if _graph_dtype(
        operator, type(operator.raw_operator).__name__) is np.float64 else FloatTensorType
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = cls([n, _n_outputs(regressor) or 1])


def regressor_converter(scope, operator, container):
    """The regressor's graph: ``c + s sum_i g_i(x) h(a_i . x + b_i)``."""
    g = _builder(scope, operator, container)
    reg = _regressor_of(operator.raw_operator)
    X = operator.inputs[0].full_name
    k = reg.gate_coef_.shape[0]
    m = _n_outputs(reg)
    expert = _fitted(reg, "expert")
    scores = graph.router_scores(g, X, reg.gate_coef_, reg.gate_intercept_,
                                 **_router_args(reg))
    weights = graph.gates(g, scores, k, _fitted(reg, "top_k"))
    d = reg.gate_coef_.shape[1]
    # one column per expert (and output, expert-major)
    z = graph.affine(g, X, np.reshape(reg.expert_coef_, (-1, d)), reg.expert_intercept_,
                     "expert")
    y = graph.mixture(g, weights, graph.activation(g, z, expert), k, m)
    if expert != "linear":
        width = m or 1
        scale = np.broadcast_to(reg.output_scale_, (width,))
        intercept = np.broadcast_to(reg.output_intercept_, (width,))
        y = g.add(g.mul(y, g.const(scale, "output_scale")),
                  g.const(intercept, "output_intercept"))
    g.node("Identity", [y], output=operator.outputs[0].full_name)


# -- classifier ----------------------------------------------------------------
def _label_classes(scope, classifier):
    """The class labels the graph outputs (skl2onnx's conventions), or a clear error.

    Integer and boolean labels become int64, integral float labels too (as
    skl2onnx's own classifiers do); strings stay strings.
    """
    classes = np.asarray(get_label_classes(scope, classifier))
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        if not np.all(np.mod(classes, 1) == 0):
            raise NotImplementedError(
                "CosineMoEClassifier's ONNX converter outputs int64 or string labels, "
                "as skl2onnx's classifiers do; classes_ holds non-integer floats "
                f"{classes.tolist()}. Fit on integer or string labels."
            )
        return classes.astype(np.int64)
    if all(isinstance(c, str) for c in classes):
        return classes.astype(str)
    if all(isinstance(c, numbers.Integral) for c in classes):
        return classes.astype(np.int64)
    raise NotImplementedError(
        "CosineMoEClassifier's ONNX converter needs class labels that are all "
        f"integers or all strings; classes_ is {classes.tolist()}."
    )


def classifier_shape_calculator(operator):
    """Labels ``(N,)`` (int64 or string) and probabilities ``(N, C)``."""
    classifier = operator.raw_operator
    check_is_fitted(classifier)
    cls = DoubleTensorType if _graph_dtype(
        operator, type(classifier).__name__) is np.float64 else FloatTensorType
    if cls is DoubleTensorType:
        zipmap = operator.scope_inst.get_options(classifier, {"zipmap": True})["zipmap"]
        if zipmap is True:
            raise NotImplementedError(
                "A double graph of CosineMoEClassifier cannot end in ONNX's ZipMap, "
                "which takes float probabilities only; pass options="
                "{CosineMoEClassifier: {'zipmap': False}} (or 'columns'), or a "
                "float32 X_sample."
            )
    classes = _label_classes(operator.scope_inst, classifier)
    n = operator.inputs[0].get_first_dimension()
    label_type = StringTensorType if classes.dtype.kind == "U" else Int64TensorType
    operator.outputs[0].type = label_type([n])
    operator.outputs[1].type = cls([n, len(classes)])


def classifier_converter(scope, operator, container):
    """The classifier's graph: ``p(c | x) = sum_i g_i(x) softmax(A_i x + b_i)_c``.

    The probabilities are divided by their sum over the classes, and the
    label is the class of the largest (the first on a tie), as
    ``predict_proba`` and ``predict``.
    """
    g = _builder(scope, operator, container)
    clf = operator.raw_operator
    check_is_fitted(clf)
    X = operator.inputs[0].full_name
    k, n_classes, d = clf.expert_coef_.shape
    scores = graph.router_scores(g, X, clf.gate_coef_, clf.gate_intercept_,
                                 **_router_args(clf))
    weights = graph.gates(g, scores, k, _fitted(clf, "top_k"))
    logits = graph.affine(g, X, clf.expert_coef_.reshape(k * n_classes, d),
                          clf.expert_intercept_, "expert")
    expert_proba = g.node("Softmax", [g.reshape(logits, [-1, n_classes])], axis=1)
    proba = graph.mixture(g, weights, expert_proba, k, n_classes)
    total = g.reduce("ReduceSum", proba, axis=1, keepdims=1)
    g.node("Div", [proba, total], output=operator.outputs[1].full_name)
    classes = _label_classes(scope, clf)
    index = g.node("ArgMax", [operator.outputs[1].full_name], axis=1, keepdims=0)
    table = (g.strings(classes) if classes.dtype.kind == "U"
             else g.const(classes, "classes", np.int64))
    g.node("Gather", [table, index], output=operator.outputs[0].full_name, axis=0)


# -- registration and the convenience function ---------------------------------
def register_converters():
    """Register the shape calculators and converters with skl2onnx.

    Done when :mod:`sklearn_cosmoe.onnx` is imported; calling it again does
    no harm.
    """
    for model in (CosineMoERegressor, CosineMoERegressorCV):
        update_registered_converter(model, _ALIASES[model], regressor_shape_calculator,
                                    regressor_converter)
    update_registered_converter(CosineMoEClassifier, _ALIASES[CosineMoEClassifier],
                                classifier_shape_calculator, classifier_converter,
                                options=_CLASSIFIER_OPTIONS)


def to_onnx(estimator, X_sample, *, target_opset=None, options=None, **kwargs):
    """Convert a fitted estimator (or a pipeline ending in one) to an ONNX model.

    A thin wrapper of :func:`skl2onnx.to_onnx` after
    :func:`register_converters`.

    Parameters
    ----------
    estimator : fitted estimator or pipeline
        A :class:`~sklearn_cosmoe.CosineMoERegressor`,
        :class:`~sklearn_cosmoe.CosineMoERegressorCV` or
        :class:`~sklearn_cosmoe.CosineMoEClassifier`, alone or in a pipeline
        of steps skl2onnx converts.
    X_sample : array-like of shape (n_samples, n_features)
        A few rows of the input: ``float32`` gives a float graph, ``float64``
        a double graph (the input is named ``"X"``).
    target_opset : int or dict, default=None
        skl2onnx's ``target_opset`` (at least 11); None is the latest that
        skl2onnx has tested.
    options : dict, default=None
        skl2onnx's options, e.g. ``{CosineMoEClassifier: {"zipmap": False}}``.
    **kwargs
        Passed on to :func:`skl2onnx.to_onnx`.

    Returns
    -------
    onnx.ModelProto
    """
    X_sample = np.asarray(X_sample)
    if X_sample.dtype not in (np.float32, np.float64):
        raise TypeError(
            "X_sample must be float32 (a float graph) or float64 (a double graph); "
            f"got dtype {X_sample.dtype}."
        )
    register_converters()
    return skl2onnx.to_onnx(estimator, X_sample, target_opset=target_opset,
                            options=options, **kwargs)


register_converters()
