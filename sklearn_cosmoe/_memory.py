"""The memory a fit would need, estimated and bounded before any numerical work.

A fit's memory grows with the number of experts ``k``, of features ``d``, of
rows ``n``, of outputs ``m`` and of classes ``C``, and some of it does not
depend on ``n`` at all: the normal equations of linear experts are a Gram
matrix of ``(k (d + 1))**2`` doubles, 1.8 GB for 4 experts on 2000 features
whatever the number of rows beyond that width (with fewer rows, the experts
are solved in the row space: ``n**2``).  A configuration that would need more than
:data:`MEMORY_LIMIT` bytes is refused by a ``ValueError`` that says how much
it would need and what to change, instead of running for minutes and then
exhausting the machine (user guide :ref:`memory`).

The estimates are upper bounds of the peak of the fit's own arrays, the
input ``X`` excluded (the caller holds it already): they count every array
of the sizes named below that the fit may hold at once.
"""

from ._classifier_objective import FISHER_BLOCK_ENTRIES
from ._jacobian import GN_BLOCK
from ._kernels import n_blocks
from ._solvers import default_solver

#: Largest estimated peak memory, in bytes, of the arrays of one fit (4 GiB).
#: Read when a fit starts: set ``sklearn_cosmoe._memory.MEMORY_LIMIT`` to
#: another number of bytes to allow larger fits on a larger machine.
MEMORY_LIMIT = 4 * 2**30

_DOUBLE = 8
# copies of the experts' Gram matrix alive at once: the kernel's, made
# symmetric, regularised and factorised in place; where the factorisation
# fails, a fresh copy and the one scipy.linalg.lstsq makes of it
_GRAM_COPIES = 3
# per-row arrays of k entries alive at once in a fit (scores, gates, expert
# outputs of the starts and the splits), per output
_ROW_ARRAYS = 3
# L-BFGS-B keeps 10 pairs of parameter-sized vectors, plus a few more
_LBFGS_VECTORS = 2 * 10 + 10
# parameter-squared matrices of a Newton-type iteration alive at once: per
# output the Gauss-Newton sums and the curvature, laid out, in the atoms'
# basis, Schur-reduced, Jacobi-scaled and their eigenvectors (both models)
_NEWTON_MATRICES = 12
# the classifier's: per block the Fisher matrix and the curvature's two parts,
# their products, their layout and its copy; the metric, the curvature and
# the ridge's copies; the atoms' basis and its products; both models'
# scaled matrices, eigenvectors and the eigen-solver's workspace
_CLASSIFIER_NEWTON_MATRICES = 24
# per-row arrays of a block of the Fisher sums alive at once (each at most
# FISHER_BLOCK_ENTRIES): the rows' outer products, the three coefficient
# matrices and their scaled copies, the per-row Hessians and their eigenvectors
_FISHER_BLOCK_ARRAYS = 16


def _gib(n_bytes):
    return f"{n_bytes / 2**30:.3g} GiB"


def _parameter_terms(n_rows, n_parameters):
    """Bytes of the optimiser's history and of the kernels' per-block partial sums."""
    return (_LBFGS_VECTORS + n_blocks(max(n_rows, 1)) + 1) * n_parameters * _DOUBLE


def _newton_block_entries(width, d):
    """Entries per row of a block of the Gauss-Newton sums: the Jacobian's
    rows and their weighted copy, the gates times the scores' features, its
    weighted copy and the curved experts' rows (``width`` each), the
    features as the scores and the experts see them and a weighted copy."""
    return 2 * (2 * width + 2) + 3 * width + 3 * (d + 1)


def regressor_fit_bytes(n_samples, n_features, n_experts, n_outputs=None,
                        expert="linear", solver="lbfgs"):
    """Upper bound of the peak memory of a :class:`CosineMoERegressor` fit.

    Parameters
    ----------
    n_samples, n_features, n_experts : int
        ``n_samples`` 0 for rows on a cluster (their experts' solve forms
        the Gram matrix).
    n_outputs : int or None
        ``None`` for a 1-d ``y``.
    expert : str
        Linear experts solve their normal equations (a Gram matrix of
        ``(k (d + 1))**2`` doubles, or with fewer rows than that width, a
        system of the rows, ``n**2``); feed-forward experts do not.
    solver : {"lbfgs", "gauss-newton", "auto"}
        A Newton-type fit forms matrices of the parameters' number squared
        (``"newton"``); ``"auto"`` is :func:`~sklearn_cosmoe._solvers.default_solver`'s.

    Returns
    -------
    dict
        The bytes of each part (``"gram"``, ``"rows"``, ``"parameters"``,
        ``"newton"``) and their ``"total"``, as Python ints (no overflow).
    """
    n, d, k = int(n_samples), int(n_features), int(n_experts)
    m = 1 if n_outputs is None else int(n_outputs)
    width = k * (d + 1)
    parts = {"gram": 0, "rows": _ROW_ARRAYS * n * k * (m + 1) * _DOUBLE}
    if expert == "linear" and 0 < n < width:
        # fewer rows than unknowns: the solve is in the row space (features
        # and their scaled copy, the rows' system and its factorisation)
        parts["gram"] = (2 * width * (n + m) + 2 * n * n) * _DOUBLE
    elif expert == "linear":
        block_rows = -(-n // n_blocks(max(n, 1)))
        parts["gram"] = (_GRAM_COPIES * width * width + width * (block_rows + m)) * _DOUBLE
    n_parameters = width * (m + 1) + 2 * m
    parts["parameters"] = _parameter_terms(n, n_parameters)
    if solver == "auto":
        solver = default_solver(expert, n_parameters)
    parts["newton"] = 0
    if solver == "gauss-newton":
        one_output = 2 * width + 2
        parts["newton"] = (_NEWTON_MATRICES * n_parameters ** 2
                           + 2 * m * one_output ** 2
                           + min(n, GN_BLOCK) * _newton_block_entries(width, d)) * _DOUBLE
    parts["total"] = sum(parts.values())
    return parts


def classifier_fit_bytes(n_samples, n_features, n_experts, n_classes, solver="lbfgs"):
    """Upper bound of the peak memory of a :class:`CosineMoEClassifier` fit.

    The per-row arrays hold ``k`` gates and ``C`` class probabilities of
    each expert; the parameters are ``k (d + 1) (C + 1)``.  A Newton-type
    fit (``solver="gauss-newton"``) forms matrices of the parameters' number
    squared, and per block of rows arrays of at most
    :data:`~sklearn_cosmoe._classifier_objective.FISHER_BLOCK_ENTRIES` entries.

    Returns
    -------
    dict
        ``"rows"``, ``"parameters"``, ``"newton"`` and ``"total"``, in bytes.
    """
    n, d, k, c = int(n_samples), int(n_features), int(n_experts), int(n_classes)
    n_parameters = k * (d + 1) * (c + 1)
    parts = {"rows": _ROW_ARRAYS * n * k * (c + 1) * _DOUBLE,
             "parameters": _parameter_terms(n, n_parameters), "newton": 0}
    if solver == "gauss-newton":
        parts["newton"] = (_CLASSIFIER_NEWTON_MATRICES * n_parameters ** 2
                           + _FISHER_BLOCK_ARRAYS * FISHER_BLOCK_ENTRIES) * _DOUBLE
    parts["total"] = sum(parts.values())
    return parts


def check_fit_memory(parts, estimator_name, what, advice):
    """Refuse a fit whose estimated peak memory ``parts["total"]`` exceeds :data:`MEMORY_LIMIT`.

    Parameters
    ----------
    parts : dict
        From :func:`regressor_fit_bytes` or :func:`classifier_fit_bytes`.
    estimator_name : str
    what : str
        The configuration, e.g. ``"n_experts=1000000 on 200 rows x 4 features"``.
    advice : str
        What to change, a sentence.
    """
    if parts["total"] <= MEMORY_LIMIT:
        return
    largest = max((name for name in parts if name != "total"), key=parts.get)
    meaning = {"gram": "the linear experts' normal equations, a Gram matrix of "
                       "(n_experts * (n_features + 1))**2 doubles (or of n_samples**2 "
                       "with fewer rows)",
               "rows": "per-row arrays of n_samples x n_experts entries",
               "parameters": "the optimiser's parameter-sized vectors",
               "newton": "the Newton-type solver's matrices of (number of parameters)**2 "
                         "doubles"}[largest]
    raise ValueError(
        f"{estimator_name} with {what} would need about {_gib(parts['total'])} of "
        f"memory, more than the limit of {_gib(MEMORY_LIMIT)} "
        f"(sklearn_cosmoe._memory.MEMORY_LIMIT); most of it, {_gib(parts[largest])}, "
        f"for {meaning}. {advice}"
    )


def check_regressor_memory(estimator_name, n_samples, n_features, n_experts, n_outputs,
                           expert, solver="auto", *, expert_parameter="n_experts"):
    """:func:`check_fit_memory` of a regressor fit (or a path up to ``n_experts``)."""
    parts = regressor_fit_bytes(n_samples, n_features, n_experts, n_outputs, expert, solver)
    advice = f"Use fewer experts ({expert_parameter})"
    if parts["newton"]:
        advice += ", solver='lbfgs' (it forms no matrix of the parameters)"
    if expert == "linear" and parts["gram"] >= parts["rows"]:
        advice += ", expert='tanh' (feed-forward experts form no Gram matrix)"
    advice += ", or fewer features (e.g. sklearn.decomposition.PCA in front)."
    outputs = "" if n_outputs is None else f", {n_outputs} outputs"
    check_fit_memory(parts, estimator_name,
                     f"{expert_parameter}={n_experts} on {n_samples} rows x "
                     f"{n_features} features{outputs}", advice)


def check_classifier_memory(estimator_name, n_samples, n_features, n_experts, n_classes,
                            solver="lbfgs"):
    """:func:`check_fit_memory` of a classifier fit (``solver`` not ``"auto"``)."""
    parts = classifier_fit_bytes(n_samples, n_features, n_experts, n_classes, solver)
    newton = (", solver='lbfgs' (it forms no matrix of the parameters)"
              if parts["newton"] else "")
    check_fit_memory(parts, estimator_name,
                     f"n_experts={n_experts} on {n_samples} rows x {n_features} "
                     f"features and {n_classes} classes",
                     f"Use fewer experts (n_experts){newton} or fewer features (e.g. "
                     "sklearn.decomposition.PCA in front).")
