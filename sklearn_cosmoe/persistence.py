"""Saving and loading fitted models safely, with :mod:`skops.io`.

:mod:`pickle` runs arbitrary code while it loads a file, so a pickled model
must come from someone you trust.  :mod:`skops.io` loads only types it knows
to be safe, plus those you name: :data:`TRUSTED_TYPES` names this package's
estimators and nothing else, so :func:`load` refuses a file that holds any
other unknown type.  Both need the optional dependency ``skops``
(``pip install sklearn-cosmoe[skops]``).  See :ref:`persistence`.
"""

__all__ = ["TRUSTED_TYPES", "dump", "load"]

#: The package's types that a model file may hold besides the types that
#: :mod:`skops.io` trusts by default (NumPy arrays, scikit-learn estimators,
#: Python builtins).
TRUSTED_TYPES = ["sklearn_cosmoe._estimator.CosineMoERegressor",
                 "sklearn_cosmoe._classifier.CosineMoEClassifier"]


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
    """
    return _skops_io().load(file, trusted=TRUSTED_TYPES)
