"""What a fitted model predicts from, and the checks of a model loaded from a file.

A fitted estimator predicts from its fitted attributes only: the
hyperparameters that shape the prediction (router, expert, perturbations,
temperature, top-K) are copied at fit time into ``router_``, ``expert_``,
``tau1_``, ``tau2_``, ``temperature_`` and ``top_k_``, so that ``set_params``
changes the next fit and nothing else.  Files written before those
attributes existed get them from the hyperparameters stored with them
(:func:`add_missing_fitted_hyperparameters`), which were then the fitted
ones.  :func:`check_fitted_model` checks that a model's attributes make a
model at all (shapes that agree, known names, a positive temperature), for
models read from files that may have been altered.
"""

from numbers import Integral, Real

import numpy as np

from ._experts import EXPERTS
from ._routers import ROUTERS

# attributes of a fit that predictions read, set by every fit
FITTED_HYPERPARAMETERS = ("router", "expert", "tau1", "tau2", "temperature", "top_k")
# attributes of earlier versions that recorded part of them
_OBSOLETE = ("_fitted_structure", "_fitted_router")


def fitted_hyperparameters(estimator, names):
    """The values of the hyperparameters ``names``, as the dict of their fitted attributes."""
    values = {}
    for name in names:
        value = getattr(estimator, name)
        if name in ("tau1", "tau2", "temperature"):
            value = float(value)
        elif name == "top_k" and value is not None:
            value = int(value)
        values[f"{name}_"] = value
    return values


def add_missing_fitted_hyperparameters(estimator, names):
    """Give a fitted ``estimator`` of an earlier version its missing fitted hyperparameters.

    Those versions predicted from the hyperparameters stored with the model,
    so these are taken as the fitted ones; a later ``set_params`` no longer
    changes the predictions.
    """
    state = vars(estimator)
    if "gate_coef_" not in state:
        return
    for name in names:
        if f"{name}_" not in state and name in state:
            state.update(fitted_hyperparameters(estimator, [name]))
    for name in _OBSOLETE:
        state.pop(name, None)


def _fail(estimator, message):
    raise ValueError(f"The loaded {type(estimator).__name__} is not a valid fitted model: "
                     f"{message}. The file may have been altered; do not use it.")


def _array(estimator, name, ndim):
    value = getattr(estimator, name, None)
    if not isinstance(value, np.ndarray) or value.ndim not in ndim or value.dtype.kind != "f":
        _fail(estimator, f"{name} must be a float array with {' or '.join(map(str, ndim))} "
                         f"dimensions; got {type(value).__name__} "
                         f"{getattr(value, 'shape', '')}")
    if not np.all(np.isfinite(value)):
        _fail(estimator, f"{name} contains NaN or infinity")
    return value


def _check_hyperparameters(estimator, names):
    values = {name: getattr(estimator, f"{name}_", None) for name in names}
    if "router" in values and values["router"] not in ROUTERS:
        _fail(estimator, f"router_={values['router']!r} is not one of {sorted(ROUTERS)}")
    if "expert" in values and values["expert"] not in EXPERTS:
        _fail(estimator, f"expert_={values['expert']!r} is not one of {sorted(EXPERTS)}")
    for name in ("tau1", "tau2", "temperature"):
        value = values.get(name)
        if (not isinstance(value, Real) or isinstance(value, bool) or not np.isfinite(value)
                or value < 0 or (name == "temperature" and value == 0)):
            bound = "> 0" if name == "temperature" else ">= 0"
            _fail(estimator, f"{name}_ must be a finite number {bound}; got {value!r}")
    if values["router"] == "perturbed_cosine" and values["tau1"] == 0:
        _fail(estimator, "tau1_ must be > 0 with router_='perturbed_cosine'")


def check_fitted_model(estimator, names):
    """Raise a ``ValueError`` unless ``estimator``'s fitted attributes make a model.

    ``names`` are the estimator's fitted hyperparameters (without the
    underscore).  Checks the parameter arrays' shapes against each other and
    ``n_features_in_``, that they are finite, the router and expert names,
    ``temperature_ > 0``, ``tau1_, tau2_ >= 0`` and ``top_k_ < n_experts``.
    """
    _check_hyperparameters(estimator, names)
    gate_coef = _array(estimator, "gate_coef_", (2,))
    k, d = gate_coef.shape
    if k < 1 or d < 1 or getattr(estimator, "n_features_in_", None) != d:
        _fail(estimator, f"gate_coef_ has shape {gate_coef.shape}; expected (n_experts >= 1, "
                         f"n_features_in_={getattr(estimator, 'n_features_in_', None)!r})")
    top_k = estimator.top_k_
    if top_k is not None and (not isinstance(top_k, Integral) or isinstance(top_k, bool)
                              or not 1 <= top_k < k):
        _fail(estimator, f"top_k_={top_k!r} must be None or an int in [1, n_experts={k})")
    gate_intercept = _array(estimator, "gate_intercept_", (1,))
    expert_coef = _array(estimator, "expert_coef_", (2, 3))
    expert_intercept = _array(estimator, "expert_intercept_", (1, 2))
    expected = [(gate_intercept, (k,))]
    if hasattr(estimator, "classes_"):
        classes = estimator.classes_
        if not isinstance(classes, np.ndarray) or classes.ndim != 1 or classes.size < 2:
            _fail(estimator, "classes_ must be a 1-d array of at least 2 classes")
        n_classes = classes.size
        expected += [(expert_coef, (k, n_classes, d)), (expert_intercept, (k, n_classes))]
    elif expert_coef.ndim == 2:
        expected += [(expert_coef, (k, d)), (expert_intercept, (k,))]
        for name in ("output_scale_", "output_intercept_"):
            value = getattr(estimator, name, None)
            if not isinstance(value, Real) or not np.isfinite(value):
                _fail(estimator, f"{name} must be a finite number; got {value!r}")
    else:
        m = expert_coef.shape[1]
        expected += [(expert_coef, (k, m, d)), (expert_intercept, (k, m))]
        for name in ("output_scale_", "output_intercept_"):
            expected.append((_array(estimator, name, (1,)), (m,)))
    for value, shape in expected:
        if value.shape != shape:
            _fail(estimator, f"the parameter arrays' shapes disagree: one has shape "
                             f"{value.shape} where {shape} is expected for "
                             f"{k} experts on {d} features")
