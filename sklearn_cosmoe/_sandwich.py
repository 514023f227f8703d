r"""The parameters' sandwich covariance at a fit, and the variance of its predictions.

At the fitted parameters :math:`\hat\theta` of the least squares
:math:`\min_\theta \sum_n w_n \sum_j r_{nj}^2 / 2` (``r_nj = y_nj -
f_j(x_n)``, one term per output, on the standardized target), the
heteroscedasticity-robust (sandwich) covariance is

.. math::

    \widehat{\operatorname{Cov}}(\hat\theta) = \frac{N}{N - p}\, A^+ B A^+, \qquad
    A = \sum_n w_n \sum_j J_{nj}^\top J_{nj}, \qquad
    B = \sum_n w_n^2 \Bigl(\sum_j r_{nj} J_{nj}\Bigr)^{\!\top}
                      \Bigl(\sum_j r_{nj} J_{nj}\Bigr),

with ``J_nj`` the row of output ``j``'s Jacobian (:mod:`sklearn_cosmoe._jacobian`),
``N`` the number of rows of positive weight times the number of outputs and
``p`` the number of parameters the rows identify: HC1, White's estimator
with the degrees-of-freedom factor of MacKinnon and White (1985).  It is taken
in the router's atoms ``u_i`` (user guide :ref:`canonical-form`), not in
``beta_1i``: under the plain cosine router, and for a perturbed cosine
router's atom held on the boundary of its ball, the atom moves on its
sphere only, so ``A`` and ``B`` are taken on the sphere's tangent plane.
The ridge term of the objective is left out: it is small by default, and
it would lend a dead expert's coefficients a precision the rows do not.

``A^+`` is the pseudo-inverse on the identified subspace, as in the solver's
convergence test (:mod:`sklearn_cosmoe._solvers._stationarity`): ``A`` in
Jacobi scaling, eigen-directions below :data:`RCOND` times the largest
dropped.  The dropped directions are those the rows do not determine (the
common shifts of the gates, an over-specified pair of experts' split, an
expert without rows): nothing of them enters the covariance, so it is
finite whatever the fit, and a quantity that moves along them is *not
identified* (:func:`is_identified`).
"""

from dataclasses import replace

import numpy as np
from scipy import linalg
from scipy.linalg import blas

from ._jacobian import GN_BLOCK, _jacobian_rows, _output_columns
from ._model import MoEParams, _outputs, _prepare, gate_weights
from ._routers import gate_atoms
from ._solvers._atoms import ATOM_RADIUS, ON_SPHERE
from ._solvers._stationarity import RCOND, symmetric_eigen

#: Above this many parameters no covariance is computed: its matrices have
#: ``n_parameters**2`` entries (8 MB each at this limit) and its pass over the
#: rows costs ``n_rows * n_parameters**2`` operations, as a Newton-type
#: iteration of a model of that size does (``solver="auto"`` takes those up to
#: 500 parameters).
COVARIANCE_MAX_PARAMETERS = 1000
#: A quantity is identified when at most this fraction of its gradient (in the
#: Jacobi-scaled metric) lies along the directions dropped from ``A^+``: a
#: larger share ``s`` along a dropped eigenvalue (below ``RCOND = 1e-10`` of the
#: largest) would add more than ``s**2 / RCOND = 1`` times the variance that the
#: largest eigenvalue gives the whole gradient.  Rounding puts an exact
#: invariant's share near ``1e-16 / RCOND = 1e-6`` at worst.
IDENTIFIED_SHARE = 1e-5


def _sizes(params, spec):
    """Columns of one output's Jacobian that are parameters, and of all outputs'."""
    k, d = params.shape
    single = 2 * k * d + 2 * k + (2 if spec.learns_output_affine else 0)
    return single, spec.n_parameters(params.shape)


def sandwich_sums(X, x_norms, y, sample_weight, params, spec, covariance=True):
    """Un-normalised sums over the rows for the sandwich, added in a fixed order.

    ``y`` has shape ``(n,)``, or ``(n, m)`` for parameters of ``m`` outputs.
    Returns ``(bread, meat, gate_totals, squares, n_rows, weight)``: each output's
    ``sum_n w_n J_nj^T J_nj`` in its own layout ``(m, P1, P1)``, ``B`` of the
    module docstring in the layout of :meth:`~sklearn_cosmoe._model.MoEParams.to_vector`
    ``(P, P)``, the experts' total gate weights ``sum_n w_n g_i(x_n)``
    ``(k,)``, the outputs' ``sum_n w_n r_nj^2`` ``(m,)``, the number of
    rows of positive weight and ``sum_n w_n``.  Sums of chunks of rows add up to those of all
    the rows (the output scale and intercept of linear experts, fixed, are
    not parameters).  Without ``covariance``, the gate totals alone (the
    other entries None): one pass of the gates.
    """
    X, x_norms = _prepare(X, x_norms)
    n = X.shape[0]
    if not covariance:
        gates = gate_weights(X, params, spec, x_norms)
        return None, None, sample_weight @ gates, None, None, None
    per_output = _outputs(params)
    m = len(per_output)
    targets = np.reshape(y, (n, m))
    single, size = _sizes(params, spec)
    columns = [_output_columns(params.shape, spec, j)[:single] for j in range(m)]
    bread = [np.zeros((single, single), order="F") for _ in range(m)]
    meat = np.zeros((size, size), order="F")
    totals = np.zeros(params.shape[0])
    squares = np.zeros(m)
    root_weight = np.sqrt(sample_weight)
    for start in range(0, n, GN_BLOCK):
        rows = slice(start, min(start + GN_BLOCK, n))
        w = sample_weight[rows]
        score = None  # sum_j w_n r_nj J_nj, all outputs' layout
        for j, p in enumerate(per_output):
            J, f, parts = _jacobian_rows(X[rows], p, spec, x_norms[rows])
            J = J[:, :single]
            wr = w * (targets[rows, j] - f)
            squares[j] += np.dot(wr, targets[rows, j] - f)
            if m == 1:  # the layouts coincide: no scatter (a copy as long as a product)
                score = wr[:, None] * J
            else:
                score = np.zeros((w.size, size)) if score is None else score
                score[:, columns[j]] += wr[:, None] * J
            weighted = J * root_weight[rows, None]
            bread[j] = blas.dsyrk(1.0, weighted.T, beta=1.0, c=bread[j], trans=0, lower=0,
                                  overwrite_c=1)
        totals += w @ parts[0]
        meat = blas.dsyrk(1.0, score.T, beta=1.0, c=meat, trans=0, lower=0, overwrite_c=1)
    bread = np.stack([np.triu(b) + np.triu(b, 1).T for b in bread])
    return (bread, np.triu(meat) + np.triu(meat, 1).T, totals, squares,
            int(np.count_nonzero(sample_weight > 0)), float(np.sum(sample_weight)))


def canonical_order(gate_totals):
    """Experts by decreasing total gate weight on the training rows (ties keep their order)."""
    return np.argsort(-np.asarray(gate_totals), kind="stable")


def permuted_params(params, order):
    """``params`` with the experts in ``order`` (new arrays; the output scale and
    intercept, common to the experts, unchanged)."""
    return MoEParams(params.gate_coef[order], params.gate_intercept[order],
                     params.expert_coef[order], params.expert_intercept[order],
                     params.output_scale, params.output_intercept).copy()


def _layout_permutation(shape, spec, order):
    """Positions in :meth:`~sklearn_cosmoe._model.MoEParams.to_vector`'s layout of the
    parameters of the experts taken in ``order``."""
    index = np.arange(spec.n_parameters(shape), dtype=np.float64)
    moved = permuted_params(MoEParams.from_vector(index, shape, spec), order)
    return moved.to_vector(spec).astype(np.intp)


def permuted_sums(sums, shape, spec, order):
    """:func:`sandwich_sums` of the experts taken in ``order``."""
    bread, meat, totals, squares, n_rows, weight = sums
    one = _layout_permutation(shape, replace(spec, n_outputs=None), order)
    every = _layout_permutation(shape, spec, order)
    return (bread[:, one[:, None], one[None, :]], meat[np.ix_(every, every)],
            np.asarray(totals)[order], squares, n_rows, weight)


def _tangent_basis(params, spec, size):
    """Orthonormal columns spanning the moves the atoms may make: every
    parameter's axis, but the plain cosine router's atoms and the perturbed
    router's atoms held on the boundary of their ball move on their sphere."""
    k, d = params.shape
    if spec.router == "linear":
        return np.eye(size)
    atoms = gate_atoms(params.gate_coef, spec.router, float(spec.tau1))
    norms = np.linalg.norm(atoms, axis=1)
    bound = 0.0 if spec.router == "cosine" else ATOM_RADIUS - ON_SPHERE
    blocks = [np.eye(size)[:, k * d:]]
    for i in range(k):
        block = np.zeros((size, d))
        block[i * d:(i + 1) * d] = np.eye(d)
        if norms[i] > 0 and norms[i] >= bound:
            block = block @ linalg.null_space(atoms[i][None, :] / norms[i])
        blocks.insert(i, block)
    return np.concatenate(blocks, axis=1)


def _identified_inverse(matrix):
    """``(scale, values, vectors, keep)``: ``matrix`` in Jacobi scaling, its
    eigen-decomposition, and which eigenvalues exceed :data:`RCOND` times the
    largest (an axis that no row moves gets the scale 1 and eigenvalue 0)."""
    diag = np.diag(matrix).copy()
    scale = np.ones_like(diag)
    scale[diag > 0] = 1.0 / np.sqrt(diag[diag > 0])
    values, vectors = symmetric_eigen(matrix * scale[:, None] * scale[None, :])
    largest = max(float(values[-1]), 0.0) if values.size else 0.0
    return scale, values, vectors, values > RCOND * largest


def finish_sandwich(sums, params, spec, robust=True):
    """The covariance of the parameters from :func:`sandwich_sums` (module docstring).

    ``robust=False`` gives the classical covariance instead, which holds for
    noise of one variance: ``s**2 A^+`` with ``s**2 = sum_n w_n sum_j r_nj**2
    / (N - p)``.  Only the benchmarks ask for it, to show what the sandwich
    keeps under heteroscedastic noise.

    Returns a dict of arrays and numbers (what a fitted estimator keeps):

    ``covariance`` ``(P, P)``
        In the layout of :meth:`~sklearn_cosmoe._model.MoEParams.to_vector`
        with the router's atoms in place of ``beta_1``.
    ``basis`` ``(P, R)``, ``null`` ``(R, q)``
        The moves the atoms may make in Jacobi scaling, and the
        unidentified directions among them (:func:`is_identified`).
    ``noise_variance`` ``(m,)``
        Each output's weighted mean squared residual times ``n / (n - p_j)``,
        ``p_j`` the parameters identified by that output's rows (router and
        own experts); NaN where ``n <= p_j``.
    ``n_rows``, ``n_identified``
        Rows of positive weight, and ``p`` of the module docstring.
    """
    bread, meat, _, squares, n_rows, total_weight = sums
    n_rows = int(n_rows)  # a float when added over a cluster's chunks
    single, size = _sizes(params, spec)
    m = bread.shape[0]
    tangent = _tangent_basis(params, spec, size)
    whole = np.zeros((size, size))
    noise = np.full(m, np.nan)
    for j in range(m):
        columns = _output_columns(params.shape, spec, j)[:single]
        whole[np.ix_(columns, columns)] += bread[j]
        own = tangent[columns][:, np.any(tangent[columns] != 0, axis=0)]
        rank = int(np.sum(_identified_inverse(own.T @ bread[j] @ own)[3]))
        if n_rows > rank and total_weight > 0:
            noise[j] = squares[j] / total_weight * n_rows / (n_rows - rank)
    scale, values, vectors, keep = _identified_inverse(tangent.T @ whole @ tangent)
    basis = tangent * scale[None, :]
    inverse = basis @ ((vectors[:, keep] / values[keep]) @ vectors[:, keep].T) @ basis.T
    n_identified = int(np.sum(keep))
    observations = n_rows * m
    factor = (observations / (observations - n_identified) if observations > n_identified
              else np.nan)
    if robust:
        covariance = factor * (inverse @ meat @ inverse)
    else:
        covariance = factor / observations * float(np.sum(squares)) * inverse
    return {"covariance": 0.5 * (covariance + covariance.T), "basis": basis,
            "null": vectors[:, ~keep], "noise_variance": noise, "n_rows": n_rows,
            "n_identified": n_identified}


def on_target_scale(statistics, shape, spec, y_scale):
    """:func:`finish_sandwich`'s result for the parameters on ``y``'s scale.

    The fit's parameters on the standardized target map to the fitted
    attributes by a diagonal ``L`` (:func:`~sklearn_cosmoe._validation.params_on_target_scale`:
    linear experts' coefficients and intercepts, or the feed-forward experts'
    output scale and intercept, times ``y_scale``): the covariance becomes
    ``L C L``, the basis ``L basis``, the noise variance ``y_scale**2`` times
    its own.  New arrays.
    """
    m = 1 if spec.n_outputs is None else spec.n_outputs
    y_scale = np.broadcast_to(np.asarray(y_scale, dtype=np.float64), (m,))
    factors = MoEParams.from_vector(np.ones(spec.n_parameters(shape)), shape, spec)
    if spec.learns_output_affine:
        vector = factors.to_vector(spec)
        vector[-2 * m:] = np.tile(y_scale, 2)
    else:
        per_output = y_scale if spec.n_outputs is None else y_scale[:, None]
        factors.expert_coef *= per_output
        factors.expert_intercept *= y_scale if spec.n_outputs is None else y_scale[None, :]
        vector = factors.to_vector(spec)
    result = dict(statistics)
    result["covariance"] = statistics["covariance"] * vector[:, None] * vector[None, :]
    result["basis"] = statistics["basis"] * vector[:, None]
    result["noise_variance"] = statistics["noise_variance"] * y_scale ** 2
    return result


def predictive_variance(X, params, spec, statistics):
    """``J(x) Cov J(x)^T`` of each row and output: the delta method's variance of ``f(x)``.

    ``params`` and ``statistics`` (:func:`on_target_scale`) are on the same
    scale.  Returns shape ``(n,)`` for one output, ``(n, m)`` for ``m``.
    Blocks of :data:`~sklearn_cosmoe._jacobian.GN_BLOCK` rows.
    """
    X, x_norms = _prepare(X, None)
    n = X.shape[0]
    per_output = _outputs(params)
    single, _ = _sizes(params, spec)
    covariance = statistics["covariance"]
    blocks = [covariance[np.ix_(c, c)] for c in
              (_output_columns(params.shape, spec, j)[:single] for j in range(len(per_output)))]
    variance = np.empty((n, len(per_output)))
    for start in range(0, n, GN_BLOCK):
        rows = slice(start, min(start + GN_BLOCK, n))
        for j, p in enumerate(per_output):
            J = _jacobian_rows(X[rows], p, spec, x_norms[rows])[0][:, :single]
            variance[rows, j] = np.einsum("np,np->n", J @ blocks[j], J)
    variance = np.maximum(variance, 0.0)  # rounding of a positive semi-definite form
    return variance[:, 0] if params.n_outputs is None else variance


def is_identified(statistics, gradient):
    """Whether the rows determine a quantity of gradient ``gradient`` (layout of the
    covariance): at most :data:`IDENTIFIED_SHARE` of it, in the Jacobi-scaled
    moves of the atoms, lies along the dropped directions."""
    scaled = statistics["basis"].T @ gradient
    norm = np.linalg.norm(scaled)
    if norm == 0:
        return True  # constant along every move: known exactly
    return bool(np.linalg.norm(statistics["null"].T @ scaled) <= IDENTIFIED_SHARE * norm)


def standard_error(statistics, gradient):
    """``sqrt(g^T Cov g)``, NaN when the quantity is not identified (:func:`is_identified`)."""
    if not is_identified(statistics, gradient):
        return np.nan
    return float(np.sqrt(max(gradient @ statistics["covariance"] @ gradient, 0.0)))
