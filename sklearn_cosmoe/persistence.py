"""Saving and loading fitted models safely, with :mod:`skops.io`.

:mod:`pickle` runs arbitrary code while it loads a file, so a pickled model
must come from someone you trust.  :mod:`skops.io` loads only types it knows
to be safe, plus those you name: :data:`TRUSTED_TYPES` names this package's
estimators and nothing else, so :func:`load` refuses a file that holds any
other unknown type.  A file made only of trusted types may still have been
altered to hold values that make no model (a temperature of 0, arrays of
shapes that disagree): :func:`load` checks every estimator of this package
that the file holds and refuses such a file.  Both need the optional dependency ``skops``
(``pip install sklearn-cosmoe[skops]``).  See :ref:`persistence`.
"""

__all__ = ["TRUSTED_TYPES", "dump", "load"]

#: The package's types that a model file may hold besides the types that
#: :mod:`skops.io` trusts by default (NumPy arrays, scikit-learn estimators,
#: Python builtins).
TRUSTED_TYPES = ["sklearn_cosmoe._estimator.CosineMoERegressor",
                 "sklearn_cosmoe._classifier.CosineMoEClassifier",
                 "sklearn_cosmoe._cv.CosineMoERegressorCV"]

# how deep :func:`_check_models` looks into containers (pipelines, dicts)
_MAX_DEPTH = 20


def _skops_io():
    try:
        import skops.io
    except ImportError as error:
        raise ImportError(
            "Saving and loading with skops needs the package skops: "
            "pip install sklearn-cosmoe[skops] (or pip install skops)."
        ) from error
    return skops.io


def dump(model, file):
    """Save ``model`` (a fitted estimator, or a pipeline holding one) to ``file``.

    Parameters
    ----------
    model : object
        For example a :class:`~sklearn_cosmoe.CosineMoERegressor` or a
        :class:`~sklearn.pipeline.Pipeline` that ends with one.
    file : str, path or binary file object
        Where to write; ``.skops`` is the usual extension.
    """
    _skops_io().dump(model, file)


def load(file):
    """Load a model saved by :func:`dump` (or :func:`skops.io.dump`).

    Only the types that :mod:`skops.io` trusts by default and
    :data:`TRUSTED_TYPES` are accepted.

    Parameters
    ----------
    file : str, path or binary file object

    Returns
    -------
    model : object

    Raises
    ------
    skops.io.exceptions.UntrustedTypesFoundException
        When the file holds any other type (a file made or altered by someone
        else to run code when it is loaded, for instance).  Inspect such a
        file with :func:`skops.io.get_untrusted_types` before trusting it.
    ValueError
        When a fitted estimator of this package in the file is not a valid
        model: parameter arrays whose shapes disagree or that are not finite,
        an unknown router or expert, a temperature <= 0, a negative ``tau1``
        or ``tau2``, a ``top_k`` of at least the number of experts.
    """
    model = _skops_io().load(file, trusted=TRUSTED_TYPES)
    _check_models(model)
    return model


def _check_models(obj, depth=0, seen=None):
    """Check every fitted estimator of this package that ``obj`` holds."""
    from sklearn.base import BaseEstimator

    seen = set() if seen is None else seen
    if depth > _MAX_DEPTH or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif isinstance(obj, BaseEstimator):
        check = getattr(obj, "_check_fitted_model", None)
        if check is not None and type(obj).__module__.startswith("sklearn_cosmoe."):
            # an unfitted estimator (no fitted attribute) is a valid one
            if any(name.endswith("_") and not name.startswith("__") for name in vars(obj)):
                check()
            return
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        _check_models(child, depth + 1, seen)
