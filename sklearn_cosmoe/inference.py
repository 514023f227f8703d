r"""Standard errors of a fitted mixture's parameters, in the canonical form.

:func:`summary` reads the sandwich covariance that
:meth:`CosineMoERegressor.fit <sklearn_cosmoe.CosineMoERegressor.fit>` estimates
(user guide :ref:`uncertainty`) and reports, with a standard error each,

* per gate ``i``: its weight :math:`\pi_i = \operatorname{softmax}(\beta_0)_i`,
  and the direction and temperature-scaled length :math:`\|\tilde u_i\| / T`
  of its centred atom :math:`\tilde u_i = u_i - \sum_j \pi_j u_j`, the canonical
  form's gate parameters (:ref:`canonical-form`);
* per expert ``i`` and output ``j``: its coefficients and intercept, with the
  sign of the odd experts' symmetry fixed (a non-negative output scale);
* for feed-forward experts, per output: the output scale and intercept.

A quantity that the training rows do not determine (it moves along a
direction of the parameters that changes no prediction there: an expert
without rows, the split of an over-specified pair of experts, the plain cosine
router's gate lengths) is marked ``identified=False`` with NaN for its
estimate and standard error, rather than given a number.
"""

import numpy as np
from scipy.special import softmax

from ._estimator import CosineMoERegressor
from ._model import MoEParams
from ._routers import gate_atoms
from ._sandwich import standard_error
from ._uncertainty import fitted_statistics

__all__ = ["summary"]

#: Columns of the table of :func:`summary`, with their dtypes.
COLUMNS = (("kind", "U6"), ("expert", "i8"), ("output", "i8"), ("parameter", "U40"),
           ("estimate", "f8"), ("std_error", "f8"), ("identified", "?"))
#: Experts with h(-z) = -h(z) (linear, tanh) or 1 - h(z) (sigmoid), whose sign
#: the canonical form fixes (user guide :ref:`identifiability-transformations`).
_ODD_EXPERTS = ("linear", "tanh", "sigmoid")


def summary(estimator):
    """Estimates and standard errors of a fitted mixture's parameters, as a table.

    Parameters
    ----------
    estimator : CosineMoERegressor
        Fitted; a :class:`~sklearn.pipeline.Pipeline` ending with one, or a
        fitted :class:`~sklearn_cosmoe.CosineMoERegressorCV`, is read through
        its last step or its ``estimator_``.

    Returns
    -------
    table : pandas.DataFrame or numpy structured array
        A DataFrame when pandas is installed, else a structured array whose
        ``print`` is a table.  One row per quantity, with the columns

        ``kind``
            ``"gate"``, ``"expert"`` or ``"output"`` (the output scale and
            intercept of feed-forward experts).
        ``expert``
            The expert's index (in the canonical order of the fit: by
            decreasing total gate weight); -1 for the ``"output"`` rows.
        ``output``
            The output's index (0 for a 1-d ``y``); -1 for the gates, which
            the outputs share.
        ``parameter``
            ``"weight"``, ``"direction[name]"`` and ``"length"`` for a gate
            (and ``"coef_norm"`` under the plain cosine router, never
            identified); ``"coef[name]"`` and ``"intercept"`` for an expert;
            ``"scale"`` and ``"intercept"`` for an output.  ``name`` is the
            feature's name (``feature_names_in_``) or ``x0, x1, ...``.
        ``estimate``, ``std_error``
            The value at the fit and its sandwich standard error (delta
            method); NaN both when not identified.
        ``identified``
            Whether the training rows determine the quantity.

    Raises
    ------
    ValueError
        When the estimator kept no covariance (fitted by an earlier version,
        or above :data:`sklearn_cosmoe._sandwich.COVARIANCE_MAX_PARAMETERS`
        parameters) or was fitted on too few rows to estimate one.

    Examples
    --------
    >>> from sklearn_cosmoe import CosineMoERegressor
    >>> from sklearn_cosmoe.datasets import make_cosine_moe
    >>> from sklearn_cosmoe.inference import summary
    >>> X, y, _ = make_cosine_moe(400, n_features=2, n_experts=2, random_state=0)
    >>> table = summary(CosineMoERegressor(n_experts=2, random_state=0).fit(X, y))
    >>> list(table["parameter"][:4])
    ['weight', 'direction[x0]', 'direction[x1]', 'length']
    """
    estimator = _fitted_mixture(estimator)
    statistics = fitted_statistics(estimator)
    rows = [(*row, *_estimate(statistics, value, gradient))
            for row, value, gradient in _quantities(estimator)]
    try:
        import pandas as pd
    except ImportError:
        return np.array(rows, dtype=list(COLUMNS)).view(SummaryTable)
    return pd.DataFrame.from_records(rows, columns=[name for name, _ in COLUMNS])


def _fitted_mixture(estimator):
    if hasattr(estimator, "steps"):  # a pipeline
        estimator = estimator.steps[-1][1]
    if not isinstance(estimator, CosineMoERegressor) and hasattr(estimator, "estimator_"):
        estimator = estimator.estimator_  # CosineMoERegressorCV
    if not isinstance(estimator, CosineMoERegressor):
        raise TypeError("summary needs a fitted CosineMoERegressor (or a pipeline ending "
                        f"with one); got {type(estimator).__name__}.")
    return estimator


def _estimate(statistics, value, gradient):
    """``(estimate, std_error, identified)`` of a quantity of ``value`` and ``gradient``."""
    error = standard_error(statistics, gradient) if np.isfinite(value) else np.nan
    if not np.isfinite(error):
        return np.nan, np.nan, False
    return float(value), error, True


def _quantities(estimator):
    """``((kind, expert, output, parameter), value, gradient)`` of every row."""
    params, spec = estimator._params(), estimator._fitted_spec()
    k, d = params.shape
    size = spec.n_parameters((k, d))
    at = MoEParams.from_vector(np.arange(size, dtype=np.float64), (k, d), spec)
    names = (list(map(str, estimator.feature_names_in_))
             if hasattr(estimator, "feature_names_in_") else [f"x{f}" for f in range(d)])
    yield from _gate_quantities(params, spec, at, names, size)
    m = 1 if spec.n_outputs is None else spec.n_outputs
    for j in range(m):
        single = params if spec.n_outputs is None else params.output(j)
        places = at if spec.n_outputs is None else _output_places(at, j)
        yield from _expert_quantities(single, spec, places, names, size, j)


def _output_places(at, j):
    """Output ``j``'s positions in the layout: ``at`` of its single-output parameters."""
    def of(value):  # an array of positions, or the default of linear experts
        return value[j] if np.ndim(value) else value

    return MoEParams(at.gate_coef, at.gate_intercept, at.expert_coef[:, j],
                     at.expert_intercept[:, j], of(at.output_scale), of(at.output_intercept))


def _unit(size, *positions, values=None):
    """A gradient: ``values`` (default 1) at ``positions`` of the layout."""
    gradient = np.zeros(size)
    for position, value in zip(positions, values or [1.0] * len(positions)):
        gradient[int(position)] += value
    return gradient


def _gate_quantities(params, spec, at, names, size):
    """The gates' weights, centred atoms' directions and lengths, and their gradients."""
    k, d = params.shape
    atoms = gate_atoms(params.gate_coef, spec.router, float(spec.tau1))
    weights = softmax(params.gate_intercept)
    centred = atoms - weights @ atoms
    u_at, b_at = at.gate_coef.astype(np.intp), at.gate_intercept.astype(np.intp)
    temperature = float(spec.temperature)
    for i in range(k):
        weight = np.zeros(size)
        weight[b_at] = weights[i] * ((np.arange(k) == i) - weights)
        yield ("gate", i, -1, "weight"), weights[i], weight
        # d(centred_i) / d(parameters): (delta_ij - pi_j) I along u_j, -pi_j centred_j along b_j
        jacobian = np.zeros((d, size))
        for j in range(k):
            jacobian[:, u_at[j]] = ((i == j) - weights[j]) * np.eye(d)
            jacobian[:, b_at[j]] = -weights[j] * centred[j]
        length = np.linalg.norm(centred[i])
        direction = centred[i] / length if length > 0 else np.full(d, np.nan)
        turning = ((np.eye(d) - np.outer(direction, direction)) / length @ jacobian
                   if length > 0 else np.zeros((d, size)))
        for f in range(d):
            yield ("gate", i, -1, f"direction[{names[f]}]"), direction[f], turning[f]
        yield (("gate", i, -1, "length"), length / temperature,
               (direction @ jacobian / temperature if length > 0 else np.zeros(size)))
        if spec.router == "cosine":  # the gates see only beta_1i's direction
            yield ("gate", i, -1, "coef_norm"), np.nan, np.zeros(size)


def _expert_quantities(params, spec, at, names, size, j):
    """Output ``j``'s experts' coefficients and intercepts (and its output scale and
    intercept for feed-forward experts), the sign of the odd experts fixed."""
    k, d = params.shape
    scale = float(params.output_scale)
    sign = -1.0 if spec.expert in _ODD_EXPERTS and scale < 0 else 1.0
    for i in range(k):
        for f in range(d):
            yield (("expert", i, j, f"coef[{names[f]}]"), sign * params.expert_coef[i, f],
                   _unit(size, at.expert_coef[i, f], values=[sign]))
        yield (("expert", i, j, "intercept"), sign * params.expert_intercept[i],
               _unit(size, at.expert_intercept[i], values=[sign]))
    if not spec.learns_output_affine:
        return
    yield ("output", -1, j, "scale"), sign * scale, _unit(size, at.output_scale, values=[sign])
    shifted = spec.expert == "sigmoid" and sign < 0  # (s, c) -> (-s, c + s)
    yield (("output", -1, j, "intercept"),
           float(params.output_intercept) + (scale if shifted else 0.0),
           _unit(size, at.output_intercept, *([at.output_scale] if shifted else [])))


class SummaryTable(np.ndarray):
    """:func:`summary`'s structured array where pandas is missing: it prints as a table."""

    def __str__(self):
        header = [name for name, _ in COLUMNS]
        cells = [[_cell(row[name]) for name in header] for row in np.atleast_1d(self)]
        widths = [max(len(text) for text in column) for column in zip(header, *cells)]
        lines = ["  ".join(text.rjust(w) for text, w in zip(header, widths))]
        lines += ["  ".join(text.rjust(w) for text, w in zip(line, widths)) for line in cells]
        return "\n".join(lines)


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)
