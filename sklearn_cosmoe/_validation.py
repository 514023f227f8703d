"""Input checks and the target's standardization, for the estimator's ``fit``.

Everything here runs before any numerical work, so that bad input gets an
error that names the argument and the cause instead of an overflow, a NaN or
an unrelated error deep inside the solver.  The parameters fitted to the
standardized target are mapped back to the target's scale here too
(:func:`params_on_target_scale`, :func:`params_on_standardized_scale`).
"""

import numpy as np
from scipy import sparse
from sklearn.utils._param_validation import InvalidParameterError

# The fit squares the entries of X (row norms, the Gram matrix of the least
# squares) and sums them over the rows: entries up to 1e100 keep those sums
# far from overflow (1e308) and entries down to 1e-100 keep their squares far
# from underflow.
X_MAX = 1e100
X_MIN = 1e-100
# The regressor's predictions on the scale of y are its mean plus its
# standard deviation times the standardized prediction, which may exceed
# the standardized target by some factor: |y| up to 1e306 leaves a factor
# 100 before the largest float (1.8e308).
Y_MAX = 1e306

# thresholds of the warning about features that cosine routing cannot use
_DIRECTION_CONCENTRATION = 0.99
_COLUMN_SCALE_RATIO = 1e3
# features count as standardized (a StandardScaler would not change them much)
# when every column's mean is within this many of its standard deviations of 0
# and the columns' standard deviations lie within this factor of each other
_STANDARDIZED_MEAN = 0.5
_STANDARDIZED_SPREAD = 10.0
_NORM_TO_TAU2 = 1e-2


def check_no_booleans(estimator, names):
    """Refuse ``True``/``False`` for numeric hyperparameters.

    ``bool`` is a subclass of ``int``, so scikit-learn's parameter validation
    accepts ``n_experts=True`` as 1; here it is an error.
    """
    for name in names:
        value = getattr(estimator, name)
        if isinstance(value, (bool, np.bool_)):
            kind = "an int" if name in ("n_experts", "max_experts", "top_k", "max_iter",
                                                "n_init") else "a float"
            raise InvalidParameterError(
                f"The {name!r} parameter of {type(estimator).__name__} must be {kind}, "
                f"not a bool; got {value!r}."
            )


def check_numeric_target(y):
    """Refuse strings, a sparse matrix and ``None`` entries in a regression target."""
    if y is None:
        return  # validate_data says that y is required
    if sparse.issparse(y):
        raise ValueError(
            f"y is a sparse {type(y).__name__}; the regression target must be "
            "dense: pass y.toarray() (or y.toarray().ravel() for one output)."
        )
    try:
        values = np.asarray(y)
    except (TypeError, ValueError):
        return  # ragged and similar: validate_data says what is wrong
    if values.dtype.kind in "US":
        found = str(values.ravel()[0]) if values.size else ""
    elif values.dtype.kind == "O":
        if any(v is None for v in values.ravel()):
            raise ValueError(
                "y contains None (a missing value): the regression target must be "
                "finite numbers. Drop or impute those rows first."
            )
        found = next((v for v in values.ravel() if isinstance(v, (str, bytes))), None)
        if found is None:
            return
    else:
        return
    raise ValueError(
        "y must be numeric (a regression target); got strings such as "
        f"{found!r}. If they are numbers, convert them first, e.g. with "
        "np.asarray(y, dtype=float)."
    )


def check_x_magnitude(X, lower=True):
    """Refuse ``X`` whose largest entry makes the fit overflow or underflow.

    ``X`` is finite float64 (checked before).  ``lower=False`` (predictions)
    checks only the upper bound: tiny rows do not make a prediction NaN.
    """
    if X.size == 0:
        return
    largest = max(abs(float(X.max())), abs(float(X.min())))
    if largest > X_MAX or (lower and 0 < largest < X_MIN):
        which = "overflow" if largest > X_MAX else "underflow"
        raise ValueError(
            f"X's largest absolute value is {largest:.3g}, outside "
            f"[{X_MIN:g}, {X_MAX:g}]: the fit's squared norms and sums of squares "
            f"would {which}. Scale X first, e.g. with sklearn.preprocessing.StandardScaler."
        )


def check_y_magnitude(y):
    """Refuse a finite float64 ``y`` whose predictions on its scale could overflow."""
    largest = float(np.max(np.abs(y))) if y.size else 0.0
    if largest > Y_MAX:
        raise ValueError(
            f"y's largest absolute value is {largest:.3g}, above {Y_MAX:g}: the fitted "
            "parameters and predictions would overflow on the scale of y. Scale y "
            "down first (divide it by a power of ten and multiply the predictions back)."
        )


def check_class_weight(class_weight, classes):
    """Refuse a ``class_weight`` dict with a class not in ``classes`` or a weight that
    is negative or not finite (a negative weight makes the objective unbounded below)."""
    if not isinstance(class_weight, dict):
        return
    known = set(classes.tolist())
    unknown = [c for c in class_weight if c not in known]
    if unknown:
        raise ValueError(
            f"class_weight names classes that are not in y: {unknown!r}; the classes "
            f"of y are {classes.tolist()!r}."
        )
    for label, weight in class_weight.items():
        ok = isinstance(weight, (int, float, np.integer, np.floating)) and not isinstance(
            weight, (bool, np.bool_))
        if not ok or not np.isfinite(weight) or weight < 0:
            raise ValueError(
                f"class_weight must map classes to finite weights >= 0; got "
                f"{weight!r} for class {label!r}. A negative weight makes the "
                "likelihood unbounded below."
            )


def check_label_types(y):
    """Refuse class labels that mix strings and numbers (they cannot be sorted)."""
    if y.dtype.kind != "O":
        return
    kinds = {isinstance(v, (str, bytes)) for v in y.ravel()}
    if len(kinds) > 1:
        raise ValueError(
            "y mixes strings and numbers as class labels (e.g. 1 and '1'), which "
            "cannot be ordered into classes_; convert them to one type first, "
            "e.g. y.astype(str)."
        )


def check_candidates(name, values, positive=False):
    """The candidate values ``name`` of :class:`CosineMoERegressorCV` as a checked 1-d
    float64 array: finite numbers >= 0 (> 0 if ``positive``)."""
    message = (f"{name} must be a non-empty 1-d sequence of finite numbers "
               f"{'> 0' if positive else '>= 0'}; got {values!r}")
    if isinstance(values, (str, bytes)):
        raise ValueError(message + ".")
    array = np.asarray(values, dtype=object)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(message + f" (of shape {array.shape}).")
    for value in array:
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise ValueError(message + f" ({value!r} is not a number).")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array) & ((array > 0) if positive else (array >= 0))):
        raise ValueError(message + ".")
    return array


def check_positive_total_weight(sample_weight):
    """Refuse weights that are all zero (scikit-learn < 1.9 lets them through)."""
    if not np.any(sample_weight > 0):
        raise ValueError(
            "sample_weight must contain at least one non-zero (positive) weight; "
            "all weights are zero."
        )


def check_warm_start(estimator, shape, previous_outputs, n_outputs, attributes):
    """Refuse a warm start from a previous fit of another structure or with non-finite values.

    ``shape`` is ``(n_experts, n_features)`` of this fit; ``previous_outputs``
    and ``n_outputs`` the previous fit's and this target's number of outputs
    (None for a 1-d ``y``); ``attributes`` the names of the fitted parameters.
    """
    if estimator.gate_coef_.shape != shape:
        raise ValueError(
            f"warm_start=True needs the same n_experts and number of features "
            f"as the previous fit: it had (n_experts, n_features) = "
            f"{estimator.gate_coef_.shape}, this fit has {shape}. Set warm_start=False "
            "to fit from scratch."
        )
    if previous_outputs != n_outputs:
        raise ValueError(
            "warm_start=True needs a target of the same shape as the previous "
            f"fit's: it had n_outputs={previous_outputs}, this y has "
            f"n_outputs={n_outputs} (None for a 1-d y). Set warm_start=False "
            "to fit from scratch."
        )
    router, expert = estimator.router, estimator.expert
    previous = (estimator.router_, estimator.expert_)
    if previous != (router, expert):
        raise ValueError(
            f"warm_start=True needs the same router and expert as the previous "
            f"fit: it had router={previous[0]!r}, expert={previous[1]!r}, this "
            f"fit has router={router!r}, expert={expert!r}. Set "
            "warm_start=False to fit from scratch."
        )
    for name in attributes:
        if not np.all(np.isfinite(getattr(estimator, name))):
            raise ValueError(
                f"warm_start=True cannot start from the previous fit: {name} "
                "contains NaN or infinite values. Set warm_start=False to fit "
                "from scratch."
            )


def _power_of_two_below(value):
    """The power of two ``p`` with ``p <= value < 2 p``, for ``value > 0``.

    Dividing by it is exact, so it rescales without changing any digit.
    """
    return np.ldexp(1.0, int(np.frexp(value)[1]) - 1)


def normalize_sample_weight(sample_weight):
    """Non-negative weights divided by a power of two so that the largest is in [1, 2).

    The objective divides by the total weight, so this changes no result,
    except that sums of weights (up to ``2 n``) can no longer overflow.
    A new array is returned; the input is not modified.
    """
    return sample_weight / _power_of_two_below(sample_weight.max())


def standardize_target(y, sample_weight):
    """Weighted mean and standard deviation of ``y``, and the standardized target.

    Overflow- and underflow-safe for any finite ``y``: ``y`` is first divided
    by a power of two near its largest absolute value.  The sums are
    ``np.sum`` of elementwise products (pairwise, in a fixed order), not
    BLAS dot products, whose order can depend on the number of threads.  A
    target with several columns (outputs) is standardized column by column.

    Parameters
    ----------
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs), finite float64
    sample_weight : ndarray of shape (n_samples,)
        Non-negative, with a positive sum that does not overflow.

    Returns
    -------
    target : ndarray of the shape of ``y``
        ``(y - y_mean) / y_scale``; Fortran-ordered with several columns, so
        that each column is contiguous.
    y_mean : float, or ndarray of shape (n_outputs,)
    y_scale : float, or ndarray of shape (n_outputs,)
        The weighted standard deviation; for a constant target (column), a
        power of two near its size.
    """
    if y.ndim == 1:
        return _standardize_column(y, sample_weight)
    target = np.empty(y.shape, order="F")
    y_mean, y_scale = np.empty(y.shape[1]), np.empty(y.shape[1])
    for j in range(y.shape[1]):
        target[:, j], y_mean[j], y_scale[j] = _standardize_column(
            np.ascontiguousarray(y[:, j]), sample_weight)
    return target, y_mean, y_scale


def _standardize_column(y, sample_weight):
    largest = float(np.max(np.abs(y)))
    if largest == 0:
        return np.zeros_like(y), 0.0, 1.0
    unit = _power_of_two_below(largest)
    scaled = y / unit  # |scaled| < 2
    total = np.sum(sample_weight)
    mean = np.sum(sample_weight * scaled) / total
    centred = scaled - mean
    std = np.sqrt(np.sum(sample_weight * centred * centred) / total)
    if not std > 0:  # a constant target: keep the power-of-two scale
        return centred, float(mean * unit), float(unit)
    return centred / std, float(mean * unit), float(std * unit)


def params_on_target_scale(params, y_mean, y_scale, expert):
    """``params``, fitted to the standardized target, on ``y``'s scale: the fitted attributes.

    ``y_mean`` and ``y_scale`` are those of :func:`standardize_target`.
    Linear experts take the affine map themselves (the gates sum to one), so
    their output scale and intercept stay 1 and 0; feed-forward experts put
    it into the output scale and intercept.

    Returns
    -------
    dict
        ``gate_coef_``, ``gate_intercept_``, ``expert_coef_``,
        ``expert_intercept_``, ``output_scale_``, ``output_intercept_``: new
        arrays; the output scale and intercept are floats for one output and
        arrays of shape ``(n_outputs,)`` for several.
    """
    single = params.n_outputs is None
    fitted = {"gate_coef_": params.gate_coef.copy(),
              "gate_intercept_": params.gate_intercept.copy()}
    if expert == "linear":
        coef_scale = y_scale if single else y_scale[:, None]
        fitted["expert_coef_"] = coef_scale * params.expert_coef
        fitted["expert_intercept_"] = y_scale * params.expert_intercept + y_mean
        if single:
            fitted["output_scale_"], fitted["output_intercept_"] = 1.0, 0.0
        else:
            fitted["output_scale_"] = np.ones(params.n_outputs)
            fitted["output_intercept_"] = np.zeros(params.n_outputs)
        return fitted
    fitted["expert_coef_"] = params.expert_coef.copy()
    fitted["expert_intercept_"] = params.expert_intercept.copy()
    scale = y_scale * params.output_scale
    intercept = y_scale * params.output_intercept + y_mean
    fitted["output_scale_"] = float(scale) if single else scale
    fitted["output_intercept_"] = float(intercept) if single else intercept
    return fitted


def params_on_standardized_scale(params, y_mean, y_scale, expert):
    """Inverse of :func:`params_on_target_scale`: new ``MoEParams`` for the standardized target."""
    params = params.copy()
    if expert == "linear":
        coef_scale = y_scale if params.n_outputs is None else y_scale[:, None]
        params.expert_coef = params.expert_coef / coef_scale
        params.expert_intercept = (params.expert_intercept - y_mean) / y_scale
    else:
        params.output_scale = params.output_scale / y_scale
        params.output_intercept = (params.output_intercept - y_mean) / y_scale
    return params


def warm_start_on_standardized_scale(params, spec, y_mean, y_scale):
    """The previous fit's ``params`` (on ``y``'s scale) as a start on the standardized
    target of this fit, or a ``ValueError`` when they overflow there."""
    with np.errstate(over="ignore"):
        params = params_on_standardized_scale(params, y_mean, y_scale, spec.expert)
    if not np.all(np.isfinite(params.to_vector(spec))):
        raise ValueError(
            "warm_start=True cannot start from the previous fit: its parameters "
            f"overflow on the scale of this y (standard deviation "
            f"{np.min(y_scale):.3g}). Set warm_start=False to fit from scratch."
        )
    return params


def scaler_would_help(X):
    """Whether a ``StandardScaler`` would change the scale of ``X`` materially.

    False when every column's mean is within ``_STANDARDIZED_MEAN`` of its
    standard deviations of 0 and the nonzero standard deviations lie within a
    factor ``_STANDARDIZED_SPREAD`` of each other (as after a ``StandardScaler``
    in a pipeline); constant columns are ignored.
    """
    X = np.asarray(X)
    std = X.std(axis=0)
    varying = std > 0
    if not np.any(varying):
        return False
    mean = np.abs(X.mean(axis=0))[varying]
    std = std[varying]
    return bool(np.any(mean > _STANDARDIZED_MEAN * std)
                or std.max() > _STANDARDIZED_SPREAD * std.min())


def unscaled_features_message(X, sample_weight, router, tau2):
    """Why cosine routing cannot use these features, or ``None``.

    Cosine routers see only the direction of each row (and, for the
    perturbed one, its norm against ``tau2``), so three things make their
    gates meaningless: rows that all point nearly the same way (columns
    offset from the origin), column scales so different that the largest
    columns alone set the directions, and rows much shorter than ``tau2``.
    The linear router is not checked: its family of gates is the same
    under any affine map of the columns (only the ridge term changes).
    """
    if router == "linear":
        return None
    # no copy of X: zero rows and rows of zero weight get a coefficient of 0
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    used = (norms > 0) & (sample_weight > 0)
    if not np.any(used):
        return None
    total = np.sum(sample_weight[used])
    to_directions = np.divide(sample_weight, norms, out=np.zeros_like(norms), where=used)
    reasons = []
    resultant = np.linalg.norm(to_directions @ X) / total
    if resultant > _DIRECTION_CONCENTRATION:
        reasons.append(
            f"the rows of X all point nearly the same way (mean resultant length "
            f"of their directions {resultant:.4f}): the columns are offset from the origin"
        )
    scales = np.maximum(np.abs(X.max(axis=0)), np.abs(X.min(axis=0)))
    scales = scales[scales > 0]
    ratio = scales.max() / scales.min()
    if ratio > _COLUMN_SCALE_RATIO:
        reasons.append(
            f"the columns' largest absolute values range over a factor {ratio:.1e}, "
            "so the largest columns alone set the directions of the rows"
        )
    if router == "perturbed_cosine" and tau2 > 0:
        typical = np.sqrt(np.sum(sample_weight * norms * norms) / total)
        if typical < _NORM_TO_TAU2 * tau2:
            reasons.append(
                f"the rows' norms (root mean square {typical:.3g}) are tiny against "
                f"tau2={tau2:g}, so every cosine term is near 0"
            )
    if not reasons:
        return None
    return (
        f"Cosine routing (router={router!r}) depends on the origin and on the "
        f"columns' scales, and here {'; and '.join(reasons)}. The gates will hardly "
        "depend on X. Put a sklearn.preprocessing.StandardScaler in front "
        "(make_pipeline(StandardScaler(), CosineMoERegressor(...)))."
    )
